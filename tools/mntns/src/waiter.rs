//! `--rm` when no pidns waits outside: the process the caller waits on deletes the layer before
//! it returns, as `docker run --rm` does.
//!
//! mntns forks before it unshares the mount namespace. The child goes on with the setup and
//! execs COMMAND; the parent stays behind, in the host's mount namespace, as the process the
//! caller waits on:
//!
//! ```text
//! mntns (waiter)   waits for the child, forwards the signals a process sends it, deletes the
//!                  layer, exits with the child's status (n, or 128+s for signal s)
//!   mntns -> COMMAND  the setup, then COMMAND; SIGKILLed if the waiter dies (PDEATHSIG)
//! ```
//!
//! The waiter keeps only the signalfd, the layer's lock and stdio: not dumpable (set at
//! mntns's start), no other fd of the caller's or of the setup's, its working directory `/`.
//! Signals a terminal generates (Ctrl-C) reach COMMAND through the process group already and
//! are not forwarded a second time (common::signals). With a pidns before mntns, pidns's
//! monitor deletes the layer instead (common::after), and mntns forks no waiter.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};

use common::signals::{self, SignalFd};
use common::{debug, report, Fatal};
use nix::unistd::{fork, ForkResult, Pid};

use crate::overlay::{self, Layer};

/// Forks the waiter. Returns in the child only (with the waiter's pid, for the entry to tie
/// COMMAND's life to it); the parent waits, deletes the layer and exits.
pub fn fork_waiter(layer: &mut Layer) -> Result<Pid, Fatal> {
    // Blocked before the fork, so that none is lost before the signalfd reads them.
    let signals = signals::take_over()?;
    let lock = layer.take_lock();
    let waiter = Pid::this();
    // SAFETY: mntns is single-threaded until exec, so both sides may run ordinary code.
    match unsafe { fork() }.map_err(|e| Fatal::from(e).context("unable to fork"))? {
        ForkResult::Child => {
            drop(lock);
            signals.give_back()?;
            die_with(waiter)?;
            Ok(waiter)
        }
        ForkResult::Parent { child } => {
            let code = wait(child, &signals.signalfd, lock.as_ref(), layer);
            // SAFETY: _exit ends the waiter without running destructors: the fds it closed
            // by number must not be closed again by their owners.
            unsafe { libc::_exit(i32::from(code)) }
        }
    }
}

/// The waiter's life: forward signals until the child ends, then delete the layer.
fn wait(child: Pid, signalfd: &SignalFd, lock: Option<&File>, layer: &Layer) -> u8 {
    let keep = [signalfd.raw(), lock.map_or(-1, |l| l.as_raw_fd())];
    shed(&keep);
    debug::note(format_args!(
        "waiting for {child} to delete the layer {}",
        layer.dir.display()
    ));
    let code = signals::forward_until_exit(child, child, signalfd);
    let removed = debug::step(
        format_args!("delete the layer {}", layer.dir.display()),
        || overlay::remove(layer),
    );
    if let Err(e) = removed {
        report::warning(format_args!(
            "unable to delete the layer {}: {e}",
            layer.dir.display()
        ));
    }
    code
}

/// Closes every fd but stdio and `keep` (the idmapped trees, the setup's handles: nothing that
/// reaches the host stays open here), and leaves the caller's directory.
pub fn shed(keep: &[RawFd]) {
    common::sys::fs::close_all_above_stdio_but(keep);
    let _ = nix::unistd::chdir("/");
}

/// Ties the child's life to the waiter's (common::signals::die_with).
pub fn die_with(waiter: Pid) -> Result<(), Fatal> {
    signals::die_with(waiter, "the waiting mntns")
}
