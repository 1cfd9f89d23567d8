//! A terminal that belongs to the container: `nsps exec -t` and `mntns --tty`.
//!
//! The pty is made inside the container, by a process that has joined its mount namespace:
//! `/dev/pts/ptmx` is then the container's devpts instance, so `tty` there names a
//! `/dev/pts/N` of the container and the host's devpts gains nothing. COMMAND gets the slave as
//! stdin, stdout, stderr and controlling terminal of a session it leads ([`take_as_terminal`]):
//! Ctrl-C, Ctrl-Z and job control act inside the container only, and nothing the container
//! holds refers to the caller's terminal (a TIOCSTI there types into the container's pty).
//!
//! The master goes back to a process on the host side by SCM_RIGHTS over a [`Channel`]
//! ([`send_master`], [`recv_master`]), which proxies it to the caller's terminal ([`Proxy`]): raw mode on the
//! caller's terminal while it runs (restored on every way out, [`RawMode`], and by a guard
//! process when the proxy is killed, [`crate::tty_guard`]), the window size
//! copied at the start and on every SIGWINCH, bytes both ways with poll(2), the signals sent to
//! it passed on, until the process it waits for ends.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::signals::SignalFd;

/// A new pty: the master to hand out, the slave for COMMAND.
#[derive(Debug)]
pub struct Pty {
    /// The master side (close-on-exec).
    pub master: OwnedFd,
    /// The slave side (close-on-exec, not yet anyone's controlling terminal).
    pub slave: OwnedFd,
}

/// Opens a pty in the devpts instance this process sees at `/dev/pts` (the container's, once
/// its mount namespace and root are joined); `/dev/ptmx` when `/dev/pts/ptmx` is missing.
pub fn open() -> io::Result<Pty> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    let mut master = open_path(c"/dev/pts/ptmx", flags);
    if master
        .as_ref()
        .is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT))
    {
        master = open_path(c"/dev/ptmx", flags);
    }
    let master = master?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads the int it is given.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })?;
    // The slave through the master (Linux 4.13): no path lookup in a tree the container owns.
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd.
    let slave = check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) })?;
    // SAFETY: a fresh descriptor nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    Ok(Pty { master, slave })
}

fn open_path(path: &std::ffi::CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated path; the result is a new fd owned below.
    let fd = check(unsafe { libc::open(path.as_ptr(), flags) })?;
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Whether `fd` is the master of a pty (the host side checks what it was handed: it only
/// ever reads, writes and resizes a pty master, never something else the container chose).
pub fn is_master(fd: BorrowedFd<'_>) -> bool {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int; it succeeds on a pty master only.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGPTN, &mut n) == 0 }
}

/// What crosses the channel between the side that makes the pty and the side that proxies it
/// (pidns's monitor gets the master as an `after` request instead, crate::after).
#[derive(Debug, Serialize, Deserialize)]
pub enum TtyMessage {
    /// The pty master rides along.
    Master,
    /// The proxying side has set the window size: the slave may be used.
    Ready,
}

/// Sends `master` over `channel`.
pub fn send_master(channel: &Channel, master: BorrowedFd<'_>) -> io::Result<()> {
    channel.send_with_fds(&TtyMessage::Master, &[master])
}

/// The one descriptor that came with a master message, checked to be a pty master.
pub fn check_master(fds: Vec<OwnedFd>) -> io::Result<OwnedFd> {
    let mut fds = fds.into_iter();
    match (fds.next(), fds.next()) {
        (Some(fd), None) if is_master(fd.as_fd()) => Ok(fd),
        _ => Err(io::Error::other(
            "the descriptor handed over is not one pty master",
        )),
    }
}

/// The number N of the pty whose master is `master` (its slave is `/dev/pts/N` of the devpts
/// it was opened in).
pub fn number(master: BorrowedFd<'_>) -> io::Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) })?;
    Ok(n)
}

/// Receives a master sent by [`send_master`]; `None` when the other side ended without one.
pub fn recv_master(channel: &Channel) -> io::Result<Option<OwnedFd>> {
    match channel.recv_with_fds::<TtyMessage>()? {
        None => Ok(None),
        Some((TtyMessage::Master, fds)) => check_master(fds).map(Some),
        Some((TtyMessage::Ready, _)) => Err(io::Error::other("a pty master was expected")),
    }
}

/// Waits for [`TtyMessage::Ready`] on `channel`; an error if anything else came.
pub fn wait_ready(channel: &Channel) -> io::Result<()> {
    match channel.recv::<TtyMessage>()? {
        Some(TtyMessage::Ready) => Ok(()),
        _ => Err(io::Error::other("the host side did not take the terminal")),
    }
}

/// Tells the side that sent the master that the terminal is ready.
pub fn send_ready(channel: &Channel) -> io::Result<()> {
    channel.send(&TtyMessage::Ready)
}

/// In the process about to exec COMMAND: a new session, `slave` as its controlling terminal
/// and as fds 0, 1 and 2. Fails with EPERM in a process group leader (setsid).
pub fn take_as_terminal(slave: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setsid has no arguments; it fails in a process group leader.
    check(unsafe { libc::setsid() })?;
    // SAFETY: TIOCSCTTY with 0 ("no steal"): the slave is nobody's controlling terminal.
    check(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) })?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors (dup2 clears close-on-exec).
        check(unsafe { libc::dup2(slave.as_raw_fd(), fd) })?;
    }
    Ok(())
}

/// The caller's terminal in raw mode; its settings are restored when this is dropped, and by a
/// guard process ([`crate::tty_guard`]) when this process dies without dropping it.
#[derive(Debug)]
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
    /// Dropped after the restore (fields drop after `Drop::drop`): then it exits quietly.
    _guard: Option<crate::tty_guard::Guard>,
}

impl RawMode {
    /// Puts the terminal at `fd` in raw mode (None when `fd` is no terminal).
    pub fn enter(fd: BorrowedFd<'_>) -> io::Result<Option<RawMode>> {
        // SAFETY: termios is plain data; tcgetattr fills it.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr writes into the local termios.
        if unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut saved) } != 0 {
            return Ok(None);
        }
        // Before the change: no moment where this process could die leaving it unguarded.
        let guard = crate::tty_guard::spawn(fd.as_raw_fd(), &saved)
            .map_err(|e| crate::debug::note(format_args!("no terminal guard: {e}")))
            .ok();
        let mut raw = saved;
        // SAFETY: cfmakeraw edits the local copy.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: tcsetattr reads the local termios.
        check(unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSADRAIN, &raw) })?;
        Ok(Some(RawMode {
            fd: fd.as_raw_fd(),
            saved,
            _guard: guard,
        }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read at the start on the same terminal fd (stdin,
        // open for the life of the process).
        unsafe { libc::tcsetattr(self.fd, libc::TCSADRAIN, &self.saved) };
    }
}

/// Copies the window size of the terminal at `from` to the pty master `to` (best effort: no
/// terminal, nothing to copy). The kernel sends SIGWINCH to the pty's foreground group.
pub fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    // SAFETY: winsize is plain data.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills the local winsize; TIOCSWINSZ reads it.
    unsafe {
        if libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// The caller's terminal, if any of stdin, stdout, stderr is one (where the size comes from).
fn host_terminal() -> Option<BorrowedFd<'static>> {
    // SAFETY: the standard descriptors stay open for the life of the process.
    (0..3)
        .find(|fd| unsafe { libc::isatty(*fd) } == 1)
        .map(|fd| unsafe { BorrowedFd::borrow_raw(fd) })
}

/// The host side of a container's pty: copies bytes between the caller's stdio and the master.
#[derive(Debug)]
pub struct Proxy {
    master: OwnedFd,
    /// Whether stdin is copied in (`-i`); without, COMMAND reads nothing from the caller.
    input: bool,
    raw: Option<RawMode>,
}

impl Proxy {
    /// Takes over `master`: window size from the caller's terminal, and raw mode on it when
    /// stdin is copied in and is a terminal (keys go to the container's pty as typed).
    pub fn new(master: OwnedFd, input: bool) -> io::Result<Proxy> {
        if let Some(host) = host_terminal() {
            copy_window_size(host, master.as_fd());
        }
        let stdin = io::stdin();
        let raw = if input {
            RawMode::enter(stdin.as_fd())?
        } else {
            None
        };
        // SAFETY: O_NONBLOCK on the master's own file description.
        unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        Ok(Proxy { master, input, raw })
    }

    /// Copies until `child` ends and returns its status, shell-encoded (n, or 128+s). Reads
    /// `signalfd` (which must take SIGCHLD and SIGWINCH): a window change is copied to the
    /// pty, SIGCHLD checks `child`, every other signal is passed on to `target` (the caller's
    /// terminal no longer reaches COMMAND's process group). Restores the terminal before
    /// returning.
    pub fn run(mut self, child: Pid, target: Pid, signalfd: &SignalFd) -> u8 {
        let mut input_open = self.input;
        let mut master_open = true;
        let mut status = None;
        while status.is_none() {
            let mut fds = [
                poll_fd(signalfd.raw(), true),
                poll_fd(self.master.as_raw_fd(), master_open),
                poll_fd(0, input_open),
            ];
            // SAFETY: `fds` is a local array of pollfd; -1 waits without a timeout.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            if fds[0].revents != 0 {
                status = self.on_signal(child, target, signalfd);
            }
            if fds[1].revents != 0 {
                master_open = copy(self.master.as_raw_fd(), 1) != Copied::End;
            }
            if fds[2].revents != 0 && copy(0, self.master.as_raw_fd()) == Copied::End {
                input_open = false;
                // End of input: an end-of-file to a reader in canonical mode (^D), as docker.
                // SAFETY: writes one byte from a static buffer.
                unsafe { libc::write(self.master.as_raw_fd(), b"\x04".as_ptr().cast(), 1) };
            }
        }
        // What COMMAND wrote before it ended is still in the pty.
        while master_open && copy(self.master.as_raw_fd(), 1) == Copied::Data {}
        drop(self.raw.take());
        status.unwrap_or_else(|| wait_for(child))
    }

    fn on_signal(&self, child: Pid, target: Pid, signalfd: &SignalFd) -> Option<u8> {
        let Ok(info) = signalfd.read() else {
            return Some(wait_for(child));
        };
        match info.ssi_signo as libc::c_int {
            libc::SIGCHLD => try_wait(child),
            libc::SIGWINCH => {
                if let Some(host) = host_terminal() {
                    copy_window_size(host, self.master.as_fd());
                }
                None
            }
            // A SIGPIPE of our own write (the caller's output is gone) is not the user's.
            _ if info.ssi_pid == std::process::id() => None,
            signal => {
                // SAFETY: kill takes a pid (or -pgid) and a signal number.
                unsafe { libc::kill(target.as_raw(), signal) };
                None
            }
        }
    }
}

fn poll_fd(fd: RawFd, wanted: bool) -> libc::pollfd {
    libc::pollfd {
        fd: if wanted { fd } else { -1 },
        events: libc::POLLIN,
        revents: 0,
    }
}

#[derive(PartialEq)]
enum Copied {
    Data,
    /// Nothing to read now (a non-blocking master, or a spurious wake-up).
    Again,
    /// End of file, or an error (EIO on the master: every slave fd is closed).
    End,
}

/// Copies what `from` has now to `to` (all of it, retrying short writes).
fn copy(from: RawFd, to: RawFd) -> Copied {
    let mut buf = [0u8; 8192];
    // SAFETY: reads into a local buffer.
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let kind = io::Error::last_os_error().kind();
        if matches!(kind, io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) {
            return Copied::Again;
        }
        return Copied::End;
    }
    if n == 0 {
        return Copied::End;
    }
    let mut done = 0;
    while done < n as usize {
        // SAFETY: writes from the local buffer's filled part.
        let w = unsafe { libc::write(to, buf[done..].as_ptr().cast(), n as usize - done) };
        if w < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The reader of our output is gone: drop the rest, so COMMAND is not blocked.
            break;
        }
        done += w as usize;
    }
    Copied::Data
}

/// `child`'s status if it has ended (125 when it cannot be waited for).
fn try_wait(child: Pid) -> Option<u8> {
    let mut status = 0;
    // SAFETY: waits for our child without blocking; `status` is a local.
    let pid = unsafe { libc::waitpid(child.as_raw(), &mut status, libc::WNOHANG) };
    if pid == child.as_raw() {
        Some(crate::exit::from_wait_status(status))
    } else if pid < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
        Some(crate::exit::FAILURE)
    } else {
        None
    }
}

/// Waits for `child` to end (the signalfd failed, which should not happen).
fn wait_for(child: Pid) -> u8 {
    loop {
        let mut status = 0;
        // SAFETY: waits for our child; `status` is a local.
        let pid = unsafe { libc::waitpid(child.as_raw(), &mut status, 0) };
        if pid == child.as_raw() {
            return crate::exit::from_wait_status(status);
        }
        if pid < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return crate::exit::FAILURE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pty_is_made_and_its_master_passed_over_a_channel() {
        let pty = open().unwrap();
        assert!(is_master(pty.master.as_fd()));
        assert!(!is_master(pty.slave.as_fd()));
        let (a, b) = crate::channel::pair().unwrap();
        send_master(&a, pty.master.as_fd()).unwrap();
        let got = recv_master(&b).unwrap().unwrap();
        // The same pty: what the slave writes comes out of the received master.
        // SAFETY: writes from a static buffer to our slave; reads into a local buffer.
        let n = unsafe {
            libc::write(pty.slave.as_raw_fd(), b"hi".as_ptr().cast(), 2);
            let mut buf = [0u8; 8];
            libc::read(got.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
        };
        assert_eq!(n, 2);
        // Something that is not a master is refused.
        send_master(&a, pty.slave.as_fd()).unwrap();
        assert!(recv_master(&b).is_err());
        send_ready(&b).unwrap();
        wait_ready(&a).unwrap();
        drop(a);
        assert!(recv_master(&b).unwrap().is_none());
    }
}
