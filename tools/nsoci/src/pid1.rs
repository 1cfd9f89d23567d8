//! The container's PID 1 as runc reports it: the user's process, not a monitor. pidns
//! `--no-monitor` forks it and exits, telling its host pid on `--status-fd`; it is then
//! orphaned to the nearest subreaper. nsoci makes itself one, so that `run` (and a failed
//! `create`) can wait for it; after nsoci exits it goes on to the caller's (conmon, the shim).

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;

use common::cli::Status;
use common::Fatal;

/// Makes this process the subreaper of its descendants.
pub fn become_subreaper() -> Result<(), Fatal> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes a flag; the other arguments are unused.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    nix::errno::Errno::result(rc)
        .map(drop)
        .map_err(|e| Fatal::from(e).context("unable to become a subreaper"))
}

/// The host pid on pidns's first `--status-fd` line (`{"pid": P, ...}`); None at EOF (the
/// chain failed before pidns forked, and said why).
pub fn read_status(pipe: OwnedFd) -> Option<i32> {
    let mut line = String::new();
    BufReader::new(std::fs::File::from(pipe))
        .read_line(&mut line)
        .ok()?;
    let value: serde_json::Value = serde_json::from_str(&line).ok()?;
    value
        .get("pid")?
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
}

/// Waits for `pid` (a child, or an orphan given to this subreaper) and returns its status,
/// shell-encoded (n, or 128+s).
pub fn wait(pid: i32) -> Status {
    loop {
        let mut raw = 0;
        // SAFETY: waitpid on one pid, writing a local.
        let rc = unsafe { libc::waitpid(pid, &mut raw, 0) };
        if rc == pid {
            return common::exit::from_wait_status(raw);
        }
        if rc < 0 && nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            return common::exit::FAILURE;
        }
    }
}

/// The other processes in the pid namespace of `pid` (when it has one of its own), for
/// `kill --all`.
pub fn others_in_pid_namespace(pid: i32) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let inode = |p: &str| {
        std::fs::metadata(format!("/proc/{p}/ns/pid"))
            .map(|m| m.ino())
            .ok()
    };
    let Some(theirs) = inode(&pid.to_string()) else {
        return Vec::new();
    };
    if inode("self") == Some(theirs) {
        // No pid namespace of its own: the host's processes are not the container's.
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| *p != pid && inode(&p.to_string()) == Some(theirs))
        .collect()
}
