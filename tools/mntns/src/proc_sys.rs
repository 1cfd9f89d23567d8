//! `/proc` and `/sys` of a container, and runc's masked and read-only paths.
//!
//! /proc shows the pid namespace of its mounter, and inside a user namespace the kernel
//! allows a new proc (and sysfs) only while a fully visible one is in the mount namespace
//! ("mount_too_revealing"): both are mounted before the old root is detached. Each mount
//! point must be a real directory of the root (no symlink is followed for it), and the new
//! mount is checked by its filesystem magic before anything is mounted over its files.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

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
const SYSFS_MAGIC: i64 = common::sysfs::SYSFS_MAGIC;

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
        Fatal::from(e)
            .context("unable to mount /proc")
            .with_hint("a new /proc needs a pid namespace owned by our user namespace (put pidns before mntns), and a fully visible /proc in this mount namespace")
    })
}

/// Where /sys of a container comes from (the `"sys"` field of `--info-fd`).
pub const SYS_HANDED_DOWN: &str = "handed-down";
pub const SYS_NEW: &str = "new";
pub const SYS_HOST_BIND: &str = "host-bind";

/// Mounts /sys read-only, showing the container's network namespace where possible: the
/// sysfs an earlier netns handed down (`NSCHAIN_SYSFS_FD`, common::sysfs), else a new sysfs
/// when this network namespace lets us (it is owned by our user namespace), else a read-only
/// recursive bind of the host's /sys, said on stderr when its interfaces are not this network
/// namespace's. Returns which of the three.
pub fn mount_sys(root: BorrowedFd<'_>, handed: Option<OwnedFd>) -> Result<&'static str, Fatal> {
    debug::step("mount /sys", || -> anyhow::Result<&'static str> {
        let target = resolve::top_dir(root, "sys")?;
        if let Some(sysfs) = handed {
            // A clone made now, when the kernel allows it: mounts are listed in the order of
            // their creation (mount ids), and /sys then follows /proc as in the OCI config.
            let sysfs = sys::clone_tree(sysfs.as_fd(), false).unwrap_or(sysfs);
            sys::move_onto(sysfs.as_fd(), target.as_fd())
                .with_context(|| {
                    format!(
                        "unable to attach the sysfs named in {} (not a detached sysfs mount)",
                        common::sysfs::VAR
                    )
                })?;
            // Now a mount of this namespace: whatever the producer set, it is read-only here.
            sys::set_attr(
                sysfs.as_fd(),
                sys::MOUNT_ATTR_RDONLY
                    | sys::MOUNT_ATTR_NOSUID
                    | sys::MOUNT_ATTR_NODEV
                    | sys::MOUNT_ATTR_NOEXEC,
                false,
            )
            .context("unable to make the handed-down sysfs read-only")?;
            check_magic(root, "sys", SYSFS_MAGIC)?;
            return Ok(SYS_HANDED_DOWN);
        }
        match sys::mount_fs("sysfs", target.as_fd(), SAFE | MsFlags::MS_RDONLY, None) {
            Ok(()) => check_magic(root, "sys", SYSFS_MAGIC).map(|()| SYS_NEW),
            Err(Errno::EPERM) => {
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
                .context("unable to bind the host's /sys")?;
                // Said only when it misleads: without a netns of its own (no netns in the
                // chain), the host's /sys shows the container's network anyway.
                if !lists_own_interfaces(host.as_fd()) {
                    common::report::warning(
                        "/sys is a read-only bind of the host's, with the host's network interfaces: the kernel allows a new sysfs only for a network namespace of this user namespace, and no netns before userns (as host root) handed one down",
                    );
                }
                Ok(SYS_HOST_BIND)
            }
            Err(e) => Err(anyhow::Error::from(e).context("unable to mount sysfs")),
        }
    })
    .map_err(|e| Fatal::from(e).context("unable to mount /sys"))
}

/// Whether `host` (the host's /sys) lists exactly the interfaces of this process's network
/// namespace (`/proc/self/net/dev`).
fn lists_own_interfaces(host: BorrowedFd<'_>) -> bool {
    let listed = std::fs::read_dir(sys::fd_path(host).join("class/net")).map(|dir| {
        let mut names: Vec<String> = dir
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    });
    let own = std::fs::read_to_string("/proc/self/net/dev").map(|text| {
        let mut names: Vec<String> = text
            .lines()
            .skip(2)
            .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_owned()))
            .collect();
        names.sort();
        names
    });
    matches!((listed, own), (Ok(a), Ok(b)) if a == b)
}

/// Hides the masked paths: files under a bind of the verified /dev/null, directories under an
/// empty read-only tmpfs. Paths the kernel does not have are skipped.
/// `extra` (`--mask`) adds to the defaults, never replaces them.
pub fn mask(root: BorrowedFd<'_>, null: BorrowedFd<'_>, extra: &[PathBuf]) -> Result<(), Fatal> {
    debug::step("mask paths", || -> anyhow::Result<()> {
        let mut parents = Parents::new(root);
        for path in with_extra(&MASKED, extra) {
            let Some((target, kind)) = parents.existing(path)? else {
                continue;
            };
            if kind == SFlag::S_IFDIR {
                sys::mount_fs(
                    "tmpfs",
                    target.as_fd(),
                    SAFE | MsFlags::MS_RDONLY,
                    Some("size=4k,nr_inodes=1,mode=0555"),
                )
                .with_context(|| format!("unable to mask {}", path.display()))?;
            } else {
                sys::bind(null, target.as_fd(), false, 0)
                    .with_context(|| format!("unable to mask {}", path.display()))?;
            }
            parents.mounted_on(path);
        }
        Ok(())
    })
    .map_err(Fatal::from)
}

/// Makes the read-only paths read-only (recursively, keeping their other flags).
/// `extra` (`--read-only-path`) adds to the defaults.
pub fn read_only(root: BorrowedFd<'_>, extra: &[PathBuf]) -> Result<(), Fatal> {
    debug::step("read-only paths", || -> anyhow::Result<()> {
        let mut parents = Parents::new(root);
        for path in with_extra(&READ_ONLY, extra) {
            let Some((target, _)) = parents.existing(path)? else {
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
            .with_context(|| format!("unable to make {} read-only", path.display()))?;
            parents.mounted_on(path);
        }
        Ok(())
    })
    .map_err(Fatal::from)
}

/// The parent directories of the masked and read-only paths, each resolved inside the root
/// once (ten of the defaults are in /proc): a path then costs one openat and one fstat.
struct Parents<'a> {
    root: BorrowedFd<'a>,
    /// A parent's path and its directory (None: it does not exist).
    open: Vec<(PathBuf, Option<OwnedFd>)>,
}

impl<'a> Parents<'a> {
    fn new(root: BorrowedFd<'a>) -> Parents<'a> {
        Parents {
            root,
            open: Vec::new(),
        }
    }

    /// `path` opened (O_PATH, inside the root) with its file type; None if it is missing.
    /// A last component that is a symlink, or anything unusual, takes the full resolution.
    fn existing(&mut self, path: &Path) -> anyhow::Result<Option<(OwnedFd, SFlag)>> {
        let full = |root| -> anyhow::Result<Option<(OwnedFd, SFlag)>> {
            let Some(fd) = existing(root, path)? else {
                return Ok(None);
            };
            let kind = resolve::file_type(fd.as_fd())?;
            Ok(Some((fd, kind)))
        };
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return full(self.root);
        };
        let at = match self.open.iter().position(|(p, _)| p == parent) {
            Some(at) => at,
            None => {
                let dir = existing(self.root, parent)?;
                self.open.push((parent.to_path_buf(), dir));
                self.open.len() - 1
            }
        };
        let Some(dir) = &self.open[at].1 else {
            return Ok(None);
        };
        match resolve::open_path(dir.as_fd(), name) {
            Ok(fd) => match resolve::file_type(fd.as_fd())? {
                SFlag::S_IFLNK => full(self.root),
                kind => Ok(Some((fd, kind))),
            },
            Err(Errno::ENOENT) => Ok(None),
            Err(_) => full(self.root),
        }
    }

    /// Something was mounted on `path`: a directory opened at or below it now lies under
    /// that mount, so it is resolved again when next needed.
    fn mounted_on(&mut self, path: &Path) {
        self.open.retain(|(p, _)| !p.starts_with(path));
    }
}

/// The defaults, then the extra paths that are not among them (each mounted once).
fn with_extra<'a>(defaults: &'a [&str], extra: &'a [PathBuf]) -> impl Iterator<Item = &'a Path> {
    let extra = extra
        .iter()
        .filter(|p| !defaults.iter().any(|d| Path::new(d) == p.as_path()))
        .map(PathBuf::as_path);
    defaults.iter().map(Path::new).chain(extra)
}

fn existing(root: BorrowedFd<'_>, path: impl AsRef<Path>) -> anyhow::Result<Option<OwnedFd>> {
    match resolve::open_in_root(root, path.as_ref(), Create::No) {
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
