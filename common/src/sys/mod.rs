//! Every raw system call of nschain, in one place (issue 14).
//!
//! Submodules by concern: [`mount`] (the new mount API, `pivot_root`, `MOUNT_ATTR_*`),
//! [`process`] (pidfds, capabilities, a raw fork), [`fs`] (`close_range`, `flock`),
//! [`keyring`] (`keyctl`), [`bpf`] (seccomp and socket filters), [`tty`] (controlling-terminal
//! ioctls). Nothing outside this module calls `libc::syscall` or defines a kernel constant that
//! is defined here; `scripts/raw-syscalls.py` (run by `make check`) enforces it.
//!
//! # Error and fallback policy
//!
//! - Every wrapper returns `Result<_, Errno>` (nix's [`Errno`]): the kernel's errno, unchanged,
//!   so callers keep matching on `ENOSYS`, `EPERM`, `EINVAL` as before. A path with a NUL byte
//!   is `EINVAL`. Descriptors come back as `OwnedFd`, always close-on-exec.
//! - rustix is used where it has the call (`fsopen`, `fsconfig`, `fsmount`, `open_tree`,
//!   `move_mount`, `pivot_root`, `pidfd_open`, `pidfd_send_signal`, `capset`, `flock`); only
//!   what it lacks is hand-written (`mount_setattr`, `close_range`, `keyctl`, `clone` for a
//!   fork without atfork handlers, the seccomp and socket-filter installs).
//! - No wrapper falls back silently. The one fallback is explicit and named:
//!   [`fs::close_range_or_each`] closes descriptors one by one when `close_range` is missing
//!   (before Linux 5.9), and [`fs::cloexec_range_or_each`] likewise for `CLOSE_RANGE_CLOEXEC`.
//!   Every other `ENOSYS` goes back to the caller, which says which kernel it needs.
//! - Wrappers that a forked child calls before exec (`close_range`, `exit_group`, the raw fork)
//!   allocate nothing and take no lock: they are async-signal-safe.

pub use nix::errno::Errno;

pub mod bpf;
pub mod fs;
pub mod keyring;
pub mod mount;
pub mod process;
pub mod tty;

/// A rustix error as nix's [`Errno`] (the same number).
fn from_rustix(error: rustix::io::Errno) -> Errno {
    Errno::from_raw(error.raw_os_error())
}
