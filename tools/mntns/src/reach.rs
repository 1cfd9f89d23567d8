//! Whether other users of the host can reach a path: a file that host root's container writes
//! there (a setuid-root binary, a device node) would be theirs to run or open.
//!
//! A path is closed to them when some directory above it, on every path by which the host
//! shows it (its bind mounts included), is owned by root, has no search bit for group or
//! others and no ACL (Docker keeps its data directory 0710 for this, CVE-2021-41091). A
//! directory the container can write itself does not count: it could open it. Anything
//! unknown (a directory we cannot stat, an ACL) counts as open.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::overlay_split::unescape;

/// One line of mountinfo: the device, the root of the mount in its filesystem, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountLine {
    pub device: String,
    pub root: PathBuf,
    pub point: PathBuf,
}

pub fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    let path = |field: &str| PathBuf::from(OsStr::from_bytes(&unescape(field.as_bytes())));
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields[..] {
                [_, _, device, root, point, ..] => Some(MountLine {
                    device: device.to_owned(),
                    root: path(root),
                    point: path(point),
                }),
                _ => None,
            }
        })
        .collect()
}

/// Every path by which `mounts` show the canonical `path`: its own, and the same place through
/// each other mount of its filesystem whose root lies above it (bind mounts).
pub fn aliases(path: &Path, mounts: &[MountLine]) -> Vec<PathBuf> {
    let mut list = vec![path.to_owned()];
    // The mount `path` is on: the last (topmost) one of the longest mount point above it.
    let Some(own) = mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.point))
        .max_by_key(|(i, m)| (m.point.components().count(), *i))
        .map(|(_, m)| m)
    else {
        return list;
    };
    let Ok(rest) = path.strip_prefix(&own.point) else {
        return list;
    };
    let in_fs = own.root.join(rest);
    for m in mounts.iter().filter(|m| m.device == own.device) {
        if let Ok(below) = in_fs.strip_prefix(&m.root) {
            let alias = m.point.join(below);
            if !list.contains(&alias) {
                list.push(alias);
            }
        }
    }
    list
}

/// What [`is_closed`] needs to know of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirInfo {
    pub uid: u32,
    pub mode: u32,
    pub acl: bool,
}

/// Whether no user but root can search a directory.
pub fn is_closed(info: DirInfo) -> bool {
    info.uid == 0 && info.mode & 0o011 == 0 && !info.acl
}

fn dir_info(dir: &Path) -> Option<DirInfo> {
    let meta = std::fs::symlink_metadata(dir).ok()?;
    let name = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: a NUL-terminated path and attribute name; a null buffer of size 0 only asks
    // whether the attribute exists.
    let rc = unsafe {
        libc::lgetxattr(
            name.as_ptr(),
            c"system.posix_acl_access".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    // No such attribute, or a filesystem without ACLs: none. Anything else: maybe one.
    let errno = nix::errno::Errno::last();
    let acl = rc >= 0 || !matches!(errno, Errno::ENODATA | Errno::EOPNOTSUPP);
    Some(DirInfo {
        uid: meta.uid(),
        mode: meta.mode(),
        acl,
    })
}

/// Whether some directory strictly above `path` is closed to other users and outside
/// `writable` (what the container may chmod).
fn closed_above(
    path: &Path,
    writable: &[PathBuf],
    info: &dyn Fn(&Path) -> Option<DirInfo>,
) -> bool {
    path.ancestors()
        .skip(1)
        .filter(|dir| !writable.iter().any(|w| dir.starts_with(w)))
        .any(|dir| info(dir).is_some_and(is_closed))
}

/// Whether another user of the host can reach the canonical `path` by some path; `writable`
/// are the host directories the container can change the modes of.
pub fn reachable_by_others(path: &Path, writable: &[PathBuf]) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts = parse_mountinfo(&mountinfo);
    aliases(path, &mounts)
        .iter()
        .any(|alias| !closed_above(alias, writable, &dir_info))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 8:1 /srv/private/root /tmp/shared\\040dir rw shared:1 - ext4 /dev/sda1 rw
31 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw
32 22 8:2 / /srv rw shared:3 - ext4 /dev/sda2 rw
33 22 8:1 /var /mnt/var rw shared:4 - ext4 /dev/sda1 rw
";

    #[test]
    fn a_bind_mount_is_another_way_in() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts[1].point, Path::new("/tmp/shared dir"));
        let on_root = aliases(Path::new("/srv2/x"), &mounts);
        assert_eq!(on_root, [PathBuf::from("/srv2/x")]);
        // /srv/private/root/etc on sda1 is also /tmp/shared dir/etc.
        let hidden = aliases(Path::new("/home/x"), &mounts);
        assert_eq!(hidden, [PathBuf::from("/home/x")]);
        let var = aliases(Path::new("/var/lib/c/root"), &mounts);
        assert_eq!(
            var,
            [
                PathBuf::from("/var/lib/c/root"),
                PathBuf::from("/mnt/var/lib/c/root")
            ]
        );
        // On another filesystem (/srv is sda2): sda1's binds do not show it.
        let srv = aliases(Path::new("/srv/private/root/etc"), &mounts);
        assert_eq!(srv, [PathBuf::from("/srv/private/root/etc")]);
        let via_bind = aliases(Path::new("/tmp/shared dir/etc"), &mounts);
        assert!(via_bind.contains(&PathBuf::from("/srv/private/root/etc")));
    }

    #[test]
    fn a_directory_under_a_private_one_is_out_of_reach() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let root = std::fs::canonicalize(root).unwrap();
        let mode = |m| std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(m));
        mode(0o755).unwrap();
        assert!(reachable_by_others(&root, std::slice::from_ref(&root)));
        mode(0o700).unwrap();
        // Closed only when host root owns it (the tests may run as another user).
        let as_root = nix::unistd::geteuid().is_root();
        assert_eq!(
            reachable_by_others(&root, std::slice::from_ref(&root)),
            !as_root
        );
        // Unless the container can write the closing directory itself.
        let parent = dir.path().to_owned();
        assert!(reachable_by_others(&root, &[root.clone(), parent]));
    }

    #[test]
    fn only_a_root_directory_without_search_bits_or_acl_closes() {
        let dir = |uid, mode, acl| DirInfo { uid, mode, acl };
        assert!(is_closed(dir(0, 0o40700, false)));
        assert!(is_closed(dir(0, 0o40744, false)));
        assert!(!is_closed(dir(0, 0o40710, false)));
        assert!(!is_closed(dir(0, 0o40701, false)));
        assert!(!is_closed(dir(0, 0o40700, true)));
        assert!(!is_closed(dir(1000, 0o40700, false)));
    }

    #[test]
    fn a_closed_directory_the_container_can_write_does_not_count() {
        let closed = |d: &Path| {
            Some(DirInfo {
                uid: 0,
                mode: if d == Path::new("/srv/priv") {
                    0o700
                } else {
                    0o755
                },
                acl: false,
            })
        };
        let root = Path::new("/srv/priv/root");
        assert!(closed_above(root, &[root.to_owned()], &closed));
        // The root itself is never the closing directory: the container owns its mode.
        assert!(!closed_above(Path::new("/srv/priv"), &[], &closed));
        // A volume of /srv lets the container chmod /srv/priv.
        assert!(!closed_above(root, &[PathBuf::from("/srv")], &closed));
        // Unknown (not stat-able) counts as open.
        assert!(!closed_above(root, &[], &|_| None));
    }
}
