//! The last step of `nsps exec`: fork COMMAND, which is born into the container's pid
//! namespace, and wait for it here, outside, forwarding signals and returning its status
//! (n, or 128+s when it was killed by signal s).
//!
//! Everything else is done before the fork: the child appears in the container with nothing
//! of the host (namespaces, root, credentials, file descriptors) and is not dumpable until its
//! exec (runc's nsexec order; CVE-2016-9962).

use std::ffi::OsString;
use std::os::fd::RawFd;

use common::cgroupfs::Entry;

use common::cli::Status;
use common::signals::forwarded;
use common::{debug, exit, Fatal};
use nix::errno::Errno;
use nix::unistd::{fork, ForkResult, Pid};

/// Forks COMMAND into the pid namespace this process has joined for its children, and waits.
/// `leader`: this process leads its session and so kept its terminal, which the child, not a
/// leader, gives up. `terminal`: stdin is a pty of the container's, which COMMAND takes as the
/// controlling terminal of a session it leads (`nsps exec -t`).
/// `entry`: the chain's cgroup, which the child moves itself into (this process stays out).
pub fn run(
    command: Vec<OsString>,
    leader: bool,
    terminal: bool,
    entry: Option<Entry>,
) -> Result<Status, Fatal> {
    // The child must not be reachable through /proc before its exec (a ptrace-capable
    // container would otherwise read its memory and fds); the exec makes COMMAND dumpable.
    debug::step("not dumpable", || nix::sys::prctl::set_dumpable(false))
        .map_err(|e| Fatal::from(e).context("unable to make nsps not dumpable"))?;
    close_inherited_fds(&entry.as_ref().map(Entry::fds).unwrap_or_default())?;
    // Blocked before the fork, so that no signal is lost before the wait loop.
    let (taken, old) = block_signals()?;
    // SAFETY: single-threaded; the child only restores its signal mask and execs or _exits.
    let forked = unsafe { fork() }.map_err(|errno| {
        let fatal = Fatal::from(errno).context("unable to fork into the container");
        if errno == Errno::ENOMEM {
            fatal.with_hint("the container's pid namespace is dead: its PID 1 has exited")
        } else {
            fatal
        }
    })?;
    match forked {
        ForkResult::Child => {
            // SAFETY: restores the mask saved above; `old` is a valid sigset.
            unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
            let entered = entry.as_ref().map_or(Ok(()), Entry::enter);
            let fatal = if let Err(e) = entered {
                Fatal::from(e).context("unable to join the chain's cgroup")
            } else if terminal {
                // SAFETY: fd 0 stays open until the exec.
                let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
                match common::pty::take_as_terminal(stdin) {
                    Ok(()) => common::exec::exec(command),
                    Err(e) => Fatal::from(e).context("unable to take the pty as terminal"),
                }
            } else {
                match leader.then(common::terminal::detach) {
                    Some(Err(e)) => {
                        Fatal::from(e).context("unable to give up the controlling terminal")
                    }
                    _ => common::exec::exec(command),
                }
            };
            fatal.print();
            // SAFETY: _exit skips the parent's atexit work and stdio buffers, which are not ours.
            unsafe { libc::_exit(i32::from(fatal.code)) }
        }
        ForkResult::Parent { child } => {
            drop(entry);
            debug::note(format_args!("joined process {child}"));
            Ok(wait(child, &taken))
        }
    }
}

/// Every descriptor but stdio and `keep` (the chain's cgroup.procs files, close-on-exec) is
/// closed: the host's namespace files, /proc and the caller's leaked ones must not reach the
/// container (CVE-2024-21626).
fn close_inherited_fds(keep: &[RawFd]) -> Result<(), Fatal> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .collect();
    keep.sort_unstable();
    debug::step("close fds >= 3", || {
        let mut from = 3;
        for fd in keep.iter().copied().filter(|&fd| fd >= 3) {
            if fd > from {
                common::sys::fs::close_range(from, fd - 1, 0)?;
            }
            from = fd + 1;
        }
        common::sys::fs::close_range(from, u32::MAX, 0)
    })
    .map_err(|e| Fatal::from(e).context("unable to close the inherited file descriptors"))
}

fn block_signals() -> Result<(libc::sigset_t, libc::sigset_t), Fatal> {
    // SAFETY: plain sigset manipulation on zeroed, initialised sets; SIG_DFL for SIGCHLD so
    // that the child is not reaped behind our back when the caller ignored it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in 1..=libc::SIGRTMAX() {
            if forwarded(signal) || signal == libc::SIGCHLD {
                libc::sigaddset(&mut set, signal);
            }
        }
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        Errno::result(libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old))
            .map_err(|e| Fatal::from(e).context("unable to block signals"))?;
        Ok((set, old))
    }
}

/// Waits for COMMAND, passing on the signals sent to this process. Those the kernel sent
/// (a terminal's Ctrl-C, a window resize) already reached COMMAND, in the same process group.
fn wait(child: Pid, taken: &libc::sigset_t) -> Status {
    loop {
        if let Some(code) = reap(child) {
            return code;
        }
        // SAFETY: `taken` is a valid, blocked set; `info` is written by the kernel.
        let (signal, code) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let signal = libc::sigwaitinfo(taken, &mut info);
            (signal, info.si_code)
        };
        if signal > 0 && forwarded(signal) && code != libc::SI_KERNEL {
            // SAFETY: kill sends a signal (real-time ones too, which nix's enum lacks).
            unsafe { libc::kill(child.as_raw(), signal) };
        }
    }
}

/// COMMAND's status once it has ended.
fn reap(child: Pid) -> Option<Status> {
    let mut raw = 0;
    // SAFETY: waitpid on our own child, writing to a local.
    let rc = unsafe { libc::waitpid(child.as_raw(), &mut raw, libc::WNOHANG) };
    match rc {
        0 => None,
        rc if rc == child.as_raw() => Some(exit::from_wait_status(raw)),
        _ => Some(exit::FAILURE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_forwarded() {
        for signal in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGWINCH,
        ] {
            assert!(forwarded(signal), "{signal}");
        }
        assert!(forwarded(libc::SIGRTMAX()));
        for signal in [
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGCHLD,
            libc::SIGTSTP,
            libc::SIGSEGV,
        ] {
            assert!(!forwarded(signal), "{signal}");
        }
        assert!(!forwarded(0) && !forwarded(libc::SIGRTMAX() + 1));
    }
}
