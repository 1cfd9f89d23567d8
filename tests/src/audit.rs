//! The leak audit: what a test's containers may leave on the host, snapshotted before and
//! compared after (DESIGN.md §4, "Nothing leaks").
//!
//! A snapshot holds, for one test: the mounts that mention its state directory (or any other
//! path it watches, e.g. its scratch directory with the container roots), the state files
//! under its run and data directories (leases, registrations, overlay layers), every
//! process that carries its `NSCHAIN_RUN_DIR` in its environment and the namespaces those
//! processes hold, the cgroups its chains made (`nschain-NAME` directories in any hierarchy
//! whose chain the state directory knows, or that hold one of its processes), and — when the test plays the host in a throwaway network namespace —
//! that namespace's links and nft ruleset.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What may be left behind, at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub mounts: BTreeSet<String>,
    pub state_files: BTreeSet<PathBuf>,
    pub processes: BTreeSet<String>,
    pub links: BTreeSet<String>,
    pub nft: String,
    /// `type:[inode]` of every namespace held by those processes (what `lsns` would list).
    pub namespaces: BTreeSet<String>,
    /// `nschain-*` cgroup directories of this state directory's chains.
    pub cgroups: BTreeSet<PathBuf>,
}

/// Takes a snapshot for the test whose state lives under `state`; `netns` names the
/// throwaway network namespace (`ip netns` name) that plays the host, if any.
pub fn snapshot(state: &Path, netns: Option<&str>) -> Snapshot {
    snapshot_watching(state, netns, &[])
}

/// [`snapshot`], also counting the mounts that mention any of `watched` (a test's scratch
/// directory, where its container roots are).
pub fn snapshot_watching(state: &Path, netns: Option<&str>, watched: &[&Path]) -> Snapshot {
    let mut markers = vec![state.display().to_string()];
    markers.extend(watched.iter().map(|p| p.display().to_string()));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| markers.iter().any(|m| l.contains(m.as_str())))
        .map(|l| l.split_whitespace().nth(4).unwrap_or_default().to_owned())
        .collect();
    let mut state_files = BTreeSet::new();
    for dir in ["run", "data"] {
        walk(&state.join(dir), &mut state_files);
    }
    let (links, nft) = match netns {
        Some(ns) => (
            in_netns(ns, &["ip", "-o", "link", "show"])
                .lines()
                .map(|l| {
                    l.split(':')
                        .nth(1)
                        .unwrap_or_default()
                        .trim()
                        .split('@')
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect(),
            in_netns(ns, &["nft", "list", "ruleset"]),
        ),
        None => (BTreeSet::new(), String::new()),
    };
    let processes = processes_with_env(&format!("NSCHAIN_RUN_DIR={}", state.join("run").display()));
    let namespaces = processes
        .iter()
        .filter_map(|p| p.split(' ').next())
        .flat_map(|pid| {
            ["mnt", "pid", "net", "ipc", "uts", "user", "cgroup"]
                .into_iter()
                .filter_map(move |kind| {
                    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
                        .ok()
                        .map(|l| l.display().to_string())
                })
        })
        .collect();
    let cgroups = chain_cgroups(state);
    Snapshot {
        mounts,
        state_files,
        processes,
        links,
        nft,
        namespaces,
        cgroups,
    }
}

/// Waits (up to 30 s, cleanup may be asynchronous) until the snapshot equals `before`, then
/// returns; panics with the difference otherwise. Paths under `kept` are allowed to remain.
pub fn assert_nothing_left(before: &Snapshot, state: &Path, netns: Option<&str>, kept: &[&Path]) {
    assert_nothing_left_watching(before, state, netns, kept, &[]);
}

/// [`assert_nothing_left`] for a snapshot taken with [`snapshot_watching`] (same `watched`).
pub fn assert_nothing_left_watching(
    before: &Snapshot,
    state: &Path,
    netns: Option<&str>,
    kept: &[&Path],
    watched: &[&Path],
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut after = snapshot_watching(state, netns, watched);
        after
            .state_files
            .retain(|f| !kept.iter().any(|k| f.starts_with(k)) && !before.state_files.contains(f));
        let mut expected = before.clone();
        expected.state_files.clear();
        // Files that are just empty directories of the state layout are not leaks, nor are
        // `userns --map-auto` leases whose holder is gone: userns execs, so it cannot delete
        // its lease; the kernel is the judge and the next --map-auto reclaims them.
        after
            .state_files
            .retain(|f| !f.is_dir() && !is_dead_userns_lease(f) && !is_dead_registration(f));
        if after == expected {
            return;
        }
        if Instant::now() > deadline {
            panic!("left behind after the run:\n{}", diff(&expected, &after));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `path` is a `userns --map-auto` lease (`$RUN/userns/lease-UID-GID.json`) that no
/// longer holds anything: its holder's user namespace is gone (not running, not pinned) and no
/// process of its run directory runs as one of its host uids.
pub fn is_dead_userns_lease(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let in_userns_dir = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "userns");
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if !in_userns_dir || !name.starts_with("lease-") || !name.ends_with(".json") {
        return false;
    }
    let Ok(text) = std::fs::read(path) else {
        return true;
    };
    let Ok(record) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return false;
    };
    let userns = record["userns"].as_u64().unwrap_or(0);
    let pid = record["pid"].as_u64().unwrap_or(0);
    let held_by_ns = |p: &str| std::fs::metadata(p).is_ok_and(|m| m.ino() == userns);
    if userns != 0 && held_by_ns(&format!("/proc/{pid}/ns/user")) {
        return false;
    }
    if let Some(pin) = record["pin"].as_str() {
        if userns != 0 && held_by_ns(pin) {
            return false;
        }
    }
    let first = record["uid"].as_u64().unwrap_or(0);
    let count = record["count"].as_u64().unwrap_or(0);
    // Only this test's processes count: every lab leases the first range of its own state
    // directory, so other tests (of any engineer on the machine) run as the same uids.
    let run = path
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    !uid_in_use(first, first + count, run)
}

/// Whether `path` is part of a chain registration (`$RUN/chains/NAME/...`) none of whose
/// namespaces is still held by its process: links exec, so registrations are pruned lazily
/// (by `nsps`, or when the name is reused); such a record is stale, not a leak.
pub fn is_dead_registration(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(dir) = path.parent() else {
        return false;
    };
    if dir.parent().and_then(Path::file_name) != Some(std::ffi::OsStr::new("chains")) {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return true;
    };
    !entries.flatten().any(|e| {
        let Ok(text) = std::fs::read(e.path()) else {
            return false;
        };
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(&text) else {
            return false;
        };
        let (Some(pid), Some(kind), Some(inode)) = (
            record["pid"].as_u64(),
            record["ns"]["type"].as_str(),
            record["ns"]["inode"].as_u64(),
        ) else {
            return false;
        };
        std::fs::metadata(format!("/proc/{pid}/ns/{kind}")).is_ok_and(|m| m.ino() == inode)
    })
}

/// Whether a process started with run directory `run` (its NSCHAIN_RUN_DIR) runs with a real,
/// effective or saved uid in `first..end`.
fn uid_in_use(first: u64, end: u64, run: &Path) -> bool {
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return false;
    };
    let marker = format!("NSCHAIN_RUN_DIR={}", run.display());
    proc.flatten().any(|e| {
        let ours = std::fs::read(e.path().join("environ"))
            .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == marker.as_bytes()));
        if !ours {
            return false;
        }
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|u| u.parse::<u64>().ok())
                    .any(|u| (first..end).contains(&u))
            })
    })
}

fn diff(before: &Snapshot, after: &Snapshot) -> String {
    let mut out = String::new();
    let sets = [
        ("mount", &before.mounts, &after.mounts),
        ("process", &before.processes, &after.processes),
        ("link", &before.links, &after.links),
        ("namespace", &before.namespaces, &after.namespaces),
    ];
    for (what, b, a) in sets {
        for x in a.difference(b) {
            out.push_str(&format!("  new {what}: {x}\n"));
        }
        for x in b.difference(a) {
            out.push_str(&format!("  gone {what}: {x}\n"));
        }
    }
    for x in after.cgroups.difference(&before.cgroups) {
        out.push_str(&format!("  new cgroup: {}\n", x.display()));
    }
    for f in &after.state_files {
        out.push_str(&format!("  new state file: {}\n", f.display()));
    }
    if before.nft != after.nft {
        out.push_str(&format!(
            "  nft ruleset before:\n{}\n  after:\n{}\n",
            before.nft, after.nft
        ));
    }
    out
}

fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        out.insert(path.clone());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&path, out);
        }
    }
}

fn in_netns(ns: &str, argv: &[&str]) -> String {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// `pid command` of every process whose environment holds `entry` (as root, every process's
/// environment is readable).
pub fn processes_with_env(entry: &str) -> BTreeSet<String> {
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    proc.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == entry.as_bytes()))
        })
        .map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd: Vec<String> = cmd
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            format!("{pid} {}", cmd.join(" "))
        })
        .collect()
}

/// Every `nschain-*` cgroup directory, in every mounted hierarchy (v1 and v2), down to a few
/// levels (the caller's own cgroup may be nested, as `/process_api/ID` here).
pub fn all_chain_cgroups() -> BTreeSet<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found = BTreeSet::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if !matches!(right.split(' ').next(), Some("cgroup" | "cgroup2")) {
            continue;
        }
        if let Some(mount) = left.split(' ').nth(4) {
            walk_cgroups(Path::new(mount), 5, &mut found);
        }
    }
    found
}

fn walk_cgroups(dir: &Path, depth: u32, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with("nschain-") {
            out.insert(path.clone());
        }
        if depth > 1 {
            walk_cgroups(&path, depth - 1, out);
        }
    }
}

/// The chain cgroups of the test whose state lives under `state`: those its run directory
/// has a record or a registration of (`RUN/cgroupns/nschain-NAME.json`, `RUN/chains/NAME`),
/// and those holding one of its processes.
pub fn chain_cgroups(state: &Path) -> BTreeSet<PathBuf> {
    let run = state.join("run");
    let marker = format!("NSCHAIN_RUN_DIR={}", run.display());
    all_chain_cgroups()
        .into_iter()
        .filter(|dir| {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let chain = name.trim_start_matches("nschain-");
            run.join("cgroupns").join(format!("{name}.json")).exists()
                || run.join("chains").join(chain).exists()
                || std::fs::read_to_string(dir.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .any(|pid| {
                        std::fs::read(format!("/proc/{}/environ", pid.trim()))
                            .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == marker.as_bytes()))
                    })
        })
        .collect()
}
