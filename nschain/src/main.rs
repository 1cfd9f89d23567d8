//! nschain: every tool in one binary, run by the name it is called as (`mntns`, a hard link
//! to this file) or as `nschain TOOL ARGS...`. A link whose next link is this same file runs
//! it in this process (common::inprocess); everything else is the tool's own `run`.

use std::ffi::OsString;
use std::process::ExitCode;

use common::inprocess::{Links, Outcome};

/// One entry of the table per tool: its name and its `run`.
macro_rules! links {
    ($($tool:ident),* $(,)?) => {
        $(
            fn $tool(argv: Vec<OsString>, links: &'static Links) -> Outcome {
                common::cli::link(stringify!($tool), $tool::run, argv, Some(links))
            }
        )*
        static LINKS: Links = Links {
            entries: &[$((stringify!($tool), $tool)),*],
        };
    };
}

links!(mntns, utsns, ipcns, pidns, netns, userns, nsps, timens);

fn main() -> ExitCode {
    common::inprocess::dispatch(&LINKS)
}
