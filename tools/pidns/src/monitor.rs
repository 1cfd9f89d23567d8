//! The monitor: the process that stays in the caller's PID namespace. It forwards the signals
//! sent to it to the container, waits for the container's first process and exits with its
//! status (n, or 128+s when it was killed by signal s).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::unistd::Pid;

use common::signals::{self, SignalFd};

/// Forwards signals to `target` until `child` ends; returns its status, shell-encoded.
pub fn watch(child: Pid, target: Pid, signalfd: &SignalFd) -> u8 {
    signals::forward_until_exit(child, target, signalfd)
}

/// Whether COMMAND was executed, read from the exec report once every process of the
/// container is gone: a byte means a failure before the exec; EOF without one means every
/// holder of the (close-on-exec) write end executed or exited.
pub fn executed(report: &OwnedFd) -> bool {
    let fd = report.as_raw_fd();
    // SAFETY: F_SETFL on our own pipe; a reader that cannot block.
    unsafe {
        libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
    }
    let mut byte = [0u8; 1];
    // SAFETY: reads at most one byte into a local buffer.
    let n = unsafe { libc::read(fd, byte.as_mut_ptr().cast(), 1) };
    n == 0
}

/// Gives the terminal back to the caller's process group (after `--pgroup` moved COMMAND to
/// the foreground).
pub fn give_back_terminal(pgrp: Pid) {
    signals::set_foreground(pgrp);
}
