//! `exec -t` and `run` with process.terminal, without `--console-socket`, not detached: as
//! runc, nsoci handles the terminal itself. mntns makes the pty in the container's devpts (its `--console-fd`, runc's
//! console-socket protocol) and sends the master over a socket pair nsoci made; nsoci proxies
//! the caller's terminal to it with the proxy `nsps exec -t` uses (common::pty::Proxy) until
//! the process ends, and returns its status.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use common::cli::Status;
use common::pty::Proxy;
use common::signals::{self, SignalFd};
use common::Fatal;

use crate::forward::Held;
use nix::unistd::Pid;

/// A socket pair: ours to receive the master on, the other end for mntns's `--console-fd`.
pub fn socket_pair() -> Result<(UnixStream, OwnedFd), Fatal> {
    common::console_socket::pair()
        .map_err(|e| Fatal::from(e).context("unable to create a socket pair"))
}

/// The console of a new container: the end of nsoci's own socket pair when `run` proxies
/// the terminal itself, else the console socket by runc's rules (exec::console: `create`
/// with a terminal and no socket is refused in runc's words).
pub fn console(terminal: bool, req: &crate::create::Request) -> Result<Option<OwnedFd>, Fatal> {
    match &req.own_terminal {
        Some(end) if terminal && req.console_socket.is_none() => {
            end.try_clone().map(Some).map_err(|e| {
                Fatal::from(anyhow::Error::from(e)).context("unable to pass the terminal's socket")
            })
        }
        _ => crate::exec::console(terminal, req.console_socket.as_deref()),
    }
}

/// Receives the process's pty master on `socket`, gives it the caller's window size, runs
/// `start` (the process waits at its gate until then, so that the payload's first look at
/// its terminal sees the right size), and proxies the caller's terminal to it until
/// `process` (this process's child or an orphan given to it) ends; its status. The signals
/// `held` noted before the payload ran (and those that came while it was started) are
/// passed on as `forward::wait` passes them: to a pid namespace's init once it catches them,
/// not at once (the kernel would drop them); later ones at once, by the proxy.
pub fn proxy(
    socket: UnixStream,
    process: i32,
    held: &Held,
    start: impl FnOnce() -> Result<(), Fatal>,
) -> Result<Status, Fatal> {
    let before = held.pend();
    let status = signals::take_over().and_then(|taken| {
        let status = run_proxy(socket, Pid::from_raw(process), &taken.signalfd, start);
        taken.give_back().and(status)
    });
    crate::forward::unblock(&before);
    status
}

/// The proxy with the signals taken over (blocked, read from `signalfd`).
fn run_proxy(
    socket: UnixStream,
    process: Pid,
    signalfd: &SignalFd,
    start: impl FnOnce() -> Result<(), Fatal>,
) -> Result<Status, Fatal> {
    let master = match common::console_socket::recv_master(socket.as_fd()) {
        Ok(Some(master)) => master,
        // mntns failed before it made the pty (it said why): the process's status.
        Ok(None) => return Ok(signals::forward_until_exit(process, process, signalfd)),
        Err(e) => {
            // SAFETY: kill(2) of our own child, not yet reaped.
            unsafe { libc::kill(process.as_raw(), libc::SIGKILL) };
            let _ = crate::pid1::wait(process.as_raw());
            return Err(Fatal::from(e).context("unable to receive the container's terminal"));
        }
    };
    let proxy = Proxy::new(master, true)
        .map_err(|e| Fatal::from(e).context("unable to set up the terminal"))?;
    start()?;
    let early = crate::forward::later(process.as_raw(), crate::forward::take_early());
    // SAFETY: raise(3) of a signal that is blocked and read from the signalfd: a process
    // that has already ended is seen at the proxy's first look.
    unsafe { libc::raise(libc::SIGCHLD) };
    let status = proxy.run(process, process, signalfd);
    early.stop();
    Ok(status)
}
