//! `nsps exec NAME -- COMMAND`: the chain of `--join NAME` links that enters a container,
//! joining exactly the namespaces it made, user namespace first and mount namespace last
//! (DESIGN.md §2), then COMMAND.

use std::ffi::OsString;
use std::path::PathBuf;

use common::{chain, Fatal};

/// The order links join in: the user namespace gives the rights to join the others; the pid
/// namespace forks; the mount namespace changes the root, so it comes last.
const ORDER: [(&str, &str); 6] = [
    ("user", "userns"),
    ("net", "netns"),
    ("ipc", "ipcns"),
    ("uts", "utsns"),
    ("pid", "pidns"),
    ("mnt", "mntns"),
];

/// Execs the joining chain; returns only on failure.
pub fn exec(name: &str, command: Vec<OsString>) -> Fatal {
    let records = chain::live_records(name);
    if records.is_empty() {
        return Fatal::new(format!("no chain named {name} is running"))
            .with_hint("nsps lists the running chains");
    }
    let argv = joining_chain(
        name,
        |kind| records.iter().any(|r| r.ns.kind == kind && r.created),
        command,
    );
    // The joining links enter this chain; they must not register under another chain's name.
    std::env::remove_var(chain::NAME_VAR);
    common::exec::exec(argv)
}

/// `userns --join NAME -- pidns --join NAME -- ... -- COMMAND` for the kinds `has` accepts.
pub fn joining_chain(
    name: &str,
    has: impl Fn(&str) -> bool,
    command: Vec<OsString>,
) -> Vec<OsString> {
    // The links are our own binaries, found beside nsps, so the chain does not depend on PATH.
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from));
    let mut argv: Vec<OsString> = Vec::new();
    for (kind, tool) in ORDER {
        if !has(kind) {
            continue;
        }
        let program = match &dir {
            Some(dir) if dir.join(tool).exists() => dir.join(tool).into_os_string(),
            _ => tool.into(),
        };
        argv.extend([program, "--join".into(), name.into(), "--".into()]);
    }
    argv.extend(common::exec::command_or_shell(command));
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_joins_user_first_and_mount_last() {
        let argv = joining_chain("web1", |k| k != "net", vec!["hostname".into()]);
        let words: Vec<String> = argv
            .iter()
            .map(|a| {
                let s = a.to_string_lossy();
                s.rsplit('/').next().unwrap_or_default().to_owned()
            })
            .collect();
        assert_eq!(
            words.join(" "),
            "userns --join web1 -- ipcns --join web1 -- utsns --join web1 -- pidns --join web1 -- mntns --join web1 -- hostname"
        );
    }
}
