//! The signals a waiting link takes over (pidns's monitor and init, the process `mntns --rm`
//! leaves waiting): which ones, blocking them before a fork and giving them back in the child
//! ([`take_over`]), reading them from a signalfd without allocating, forwarding them to the
//! child until it ends ([`forward_until_exit`]), and the child's death with the waiter
//! ([`die_with`]).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use nix::unistd::Pid;

use crate::{exit, Fatal};

/// Signals left alone: SIGKILL and SIGSTOP cannot be caught; the synchronous ones (a fault of
/// the process itself) must stay deliverable; SIGCHLD is how a waiter learns of an exit; the
/// job-control stops keep their default in the monitor (Ctrl-Z stops it) and are ignored by
/// the init. 32 and 33 belong to glibc's threads.
const NOT_FORWARDED: [libc::c_int; 15] = [
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGSYS,
    libc::SIGABRT,
    libc::SIGCHLD,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    32,
    33,
];

/// The job-control signals the init ignores (it has no terminal to stop for).
pub const JOB_CONTROL: [libc::c_int; 3] = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];

/// Whether a signal sent to the monitor or the init is passed on to the container.
pub fn forwarded(signal: libc::c_int) -> bool {
    (1..=libc::SIGRTMAX()).contains(&signal) && !NOT_FORWARDED.contains(&signal)
}

/// A signal set (plain libc, so that real-time signals fit).
#[derive(Clone, Copy)]
pub struct Set(libc::sigset_t);

impl Set {
    /// Every forwarded signal, plus SIGCHLD: what the monitor and the init block and read.
    pub fn taken_over() -> Set {
        let mut set = Set::empty();
        for signal in 1..=libc::SIGRTMAX() {
            if forwarded(signal) || signal == libc::SIGCHLD {
                set.add(signal);
            }
        }
        set
    }

    /// The empty set.
    pub fn empty() -> Set {
        // SAFETY: sigemptyset initialises the zeroed set it is given.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            Set(set)
        }
    }

    /// Adds `signal` to the set.
    pub fn add(&mut self, signal: libc::c_int) {
        // SAFETY: the set is initialised; an invalid number only makes sigaddset fail.
        unsafe {
            libc::sigaddset(&mut self.0, signal);
        }
    }
}

/// Replaces the signal mask with `how`/`set`, returning the previous mask.
fn mask(how: libc::c_int, set: &Set) -> io::Result<Set> {
    let mut old = Set::empty();
    // SAFETY: both sets are initialised sigset_t values owned by this frame.
    let rc = unsafe { libc::sigprocmask(how, &set.0, &mut old.0) };
    if rc == 0 {
        Ok(old)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Blocks `set`, returning the previous mask.
pub fn block(set: &Set) -> io::Result<Set> {
    mask(libc::SIG_BLOCK, set)
}

/// Restores a mask returned by [`block`].
pub fn restore(old: &Set) -> io::Result<()> {
    mask(libc::SIG_SETMASK, old).map(drop)
}

/// Sets `signal`'s disposition to ignored.
pub fn ignore(signal: libc::c_int) {
    // SAFETY: SIG_IGN installs no handler code; the old disposition is not needed.
    unsafe {
        libc::signal(signal, libc::SIG_IGN);
    }
}

/// A signal's disposition, saved to be restored for COMMAND.
#[derive(Clone, Copy)]
pub struct Disposition(libc::sigaction);

/// Sets SIGCHLD to its default, returning the caller's disposition: with SIGCHLD ignored the
/// kernel reaps children itself and their exit status would be lost to the monitor and the init.
pub fn default_sigchld() -> io::Result<Disposition> {
    // SAFETY: sigaction is plain data; all-zero is SIG_DFL with an empty mask.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = libc::SIG_DFL;
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both structs are valid; SIG_DFL installs no handler code.
    let rc = unsafe { libc::sigaction(libc::SIGCHLD, &new, &mut old) };
    if rc == 0 {
        Ok(Disposition(old))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Puts back SIGCHLD's disposition as the caller had it (SIG_DFL or SIG_IGN: exec resets
/// a handler anyway).
pub fn restore_sigchld(old: &Disposition) -> io::Result<()> {
    // SAFETY: the saved struct came from sigaction; a handler address would be reset by exec.
    let rc = unsafe { libc::sigaction(libc::SIGCHLD, &old.0, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What a process that forks a child to wait for took over before the fork, so that no signal
/// is lost before its signalfd reads them: SIGCHLD at its default, the [`Set::taken_over`]
/// signals blocked, a signalfd reading them. The waiting side keeps [`TakenOver::signalfd`];
/// the child calls [`TakenOver::give_back`] (or keeps `mask` and `sigchld` to restore later).
pub struct TakenOver {
    /// Reads the taken-over signals (the waiting side's).
    pub signalfd: SignalFd,
    /// The caller's signal mask, for the child.
    pub mask: Set,
    /// The caller's SIGCHLD disposition, for the child.
    pub sigchld: Disposition,
}

/// Takes the signals over before a fork (see [`TakenOver`]).
pub fn take_over() -> Result<TakenOver, Fatal> {
    let set = Set::taken_over();
    let sigchld =
        default_sigchld().map_err(|e| Fatal::from(e).context("unable to reset SIGCHLD"))?;
    let mask = block(&set).map_err(|e| Fatal::from(e).context("unable to block signals"))?;
    let signalfd =
        SignalFd::new(&set).map_err(|e| Fatal::from(e).context("unable to create a signalfd"))?;
    Ok(TakenOver {
        signalfd,
        mask,
        sigchld,
    })
}

impl TakenOver {
    /// In the child after the fork: closes the signalfd and gives the caller's SIGCHLD
    /// disposition and signal mask back.
    pub fn give_back(self) -> Result<(), Fatal> {
        drop(self.signalfd);
        restore_sigchld(&self.sigchld)
            .and(restore(&self.mask))
            .map_err(|e| Fatal::from(e).context("unable to restore the signal mask"))
    }
}

/// Ties this (forked) process's life to `parent`'s: SIGKILL when it dies (a `kill -9` of the
/// process the caller waits on ends the container), checked against a parent already gone;
/// `parent_name` names it in that error ("the chain's supervisor").
pub fn die_with(parent: Pid, parent_name: &str) -> Result<(), Fatal> {
    crate::sys::process::kill_me_with_parent().map_err(|e| {
        Fatal::from(io::Error::from(e)).context("unable to set the parent-death signal")
    })?;
    if nix::unistd::getppid() != parent {
        return Err(Fatal::new(format!("{parent_name} has exited")));
    }
    Ok(())
}

/// Makes `pgrp` the terminal's foreground process group, with SIGTTOU blocked so that a
/// caller in the background is not stopped for it. Best effort (no terminal: nothing to do).
pub fn set_foreground(pgrp: nix::unistd::Pid) {
    let mut ttou = Set::empty();
    ttou.add(libc::SIGTTOU);
    let Ok(old) = block(&ttou) else {
        return;
    };
    let _ = nix::unistd::tcsetpgrp(std::io::stdin(), pgrp);
    let _ = restore(&old);
}

/// A close-on-exec signalfd for a set of blocked signals.
pub struct SignalFd(OwnedFd);

impl SignalFd {
    /// A new signalfd reading the signals of `set` (which the caller blocks).
    pub fn new(set: &Set) -> io::Result<SignalFd> {
        // SAFETY: -1 asks for a new descriptor; the set is initialised.
        let fd = unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: signalfd returned a new descriptor that nothing else owns.
        Ok(SignalFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Gives up ownership: the descriptor stays open under its number.
    pub fn into_raw(self) -> libc::c_int {
        self.0.into_raw_fd()
    }

    /// The descriptor's number (it stays owned).
    pub fn raw(&self) -> libc::c_int {
        self.0.as_raw_fd()
    }

    /// Blocks until a signal arrives (retrying on EINTR); no allocation.
    pub fn read(&self) -> io::Result<libc::signalfd_siginfo> {
        read_raw(self.raw())
    }
}

/// Reads one `signalfd_siginfo` from a signalfd given by number (the init keeps only the
/// number once it has closed everything else).
pub fn read_raw(fd: libc::c_int) -> io::Result<libc::signalfd_siginfo> {
    loop {
        // SAFETY: signalfd_siginfo is plain data; all-zero is a valid value.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: the buffer is `size` bytes of writable memory owned by this frame.
        let n = unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        if n == size as isize {
            return Ok(info);
        }
        let error = io::Error::last_os_error();
        if n < 0 && error.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n >= 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        return Err(error);
    }
}

/// Whether a signal was sent by a process (kill, sigqueue, tkill) rather than generated by the
/// kernel for a terminal (Ctrl-C, hangup): those already reach the whole foreground process
/// group, the container included, and must not arrive twice.
pub fn sent_by_a_process(info: &libc::signalfd_siginfo) -> bool {
    matches!(
        info.ssi_code,
        libc::SI_USER | libc::SI_QUEUE | libc::SI_TKILL
    )
}

/// Forwards signals to `target` until `child` ends; returns its status, shell-encoded (n, or
/// 128+s when it was killed by signal s).
///
/// Only signals sent by a process (kill, sigqueue) are forwarded: those a terminal generates
/// (Ctrl-C, hangup) reach the child already, as it shares the caller's process group, and must
/// not arrive twice. The loop allocates nothing.
pub fn forward_until_exit(child: Pid, target: Pid, signalfd: &SignalFd) -> u8 {
    let me = std::process::id();
    loop {
        match signalfd.read() {
            Ok(info) if info.ssi_signo == libc::SIGCHLD as u32 => {
                if let Some(status) = try_wait(child) {
                    return status;
                }
            }
            Ok(info) => {
                // A SIGPIPE of our own write (to a closed --status-fd) is not the user's.
                if sent_by_a_process(&info) && info.ssi_pid != me {
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
    if pid < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
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
        if pid < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return exit::FAILURE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn termination_signals_are_forwarded_and_faults_are_not() {
        for signal in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGWINCH,
            libc::SIGCONT,
            libc::SIGALRM,
            libc::SIGPIPE,
            libc::SIGRTMIN(),
            libc::SIGRTMAX(),
        ] {
            assert!(forwarded(signal), "{signal}");
        }
        for signal in [
            0,
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGCHLD,
            libc::SIGSEGV,
            libc::SIGTSTP,
            libc::SIGRTMAX() + 1,
        ] {
            assert!(!forwarded(signal), "{signal}");
        }
    }
}
