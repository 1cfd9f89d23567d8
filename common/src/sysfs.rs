//! The container's own /sys under a user namespace: `NSCHAIN_SYSFS_FD`.
//!
//! A sysfs shows the network interfaces of the network namespace of whoever creates it, and
//! the kernel lets a process create one only with CAP_SYS_ADMIN over the user namespace that
//! owns that network namespace. In a rootful chain `netns -- userns --map-auto -- mntns`, the
//! network namespace belongs to the host's user namespace, so mntns (root of the new one only)
//! may not: it would have to show the host's /sys, with the host's bridge and every other
//! container's veth. netns, still host root after its setup, creates a detached sysfs with the
//! new mount API (the fs context takes the network namespace of the process calling fsopen) and
//! hands it down (DESIGN.md §1, "Handed-down fds"); mntns attaches it at /sys of its new root.
//!
//! A typed hand-down ([`crate::handdown::Handdown::sysfs`]): at a real exec its variable holds
//! one fd number; before COMMAND it is closed. The consumer accepts it only if it is a sysfs (SYSFS_MAGIC):
//! a wrong fd is refused with an error, never mounted.

use std::ffi::{CStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::handdown::Slot;
use crate::{debug, handed_fd};

/// The variable naming the handed-down sysfs.
pub const VAR: &str = "NSCHAIN_SYSFS_FD";
/// statfs(2) f_type of a sysfs.
pub const SYSFS_MAGIC: i64 = 0x6265_6572;

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
const MOUNT_ATTR_NOEXEC: libc::c_uint = 0x8;

fn new_fd(rc: libc::c_long) -> io::Result<OwnedFd> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

/// A detached, read-only (nosuid, nodev, noexec) sysfs of this process's network namespace.
/// EPERM without CAP_SYS_ADMIN over the user namespace that owns it.
pub fn create() -> io::Result<OwnedFd> {
    let sysfs: &CStr = c"sysfs";
    // SAFETY: fsopen takes a NUL-terminated file system name and flags.
    let context =
        new_fd(unsafe { libc::syscall(libc::SYS_fsopen, sysfs.as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: FSCONFIG_CMD_CREATE takes no key, value or aux argument.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    // SAFETY: fsmount takes the configured context, flags and mount attributes.
    new_fd(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            context.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs,
        )
    })
}

/// Whether `fd` is on a sysfs.
pub fn is_sysfs(fd: BorrowedFd<'_>) -> bool {
    nix::sys::statfs::fstatfs(fd).is_ok_and(|s| s.filesystem_type().0 == SYSFS_MAGIC)
}

/// Consumer (mntns, at entry): owns the handed-down sysfs. `Ok(None)` without one; an error
/// when an inherited variable names anything but an open sysfs (which stays open: it is not
/// ours).
pub fn take(slot: Slot<OwnedFd>) -> Result<Option<OwnedFd>, String> {
    let value = match slot {
        Slot::Empty => return Ok(None),
        Slot::Made(fd) => return Ok(Some(fd)),
        Slot::Inherited(value) => value,
    };
    let text = value.to_string_lossy();
    let fd = handed_fd::parse_fd(&text)
        .ok_or_else(|| format!("invalid {VAR} '{text}': expected an fd number above 2"))?;
    // SAFETY: only borrowed for fstatfs; an fd that is not open makes it fail with EBADF.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    match nix::sys::statfs::fstatfs(borrowed) {
        Err(e) => return Err(format!("invalid {VAR}: fd {fd} is not open ({e})")),
        Ok(s) if s.filesystem_type().0 != SYSFS_MAGIC => {
            return Err(format!(
                "invalid {VAR}: fd {fd} is not a sysfs (file system magic {:#x})",
                s.filesystem_type().0
            ))
        }
        Ok(_) => {}
    }
    handed_fd::adopt(fd)
        .map_err(|e| format!("invalid {VAR}: fd {fd}: {e}"))
        .map(Some)
}

/// Producer (netns, in its network namespace): a sysfs of it, when a consumer follows in
/// COMMAND and the kernel lets this process create one.
pub fn make(command: &[OsString]) -> Option<OwnedFd> {
    if !handed_fd::consumer_follows(command, "mntns") {
        return None;
    }
    match debug::step("create a sysfs of this network namespace", create) {
        Ok(fd) => Some(fd),
        Err(e) => {
            debug::note(format_args!("no sysfs to hand down: {e}"));
            None
        }
    }
}
