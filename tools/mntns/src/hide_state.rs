//! Hides nschain's own state from a root that shows the host's files (`--overlay /`,
//! `--rootfs /`, a lower layer holding `/var/lib`): the data directory holds every
//! container's writable layer (another container's `/root`, its secrets), the run directory
//! every chain's registrations and leases. None of it is the container's business, so the
//! whole of both is covered — not only this chain's own part.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use common::report::Fatal;
use common::state;
use nix::mount::MsFlags;

use crate::{debug, resolve, sys};

/// The rootful defaults, hidden even when this chain keeps its state elsewhere: a rootful
/// container must not read the layers of the machine's other containers either.
const SYSTEM_DIRS: [&str; 2] = ["/var/lib/nschain", "/run/nschain"];

/// Covers each state directory that exists in `root` with an empty read-only tmpfs.
pub fn hide(root: BorrowedFd<'_>) -> Result<(), Fatal> {
    for dir in hidden_dirs(&state::data_dir(), &state::run_dir()) {
        cover(root, &dir)?;
    }
    Ok(())
}

fn cover(root: BorrowedFd<'_>, dir: &Path) -> Result<(), Fatal> {
    let Ok(Some(target)) = resolve::find_in_root(root, dir) else {
        return Ok(());
    };
    if resolve::file_type(target.as_fd())? != nix::sys::stat::SFlag::S_IFDIR {
        return Ok(());
    }
    debug::step(format_args!("hide {}", dir.display()), || {
        sys::mount_fs(
            "tmpfs",
            target.as_fd(),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("size=4k,nr_inodes=1,mode=0555"),
        )
    })
    .map_err(|e| {
        Fatal::from(e).context(format!("unable to hide {} in the new root", dir.display()))
    })
}

/// What [`hide`] covers, outermost first: the data and run directories of this chain, each
/// widened to its parent when it is a range's own (`DATA/userns-<uid>`, made by `userns` as
/// host root, whose parent holds the other ranges and the rootful containers), then the
/// system defaults. A directory inside one already listed is left out.
fn hidden_dirs(data: &Path, run: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = [data, run]
        .into_iter()
        .map(|d| absolute(&widen(d)))
        .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
        .collect();
    dirs.sort();
    dirs.dedup();
    let outer = dirs.clone();
    dirs.retain(|d| !outer.iter().any(|o| o != d && d.starts_with(o)));
    dirs
}

fn widen(dir: &Path) -> PathBuf {
    let range_dir = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("userns-"))
        .is_some_and(|uid| !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit()));
    match (range_dir, dir.parent()) {
        (true, Some(parent)) if parent != Path::new("/") => parent.to_owned(),
        _ => dir.to_owned(),
    }
}

fn absolute(dir: &Path) -> PathBuf {
    if dir.is_absolute() {
        return dir.to_owned();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(dir))
        .unwrap_or_else(|_| dir.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(data: &str, run: &str) -> Vec<PathBuf> {
        hidden_dirs(Path::new(data), Path::new(run))
    }

    #[test]
    fn the_whole_data_and_run_directories_are_hidden_with_the_system_ones() {
        assert_eq!(
            dirs("/var/lib/nschain", "/run/nschain"),
            [Path::new("/run/nschain"), Path::new("/var/lib/nschain")]
        );
        assert_eq!(
            dirs("/srv/d", "/tmp/r"),
            [
                Path::new("/run/nschain"),
                Path::new("/srv/d"),
                Path::new("/tmp/r"),
                Path::new("/var/lib/nschain")
            ]
        );
    }

    #[test]
    fn a_range_data_dir_hides_its_parent_with_every_other_range() {
        assert_eq!(
            dirs("/srv/d/userns-524288", "/srv/d/run"),
            [
                Path::new("/run/nschain"),
                Path::new("/srv/d"),
                Path::new("/var/lib/nschain")
            ]
        );
        assert_eq!(
            dirs("/var/lib/nschain/userns-524288", "/run/nschain"),
            [Path::new("/run/nschain"), Path::new("/var/lib/nschain")]
        );
        // Not a range's directory: only itself.
        assert!(dirs("/data/userns-x", "/r").contains(&PathBuf::from("/data/userns-x")));
        assert!(dirs("/userns-1", "/r").contains(&PathBuf::from("/userns-1")));
    }
}
