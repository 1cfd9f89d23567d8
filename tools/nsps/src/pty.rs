//! `nsps exec -t`: COMMAND on a terminal of the container's own, like `docker exec -it`.
//!
//! ```text
//! nsps (host side)    stays in the caller's namespaces: receives the pty master, proxies
//!                     the caller's terminal to it (common::pty::Proxy), returns the status
//!   nsps (joiner)     joins the chain as a plain `nsps exec` does (enter.rs); once it has the
//!                     container's root and credentials, opens /dev/pts/ptmx there, sends the
//!                     master back by SCM_RIGHTS, waits until the window size is set, makes the
//!                     slave its stdio: nothing of the caller's terminal stays in the container
//!     COMMAND         leads a new session whose controlling terminal is the slave
//! ```
//!
//! The pty is opened with COMMAND's credentials, so the slave belongs to COMMAND's user, as a
//! login's terminal does.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd};

use common::channel::{self, Channel};
use common::cli::Status;
use common::pty::{self, Proxy};
use common::signals::{self, SignalFd};
use common::{debug, Fatal};
use nix::unistd::{fork, ForkResult, Pid};

/// Runs COMMAND in the chain on a pty of the container's; `input`: copy stdin to it (`-i`).
pub fn exec(name: &str, command: Vec<OsString>, input: bool) -> Result<Status, Fatal> {
    // Before the fork: the joiner must run from the sealed copy too, socket in hand.
    crate::seal::reexec()?;
    let (host, container) =
        channel::pair().map_err(|e| Fatal::from(e).context("unable to create a channel"))?;
    // Blocked before the fork, so that none is lost before the proxy reads them.
    let signals = signals::take_over()?;
    // SAFETY: single-threaded; both sides go on with ordinary code.
    match unsafe { fork() }.map_err(|e| Fatal::from(e).context("unable to fork"))? {
        ForkResult::Child => {
            drop(host);
            signals.give_back()?;
            crate::enter::exec(name, command, Some(container))
        }
        ForkResult::Parent { child } => {
            drop(container);
            host_side(child, &host, &signals.signalfd, input)
        }
    }
}

/// Receives the master and proxies it until the joiner (and so COMMAND) has ended.
fn host_side(
    joiner: Pid,
    socket: &Channel,
    signalfd: &SignalFd,
    input: bool,
) -> Result<Status, Fatal> {
    let master = match pty::recv_master(socket) {
        Ok(Some(master)) => master,
        // The joiner failed before it made the pty: it said why on stderr; its status.
        Ok(None) => return Ok(wait(joiner)),
        Err(e) => {
            let _ = nix::sys::signal::kill(joiner, nix::sys::signal::Signal::SIGKILL);
            wait(joiner);
            return Err(Fatal::from(e).context("unable to receive the container's terminal"));
        }
    };
    debug::note("received the pty master from the container");
    // An error here drops the socket: the joiner, waiting for READY, gives up.
    let proxy = Proxy::new(master, input)
        .map_err(|e| Fatal::from(e).context("unable to set up the terminal"))?;
    pty::send_ready(socket)
        .map_err(|e| Fatal::from(e).context("unable to start the container's terminal"))?;
    Ok(proxy.run(joiner, joiner, signalfd))
}

fn wait(child: Pid) -> Status {
    match nix::sys::wait::waitpid(child, None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => code as Status,
        Ok(nix::sys::wait::WaitStatus::Signaled(_, signal, _)) => 128 + signal as Status,
        _ => common::exit::FAILURE,
    }
}

/// In the joiner, with the container's root and credentials: makes the pty, hands its master
/// to the host side, and once that side is ready makes the slave this process's stdio.
pub fn container_side(socket: Channel) -> Result<(), Fatal> {
    let made = debug::step("open /dev/pts/ptmx in the container", pty::open)
        .map_err(|e| Fatal::from(e).context("unable to open a pty in the container"))?;
    pty::send_master(&socket, made.master.as_fd())
        .map_err(|e| Fatal::from(e).context("unable to hand the pty to nsps"))?;
    drop(made.master);
    pty::wait_ready(&socket)
        .map_err(|e| Fatal::from(e).context("unable to hand the pty to nsps"))?;
    drop(socket);
    for fd in 0..3 {
        nix::unistd::dup2(made.slave.as_raw_fd(), fd)
            .map_err(|e| Fatal::from(e).context("unable to use the pty"))?;
    }
    Ok(())
}
