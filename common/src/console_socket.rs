//! runc's `--console-socket` protocol, which podman's conmon and containerd's shim receive:
//! the runtime connects to the caller's unix socket and sends one message whose data is the
//! pty's name and whose one SCM_RIGHTS descriptor is its master. Not one of our helper
//! conversations (those go through [`crate::channel`]): the other end is the caller's.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

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

/// A connected pair standing in for a caller's console socket: the first end receives, the
/// second goes to the process that sends the master.
pub fn pair() -> io::Result<(std::os::unix::net::UnixStream, OwnedFd)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    Ok((ours, OwnedFd::from(theirs)))
}

/// Receives what [`send_master`] sent: the master (checked to be a pty master), or `None` when
/// the sender ended without sending one (a runtime that proxies the terminal itself, as
/// runc's foreground `exec -t`, is its own console socket's receiver).
pub fn recv_master(socket: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut name = [0u8; 256];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut fds = Vec::new();
    let bytes = loop {
        let mut iov = [io::IoSliceMut::new(&mut name)];
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                for cmsg in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(got) = cmsg {
                        fds.extend(got);
                    }
                }
                break msg.bytes;
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    // SAFETY: SCM_RIGHTS just gave this process these descriptors; nobody else owns them.
    let fds: Vec<OwnedFd> = fds
        .into_iter()
        .map(|fd| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
        .collect();
    if bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    crate::pty::check_master(fds).map(Some)
}
