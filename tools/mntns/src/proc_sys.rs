//! `/proc` and `/sys` of a container, and runc's masked and read-only paths.
//!
//! /proc shows the pid namespace of its mounter, and inside a user namespace the kernel
//! allows a new proc (and sysfs) only while a fully visible one is in the mount namespace
//! ("mount_too_revealing"): both are mounted before the old root is detached. Each mount
//! point must be a real directory of the root (no symlink is followed for it), and the new
//! mount is checked by its filesystem magic before anything is mounted over its files.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context};
use common::{debug, Fatal};
use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::stat::SFlag;

use crate::resolve::{self, Create};
use crate::sys;

/// runc's masked paths, plus what Docker adds (/proc/interrupts, powercap).
pub const MASKED: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// runc's read-only paths.
pub const READ_ONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;

const SAFE: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// Checks that `/name` in the root is now a mount of the filesystem `magic`.
fn check_magic(root: BorrowedFd<'_>, name: &str, magic: i64) -> anyhow::Result<()> {
    let fd = resolve::open_path(root, OsStr::new(name))?;
    let stat = nix::sys::statfs::fstatfs(fd.as_fd())?;
    if stat.filesystem_type().0 != magic {
        bail!("/{name} is not the filesystem just mounted there");
    }
    Ok(())
}

/// Mounts a fresh /proc at `/proc` of the root.
pub fn mount_proc(root: BorrowedFd<'_>) -> Result<(), Fatal> {
    debug::step("mount /proc", || -> anyhow::Result<()> {
        let target = resolve::top_dir(root, "proc")?;
        match sys::mount_fs("proc", target.as_fd(), SAFE, None) {
            Ok(()) => {}
            Err(Errno::EPERM) if !common::state::is_host_root() => {
                // Rootless without a pid namespace of our own: the kernel refuses a new proc
                // for the host's pid namespace; the container sees that namespace anyway, so
                // bind the host's /proc (masked and made read-only below like a new one).
                debug::note("proc refused (pid namespace not ours): binding the host's /proc");
                let host = resolve::open_host_dir(Path::new("/proc"))?;
                sys::bind(host.as_fd(), target.as_fd(), true, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC)
                    .context("unable to bind the host's /proc")?;
            }
            Err(e) => return Err(anyhow::Error::from(e).context("unable to mount proc")),
        }
        check_magic(root, "proc", PROC_SUPER_MAGIC)
    })
    .map_err(|e| {
        let fatal = Fatal::from(e).context("unable to mount /proc");
        // The hint follows the cause: a root that cannot take the mount point is not a
        // pid namespace problem.
        let hint = if caused_by(&fatal, Errno::EROFS) {
            "the root has no /proc directory and is read-only: add an empty /proc to it"
        } else {
            "a new /proc needs a pid namespace owned by our user namespace (put pidns before mntns), and a fully visible /proc in this mount namespace"
        };
        fatal.with_hint(hint)
    })
}

/// Whether `errno` is somewhere in the causes of `fatal`.
fn caused_by(fatal: &Fatal, errno: Errno) -> bool {
    fatal.error.chain().any(|cause| {
        cause.downcast_ref::<Errno>() == Some(&errno)
            || cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.raw_os_error() == Some(errno as i32))
    })
}

/// Mounts /sys read-only: a new sysfs when this network namespace lets us (it is owned by
/// our user namespace), else a read-only recursive bind of the host's /sys.
pub fn mount_sys(root: BorrowedFd<'_>) -> Result<(), Fatal> {
    debug::step("mount /sys", || -> anyhow::Result<()> {
        let target = resolve::top_dir(root, "sys")?;
        match sys::mount_fs("sysfs", target.as_fd(), SAFE | MsFlags::MS_RDONLY, None) {
            Ok(()) => check_magic(root, "sys", SYSFS_MAGIC),
            Err(Errno::EPERM) => {
                debug::note(
                    "sysfs refused (network namespace not ours): binding the host's /sys read-only",
                );
                let host = resolve::open_host_dir(Path::new("/sys"))?;
                sys::bind(
                    host.as_fd(),
                    target.as_fd(),
                    true,
                    sys::MOUNT_ATTR_RDONLY
                        | sys::MOUNT_ATTR_NOSUID
                        | sys::MOUNT_ATTR_NODEV
                        | sys::MOUNT_ATTR_NOEXEC,
                )
                .context("unable to bind the host's /sys")
            }
            Err(e) => Err(anyhow::Error::from(e).context("unable to mount sysfs")),
        }
    })
    .map_err(|e| Fatal::from(e).context("unable to mount /sys"))
}

/// Hides the masked paths: files under a bind of the verified /dev/null, directories under an
/// empty read-only tmpfs. Paths the kernel does not have are skipped.
pub fn mask(root: BorrowedFd<'_>, null: BorrowedFd<'_>) -> Result<(), Fatal> {
    debug::step("mask paths", || -> anyhow::Result<()> {
        for path in MASKED {
            let Some(target) = existing(root, path)? else {
                continue;
            };
            if resolve::file_type(target.as_fd())? == SFlag::S_IFDIR {
                sys::mount_fs(
                    "tmpfs",
                    target.as_fd(),
                    SAFE | MsFlags::MS_RDONLY,
                    Some("size=4k,nr_inodes=1,mode=0555"),
                )
                .with_context(|| format!("unable to mask {path}"))?;
            } else {
                sys::bind(null, target.as_fd(), false, 0)
                    .with_context(|| format!("unable to mask {path}"))?;
            }
        }
        Ok(())
    })
    .map_err(Fatal::from)
}

/// Makes the read-only paths read-only (recursively, keeping their other flags).
pub fn read_only(root: BorrowedFd<'_>) -> Result<(), Fatal> {
    debug::step("read-only paths", || -> anyhow::Result<()> {
        for path in READ_ONLY {
            let Some(target) = existing(root, path)? else {
                continue;
            };
            sys::bind(
                target.as_fd(),
                target.as_fd(),
                true,
                sys::MOUNT_ATTR_RDONLY
                    | sys::MOUNT_ATTR_NOSUID
                    | sys::MOUNT_ATTR_NODEV
                    | sys::MOUNT_ATTR_NOEXEC,
            )
            .with_context(|| format!("unable to make {path} read-only"))?;
        }
        Ok(())
    })
    .map_err(Fatal::from)
}

fn existing(root: BorrowedFd<'_>, path: &str) -> anyhow::Result<Option<OwnedFd>> {
    match resolve::open_in_root(root, Path::new(path), Create::No) {
        Ok(fd) => Ok(Some(fd)),
        Err(e)
            if e.chain()
                .any(|c| c.downcast_ref::<Errno>() == Some(&Errno::ENOENT)) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Mounts a fresh /proc on the host tree (`--proc` without a new root), like
/// `unshare --mount-proc`: /proc is made private first so the mount cannot propagate.
pub fn mount_host_proc() -> Result<(), Fatal> {
    debug::step("mount /proc", || -> anyhow::Result<()> {
        nix::mount::mount(
            None::<&str>,
            "/proc",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("unable to make /proc private")?;
        nix::mount::mount(Some("proc"), "/proc", Some("proc"), SAFE, None::<&str>)
            .context("unable to mount proc on /proc")?;
        Ok(())
    })
    .map_err(|e| {
        Fatal::from(e)
            .context("unable to mount /proc")
            .with_hint("a new /proc needs a pid namespace owned by our user namespace (put pidns before mntns)")
    })
}

/// The filesystem magic of an fd's filesystem.
pub fn is_proc_or_sys(fd: BorrowedFd<'_>) -> bool {
    nix::sys::statfs::fstatfs(fd)
        .map(|s| {
            let magic = s.filesystem_type().0;
            magic == PROC_SUPER_MAGIC || magic == SYSFS_MAGIC
        })
        .unwrap_or(false)
}
