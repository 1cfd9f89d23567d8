//! A container does not keep the caller's terminal as its controlling terminal.
//!
//! While the terminal is COMMAND's controlling terminal, the kernel lets it push keystrokes
//! with TIOCSTI (`dev.tty.legacy_tiocsti=1`) and open it again through /dev/tty. Detached,
//! TIOCSTI needs CAP_SYS_ADMIN, /dev/tty fails with ENXIO, and job-control ioctls
//! (TIOCSPGRP) fail with ENOTTY; the ioctls that act on any terminal fd are the seccomp
//! filter's part (mntns).
//!
//! Detached with TIOCNOTTY rather than setsid (bubblewrap's `--new-session`): COMMAND stays
//! in the caller's foreground process group, so Ctrl-C and a hangup of the terminal still
//! reach it (pidns forwards only the signals that processes send), and an interactive shell
//! still reads and writes the terminal (without job control). For the kernel's checks,
//! "no controlling terminal" is what counts, in a session of its own or not; a process of
//! the container that makes a session of its own cannot take the caller's terminal, which
//! belongs to the caller's session.
//!
//! A process that leads its session keeps its terminal: the session, and so the terminal's
//! foreground, is its own (started by `setsid -c`, a getty or sshd), and detaching would send
//! SIGHUP to its own process group.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::errno::Errno;

/// What [`detach`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detached {
    /// There was no controlling terminal.
    NoTerminal,
    /// The controlling terminal was given up.
    Detached,
    /// This process leads its session: its terminal is its own, kept.
    SessionLeader,
}

/// Gives up this process's controlling terminal (not its process group or session).
pub fn detach() -> Result<Detached, Errno> {
    if nix::unistd::getsid(None)? == nix::unistd::getpid() {
        return Ok(Detached::SessionLeader);
    }
    // /dev/tty is the controlling terminal, whichever fd (if any) holds it.
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open("/dev/tty");
    match tty {
        Ok(tty) => return notty(tty.as_raw_fd()).map(|()| Detached::Detached),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(Detached::NoTerminal),
        // No /dev/tty here (then the container has none either: its /dev/tty is the host's
        // node), or a hung-up terminal (EIO): the standard fds are what is left to reach it.
        Err(_) => {}
    }
    for fd in 0..3 {
        match notty(fd) {
            Ok(()) => return Ok(Detached::Detached),
            Err(Errno::ENOTTY | Errno::EBADF | Errno::EIO) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Detached::NoTerminal)
}

/// On a non-leader, TIOCNOTTY only clears this process's controlling terminal.
fn notty(fd: RawFd) -> Result<(), Errno> {
    crate::sys::tty::give_up_controlling_terminal(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` in a forked child; true when it returned true.
    fn in_child(f: impl FnOnce() -> bool) -> bool {
        // SAFETY: the child runs `f` and _exits without returning into the harness.
        match unsafe { libc::fork() } {
            0 => {
                let code = if f() { 0 } else { 1 };
                // SAFETY: ends the forked child at once.
                unsafe { libc::_exit(code) }
            }
            -1 => false,
            child => {
                let mut status = 0;
                // SAFETY: waits for our own child; `status` is a local.
                unsafe { libc::waitpid(child, &mut status, 0) };
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
            }
        }
    }

    #[test]
    fn a_terminal_is_given_up_by_a_member_and_kept_by_the_leader() {
        assert!(in_child(|| {
            let (mut master, mut slave) = (0, 0);
            // SAFETY: openpty fills two fds; the null pointers are allowed.
            let made = unsafe {
                libc::openpty(
                    &mut master,
                    &mut slave,
                    std::ptr::null_mut(),
                    std::ptr::null(),
                    std::ptr::null(),
                )
            };
            // SAFETY: setsid, then TIOCSCTTY on the fresh pty: this child leads a new session
            // with the pty as its controlling terminal.
            let ctty = made == 0
                && unsafe { libc::setsid() } > 0
                && crate::sys::tty::set_controlling_terminal(slave).is_ok();
            ctty && detach() == Ok(Detached::SessionLeader)
                && in_child(|| {
                    let before = std::fs::File::open("/dev/tty").is_ok();
                    let detached = detach() == Ok(Detached::Detached);
                    let after = std::fs::File::open("/dev/tty").map_err(|e| e.raw_os_error());
                    before
                        && detached
                        && after.err() == Some(Some(libc::ENXIO))
                        && detach() == Ok(Detached::NoTerminal)
                })
        }));
    }
}
