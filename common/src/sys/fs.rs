//! Descriptors and files: `close_range` (with the one fallback of this module: descriptor by
//! descriptor on a kernel without it) and `flock`.

use std::os::fd::{BorrowedFd, RawFd};

use rustix::fs::FlockOperation;

use super::{from_rustix, Errno};

/// How far the per-descriptor fallbacks go: above this, a descriptor can only have been
/// opened by raising RLIMIT_NOFILE, which no caller of ours does.
const FALLBACK_LIMIT: libc::c_uint = 65_536;

/// `close_range(first, last, flags)` (Linux 5.9; `CLOSE_RANGE_CLOEXEC` 5.11). Allocates
/// nothing: a forked child may call it before exec.
pub fn close_range(
    first: libc::c_uint,
    last: libc::c_uint,
    flags: libc::c_uint,
) -> Result<(), Errno> {
    // SAFETY: close_range only closes (or marks) descriptors of this process.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    Errno::result(rc).map(drop)
}

/// Closes every descriptor from `first` to `last`: `close_range`, or one by one (up to 65536)
/// on a kernel without it. Allocates nothing.
pub fn close_range_or_each(first: libc::c_uint, last: libc::c_uint) {
    if close_range(first, last, 0).is_err() {
        for fd in first..last.min(FALLBACK_LIMIT) {
            // SAFETY: closing a descriptor number; EBADF for an unused one is harmless.
            unsafe {
                libc::close(fd as libc::c_int);
            }
        }
    }
}

/// Marks every descriptor from `first` up close-on-exec: `close_range(CLOSE_RANGE_CLOEXEC)`,
/// or, on a kernel without it (`EINVAL` before 5.11, `ENOSYS` before 5.9), `FD_CLOEXEC` on each
/// open descriptor listed in /proc/self/fd.
pub fn cloexec_range_or_each(first: libc::c_uint) -> Result<(), Errno> {
    match close_range(first, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC) {
        // EPERM: a seccomp profile (an OCI one from before 2020) that lacks close_range;
        // fcntl is in every profile.
        Err(Errno::EINVAL | Errno::ENOSYS | Errno::EPERM) => cloexec_each(first),
        other => other,
    }
}

fn cloexec_each(first: libc::c_uint) -> Result<(), Errno> {
    let entries = std::fs::read_dir("/proc/self/fd").map_err(|_| Errno::EBADF)?;
    let fds: Vec<libc::c_int> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first as libc::c_int)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD on a descriptor number; the directory's own is closed by now (EBADF).
        let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        match Errno::result(rc) {
            Ok(_) | Err(Errno::EBADF) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Closes every descriptor above stdio but `keep`, as listed in /proc/self/fd (nothing is
/// closed if it cannot be read). For a process that stays behind the chain (a waiter, a
/// supervisor, a cleaner): the caller must not use or drop the objects that owned the closed
/// descriptors afterwards (it ends with `_exit`).
pub fn close_all_above_stdio_but(keep: &[RawFd]) {
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: the caller owns no live object holding these (see above); the `keep`
            // ones stay open. The directory's own descriptor is closed by now (EBADF).
            unsafe { libc::close(fd) };
        }
    }
}

/// `flock(fd, LOCK_EX)`: waits for the exclusive lock (retrying on `EINTR`).
pub fn lock_exclusive(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    flock_retrying(fd, FlockOperation::LockExclusive)
}

/// `flock(fd, LOCK_SH)`: waits for a shared lock (retrying on `EINTR`).
pub fn lock_shared(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    flock_retrying(fd, FlockOperation::LockShared)
}

/// `flock(fd, LOCK_EX | LOCK_NB)`: whether the exclusive lock was taken (`false`: someone
/// holds the file locked).
pub fn try_lock_exclusive(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    match rustix::fs::flock(fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(from_rustix(e)),
    }
}

/// `flock(fd, LOCK_UN)`.
pub fn unlock(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    flock_retrying(fd, FlockOperation::Unlock)
}

fn flock_retrying(fd: BorrowedFd<'_>, operation: FlockOperation) -> Result<(), Errno> {
    loop {
        match rustix::fs::flock(fd, operation) {
            Err(rustix::io::Errno::INTR) => continue,
            other => return other.map_err(from_rustix),
        }
    }
}
