//! The chain that enters a running container, for `exec` and for the hooks that run in the
//! container (createContainer, startContainer): one `--join` link per namespace the init
//! holds apart from nsoci's own, in the order nsps exec joins them (user first: it gives the
//! right to join the rest; mount last: it changes the root):
//!
//! ```text
//! [userns --join] [netns --join] [ipcns --join] [utsns --join] [cgroupns --join]
//! [timens --join] [pidns --join --no-monitor] mntns --join PID ...
//! ```
//!
//! Each link joins with its own code; the payload's cgroup is entered by nsoci first, as
//! `nsps exec` does, so that the limits bind the joined process too.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::Fatal;

/// (kind in /proc/PID/ns, the link that joins it), in joining order, pid and mount aside.
const LINKS: [(&str, &str); 6] = [
    ("user", "userns"),
    ("net", "netns"),
    ("ipc", "ipcns"),
    ("uts", "utsns"),
    ("cgroup", "cgroupns"),
    ("time", "timens"),
];

/// Whether `pid` holds a namespace of `kind` other than this process's.
fn apart(pid: i32, kind: &str) -> Result<bool, Fatal> {
    let inode = |path: String| {
        std::fs::metadata(&path).map(|m| m.ino()).map_err(|e| {
            Fatal::from(anyhow::Error::from(e)).context(format!("unable to read {path}"))
        })
    };
    Ok(inode(format!("/proc/{pid}/ns/{kind}"))? != inode(format!("/proc/self/ns/{kind}"))?)
}

/// What enters the mount namespace: the init as a process (its root, working directory and
/// credentials: `exec` and startContainer), or only its namespace (a hook before pivot_root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mnt {
    Process,
    Namespace,
}

/// The argv up to and including `mntns --join ...`; the caller adds mntns's options, `--`
/// and the command. `status_fd`: pidns's, whose first line names the joined process's pid.
/// Returns whether a pid namespace is joined (then the pid comes on `status_fd`).
pub fn argv(
    tools: &Path,
    pid: i32,
    status_fd: RawFd,
    mnt: Mnt,
) -> Result<(Vec<OsString>, bool), Fatal> {
    let mut argv: Vec<OsString> = Vec::new();
    let link = |argv: &mut Vec<OsString>, tool: &str, target: OsString| {
        if !argv.is_empty() {
            argv.push("--".into());
        }
        argv.extend([tools.join(tool).into(), "--join".into(), target]);
    };
    for (kind, tool) in LINKS {
        if apart(pid, kind)? {
            link(&mut argv, tool, format!("/proc/{pid}/ns/{kind}").into());
        }
    }
    let pidns = apart(pid, "pid")?;
    if pidns {
        link(&mut argv, "pidns", format!("/proc/{pid}/ns/pid").into());
        argv.extend([
            "--no-monitor".into(),
            "--status-fd".into(),
            status_fd.to_string().into(),
        ]);
    }
    let target = match mnt {
        Mnt::Process => pid.to_string(),
        Mnt::Namespace => format!("/proc/{pid}/ns/mnt"),
    };
    link(&mut argv, "mntns", target.into());
    Ok((argv, pidns))
}

/// Moves this process into the cgroups of `pid` where they differ from its own (its children
/// follow): the container's limits bind what is joined to it.
pub fn enter_cgroup(pid: i32) -> Result<(), Fatal> {
    let layout = common::cgroupfs::Layout::detect()
        .map_err(|e| Fatal::from(e).context("unable to read the cgroup hierarchies"))?;
    let theirs = layout
        .dirs_of_process(pid as u32)
        .map_err(|e| Fatal::from(e).context("unable to read the container's cgroups"))?;
    let ours = layout
        .dirs_of_process(std::process::id())
        .map_err(|e| Fatal::from(e).context("unable to read nsoci's cgroups"))?;
    let dirs = theirs.into_iter().filter(|d| !ours.contains(d)).collect();
    common::cgroupfs::Cgroup { dirs }
        .add(0)
        .map_err(|e| Fatal::from(e).context("unable to join the container's cgroup"))
}
