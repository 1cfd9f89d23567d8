//! A foreground `run` or `exec` passes the signals it gets on to the container's process, as
//! runc does: `kill -TERM <nsoci>` (a shell's job control, a supervisor) reaches the payload,
//! and nsoci exits with the status the payload then exits with.

use common::cli::Status;

/// The signals passed on: the catchable ones a caller sends to stop, reload or poke a
/// process. SIGCHLD is nsoci's own (the process ended), SIGWINCH and SIGURG are not meant
/// for the payload, SIGKILL and SIGSTOP cannot be caught.
const FORWARDED: [libc::c_int; 14] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGPIPE,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGCONT,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGXCPU,
    libc::SIGPROF,
];

/// Waits for `pid` (a child, or an orphan given to this subreaper), passing every signal of
/// [`FORWARDED`] that arrives meanwhile on to it; returns its status, shell-encoded.
pub fn wait(pid: i32) -> Status {
    // SAFETY: a zeroed sigset_t is valid storage; sigemptyset/sigaddset fill it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a local sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        for sig in FORWARDED {
            libc::sigaddset(&mut set, sig);
        }
    }
    // Blocked, the signals stay pending for sigwaitinfo instead of acting on nsoci; SIGCHLD
    // too, so an end between the check and the wait is not missed.
    // SAFETY: a zeroed sigset_t is valid storage for the old mask.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigprocmask with a valid set and a local for the old mask.
    if unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) } != 0 {
        return crate::pid1::wait(pid);
    }
    loop {
        if let Some(status) = reap(pid) {
            // What runs next (`run`'s delete, its poststop hooks) gets the mask it had.
            // SAFETY: restores the mask saved above.
            unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
            return status;
        }
        // SAFETY: a zeroed siginfo_t is valid storage for sigwaitinfo to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: set and info are valid locals.
        let sig = unsafe { libc::sigwaitinfo(&set, &mut info) };
        if sig > 0 && sig != libc::SIGCHLD {
            // SAFETY: kill(2) with a pid and a signal number; a gone pid gives ESRCH, which
            // the next reap answers.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// The status of `pid` if it has ended (it is reaped then), None while it runs.
fn reap(pid: i32) -> Option<Status> {
    let mut raw = 0;
    // SAFETY: waitpid on one pid, without blocking, writing a local.
    let rc = unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) };
    if rc == pid {
        return Some(common::exit::from_wait_status(raw));
    }
    // Not ours to wait for (ECHILD): nothing to forward to.
    (rc < 0 && nix::errno::Errno::last() != nix::errno::Errno::EINTR)
        .then_some(common::exit::FAILURE)
}
