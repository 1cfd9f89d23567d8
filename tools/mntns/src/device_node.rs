//! `--device-node /dev/PATH:TYPE:MAJOR:MINOR[:MODE[:UID[:GID]]]`: extra device nodes in a new
//! root's /dev (OCI `linux.devices`, as runc makes them), with the owner and mode asked.
//!
//! The container's /dev stays `nodev` (dev.rs says why): each node is made by mknod in a
//! small staging tmpfs that allows devices, set to its owner and mode there, and bound alone
//! onto its place in /dev; the staging mount is then detached. Only the nodes asked for
//! work, each through its own bind, as the six default nodes do. In a user namespace mknod
//! is refused: the host's node at the same path is bound instead (runc does the same), once
//! fstat shows it is the device asked for; its owner and mode are the host's.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use common::{debug, Fatal};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};

use crate::resolve;
use crate::sys;

/// One node to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceNode {
    /// Below /dev, e.g. `net/tun`.
    pub path: PathBuf,
    /// `c`, `b` or `p` (a FIFO; `u` is `c`).
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl std::str::FromStr for DeviceNode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid device node '{text}': {why}");
        let parts: Vec<&str> = text.split(':').collect();
        if !(4..=7).contains(&parts.len()) {
            return Err(bad(
                "expected /dev/PATH:TYPE:MAJOR:MINOR[:MODE[:UID[:GID]]]",
            ));
        }
        let path = Path::new(parts[0])
            .strip_prefix("/dev")
            .map_err(|_| bad("the path must be below /dev"))?
            .to_path_buf();
        let clean = path.components().all(|c| matches!(c, Component::Normal(_)));
        if path.as_os_str().is_empty() || !clean {
            return Err(bad("the path must name a file below /dev, without . or .."));
        }
        let kind = match parts[1] {
            "c" | "u" => 'c',
            "b" => 'b',
            "p" => 'p',
            _ => return Err(bad("the type must be c, b, u or p")),
        };
        let number = |i: usize, what: &str| -> Result<u64, String> {
            parts[i]
                .parse()
                .map_err(|_| bad(&format!("{what} is not a number")))
        };
        let (major, minor) = (number(2, "MAJOR")?, number(3, "MINOR")?);
        let mode = match parts.get(4) {
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| bad("MODE is not an octal mode"))?,
            None => 0o666,
        };
        let id = |i: usize, what: &str| -> Result<u32, String> {
            parts.get(i).map_or(Ok(0), |v| {
                v.parse()
                    .map_err(|_| bad(&format!("{what} is not a number")))
            })
        };
        Ok(DeviceNode {
            path,
            kind,
            major,
            minor,
            mode,
            uid: id(5, "UID")?,
            gid: id(6, "GID")?,
        })
    }
}

impl DeviceNode {
    fn file_type(&self) -> SFlag {
        match self.kind {
            'b' => SFlag::S_IFBLK,
            'p' => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        }
    }

    fn rdev(&self) -> libc::dev_t {
        if self.kind == 'p' {
            0
        } else {
            libc::makedev(self.major as u32, self.minor as u32)
        }
    }
}

/// Makes `nodes` in the /dev of the new root `root` (after dev.rs built it).
pub fn make(root: BorrowedFd<'_>, nodes: &[DeviceNode]) -> Result<(), Fatal> {
    if nodes.is_empty() {
        return Ok(());
    }
    debug::step("make the --device-node nodes", || make_all(root, nodes))
        .map_err(|e| Fatal::from(e).context("unable to make the device nodes"))
}

const STAGING: &str = ".mntns-device-nodes";

fn make_all(root: BorrowedFd<'_>, nodes: &[DeviceNode]) -> anyhow::Result<()> {
    let dev = crate::dev::reopen_dir(root)?;
    nix::sys::stat::mkdirat(
        Some(dev.as_raw_fd()),
        STAGING,
        Mode::from_bits_truncate(0o700),
    )
    .context("unable to create the staging directory in /dev")?;
    let staging_dir = resolve::open_path(dev.as_fd(), OsStr::new(STAGING))?;
    // A tmpfs that allows device nodes, seen by nothing but this process until detached.
    let staged = sys::mount_fs(
        "tmpfs",
        staging_dir.as_fd(),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=700,size=16k"),
    );
    let result = match staged {
        Ok(()) => {
            let staging = open_dir(dev.as_fd(), OsStr::new(STAGING))?;
            let made = place_all(dev.as_fd(), Some(staging.as_fd()), nodes);
            let _ = nix::mount::umount2(
                &sys::fd_path(staging_dir.as_fd()),
                nix::mount::MntFlags::MNT_DETACH,
            );
            made
        }
        // A user namespace may not mount a tmpfs allowing devices... nor mknod.
        Err(Errno::EPERM) => place_all(dev.as_fd(), None, nodes),
        Err(e) => Err(anyhow::Error::from(e).context("unable to mount the staging tmpfs")),
    };
    let _ = nix::unistd::unlinkat(
        Some(dev.as_raw_fd()),
        STAGING,
        nix::unistd::UnlinkatFlags::RemoveDir,
    );
    result
}

fn place_all(
    dev: BorrowedFd<'_>,
    staging: Option<BorrowedFd<'_>>,
    nodes: &[DeviceNode],
) -> anyhow::Result<()> {
    for (i, node) in nodes.iter().enumerate() {
        let shown = Path::new("/dev").join(&node.path);
        let source = match staging {
            Some(dir) => match mknod(dir, &format!("n{i}"), node) {
                Ok(fd) => fd,
                Err(Errno::EPERM) => host_node(node)?,
                Err(e) => {
                    return Err(anyhow::Error::from(e)
                        .context(format!("unable to make the node {}", shown.display())))
                }
            },
            None => host_node(node)?,
        };
        let target = mount_point(dev, &node.path)
            .with_context(|| format!("unable to create {}", shown.display()))?;
        sys::bind(
            source.as_fd(),
            target.as_fd(),
            false,
            sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC,
        )
        .with_context(|| format!("unable to bind the node onto {}", shown.display()))?;
    }
    Ok(())
}

/// mknod in the staging tmpfs with the owner and mode asked; an O_PATH fd to it.
fn mknod(dir: BorrowedFd<'_>, name: &str, node: &DeviceNode) -> Result<OwnedFd, Errno> {
    nix::sys::stat::mknodat(
        Some(dir.as_raw_fd()),
        name,
        node.file_type(),
        Mode::from_bits_truncate(0o600),
        node.rdev(),
    )?;
    nix::unistd::fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(node.uid.into()),
        Some(node.gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    // After chown (which clears set-id bits), and without the umask mknod applied.
    nix::sys::stat::fchmodat(
        Some(dir.as_raw_fd()),
        name,
        Mode::from_bits_truncate(node.mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )?;
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The host's node at the same path, checked to be the device asked for.
fn host_node(node: &DeviceNode) -> anyhow::Result<OwnedFd> {
    let path = Path::new("/dev").join(&node.path);
    let fd = nix::fcntl::open(
        &path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| {
        format!(
            "mknod is not allowed here (a user namespace) and the host has no {} to bind",
            path.display()
        )
    })?;
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let stat = nix::sys::stat::fstat(fd.as_raw_fd())?;
    let same_type = stat.st_mode & SFlag::S_IFMT.bits() == node.file_type().bits();
    if !same_type || (node.kind != 'p' && stat.st_rdev != node.rdev()) {
        bail!(
            "the host's {} is not the device {}:{} asked for: refusing to bind it",
            path.display(),
            node.major,
            node.minor
        );
    }
    Ok(fd)
}

/// An empty file at `path` below /dev (its directories made), as an O_PATH fd.
fn mount_point(dev: BorrowedFd<'_>, path: &Path) -> anyhow::Result<OwnedFd> {
    let mut dir = open_dir(dev, OsStr::new("."))?;
    let parent = path.parent().unwrap_or(Path::new(""));
    for part in parent.components() {
        let name = part.as_os_str();
        match nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o755))
        {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        dir = open_dir(dir.as_fd(), name)?;
    }
    let name = path.file_name().unwrap_or_default();
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| match e {
        Errno::EEXIST => anyhow::anyhow!("it already exists (a default node, or given twice)"),
        e => e.into(),
    })?;
    // SAFETY: a fresh descriptor; wrapping it closes it.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(resolve::open_path(dir.as_fd(), name)?)
}

/// A directory below `parent`, never through a symlink.
fn open_dir(parent: BorrowedFd<'_>, name: &OsStr) -> anyhow::Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        Some(parent.as_raw_fd()),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_as_oci_devices() {
        let n: DeviceNode = "/dev/net/tun:c:10:200:0620:1000:5"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n.path, PathBuf::from("net/tun"));
        assert_eq!(
            (n.kind, n.major, n.minor, n.mode, n.uid, n.gid),
            ('c', 10, 200, 0o620, 1000, 5)
        );
        let d: Result<DeviceNode, _> = "/dev/loop9:b:7:9".parse();
        assert_eq!(d.map(|d| (d.mode, d.uid)), Ok((0o666, 0)));
        for bad in [
            "/etc/x:c:1:3",
            "/dev/../etc/x:c:1:3",
            "/dev:c:1:3",
            "/dev/x:z:1:3",
            "/dev/x:c:one:3",
            "/dev/x:c:1:3:999",
            "/dev/x:c:1",
        ] {
            assert!(bad.parse::<DeviceNode>().is_err(), "{bad}");
        }
    }
}
