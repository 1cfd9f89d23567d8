//! Dying with a parent, race-free: `PR_SET_PDEATHSIG(SIGKILL)`, then a re-check of the parent
//! through a pidfd opened before (the parent may have died before the prctl; and across the
//! pid-namespace boundary `getppid()` is 0, so only a pidfd names the parent reliably).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::unistd::Pid;

/// `pidfd_open(2)`: a close-on-exec descriptor that refers to process `pid` for good.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    common::sys::process::pidfd_open(pid.as_raw()).map_err(io::Error::from)
}

/// Whether the process a pidfd refers to has exited (the pidfd polls readable).
pub fn has_exited(pidfd: &OwnedFd) -> bool {
    let mut poll = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no timeout.
    let n = unsafe { libc::poll(&mut poll, 1, 0) };
    n > 0 && poll.revents & (libc::POLLIN | libc::POLLHUP) != 0
}

/// Blocks until the process a pidfd refers to has exited.
pub fn wait_exited(pidfd: &OwnedFd) {
    loop {
        let mut poll = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no timeout.
        let n = unsafe { libc::poll(&mut poll, 1, -1) };
        if n > 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Asks the kernel to SIGKILL this process when its parent exits.
pub fn kill_me_with_parent() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; the other arguments are unused.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Ties this process's life to the process `parent` refers to: true when the parent is alive
/// (and this process will be SIGKILLed when it exits), false when it is already gone.
pub fn tie_to(parent: &OwnedFd) -> io::Result<bool> {
    kill_me_with_parent()?;
    Ok(!has_exited(parent))
}
