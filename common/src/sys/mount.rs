//! The new mount API (`fsopen`/`fsconfig`/`fsmount`, `open_tree`, `move_mount`,
//! `mount_setattr`) and `pivot_root`, with the `MOUNT_ATTR_*` flags every tool uses.
//!
//! rustix has every call but `mount_setattr`, which is hand-written here.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};

use super::{from_rustix, Errno};

/// `MOUNT_ATTR_RDONLY`: read-only.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// `MOUNT_ATTR_NOSUID`: setuid and setgid bits and file capabilities ignored.
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// `MOUNT_ATTR_NODEV`: device files unusable.
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
/// `MOUNT_ATTR_NOEXEC`: nothing executable.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
/// `MOUNT_ATTR_IDMAP`: file owners seen through the user namespace of `userns_fd`.
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountAttr {
    /// `MOUNT_ATTR_*` flags to set.
    pub attr_set: u64,
    /// `MOUNT_ATTR_*` flags to clear.
    pub attr_clr: u64,
    /// `MS_SHARED`, `MS_PRIVATE`, ... or 0 to leave the propagation as it is.
    pub propagation: u64,
    /// The user namespace fd of `MOUNT_ATTR_IDMAP`.
    pub userns_fd: u64,
}

/// A new, detached mount of a new `fstype` file system: `fsopen`, one
/// `fsconfig(FSCONFIG_SET_STRING)` per `(key, value)`, `FSCONFIG_CMD_CREATE`, then `fsmount`
/// with the `MOUNT_ATTR_*` flags `attrs`. The fs context takes the namespaces of the caller
/// (a sysfs shows the caller's network namespace).
pub fn new_fs(fstype: &CStr, options: &[(&CStr, &CStr)], attrs: u64) -> Result<OwnedFd, Errno> {
    let context = fsopen(fstype)?;
    for (key, value) in options {
        fsconfig_set_string(context.as_fd(), key, value)?;
    }
    fsconfig_create(context.as_fd())?;
    fsmount(context.as_fd(), attrs)
}

/// `fsopen(fstype, FSOPEN_CLOEXEC)`: a new fs context (the first step of [`new_fs`]).
pub fn fsopen(fstype: &CStr) -> Result<OwnedFd, Errno> {
    rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC).map_err(from_rustix)
}

/// `fsconfig(context, FSCONFIG_SET_STRING, key, value, 0)`.
pub fn fsconfig_set_string(context: BorrowedFd<'_>, key: &CStr, value: &CStr) -> Result<(), Errno> {
    rustix::mount::fsconfig_set_string(context, key, value).map_err(from_rustix)
}

/// `fsconfig(context, FSCONFIG_CMD_CREATE, NULL, NULL, 0)`: creates the superblock.
pub fn fsconfig_create(context: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::mount::fsconfig_create(context).map_err(from_rustix)
}

/// `fsmount(context, FSMOUNT_CLOEXEC, attrs)`: the detached mount of a created context, with
/// the `MOUNT_ATTR_*` flags `attrs`.
pub fn fsmount(context: BorrowedFd<'_>, attrs: u64) -> Result<OwnedFd, Errno> {
    let attrs = MountAttrFlags::from_bits_retain(attrs as libc::c_uint);
    rustix::mount::fsmount(context, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(from_rustix)
}

/// A detached copy of the mount tree whose root `source` is (recursive when asked), as
/// `mount --bind` would attach it: `open_tree(source, "", OPEN_TREE_CLONE | AT_EMPTY_PATH)`.
pub fn clone_tree(source: BorrowedFd<'_>, recursive: bool) -> Result<OwnedFd, Errno> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_EMPTY_PATH;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    rustix::mount::open_tree(source, c"", flags).map_err(from_rustix)
}

/// A detached copy of the mount at `path` (relative to the working directory), its submounts
/// left out: `open_tree(AT_FDCWD, path, OPEN_TREE_CLONE)`.
pub fn clone_path(path: &Path) -> Result<OwnedFd, Errno> {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    rustix::mount::open_tree(rustix::fs::CWD, path, flags).map_err(from_rustix)
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], attr)` on the mount tree whose
/// root `fd` is.
pub fn mount_setattr(fd: BorrowedFd<'_>, attr: &MountAttr, recursive: bool) -> Result<(), Errno> {
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: mount_setattr reads `attr` (its size is given) and the empty path; the kernel
    // keeps neither.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map(drop)
}

/// Sets `MOUNT_ATTR_*` flags (only sets: flags a user namespace locks are never cleared, so
/// this works on mounts inherited from the host) on the mount tree whose root `fd` is.
pub fn set_attr(fd: BorrowedFd<'_>, set: u64, recursive: bool) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: set,
        ..MountAttr::default()
    };
    mount_setattr(fd, &attr, recursive)
}

/// Attaches a detached tree on top of the mount point `target` (an O_PATH fd):
/// `move_mount(tree, "", target, "", F_EMPTY_PATH | T_EMPTY_PATH)`.
pub fn move_onto(tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    rustix::mount::move_mount(tree, c"", target, c"", flags).map_err(from_rustix)
}

/// Attaches a detached tree at `path` (relative to the working directory).
pub fn move_to_path(tree: BorrowedFd<'_>, path: &CStr) -> Result<(), Errno> {
    rustix::mount::move_mount(
        tree.as_fd(),
        c"",
        rustix::fs::CWD,
        path,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(from_rustix)
}

/// `pivot_root(new, put_old)`.
pub fn pivot_root(new: &str, put_old: &str) -> Result<(), Errno> {
    rustix::process::pivot_root(new, put_old).map_err(from_rustix)
}
