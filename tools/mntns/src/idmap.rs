//! Idmapped trees handed down by `userns --idmap PATH` (DESIGN.md §1, `NSCHAIN_IDMAP`): one
//! `FD PATH` line per tree, FD an inherited detached mount of PATH, idmapped for the chain's
//! user namespace (host root's files read as root inside).
//!
//! mntns is the consumer: it reads and unexports the variable at entry and owns the fds
//! (close-on-exec), so none reaches COMMAND. Wherever it uses a PATH that has a tree
//! (`--rootfs PATH`, an `--overlay` lower layer, a `--volume PATH:...` source), it attaches
//! the tree in its new mount namespace (`move_mount`) instead of using the host's PATH;
//! without a tree, nothing changes.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::handdown::Slot;
use common::{debug, report, Fatal};

/// The variable naming the handed-down trees.
pub const VAR: &str = common::handdown::IDMAP_VAR;

#[derive(Debug)]
struct Tree {
    path: PathBuf,
    fd: Option<OwnedFd>,
}

/// The trees handed down to this link.
#[derive(Debug, Default)]
pub struct Trees {
    list: Vec<Tree>,
}

impl Trees {
    /// Takes the handed-down trees: made by a userns of this process, or inherited as
    /// `NSCHAIN_IDMAP` and checked here, taking its fds (close-on-exec from now on).
    pub fn take(slot: Slot<Vec<(PathBuf, OwnedFd)>>) -> Result<Trees, Fatal> {
        let value = match slot {
            Slot::Empty => return Ok(Trees::default()),
            Slot::Made(list) => {
                let list = list
                    .into_iter()
                    .map(|(path, fd)| Tree { path, fd: Some(fd) })
                    .collect();
                return Ok(Trees { list });
            }
            Slot::Inherited(value) => value,
        };
        let mut trees = Trees::default();
        for line in value.as_bytes().split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let tree = debug::step("take a handed-down idmapped tree", || parse_line(line))
                .map_err(|e| {
                    Fatal::new(format!(
                        "invalid {VAR} line '{}': {e}",
                        String::from_utf8_lossy(line)
                    ))
                    .with_hint(format!(
                        "{VAR} is set by userns --idmap for the next links: do not set it by hand"
                    ))
                })?;
            trees.list.push(tree);
        }
        Ok(trees)
    }

    /// The tree of `path` (canonical), for one use: a second use of the same tree gets none.
    pub fn take_for(&mut self, path: &Path, what: &str) -> Option<OwnedFd> {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let tree = self.list.iter_mut().find(|t| t.path == canonical)?;
        let fd = tree.fd.take();
        if fd.is_none() {
            report::warning(format_args!(
                "the idmapped tree of {} is used once: {what} shows {} as it is",
                canonical.display(),
                path.display()
            ));
        }
        fd
    }

    /// The tree that holds `path` below its root (`userns --idmap STORE` for the image
    /// layers `mntns --image` uses from it), with the tree's path, for one use.
    pub fn take_containing(&mut self, path: &Path) -> Option<(PathBuf, OwnedFd)> {
        // The path may not be reachable here (only through the tree): then take it as given.
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let tree = self
            .list
            .iter_mut()
            .find(|t| canonical != t.path && canonical.starts_with(&t.path))?;
        Some((tree.path.clone(), tree.fd.take()?))
    }

    /// The handed-down paths.
    pub fn paths(&self) -> Vec<String> {
        self.list
            .iter()
            .map(|t| t.path.to_string_lossy().into_owned())
            .collect()
    }
}

fn parse_line(line: &[u8]) -> anyhow::Result<Tree> {
    let Some(space) = line.iter().position(|&b| b == b' ') else {
        anyhow::bail!("expected FD PATH");
    };
    let fd: RawFd = std::str::from_utf8(&line[..space])
        .ok()
        .and_then(common::handed_fd::parse_fd)
        .ok_or_else(|| anyhow::anyhow!("FD must be a number above 2"))?;
    let path = PathBuf::from(OsStr::from_bytes(&line[space + 1..]));
    if !path.is_absolute() {
        anyhow::bail!("PATH must be absolute");
    }
    let fd =
        common::handed_fd::adopt(fd).map_err(|e| anyhow::anyhow!("fd {fd} is not open ({e})"))?;
    let tree_stat = nix::sys::stat::fstat(fd.as_raw_fd())?;
    let meta = std::fs::metadata(&path)?;
    if tree_stat.st_dev != meta.dev() || tree_stat.st_ino != meta.ino() {
        anyhow::bail!(
            "fd {} is not the tree of {}",
            fd.as_raw_fd(),
            path.display()
        );
    }
    Ok(Tree {
        path: std::fs::canonicalize(&path)?,
        fd: Some(fd),
    })
}

/// The directory `below` inside a tree, opened through it (`O_PATH`: for its attributes).
pub fn open_below(tree: BorrowedFd<'_>, below: &Path) -> anyhow::Result<OwnedFd> {
    let path = std::ffi::CString::new(below.as_os_str().as_bytes())?;
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: a valid directory fd and a NUL-terminated path; the returned fd is new.
    let fd = unsafe { libc::openat(tree.as_raw_fd(), path.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Owner and mode of a tree's root as this namespace sees it (through the idmap).
pub fn root_attrs(tree: BorrowedFd<'_>) -> anyhow::Result<(u32, u32, u32)> {
    let stat = nix::sys::stat::fstat(tree.as_fd().as_raw_fd())?;
    Ok((stat.st_uid, stat.st_gid, stat.st_mode))
}
