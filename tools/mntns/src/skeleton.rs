//! `--rootfs DIR` is never written: a mount point DIR lacks (`/dev`, `/proc`, `/sys`,
//! `/etc/hostname`, a volume's target, the `-w` directory) is made in a tmpfs skeleton, not in
//! DIR, as bubblewrap builds its root on a tmpfs and binds its sources into it.
//!
//! Every mount that exists when the root has just been bound (DIR's own bind and the
//! submounts it carries) is *protected*: [`crate::resolve`] never creates anything in a
//! directory of a protected mount. It covers that directory with a skeleton instead — a tmpfs
//! holding, for each entry of the directory, a bind mount of it (a directory recursively with
//! its submounts, any other file as a file) or a copy of it (a symbolic link, same target) —
//! and creates the missing entry in the tmpfs. Those binds are protected in turn, so the
//! skeleton goes exactly as deep as needed. Only DIR's own root cannot be covered in place (the
//! root's fd is held everywhere): [`protect`] covers it first when something is missing there.
//!
//! The container writes to existing files and directories of DIR as before; a new entry at a
//! level that got a skeleton lives in the tmpfs and goes with the container. With
//! `--read-only` the binds are read-only and every skeleton is made read-only once the root is
//! complete ([`finish`]).

use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context};
use common::{debug, Fatal};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

use crate::resolve::{self, Create};
use crate::sys;

#[derive(Debug)]
struct State {
    /// Mount ids nothing may be created in.
    protected: HashSet<u64>,
    read_only: bool,
    /// The skeletons made below the root (made read-only by [`finish`]).
    made: Vec<OwnedFd>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with_state<T>(f: impl FnOnce(&mut Option<State>) -> T) -> T {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut guard)
}

/// The mount id of the mount `fd` is on.
fn mount_id(fd: BorrowedFd<'_>) -> anyhow::Result<u64> {
    // SAFETY: statx is plain data; all zeroes is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx fills the struct; the empty path with AT_EMPTY_PATH names the fd.
    let rc = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    Errno::result(rc).context("unable to read the mount id")?;
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        bail!("this kernel does not report mount ids (statx STATX_MNT_ID, Linux 5.8)");
    }
    Ok(stx.stx_mnt_id)
}

/// This mount namespace's mounts now: (mount id, parent's mount id) of each.
fn mounts() -> anyhow::Result<Vec<(u64, u64)>> {
    let text = common::procfs::read("/proc/self/mountinfo")
        .context("unable to read /proc/self/mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut fields = l.split(' ');
            Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
        })
        .collect())
}

/// Every mount id of this mount namespace now.
fn mount_ids() -> anyhow::Result<HashSet<u64>> {
    Ok(mounts()?.into_iter().map(|(id, _)| id).collect())
}

/// The mounts below mount `top` (its children, theirs, ...), not `top` itself.
fn below(top: u64, mounts: &[(u64, u64)]) -> HashSet<u64> {
    let mut found: HashSet<u64> = HashSet::new();
    let mut frontier = vec![top];
    while let Some(parent) = frontier.pop() {
        for &(id, _) in mounts
            .iter()
            .filter(|(id, p)| *p == parent && *id != parent)
        {
            if found.insert(id) {
                frontier.push(id);
            }
        }
    }
    found
}

/// Whether nothing may be created in the directory `fd` (it is on a protected mount).
pub fn must_not_write(fd: BorrowedFd<'_>) -> anyhow::Result<bool> {
    let protected = with_state(|s| s.as_ref().map(|s| s.protected.clone()));
    match protected {
        Some(set) => Ok(set.contains(&mount_id(fd)?)),
        None => Ok(false),
    }
}

/// Protects the just bound `--rootfs DIR` (its fd is `root`) and returns the root to use: a
/// skeleton over DIR when one of `needs` is missing right in DIR's top directory.
pub fn protect(
    dir: &Path,
    root: OwnedFd,
    needs: &[(PathBuf, Create)],
    read_only: bool,
) -> Result<OwnedFd, Fatal> {
    debug::step(
        format_args!("keep {} as it is", dir.display()),
        || -> anyhow::Result<OwnedFd> {
            let protected = mount_ids()?;
            with_state(|s| {
                *s = Some(State {
                    protected,
                    read_only,
                    made: Vec::new(),
                })
            });
            let at_top = needs
                .iter()
                .filter(|(_, create)| *create != Create::No)
                .any(|(path, _)| resolve::missing_at_root(root.as_fd(), path));
            if !at_top {
                return Ok(root);
            }
            let skeleton = cover(root.as_fd())?;
            // The root's fd stays on DIR's bind, below: the root is now the skeleton.
            drop(root);
            let fresh = resolve::open_host_dir(dir)?;
            if mount_id(fresh.as_fd())? != mount_id(skeleton.as_fd())? {
                bail!("{} is not the skeleton just mounted there", dir.display());
            }
            Ok(fresh)
        },
    )
    .map_err(|e| {
        Fatal::from(e).context(format!(
            "unable to prepare the mount points of {} without writing to it",
            dir.display()
        ))
    })
}

/// Covers the directory `dir` with a skeleton of it; returns the skeleton's mount (an O_PATH
/// fd of its root). `dir` itself keeps naming the directory below.
pub fn cover(dir: BorrowedFd<'_>) -> anyhow::Result<OwnedFd> {
    let read_only = with_state(|s| s.as_ref().is_some_and(|s| s.read_only));
    let listing = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("unable to read the directory")?;
    // SAFETY: a fresh descriptor nothing else owns.
    let listing = unsafe { OwnedFd::from_raw_fd(listing) };
    let stat = nix::sys::stat::fstat(listing.as_raw_fd())?;
    let skeleton = new_tmpfs(stat.st_mode & 0o7777)?;
    // Owned like the directory it covers, where this user namespace maps the owner.
    let _ = nix::unistd::fchownat(
        Some(skeleton.as_raw_fd()),
        "",
        Some(stat.st_uid.into()),
        Some(stat.st_gid.into()),
        nix::fcntl::AtFlags::AT_EMPTY_PATH,
    );
    sys::move_onto(skeleton.as_fd(), dir).context("unable to mount the skeleton")?;
    let mut entries = nix::dir::Dir::from_fd(nix::unistd::dup(listing.as_raw_fd())?)?;
    for entry in entries.iter() {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        mirror(listing.as_fd(), skeleton.as_fd(), name, read_only).with_context(|| {
            format!(
                "unable to mirror {}",
                String::from_utf8_lossy(name.to_bytes())
            )
        })?;
    }
    // The binds just made show the protected tree: protected too. They are exactly the
    // mounts below the skeleton: it was empty and fresh, this process is single-threaded
    // and the setup's propagation brings nothing in.
    let made = below(mount_id(skeleton.as_fd())?, &mounts()?);
    let copy = skeleton.try_clone()?;
    with_state(|s| {
        if let Some(s) = s {
            s.protected.extend(made);
            s.made.push(copy);
        }
    });
    debug::note("covered a directory of the root with a skeleton");
    Ok(skeleton)
}

/// One entry of the covered directory, in the skeleton.
fn mirror(
    below: BorrowedFd<'_>,
    skeleton: BorrowedFd<'_>,
    name: &CStr,
    read_only: bool,
) -> anyhow::Result<()> {
    let name = OsStr::from_bytes(name.to_bytes());
    let source = resolve::open_path(below, name)?;
    let kind = resolve::file_type(source.as_fd())?;
    if kind == SFlag::S_IFLNK {
        let target = nix::fcntl::readlinkat(Some(source.as_raw_fd()), "")?;
        nix::unistd::symlinkat(target.as_os_str(), Some(skeleton.as_raw_fd()), name)?;
        return Ok(());
    }
    if kind == SFlag::S_IFDIR {
        nix::sys::stat::mkdirat(
            Some(skeleton.as_raw_fd()),
            name,
            Mode::from_bits_truncate(0o755),
        )?;
    } else {
        let fd = nix::fcntl::openat(
            Some(skeleton.as_raw_fd()),
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )?;
        // SAFETY: a fresh descriptor; wrapping it closes it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let target = resolve::open_path(skeleton, name)?;
    let attrs = if read_only { sys::MOUNT_ATTR_RDONLY } else { 0 };
    sys::bind(
        source.as_fd(),
        target.as_fd(),
        kind == SFlag::S_IFDIR,
        attrs,
    )
}

/// A new tmpfs (new mount API), not yet attached: its root has `mode`.
fn new_tmpfs(mode: u32) -> anyhow::Result<OwnedFd> {
    use common::sys::mount;
    let fs = mount::fsopen(c"tmpfs").map_err(sys::new_api)?;
    let value = CString::new(format!("{mode:o}"))?;
    mount::fsconfig_set_string(fs.as_fd(), c"mode", &value)
        .context("unable to configure the skeleton's tmpfs")?;
    mount::fsconfig_create(fs.as_fd()).context("unable to create the skeleton's tmpfs")?;
    let attrs = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
    mount::fsmount(fs.as_fd(), attrs).context("unable to mount the skeleton's tmpfs")
}

/// Once every mount of the root is made: `--read-only` covers the skeletons too.
pub fn finish() -> Result<(), Fatal> {
    let Some(state) = with_state(Option::take) else {
        return Ok(());
    };
    if !state.read_only {
        return Ok(());
    }
    debug::step("make the skeletons read-only", || -> anyhow::Result<()> {
        for skeleton in &state.made {
            sys::set_attr(skeleton.as_fd(), sys::MOUNT_ATTR_RDONLY, false).map_err(sys::new_api)?;
        }
        Ok(())
    })
    .map_err(|e| Fatal::from(e).context("unable to make the root read-only"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_a_mount_are_its_children_and_theirs() {
        // 1 is the root; 5 the skeleton on 3; 6 and 7 binds in it; 8 a submount of 6.
        let mounts = [(1, 0), (3, 1), (5, 3), (6, 5), (7, 5), (8, 6), (9, 3)];
        assert_eq!(below(5, &mounts), HashSet::from([6, 7, 8]));
        assert!(below(7, &mounts).is_empty());
    }
}
