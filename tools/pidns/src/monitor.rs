//! The monitor: the process that stays in the caller's PID namespace. It forwards the signals
//! sent to it to the container, waits for the container's first process and exits with its
//! status (n, or 128+s when it was killed by signal s).
//!
//! When `mntns --tty` sends it the pty it made in the container (over the socket for work
//! after the container, common::after), the monitor is the process that proxies the caller's
//! terminal to it (common::pty): it stays on the host side, outside the container's pid
//! namespace where no process of the container can reach it, and it ends with the container.

use std::io;
use std::os::fd::AsRawFd;

use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use common::after::{Listener, Message};
use common::channel::{Channel, RecvError};
use common::signals::{self, SignalFd};

/// What the monitor tells the container's first process.
#[derive(Debug, Serialize, Deserialize)]
pub enum MonitorWord {
    /// The container is registered (and pinned, and reported): go on.
    Go,
}

/// What the container's first process reports back (the exec closing its end says the rest).
#[derive(Debug, Serialize, Deserialize)]
pub enum ChildReport {
    /// COMMAND was not executed; the child exits with `code`.
    NotExecuted {
        /// The exit status it ends with.
        code: u8,
    },
}

/// Forwards signals to `target` until `child` ends; returns its status, shell-encoded. With a
/// listener, a pty master it receives meanwhile turns the monitor into its proxy.
pub fn watch(child: Pid, target: Pid, signalfd: &SignalFd, after: Option<&mut Listener>) -> u8 {
    let Some(after) = after else {
        return signals::forward_until_exit(child, target, signalfd);
    };
    let me = std::process::id();
    loop {
        let mut fds = [
            libc::pollfd {
                fd: signalfd.raw(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: after.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: a local array of pollfd; -1 waits without a timeout.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            continue;
        }
        if fds[1].revents != 0 {
            match after.read_message() {
                Message::Terminal(master) => match common::pty::Proxy::new(master, true) {
                    Ok(proxy) => {
                        if after.terminal_ready().is_ok() {
                            return proxy.run(child, target, signalfd);
                        }
                    }
                    Err(e) => common::report::warning(format_args!(
                        "unable to proxy the container's terminal: {e}"
                    )),
                },
                Message::Other | Message::Nothing | Message::Adopt(_) => {}
                // Nothing more will come: wait as without a listener.
                Message::Closed => return signals::forward_until_exit(child, target, signalfd),
            }
        }
        if fds[0].revents != 0 {
            if let Some(status) = one_signal(child, target, signalfd, me) {
                return status;
            }
        }
    }
}

/// Handles one signal as `forward_until_exit` does; the status once `child` has ended.
fn one_signal(child: Pid, target: Pid, signalfd: &SignalFd, me: u32) -> Option<u8> {
    let Ok(info) = signalfd.read() else {
        return Some(signals::forward_until_exit(child, target, signalfd));
    };
    if info.ssi_signo == libc::SIGCHLD as u32 {
        let mut status = 0;
        // SAFETY: waits for our child without blocking; `status` is a local.
        let pid = unsafe { libc::waitpid(child.as_raw(), &mut status, libc::WNOHANG) };
        return (pid == child.as_raw()).then(|| common::exit::from_wait_status(status));
    }
    // A SIGPIPE of our own write (to a closed --status-fd) is not the user's.
    if signals::sent_by_a_process(&info) && info.ssi_pid != me {
        // SAFETY: kill takes a pid (or -pgid) and a signal number.
        unsafe { libc::kill(target.as_raw(), info.ssi_signo as libc::c_int) };
    }
    None
}

/// Whether COMMAND was executed, read from the channel once every process of the container
/// is gone: a report means a failure before the exec; the end without one means every holder
/// of the (close-on-exec) child end executed or exited.
pub fn executed(channel: &Channel) -> bool {
    if channel.set_nonblocking().is_err() {
        return false;
    }
    match channel.recv::<ChildReport>() {
        Ok(None) => true,
        Ok(Some(ChildReport::NotExecuted { .. })) => false,
        Err(RecvError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(_) => false,
    }
}

/// Gives the terminal back to the caller's process group (after `--pgroup` moved COMMAND to
/// the foreground).
pub fn give_back_terminal(pgrp: Pid) {
    signals::set_foreground(pgrp);
}
