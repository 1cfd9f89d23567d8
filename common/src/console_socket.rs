//! runc's `--console-socket` protocol, which podman's conmon and containerd's shim receive:
//! the runtime connects to the caller's unix socket and sends one message whose data is the
//! pty's name and whose one SCM_RIGHTS descriptor is its master. Not one of our helper
//! conversations (those go through [`crate::channel`]): the other end is the caller's.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Sends `master`, the pty named `name`, on `socket` (connected to the caller's console
/// socket).
pub fn send_master(socket: BorrowedFd<'_>, master: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let raw = [master.as_raw_fd()];
    let control = [ControlMessage::ScmRights(&raw)];
    let iov = [io::IoSlice::new(name.as_bytes())];
    loop {
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &iov,
            &control,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
