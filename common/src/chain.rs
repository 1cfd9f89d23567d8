//! Named chains: `--name NAME` at any link names the whole chain. The first named link exports
//! `NSCHAIN_NAME`; every link registers what it made under `RUN_DIR/chains/NAME/`, one
//! [`Record`] per namespace (`uts.json`, `net.json`, ...), so `--join NAME` and `nsps` find
//! the chain's namespaces. The kernel stays the truth: a record counts only while the process
//! it names still holds a namespace with the recorded inode.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::info::Record;
use crate::ns::{inode_of, Namespace, NsFile};
use crate::{state, Fatal};

pub const NAME_VAR: &str = "NSCHAIN_NAME";
const META: &str = "chain.json";

/// Chain names follow Docker's container names: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 63 bytes.
pub fn validate_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if name.len() > 63 || !first_ok || !rest_ok {
        return Err(format!(
            "invalid chain name '{name}': use 1 to 63 of [A-Za-z0-9_.-], starting with a letter or digit"
        ));
    }
    Ok(())
}

/// Value parser for `--name`.
pub fn parse_name(text: &str) -> Result<String, String> {
    validate_name(text).map(|()| text.to_owned())
}

/// The directory holding every chain's registrations.
pub fn chains_dir() -> PathBuf {
    state::run_dir().join("chains")
}

/// The registration directory of one chain.
pub fn dir(name: &str) -> PathBuf {
    chains_dir().join(name)
}

/// Chain-wide facts written once by the first link.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    pub name: String,
    /// Unix time of the start, in seconds.
    pub created: u64,
    /// Host pid of the first named link.
    pub pid: u32,
}

/// The name this link registers under, if any: `--name`, else the chain's `NSCHAIN_NAME`.
/// `first` is true when this link starts the naming (no earlier link had a name).
#[derive(Clone, Debug)]
pub struct Naming {
    pub name: String,
    pub first: bool,
}

/// Decides the name from `--name` and the environment, refusing a name a running chain uses.
/// Writes nothing: [`claim`] does, once setup has succeeded.
pub fn naming(explicit: Option<&str>) -> Result<Option<Naming>, Fatal> {
    let inherited = std::env::var(NAME_VAR).ok().filter(|n| !n.is_empty());
    match (explicit, inherited) {
        (None, None) => Ok(None),
        (None, Some(name)) => Ok(Some(Naming { name, first: false })),
        (Some(name), Some(inherited)) if name == inherited => Ok(Some(Naming {
            name: inherited,
            first: false,
        })),
        (Some(name), Some(inherited)) => Err(Fatal::new(format!(
            "--name {name}: this chain is already named {inherited}"
        ))),
        (Some(name), None) => {
            if let Some(pid) = live_pid(name) {
                return Err(Fatal::new(format!(
                    "the name {name} is in use by a running chain (pid {pid})"
                ))
                .with_hint("choose another --name, or stop that chain first (nsps lists them)"));
            }
            Ok(Some(Naming {
                name: name.to_owned(),
                first: true,
            }))
        }
    }
}

/// Creates the chain's registration directory (first link only) and exports the name.
pub fn claim(naming: &Naming) -> Result<(), Fatal> {
    if !naming.first {
        return Ok(());
    }
    let chains = chains_dir();
    state::ensure_dir(&chains, 0o755).map_err(|e| inner_root_hint(e.into()))?;
    let dir = dir(&naming.name);
    if fs::create_dir(&dir).is_err() {
        // It exists: reuse it only if its chain is gone (a concurrent start loses here).
        if let Some(pid) = live_pid(&naming.name) {
            return Err(Fatal::new(format!(
                "the name {} is in use by a running chain (pid {pid})",
                naming.name
            )));
        }
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir)
            .with_context(|| format!("unable to create {}", dir.display()))
            .map_err(|e| inner_root_hint(e.into()))?;
    }
    let meta = Meta {
        name: naming.name.clone(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        pid: crate::procfs::own_pid(),
    };
    write_json(&dir.join(META), &meta)?;
    crate::handdown::export(NAME_VAR, &naming.name);
    Ok(())
}

/// Root inside a user namespace whose root is another host uid (`userns --map-auto` run by
/// root) cannot create a registration in the host root's run directory: say where the name
/// must be given instead.
fn inner_root_hint(fatal: Fatal) -> Fatal {
    let denied = fatal.error.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
            || c.downcast_ref::<state::UnsafeDir>().is_some()
    });
    if !denied || state::in_initial_user_namespace() {
        return fatal;
    }
    fatal.with_hint(
        "inside a user namespace, root cannot register in the host's run directory: as root \
         with a range map, give --name at userns or an earlier link",
    )
}

/// Registers one link's record under the chain (replacing an earlier one of the same type).
pub fn register(name: &str, record: &Record) -> Result<(), Fatal> {
    let path = dir(name).join(format!("{}.json", record.ns.kind));
    write_json(&path, record)
        .map_err(|e| Fatal::from(e).context(format!("unable to register in chain {name}")))
}

fn write_json(path: &std::path::Path, value: &impl Serialize) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, serde_json::to_vec(value)?)
        .with_context(|| format!("unable to write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("unable to write {}", path.display()))
}

/// The chain's meta record, if readable.
pub fn meta(name: &str) -> Option<Meta> {
    let text = fs::read(dir(name).join(META)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Every record of a chain whose namespace is still held by its process.
pub fn live_records(name: &str) -> Vec<Record> {
    let Ok(entries) = fs::read_dir(dir(name)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name() != META && e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice::<Record>(&fs::read(e.path()).ok()?).ok())
        .filter(is_live)
        .collect()
}

/// Whether the process a record names still holds the recorded namespace.
pub fn is_live(record: &Record) -> bool {
    let Some(kind) = record.kind() else {
        return false;
    };
    let path = PathBuf::from(format!("/proc/{}/ns/{}", record.pid, kind.proc_name()));
    inode_of(&path).is_ok_and(|inode| inode == record.ns.inode)
}

/// Whether the chain has a live record for this kind of namespace.
pub fn has_live_record(name: &str, kind: Namespace) -> bool {
    live_records(name).iter().any(|r| r.kind() == Some(kind))
}

/// A pid that keeps the chain alive, if any.
pub fn live_pid(name: &str) -> Option<u32> {
    live_records(name).first().map(|r| r.pid)
}

/// The names of registered chains, running or not.
pub fn names() -> Vec<String> {
    let Ok(entries) = fs::read_dir(chains_dir()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| validate_name(n).is_ok())
        .collect();
    names.sort();
    names
}

/// Removes a chain's registration when none of its namespaces is alive; true if removed.
pub fn prune_if_stale(name: &str) -> bool {
    if live_pid(name).is_some() {
        return false;
    }
    fs::remove_dir_all(dir(name)).is_ok()
}

/// Opens a running chain's namespace of the given kind (`--join NAME`).
pub fn open_namespace(name: &str, kind: Namespace) -> Result<NsFile, Fatal> {
    let dir = dir(name);
    if !dir.is_dir() {
        return Err(Fatal::new(format!("no chain named {name} is running"))
            .with_hint("nsps lists the running chains"));
    }
    let path = dir.join(format!("{}.json", kind.proc_name()));
    let record: Record = match fs::read(&path) {
        Ok(text) => serde_json::from_slice(&text)
            .with_context(|| format!("unable to read {}", path.display()))?,
        Err(_) if live_pid(name).is_none() => {
            return Err(Fatal::new(format!("no chain named {name} is running")));
        }
        Err(_) => {
            return Err(Fatal::new(format!(
                "chain {name} has no {kind} namespace of its own"
            )));
        }
    };
    let proc = PathBuf::from(format!("/proc/{}/ns/{}", record.pid, kind.proc_name()));
    let file = fs::File::open(&proc)
        .ok()
        .filter(|f| f.metadata().is_ok_and(|m| m.ino() == record.ns.inode));
    match file {
        Some(file) => Ok(NsFile {
            kind,
            file,
            path: proc,
        }),
        None => Err(Fatal::new(format!(
            "the {kind} namespace of chain {name} is gone (its process {} exited)",
            record.pid
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker_rules() {
        assert!(validate_name("web1").is_ok());
        assert!(validate_name("nginx-1.a_b").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name(&"a".repeat(64)).is_err());
    }
}
