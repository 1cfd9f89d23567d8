//! Named chains: `--name NAME` at any link names the whole chain. The first named link exports
//! `NSCHAIN_NAME`; every link registers what it made under `RUN_DIR/chains/NAME/`, one
//! [`Record`] per namespace (`uts.json`, `net.json`, ...), so `--join NAME` and `nsps` find
//! the chain's namespaces. The kernel stays the truth: a record counts only while the process
//! it names still holds a namespace with the recorded inode.
//!
//! A chain without `--name` is named too, as docker names its containers: the first link that
//! makes a namespace generates `<tool>-<6 hex digits>` and exports it, marked as generated in
//! `NSCHAIN_NAME_GENERATED`. A generated name only makes the chain visible (`nsps`, `--join`,
//! `nsps exec`): it never names an overlay layer (a later, unrelated chain may draw the same
//! name), failing to register under it never fails the chain, and a `--name` at a later link
//! replaces it (the registration is renamed).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::info::Record;
use crate::ns::{Namespace, NsFile};
use crate::{state, Fatal};

/// The chain's name, for the later links.
pub const NAME_VAR: &str = "NSCHAIN_NAME";
/// Holds the chain's name when that name was generated (equal to `NSCHAIN_NAME`, else stale).
pub const GENERATED_VAR: &str = "NSCHAIN_NAME_GENERATED";
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
    /// The chain's name.
    pub name: String,
    /// Unix time of the start, in seconds.
    pub created: u64,
    /// Host pid of the first named link.
    pub pid: u32,
    /// The name was generated (the chain was started without `--name`).
    #[serde(default)]
    pub generated: bool,
    /// When that process started (clock ticks after boot, /proc/PID/stat's field 22): the
    /// pid alone may name another process, after reuse or from another pid namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
}

/// The name this link registers under, if any: `--name`, else the chain's `NSCHAIN_NAME`,
/// else (a link that makes a namespace) a generated one.
/// `first` is true when this link starts the naming (no earlier link had a name);
/// `replaces` is the generated name of the earlier links that a `--name` here replaces.
#[derive(Clone, Debug)]
pub struct Naming {
    /// The name to register under.
    pub name: String,
    /// This link starts the naming (it claims the registration).
    pub first: bool,
    /// The name was generated, not given.
    pub generated: bool,
    /// The generated name of the earlier links that this `--name` replaces.
    pub replaces: Option<String>,
    /// Where the claim is made, fixed when the name is generated (a recycled registration
    /// was renamed there): the claiming link may run in another process by then (netns
    /// forks the supervisor in between), and a path from its own pid would leave the
    /// recycled directory behind.
    claim: Option<PathBuf>,
}

impl Naming {
    fn new(name: String, first: bool, generated: bool) -> Naming {
        Naming {
            name,
            first,
            generated,
            replaces: None,
            claim: None,
        }
    }
}

/// The chain's name inherited from the earlier links, and whether it was generated.
pub fn inherited() -> Option<(String, bool)> {
    let name = std::env::var(NAME_VAR).ok().filter(|n| !n.is_empty())?;
    let generated = std::env::var(GENERATED_VAR).is_ok_and(|g| g == name);
    Some((name, generated))
}

/// The chain's name if the user gave one (`--name` here or at an earlier link): what may name
/// persistent state such as an overlay layer.
pub fn chosen_name(explicit: Option<&str>) -> Option<String> {
    explicit.map(str::to_owned).or_else(|| {
        inherited()
            .filter(|(_, generated)| !generated)
            .map(|(n, _)| n)
    })
}

/// Decides the name from `--name` and the environment, refusing a name a running chain uses.
/// Writes nothing: [`claim`] does, once setup has succeeded. A link that joins (`creates`
/// false) and finds no name registers nothing.
pub fn naming(explicit: Option<&str>) -> Result<Option<Naming>, Fatal> {
    naming_for(explicit, "", false)
}

/// [`naming`] for link `tool`; when it makes a namespace (`creates`), an unnamed chain gets a
/// name generated after it.
pub fn naming_for(
    explicit: Option<&str>,
    tool: &str,
    creates: bool,
) -> Result<Option<Naming>, Fatal> {
    match (explicit, inherited()) {
        (None, None) if creates => Ok(Some(generate(tool))),
        (None, None) => Ok(None),
        (None, Some((name, generated))) => Ok(Some(Naming::new(name, false, generated))),
        (Some(name), Some((inherited, _))) if name == inherited => {
            Ok(Some(Naming::new(inherited, false, false)))
        }
        (Some(name), Some((inherited, true))) => {
            check_free(name)?;
            Ok(Some(Naming {
                replaces: Some(inherited),
                ..Naming::new(name.to_owned(), true, false)
            }))
        }
        (Some(name), Some((inherited, false))) => Err(Fatal::new(format!(
            "--name {name}: this chain is already named {inherited}"
        ))),
        (Some(name), None) => {
            check_free(name)?;
            Ok(Some(Naming::new(name.to_owned(), true, false)))
        }
    }
}

/// Refuses a name a running chain holds, or one a stopped chain still keeps its log and status
/// under (docker's name conflict: the old chain's logs stay readable until `nsps rm NAME`).
fn check_free(name: &str) -> Result<(), Fatal> {
    if !dir(name).exists() {
        return Ok(());
    }
    if !is_stale(name) {
        return Err(in_use(name));
    }
    match is_kept(name) {
        true => Err(kept_by_stopped(name)),
        false => Ok(()),
    }
}

/// A fresh name for an unnamed chain, `<tool>-<6 hex digits>`, not registered by any chain.
/// Generated registrations of chains that have ended are pruned first (without `--name`
/// nobody would reuse, and so clean, them), and one of them is kept for this chain: renamed
/// to its claim directory, its files rewritten in place by [`claim_with`]. A filesystem on
/// disk pays for every inode made and freed (ext4 even skips recently freed ones when it
/// allocates): a start that recycles makes and frees none.
fn generate(tool: &str) -> Naming {
    let mut name = format!("{tool}-{}", random_hex());
    for _ in 0..8 {
        if !dir(&name).exists() {
            break;
        }
        name = format!("{tool}-{}", random_hex());
    }
    let claim = claim_dir(&name);
    prune_generated(Some(&claim));
    Naming {
        claim: Some(claim),
        ..Naming::new(name, true, true)
    }
}

/// The hidden directory a registration is made in before it is renamed to its name.
fn claim_dir(name: &str) -> PathBuf {
    chains_dir().join(format!(".{name}.{}", crate::procfs::own_pid()))
}

fn random_hex() -> String {
    let mut bytes = [0u8; 3];
    let read = fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if read.is_err() {
        // Not secret, only unlikely to repeat: the pid and the clock do.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        bytes = (nanos ^ std::process::id()).to_le_bytes()[..3]
            .try_into()
            .unwrap_or_default();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes the registrations of generated names whose chain has ended: no live record and
/// the first link's process gone (a chain still starting has no record yet). The first one
/// is renamed to `keep_as` instead, when given.
fn prune_generated(mut keep_as: Option<&std::path::Path>) {
    let Ok(entries) = fs::read_dir(chains_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // A claim's hidden directory (`.NAME.PID`) whose maker died before renaming it.
        if let Some(maker) = name.strip_prefix('.').and_then(|n| n.rsplit('.').next()) {
            if !std::path::Path::new(&format!("/proc/{maker}")).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
            continue;
        }
        let Some(meta) = meta(&name) else {
            continue;
        };
        if meta.generated && is_stale_as(&name, Some(&meta)) && !is_kept(&name) {
            // Taken by a concurrent start or pruner: try the next one.
            let kept = keep_as.is_some_and(|to| fs::rename(entry.path(), to).is_ok());
            if kept {
                keep_as = None;
            } else {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Exports the chain's name for the later links (with its generated mark).
pub fn export(naming: &Naming) {
    // Through handdown: the next links get them, COMMAND does not.
    crate::handdown::export(NAME_VAR, &naming.name);
    if naming.generated {
        crate::handdown::export(GENERATED_VAR, &naming.name);
    } else {
        crate::handdown::unexport(GENERATED_VAR);
    }
}

/// Creates the chain's registration directory (first link only) and exports the name.
pub fn claim(naming: &Naming) -> Result<(), Fatal> {
    claim_with(naming, None).map(|_| ())
}

/// [`claim`], with the first link's own record written into the new directory before it
/// appears (one directory made and renamed, two small files, nothing renamed over): true if
/// `record` was registered so, false when this link does not claim (register it yourself).
pub fn claim_with(naming: &Naming, record: Option<&Record>) -> Result<bool, Fatal> {
    if !naming.first {
        return Ok(false);
    }
    let chains = chains_dir();
    state::ensure_dir(&chains, 0o755).map_err(|e| inner_root_hint(e.into()))?;
    let dir = dir(&naming.name);
    if let Some(old) = &naming.replaces {
        if rename_registration(old, &naming.name)? {
            write_json(&dir.join(META), &new_meta(naming))?;
            export(naming);
            return Ok(false);
        }
    }
    // Made under a hidden name with its chain.json, then renamed: a registration without
    // chain.json is never one being claimed, so it can be pruned at once. A generated name's
    // may hold an ended chain's files, recycled ([`generate`]).
    let tmp = naming
        .claim
        .clone()
        .unwrap_or_else(|| claim_dir(&naming.name));
    let record_file = record.map(|r| (tmp.join(format!("{}.json", r.ns.kind)), r));
    let recycled = naming.generated
        && tidy_recycled(&tmp, record_file.as_ref().map(|(path, _)| path.as_path()));
    if !recycled {
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir(&tmp)
            .with_context(|| format!("unable to create {}", tmp.display()))
            .map_err(|e| inner_root_hint(e.into()))?;
    }
    // Nobody reads a hidden directory: its files are written in place, not renamed.
    let placed = write_new(&tmp.join(META), &new_meta(naming))
        .and_then(|()| match &record_file {
            Some((path, record)) => write_new(path, record),
            None => Ok(()),
        })
        .map_err(Fatal::from)
        .and_then(|()| place(&tmp, &naming.name));
    if placed.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    placed?;
    export(naming);
    Ok(record.is_some())
}

/// Renames a new registration to its name; an existing one is replaced only if its chain has
/// ended (a concurrent start of the same name loses here).
fn place(tmp: &std::path::Path, name: &str) -> Result<(), Fatal> {
    let target = dir(name);
    for _ in 0..2 {
        match rename_noreplace(tmp, &target) {
            Ok(()) => return Ok(()),
            Err(nix::errno::Errno::EEXIST | nix::errno::Errno::ENOTEMPTY) => {
                check_free(name)?;
                let _ = fs::remove_dir_all(&target);
            }
            Err(errno) => {
                return Err(Fatal::from(
                    anyhow::Error::new(std::io::Error::from(errno))
                        .context(format!("unable to create {}", target.display())),
                ))
            }
        }
    }
    Err(in_use(name))
}

fn rename_noreplace(from: &std::path::Path, to: &std::path::Path) -> nix::Result<()> {
    nix::fcntl::renameat2(
        None,
        from,
        None,
        to,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
}

fn in_use(name: &str) -> Fatal {
    let pid = live_pid(name).or_else(|| meta(name).map(|m| m.pid));
    let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    Fatal::new(format!("the name {name} is in use by a running chain{pid}"))
        .with_hint("choose another --name, or stop that chain first (nsps lists them)")
}

fn kept_by_stopped(name: &str) -> Fatal {
    // A supervisor killed before it wrote the end leaves "running": say nothing then.
    let status = crate::supervisor::read_status(name)
        .filter(|s| s.state != "running")
        .map(|s| format!(" ({})", s.text()))
        .unwrap_or_default();
    Fatal::new(format!(
        "the name {name} is in use by a stopped chain{status} that kept its log"
    ))
    .with_hint(format!(
        "nsps logs {name} shows what it printed; nsps rm {name} frees the name"
    ))
}

/// The chain.json of a new registration (or of a renamed one, keeping its start).
fn new_meta(naming: &Naming) -> Meta {
    let earlier = naming.replaces.as_deref().and_then(meta);
    Meta {
        name: naming.name.clone(),
        created: earlier.as_ref().map(|m| m.created).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        }),
        pid: earlier
            .as_ref()
            .map(|m| m.pid)
            .unwrap_or_else(crate::procfs::own_pid),
        generated: naming.generated,
        start: match &earlier {
            Some(m) => m.start,
            None => crate::procfs::own_start_time(),
        },
    }
}

/// `--name NEW` after links that registered under the generated name OLD: their records move
/// to NEW (never over a running chain's). False when OLD has no registration to move.
fn rename_registration(old: &str, new: &str) -> Result<bool, Fatal> {
    let (from, to) = (dir(old), dir(new));
    for _ in 0..2 {
        match rename_noreplace(&from, &to) {
            Ok(()) => return Ok(true),
            Err(nix::errno::Errno::ENOENT) => return Ok(false),
            Err(nix::errno::Errno::EEXIST | nix::errno::Errno::ENOTEMPTY) => {
                check_free(new)?;
                let _ = fs::remove_dir_all(&to);
            }
            Err(errno) => {
                let error = anyhow::Error::new(std::io::Error::from(errno))
                    .context(format!("unable to rename chain {old} to {new}"));
                return Err(inner_root_hint(Fatal::from(error)));
            }
        }
    }
    Err(in_use(new))
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

/// Records of links that ran in one process, not yet written: an in-process chain writes them
/// once, in one file ([`register_batch`]), at its first real exec or exit.
pub type Pending = std::rc::Rc<std::cell::RefCell<Vec<(String, Record)>>>;

/// Writes the pending records, one file per chain name (`links-PID-KINDS.json`, a list of
/// records; `KIND.json` for a single one), and empties the list.
pub fn flush(pending: &Pending) -> Result<(), Fatal> {
    let records = std::mem::take(&mut *pending.borrow_mut());
    let mut names: Vec<&String> = records.iter().map(|(n, _)| n).collect();
    names.dedup();
    for name in names {
        let batch: Vec<&Record> = records
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, r)| r)
            .collect();
        register_batch(name, &batch)?;
    }
    Ok(())
}

/// Registers the records of links that ran in one process, in one file.
pub fn register_batch(name: &str, records: &[&Record]) -> Result<(), Fatal> {
    let [record] = records else {
        let kinds: Vec<&str> = records.iter().map(|r| r.ns.kind.as_str()).collect();
        let pid = records.first().map(|r| r.pid).unwrap_or_default();
        let path = dir(name).join(format!("links-{pid}-{}.json", kinds.join("-")));
        return checked_write(name, &path, &records);
    };
    register(name, record)
}

/// Registers one link's record under the chain (replacing an earlier one of the same type).
/// Under a generated name that cannot be written (root inside a user namespace whose ids do
/// not own the directory) the link runs unregistered: nobody asked for the name.
pub fn register(name: &str, record: &Record) -> Result<(), Fatal> {
    let path = dir(name).join(format!("{}.json", record.ns.kind));
    checked_write(name, &path, record)
}

fn checked_write(name: &str, path: &std::path::Path, value: &impl Serialize) -> Result<(), Fatal> {
    match write_json(path, value) {
        Err(e) if inherited() == Some((name.to_owned(), true)) => {
            crate::debug::note(format_args!("chain {name} not registered: {e:#}"));
            Ok(())
        }
        written => written
            .map_err(|e| Fatal::from(e).context(format!("unable to register in chain {name}"))),
    }
}

/// Writes a file no reader can see yet (in a hidden directory): one write, no rename; an
/// existing (recycled) file is overwritten and cut to length, keeping its inode and block.
fn write_new(path: &std::path::Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_vec(value)?;
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .and_then(|mut file| {
            std::io::Write::write_all(&mut file, &text)?;
            file.set_len(text.len() as u64)
        });
    written.with_context(|| format!("unable to write {}", path.display()))
}

/// Readies a recycled claim directory: what the new registration does not write is removed,
/// but one old record file becomes `record` (renamed: its inode kept). False when there is
/// no such directory.
fn tidy_recycled(tmp: &std::path::Path, mut record: Option<&std::path::Path>) -> bool {
    let Ok(entries) = fs::read_dir(tmp) else {
        return false;
    };
    let wanted = |name: &std::ffi::OsStr| {
        name == META || record.is_some_and(|r| r.file_name() == Some(name))
    };
    let mut keep: Vec<std::ffi::OsString> = entries
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| !wanted(n))
        .collect();
    if record.is_some_and(|r| r.exists()) {
        record = None;
    }
    for name in keep.drain(..) {
        let path = tmp.join(&name);
        let reused = record.is_some_and(|to| {
            path.extension().is_some_and(|x| x == "json") && fs::rename(&path, to).is_ok()
        });
        if reused {
            record = None;
        } else if fs::remove_file(&path).is_err() {
            let _ = fs::remove_dir_all(&path);
        }
    }
    true
}

fn write_json(path: &std::path::Path, value: &impl Serialize) -> anyhow::Result<()> {
    crate::state::write_whole(path, &serde_json::to_vec(value)?)
        .with_context(|| format!("unable to write {}", path.display()))
}

/// The chain's meta record, if readable.
pub fn meta(name: &str) -> Option<Meta> {
    let text = crate::procfs::read_small(dir(name).join(META)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Every record of a chain whose namespace is still held by its process.
pub fn live_records(name: &str) -> Vec<Record> {
    checked_records(name).live
}

/// A chain's records, checked against the kernel.
#[derive(Debug, Default)]
pub struct Checked {
    /// Held by the process they name.
    pub live: Vec<Record>,
    /// Not checkable (the process's namespace could not be read, e.g. another user's): each
    /// with why. Neither counted live nor gone.
    pub unverified: Vec<(Record, String)>,
}

/// Every record of a chain (one per file, or a list per file written by [`register_batch`]),
/// each checked against the namespace its process holds.
pub fn checked_records(name: &str) -> Checked {
    let mut checked = Checked::default();
    let Ok(entries) = fs::read_dir(dir(name)) else {
        return checked;
    };
    let records = entries
        .flatten()
        .filter(|e| e.file_name() != META && e.file_name() != crate::supervisor::STATUS_FILE)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| crate::procfs::read_small(e.path()).ok())
        .flat_map(|text| parse_records(&text));
    for record in records {
        match verify(&record) {
            Ok(true) => checked.live.push(record),
            Ok(false) => {}
            Err(why) => checked.unverified.push((record, why)),
        }
    }
    checked
}

fn parse_records(text: &[u8]) -> Vec<Record> {
    if let Ok(record) = serde_json::from_slice::<Record>(text) {
        return vec![record];
    }
    serde_json::from_slice::<Vec<Record>>(text).unwrap_or_default()
}

/// Whether the process a record names still holds the recorded namespace.
pub fn is_live(record: &Record) -> bool {
    verify(record) == Ok(true)
}

/// Whether the process a record names still holds the recorded namespace: `Ok(false)` when
/// the process or its namespace is gone, `Err` when it exists but cannot be checked.
pub fn verify(record: &Record) -> Result<bool, String> {
    let Some(kind) = record.kind() else {
        return Ok(false);
    };
    let path = PathBuf::from(format!("/proc/{}/ns/{}", record.pid, kind.proc_name()));
    match fs::metadata(&path) {
        Ok(meta) => Ok(meta.ino() == record.ns.inode),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("unable to read {}: {e}", path.display())),
    }
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

/// Removes a chain's registration when none of its namespaces is alive; true if removed. A
/// detached chain's (its status and log) is kept until `nsps rm` ([`remove_if_stale`]).
pub fn prune_if_stale(name: &str) -> bool {
    is_stale(name) && !has_status(name) && fs::remove_dir_all(dir(name)).is_ok()
}

/// Removes a chain's registration, its status and log included, once it has ended; true if
/// removed.
pub fn remove_if_stale(name: &str) -> bool {
    is_stale(name) && fs::remove_dir_all(dir(name)).is_ok()
}

/// Re-points the records of process `from` to process `to` where `to` holds the same
/// namespace: pidns hands its container to the chain's supervisor and exits (crate::sup), and
/// the namespaces the earlier links registered under its pid live on in the container's
/// first process, which inherited them.
pub fn hand_records(name: &str, from: u32, to: u32) {
    let Ok(entries) = fs::read_dir(dir(name)) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        if file == META || file == crate::supervisor::STATUS_FILE {
            continue;
        }
        let Ok(text) = crate::procfs::read_small(entry.path()) else {
            continue;
        };
        let single = serde_json::from_slice::<Record>(&text).is_ok();
        let mut records = parse_records(&text);
        let mut changed = false;
        for record in records.iter_mut().filter(|r| r.pid == from) {
            let moved = Record {
                pid: to,
                ..record.clone()
            };
            if is_live(&moved) {
                *record = moved;
                changed = true;
            }
        }
        if !changed {
            continue;
        }
        let written = match (single, records.as_slice()) {
            (true, [record]) => write_json(&entry.path(), record),
            _ => write_json(&entry.path(), &records),
        };
        if let Err(e) = written {
            crate::debug::note(format_args!("unable to hand over a record: {e:#}"));
        }
    }
}

/// Removes chain `name`'s registration once its container has ended, unless a process
/// outside it still holds one of its namespaces. Records of `ended` processes (the waiting
/// link, the container's first process, links that exec'd into them) are not counted: they
/// end now. A chain that keeps a status (`nsps rm` removes it) stays.
pub fn unregister(name: &str, ended: &[u32]) {
    let others = live_records(name)
        .into_iter()
        .any(|r| !ended.contains(&r.pid));
    if !others && !has_status(name) {
        let _ = fs::remove_dir_all(dir(name));
    }
}

/// Whether a chain ended but keeps what `nsps` shows of it, its name included: the status and
/// log of a detached chain.
pub fn is_kept(name: &str) -> bool {
    has_status(name) && !crate::supervisor::read_status(name).is_some_and(|s| s.foreground)
}

/// Whether a chain has a recorded status: a detached chain's, or the one recorded for a named
/// foreground chain (shown by `nsps --all` and `nsps wait` until `nsps rm` or the name's
/// reuse, which it does not block).
pub fn has_status(name: &str) -> bool {
    dir(name).join(crate::supervisor::STATUS_FILE).exists()
}

/// Whether the chain has ended: no namespace of it alive, its first process gone.
pub fn has_ended(name: &str) -> bool {
    is_stale(name)
}

/// Whether a registration belongs to a chain that has ended: none of its namespaces is alive
/// and its first link's process is gone. A chain still starting (its first link has claimed
/// the name, no link has registered yet) is not stale: pruning it would make it unlisted.
fn is_stale(name: &str) -> bool {
    // The first link's process first, the records then: pidns (in that process) re-points
    // the records to the container before it exits ([`hand_records`]), so records read after
    // its exit are the new ones. Read the other way round, records naming it, read just
    // before, were found dead just after, and a running chain was taken for ended.
    // No chain.json: emptied by an unregister that could not remove the directory itself
    // (root inside a user namespace), or garbage. A claim always comes with one.
    is_stale_as(name, meta(name).as_ref())
}

/// [`is_stale`] with the chain's meta record already read (`meta(name)`, just now): a scan
/// of every chain reads each `chain.json` once, not twice.
fn is_stale_as(name: &str, meta: Option<&Meta>) -> bool {
    let first_running = meta.is_some_and(|meta| crate::procfs::running(meta.pid, meta.start));
    !first_running && live_pid(name).is_none()
}

/// The record of a `kind` namespace in the lists of links that ran in one process
/// ([`register_batch`]); a live one first.
fn listed_record(dir: &std::path::Path, kind: Namespace) -> Option<Record> {
    let mut found: Vec<Record> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("links-"))
        .filter_map(|e| crate::procfs::read_small(e.path()).ok())
        .flat_map(|text| parse_records(&text))
        .filter(|r| r.kind() == Some(kind))
        .collect();
    found.sort_by_key(|r| !is_live(r));
    found.into_iter().next()
}

/// Opens a running chain's namespace of the given kind (`--join NAME`).
pub fn open_namespace(name: &str, kind: Namespace) -> Result<NsFile, Fatal> {
    let dir = dir(name);
    if !dir.is_dir() {
        return Err(Fatal::new(format!("no chain named {name} is running"))
            .with_hint("nsps lists the running chains"));
    }
    let path = dir.join(format!("{}.json", kind.proc_name()));
    let record: Record = match crate::procfs::read_small(&path) {
        Ok(text) => serde_json::from_slice(&text)
            .with_context(|| format!("unable to read {}", path.display()))?,
        Err(_) => match listed_record(&dir, kind) {
            Some(record) => record,
            None if live_pid(name).is_none() => {
                return Err(Fatal::new(format!("no chain named {name} is running")));
            }
            None => {
                return Err(Fatal::new(format!(
                    "chain {name} has no {kind} namespace of its own"
                )));
            }
        },
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

    #[test]
    fn generated_names_are_valid_chain_names() {
        let hex = random_hex();
        assert_eq!(hex.len(), 6);
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert!(validate_name(&format!("mntns-{hex}")).is_ok());
    }
}
