//! Where chains keep state: runtime state (leases, registrations) under the run directory,
//! persistent state (overlay layers) under the data directory (DESIGN.md §1, "State").
//!
//! | | rootful | rootless |
//! |---|---|---|
//! | run  | `/run/nschain`     | `$XDG_RUNTIME_DIR/nschain`, else `/tmp/nschain-UID` |
//! | data | `/var/lib/nschain` | `$XDG_DATA_HOME/nschain`, else `~/.local/share/nschain` |
//!
//! `NSCHAIN_RUN_DIR` and `NSCHAIN_DATA_DIR` override both. The first link that resolves a
//! directory exports it, so every later link (perhaps now root inside a user namespace) uses
//! the same one.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Overrides the run directory (and carries it down the chain).
pub const RUN_DIR_VAR: &str = "NSCHAIN_RUN_DIR";
/// Overrides the data directory (and carries it down the chain).
pub const DATA_DIR_VAR: &str = "NSCHAIN_DATA_DIR";

/// Whether this process is root of the initial user namespace (not merely root inside one).
pub fn is_host_root() -> bool {
    nix::unistd::geteuid().is_root() && in_initial_user_namespace()
}

/// Whether this process's user namespace is the initial one (its uid map is the identity).
pub fn in_initial_user_namespace() -> bool {
    crate::procfs::read("/proc/self/uid_map")
        .map(|map| {
            let fields: Vec<&str> = map.split_whitespace().collect();
            fields == ["0", "0", "4294967295"]
        })
        .unwrap_or(false)
}

/// The runtime state directory (exported for later links).
pub fn run_dir() -> PathBuf {
    resolve(RUN_DIR_VAR, || {
        if is_host_root() {
            return PathBuf::from("/run/nschain");
        }
        match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => Path::new(&dir).join("nschain"),
            None => PathBuf::from(format!("/tmp/nschain-{}", nix::unistd::getuid())),
        }
    })
}

/// The persistent state directory (exported for later links).
pub fn data_dir() -> PathBuf {
    resolve(DATA_DIR_VAR, || {
        if is_host_root() {
            return PathBuf::from("/var/lib/nschain");
        }
        if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            return Path::new(&dir).join("nschain");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
        Path::new(&home).join(".local/share/nschain")
    })
}

/// The data directory of the later links (a user namespace's range root), instead of the
/// caller's: they get it as they get every state directory.
pub fn hand_down_data_dir(dir: &Path) {
    crate::handdown::export(DATA_DIR_VAR, dir);
}

fn resolve(var: &str, default: impl FnOnce() -> PathBuf) -> PathBuf {
    if let Some(dir) = std::env::var_os(var).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let dir = default();
    crate::handdown::export(var, &dir);
    dir
}

/// The mode of a state root this process creates: the data directory is traversable but not
/// listable (a range's root must reach `DATA/userns-<uid>`, made for it by host root, but not
/// learn the names of other containers); the run directory is readable, for `nsps`.
const DATA_ROOT_MODE: u32 = 0o711;
const RUN_ROOT_MODE: u32 = 0o755;

/// Creates `dir` if missing, with `mode` (the directories between it and its state root
/// 0755, the state root itself `DATA_ROOT_MODE` or `RUN_ROOT_MODE`).
///
/// State is never kept where another user could move it: the state root and every directory
/// below it on the way to `dir` must be real directories owned by us or root and writable by
/// no one else (as podman and systemd refuse a runtime directory they do not own). A rootless
/// `/tmp/nschain-UID` made by another user is refused, not used.
pub fn ensure_dir(dir: &Path, mode: u32) -> anyhow::Result<()> {
    let (root, root_mode, state_root) = match state_root_of(dir) {
        Some((root, root_mode)) => (root, root_mode, true),
        None => (dir.to_owned(), mode, false),
    };
    let root_mode = if root == dir { mode } else { root_mode };
    if !(state_root && root_checked(&root)) {
        // Existing (every start but the first): one statx per level, no mkdir (cheap start).
        let looked = std::fs::symlink_metadata(&root);
        let missing = looked
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
        if let Some(parent) = root.parent().filter(|_| missing) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .with_context(|| format!("unable to create {}", parent.display()))?;
        }
        check_one(&root, root_mode, looked)?;
        if state_root {
            remember_root(&root);
        }
    }
    let mut path = root.clone();
    let below = dir.strip_prefix(&root).unwrap_or(Path::new(""));
    for part in below.components() {
        path.push(part);
        make_one(&path, if path == dir { mode } else { 0o755 })?;
    }
    Ok(())
}

/// The state roots this process has checked ([`ensure_dir`]), each with the effective uid it
/// was checked as: what it holds is made below them, so each is looked at once per process,
/// not once per file. A state root is never removed by a chain. Forgotten where the verdict
/// could change: at a change of user or mount namespace ([`forget_checked_roots`]) and at
/// an in-process hand-off (an exec would start with none).
static CHECKED_ROOTS: std::sync::Mutex<Vec<(PathBuf, u32)>> = std::sync::Mutex::new(Vec::new());

fn root_checked(root: &Path) -> bool {
    let me = nix::unistd::geteuid().as_raw();
    CHECKED_ROOTS
        .lock()
        .is_ok_and(|roots| roots.iter().any(|(r, uid)| r == root && *uid == me))
}

fn remember_root(root: &Path) {
    let me = nix::unistd::geteuid().as_raw();
    if let Ok(mut roots) = CHECKED_ROOTS.lock() {
        roots.push((root.to_owned(), me));
    }
}

/// Forgets the state roots [`ensure_dir`] checked: the next use checks again. Called where
/// the owners a check sees may change (a new user namespace maps them anew, a new mount
/// namespace may show other directories) and at an in-process hand-off.
pub fn forget_checked_roots() {
    if let Ok(mut roots) = CHECKED_ROOTS.lock() {
        roots.clear();
    }
}

/// The state root (run or data directory of this chain) that holds `dir`, with its mode.
fn state_root_of(dir: &Path) -> Option<(PathBuf, u32)> {
    [(run_dir(), RUN_ROOT_MODE), (data_dir(), DATA_ROOT_MODE)]
        .into_iter()
        .filter(|(root, _)| dir.starts_with(root))
        .max_by_key(|(root, _)| root.as_os_str().len())
}

fn make_one(dir: &Path, mode: u32) -> anyhow::Result<()> {
    // Looked at first: an existing directory (the usual case) costs one statx.
    check_one(dir, mode, std::fs::symlink_metadata(dir))
}

/// Creates `dir` when `looked` (its metadata, read by the caller) found it missing, then
/// checks it is safe.
fn check_one(
    dir: &Path,
    mode: u32,
    looked: std::io::Result<std::fs::Metadata>,
) -> anyhow::Result<()> {
    let meta = match looked {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match std::fs::DirBuilder::new().mode(mode).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("unable to create {}", dir.display()))
                }
            }
            std::fs::symlink_metadata(dir)
                .with_context(|| format!("unable to read {}", dir.display()))?
        }
        Err(e) => return Err(e).with_context(|| format!("unable to read {}", dir.display())),
    };
    check_safe(dir, meta.is_dir(), meta.uid(), meta.mode())
}

/// Whether a state directory is one only we (or root) control.
fn check_safe(dir: &Path, is_dir: bool, owner: u32, mode: u32) -> anyhow::Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    if !is_dir {
        bail!(
            "{} is not a directory (a symbolic link is refused): remove it",
            dir.display()
        );
    }
    if owner != me && owner != 0 {
        // Inside a user namespace an unmapped owner shows as the overflow uid.
        let who = if in_initial_user_namespace() {
            format!("uid {owner}")
        } else {
            format!("uid {owner} of this user namespace (a host uid it does not map shows so)")
        };
        return Err(denied(format!(
            "{} belongs to {who}, not to uid {me} or root: another user made it; remove it or choose another directory (NSCHAIN_RUN_DIR, NSCHAIN_DATA_DIR)",
            dir.display()
        )));
    }
    if mode & 0o022 != 0 {
        return Err(denied(format!(
            "{} is writable by other users (mode {:04o}): chmod go-w it, or choose another directory (NSCHAIN_RUN_DIR, NSCHAIN_DATA_DIR)",
            dir.display(),
            mode & 0o7777
        )));
    }
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all: into `PATH` with the extension `tmpPID`,
/// then renamed over it. A reader never sees half a record, and a writer SIGKILLed halfway
/// leaves only a temporary that [`is_abandoned_temporary`] recognises.
pub fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", crate::procfs::own_pid()));
    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path))
}

/// Whether `path` is a temporary of [`write_whole`] whose writer has ended.
pub fn is_abandoned_temporary(path: &Path) -> bool {
    path.extension()
        .and_then(|x| x.to_str()?.strip_prefix("tmp")?.parse::<u32>().ok())
        .is_some_and(|pid| !crate::procfs::running(pid, None))
}

/// A state directory refused because someone else could change it (callers add their hints
/// by recognising it).
#[derive(Debug)]
pub struct UnsafeDir(String);

impl std::fmt::Display for UnsafeDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnsafeDir {}

fn denied(message: String) -> anyhow::Error {
    anyhow::Error::new(UnsafeDir(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_written_whole_and_a_dead_writers_temporary_is_known() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        write_whole(&path, b"{}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "no temporary is left");
        let ours = path.with_extension(format!("tmp{}", std::process::id()));
        assert!(!is_abandoned_temporary(&ours));
        assert!(is_abandoned_temporary(
            &path.with_extension(format!("tmp{}", u32::MAX))
        ));
        assert!(!is_abandoned_temporary(&path));
    }

    #[test]
    fn a_state_directory_of_another_user_or_open_to_others_is_refused() {
        let me = nix::unistd::geteuid().as_raw();
        let other = if me == 4242 { 4243 } else { 4242 };
        let dir = Path::new("/x/nschain");
        assert!(check_safe(dir, true, me, 0o40755).is_ok());
        assert!(check_safe(dir, true, 0, 0o40711).is_ok());
        let foreign = check_safe(dir, true, other, 0o40700)
            .unwrap_err()
            .to_string();
        assert!(
            foreign.contains(&format!("belongs to uid {other}")),
            "{foreign}"
        );
        let open = check_safe(dir, true, me, 0o40777).unwrap_err().to_string();
        assert!(
            open.contains("writable by other users (mode 0777)"),
            "{open}"
        );
        assert!(check_safe(dir, true, me, 0o40775).is_err());
        let link = check_safe(dir, false, me, 0o120777)
            .unwrap_err()
            .to_string();
        assert!(link.contains("not a directory"), "{link}");
    }
}
