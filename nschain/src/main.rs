//! nschain: every tool in one binary, run by the name it is called as (`mntns`, a hard link
//! to this file) or as `nschain TOOL ARGS...`. A link whose next link is this same file runs
//! it in this process (common::inprocess); everything else is the tool's own `run`.

use std::process::ExitCode;

use common::inprocess::{Handoff, Links, Outcome};

/// One entry of the table per tool: its name and its `run`.
macro_rules! links {
    ($($entry:ident = $tool:literal => $run:path),* $(,)?) => {
        $(
            fn $entry(start: Handoff, links: &'static Links) -> Outcome {
                common::cli::link($tool, $run, start, Some(links))
            }
        )*
        static LINKS: Links = Links {
            entries: &[$(($tool, $entry)),*],
        };
    };
}

links!(
    run_mntns = "mntns" => mntns::run,
    run_utsns = "utsns" => utsns::run,
    run_ipcns = "ipcns" => ipcns::run,
    run_pidns = "pidns" => pidns::run,
    run_netns = "netns" => netns::run,
    run_userns = "userns" => userns::run,
    run_nsps = "nsps" => nsps::run,
    run_timens = "timens" => timens::run,
    run_cgroupns = "cgroupns" => cgroupns::run,
    run_nsimage = "nsimage" => nsimage::run,
    run_nsoci = "nsoci" => nsoci::run,
);

enum OwnFlag {
    Help,
    Version,
}

/// `nschain --help` and `nschain --version`, answered as every tool answers its own (exit 0);
/// anything else is a tool's name.
fn own_flag() -> Option<OwnFlag> {
    let mut argv = std::env::args_os();
    let called = argv.next()?;
    if std::path::Path::new(&called).file_name()? != "nschain" {
        return None;
    }
    match argv.next()?.to_str()? {
        "-h" | "--help" => Some(OwnFlag::Help),
        "-V" | "--version" => Some(OwnFlag::Version),
        _ => None,
    }
}

fn main() -> ExitCode {
    match own_flag() {
        Some(OwnFlag::Help) => println!(
            "Every nschain tool in one binary, run by the name it is called as (a hard link\n\
             named mntns runs mntns) or by the first word.\n\n\
             Usage: nschain TOOL [ARG]...\n\n\
             Tools: {}\n\
             `nschain TOOL --help` shows a tool's own options.",
            LINKS.names()
        ),
        Some(OwnFlag::Version) => println!("nschain {}", env!("CARGO_PKG_VERSION")),
        None => return common::inprocess::dispatch(&LINKS),
    }
    ExitCode::SUCCESS
}
