//! Resolving a path inside a container root that the container's owner controls (DESIGN.md
//! §4: "every path inside a container root is hostile").
//!
//! The walk is component-wise: each component is opened with `O_PATH | O_NOFOLLOW` relative
//! to the fd of its parent, so the kernel never follows a symlink for us. A symlink met on
//! the way is read and resolved *inside the root* (an absolute target restarts at the root
//! fd, `..` never climbs above it), as `openat2(RESOLVE_IN_ROOT)` does. Missing components
//! can be created on the way (mkdirat, and an empty file for the last one), always relative
//! to an fd that was itself reached without leaving the root. The result is an O_PATH fd that
//! mounts are made on; no path string inside the root is ever looked up again.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

/// What to do with a missing component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    /// Fail with ENOENT.
    No,
    /// Create missing directories, the last one included.
    Dir,
    /// Create missing directories and an empty file as the last component.
    File,
    /// Stop at the first missing component (see [`missing_at_root`]).
    Probe,
}

/// Where a walk ended: at the file, or at a missing component that [`Create::No`] or
/// [`Create::Probe`] does not create. A missing component is an expected answer (most probes
/// find nothing), so it is a value, not an error: an `anyhow::Error` captures a backtrace
/// when `RUST_BACKTRACE` is set, and the first capture costs milliseconds (it sorts the
/// binary's unwind tables).
enum Walked {
    Found(OwnedFd),
    /// `name` is missing; `at_root`: right in the root's top directory.
    Missing {
        name: OsString,
        at_root: bool,
    },
}

/// Whether resolving `path` inside `root` stops at a component missing in the root's top
/// directory (through symbolic links too).
pub fn missing_at_root(root: BorrowedFd<'_>, path: &Path) -> bool {
    matches!(
        walk(root, path, Create::Probe),
        Ok(Walked::Missing { at_root: true, .. })
    )
}

/// Opens `path` inside `root` as [`open_in_root`] with [`Create::No`] does, or `None` when a
/// component is missing.
pub fn find_in_root(root: BorrowedFd<'_>, path: &Path) -> anyhow::Result<Option<OwnedFd>> {
    match walk(root, path, Create::No) {
        Ok(Walked::Found(fd)) => Ok(Some(fd)),
        Ok(Walked::Missing { .. }) => Ok(None),
        Err(e) => Err(e.context(format!(
            "unable to resolve {} inside the root",
            path.display()
        ))),
    }
}

/// The most symlinks followed in one resolution (the kernel's own limit).
const MAX_LINKS: u32 = 40;

/// Opens `path` as an O_PATH fd, resolved inside `root` (see the module docs).
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, create: Create) -> anyhow::Result<OwnedFd> {
    resolve(root, path, create)
        .with_context(|| format!("unable to resolve {} inside the root", path.display()))
}

fn components(path: &OsStr) -> impl Iterator<Item = OsString> + '_ {
    path.as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsStr::from_bytes(c).to_os_string())
}

fn resolve(root: BorrowedFd<'_>, path: &Path, create: Create) -> anyhow::Result<OwnedFd> {
    match walk(root, path, create)? {
        Walked::Found(fd) => Ok(fd),
        Walked::Missing { name, .. } => Err(anyhow::Error::from(Errno::ENOENT)
            .context(format!("unable to open {}", name.to_string_lossy()))),
    }
}

fn walk(root: BorrowedFd<'_>, path: &Path, create: Create) -> anyhow::Result<Walked> {
    let mut pending: VecDeque<OsString> = components(path.as_os_str()).collect();
    // The directories walked so far, below the root, with their names.
    let mut stack: Vec<(OwnedFd, OsString)> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name.as_bytes() == b".." {
            stack.pop();
            continue;
        }
        let last = pending.is_empty();
        let parent = stack.last().map(|(fd, _)| fd.as_fd()).unwrap_or(root);
        let fd = match open_path(parent, &name) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if matches!(create, Create::Probe | Create::No) => {
                let at_root = stack.is_empty();
                return Ok(Walked::Missing { name, at_root });
            }
            Err(Errno::ENOENT)
                if create != Create::No && crate::skeleton::must_not_write(parent)? =>
            {
                // A directory of `--rootfs DIR`: covered by a skeleton, then looked at again.
                let Some((below, dir_name)) = stack.pop() else {
                    bail!(
                        "{} is missing in the root, which is never written",
                        name.to_string_lossy()
                    );
                };
                crate::skeleton::cover(below.as_fd())?;
                let grand = stack.last().map(|(fd, _)| fd.as_fd()).unwrap_or(root);
                let covered = open_path(grand, &dir_name)
                    .with_context(|| format!("unable to open {}", dir_name.to_string_lossy()))?;
                stack.push((covered, dir_name));
                pending.push_front(name);
                continue;
            }
            Err(Errno::ENOENT) if create != Create::No => {
                make(parent, &name, if last { create } else { Create::Dir })?;
                open_path(parent, &name)
                    .with_context(|| format!("unable to open {}", name.to_string_lossy()))?
            }
            Err(e) => {
                return Err(anyhow::Error::from(e)
                    .context(format!("unable to open {}", name.to_string_lossy())))
            }
        };
        let kind = file_type(fd.as_fd())?;
        if kind == SFlag::S_IFLNK {
            links += 1;
            if links > MAX_LINKS {
                bail!("too many levels of symbolic links");
            }
            let target = nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "")
                .context("unable to read a symbolic link")?;
            if target.as_bytes().first() == Some(&b'/') {
                stack.clear();
            }
            for component in components(&target).collect::<Vec<_>>().into_iter().rev() {
                pending.push_front(component);
            }
            continue;
        }
        if !last && kind != SFlag::S_IFDIR {
            return Err(anyhow::Error::from(Errno::ENOTDIR)
                .context(format!("{} is not a directory", name.to_string_lossy())));
        }
        stack.push((fd, name));
    }
    match stack.pop() {
        Some((fd, _)) => Ok(Walked::Found(fd)),
        None => open_path(root, OsStr::new("."))
            .context("unable to open the root")
            .map(Walked::Found),
    }
}

/// `openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)`.
pub fn open_path(parent: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, Errno> {
    let fd = nix::fcntl::openat(
        Some(parent.as_raw_fd()),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: openat returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The file type of an fd (`S_IFDIR`, `S_IFLNK`, ...).
pub fn file_type(fd: BorrowedFd<'_>) -> anyhow::Result<SFlag> {
    let stat = nix::sys::stat::fstat(fd.as_raw_fd()).context("unable to stat")?;
    Ok(SFlag::from_bits_truncate(
        stat.st_mode & SFlag::S_IFMT.bits(),
    ))
}

fn make(parent: BorrowedFd<'_>, name: &OsStr, create: Create) -> anyhow::Result<()> {
    let shown = name.to_string_lossy();
    let result = match create {
        Create::File => nix::fcntl::openat(
            Some(parent.as_raw_fd()),
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map(|fd| {
            // SAFETY: a fresh descriptor; wrapping it closes it.
            drop(unsafe { OwnedFd::from_raw_fd(fd) })
        }),
        Create::Dir | Create::No | Create::Probe => nix::sys::stat::mkdirat(
            Some(parent.as_raw_fd()),
            name,
            Mode::from_bits_truncate(0o755),
        ),
    };
    match result {
        // Lost a race with someone creating it: the caller opens what is there.
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(anyhow::Error::from(e).context(format!("unable to create {shown}"))),
    }
}

/// Opens (creating if missing) the top-level directory `name` of the root, refusing a
/// symlink or anything but a directory.
pub fn top_dir(root: BorrowedFd<'_>, name: &str) -> anyhow::Result<OwnedFd> {
    let fd = match open_path(root, OsStr::new(name)) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => {
            if crate::skeleton::must_not_write(root)? {
                bail!("/{name} is missing in the root, which is never written");
            }
            nix::sys::stat::mkdirat(
                Some(root.as_raw_fd()),
                name,
                Mode::from_bits_truncate(0o555),
            )
            .with_context(|| format!("unable to create /{name}"))?;
            open_path(root, OsStr::new(name)).with_context(|| format!("unable to open /{name}"))?
        }
        Err(e) => return Err(anyhow::Error::from(e).context(format!("unable to open /{name}"))),
    };
    if file_type(fd.as_fd())? != SFlag::S_IFDIR {
        bail!("/{name} in the new root is not a directory: refusing to mount over it");
    }
    Ok(fd)
}

/// Opens a directory of the host (a trusted path) as an O_PATH fd.
pub fn open_host_dir(path: &Path) -> anyhow::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("unable to open {}", path.display()))?;
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens any host path (a trusted path, symlinks followed) as an O_PATH fd.
pub fn open_host(path: &Path) -> anyhow::Result<OwnedFd> {
    let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .with_context(|| format!("unable to open {}", path.display()))?;
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn real(fd: &OwnedFd) -> std::path::PathBuf {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
    }

    #[test]
    fn symlinks_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../../../../etc", root.join("a/b/up")).unwrap();
        symlink("/../..", root.join("dotdot")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        let rootfd = open_host_dir(&root).unwrap();
        let root = root.canonicalize().unwrap();
        let r = |p: &str, c| open_in_root(rootfd.as_fd(), Path::new(p), c);
        assert_eq!(real(&r("/abs", Create::No).unwrap()), root.join("etc"));
        assert_eq!(real(&r("/a/b/up", Create::No).unwrap()), root.join("etc"));
        assert_eq!(real(&r("/dotdot", Create::No).unwrap()), root);
        assert_eq!(real(&r("/../../..", Create::No).unwrap()), root);
        assert_eq!(real(&r("/", Create::No).unwrap()), root);
        assert!(r("/loop1", Create::No).is_err());
        assert!(r("/missing", Create::No).is_err());
        // Created through a symlink: lands inside the root, not on the host's /etc.
        let made = r("/abs/nschain-test-x/y", Create::File).unwrap();
        assert_eq!(real(&made), root.join("etc/nschain-test-x/y"));
        assert!(root.join("etc/nschain-test-x/y").is_file());
        assert!(!Path::new("/etc/nschain-test-x").exists());
        let made = r("/new/dir", Create::Dir).unwrap();
        assert_eq!(file_type(made.as_fd()).unwrap(), SFlag::S_IFDIR);
        // A file in the middle of the path.
        std::fs::write(root.join("f"), "x").unwrap();
        assert!(r("/f/x", Create::Dir).is_err());
    }
}
