//! `--overlay /` inside a user namespace, where overlayfs refuses the host's root as a lower
//! layer: every mount on it (/proc, /dev, ...) is locked there, and a layer without them
//! would reveal what they cover. The same copy-on-write view is built from several
//! overlays instead, each on a directory that has no mount beneath it:
//!
//! ```text
//! merged/            recursive bind of diff/ (writes at the top level land in diff/)
//! merged/usr         overlay lower=/usr  upper=diff/usr  work=work/usr
//! merged/mnt         a plain directory of diff/ (mounts below /mnt on the host) ...
//! merged/mnt/data    ... overlay lower=/mnt/data upper=diff/mnt/data
//! merged/bin         symlink copied from the host (usr/bin)
//! merged/proc, sys, dev   empty directories (mntns mounts its own)
//! ```
//!
//! A file written at /opt/test1 still lands in diff/opt/test1. Every path inside the layer
//! is opened without following symlinks (a reused layer is the previous container's work),
//! and the overlays get their directories as /proc/self/fd paths.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use common::{debug, Fatal};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};

use crate::overlay::Layer;
use crate::resolve;
use crate::sys;

/// Top-level directories mntns mounts its own filesystems on.
const OWN: [&str; 3] = ["proc", "sys", "dev"];

/// The mount points of this mount namespace strictly below `top`.
pub fn mounts_below(top: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(OsStr::from_bytes(&unescape(p.as_bytes()))))
        .filter(|p| p.starts_with(top) && p != top)
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub(crate) fn unescape(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\\' && i + 4 <= text.len() {
            let digits = &text[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

/// Builds the split view of `lower` at the layer's merged directory; returns its root fd.
pub fn mount(layer: &Layer, lower: &Path, data_extra: &str) -> Result<OwnedFd, Fatal> {
    debug::step(
        "mount the overlay split per directory",
        || -> anyhow::Result<OwnedFd> {
            let mounts = mounts_below(lower);
            // The overlays are mounted on diff's own directories (upper and work must be reached
            // through the same mount), then the whole tree is bound at merged.
            let diff = resolve::open_host_dir(&layer.diff())?;
            let work = resolve::open_host_dir(&layer.work())?;
            let host = resolve::open_host_dir(lower)?;
            let top = Level {
                up: diff.as_fd(),
                work: work.as_fd(),
                host: host.as_fd(),
                path: lower,
                mounts: &mounts,
                data_extra,
            };
            populate(&top, true)?;
            let merged = layer.merged();
            nix::mount::mount(
                Some(&layer.diff()),
                &merged,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .with_context(|| {
                format!(
                    "unable to bind {} onto {}",
                    layer.diff().display(),
                    merged.display()
                )
            })?;
            resolve::open_host_dir(&merged)
        },
    )
    .map_err(|e| {
        Fatal::from(e).context(format!(
            "unable to build the overlay of {} in a user namespace",
            lower.display()
        ))
    })
}

/// One directory level being mirrored: the layer's upper and work directories for it and the
/// host's directory (`path`), with the host's mount points and the overlay options.
struct Level<'a> {
    up: BorrowedFd<'a>,
    work: BorrowedFd<'a>,
    host: BorrowedFd<'a>,
    path: &'a Path,
    mounts: &'a [PathBuf],
    data_extra: &'a str,
}

/// The host keeps changing while we read it: an entry that is gone by the time we look at it
/// (another program's temporary file) is simply not part of the view.
fn gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

/// Mirrors one level: at the top, empty directories where mntns mounts its own (OWN); then
/// symlinks copied, directories overlaid (or split further where the host has mounts below
/// them), files bound read-only.
fn populate(level: &Level<'_>, top: bool) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(level.path) {
        Err(e) if gone(&e) && !top => return Ok(()),
        other => other.with_context(|| format!("unable to read {}", level.path.display()))?,
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("unable to read {}", level.path.display()))?;
        let name = entry.file_name();
        let child_path = level.path.join(&name);
        let meta = match std::fs::symlink_metadata(&child_path) {
            Err(e) if gone(&e) => continue,
            other => other.with_context(|| format!("unable to read {}", child_path.display()))?,
        };
        if top && OWN.iter().any(|own| name.as_bytes() == own.as_bytes()) {
            dir_in(level.up, &name, 0o555)?;
        } else if meta.file_type().is_symlink() {
            level.copy_link(&name, &child_path)?;
        } else if meta.is_dir() {
            level.overlay_dir(&name, &child_path, &meta)?;
        } else {
            level.bind_file(&name)?;
        }
    }
    Ok(())
}

impl Level<'_> {
    /// A symlink of the host is copied into the layer (unless the layer has the name already).
    fn copy_link(&self, name: &OsStr, child_path: &Path) -> anyhow::Result<()> {
        if !matches!(resolve::open_path(self.up, name), Err(Errno::ENOENT)) {
            return Ok(());
        }
        let target = match std::fs::read_link(child_path) {
            Err(e) if gone(&e) => return Ok(()),
            other => other?,
        };
        nix::unistd::symlinkat(&target, Some(self.up.as_raw_fd()), name)
            .with_context(|| format!("unable to copy the link {}", child_path.display()))?;
        Ok(())
    }

    /// A directory gets an overlay of its own, or is split further when the host has mounts
    /// below it (read-only when it cannot be read here).
    fn overlay_dir(
        &self,
        name: &OsStr,
        child_path: &Path,
        meta: &std::fs::Metadata,
    ) -> anyhow::Result<()> {
        let host_child = match resolve::open_path(self.host, name) {
            Err(Errno::ENOENT) => return Ok(()),
            other => other.with_context(|| format!("unable to open {}", child_path.display()))?,
        };
        let up_child = dir_in(self.up, name, meta.mode() & 0o7777)?;
        let _ = nix::unistd::fchownat(
            Some(self.up.as_raw_fd()),
            name,
            Some(nix::unistd::Uid::from_raw(meta.uid())),
            Some(nix::unistd::Gid::from_raw(meta.gid())),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        );
        let work_child = dir_in(self.work, name, 0o700)?;
        let has_mounts_below = self
            .mounts
            .iter()
            .any(|m| m.starts_with(child_path) && m != child_path);
        let bind_read_only = || {
            sys::bind(
                host_child.as_fd(),
                up_child.as_fd(),
                true,
                sys::MOUNT_ATTR_RDONLY,
            )
            .with_context(|| format!("unable to bind {}", child_path.display()))
        };
        if has_mounts_below {
            if std::fs::read_dir(child_path).is_err() {
                // Unreadable here: shown read-only, with what is mounted below it.
                return bind_read_only();
            }
            let below = Level {
                up: up_child.as_fd(),
                work: work_child.as_fd(),
                host: host_child.as_fd(),
                path: child_path,
                mounts: self.mounts,
                data_extra: self.data_extra,
            };
            return populate(&below, false);
        }
        let data = format!(
            "lowerdir={},upperdir={},workdir={}{}",
            sys::fd_path(host_child.as_fd()).display(),
            sys::fd_path(up_child.as_fd()).display(),
            sys::fd_path(work_child.as_fd()).display(),
            self.data_extra,
        );
        if let Err(e) = sys::mount_fs("overlay", up_child.as_fd(), MsFlags::empty(), Some(&data)) {
            // A filesystem overlayfs cannot stack on: the directory stays read-only.
            debug::note(format_args!(
                "{}: no overlay ({e}), bound read-only",
                child_path.display()
            ));
            bind_read_only()?;
        }
        Ok(())
    }

    /// A file at this level: an empty mount point in the layer, the host's file bound read-only
    /// on it.
    fn bind_file(&self, name: &OsStr) -> anyhow::Result<()> {
        let target = match resolve::open_path(self.up, name) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                let fd = nix::fcntl::openat(
                    Some(self.up.as_raw_fd()),
                    name,
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o644),
                )?;
                nix::unistd::close(fd)?;
                resolve::open_path(self.up, name)?
            }
            Err(e) => return Err(e.into()),
        };
        if resolve::file_type(target.as_fd())? != SFlag::S_IFREG {
            return Ok(());
        }
        if let Ok(source) = resolve::open_path(self.host, name) {
            let _ = sys::bind(
                source.as_fd(),
                target.as_fd(),
                false,
                sys::MOUNT_ATTR_RDONLY,
            );
        }
        Ok(())
    }
}

/// Opens (creating with `mode` if missing) the directory `name` under `parent`, refusing a
/// symlink or a non-directory left there by an earlier container.
fn dir_in(parent: BorrowedFd<'_>, name: &OsStr, mode: u32) -> anyhow::Result<OwnedFd> {
    let shown = name.to_string_lossy();
    let fd = match resolve::open_path(parent, name) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => {
            nix::sys::stat::mkdirat(
                Some(parent.as_raw_fd()),
                name,
                Mode::from_bits_truncate(0o700),
            )
            .with_context(|| format!("unable to create {shown} in the layer"))?;
            let fd = resolve::open_path(parent, name)?;
            let path = sys::fd_path(fd.as_fd());
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("unable to set the mode of {shown}"))?;
            fd
        }
        Err(e) => {
            return Err(
                anyhow::Error::from(e).context(format!("unable to open {shown} in the layer"))
            )
        }
    };
    if resolve::file_type(fd.as_fd())? != SFlag::S_IFDIR {
        bail!("{shown} in the layer is not a directory: refusing to mount on it");
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(b"/a\\040b"), b"/a b");
        assert_eq!(unescape(b"/a\\134b"), b"/a\\b");
        assert_eq!(unescape(b"/plain"), b"/plain");
        assert_eq!(unescape(b"/x\\04"), b"/x\\04");
    }
}
