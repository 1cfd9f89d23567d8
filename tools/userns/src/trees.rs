//! `--idmap PATH`: idmapped layers for a rootful chain with a range map.
//!
//! Under `--map-auto`, the container's root is an unprivileged host uid (524288, say): every
//! file of the host's root or of an image belongs to an unmapped uid, and root inside cannot
//! create `/opt/test1` on `mntns --overlay /`, nor can nginx write `/var/log/nginx`. An
//! idmapped mount shows a tree with its owners shifted into the namespace's range — host uid
//! 0 reads as uid 0 inside — without chowning anything.
//!
//! Only host root may make one, and only once the namespace's maps exist, so the helper
//! (forked before the unshare) makes a detached clone of PATH (`open_tree(OPEN_TREE_CLONE)`,
//! not recursive: the submounts of `/`, such as /proc, cannot all be idmapped) and idmaps it
//! (`mount_setattr(MOUNT_ATTR_IDMAP)` with the new user namespace), then hands the fd back.
//!
//! The trees go down the chain as inherited fds named in `NSCHAIN_IDMAP`: one `FD PATH` line
//! per tree (PATH absolute and canonical, without a newline). The producer (userns) exports
//! it and clears close-on-exec only right before its exec; the consumer (mntns) reads it,
//! unexports it and closes every fd of it before COMMAND runs; every other link passes them
//! through untouched.
//!
//! The writable side: with a range map, host root also prepares a data directory owned by
//! the range's root, `$NSCHAIN_DATA_DIR/userns-<host uid>/`, and exports it as the later
//! links' `NSCHAIN_DATA_DIR`, so that `mntns --overlay` can create its layer there.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use caps::CapSet;
use common::handdown::Slot;
use common::{report, state, Fatal};

use crate::helper::Helper;
use crate::plan::{Caller, Plan};

/// The variable naming the handed-down trees.
pub const VAR: &str = common::handdown::IDMAP_VAR;

/// Checks the `--idmap` paths and the privilege they need (before anything is made);
/// returns them canonical.
/// `earlier`: an earlier link already hands trees down.
pub fn check(paths: &[PathBuf], earlier: bool) -> Result<Vec<PathBuf>, Fatal> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let mut checked: Vec<PathBuf> = Vec::new();
    for path in paths {
        if !path.is_absolute() {
            return Err(
                Fatal::new(format!("--idmap {}: not an absolute path", path.display())).with_hint(
                    "give the tree as an absolute path, e.g. --idmap / or --idmap \"$PWD/rootfs\"",
                ),
            );
        }
        if path.as_os_str().as_bytes().contains(&b'\n') {
            return Err(Fatal::new(format!(
                "--idmap {:?}: a path with a newline cannot be handed down",
                path
            )));
        }
        let canonical = std::fs::canonicalize(path).map_err(|e| {
            Fatal::from(e).context(format!("unable to use {} for --idmap", path.display()))
        })?;
        if canonical.as_os_str().as_bytes().contains(&b'\n') {
            return Err(Fatal::new(format!(
                "--idmap {:?}: a path with a newline cannot be handed down",
                canonical
            )));
        }
        if !checked.contains(&canonical) {
            checked.push(canonical);
        }
    }
    if !host_root() {
        return Err(Fatal::new(
            "--idmap needs root on the host (CAP_SYS_ADMIN in the initial user namespace)",
        )
        .with_hint(
            "rootless, files you own already appear as root inside under --map-root (the \
             default): drop --idmap",
        ));
    }
    if earlier {
        return Err(Fatal::new(format!(
            "an earlier link already hands down idmapped trees ({VAR} is set)"
        ))
        .with_hint("give --idmap to one userns link of a chain"));
    }
    Ok(checked)
}

/// `--idmap` needs a range map: a tree idmapped for a namespace that maps only the caller's
/// own id would look as it is.
pub fn check_range(paths: &[PathBuf], plan: &Plan, caller: &Caller) -> Result<(), Fatal> {
    if paths.is_empty() {
        return Ok(());
    }
    if !plan.auto && plan.uid_map.is_single_of(caller.uid) && plan.gid_map.is_single_of(caller.gid)
    {
        return Err(Fatal::new(
            "--idmap needs a range map: with only your own id mapped, an idmapped tree would look as it is",
        )
        .with_hint("add --map-auto (or --map-users and --map-groups)"));
    }
    Ok(())
}

/// Warns when no `mntns` follows in COMMAND's words: then nothing consumes the trees, and the
/// payload itself gets them (root inside could attach one in a mount namespace of its own and
/// write PATH's files with their host owners).
pub fn warn_without_consumer(paths: &[PathBuf], command: &[OsString]) {
    if paths.is_empty() {
        return;
    }
    if !common::handed_fd::consumer_follows(command, "mntns") {
        report::warning(format_args!(
            "no mntns follows in this chain: COMMAND itself gets the idmapped trees ({VAR}), \
             writable with their host owners by whoever attaches them"
        ));
    }
}

/// Root of the initial user namespace with CAP_SYS_ADMIN (what idmapped mounts need).
fn host_root() -> bool {
    state::in_initial_user_namespace()
        && caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SYS_ADMIN).unwrap_or(false)
}

/// The trees made for this chain, held until the exec.
#[derive(Debug, Default)]
pub struct Trees {
    list: Vec<(PathBuf, OwnedFd)>,
}

impl Trees {
    /// Has the helper make one idmapped tree per path (the maps are written).
    pub fn make(paths: &[PathBuf], helper: Option<&mut Helper>) -> Result<Trees, Fatal> {
        let mut trees = Trees::default();
        if paths.is_empty() {
            return Ok(trees);
        }
        let helper = helper.ok_or_else(|| Fatal::new("--idmap needs the map helper"))?;
        for path in paths {
            let fd = helper.idmap(path)?;
            trees.list.push((path.clone(), fd));
        }
        Ok(trees)
    }

    /// The trees as the next links' hand-down (common writes `NSCHAIN_IDMAP` at the exec).
    pub fn hand_down(self) -> Slot<Vec<(PathBuf, OwnedFd)>> {
        if self.list.is_empty() {
            Slot::Empty
        } else {
            Slot::Made(self.list)
        }
    }

    /// For the `--info-fd` line and the registration.
    pub fn describe(&self) -> Vec<String> {
        self.list
            .iter()
            .map(|(p, _)| p.to_string_lossy().into_owned())
            .collect()
    }
}

/// Warns when host uid `uid` (gid `gid`), the later links' ids outside, cannot reach `dir`:
/// an ancestor it may not search (a private `mktemp -d` state directory, say) makes every
/// later registration or layer fail with EACCES, far from the cause.
pub fn warn_unreachable(dirs: &[PathBuf], uid: u32, gid: u32) {
    let mut said: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let Some((ancestor, mode, owner)) = unreachable_ancestor(dir, uid, gid) else {
            continue;
        };
        if said.contains(&ancestor) {
            continue;
        }
        report::warning(format_args!(
            "host uid {uid} (the namespace's ids outside) cannot reach {}: {} is mode {:o} of uid {owner}, so later links cannot keep state there (chmod o+x {})",
            dir.display(),
            ancestor.display(),
            mode & 0o7777,
            ancestor.display()
        ));
        said.push(ancestor);
    }
}

/// The first ancestor of `dir` that `uid`/`gid` may not search: (path, mode, owner).
fn unreachable_ancestor(dir: &Path, uid: u32, gid: u32) -> Option<(PathBuf, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let ancestors: Vec<&Path> = dir.ancestors().skip(1).collect();
    for ancestor in ancestors.into_iter().rev() {
        let meta = std::fs::metadata(ancestor).ok()?;
        let mode = meta.mode();
        let searchable = if meta.uid() == uid {
            mode & 0o100 != 0
        } else if meta.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !searchable {
            return Some((ancestor.to_owned(), mode, meta.uid()));
        }
    }
    None
}

/// Collects the stale `--rm` layers of every range (`DATA/userns-*/overlay`).
pub fn collect_stale_layers(data: &Path) {
    let Ok(entries) = std::fs::read_dir(data) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("userns-") {
            common::after::collect_stale(&entry.path().join("overlay"));
        }
    }
}

/// The data directory of a range: `DATA/userns-<host uid>`.
pub fn range_data_dir(data: &Path, uid: u32) -> PathBuf {
    data.join(format!("userns-{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_ancestor_is_found() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let other = me.wrapping_add(524288);
        let target = private.join("data/userns-1");
        let found = unreachable_ancestor(&target, other, other).map(|(p, _, _)| p);
        assert_eq!(found.as_deref(), Some(private.as_path()));
        assert_eq!(unreachable_ancestor(&target, me, me), None);
    }

    #[test]
    fn range_data_dirs_are_one_component() {
        assert_eq!(
            range_data_dir(Path::new("/var/lib/nschain"), 524288),
            Path::new("/var/lib/nschain/userns-524288")
        );
    }
}
