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

pub const RUN_DIR_VAR: &str = "NSCHAIN_RUN_DIR";
pub const DATA_DIR_VAR: &str = "NSCHAIN_DATA_DIR";

/// Whether this process is root of the initial user namespace (not merely root inside one).
pub fn is_host_root() -> bool {
    nix::unistd::geteuid().is_root() && in_initial_user_namespace()
}

/// Whether this process's user namespace is the initial one (its uid map is the identity).
pub fn in_initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
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

fn resolve(var: &str, default: impl FnOnce() -> PathBuf) -> PathBuf {
    if let Some(dir) = std::env::var_os(var).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let dir = default();
    std::env::set_var(var, &dir);
    dir
}

/// Creates `dir` (and its parents) if missing, with `mode` for what it creates. A directory
/// that exists must belong to us or to root: state is never kept in a directory another user
/// controls.
pub fn ensure_dir(dir: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .with_context(|| format!("unable to create {}", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir)
        .with_context(|| format!("unable to read {}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || (meta.uid() != me && meta.uid() != 0) {
        bail!(
            "{} is not a directory owned by uid {me} or root",
            dir.display()
        );
    }
    Ok(())
}
