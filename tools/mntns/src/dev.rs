//! The container's minimal `/dev`: a `nodev` tmpfs with null, zero, full, random, urandom and tty
//! bind-mounted from the host (each host node opened O_PATH and verified by fstat to be the
//! character device it claims before it is used), `/dev/pts` (a new devpts instance) with the
//! `ptmx` link, `/dev/shm`, `/dev/mqueue` (this IPC namespace's) and the fd/stdin/stdout/
//! stderr links. Binding works the same with and without a user namespace (where mknod is not
//! allowed), as bubblewrap and crun do.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context};
use common::{debug, Fatal};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};

use crate::resolve;
use crate::sys;

/// The device nodes every container gets: name, major, minor.
pub const NODES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Opens the host's `/dev/NAME` as O_PATH and checks it is the char device `major:minor`.
pub fn open_host_node(name: &str, major: u64, minor: u64) -> anyhow::Result<OwnedFd> {
    let path = Path::new("/dev").join(name);
    let fd = nix::fcntl::open(
        &path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("unable to open {}", path.display()))?;
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let stat = nix::sys::stat::fstat(fd.as_raw_fd())
        .with_context(|| format!("unable to stat {}", path.display()))?;
    let is_char = stat.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFCHR.bits();
    let (maj, min) = (libc::major(stat.st_rdev), libc::minor(stat.st_rdev));
    if !is_char || u64::from(maj) != major || u64::from(min) != minor {
        bail!(
            "{} is not the character device {major}:{minor}: refusing to use it",
            path.display()
        );
    }
    Ok(fd)
}

/// The host device nodes, opened and verified before anything is mounted.
#[derive(Debug)]
pub struct HostNodes {
    nodes: Vec<(&'static str, OwnedFd)>,
}

impl HostNodes {
    pub fn open() -> Result<HostNodes, Fatal> {
        let mut nodes = Vec::new();
        for (name, major, minor) in NODES {
            nodes.push((name, open_host_node(name, major, minor)?));
        }
        Ok(HostNodes { nodes })
    }

    /// The verified host `/dev/null` (the source for masked files).
    pub fn null(&self) -> Option<BorrowedFd<'_>> {
        self.nodes
            .iter()
            .find(|(n, _)| *n == "null")
            .map(|(_, fd)| fd.as_fd())
    }
}

/// Makes the whole new root tree `nodev` (before /proc, /sys and /dev are mounted on it).
///
/// There is no device cgroup: a container root with CAP_MKNOD could make the node of any host
/// device (a disk, a loop device, kvm) and open it. Only the verified nodes bound into `/dev`
/// keep `dev`; the root, `/dev` itself, volumes and tmpfs mounts do not.
pub fn nodev_root(root: BorrowedFd<'_>) -> Result<(), Fatal> {
    debug::step("make the root nodev", || {
        sys::set_attr(root, sys::MOUNT_ATTR_NODEV, true)
    })
    .map_err(|e| Fatal::from(sys::new_api(e)).context("unable to make the new root nodev"))
}

/// Builds `/dev` inside `root`.
pub fn setup(root: BorrowedFd<'_>, host: &HostNodes) -> Result<(), Fatal> {
    debug::step("set up /dev", || build(root, host))
        .map_err(|e| Fatal::from(e).context("unable to set up /dev"))
}

fn build(root: BorrowedFd<'_>, host: &HostNodes) -> anyhow::Result<()> {
    // Never through a symlink of the image (CVE-2026-41579, CVE-2026-47766).
    let target = resolve::top_dir(root, "dev")?;
    sys::mount_fs(
        "tmpfs",
        target.as_fd(),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .context("unable to mount a tmpfs on /dev")?;
    // The fresh tmpfs, reached through the fd of its mount point.
    let dev = reopen_dir(root)?;
    for (name, source) in &host.nodes {
        let fd = nix::fcntl::openat(
            Some(dev.as_raw_fd()),
            *name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o666),
        )
        .with_context(|| format!("unable to create /dev/{name}"))?;
        // SAFETY: a fresh descriptor; wrapping it closes it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        let mount_point = resolve::open_path(dev.as_fd(), OsStr::new(name))?;
        sys::bind(
            source.as_fd(),
            mount_point.as_fd(),
            false,
            sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC,
        )
        .with_context(|| format!("unable to bind the host's /dev/{name}"))?;
    }
    for dir in ["pts", "shm", "mqueue"] {
        nix::sys::stat::mkdirat(Some(dev.as_raw_fd()), dir, Mode::from_bits_truncate(0o755))
            .with_context(|| format!("unable to create /dev/{dir}"))?;
    }
    mount_pts(dev.as_fd())?;
    let shm = resolve::open_path(dev.as_fd(), OsStr::new("shm"))?;
    // Source "shm", as runc and Docker name it (mountinfo shows it; OCI checks compare it).
    nix::mount::mount(
        Some("shm"),
        &sys::fd_path(shm.as_fd()),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
    .context("unable to mount /dev/shm")?;
    mount_mqueue(dev.as_fd())?;
    for (name, target) in LINKS {
        nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), name)
            .with_context(|| format!("unable to create the link /dev/{name}"))?;
    }
    Ok(())
}

/// After mounting on `root/dev`, a fresh fd to the new mount's root (the old fd names the
/// directory underneath).
pub(crate) fn reopen_dir(root: BorrowedFd<'_>) -> anyhow::Result<OwnedFd> {
    let fd = resolve::top_dir(root, "dev")?;
    let dir = nix::fcntl::openat(
        Some(fd.as_raw_fd()),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("unable to open /dev")?;
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(dir) })
}

fn mount_pts(dev: BorrowedFd<'_>) -> anyhow::Result<()> {
    let pts = resolve::open_path(dev, OsStr::new("pts"))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    let with_gid = "newinstance,ptmxmode=0666,mode=0620,gid=5";
    // Asking for gid 5 (tty) where it is not mapped fails, and the kernel logs a line per
    // container start (`devpts: Invalid gid`): ask only when it is mapped.
    let first = if gid_is_mapped(5) {
        sys::mount_fs("devpts", pts.as_fd(), flags, Some(with_gid))
    } else {
        Err(Errno::EINVAL)
    };
    match first {
        Ok(()) => Ok(()),
        // gid 5 (tty) is not mapped in this user namespace.
        Err(Errno::EINVAL) => sys::mount_fs(
            "devpts",
            pts.as_fd(),
            flags,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        )
        .context("unable to mount /dev/pts"),
        Err(e) => Err(anyhow::Error::from(e).context("unable to mount /dev/pts")),
    }
}

/// Whether `gid` is mapped in this process's user namespace (`/proc/self/gid_map`).
fn gid_is_mapped(gid: u32) -> bool {
    common::procfs::read("/proc/self/gid_map").is_ok_and(|map| {
        map.lines().any(|line| {
            let f: Vec<u64> = line
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            matches!(f[..], [inner, _, count] if (inner..inner + count).contains(&u64::from(gid)))
        })
    })
}

/// mqueue shows the IPC namespace of the mounter, and may be mounted only by a user
/// namespace that owns it: without ipcns in a rootless chain, /dev/mqueue stays empty.
fn mount_mqueue(dev: BorrowedFd<'_>) -> anyhow::Result<()> {
    let mq = resolve::open_path(dev, OsStr::new("mqueue"))?;
    match sys::mount_fs(
        "mqueue",
        mq.as_fd(),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) => {
            debug::note("no /dev/mqueue: this IPC namespace is not owned by our user namespace (put ipcns before mntns)");
            Ok(())
        }
        Err(e) => Err(anyhow::Error::from(e).context("unable to mount /dev/mqueue")),
    }
}
