//! The one channel between a link and the helpers it forks (DESIGN.md §4 "one channel").
//!
//! Every parent↔helper conversation of the chain (the pin, userns's privileged helper, the
//! mntns layer cleaner, the netns watcher, pidns's after-socket) speaks the same way: typed
//! messages, one per datagram of a `SOCK_SEQPACKET` socket pair (so a message never arrives
//! in pieces and a closed peer reads as end of conversation), JSON-encoded with serde, with
//! file descriptors riding along as `SCM_RIGHTS`. A helper that fails answers with a
//! [`Failure`]: the errno, if any, and its own words, so the caller branches on the errno
//! and never on message text.
//!
//! Both ends are close-on-exec: a channel never leaks into COMMAND unless a link hands it
//! down on purpose ([`Channel::into_inheritable`]).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The largest message (JSON text) a channel carries.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The most descriptors one message carries.
pub const MAX_FDS: usize = 16;

/// One end of a channel.
#[derive(Debug)]
pub struct Channel {
    socket: OwnedFd,
}

/// Why a message could not be received.
#[derive(Debug)]
pub enum RecvError {
    /// The socket failed.
    Io(io::Error),
    /// The peer sent something that is not the message expected (a bug or a hostile peer).
    Malformed(String),
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvError::Io(e) => write!(f, "{e}"),
            RecvError::Malformed(why) => write!(f, "malformed message: {why}"),
        }
    }
}

impl std::error::Error for RecvError {}

impl From<RecvError> for io::Error {
    fn from(e: RecvError) -> io::Error {
        match e {
            RecvError::Io(e) => e,
            RecvError::Malformed(why) => io::Error::new(io::ErrorKind::InvalidData, why),
        }
    }
}

/// A helper's failure as it crosses the channel: the errno (when there is one) to branch on,
/// and the helper's own description for the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The errno, if the failure was a system call's.
    pub errno: Option<i32>,
    /// What failed, in the helper's words.
    pub message: String,
}

impl Failure {
    /// A failure of a system call: its errno is kept.
    pub fn from_io(error: &io::Error, what: impl Into<String>) -> Failure {
        Failure {
            errno: error.raw_os_error(),
            message: format!("{}: {error}", what.into()),
        }
    }

    /// A failure that is not a system call's.
    pub fn other(message: impl Into<String>) -> Failure {
        Failure {
            errno: None,
            message: message.into(),
        }
    }

    /// The errno as nix names it (EPERM, ...), if any.
    pub fn errno(&self) -> Option<Errno> {
        self.errno.map(Errno::from_raw)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl From<Failure> for io::Error {
    fn from(f: Failure) -> io::Error {
        match f.errno {
            Some(errno) => io::Error::new(
                io::Error::from_raw_os_error(errno).kind(),
                f.message.clone(),
            ),
            None => io::Error::other(f.message),
        }
    }
}

/// Makes a connected pair of channel ends (close-on-exec).
pub fn pair() -> io::Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel { socket: a }, Channel { socket: b }))
}

impl Channel {
    /// Adopts a socket (from [`Channel::into_inheritable`] in an earlier link), checking that
    /// it is one; it becomes close-on-exec again.
    pub fn adopt(fd: OwnedFd) -> io::Result<Channel> {
        let stat = nix::sys::stat::fstat(fd.as_raw_fd())?;
        if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a socket"));
        }
        set_cloexec(fd.as_raw_fd(), true)?;
        Ok(Channel { socket: fd })
    }

    /// Gives up the end as a descriptor (still close-on-exec).
    pub fn into_fd(self) -> OwnedFd {
        self.socket
    }

    /// Gives up the end as a raw fd that survives exec, for a hand-down to a later link.
    pub fn into_inheritable(self) -> io::Result<RawFd> {
        set_cloexec(self.socket.as_raw_fd(), false)?;
        Ok(self.socket.into_raw_fd())
    }

    /// Makes receiving return `WouldBlock` instead of waiting (to drain what is queued).
    pub fn set_nonblocking(&self) -> io::Result<()> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags = OFlag::from_bits_truncate(fcntl(self.socket.as_raw_fd(), FcntlArg::F_GETFL)?);
        fcntl(
            self.socket.as_raw_fd(),
            FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK),
        )?;
        Ok(())
    }

    /// Sends one message.
    pub fn send<T: Serialize>(&self, message: &T) -> io::Result<()> {
        self.send_with_fds(message, &[])
    }

    /// Sends one message with descriptors attached.
    pub fn send_with_fds<T: Serialize>(
        &self,
        message: &T,
        fds: &[BorrowedFd<'_>],
    ) -> io::Result<()> {
        let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
        if bytes.len() > MAX_MESSAGE || fds.len() > MAX_FDS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "message too large for a channel",
            ));
        }
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let control = [ControlMessage::ScmRights(&raw)];
        let control: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &control };
        let iov = [IoSlice::new(&bytes)];
        loop {
            match sendmsg::<()>(
                self.socket.as_raw_fd(),
                &iov,
                control,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives one message; `None` when the peer has closed its end (or exited).
    pub fn recv<T: DeserializeOwned>(&self) -> Result<Option<T>, RecvError> {
        match self.recv_with_fds()? {
            None => Ok(None),
            Some((message, fds)) if fds.is_empty() => Ok(Some(message)),
            Some(_) => Err(RecvError::Malformed(
                "descriptors came with a message that takes none".into(),
            )),
        }
    }

    /// Receives one message and the descriptors that came with it (owned by the caller).
    pub fn recv_with_fds<T: DeserializeOwned>(
        &self,
    ) -> Result<Option<(T, Vec<OwnedFd>)>, RecvError> {
        let mut buf = vec![0u8; MAX_MESSAGE + 1];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let (len, fds, truncated) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fds = Vec::new();
                    for cmsg in msg.cmsgs().map_err(|e| RecvError::Io(e.into()))? {
                        if let ControlMessageOwned::ScmRights(received) = cmsg {
                            // SAFETY: the kernel installed these descriptors in this process
                            // for this message (SCM_RIGHTS); nothing else owns them.
                            fds.extend(
                                received
                                    .into_iter()
                                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                            );
                        }
                    }
                    let truncated = msg
                        .flags
                        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
                    break (msg.bytes, fds, truncated);
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(RecvError::Io(e.into())),
            }
        };
        if truncated {
            return Err(RecvError::Malformed("message truncated".into()));
        }
        if len == 0 && fds.is_empty() {
            return Ok(None);
        }
        let message =
            serde_json::from_slice(&buf[..len]).map_err(|e| RecvError::Malformed(e.to_string()))?;
        Ok(Some((message, fds)))
    }

    /// Sends `request` and waits for the reply; a closed peer is an error naming `who`.
    pub fn call<Q: Serialize, R: DeserializeOwned>(&self, request: &Q, who: &str) -> io::Result<R> {
        self.send(request)?;
        match self.recv()? {
            Some(reply) => Ok(reply),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{who} exited without answering"),
            )),
        }
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let flags = if on {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    fcntl(fd, FcntlArg::F_SETFD(flags))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Word {
        Go,
        Path(String),
    }

    #[test]
    fn messages_keep_their_boundaries_and_type() {
        let (a, b) = pair().unwrap();
        a.send(&Word::Go).unwrap();
        a.send(&Word::Path("/x".into())).unwrap();
        assert_eq!(b.recv::<Word>().unwrap(), Some(Word::Go));
        assert_eq!(b.recv::<Word>().unwrap(), Some(Word::Path("/x".into())));
    }

    #[test]
    fn a_closed_peer_reads_as_the_end() {
        let (a, b) = pair().unwrap();
        drop(a);
        assert!(b.recv::<Word>().unwrap().is_none());
    }

    #[test]
    fn descriptors_cross_and_arrive_close_on_exec() {
        let (a, b) = pair().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"payload").unwrap();
        a.send_with_fds(&Word::Go, &[file.as_fd()]).unwrap();
        let (word, fds) = b.recv_with_fds::<Word>().unwrap().unwrap();
        assert_eq!(word, Word::Go);
        assert_eq!(fds.len(), 1);
        let flags = nix::fcntl::fcntl(fds[0].as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        let mut received = std::fs::File::from(fds.into_iter().next().unwrap());
        received.rewind().unwrap();
        let mut text = String::new();
        received.read_to_string(&mut text).unwrap();
        assert_eq!(text, "payload");
    }

    #[test]
    fn a_wrong_message_is_malformed_not_a_panic() {
        let (a, b) = pair().unwrap();
        a.send(&"something else").unwrap();
        assert!(matches!(b.recv::<Word>(), Err(RecvError::Malformed(_))));
    }

    #[test]
    fn unexpected_descriptors_are_refused() {
        let (a, b) = pair().unwrap();
        let file = tempfile::tempfile().unwrap();
        a.send_with_fds(&Word::Go, &[file.as_fd()]).unwrap();
        assert!(matches!(b.recv::<Word>(), Err(RecvError::Malformed(_))));
    }

    #[test]
    fn a_failure_keeps_its_errno() {
        let (a, b) = pair().unwrap();
        let error = io::Error::from_raw_os_error(libc::EPERM);
        a.send(&Err::<(), _>(Failure::from_io(&error, "mount")))
            .unwrap();
        let reply: Result<(), Failure> = b.recv().unwrap().unwrap();
        let failure = reply.unwrap_err();
        assert_eq!(failure.errno(), Some(Errno::EPERM));
        assert!(failure.message.starts_with("mount: "));
    }
}
