//! The monitor: the process that stays in the caller's PID namespace. It forwards the signals
//! sent to it to the container, waits for the container's first process and exits with its
//! status (n, or 128+s when it was killed by signal s).

use std::io;

use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

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

/// Forwards signals to `target` until `child` ends; returns its status, shell-encoded.
pub fn watch(child: Pid, target: Pid, signalfd: &SignalFd) -> u8 {
    signals::forward_until_exit(child, target, signalfd)
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
