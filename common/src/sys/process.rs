//! Processes: pidfds, the capability sets, and a fork that runs no atfork handler.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::process::{Pid, PidfdFlags};
use rustix::thread::{CapabilitySet, CapabilitySets};

use super::{from_rustix, Errno};

/// `pidfd_open(pid, 0)`: a descriptor (close-on-exec) that refers to process `pid` for good;
/// it polls readable once the process has exited. `EINVAL` for a pid that is not positive.
pub fn pidfd_open(pid: libc::pid_t) -> Result<OwnedFd, Errno> {
    let pid = Pid::from_raw(pid).ok_or(Errno::EINVAL)?;
    rustix::process::pidfd_open(pid, PidfdFlags::empty()).map_err(from_rustix)
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`: signals the process a pidfd refers to, never
/// another one that got its pid since. `EINVAL` for a number that is no signal.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> Result<(), Errno> {
    if !(1..=libc::SIGRTMAX()).contains(&sig) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: a signal number within the kernel's range, checked above.
    let sig = unsafe { rustix::process::Signal::from_raw_unchecked(sig) };
    rustix::process::pidfd_send_signal(pidfd, sig).map_err(from_rustix)
}

/// Whether the process a pidfd refers to has exited (the pidfd polls readable), without
/// waiting.
pub fn pidfd_has_exited(pidfd: BorrowedFd<'_>) -> bool {
    let mut poll = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no timeout.
    let n = unsafe { libc::poll(&mut poll, 1, 0) };
    n > 0 && poll.revents & (libc::POLLIN | libc::POLLHUP) != 0
}

/// Blocks until the process a pidfd refers to has exited (the pidfd polls readable),
/// retrying on `EINTR`; another poll error ends the wait too.
pub fn pidfd_wait_exited(pidfd: BorrowedFd<'_>) {
    loop {
        let mut poll = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no timeout.
        let n = unsafe { libc::poll(&mut poll, 1, -1) };
        if n >= 0 || Errno::last() != Errno::EINTR {
            return;
        }
    }
}

/// `PR_SET_PDEATHSIG(SIGKILL)`: the kernel kills this process when its parent exits. The
/// caller re-checks the parent afterwards: it may have died before the call.
pub fn kill_me_with_parent() -> Result<(), Errno> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; the other arguments are unused.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    Errno::result(rc).map(drop)
}

/// `capset(2)` on this thread: the three capability sets, as bit masks of capability numbers
/// (bit 5 is CAP_KILL).
pub fn set_capabilities(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let sets = CapabilitySets {
        effective: CapabilitySet::from_bits_retain(effective),
        permitted: CapabilitySet::from_bits_retain(permitted),
        inheritable: CapabilitySet::from_bits_retain(inheritable),
    };
    rustix::thread::set_capabilities(None, sets).map_err(from_rustix)
}

/// `capget(2)` of this thread: the effective, permitted and inheritable sets, as bit masks.
pub fn capabilities() -> Result<(u64, u64, u64), Errno> {
    let sets = rustix::thread::capabilities(None).map_err(from_rustix)?;
    Ok((
        sets.effective.bits(),
        sets.permitted.bits(),
        sets.inheritable.bits(),
    ))
}

/// `brk(0)`: the current program break (what `PR_SET_MM_MAP` must be given back unchanged).
pub fn program_break() -> u64 {
    // SAFETY: brk(0) asks for no change and only reports the current break.
    unsafe { libc::syscall(libc::SYS_brk, 0) as u64 }
}

/// `clone(SIGCHLD)`: a fork that, unlike `fork(3)`, runs no atfork handler and takes no libc
/// lock, so a child of a `CLONE_VFORK` child may call it. Returns the child's pid in the parent
/// and 0 in the child.
///
/// # Safety
///
/// The child shares nothing with the parent but a copy of its memory: it may only make raw
/// system calls on data prepared before (no allocation, no lock) and must end with an exec or
/// [`exit_group`].
pub unsafe fn fork_raw() -> Result<libc::pid_t, Errno> {
    // SAFETY: the caller upholds the child's restrictions; the arguments ask for a plain fork.
    let rc = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) };
    Errno::result(rc).map(|pid| pid as libc::pid_t)
}

/// `clone(CLONE_VM | CLONE_VFORK | extra_flags | SIGCHLD)`: runs `child(arg)` in a child that
/// shares this process's memory, on a stack of `stack_size` bytes of its own, while this
/// thread waits until it has exited; then reaps it. `extra_flags` add what the child needs
/// (`CLONE_FILES` to leave a descriptor here, `CLONE_NEWNS` for a mount namespace of its own).
///
/// # Safety
///
/// `child` runs in this address space while this thread is suspended: it may only use what
/// `arg` points to (kept alive by the caller for the call) and its own stack, take no lock
/// another thread may hold, and must return (its return is its exit status).
pub unsafe fn vfork_run(
    child: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
    extra_flags: libc::c_int,
    stack_size: usize,
) -> Result<(), Errno> {
    let mut stack = vec![0u8; stack_size];
    // The stack grows down: hand clone its (16-byte aligned) top.
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | extra_flags | libc::SIGCHLD;
    // SAFETY: CLONE_VM | CLONE_VFORK: the child runs on `stack`, which outlives it (this
    // thread is suspended until it exits); the caller upholds what `child` may touch.
    let pid = unsafe { libc::clone(child, top as *mut libc::c_void, flags, arg) };
    if pid < 0 {
        return Err(Errno::last());
    }
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    drop(stack);
    Ok(())
}

/// `exit_group(code)`: ends the process at once, without running anything (no atexit, no
/// stdio flush): for a forked child whose exec failed.
pub fn exit_group(code: libc::c_int) -> ! {
    // SAFETY: exit_group takes a status and does not return.
    unsafe {
        libc::syscall(libc::SYS_exit_group, code as libc::c_long);
    }
    // SAFETY: never reached: exit_group does not return (`_exit` is its libc name).
    unsafe { libc::_exit(code) }
}
