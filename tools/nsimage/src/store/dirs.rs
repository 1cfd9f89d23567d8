//! The applier's open directories: the chain from the layer's root to the last entry's
//! parent stays open, so an entry next to the previous one (a tar lists a directory's
//! entries together) costs no path walk at all, and a new directory costs one `openat`.
//!
//! Why a kept handle stays right: each was opened with `O_NOFOLLOW | O_DIRECTORY` when its
//! name was a real directory, and the applier only ever removes or replaces a name inside
//! the directory it just asked for (the chain's last element), never one of the chain's
//! ancestors; nothing else writes the layer meanwhile (it lives under the store's 0700 tmp/).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

use anyhow::{Context, Result};

use super::at;

/// Beyond this depth directories are walked from the deepest kept one, not kept: a hostile
/// layer of 2,000 nested directories must not run out of file descriptors.
const MAX_KEPT: usize = 64;

/// The open directories; see the module doc.
pub struct Dirs {
    root: OwnedFd,
    chain: Vec<(OsString, OwnedFd)>,
    /// The last directory when it lies deeper than [`MAX_KEPT`].
    deep: Option<OwnedFd>,
}

impl Dirs {
    /// Starts at the layer's root directory.
    pub fn new(root: OwnedFd) -> Self {
        Dirs {
            root,
            chain: Vec::new(),
            deep: None,
        }
    }

    /// The layer's root.
    pub fn root(&self) -> RawFd {
        at::raw(&self.root)
    }

    /// The directory `parts` below the root (missing ones created with mode 0755 when
    /// `create`), never through a symbolic link. Valid until the next call.
    pub fn get(&mut self, parts: &[OsString], create: bool) -> Result<RawFd> {
        let kept = self
            .chain
            .iter()
            .zip(parts)
            .take_while(|((name, _), part)| name == *part)
            .count();
        self.chain.truncate(kept);
        self.deep = None;
        for part in &parts[kept..] {
            let fd = open_or_make(self.current(), part, create)?;
            if self.chain.len() < MAX_KEPT {
                self.chain.push((part.clone(), fd));
            } else {
                self.deep = Some(fd);
            }
        }
        Ok(self.current())
    }

    /// The directory `parts` below the root opened on its own, leaving the chain (and the
    /// descriptor the last [`Self::get`] returned) as it is; nothing is created.
    pub fn open_apart(&self, parts: &[OsString]) -> Result<OwnedFd> {
        let mut dir = at::open_dir(self.root(), OsStr::new(".")).context("open the layer root")?;
        for part in parts {
            dir = open_or_make(at::raw(&dir), part, false)?;
        }
        Ok(dir)
    }

    fn current(&self) -> RawFd {
        match (&self.deep, self.chain.last()) {
            (Some(fd), _) | (None, Some((_, fd))) => at::raw(fd),
            (None, None) => self.root(),
        }
    }
}

/// Opens directory `name` in `dir`, first making it if it is missing and `create`.
fn open_or_make(dir: RawFd, name: &OsStr, create: bool) -> Result<OwnedFd> {
    let opened = match at::open_dir(dir, name) {
        Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
            match at::mkdir(dir, name, 0o755) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(e).context("mkdir")
                }
                _ => at::open_dir(dir, name),
            }
        }
        other => other,
    };
    opened.map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => anyhow::anyhow!(
            "{} is a symbolic link or not a directory: a layer may not write through it",
            Path::new(name).display()
        ),
        _ => anyhow::Error::new(e).context(format!("open {}", Path::new(name).display())),
    })
}
