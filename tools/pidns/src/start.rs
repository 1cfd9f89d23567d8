//! The start as every mode reports it (the monitor's, `--no-monitor`'s, the hand-over to the
//! chain's supervisor): the first `--status-fd` line, the pin, the registration; and what a
//! failed start does with the process it forked.

use std::os::fd::RawFd;

use common::link::Link;
use common::pin::PinHelper;
use common::Fatal;
use nix::unistd::Pid;
use serde_json::{json, Map, Value};

use crate::status;

/// Reports the start of the container's first process `pid`: its line on `status_fd`, the
/// pin, and its registration with `monitor` (the pid that waits for it, or null) and whether
/// it is an init.
pub fn report(
    link: &Link,
    status_fd: Option<RawFd>,
    helper: Option<PinHelper>,
    pid: Pid,
    monitor: Value,
    init: bool,
) -> Result<(), Fatal> {
    let host_pid = pid.as_raw() as u32;
    if let Some(fd) = status_fd {
        status::write_line(fd, &status::started(host_pid))
            .map_err(|e| Fatal::from(e).context(format!("unable to write to status fd {fd}")))?;
    }
    if let Some(helper) = helper {
        helper.pin()?;
    }
    let mut extra = Map::new();
    extra.insert("monitor".into(), monitor);
    extra.insert("init".into(), json!(init));
    link.finish_for(host_pid, extra).map(drop)
}

/// A start that failed after the fork: the forked process (waiting for its go-ahead) is killed
/// and reaped, and the failure returned.
pub fn abandon(pid: Pid, fatal: Fatal) -> Fatal {
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
    fatal
}
