//! Controlling-terminal ioctls.

use std::os::fd::RawFd;

use super::Errno;

/// `ioctl(fd, TIOCNOTTY)`: this process gives up its controlling terminal, which `fd` must
/// be (`ENOTTY` for another terminal, `EBADF` for a closed number).
pub fn give_up_controlling_terminal(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: TIOCNOTTY takes no argument; a closed descriptor number fails with EBADF.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCNOTTY) }).map(drop)
}

/// `ioctl(fd, TIOCSCTTY, 0)`: the terminal `fd` becomes this session leader's controlling
/// terminal (never stolen from another session: the argument is 0).
pub fn set_controlling_terminal(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an int argument, 0 here.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(drop)
}
