//! Thin wrappers over the mount syscalls nix does not cover (the new mount API: `open_tree`,
//! `move_mount`, `mount_setattr`), and mounting onto an already resolved O_PATH fd.
//!
//! Every mount target inside a container root is first resolved to an O_PATH fd by
//! [`crate::resolve`]; the mount is then made on `/proc/self/fd/N` (new filesystems) or with
//! `move_mount` onto the fd (binds), so no path inside the root is looked up twice.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::mount::MsFlags;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `/proc/self/fd/N`: the path that names an O_PATH fd for `mount(2)`.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// A detached copy of the mount tree at `source` (recursive when asked), as `mount --bind`
/// would attach it.
pub fn clone_tree(source: BorrowedFd<'_>, recursive: bool) -> Result<OwnedFd, Errno> {
    let empty = c"";
    let mut flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: open_tree takes a valid fd, a NUL-terminated path and flags; it returns a new fd
    // that we own.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            source.as_raw_fd(),
            empty.as_ptr(),
            flags,
        )
    };
    let fd = Errno::result(rc)?;
    // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sets mount attributes (only sets: locked flags are never cleared, so this works inside a
/// user namespace on mounts inherited from the host) on the mount tree whose root `fd` is.
pub fn set_attr(fd: BorrowedFd<'_>, set: u64, recursive: bool) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let empty = c"";
    // SAFETY: mount_setattr reads `attr` (size given) and the empty path; no memory is kept.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map(drop)
}

/// Attaches a detached tree (from [`clone_tree`]) on top of the resolved `target`.
pub fn move_onto(tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
    let empty = c"";
    // SAFETY: move_mount takes two fds and two empty NUL-terminated paths.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(rc).map(drop)
}

/// Bind-mounts `source` onto `target` (both resolved fds), with mount attributes `attrs` set
/// on the whole new tree before it becomes visible.
///
/// Needs the new mount API (Linux 5.12, for `mount_setattr`): the attributes are set on the
/// detached tree, so a read-only bind is never writable for an instant, and only the asked
/// flags are set, so the flags a user namespace locks (nosuid, nodev, noexec, atime) are kept
/// as they are without reading them back from statvfs.
pub fn bind(
    source: BorrowedFd<'_>,
    target: BorrowedFd<'_>,
    recursive: bool,
    attrs: u64,
) -> anyhow::Result<()> {
    let tree = clone_tree(source, recursive).map_err(new_api)?;
    if attrs != 0 {
        set_attr(tree.as_fd_ref(), attrs, recursive).map_err(new_api)?;
    }
    move_onto(tree.as_fd_ref(), target).map_err(anyhow::Error::from)
}

/// ENOSYS from the new mount API: say which kernel is needed.
pub fn new_api(errno: Errno) -> anyhow::Error {
    let error = anyhow::Error::from(errno);
    if errno == Errno::ENOSYS {
        error.context("this kernel lacks the new mount API (open_tree, mount_setattr): mntns needs Linux 5.12 or later")
    } else {
        error
    }
}

/// Mounts a new filesystem of type `fstype` on the resolved `target`.
pub fn mount_fs(
    fstype: &str,
    target: BorrowedFd<'_>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), Errno> {
    nix::mount::mount(Some(fstype), &fd_path(target), Some(fstype), flags, data)
}

/// `pidfd_open(2)` on a process.
pub fn pidfd_open(pid: libc::pid_t) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd we own.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = Errno::result(rc)?;
    // SAFETY: a fresh descriptor nothing else owns (pidfds are always close-on-exec).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `pivot_root(new, put_old)`.
pub fn pivot_root(new: &str, put_old: &str) -> Result<(), Errno> {
    let new = CString::new(new).map_err(|_| Errno::EINVAL)?;
    let old = CString::new(put_old).map_err(|_| Errno::EINVAL)?;
    // SAFETY: both arguments are valid NUL-terminated strings.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, new.as_ptr(), old.as_ptr()) };
    Errno::result(rc).map(drop)
}

/// Borrowing helper: `OwnedFd::as_fd` without importing the trait at every call site.
pub trait AsFdRef {
    fn as_fd_ref(&self) -> BorrowedFd<'_>;
}

impl AsFdRef for OwnedFd {
    fn as_fd_ref(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.as_fd()
    }
}
