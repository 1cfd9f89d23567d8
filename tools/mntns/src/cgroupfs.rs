//! The container's own cgroup filesystem at /sys/fs/cgroup, read-only, when the chain made
//! it a cgroup namespace (`cgroupns`): the mounts then show its cgroup as their root, as in
//! a docker container with `--cgroupns private`.
//!
//! The layout follows the host's (common::cgroupfs): one cgroup2 mount on a v2 host; on a v1
//! or hybrid one a read-only tmpfs holding one mount per hierarchy, under the names the host
//! uses (`memory`, `cpu`, `unified`, ...). The kernel allows these mounts only to a holder of
//! CAP_SYS_ADMIN over the cgroup namespace's user namespace: a cgroup namespace made before
//! `userns` (a rootful cgroupns with limits) cannot be mounted after it, and /sys/fs/cgroup
//! then stays as it was (DESIGN.md §2, rule 8: a cgroupns after userns for that).

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use anyhow::Context;
use common::cgroupfs::{Hierarchy, Kind, Layout, Version};
use common::debug;
use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use crate::resolve;
use crate::sys;

const FLAGS: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_RDONLY);

/// What happened at /sys/fs/cgroup (the `"cgroupfs"` field of `--info-fd`).
pub const MOUNTED: &str = "mounted";
/// Not this process's own cgroup namespace, or one the kernel does not let us mount.
pub const NONE: &str = "none";

/// The inode of the initial cgroup namespace (the kernel's PROC_CGROUP_INIT_INO).
const INITIAL_CGROUP_NS: u64 = 0xEFFF_FFFB;

/// Whether this process runs in a cgroup namespace of its own: not the one /proc's init is in
/// (when that can be read: a user namespace may hide it), else not the initial one.
pub fn own_namespace() -> bool {
    let inode = |p: &str| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    match (inode("/proc/self/ns/cgroup"), inode("/proc/1/ns/cgroup")) {
        (Ok(own), Ok(init)) => own != init,
        (Ok(own), Err(_)) => own != INITIAL_CGROUP_NS,
        _ => false,
    }
}

/// Mounts the container's cgroupfs at ROOT/sys/fs/cgroup (after /sys) when it has a cgroup
/// namespace; returns [`MOUNTED`] or [`NONE`].
pub fn mount(root: BorrowedFd<'_>) -> anyhow::Result<&'static str> {
    if !own_namespace() {
        return Ok(NONE);
    }
    // Nothing mounted to mirror (a host without cgroupfs, `ip netns exec`'s fresh /sys).
    let Ok(layout) = Layout::detect() else {
        debug::note("no cgroup hierarchy is mounted here: /sys/fs/cgroup stays as it is");
        return Ok(NONE);
    };
    debug::step(
        "mount /sys/fs/cgroup",
        || -> anyhow::Result<&'static str> {
            let sys = resolve::top_dir(root, "sys")?;
            let Ok(target) = open_dir(sys.as_fd(), "fs/cgroup") else {
                debug::note("no /sys/fs/cgroup in this sysfs");
                return Ok(NONE);
            };
            if layout.kind() == Kind::Unified {
                return match sys::mount_fs("cgroup2", target.as_fd(), FLAGS, None) {
                    Ok(()) => Ok(MOUNTED),
                    Err(Errno::EPERM) => Ok(NONE),
                    Err(e) => Err(anyhow::Error::from(e).context("unable to mount cgroup2")),
                };
            }
            let flags = FLAGS.difference(MsFlags::MS_RDONLY);
            sys::mount_fs("tmpfs", target.as_fd(), flags, Some("mode=755,size=64k"))
                .context("unable to mount a tmpfs at /sys/fs/cgroup")?;
            let tmpfs = open_dir(sys.as_fd(), "fs/cgroup")?;
            let mut mounted = 0;
            for h in &layout.hierarchies {
                match mount_hierarchy(tmpfs.as_fd(), h) {
                    Ok(()) => mounted += 1,
                    Err(Errno::EPERM) if mounted == 0 => break,
                    Err(e) => {
                        return Err(anyhow::Error::from(e).context(format!(
                            "unable to mount the cgroup hierarchy {}",
                            h.mount.display()
                        )))
                    }
                }
            }
            if mounted == 0 {
                // Not ours to mount (a cgroup namespace of the host's user namespace): undo.
                nix::mount::umount2(
                    &sys::fd_path(tmpfs.as_fd()),
                    nix::mount::MntFlags::MNT_DETACH,
                )
                .context("unable to unmount the tmpfs at /sys/fs/cgroup")?;
                return Ok(NONE);
            }
            nix::mount::mount(
                None::<&str>,
                &sys::fd_path(tmpfs.as_fd()),
                None::<&str>,
                FLAGS | MsFlags::MS_REMOUNT,
                Some("mode=755,size=64k"),
            )
            .context("unable to make /sys/fs/cgroup read-only")?;
            Ok(MOUNTED)
        },
    )
}

/// One hierarchy, under its host name, in the tmpfs.
fn mount_hierarchy(tmpfs: BorrowedFd<'_>, h: &Hierarchy) -> Result<(), Errno> {
    let name = h.mount.file_name().unwrap_or(OsStr::new("unified"));
    nix::sys::stat::mkdirat(
        Some(std::os::fd::AsRawFd::as_raw_fd(&tmpfs)),
        name,
        Mode::from_bits_truncate(0o555),
    )?;
    let dir = resolve::open_path(tmpfs, name)?;
    match h.version {
        Version::V2 => sys::mount_fs("cgroup2", dir.as_fd(), FLAGS, None),
        Version::V1 => {
            let options = h.controllers.join(",");
            sys::mount_fs("cgroup", dir.as_fd(), FLAGS, Some(&options))
        }
    }
}

fn open_dir(parent: BorrowedFd<'_>, path: &str) -> anyhow::Result<OwnedFd> {
    let mut fd: Option<OwnedFd> = None;
    for part in Path::new(path) {
        let at = fd.as_ref().map_or(parent, |f| f.as_fd());
        fd = Some(
            resolve::open_path(at, part).with_context(|| format!("unable to open /sys/{path}"))?,
        );
    }
    fd.context("empty path")
}
