//! `nsps exec NAME -- COMMAND`: the chain of `--join NAME` links that enters a container,
//! joining exactly the namespaces it made, user namespace first and mount namespace last
//! (DESIGN.md §2), then COMMAND.

use std::ffi::OsString;
use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::info::Record;
use common::{chain, ns, Fatal};

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

/// The links of a chain, as their processes are named while they set up.
const LINKS: [&str; 6] = ["userns", "netns", "ipcns", "utsns", "pidns", "mntns"];

/// How long `nsps exec` waits for a chain that is still starting.
const SETTLE: Duration = Duration::from_secs(5);

/// Execs the joining chain; returns only on failure.
pub fn exec(name: &str, command: Vec<OsString>) -> Fatal {
    // A chain that is still starting has not registered its later links yet: joining it then
    // would leave out, say, its mount namespace and run COMMAND on the host's filesystem.
    if let Err(fatal) = wait_until_settled(name) {
        return fatal;
    }
    let records = chain::live_records(name);
    if records.is_empty() {
        return Fatal::new(format!("no chain named {name} is running"))
            .with_hint("nsps lists the running chains");
    }
    let made = |kind: &str| records.iter().any(|r| r.ns.kind == kind && r.created);
    let order = join_order(&records);
    let argv = joining_chain(name, order.into_iter().filter(|k| made(k)), command);
    // The joining links enter this chain; they must not register under another chain's name.
    std::env::remove_var(chain::NAME_VAR);
    common::exec::exec(argv)
}

/// Waits until the chain's payload runs: every link has then registered (each registers
/// before its exec). The payload is PID 2 under our init, else PID 1 of the chain's pid
/// namespace, else the process holding the chain's namespaces.
fn wait_until_settled(name: &str) -> Result<(), Fatal> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let records = chain::live_records(name);
        if records.is_empty() {
            return Err(Fatal::new(format!("no chain named {name} is running"))
                .with_hint("nsps lists the running chains"));
        }
        let payload = match records.iter().find(|r| r.ns.kind == "pid") {
            Some(pid) => crate::inspect::payload_pid(pid.ns.inode),
            None => records.iter().map(|r| r.pid).max(),
        };
        let settled = payload.is_some_and(|pid| !LINKS.contains(&comm(pid).as_str()));
        if settled {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Fatal::new(format!(
                "chain {name} is still starting after {} s",
                SETTLE.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_owned())
        .unwrap_or_default()
}

/// The kinds in the order to join them: namespaces the chain made before its user namespace
/// (`netns` in a rootful chain) belong to the caller's user namespace, so they are joined
/// first, while still privileged there; then the user namespace; then the rest.
fn join_order(records: &[Record]) -> Vec<&'static str> {
    let user = records.iter().find(|r| r.ns.kind == "user" && r.created);
    let outside = |kind: &str| {
        user.is_some_and(|user| {
            records.iter().any(|r| {
                r.ns.kind == kind
                    && File::open(format!("/proc/{}/ns/{kind}", r.pid))
                        .ok()
                        .and_then(|f| ns::owner_inode(&f).ok())
                        .is_some_and(|owner| owner != user.ns.inode)
            })
        })
    };
    let (before, after): (Vec<_>, Vec<_>) = ORDER
        .iter()
        .map(|(kind, _)| *kind)
        .partition(|kind| *kind != "user" && outside(kind));
    before.into_iter().chain(after).collect()
}

/// `TOOL --join NAME -- ... -- COMMAND` for each kind, in the order given.
pub fn joining_chain<'a>(
    name: &str,
    kinds: impl IntoIterator<Item = &'a str>,
    command: Vec<OsString>,
) -> Vec<OsString> {
    // The links are our own binaries, found beside nsps, so the chain does not depend on PATH.
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from));
    let mut argv: Vec<OsString> = Vec::new();
    for kind in kinds {
        let Some((_, tool)) = ORDER.iter().find(|(k, _)| *k == kind) else {
            continue;
        };
        let program = match &dir {
            Some(dir) if dir.join(tool).exists() => dir.join(tool).into_os_string(),
            _ => (*tool).into(),
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
        let kinds = ORDER.iter().map(|(k, _)| *k).filter(|k| *k != "net");
        let argv = joining_chain("web1", kinds, vec!["hostname".into()]);
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
