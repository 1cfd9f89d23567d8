//! A foreground `run` or `exec` passes the signals it gets on to the container's process, as
//! runc does: `kill -TERM <nsoci>` (a shell's job control, a supervisor) reaches the payload,
//! and nsoci exits with the status the payload then exits with.
//!
//! The signals are caught from the first instruction of `run` ([`hold`]): one that arrives
//! while the container is being created neither kills nsoci halfway (which would leave a
//! half-made container) nor is lost. It is noted, and [`wait`] (with a terminal nsoci proxies
//! itself, [`later`]) passes it on once the payload runs; to a pid namespace's init, which
//! the kernel gives only the signals it handles, when the payload catches it (a shell's
//! `trap` a moment after its exec). A detached `create` or
//! `run -d` instead removes what it made and then lets the signal act ([`Held::interrupted`]).
//! Caught, not blocked: a handler ends at exec, a blocked mask would pass to the container.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// The signals that end a detached `create` (their default action terminates nsoci).
const ENDING: [libc::c_int; 7] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
];

/// How soon a signal held for a payload that does not catch it yet is tried again (doubling
/// up to [`RETRY_MAX`]: a payload that never catches it costs next to nothing).
const RETRY: Duration = Duration::from_millis(5);
const RETRY_MAX: Duration = Duration::from_secs(1);

fn signal_set() -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is valid storage; sigemptyset/sigaddset fill it with valid
    // signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        for sig in FORWARDED {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// The signals noted since [`hold`], one bit each (bit n-1 for signal n).
static NOTED: AtomicU64 = AtomicU64::new(0);

extern "C" fn note(sig: libc::c_int) {
    // Async-signal-safe: a lock-free atomic.
    NOTED.fetch_or(1u64 << (sig - 1), Ordering::SeqCst);
}

fn take_noted() -> Vec<libc::c_int> {
    let noted = NOTED.swap(0, Ordering::SeqCst);
    FORWARDED
        .into_iter()
        .filter(|s| noted & (1u64 << (s - 1)) != 0)
        .collect()
}

/// The forwarded signals noted by a handler instead of acting, and the dispositions there
/// were before.
pub struct Held {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

/// Notes the forwarded signals from now on (see the module's comment).
pub fn hold() -> Held {
    let mut old = Vec::new();
    for sig in FORWARDED {
        // SAFETY: zeroed sigaction structs are valid storage; the handler only does an
        // atomic or; SA_RESTART keeps create's blocking calls going.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = note as extern "C" fn(libc::c_int) as libc::sighandler_t;
            act.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            let mut before: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, &act, &mut before) == 0 {
                old.push((sig, before));
            }
        }
    }
    Held { old }
}

impl Held {
    /// A terminating signal that came while the signals were held (a detached `create` then
    /// removes the container before the signal acts).
    pub fn interrupted(&self) -> Option<libc::c_int> {
        let noted = NOTED.load(Ordering::SeqCst);
        ENDING.into_iter().find(|s| noted & (1u64 << (s - 1)) != 0)
    }

    /// Restores the dispositions and raises what was noted: it acts now, as it would have
    /// when it came.
    pub fn release(self) {
        for (sig, before) in &self.old {
            // SAFETY: restores a disposition saved by hold().
            unsafe { libc::sigaction(*sig, before, std::ptr::null_mut()) };
        }
        for sig in take_noted() {
            // SAFETY: raise(3) of a signal number.
            unsafe { libc::raise(sig) };
        }
    }

    /// Blocks the forwarded signals (and SIGCHLD) and makes what was noted pending again, for
    /// a reader of pending signals (sigwaitinfo, a signalfd); returns the mask before.
    pub fn pend(&self) -> libc::sigset_t {
        let set = signal_set();
        // SAFETY: a zeroed sigset_t is valid storage for the old mask.
        let mut before: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: sigprocmask with a valid set and a local for the old mask.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, &mut before) };
        for sig in take_noted() {
            // SAFETY: raise(3) of a blocked signal: it stays pending.
            unsafe { libc::raise(sig) };
        }
        before
    }
}

/// Restores a signal mask saved by [`Held::pend`]: what comes later is noted again, and what
/// nsoci starts next (`run`'s poststop hooks) does not inherit a blocked mask.
pub fn unblock(before: &libc::sigset_t) {
    // SAFETY: sets the mask to one saved before.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, before, std::ptr::null_mut()) };
}

/// Waits for `pid` (a child, or an orphan given to this subreaper), passing every signal of
/// [`FORWARDED`] that arrives meanwhile on to it; the ones that came before (pending since
/// [`hold`]) wait until the payload can take them. Returns its status, shell-encoded.
pub fn wait(pid: i32, held: &Held) -> Status {
    let set = signal_set();
    let before = held.pend();
    let mut early = take_pending(&set);
    let mut retry = RETRY;
    loop {
        if let Some(status) = reap(pid) {
            // Noted again, not acting: `run`'s delete, next, is not cut short by a signal.
            unblock(&before);
            return status;
        }
        early.retain(|sig| !deliver_if_taken(pid, *sig, &|s| kill(pid, s)));
        let timeout = (!early.is_empty()).then_some(retry);
        retry = (retry * 2).min(RETRY_MAX);
        if let Some(sig) = next_signal(&set, timeout) {
            if sig != libc::SIGCHLD {
                kill(pid, sig);
            }
        }
    }
}

/// The signals of `set` pending now, taken (SIGCHLD left out: the first reap looks anyway).
fn take_pending(set: &libc::sigset_t) -> Vec<libc::c_int> {
    let mut taken = Vec::new();
    while let Some(sig) = next_signal(set, Some(Duration::ZERO)) {
        if sig != libc::SIGCHLD {
            taken.push(sig);
        }
    }
    taken
}

/// The next signal of `set` (None at the timeout or an interruption); blocks without one.
fn next_signal(set: &libc::sigset_t, timeout: Option<Duration>) -> Option<libc::c_int> {
    // SAFETY: a zeroed siginfo_t is valid storage for the kernel to fill.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let sig = match timeout {
        // SAFETY: set and info are valid locals.
        None => unsafe { libc::sigwaitinfo(set, &mut info) },
        Some(t) => {
            let ts = libc::timespec {
                tv_sec: t.as_secs() as libc::time_t,
                tv_nsec: t.subsec_nanos() as libc::c_long,
            };
            // SAFETY: set, info and ts are valid locals.
            unsafe { libc::sigtimedwait(set, &mut info, &ts) }
        }
    };
    (sig > 0).then_some(sig)
}

/// The signals of [`FORWARDED`] pending now (blocked since [`Held::pend`]), taken: with the
/// ones `pend` made pending, all that came before the payload ran.
pub fn take_early() -> Vec<libc::c_int> {
    take_pending(&signal_set())
}

/// Signals that came before the payload ran, passed on by a thread of their own while
/// something else waits for the payload (the terminal's proxy), by the rule of
/// [`wait`]: to a pid namespace's init once it catches them.
pub struct Later {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts passing `early` on to `pid` (a child not yet reaped: its pidfd is taken now, so
/// that a signal never reaches another process that got its pid).
pub fn later(pid: i32, early: Vec<libc::c_int>) -> Later {
    let stop = Arc::new(AtomicBool::new(false));
    let pidfd = (!early.is_empty()).then(|| pidfd_open(pid)).flatten();
    let thread = pidfd.map(|pidfd| {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut early = early;
            let mut retry = RETRY;
            while !stop.load(Ordering::SeqCst) {
                early.retain(|sig| !deliver_if_taken(pid, *sig, &|s| send(&pidfd, s)));
                if early.is_empty() {
                    break;
                }
                std::thread::park_timeout(retry);
                retry = (retry * 2).min(RETRY_MAX);
            }
        })
    });
    Later { stop, thread }
}

impl Later {
    /// Stops passing signals on (the payload has ended).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    common::sys::process::pidfd_open(pid).ok()
}

fn send(pidfd: &OwnedFd, sig: libc::c_int) {
    // Best effort: the process may have ended meanwhile.
    let _ = common::sys::process::pidfd_send_signal(pidfd.as_fd(), sig);
}

/// Sends `sig` to `pid` when it will take it: always, unless `pid` is a pid namespace's init
/// (the kernel drops what such a process neither catches nor is killed by), which gets it
/// once it catches it. Whether it was sent.
fn deliver_if_taken(pid: i32, sig: libc::c_int, send: &dyn Fn(libc::c_int)) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let ns_init = field("NSpid:").is_some_and(|ids| {
        let ids: Vec<&str> = ids.split_whitespace().collect();
        ids.len() > 1 && ids.last() == Some(&"1")
    });
    let caught = field("SigCgt:")
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .is_some_and(|mask| mask & (1u64 << (sig - 1)) != 0);
    if ns_init && !caught {
        return false;
    }
    send(sig);
    true
}

/// kill(2) of `pid`, which this process reaps itself (so it is not reused meanwhile).
fn kill(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid and a signal number; a gone pid gives ESRCH, which the
    // next reap answers.
    unsafe { libc::kill(pid, sig) };
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
