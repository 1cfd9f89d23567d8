//! Applies one layer tar to an empty directory in overlayfs form, written for hostile input:
//! `tar` only parses; every entry is created here, relative to the layer's root fd, walking
//! its path one component at a time without following links (`at`). A path with `..`, a
//! path through a symbolic link and a hard link to outside the layer are refused. Whiteouts
//! become char 0:0 nodes, opaque markers the `overlay.opaque` xattr (`trusted.` as host
//! root, `user.` — mounted with `userxattr` — always). Device nodes the caller may not make
//! are skipped with a warning; ownership the caller cannot give is squashed with a warning.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use anyhow::{bail, Context, Result};
use tar::EntryType;

use super::at;
use super::dirs::Dirs;

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

/// A file's metadata from its tar header.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Regular files are written in pieces of at most this size (one `write` each).
const CHUNK: u64 = 1 << 20;

/// The applier's state for one layer.
struct Applier {
    dirs: Dirs,
    /// Also write `trusted.overlay.*` (host root); `user.overlay.*` is always written.
    trusted: bool,
    notes: Notes,
    /// The ids a new file gets: a header naming them needs no chown.
    ids: (u32, u32),
    /// The layer's root is set-group-ID: new files take its group, so always chown.
    inherit_gid: bool,
    /// The process umask (`None`: unknown, so always chmod).
    umask: Option<u32>,
    /// Directories' metadata, set once every entry is written: creating an entry changes
    /// its directory's mtime, and a read-only directory must still take its entries.
    deferred: BTreeMap<Vec<OsString>, Meta>,
    buf: Vec<u8>,
}

/// Applies the tar stream `tar` to the empty directory `dir`.
pub fn apply(tar: impl Read, dir: &Path, trusted: bool) -> Result<Notes> {
    let root = at::open_root(dir).with_context(|| format!("unable to open {}", dir.display()))?;
    let inherit_gid = at::fstat(at::raw(&root))?.st_mode & libc::S_ISGID != 0;
    let mut applier = Applier {
        dirs: Dirs::new(root),
        trusted,
        notes: Notes::default(),
        // SAFETY: geteuid and getegid cannot fail.
        ids: unsafe { (libc::geteuid(), libc::getegid()) },
        inherit_gid,
        umask: umask(),
        deferred: BTreeMap::new(),
        buf: Vec::with_capacity(CHUNK as usize),
    };
    // Headers are read 512 bytes at a time: a large buffer keeps the decompressor's calls few.
    let mut archive = tar::Archive::new(io::BufReader::with_capacity(256 << 10, tar));
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
    applier.finish_dirs()?;
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

/// The process umask, from /proc/self/status (`umask(2)` cannot read it without setting it,
/// and other threads create files meanwhile).
fn umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

impl Applier {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, raw_path: &Path) -> Result<()> {
        let mut parts = clean_path(raw_path)?;
        let kind = entry.header().entry_type();
        let Some(name) = parts.pop() else {
            // The root itself ("./"): only its metadata.
            if kind == EntryType::Directory {
                let meta = self.meta(entry)?;
                self.deferred.insert(parts, meta);
            }
            return Ok(());
        };
        let pfd = self.dirs.get(&parts, true)?;
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
                self.make_dir(pfd, &name)?;
                let meta = self.meta(entry)?;
                parts.push(name);
                self.deferred.insert(parts, meta);
                Ok(())
            }
            EntryType::Regular | EntryType::Continuous => self.file(entry, pfd, &name),
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .context("bad link target")?
                    .unwrap_or_default();
                self.fresh(pfd, &name, || at::symlink(target.as_os_str(), pfd, &name))?
                    .context("symlink")?;
                let header = entry.header();
                let (uid, gid) = (header.uid()? as u32, header.gid()? as u32);
                self.owner(uid, gid, |uid, gid| at::chown(pfd, &name, uid, gid))
            }
            EntryType::Link => self.hard_link(entry, pfd, &name),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                if self.node(entry, kind, pfd, &name, raw_path)? {
                    let meta = self.meta(entry)?;
                    self.meta_at(pfd, &name, &meta)?;
                }
                Ok(())
            }
            // PAX and GNU headers are consumed by the parser; nothing else makes a file.
            _ => Ok(()),
        }
    }

    /// A regular file: created with its mode, written in large pieces, then its metadata
    /// set through the open descriptor.
    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        pfd: RawFd,
        name: &OsStr,
    ) -> Result<()> {
        let meta = self.meta(entry)?;
        let file = self
            .fresh(pfd, name, || at::create_file(pfd, name, meta.mode))?
            .context("create")?;
        loop {
            self.buf.clear();
            (&mut *entry)
                .take(CHUNK)
                .read_to_end(&mut self.buf)
                .context("read")?;
            if self.buf.is_empty() {
                break;
            }
            (&file).write_all(&self.buf).context("write")?;
        }
        self.meta_fd(file.as_raw_fd(), &meta, true)
    }

    /// Runs `make` (which fails with `AlreadyExists` on an existing name); on that, clears
    /// the name (a later entry of the same path wins) and runs it once more. The outer error
    /// is the clearing's, the inner one `make`'s.
    fn fresh<T>(
        &self,
        dir: RawFd,
        name: &OsStr,
        make: impl Fn() -> io::Result<T>,
    ) -> Result<io::Result<T>> {
        match make() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.replace(dir, name, false)?;
                Ok(make())
            }
            other => Ok(other),
        }
    }

    /// Makes directory `name` (an existing directory stays: entries may come before their
    /// directory's own entry).
    fn make_dir(&self, pfd: RawFd, name: &OsStr) -> Result<()> {
        match at::mkdir(pfd, name, 0o700) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.replace(pfd, name, true)?;
                match at::mkdir(pfd, name, 0o700) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e).context("mkdir"),
                    _ => Ok(()),
                }
            }
            other => other.context("mkdir"),
        }
    }

    /// Sets the metadata of every directory that is still there, deepest first (so that a
    /// read-only directory does not stop the walk to the ones below it).
    fn finish_dirs(&mut self) -> Result<()> {
        let deferred = std::mem::take(&mut self.deferred);
        for (parts, meta) in deferred.iter().rev() {
            // A directory a later entry removed or replaced is gone: nothing to restore.
            let Ok(fd) = self.dirs.get(parts, false) else {
                continue;
            };
            self.meta_fd(fd, meta, false).with_context(|| {
                let path: std::path::PathBuf = parts.iter().collect();
                format!("directory {}", path.display())
            })?;
        }
        Ok(())
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
            at::fset_xattr(dir, "trusted.overlay.opaque", b"y")
                .context("unable to mark the directory opaque")?;
        }
        at::fset_xattr(dir, "user.overlay.opaque", b"y")
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
            .dirs
            .open_apart(&target_parts)
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
        let dev = libc::makedev(major, minor);
        match self.fresh(pfd, name, || at::mknod(pfd, name, file_kind, mode, dev))? {
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

    /// The entry's metadata; a layer's own overlay attributes are dropped (they are the
    /// store's to set).
    fn meta<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<Meta> {
        let mut kept = Vec::new();
        for (key, value) in xattrs(entry)? {
            if key.starts_with("trusted.overlay.") || key.starts_with("user.overlay.") {
                self.notes.dropped_xattrs.insert(key);
            } else {
                kept.push((key, value));
            }
        }
        let header = entry.header();
        Ok(Meta {
            uid: header.uid()? as u32,
            gid: header.gid()? as u32,
            mode: header.mode()?,
            mtime: header.mtime().unwrap_or(0) as i64,
            xattrs: kept,
        })
    }

    /// Gives ownership with `chown` unless a new file has it already; ids the caller cannot
    /// give are squashed (noted).
    fn owner(
        &mut self,
        uid: u32,
        gid: u32,
        chown: impl FnOnce(u32, u32) -> io::Result<()>,
    ) -> Result<()> {
        if !self.inherit_gid && (uid, gid) == self.ids {
            return Ok(());
        }
        match chown(uid, gid) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EPERM)) => {
                self.notes.squashed = true;
                Ok(())
            }
            Err(e) => Err(e).context("chown"),
        }
    }

    /// Owner, then mode (a chown clears set-id bits; skipped when the create gave the mode
    /// already, `created_with_mode`), xattrs (after the content: a write clears
    /// `security.capability`), mtime, all through the open `fd`.
    fn meta_fd(&mut self, fd: RawFd, meta: &Meta, created_with_mode: bool) -> Result<()> {
        self.owner(meta.uid, meta.gid, |uid, gid| at::fchown(fd, uid, gid))?;
        let exact = created_with_mode
            && meta.mode & 0o7000 == 0
            && self.umask.is_some_and(|mask| meta.mode & mask == 0);
        if !exact {
            at::fchmod(fd, meta.mode).context("chmod")?;
        }
        for (key, value) in &meta.xattrs {
            if at::fset_xattr(fd, key, value).is_err() {
                self.notes.dropped_xattrs.insert(key.clone());
            }
        }
        at::futimes(fd, meta.mtime).context("set the modification time")
    }

    /// As [`Self::meta_fd`], by name in `dir` (device nodes and fifos, which are not opened).
    fn meta_at(&mut self, dir: RawFd, name: &OsStr, meta: &Meta) -> Result<()> {
        self.owner(meta.uid, meta.gid, |uid, gid| {
            at::chown(dir, name, uid, gid)
        })?;
        at::chmod(dir, name, meta.mode).context("chmod")?;
        for (key, value) in &meta.xattrs {
            if at::set_xattr(dir, name, key, value).is_err() {
                self.notes.dropped_xattrs.insert(key.clone());
            }
        }
        at::set_mtime(dir, name, meta.mtime).context("set the modification time")
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

    #[test]
    fn directories_keep_their_tar_mtime_and_mode_after_their_entries_are_written() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |path: &str, kind: EntryType, mode: u32, mtime: u64, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_mtime(mtime);
            header.set_uid(0);
            header.set_gid(0);
            header.set_size(data.len() as u64);
            builder.append_data(&mut header, path, data).unwrap();
        };
        add("ro/", EntryType::Directory, 0o555, 1_000_000, b"");
        add("ro/sub/", EntryType::Directory, 0o500, 2_000_000, b"");
        add("ro/sub/f", EntryType::Regular, 0o4755, 3_000_000, b"x");
        let deep = "d/".repeat(100);
        add(&format!("{deep}f"), EntryType::Regular, 0o644, 0, b"deep");
        let tar = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layer");
        std::fs::create_dir(&layer).unwrap();
        apply(&tar[..], &layer, false).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = |p: &str| std::fs::symlink_metadata(layer.join(p)).unwrap();
        assert_eq!(meta("ro").mtime(), 1_000_000);
        assert_eq!(meta("ro").permissions().mode() & 0o7777, 0o555);
        assert_eq!(meta("ro/sub").mtime(), 2_000_000);
        assert_eq!(meta("ro/sub").permissions().mode() & 0o7777, 0o500);
        assert_eq!(meta("ro/sub/f").mtime(), 3_000_000);
        assert_eq!(meta("ro/sub/f").permissions().mode() & 0o7777, 0o4755);
        assert_eq!(
            std::fs::read_to_string(layer.join(format!("{deep}f"))).unwrap(),
            "deep"
        );
    }
}
