//! The working directory of COMMAND in a new root when `-w` is not given: the caller's own,
//! where the new root shows it, as bubblewrap keeps it (so `mntns --overlay / -- make -C src`
//! run from a project works), else `/`.
//!
//! The caller's directory is shown by a volume whose source holds it (the last such volume:
//! later ones are mounted over earlier ones), else by the root when its source holds it
//! (`--rootfs DIR`, or the topmost `--overlay` lower layer, `/` for `--overlay /`). The path
//! found is then resolved inside the new root like every other path there (symlinks stay
//! inside it); anything that does not resolve to a directory gives `/`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::stat::SFlag;

use crate::resolve::{self, Create};

/// Where `cwd` (a host path, canonical) is inside the new root, if a source shows it.
/// `root_source` is the host directory the root shows; `volumes` are (source, target) pairs
/// in mount order.
pub fn in_root(
    cwd: &Path,
    root_source: Option<&Path>,
    volumes: &[(PathBuf, PathBuf)],
) -> Option<PathBuf> {
    let below = |source: &Path, at: &Path| {
        let source = std::fs::canonicalize(source).ok()?;
        cwd.strip_prefix(&source).ok().map(|rest| at.join(rest))
    };
    volumes
        .iter()
        .rev()
        .find_map(|(source, target)| below(source, target))
        .or_else(|| root_source.and_then(|source| below(source, Path::new("/"))))
}

/// The caller's directory opened inside the root, or None (COMMAND starts in `/`).
pub fn keep_callers(
    root: BorrowedFd<'_>,
    cwd: Option<&Path>,
    root_source: Option<&Path>,
    volumes: &[(PathBuf, PathBuf)],
) -> Option<(PathBuf, OwnedFd)> {
    let path = in_root(cwd?, root_source, volumes)?;
    let fd = resolve::open_in_root(root, &path, Create::No).ok()?;
    (resolve::file_type(fd.as_fd()).ok()? == SFlag::S_IFDIR).then_some((path, fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_directory_is_found_where_a_source_shows_it() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let project = base.join("proj/src");
        std::fs::create_dir_all(&project).unwrap();
        // `--overlay /`: the same path.
        assert_eq!(
            in_root(&project, Some(Path::new("/")), &[]),
            Some(project.clone())
        );
        // `--rootfs DIR` holding it: the path below DIR.
        assert_eq!(
            in_root(&project, Some(&base), &[]),
            Some(PathBuf::from("/proj/src"))
        );
        // A volume holding it wins over the root.
        let volumes = vec![(base.join("proj"), PathBuf::from("/work"))];
        assert_eq!(
            in_root(&project, Some(Path::new("/")), &volumes),
            Some(PathBuf::from("/work/src"))
        );
        // Nothing shows it.
        assert_eq!(in_root(&project, Some(&base.join("other")), &[]), None);
        assert_eq!(in_root(&project, None, &[]), None);
    }
}
