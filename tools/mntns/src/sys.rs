//! mntns's mount helpers over [`common::sys::mount`] (whose calls and `MOUNT_ATTR_*` flags it
//! re-exports): binds with attributes, and mounting onto an already resolved O_PATH fd.
//!
//! Every mount target inside a container root is first resolved to an O_PATH fd by
//! [`crate::resolve`]; the mount is then made on `/proc/self/fd/N` (new filesystems) or with
//! `move_mount` onto the fd (binds), so no path inside the root is looked up twice.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::mount::MsFlags;

pub use common::sys::mount::{
    clone_tree, move_onto, pivot_root, set_attr, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};
pub use common::sys::process::pidfd_open;

/// `/proc/self/fd/N`: the path that names an O_PATH fd for `mount(2)`.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
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
