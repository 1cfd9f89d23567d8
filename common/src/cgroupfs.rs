//! The cgroup filesystems as this process sees them: which hierarchies are mounted where
//! (cgroup v2 unified, v1 one per controller set, or both: the hybrid layout), the caller's
//! own cgroup in each, and what `cgroupns` and `nsps` do with a chain's cgroup (create,
//! move a process in, read its usage, kill what is left, remove it).
//!
//! Detected from `/proc/self/mountinfo` and `/proc/self/cgroup`, never assumed: a v1 host may
//! mount `cpu` and `cpuacct` together or apart, a hybrid one has a unified mount with few or
//! no controllers, a v2 host has one mount.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The version of one hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// cgroup v1: one mount per controller set.
    V1,
    /// cgroup v2: the unified hierarchy.
    V2,
}

/// The layout of the host, as `docker info` calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only cgroup v2.
    Unified,
    /// Only v1 hierarchies.
    Legacy,
    /// v1 hierarchies plus a unified mount (systemd's "hybrid").
    Hybrid,
}

/// One mounted hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    /// v1 or v2.
    pub version: Version,
    /// v1: the controllers of its mount options (`cpu`, `name=systemd`); v2: those listed in
    /// its root's `cgroup.controllers`.
    pub controllers: Vec<String>,
    /// Where it is mounted.
    pub mount: PathBuf,
    /// The cgroup its mount shows as its root (`/` unless a subtree was mounted).
    pub mount_root: String,
    /// The caller's cgroup in it, as `/proc/self/cgroup` says (relative to the caller's
    /// cgroup namespace).
    pub own: String,
}

impl Hierarchy {
    /// The directory of cgroup `path` (a path as /proc/PID/cgroup shows it) in this mount.
    pub fn dir_of(&self, path: &str) -> PathBuf {
        let rel = path
            .strip_prefix(self.mount_root.as_str())
            .unwrap_or(path)
            .trim_start_matches('/');
        if rel.is_empty() {
            self.mount.clone()
        } else {
            self.mount.join(rel)
        }
    }

    /// The caller's own cgroup directory.
    pub fn own_dir(&self) -> PathBuf {
        self.dir_of(&self.own)
    }

    /// Whether this hierarchy carries `controller`.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// Every hierarchy this process can see.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// In mount order; v1 hierarchies mounted more than once appear once.
    pub hierarchies: Vec<Hierarchy>,
}

impl Layout {
    /// Reads the layout of this process.
    pub fn detect() -> anyhow::Result<Layout> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .context("unable to read /proc/self/mountinfo")?;
        let own =
            fs::read_to_string("/proc/self/cgroup").context("unable to read /proc/self/cgroup")?;
        let layout = Layout::parse(&mountinfo, &own, |mount| {
            fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default()
        });
        if layout.hierarchies.is_empty() {
            bail!("no cgroup filesystem is mounted (none in /proc/self/mountinfo)");
        }
        Ok(layout)
    }

    /// The layout from the text of a mountinfo and of a /proc/PID/cgroup file;
    /// `v2_controllers` reads a unified mount's `cgroup.controllers`.
    pub fn parse(mountinfo: &str, own: &str, v2_controllers: impl Fn(&Path) -> String) -> Layout {
        let paths = own_paths(own);
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for line in mountinfo.lines() {
            let Some((mount_root, mount, fstype, options)) = mount_fields(line) else {
                continue;
            };
            let (version, controllers, key) = match fstype {
                "cgroup2" => {
                    let list = v2_controllers(&mount);
                    let controllers = list.split_whitespace().map(str::to_owned).collect();
                    (Version::V2, controllers, String::new())
                }
                "cgroup" => {
                    let mut controllers: Vec<String> = options
                        .split(',')
                        .filter(|o| is_controller_option(o))
                        .map(str::to_owned)
                        .collect();
                    controllers.sort();
                    let key = controllers.join(",");
                    (Version::V1, controllers, key)
                }
                _ => continue,
            };
            if hierarchies
                .iter()
                .any(|h| h.version == version && h.controllers.join(",") == key && !key.is_empty())
                || (version == Version::V2 && hierarchies.iter().any(|h| h.version == version))
            {
                continue;
            }
            let Some(own) = paths.get(&key).cloned() else {
                continue;
            };
            hierarchies.push(Hierarchy {
                version,
                controllers,
                mount,
                mount_root,
                own,
            });
        }
        Layout { hierarchies }
    }

    /// Unified, legacy or hybrid.
    pub fn kind(&self) -> Kind {
        let v1 = self.hierarchies.iter().any(|h| h.version == Version::V1);
        match (v1, self.unified().is_some()) {
            (true, true) => Kind::Hybrid,
            (true, false) => Kind::Legacy,
            (false, _) => Kind::Unified,
        }
    }

    /// The unified (v2) hierarchy, if mounted.
    pub fn unified(&self) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.version == Version::V2)
    }

    /// The hierarchy that carries `controller`: a v1 one first (in the hybrid layout the
    /// unified mount has what v1 does not), else the unified one.
    pub fn find(&self, controller: &str) -> Option<&Hierarchy> {
        self.hierarchies
            .iter()
            .find(|h| h.version == Version::V1 && h.has(controller))
            .or_else(|| self.unified().filter(|h| h.has(controller)))
    }

    /// The directories of the cgroup of process `pid` in every hierarchy (as this process
    /// sees the hierarchies), with their versions.
    pub fn dirs_of_process(&self, pid: u32) -> anyhow::Result<Vec<(Version, PathBuf)>> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .with_context(|| format!("unable to read the cgroups of process {pid}"))?;
        let paths = own_paths(&text);
        Ok(self
            .hierarchies
            .iter()
            .filter_map(|h| {
                let key = match h.version {
                    Version::V2 => String::new(),
                    Version::V1 => h.controllers.join(","),
                };
                Some((h.version, h.dir_of(paths.get(&key)?)))
            })
            .collect())
    }
}

/// `/proc/PID/cgroup` as a map from the sorted controller list (empty: v2) to the path.
fn own_paths(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let mut controllers: Vec<&str> =
                parts.next()?.split(',').filter(|c| !c.is_empty()).collect();
            controllers.sort_unstable();
            Some((controllers.join(","), parts.next()?.to_owned()))
        })
        .collect()
}

/// Whether a v1 mount option names a controller (or a named hierarchy) rather than a flag.
fn is_controller_option(option: &str) -> bool {
    !matches!(
        option,
        "rw" | "ro"
            | "nosuid"
            | "nodev"
            | "noexec"
            | "relatime"
            | "noatime"
            | "clone_children"
            | "noprefix"
            | "xattr"
            | "cpuset_v2_mode"
            | "favordynmods"
    ) && !option.starts_with("release_agent=")
}

/// (root, mount point, fstype, super options) of one mountinfo line.
fn mount_fields(line: &str) -> Option<(String, PathBuf, &str, &str)> {
    let (left, right) = line.split_once(" - ")?;
    let mut left = left.split(' ');
    let root = unescape(left.nth(3)?);
    let mount = PathBuf::from(unescape(left.next()?));
    let mut right = right.split(' ');
    let fstype = right.next()?;
    let _source = right.next()?;
    let options = right.next().unwrap_or("");
    Some((root, mount, fstype, options))
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A cgroup's `cgroup.procs` files, opened ([`Cgroup::open_entry`]; close-on-exec).
#[derive(Debug)]
pub struct Entry(Vec<fs::File>);

impl Entry {
    /// Moves the calling process in, in every hierarchy (async-signal-safe: writes only, so
    /// a child may call it between fork and exec).
    pub fn enter(&self) -> std::io::Result<()> {
        for file in &self.0 {
            std::io::Write::write_all(&mut &*file, b"0")?;
        }
        Ok(())
    }

    /// The descriptors, which must stay open until [`Entry::enter`].
    pub fn fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.0.iter().map(AsRawFd::as_raw_fd).collect()
    }
}

/// One cgroup of a chain: its directory in each hierarchy it was made in.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cgroup {
    /// (version, directory) per hierarchy.
    pub dirs: Vec<(Version, PathBuf)>,
}

impl Cgroup {
    /// Moves process `pid` into the cgroup, in every hierarchy (`0`: the caller).
    pub fn add(&self, pid: u32) -> anyhow::Result<()> {
        for (_, dir) in &self.dirs {
            fs::write(dir.join("cgroup.procs"), pid.to_string())
                .with_context(|| format!("unable to move process {pid} into {}", dir.display()))?;
        }
        Ok(())
    }

    /// Opens the cgroup's `cgroup.procs` files now, for a process that moves itself in later
    /// with fewer rights ([`Entry::enter`]): the kernel judges a move by the rights the file
    /// was opened with (v1: the open; v2: the open-time credentials and cgroup namespace).
    pub fn open_entry(&self) -> anyhow::Result<Entry> {
        let files = self
            .dirs
            .iter()
            .map(|(_, dir)| {
                let path = dir.join("cgroup.procs");
                fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .with_context(|| format!("unable to open {}", path.display()))
            })
            .collect::<anyhow::Result<Vec<fs::File>>>()?;
        Ok(Entry(files))
    }

    /// The processes in the cgroup (in any of its hierarchies).
    pub fn procs(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self
            .dirs
            .iter()
            .flat_map(|(_, dir)| read_pids(dir))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The directory of this cgroup in the hierarchy that carries `file` (`memory.max`,
    /// `pids.current`), if any.
    pub fn dir_with(&self, file: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .map(|(_, d)| d.as_path())
            .find(|d| d.join(file).exists())
    }

    /// Kills every process left in the cgroup and waits (up to `patience`) until it is
    /// empty: v2 writes `cgroup.kill`; v1 freezes it (so nothing forks meanwhile), sends
    /// SIGKILL to each member and thaws it.
    pub fn kill(&self, patience: Duration) -> anyhow::Result<()> {
        if self.procs().is_empty() {
            return Ok(());
        }
        let v2_kill = self
            .dirs
            .iter()
            .find(|(v, d)| *v == Version::V2 && d.join("cgroup.kill").exists());
        if let Some((_, dir)) = v2_kill {
            fs::write(dir.join("cgroup.kill"), "1")
                .with_context(|| format!("unable to write {}/cgroup.kill", dir.display()))?;
        } else {
            self.kill_frozen()?;
        }
        let deadline = Instant::now() + patience;
        let mut rounds = 0u32;
        while !self.procs().is_empty() {
            if Instant::now() > deadline {
                bail!("processes {:?} are still in the cgroup", self.procs());
            }
            rounds += 1;
            // A member outside the v2 cgroup (moved there by hand) or one that forked past
            // a v1 kill: signal what is left again, every 100 ms.
            if rounds.is_multiple_of(20) {
                self.kill_frozen()?;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// v1: freezes the cgroup (so nothing forks meanwhile), SIGKILLs every member, thaws it.
    fn kill_frozen(&self) -> anyhow::Result<()> {
        let freezer = self.dir_with("freezer.state");
        if let Some(dir) = freezer {
            freeze(dir, "FROZEN")?;
        }
        for pid in self.procs() {
            // SAFETY: kill only sends a signal; the pid is a member of our cgroup.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        if let Some(dir) = freezer {
            fs::write(dir.join("freezer.state"), "THAWED").context("unable to thaw the cgroup")?;
        }
        Ok(())
    }

    /// Removes the cgroup's directories (those already gone are fine). The kernel refuses
    /// while an exiting member is not yet reaped (EBUSY): retried for up to `patience`.
    pub fn remove(&self, patience: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + patience;
        for (_, dir) in &self.dirs {
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => {
                        return Err(e)
                            .with_context(|| format!("unable to remove {}", dir.display()))
                    }
                }
            }
        }
        Ok(())
    }

    /// What the cgroup uses now and what bounds it, from whichever files exist.
    pub fn usage(&self) -> Usage {
        let number = |file: &str| -> Option<u64> {
            let text = fs::read_to_string(self.dir_with(file)?.join(file)).ok()?;
            text.trim().parse().ok()
        };
        let limit = |file: &str| -> Option<u64> {
            let text = fs::read_to_string(self.dir_with(file)?.join(file)).ok()?;
            // v2 writes "max"; v1 a huge number near 2^63 for no limit.
            text.trim().parse().ok().filter(|n| *n < (1 << 60))
        };
        let keyed = |file: &str, key: &str| -> Option<u64> {
            let text = fs::read_to_string(self.dir_with(file)?.join(file)).ok()?;
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok())?
            })
        };
        Usage {
            memory_bytes: number("memory.current").or_else(|| number("memory.usage_in_bytes")),
            memory_limit: limit("memory.max").or_else(|| limit("memory.limit_in_bytes")),
            pids: number("pids.current"),
            pids_limit: limit("pids.max"),
            oom_kills: keyed("memory.events", "oom_kill")
                .or_else(|| keyed("memory.oom_control", "oom_kill")),
            cpu_usec: keyed("cpu.stat", "usage_usec")
                .or_else(|| number("cpuacct.usage").map(|ns| ns / 1000)),
        }
    }
}

/// What a cgroup uses and what bounds it (None: not known here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Memory charged to it, in bytes.
    pub memory_bytes: Option<u64>,
    /// Its memory limit, in bytes (None: unlimited or unknown).
    pub memory_limit: Option<u64>,
    /// Processes (tasks) in it.
    pub pids: Option<u64>,
    /// Its process limit.
    pub pids_limit: Option<u64>,
    /// How many processes the OOM killer killed in it.
    pub oom_kills: Option<u64>,
    /// CPU time used, in microseconds.
    pub cpu_usec: Option<u64>,
}

fn read_pids(dir: &Path) -> Vec<u32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Sets a v1 freezer state and waits for it to take.
fn freeze(dir: &Path, state: &str) -> anyhow::Result<()> {
    let file = dir.join("freezer.state");
    fs::write(&file, state).with_context(|| format!("unable to write {}", file.display()))?;
    let deadline = Instant::now() + Duration::from_secs(1);
    while fs::read_to_string(&file).unwrap_or_default().trim() != state {
        if Instant::now() > deadline {
            // A member stuck in the kernel: SIGKILL still reaches it.
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// A human size: `64.0 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_OWN: &str =
        "4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n9:name=systemd:/\n0::/\n";

    #[test]
    fn the_hybrid_layout_is_detected_with_the_callers_cgroups() {
        let layout = Layout::parse(HYBRID, HYBRID_OWN, |_| "hugetlb\n".into());
        assert_eq!(layout.kind(), Kind::Hybrid);
        assert_eq!(layout.hierarchies.len(), 5);
        let memory = layout.find("memory").unwrap();
        assert_eq!(
            memory.own_dir(),
            Path::new("/sys/fs/cgroup/memory/process_api/abc")
        );
        assert_eq!(
            layout.find("cpu").unwrap().own_dir(),
            Path::new("/sys/fs/cgroup/cpu")
        );
        assert!(layout.find("pids").is_none());
        assert_eq!(layout.find("hugetlb").unwrap().version, Version::V2);
        assert!(layout.find("name=systemd").is_some());
    }

    #[test]
    fn a_unified_host_and_a_joint_cpu_cpuacct_mount() {
        let v2 = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let layout = Layout::parse(v2, "0::/user.slice/u.scope\n", |_| {
            "cpu memory pids\n".into()
        });
        assert_eq!(layout.kind(), Kind::Unified);
        let memory = layout.find("memory").unwrap();
        assert_eq!(
            memory.own_dir(),
            Path::new("/sys/fs/cgroup/user.slice/u.scope")
        );
        let v1 = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpuacct,cpu\n";
        let layout = Layout::parse(v1, "2:cpu,cpuacct:/x\n", |_| String::new());
        assert_eq!(layout.kind(), Kind::Legacy);
        assert_eq!(
            layout.find("cpuacct").unwrap().own_dir(),
            Path::new("/sys/fs/cgroup/cpu,cpuacct/x")
        );
    }

    #[test]
    fn a_subtree_mount_maps_paths_below_its_root() {
        let line = "50 23 0:40 /outer /mnt/cg\\040x rw - cgroup2 cgroup2 rw\n";
        let layout = Layout::parse(line, "0::/outer/inner\n", |_| String::new());
        let h = &layout.hierarchies[0];
        assert_eq!(h.own_dir(), Path::new("/mnt/cg x/inner"));
    }

    #[test]
    fn usage_reads_v2_and_v1_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("memory.current"), "1048576\n").unwrap();
        fs::write(dir.path().join("memory.max"), "max\n").unwrap();
        fs::write(
            dir.path().join("memory.events"),
            "low 0\noom 2\noom_kill 1\n",
        )
        .unwrap();
        fs::write(dir.path().join("pids.current"), "3\n").unwrap();
        fs::write(dir.path().join("pids.max"), "64\n").unwrap();
        let cg = Cgroup {
            dirs: vec![(Version::V2, dir.path().to_owned())],
        };
        let u = cg.usage();
        assert_eq!(u.memory_bytes, Some(1 << 20));
        assert_eq!(u.memory_limit, None);
        assert_eq!(u.oom_kills, Some(1));
        assert_eq!((u.pids, u.pids_limit), (Some(3), Some(64)));
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
    }
}
