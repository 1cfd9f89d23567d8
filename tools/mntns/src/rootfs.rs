//! The new root: `--rootfs DIR` bound onto itself (pivot_root needs a mount point), then
//! `pivot_root(".", ".")` and the old root detached, as runc and crun do: no put_old
//! directory is needed, and nothing of the host stays reachable through the mount tree.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::Context;
use common::{debug, Fatal};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::resolve;
use crate::sys;

/// Bind-mounts DIR onto itself (recursively) and returns an O_PATH fd of the new mount.
pub fn bind_self(dir: &Path) -> Result<OwnedFd, Fatal> {
    debug::step(format_args!("bind {} onto itself", dir.display()), || {
        mount(
            Some(dir),
            dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
    })
    .map_err(|e| Fatal::from(e).context(format!("unable to bind {} onto itself", dir.display())))?;
    Ok(resolve::open_host_dir(dir)?)
}

/// Attaches the idmapped tree of DIR (handed down by `userns --idmap`) on DIR and returns an
/// O_PATH fd of it: the new root, showing DIR's own mount only (not its submounts).
pub fn attach_tree(dir: &Path, tree: OwnedFd) -> Result<OwnedFd, Fatal> {
    debug::step(
        format_args!("attach the idmapped tree of {}", dir.display()),
        || -> anyhow::Result<OwnedFd> {
            let target = resolve::open_host_dir(dir)?;
            sys::move_onto(tree.as_fd(), target.as_fd())?;
            resolve::open_host_dir(dir)
        },
    )
    .map_err(|e| {
        Fatal::from(e).context(format!(
            "unable to attach the idmapped tree of {}",
            dir.display()
        ))
    })
}

/// Makes `root` the root of this mount namespace and detaches the old one.
pub fn pivot(root: &OwnedFd) -> Result<(), Fatal> {
    debug::step("pivot_root", || -> anyhow::Result<()> {
        nix::unistd::fchdir(root.as_fd().as_raw_fd()).context("unable to enter the new root")?;
        sys::pivot_root(".", ".").context("unable to pivot_root into the new root")?;
        // The old root now sits on top of the new one: make sure its detach cannot propagate
        // anywhere, then drop it.
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("unable to make the old root private")?;
        umount2(".", MntFlags::MNT_DETACH).context("unable to detach the old root")?;
        nix::unistd::chdir("/").context("unable to enter /")?;
        Ok(())
    })
    .map_err(Fatal::from)
}

/// Makes the root mount read-only (`--read-only`); locked flags are kept: only RDONLY is set.
pub fn make_root_read_only() -> Result<(), Fatal> {
    let root = resolve::open_host_dir(Path::new("/"))?;
    debug::step("remount / read-only", || {
        sys::set_attr(root.as_fd(), sys::MOUNT_ATTR_RDONLY, false)
    })
    .map_err(|e| Fatal::from(sys::new_api(e)).context("unable to make the root read-only"))
}
