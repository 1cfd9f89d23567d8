//! The monitor: the process that stays in the caller's PID namespace. It forwards the signals
//! sent to it to the container, waits for the container's first process and exits with its
//! status (n, or 128+s when it was killed by signal s).

use std::os::fd::{AsRawFd, OwnedFd};

use common::exit;
use nix::unistd::Pid;

use crate::signals::{self, SignalFd};

/// Forwards signals to `target` until `child` ends; returns its status, shell-encoded.
///
/// Only signals sent by a process (kill, sigqueue) are forwarded: those a terminal generates
/// (Ctrl-C, hangup) reach the container already, as it shares the caller's process group.
/// The loop allocates nothing.
pub fn watch(child: Pid, target: Pid, signalfd: &SignalFd) -> u8 {
    let me = std::process::id();
    loop {
        match signalfd.read() {
            Ok(info) if info.ssi_signo == libc::SIGCHLD as u32 => {
                if let Some(status) = try_wait(child) {
                    return status;
                }
            }
            Ok(info) => {
                // A SIGPIPE of our own write to a closed --status-fd is not the user's.
                if signals::sent_by_a_process(&info) && info.ssi_pid != me {
                    // SAFETY: kill takes a pid (or -pgid) and a signal number.
                    unsafe {
                        libc::kill(target.as_raw(), info.ssi_signo as libc::c_int);
                    }
                }
            }
            Err(_) => return wait_blocking(child),
        }
    }
}

/// The child's status if it has ended.
fn try_wait(child: Pid) -> Option<u8> {
    let mut status = 0;
    // SAFETY: waits for our child without blocking; `status` is a local.
    let pid = unsafe { libc::waitpid(child.as_raw(), &mut status, libc::WNOHANG) };
    if pid == child.as_raw() {
        return Some(exit::from_wait_status(status));
    }
    if pid < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
        return Some(exit::FAILURE);
    }
    None
}

/// Waits without forwarding (the signalfd failed, which should not happen).
fn wait_blocking(child: Pid) -> u8 {
    loop {
        let mut status = 0;
        // SAFETY: waits for our child; `status` is a local.
        let pid = unsafe { libc::waitpid(child.as_raw(), &mut status, 0) };
        if pid == child.as_raw() {
            return exit::from_wait_status(status);
        }
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return exit::FAILURE;
        }
    }
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
