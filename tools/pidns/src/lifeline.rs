//! Dying with a parent, race-free: `PR_SET_PDEATHSIG(SIGKILL)`, then a re-check of the parent
//! through a pidfd opened before (the parent may have died before the prctl; and across the
//! pid-namespace boundary `getppid()` is 0, so only a pidfd names the parent reliably).

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::unistd::Pid;

/// `pidfd_open(2)`: a close-on-exec descriptor that refers to process `pid` for good.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    common::sys::process::pidfd_open(pid.as_raw()).map_err(io::Error::from)
}

/// Whether the process a pidfd refers to has exited (the pidfd polls readable).
pub fn has_exited(pidfd: &OwnedFd) -> bool {
    common::sys::process::pidfd_has_exited(pidfd.as_fd())
}

/// Blocks until the process a pidfd refers to has exited.
pub fn wait_exited(pidfd: &OwnedFd) {
    common::sys::process::pidfd_wait_exited(pidfd.as_fd());
}

/// Asks the kernel to SIGKILL this process when its parent exits.
pub fn kill_me_with_parent() -> io::Result<()> {
    common::sys::process::kill_me_with_parent().map_err(io::Error::from)
}

/// Ties this process's life to the process `parent` refers to: true when the parent is alive
/// (and this process will be SIGKILLed when it exits), false when it is already gone.
pub fn tie_to(parent: &OwnedFd) -> io::Result<bool> {
    kill_me_with_parent()?;
    Ok(!has_exited(parent))
}
