//! Address management without a daemon: CIDR arithmetic (pure), and leases kept as one file
//! per address under `RUN/netns/<bridge>/`.
//!
//! An address is claimed by creating its lease file exclusively ([`Store::claim`]: written and
//! locked before it appears under its name), so a start needs no global lock and no scan of
//! the other leases to get one. The global `flock` on `RUN/netns/lock` serialises what needs a
//! view of every lease: collecting dead ones (only when no address is free, for `netns gc`, or
//! for `--ip`/`-p`, whose clashes are checked against every lease) and the bridge's setup.
//!
//! A lease records the holder's pid, its network namespace inode, its host-side veth (name and
//! ifindex) and its published ports. It is alive while that veth exists: the kernel deletes the
//! veth when the namespace dies, whatever killed it. Until its veth exists, its creator holds
//! its file locked ([`Claim`]): a lease without a veth whose file nobody locks is one whose
//! creator died (SIGKILL) in the middle of its setup.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::publish::Publish;

/// An IPv4 network: address and prefix length, host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    /// The network that contains `ip` with this prefix.
    pub fn containing(ip: Ipv4Addr, prefix: u8) -> Cidr {
        Cidr {
            network: Ipv4Addr::from(u32::from(ip) & mask(prefix)),
            prefix,
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        let prefix = self.prefix.min(other.prefix);
        u32::from(self.network) & mask(prefix) == u32::from(other.network) & mask(prefix)
    }

    /// The gateway: the first address after the network's.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    /// Whether `ip` can be given to a container: in the network, and neither the network,
    /// the gateway nor the broadcast address.
    pub fn check_host(&self, ip: Ipv4Addr) -> Result<(), String> {
        if !self.contains(ip) {
            return Err(format!("{ip} is outside the subnet {self}"));
        }
        if ip == self.network || ip == self.broadcast() {
            return Err(format!(
                "{ip} is the network or broadcast address of {self}"
            ));
        }
        if ip == self.gateway() {
            return Err(format!("{ip} is the gateway of {self}"));
        }
        Ok(())
    }

    /// The first and last address a container can get.
    fn host_range(&self) -> (u32, u32) {
        (
            u32::from(self.gateway()) + 1,
            u32::from(self.broadcast()).saturating_sub(1),
        )
    }
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage =
            format!("'{text}' is not an IPv4 subnet: expected ADDRESS/PREFIX, e.g. 10.200.0.0/16");
        let (addr, prefix) = text.split_once('/').ok_or_else(|| usage.clone())?;
        let ip: Ipv4Addr = addr.parse().map_err(|_| usage.clone())?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 2 {
            return Err(usage);
        }
        let prefix: u8 = prefix.parse().map_err(|_| usage.clone())?;
        if !(8..=30).contains(&prefix) {
            return Err(format!(
                "the prefix of '{text}' must be between /8 and /30 (a gateway and at least one container)"
            ));
        }
        let cidr = Cidr::containing(ip, prefix);
        if cidr.network != ip {
            return Err(format!("'{text}' has host bits set: did you mean {cidr}?"));
        }
        Ok(cidr)
    }
}

/// Every address a container can get, in round-robin order from the one after `last`.
pub fn candidates(cidr: &Cidr, last: Option<Ipv4Addr>) -> impl Iterator<Item = Ipv4Addr> {
    let (first, end) = cidr.host_range();
    let count = if end < first { 0 } else { end - first + 1 };
    let start = match last {
        Some(ip) if cidr.contains(ip) && (first..=end).contains(&u32::from(ip)) => {
            u32::from(ip) - first + 1
        }
        _ => 0,
    };
    (0..count)
        .map(move |i| first + (start + i) % count)
        .map(Ipv4Addr::from)
}

/// One container's lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub bridge: String,
    /// The process that made the namespace (it execs the container's command).
    pub pid: u32,
    /// The inode of the container's network namespace (0 until it exists).
    pub netns: u64,
    /// The host end of the veth pair.
    pub veth: String,
    /// Its ifindex in the host namespace (0 until it exists).
    pub ifindex: u32,
    pub ports: Vec<Publish>,
    /// `--icc=false`: its address is in the nft set `isolated`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub isolated: bool,
}

/// What netns did to a bridge, so that `gc --prune` undoes that and nothing else: a bridge
/// it did not create (Docker's, the user's) is never deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeRecord {
    /// The bridge's ifindex when netns first used it: a later bridge of the same name (made
    /// by someone else after ours went) is not ours.
    pub ifindex: u32,
    /// netns created the bridge.
    pub created: bool,
    /// netns added the gateway address to a bridge that existed without one.
    pub address_added: bool,
    /// The subnet netns uses on it (its nft elements).
    pub subnet: String,
}

/// The record's file in a bridge's directory (not a lease: leases are named by address).
const BRIDGE_RECORD: &str = "bridge.json";

/// The state directory, locked (the global lock) or not.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    _lock: Option<File>,
}

/// A lease being set up: its file stays locked while this lives (drop it once the lease is
/// complete), so that a collector leaves it alone.
#[derive(Debug)]
pub struct Claim {
    _file: File,
}

impl Store {
    /// Opens `dir` (creating it) and takes the exclusive lock (blocks while another netns
    /// holds it).
    pub fn lock(dir: &Path) -> anyhow::Result<Store> {
        common::state::ensure_dir(dir, 0o755)?;
        let path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .with_context(|| format!("unable to open {}", path.display()))?;
        common::sys::fs::lock_exclusive(lock.as_fd())
            .with_context(|| format!("unable to lock {}", path.display()))?;
        Ok(Store {
            dir: dir.to_owned(),
            _lock: Some(lock),
        })
    }

    /// Opens `dir` (creating it) without the global lock: enough to claim an address.
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        common::state::ensure_dir(dir, 0o755)?;
        Ok(Store {
            dir: dir.to_owned(),
            _lock: None,
        })
    }

    /// The same store with the global lock, unless this one holds it already (`None`: a
    /// second `flock` from this process would wait for itself).
    pub fn lock_if_unlocked(&self) -> anyhow::Result<Option<Store>> {
        match self._lock {
            Some(_) => Ok(None),
            None => Store::lock(&self.dir).map(Some),
        }
    }

    /// Releases the global lock (if held); the store stays usable for what needs no lock.
    pub fn unlock(self) -> Store {
        Store {
            dir: self.dir,
            _lock: None,
        }
    }

    fn bridge_dir(&self, bridge: &str) -> PathBuf {
        self.dir.join(format!("bridge-{bridge}"))
    }

    /// The bridges that have (or had) leases.
    pub fn bridges(&self) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).context("unable to read the lease directory"),
        };
        for entry in entries.flatten() {
            if let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("bridge-"))
            {
                out.push(name.to_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every lease of `bridge` (unreadable files are reported and treated as dead).
    pub fn leases(&self, bridge: &str) -> anyhow::Result<Vec<Lease>> {
        let dir = self.bridge_dir(bridge);
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("unable to read {}", dir.display())),
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(ip) = name.to_str().and_then(|n| n.parse::<Ipv4Addr>().ok()) else {
                remove_if_orphan(&entry.path());
                continue;
            };
            let text = std::fs::read(entry.path()).unwrap_or_default();
            match serde_json::from_slice::<Lease>(&text) {
                Ok(lease) if lease.ip == ip => out.push(lease),
                _ => {
                    // A torn write (crash while writing): nothing can hold it.
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        out.sort_by_key(|l| l.ip);
        Ok(out)
    }

    /// The lease of `ip` on `bridge`, if any: one file read, where [`Store::leases`] reads
    /// them all (a watcher releasing its own lease must not pay for every other one: a
    /// thousand containers ending together would read a million files under the lock).
    pub fn lease(&self, bridge: &str, ip: Ipv4Addr) -> Option<Lease> {
        let text = std::fs::read(self.bridge_dir(bridge).join(ip.to_string())).ok()?;
        serde_json::from_slice::<Lease>(&text)
            .ok()
            .filter(|l| l.ip == ip && l.bridge == bridge)
    }

    /// Every lease of every bridge.
    pub fn all_leases(&self) -> anyhow::Result<Vec<Lease>> {
        let mut out = Vec::new();
        for bridge in self.bridges()? {
            out.extend(self.leases(&bridge)?);
        }
        Ok(out)
    }

    fn lease_path(&self, lease: &Lease) -> PathBuf {
        self.bridge_dir(&lease.bridge).join(lease.ip.to_string())
    }

    /// Claims `lease.ip`: its lease file is written and locked before it appears under its
    /// name (a link, which fails if the address is leased), so nobody ever reads half a lease
    /// or sees it unlocked while it is set up. `None` when the address is leased.
    pub fn claim(&self, lease: &Lease) -> anyhow::Result<Option<Claim>> {
        let dir = self.bridge_dir(&lease.bridge);
        common::state::ensure_dir(&dir, 0o755)?;
        let path = self.lease_path(lease);
        let (mut file, named) = claim_file(&dir)?;
        common::sys::fs::lock_exclusive(file.as_fd())
            .with_context(|| format!("unable to lock a new lease in {}", dir.display()))?;
        file.write_all(&serde_json::to_vec(lease)?)
            .with_context(|| format!("unable to write a new lease in {}", dir.display()))?;
        let linked = match &named {
            Some(tmp) => std::fs::hard_link(tmp, &path),
            None => nix::unistd::linkat(
                None,
                Path::new(&format!("/proc/self/fd/{}", file.as_raw_fd())),
                None,
                path.as_path(),
                nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
            )
            .map_err(std::io::Error::from),
        };
        if let Some(tmp) = &named {
            let _ = std::fs::remove_file(tmp);
        }
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("unable to create the lease {}", path.display()))
            }
        }
        self.set_last(&lease.bridge, lease.ip);
        Ok(Some(Claim { _file: file }))
    }

    /// Whether a lease without a veth is still being set up: its creator holds its file locked
    /// (a [`Claim`]), or it was completed meanwhile. One whose creator died is neither.
    pub fn in_setup(&self, lease: &Lease) -> bool {
        let Ok(mut file) = File::open(self.lease_path(lease)) else {
            return false;
        };
        match common::sys::fs::try_lock_exclusive(file.as_fd()) {
            Ok(true) => {
                // Ours until `file` closes: read what the lock covers (the file now under the
                // name, which a completed setup has replaced).
                let mut text = Vec::new();
                let _ = std::io::Read::read_to_end(&mut file, &mut text);
                serde_json::from_slice::<Lease>(&text).is_ok_and(|l| l.ifindex != 0)
            }
            Ok(false) | Err(_) => true,
        }
    }

    /// Records the last address given (round robin), in place and padded to one length: one
    /// small write, never truncated, and no temporary file a SIGKILL could leave. At worst a
    /// reader sees a mix of two addresses, which only moves where the next search starts.
    fn set_last(&self, bridge: &str, ip: Ipv4Addr) {
        use std::os::unix::fs::FileExt;
        let path = self.bridge_dir(bridge).join("last");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(path);
        if let Ok(file) = file {
            let _ = file.write_all_at(format!("{ip:<15}").as_bytes(), 0);
        }
    }

    /// Replaces a lease's content atomically.
    pub fn update(&self, lease: &Lease) -> anyhow::Result<()> {
        let path = self.lease_path(lease);
        // Its own name (not `with_extension`, which would turn 10.0.0.2 into 10.0.0.tmp, one
        // name for every lease): leases are updated concurrently.
        let tmp =
            self.bridge_dir(&lease.bridge)
                .join(format!("{}.{}.tmp", lease.ip, std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(lease)?)
            .with_context(|| format!("unable to write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("unable to update the lease {}", path.display()))
    }

    /// Removes a lease if it is still the one given (never someone else's after a reuse).
    pub fn remove(&self, lease: &Lease) -> anyhow::Result<()> {
        let path = self.lease_path(lease);
        match std::fs::read(&path) {
            Ok(text) => {
                if let Ok(current) = serde_json::from_slice::<Lease>(&text) {
                    if current.pid != lease.pid || current.veth != lease.veth {
                        bail!("the lease {} now belongs to another container", lease.ip);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("unable to read {}", path.display())),
        }
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("unable to remove the lease {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// The last address given on `bridge` (round robin).
    pub fn last(&self, bridge: &str) -> Option<Ipv4Addr> {
        std::fs::read_to_string(self.bridge_dir(bridge).join("last"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    /// What netns did to `bridge`, if it used it.
    pub fn bridge_record(&self, bridge: &str) -> Option<BridgeRecord> {
        let text = std::fs::read(self.bridge_dir(bridge).join(BRIDGE_RECORD)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes (or replaces) the record of a bridge.
    pub fn record_bridge(&self, bridge: &str, record: &BridgeRecord) -> anyhow::Result<()> {
        let dir = self.bridge_dir(bridge);
        common::state::ensure_dir(&dir, 0o755)?;
        let path = dir.join(BRIDGE_RECORD);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(record)?)
            .with_context(|| format!("unable to write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("unable to write {}", path.display()))
    }

    /// Forgets a bridge whose leases are all gone (`gc --prune`).
    pub fn forget_bridge(&self, bridge: &str) -> anyhow::Result<()> {
        let dir = self.bridge_dir(bridge);
        let _ = std::fs::remove_file(dir.join("last"));
        let _ = std::fs::remove_file(dir.join(BRIDGE_RECORD));
        match std::fs::remove_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("unable to remove {}", dir.display()))
            }
            _ => Ok(()),
        }
    }
}

/// Removes a temporary file of [`Store::update`] (`ADDR.PID.tmp`) or [`Store::claim`]
/// (`.claim.PID`) whose writer is gone (SIGKILLed between its write and its rename).
fn remove_if_orphan(path: &Path) {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let pid = match name.strip_prefix(".claim.") {
        Some(pid) => pid,
        None => match name.strip_suffix(".tmp").and_then(|n| n.rsplit_once('.')) {
            Some((ip, pid)) if ip.parse::<Ipv4Addr>().is_ok() => pid,
            _ => return,
        },
    };
    let alive = pid
        .parse::<u32>()
        .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
    if !alive {
        let _ = std::fs::remove_file(path);
    }
}

/// A new file in `dir` to become a lease: unnamed (O_TMPFILE), or where the file system has
/// no unnamed files, under a private name (returned) to link from and remove.
fn claim_file(dir: &Path) -> anyhow::Result<(File, Option<PathBuf>)> {
    let unnamed = OpenOptions::new()
        .write(true)
        .read(true)
        .mode(0o644)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(dir);
    match unnamed {
        Ok(file) => return Ok((file, None)),
        Err(e)
            if !matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) =>
        {
            return Err(e).with_context(|| format!("unable to create a lease in {}", dir.display()))
        }
        Err(_) => {}
    }
    let tmp = dir.join(format!(".claim.{}", std::process::id()));
    let file = OpenOptions::new()
        .write(true)
        .read(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)
        .with_context(|| format!("unable to create {}", tmp.display()))?;
    Ok((file, Some(tmp)))
}

/// The host-side veth name for an address: `nsc` + the address in hex (unique while the
/// lease lives, at most 11 bytes).
pub fn veth_name(ip: Ipv4Addr) -> String {
    format!("nsc{:08x}", u32::from(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn cidrs_parse_and_check() {
        let c: Cidr = "10.200.0.0/16".parse().unwrap();
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 200, 0, 1));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 200, 255, 255));
        assert!(c.contains(Ipv4Addr::new(10, 200, 3, 4)));
        assert!(!c.contains(Ipv4Addr::new(10, 201, 0, 1)));
        assert_eq!(c.to_string(), "10.200.0.0/16");
        for bad in [
            "",
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/31",
            "10.0.0.0/7",
            "10.0.0/16",
            "10.0.0.256/24",
            "10.0.0.1/24",
            "10.0.0.0/-1",
            "10.0.0.0/016x",
            "a/16",
            "10.0.0.0/1a",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} was accepted");
        }
        assert!("10.0.0.1/24"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("10.0.0.0/24"));
        let small: Cidr = "10.9.9.0/30".parse().unwrap();
        assert!(small.check_host(Ipv4Addr::new(10, 9, 9, 2)).is_ok());
        for bad in [[10, 9, 9, 0], [10, 9, 9, 1], [10, 9, 9, 3], [10, 9, 8, 2]] {
            assert!(small.check_host(Ipv4Addr::from(bad)).is_err());
        }
    }

    #[test]
    fn overlaps() {
        let a: Cidr = "10.0.0.0/8".parse().unwrap();
        let b: Cidr = "10.88.0.0/16".parse().unwrap();
        let c: Cidr = "172.17.0.0/16".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!b.overlaps(&c));
    }

    /// The next free address after `last` (round robin, like CNI host-local), or None when the
    /// subnet is exhausted.
    fn allocate(
        cidr: &Cidr,
        taken: &HashSet<Ipv4Addr>,
        last: Option<Ipv4Addr>,
    ) -> Option<Ipv4Addr> {
        candidates(cidr, last).find(|ip| !taken.contains(ip))
    }

    #[test]
    fn allocation_is_round_robin_and_ends() {
        let c: Cidr = "10.9.9.0/29".parse().unwrap(); // hosts .2 to .6
        let mut taken = HashSet::new();
        assert_eq!(allocate(&c, &taken, None), Some(Ipv4Addr::new(10, 9, 9, 2)));
        assert_eq!(
            allocate(&c, &taken, Some(Ipv4Addr::new(10, 9, 9, 2))),
            Some(Ipv4Addr::new(10, 9, 9, 3))
        );
        assert_eq!(
            allocate(&c, &taken, Some(Ipv4Addr::new(10, 9, 9, 6))),
            Some(Ipv4Addr::new(10, 9, 9, 2))
        );
        for i in 2..=5 {
            taken.insert(Ipv4Addr::new(10, 9, 9, i));
        }
        assert_eq!(
            allocate(&c, &taken, Some(Ipv4Addr::new(10, 9, 9, 2))),
            Some(Ipv4Addr::new(10, 9, 9, 6))
        );
        taken.insert(Ipv4Addr::new(10, 9, 9, 6));
        assert_eq!(allocate(&c, &taken, None), None);
        let tiny: Cidr = "10.9.9.0/30".parse().unwrap();
        assert_eq!(
            allocate(&tiny, &HashSet::new(), None),
            Some(Ipv4Addr::new(10, 9, 9, 2))
        );
    }

    fn lease(ip: [u8; 4]) -> Lease {
        Lease {
            ip: Ipv4Addr::from(ip),
            bridge: "nstest0".into(),
            pid: std::process::id(),
            netns: 0,
            veth: veth_name(Ipv4Addr::from(ip)),
            ifindex: 0,
            ports: Vec::new(),
            isolated: false,
        }
    }

    #[test]
    fn a_claim_is_exclusive_and_protects_the_lease_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::lock(dir.path()).unwrap().unlock();
        let first = lease([10, 9, 9, 2]);
        let claim = store
            .claim(&first)
            .unwrap()
            .expect("a free address is claimed");
        // Complete from the moment it appears under its name.
        assert_eq!(store.leases("nstest0").unwrap(), vec![first.clone()]);
        assert!(store.claim(&first).unwrap().is_none(), "claimed twice");
        assert_eq!(store.last("nstest0"), Some(first.ip));
        // Without a veth yet: in setup while claimed, dead once the claim is gone.
        assert!(store.in_setup(&first));
        drop(claim);
        assert!(!store.in_setup(&first));
        // Completed while a collector looked: not dead.
        let second = lease([10, 9, 9, 3]);
        let claim = store.claim(&second).unwrap().unwrap();
        let mut done = second.clone();
        done.ifindex = 7;
        store.update(&done).unwrap();
        drop(claim);
        assert!(store.in_setup(&second));
        store.remove(&done).unwrap();
        assert!(
            store.claim(&second).unwrap().is_some(),
            "a released address is free again"
        );
        // A temporary file whose writer died goes with the next scan; a live writer's stays.
        let bridge = dir.path().join("bridge-nstest0");
        let dead = bridge.join("10.9.9.4.4294967295.tmp");
        let live = bridge.join(format!("10.9.9.5.{}.tmp", std::process::id()));
        std::fs::write(&dead, "{").unwrap();
        std::fs::write(&live, "{").unwrap();
        store.leases("nstest0").unwrap();
        assert!(!dead.exists() && live.exists());
    }

    #[test]
    fn veth_names_fit_ifnamsiz() {
        let name = veth_name(Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(name, "nscffffffff");
        assert!(name.len() < 16);
    }
}
