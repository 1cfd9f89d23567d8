//! `--map-auto`: a 65536-id host range for inner ids 0..65535, never shared by two running
//! chains.
//!
//! Where ranges come from:
//! - the caller's `/etc/subuid` and `/etc/subgid` entries, cut into 65536-id blocks (the k-th
//!   uid block goes with the k-th gid block) — always when unprivileged, and as root when root
//!   has entries in both files;
//! - otherwise, as root, the built-in pool of systemd-nspawn's `--private-users=pick`: 64K
//!   blocks from 0x80000 (524288) up to 0x6FFF0000 (1879048192), skipping every block that holds
//!   a uid of /etc/passwd, a gid of /etc/group, or a range delegated in /etc/subuid or
//!   /etc/subgid. The lowest free block is taken.
//!
//! As root, a range's chains keep their overlay layers in the range's own data directory
//! (`DATA/userns-<uid>/overlay`): a named chain is given back the range that keeps its layer
//! (or refused, naming the chain that holds it, rather than started from an empty layer), and
//! the other chains take a range that keeps no layer while there is one.
//!
//! Allocation happens under an exclusive `flock` on the directory `RUN_DIR/userns/`. Each allocation is
//! a lease file `RUN_DIR/userns/lease-UID-GID.json` naming its holder: the pid (with its start
//! time, against pid reuse) and the inode of the user namespace it made. The lock is held until
//! the lease names the new namespace, so a lease is live exactly while that process still has
//! that user namespace (or while it is pinned with `--pin`, or, if the holder is gone, while a
//! process still runs as one of its host uids). The next allocation removes every lease that is not
//! live: a chain's range is free again as soon as the chain has ended, even after SIGKILL.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::idmap::Range;
use crate::subid::{SubIds, User, BLOCK, SUBGID, SUBUID};
use common::{debug, state, Fatal};

/// The built-in pool (systemd-nspawn's `--private-users=pick` range).
pub const POOL_START: u32 = 0x0008_0000;
pub const POOL_END: u32 = 0x6FFF_0000;

/// Where the host ids come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Pairs of (uid block, gid block) from the caller's subordinate id entries.
    SubIds(Vec<(u32, u32)>),
    /// The built-in pool, minus the blocks holding these host ids or ranges.
    Pool { busy: Vec<(u64, u64)> },
}

/// A lease as stored on disk.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseRecord {
    pub pid: u32,
    /// The inode of the holder's user namespace; 0 while the namespace is being made.
    pub userns: u64,
    pub uid: u32,
    pub gid: u32,
    pub count: u32,
    /// The holder's start time (field 22 of /proc/PID/stat), so that a reused pid is not
    /// taken for the holder; /proc/PID/stat stays readable when /proc/PID/ns is not (the
    /// holder of a rootless range runs as a subordinate uid after it becomes root inside).
    #[serde(default)]
    pub start: u64,
    /// `--pin PATH`: the namespace outlives its process while pinned there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<PathBuf>,
}

impl LeaseRecord {
    fn overlaps(&self, uid: u32, gid: u32) -> bool {
        let hit = |a: u32, b: u32| {
            u64::from(a) < u64::from(b) + u64::from(BLOCK)
                && u64::from(b) < u64::from(a) + u64::from(self.count)
        };
        hit(self.uid, uid) || hit(self.gid, gid)
    }
}

/// Decides where `--map-auto` ranges come from for this caller; fails with the lines to add
/// when an unprivileged caller has no delegation.
pub fn source(user: &User, privileged: bool) -> Result<Source, Fatal> {
    let subuid = SubIds::read(Path::new(SUBUID))?;
    let subgid = SubIds::read(Path::new(SUBGID))?;
    let uids = subuid.blocks(user);
    let gids = subgid.blocks(user);
    if !uids.is_empty() && !gids.is_empty() {
        return Ok(Source::SubIds(uids.into_iter().zip(gids).collect()));
    }
    if privileged {
        let mut busy: Vec<(u64, u64)> = Vec::new();
        for ids in [&subuid, &subgid] {
            busy.extend(ids.entries.iter().map(|e| (u64::from(e.start), e.end())));
        }
        for file in ["/etc/passwd", "/etc/group"] {
            busy.extend(ids_in(file).into_iter().map(|id| (id, id + 1)));
        }
        return Ok(Source::Pool { busy });
    }
    let (file, ids) = if uids.is_empty() {
        (SUBUID, &subuid)
    } else {
        (SUBGID, &subgid)
    };
    let has_some = !ids.of(user).is_empty();
    let message = if has_some {
        format!(
            "--map-auto needs 65536 ids delegated to user {} in {file}, the entry is smaller",
            user.shown()
        )
    } else {
        format!(
            "--map-auto needs ids delegated to user {} in {SUBUID} and {SUBGID}, {file} has none",
            user.shown()
        )
    };
    Err(Fatal::new(message).with_hint(format!(
        "as root, add this line to {SUBUID}: {}, and this line to {SUBGID}: {}",
        subuid.suggested_line(user),
        subgid.suggested_line(user)
    )))
}

/// The third field (uid or gid) of every line of /etc/passwd or /etc/group.
fn ids_in(file: &str) -> Vec<u64> {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(':').nth(2)?.parse::<u64>().ok())
        .collect()
}

impl Source {
    /// The candidate (uid start, gid start) blocks, in order of preference.
    fn candidates(&self) -> Box<dyn Iterator<Item = (u32, u32)> + '_> {
        match self {
            Source::SubIds(pairs) => Box::new(pairs.iter().copied()),
            Source::Pool { busy } => Box::new(
                (POOL_START..POOL_END)
                    .step_by(BLOCK as usize)
                    .filter(move |start| {
                        let (a, b) = (u64::from(*start), u64::from(*start) + u64::from(BLOCK));
                        !busy.iter().any(|(s, e)| *s < b && a < *e)
                    })
                    .map(|s| (s, s)),
            ),
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Source::SubIds(_) => "subids",
            Source::Pool { .. } => "pool",
        }
    }
}

/// A held allocation. Until [`Lease::commit`] the lock is held. Dropping it removes the lease
/// file (setup failed: nothing is left behind); after a successful exec it is never dropped,
/// and the file names the running chain.
#[derive(Debug)]
pub struct Lease {
    path: PathBuf,
    lock: Option<File>,
    record: LeaseRecord,
    source: &'static str,
}

/// The lease directory: `RUN_DIR/userns`.
pub fn dir() -> PathBuf {
    state::run_dir().join("userns")
}

/// The ranges whose data directory keeps overlay layers (`DATA/userns-<uid>/overlay/*`), and
/// among them those keeping the layer of chain `name`.
#[derive(Debug, Default)]
pub struct Kept {
    layers: HashSet<u32>,
    named: Vec<u32>,
    name: Option<String>,
}

impl Kept {
    pub fn read(data: &Path, name: Option<&str>) -> Kept {
        let mut kept = Kept {
            name: name.map(str::to_owned),
            ..Kept::default()
        };
        let Ok(entries) = fs::read_dir(data) else {
            return kept;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(uid) = file_name
                .to_str()
                .and_then(|n| n.strip_prefix("userns-"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let overlay = entry.path().join("overlay");
            if fs::read_dir(&overlay).is_ok_and(|mut d| d.next().is_some()) {
                kept.layers.insert(uid);
            }
            if name.is_some_and(|n| overlay.join(n).is_dir()) {
                kept.named.push(uid);
            }
        }
        kept
    }
}

/// Takes the lock, reclaims dead leases and leases a free block: the one keeping this chain's
/// layer, else the first keeping no layer, else the first.
pub fn allocate(source: &Source, pin: Option<&Path>, kept: &Kept) -> Result<Lease, Fatal> {
    let dir = dir();
    state::ensure_dir(&dir, 0o755).map_err(|e| Fatal::from(e).context("unable to lease ids"))?;
    // The directory itself is the lock: no lock file to leave behind.
    let lock = File::open(&dir).with_context(|| format!("unable to open {}", dir.display()))?;
    debug::step("lock the id leases", || lock_file(&lock, libc::LOCK_EX))
        .with_context(|| format!("unable to lock {}", dir.display()))?;
    let live = debug::step("reclaim dead leases", || live_leases(&dir));
    let running = debug::step("read the uids processes run as", uids_running);
    let free = |(uid, gid): &(u32, u32)| {
        !live.iter().any(|l| l.overlaps(*uid, *gid))
            && !running
                .iter()
                .any(|r| (*uid..uid.saturating_add(BLOCK)).contains(r))
    };
    let own: Vec<(u32, u32)> = match kept.named.is_empty() {
        true => Vec::new(),
        false => source
            .candidates()
            .filter(|(uid, _)| kept.named.contains(uid))
            .collect(),
    };
    let chosen = match own.iter().find(|c| free(c)) {
        Some(range) => Some(*range),
        None if !own.is_empty() => {
            let _ = lock_file(&lock, libc::LOCK_UN);
            return Err(layer_held(&own[0], &live, kept));
        }
        None => source
            .candidates()
            .find(|c| free(c) && !kept.layers.contains(&c.0))
            .or_else(|| source.candidates().find(free)),
    };
    let Some((uid, gid)) = chosen else {
        let _ = lock_file(&lock, libc::LOCK_UN);
        return Err(Fatal::new(format!(
            "no free 65536-id range for --map-auto: {} running chains hold all of them",
            live.len()
        ))
        .with_hint(match source {
            Source::SubIds(_) => {
                format!("delegate more ids to this user in {SUBUID} and {SUBGID}, or stop a chain")
            }
            Source::Pool { .. } => "stop a chain started with --map-auto".to_owned(),
        }));
    };
    let record = LeaseRecord {
        pid: common::procfs::own_pid(),
        userns: 0,
        uid,
        gid,
        count: BLOCK,
        start: common::procfs::start_time(common::procfs::own_pid()).unwrap_or(0),
        pin: pin.and_then(|p| std::path::absolute(p).ok()),
    };
    let path = dir.join(format!("lease-{uid}-{gid}.json"));
    let lease = Lease {
        path,
        lock: Some(lock),
        record,
        source: source.describe(),
    };
    lease.write()?;
    Ok(lease)
}

/// A named chain's layer is kept in a range another chain holds: starting from an empty layer
/// would silently lose its files.
fn layer_held(range: &(u32, u32), live: &[LeaseRecord], kept: &Kept) -> Fatal {
    let name = kept.name.as_deref().unwrap_or_default();
    let holder = live
        .iter()
        .find(|l| l.overlaps(range.0, range.1))
        .map(|lease| {
            let chain = common::chain::names().into_iter().find(|chain| {
                common::chain::live_records(chain)
                    .iter()
                    .any(|r| r.ns.kind == "user" && r.ns.inode == lease.userns)
            });
            match chain {
                Some(chain) => format!("chain {chain} (pid {})", lease.pid),
                None => format!("pid {}", lease.pid),
            }
        })
        .unwrap_or_else(|| "another chain".to_owned());
    Fatal::new(format!(
        "the layer of chain {name} is kept in the range of host uid {}, which {holder} holds now",
        range.0
    ))
    .with_hint(format!(
        "stop {holder} and start {name} again, or choose another --name (nsps rm {name} deletes the kept layer)"
    ))
}

/// `flock(2)` on a file (`LOCK_EX` or `LOCK_UN`), retrying on EINTR.
fn lock_file(file: &File, operation: libc::c_int) -> std::io::Result<()> {
    use common::sys::fs;
    let result = match operation {
        libc::LOCK_UN => fs::unlock(file.as_fd()),
        libc::LOCK_SH => fs::lock_shared(file.as_fd()),
        _ => fs::lock_exclusive(file.as_fd()),
    };
    result.map_err(std::io::Error::from)
}

/// Reads every lease, removes those whose holder is gone and returns the live ones.
fn live_leases(dir: &Path) -> Vec<LeaseRecord> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut live = Vec::new();
    let mut dead = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with("lease-") || !name.ends_with(".json") {
            continue;
        }
        let record = fs::read(entry.path())
            .ok()
            .and_then(|text| serde_json::from_slice::<LeaseRecord>(&text).ok());
        match record {
            Some(record) if holder_has_namespace(&record) => live.push(record),
            // Unreadable, unfinished (its maker died holding the lock) or holder gone.
            Some(record) if record.userns != 0 => dead.push((entry.path(), Some(record))),
            _ => dead.push((entry.path(), None)),
        }
    }
    if dead.iter().any(|(_, r)| r.is_some()) {
        // The holder is gone, but a process of its namespace may have outlived it (a daemon
        // that left the chain): while a process runs as one of its host uids, they are in use.
        let candidates: Vec<&LeaseRecord> = dead.iter().filter_map(|(_, r)| r.as_ref()).collect();
        let in_use = uids_in_use(&candidates);
        for (path, record) in dead {
            match record {
                Some(record) if in_use.contains(&record.uid) => live.push(record),
                _ => {
                    let _ = fs::remove_file(path);
                }
            }
        }
    } else {
        for (path, _) in dead {
            let _ = fs::remove_file(path);
        }
    }
    live
}

fn holder_has_namespace(record: &LeaseRecord) -> bool {
    if record.userns == 0 {
        return false;
    }
    let pinned = record
        .pin
        .as_deref()
        .is_some_and(|pin| fs::metadata(pin).is_ok_and(|m| m.ino() == record.userns));
    if pinned {
        return true;
    }
    if common::procfs::start_time(record.pid) != Some(record.start) {
        return false;
    }
    // The holder runs; its namespace is checked when we may look (not always rootless).
    match fs::metadata(format!("/proc/{}/ns/user", record.pid)) {
        Ok(meta) => meta.ino() == record.userns,
        Err(_) => true,
    }
}

/// The uids processes of this machine run as now. The leases of this run directory are not
/// the only ones: chains with another `NSCHAIN_RUN_DIR` lease from the same ids, and a range
/// whose processes run is taken, whoever's files say so.
fn uids_running() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut uids: Vec<u32> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            let uid = e.metadata().ok()?.uid();
            // A zombie holds no ids any more (ranges are high: only those are checked).
            (uid < 65536 || !is_zombie(&e.file_name())).then_some(uid)
        })
        .collect();
    uids.sort_unstable();
    uids.dedup();
    uids
}

/// Whether process `pid` has exited and waits to be reaped (it uses no ids any more).
fn is_zombie(pid: &std::ffi::OsStr) -> bool {
    let path = Path::new("/proc").join(pid).join("stat");
    let Ok(stat) = fs::read_to_string(path) else {
        return true;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    matches!(state, Some("Z" | "X"))
}

/// The uid starts of the leases whose host uids some process still runs as (the owner of
/// /proc/PID is the process's effective uid, readable by anyone).
fn uids_in_use(leases: &[&LeaseRecord]) -> HashSet<u32> {
    let mut in_use = HashSet::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return in_use;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let uid = u64::from(meta.uid());
        for lease in leases {
            let start = u64::from(lease.uid);
            if (start..start + u64::from(lease.count)).contains(&uid) && !is_zombie(&name) {
                in_use.insert(lease.uid);
            }
        }
    }
    in_use
}

impl Lease {
    fn write(&self) -> Result<(), Fatal> {
        let tmp = self.path.with_extension("tmp");
        let text = serde_json::to_vec(&self.record)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .with_context(|| format!("unable to write {}", tmp.display()))?;
        file.write_all(&text)
            .with_context(|| format!("unable to write {}", tmp.display()))?;
        fs::rename(&tmp, &self.path)
            .with_context(|| format!("unable to write {}", self.path.display()))?;
        Ok(())
    }

    /// The leased uid range for inner 0..65535.
    pub fn uid_range(&self) -> Range {
        Range {
            inner: 0,
            outer: self.record.uid,
            count: self.record.count,
        }
    }

    /// The leased gid range for inner 0..65535.
    pub fn gid_range(&self) -> Range {
        Range {
            inner: 0,
            outer: self.record.gid,
            count: self.record.count,
        }
    }

    pub fn source(&self) -> &'static str {
        self.source
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records the new user namespace as the holder and releases the lock.
    pub fn commit(&mut self, userns: u64) -> Result<(), Fatal> {
        self.record.userns = userns;
        let written = self.write();
        self.unlock();
        written
    }

    fn unlock(&mut self) {
        if let Some(lock) = self.lock.take() {
            // An explicit unlock: the forked helpers may still share the open file.
            let _ = lock_file(&lock, libc::LOCK_UN);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        self.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_skips_busy_ids() {
        let pool = Source::Pool {
            busy: vec![(524288 + 5, 524288 + 6), (589824, 589824 + 70000)],
        };
        let first: Vec<(u32, u32)> = pool.candidates().take(2).collect();
        // 524288 holds a passwd id, 589824 and 655360 the subuid range.
        assert_eq!(first, vec![(720896, 720896), (786432, 786432)]);
        let all = Source::Pool { busy: vec![] };
        assert_eq!(all.candidates().count(), 28663);
        assert_eq!(
            all.candidates().last(),
            Some((POOL_END - BLOCK, POOL_END - BLOCK))
        );
    }

    #[test]
    fn leases_overlap_by_uid_or_gid() {
        let lease = LeaseRecord {
            pid: 1,
            userns: 1,
            uid: 100000,
            gid: 200000,
            count: BLOCK,
            start: 0,
            pin: None,
        };
        assert!(lease.overlaps(100000, 0));
        assert!(lease.overlaps(0, 200000));
        assert!(lease.overlaps(100000 + 65535, 0));
        assert!(!lease.overlaps(100000 + 65536, 200000 + 65536));
        assert!(!lease.overlaps(100000 - 65536, 200000 - 65536));
        assert!(lease.overlaps(100000 - 65535, 0));
    }
}
