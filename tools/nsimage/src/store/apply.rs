//! Applies one layer tar to an empty directory in overlayfs form, written for hostile input:
//! `tar` only parses; every entry is created here, relative to the layer's root fd, walking
//! its path one component at a time without following links (`at`). A path with `..`, a
//! path through a symbolic link and a hard link to outside the layer are refused. Whiteouts
//! become char 0:0 nodes, opaque markers the `overlay.opaque` xattr (`trusted.` as host
//! root, `user.` — mounted with `userxattr` — always). Device nodes the caller may not make
//! are skipped with a warning; ownership the caller cannot give is squashed with a warning.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use anyhow::{bail, Context, Result};
use tar::EntryType;

use super::at;

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// What applying a layer noticed that the user should hear about once.
#[derive(Debug, Default)]
pub struct Notes {
    /// Device nodes skipped (paths).
    pub skipped_devices: Vec<String>,
    /// Ownership could not be kept (ids squashed to the caller's).
    pub squashed: bool,
    /// Extended attributes that could not be set.
    pub dropped_xattrs: BTreeSet<String>,
}

/// The applier's state for one layer.
struct Applier {
    root: OwnedFd,
    /// Also write `trusted.overlay.*` (host root); `user.overlay.*` is always written.
    trusted: bool,
    notes: Notes,
}

/// Applies the tar stream `tar` to the empty directory `dir`.
pub fn apply(tar: impl Read, dir: &Path, trusted: bool) -> Result<Notes> {
    let root = at::open_root(dir).with_context(|| format!("unable to open {}", dir.display()))?;
    let mut applier = Applier {
        root,
        trusted,
        notes: Notes::default(),
    };
    let mut archive = tar::Archive::new(tar);
    for entry in archive
        .entries()
        .map_err(|_| anyhow::anyhow!("the layer is not a tar archive (or a damaged one)"))?
    {
        let mut entry = entry
            .map_err(|_| anyhow::anyhow!("the layer is not a tar archive (or a damaged one)"))?;
        let raw_path = entry.path().context("bad entry path")?.into_owned();
        applier
            .entry(&mut entry, &raw_path)
            .with_context(|| format!("layer entry {}", raw_path.display()))?;
    }
    Ok(applier.notes)
}

/// The entry path as components below the root; `..` anywhere is refused (a layer never
/// needs it, and a lexical check cannot be fooled by links).
pub fn clean_path(path: &Path) -> Result<Vec<OsString>> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_owned()),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => bail!("the path {} escapes the layer ('..')", path.display()),
            Component::Prefix(_) => bail!("the path {} is not a Unix path", path.display()),
        }
    }
    Ok(parts)
}

impl Applier {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, raw_path: &Path) -> Result<()> {
        let mut parts = clean_path(raw_path)?;
        let kind = entry.header().entry_type();
        let Some(name) = parts.pop() else {
            // The root itself ("./"): only its metadata.
            return if kind == EntryType::Directory {
                self.metadata(entry, self_fd(&self.root), OsStr::new("."))
            } else {
                Ok(())
            };
        };
        let parent = self.walk(&parts, true)?;
        let pfd = at::raw(&parent);
        if name == OPAQUE {
            return self.opaque(pfd);
        }
        if let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT.as_bytes()) {
            let hidden = OsStr::from_bytes(hidden);
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                bail!("bad whiteout name");
            }
            self.replace(pfd, hidden, false)?;
            return at::mknod(pfd, hidden, libc::S_IFCHR, 0, 0)
                .context("unable to make the whiteout");
        }
        match kind {
            EntryType::Directory => {
                self.replace(pfd, &name, true)?;
                match at::mkdir(pfd, &name, 0o700) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                        return Err(e).context("mkdir")
                    }
                    _ => {}
                }
            }
            EntryType::Regular | EntryType::Continuous => {
                self.replace(pfd, &name, false)?;
                let mut file = at::create_file(pfd, &name).context("create")?;
                io::copy(entry, &mut file).context("write")?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .context("bad link target")?
                    .unwrap_or_default();
                self.replace(pfd, &name, false)?;
                at::symlink(target.as_os_str(), pfd, &name).context("symlink")?;
                return self.owner(pfd, &name, entry);
            }
            EntryType::Link => return self.hard_link(entry, pfd, &name),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.replace(pfd, &name, false)?;
                if !self.node(entry, kind, pfd, &name, raw_path)? {
                    return Ok(());
                }
            }
            // PAX and GNU headers are consumed by the parser; nothing else makes a file.
            _ => return Ok(()),
        }
        self.metadata(entry, pfd, &name)
    }

    /// Opens (creating missing directories, `create`) the directory `parts` below the root.
    fn walk(&self, parts: &[OsString], create: bool) -> Result<OwnedFd> {
        let mut dir =
            at::open_dir(at::raw(&self.root), OsStr::new(".")).context("open the layer root")?;
        for part in parts {
            if create {
                match at::mkdir(at::raw(&dir), part, 0o755) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                        return Err(e).context("mkdir")
                    }
                    _ => {}
                }
            }
            dir = at::open_dir(at::raw(&dir), part).map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::ENOTDIR) => anyhow::anyhow!(
                    "{} is a symbolic link or not a directory: a layer may not write through it",
                    Path::new(part).display()
                ),
                _ => anyhow::Error::from(e).context("open"),
            })?;
        }
        Ok(dir)
    }

    /// Clears `name` for a new entry: an existing non-directory is removed (a later entry
    /// of the same path wins), an existing directory stays when a directory comes.
    fn replace(&self, dir: RawFd, name: &OsStr, new_is_dir: bool) -> Result<()> {
        let Some(st) = at::lstat(dir, name).context("lstat")? else {
            return Ok(());
        };
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if is_dir && new_is_dir {
            return Ok(());
        }
        at::unlink(dir, name, is_dir).context("unable to replace an earlier entry")
    }

    fn opaque(&mut self, dir: RawFd) -> Result<()> {
        if self.trusted {
            at::set_xattr(dir, OsStr::new("."), "trusted.overlay.opaque", b"y")
                .context("unable to mark the directory opaque")?;
        }
        at::set_xattr(dir, OsStr::new("."), "user.overlay.opaque", b"y")
            .context("unable to mark the directory opaque")
    }

    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        pfd: RawFd,
        name: &OsStr,
    ) -> Result<()> {
        let target = entry
            .link_name()
            .context("bad link target")?
            .unwrap_or_default();
        let mut target_parts = clean_path(&target).context("hard link target")?;
        let Some(target_name) = target_parts.pop() else {
            bail!("hard link to the layer's root")
        };
        let target_dir = self
            .walk(&target_parts, false)
            .with_context(|| format!("hard link target {}", target.display()))?;
        self.replace(pfd, name, false)?;
        at::link(at::raw(&target_dir), &target_name, pfd, name).with_context(|| {
            format!(
                "unable to link to {} (a hard link must name an earlier file of the same layer)",
                target.display()
            )
        })
    }

    /// Makes a device node or fifo; `false` when it was skipped.
    fn node<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        kind: EntryType,
        pfd: RawFd,
        name: &OsStr,
        raw: &Path,
    ) -> Result<bool> {
        let header = entry.header();
        // A fifo's device fields are often blank: they mean nothing there.
        let number = |field: std::io::Result<Option<u32>>| field.ok().flatten().unwrap_or(0);
        let (major, minor) = (number(header.device_major()), number(header.device_minor()));
        let file_kind = match kind {
            EntryType::Char => libc::S_IFCHR,
            EntryType::Block => libc::S_IFBLK,
            _ => libc::S_IFIFO,
        };
        let mode = header.mode().unwrap_or(0o600);
        match at::mknod(pfd, name, file_kind, mode, libc::makedev(major, minor)) {
            Ok(()) => Ok(true),
            Err(e) if kind != EntryType::Fifo && e.raw_os_error() == Some(libc::EPERM) => {
                self.notes
                    .skipped_devices
                    .push(format!("{} ({major}:{minor})", raw.display()));
                Ok(false)
            }
            Err(e) => Err(e).context("mknod"),
        }
    }

    fn owner<R: Read>(
        &mut self,
        dir: RawFd,
        name: &OsStr,
        entry: &tar::Entry<'_, R>,
    ) -> Result<()> {
        let header = entry.header();
        let (uid, gid) = (header.uid()? as u32, header.gid()? as u32);
        match at::chown(dir, name, uid, gid) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EPERM)) => {
                self.notes.squashed = true;
                Ok(())
            }
            Err(e) => Err(e).context("chown"),
        }
    }

    /// Owner, then mode (a chown clears set-id bits), xattrs, mtime.
    fn metadata<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        dir: RawFd,
        name: &OsStr,
    ) -> Result<()> {
        self.owner(dir, name, entry)?;
        let header = entry.header();
        at::chmod(dir, name, header.mode()?).context("chmod")?;
        let mtime = header.mtime().unwrap_or(0) as i64;
        for (key, value) in xattrs(entry)? {
            // The overlay's own attributes are the store's to set, never a layer's.
            if key.starts_with("trusted.overlay.") || key.starts_with("user.overlay.") {
                self.notes.dropped_xattrs.insert(key);
                continue;
            }
            if at::set_xattr(dir, name, &key, &value).is_err() {
                self.notes.dropped_xattrs.insert(key);
            }
        }
        at::set_mtime(dir, name, mtime).context("set the modification time")
    }
}

/// The entry's PAX `SCHILY.xattr.*` records.
fn xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Vec<(String, Vec<u8>)>> {
    let mut found = Vec::new();
    if let Some(extensions) = entry.pax_extensions()? {
        for extension in extensions {
            let extension = extension?;
            if let Ok(key) = extension.key() {
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    found.push((name.to_owned(), extension.value_bytes().to_vec()));
                }
            }
        }
    }
    Ok(found)
}

fn self_fd(fd: &OwnedFd) -> RawFd {
    at::raw(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of (path, kind, link target, data) entries, written raw (`tar::Builder` itself
    /// refuses `..`).
    fn archive(entries: &[(&str, EntryType, &str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, link, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_size(data.len() as u64);
            if !link.is_empty() {
                header.set_link_name(link).unwrap();
            }
            header.set_cksum();
            builder.append(&header, data.as_bytes()).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn apply_in(entries: &[(&str, EntryType, &str, &str)]) -> (tempfile::TempDir, Result<Notes>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("layer")).unwrap();
        let result = apply(&archive(entries)[..], &dir.path().join("layer"), false);
        (dir, result)
    }

    #[test]
    fn entries_never_leave_the_layer() {
        let (dir, result) = apply_in(&[("../escape", EntryType::Regular, "", "x")]);
        assert!(format!("{:#}", result.unwrap_err()).contains("escapes the layer"));
        assert!(!dir.path().join("escape").exists());

        let (dir, result) = apply_in(&[
            ("link", EntryType::Symlink, "/tmp", ""),
            ("link/through", EntryType::Regular, "", "x"),
        ]);
        assert!(format!("{:#}", result.unwrap_err()).contains("symbolic link"));
        assert!(dir.path().join("layer/link").is_symlink());

        let (_dir, result) = apply_in(&[("hl", EntryType::Link, "/etc/passwd", "")]);
        assert!(format!("{:#}", result.unwrap_err()).contains("hard link"));
    }

    #[test]
    fn a_later_entry_replaces_an_earlier_one_and_hard_links_stay_inside() {
        let (dir, result) = apply_in(&[
            ("a", EntryType::Regular, "", "one"),
            ("a", EntryType::Regular, "", "two"),
            ("b", EntryType::Link, "a", ""),
            ("d/e/f", EntryType::Regular, "", "deep"),
        ]);
        result.unwrap();
        let layer = dir.path().join("layer");
        assert_eq!(std::fs::read_to_string(layer.join("b")).unwrap(), "two");
        assert_eq!(
            std::fs::read_to_string(layer.join("d/e/f")).unwrap(),
            "deep"
        );
    }
}
