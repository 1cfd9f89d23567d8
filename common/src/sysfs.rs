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

use std::ffi::OsString;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use crate::handdown::Slot;
use crate::{debug, handed_fd};

/// The variable naming the handed-down sysfs.
pub const VAR: &str = "NSCHAIN_SYSFS_FD";
/// statfs(2) f_type of a sysfs.
pub const SYSFS_MAGIC: i64 = 0x6265_6572;

/// A detached, read-only (nosuid, nodev, noexec) sysfs of this process's network namespace.
/// EPERM without CAP_SYS_ADMIN over the user namespace that owns it.
pub fn create() -> io::Result<OwnedFd> {
    use crate::sys::mount::{
        self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
    };
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    // Source "sysfs", as mount(8) and runc name it (mountinfo shows it, OCI checks compare
    // it); without it the kernel shows "none".
    mount::new_fs(c"sysfs", &[(c"source", c"sysfs")], attrs).map_err(io::Error::from)
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
