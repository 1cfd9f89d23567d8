//! What a chain is, read from its registrations and checked against /proc.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::Context;
use common::cgroupfs::{Cgroup, Usage, Version};
use common::info::Record;
use common::{chain, state, supervisor, Fatal};
use serde::Serialize;
use serde_json::Value;

/// One running chain.
#[derive(Debug, Serialize)]
pub struct Container {
    pub name: String,
    /// Host pid of the container's PID 1 (of the chain's first process without a pid ns).
    pub pid: u32,
    pub command: String,
    pub uptime_seconds: u64,
    pub hostname: Option<String>,
    pub addresses: Vec<String>,
    pub ports: Vec<String>,
    pub layer: Option<String>,
    /// The namespaces the chain made for itself.
    pub namespaces: Vec<String>,
    pub records: Vec<Record>,
    /// host pid ↔ container pid, for every process of the chain.
    pub processes: Vec<Process>,
    /// The chain's cgroup (cgroupns with limits): its limits and what it uses now.
    pub cgroup: Option<CgroupState>,
    /// `running`, `exited N`, `killed by SIGNAL`, `OOM-killed` (see [`status_text`]).
    pub status: String,
}

#[derive(Debug, Serialize)]
pub struct CgroupState {
    /// The limits as cgroupns recorded them (bytes, counts, CPUs).
    pub limits: Value,
    /// Memory, processes, OOM kills and CPU time now.
    pub usage: Usage,
    /// Its directories, one per hierarchy.
    pub dirs: Vec<String>,
}

/// The cgroup a chain's cgroupns made, read now.
pub fn cgroup_state(records: &[Record]) -> Option<CgroupState> {
    let info = records
        .iter()
        .find(|r| r.ns.kind == "cgroup" && r.created)?
        .extra
        .get("cgroup")?;
    let dirs: Vec<(Version, PathBuf)> = serde_json::from_value(info.get("dirs")?.clone()).ok()?;
    let cgroup = Cgroup { dirs };
    Some(CgroupState {
        limits: info.get("limits").cloned().unwrap_or(Value::Null),
        usage: cgroup.usage(),
        dirs: cgroup
            .dirs
            .iter()
            .map(|(_, d)| d.display().to_string())
            .collect(),
    })
}

#[derive(Debug, Serialize)]
pub struct Process {
    pub host_pid: u32,
    pub container_pid: u32,
    pub command: String,
}

/// Every running chain; registrations of chains that are gone are pruned.
pub fn running() -> Vec<Container> {
    chain::names()
        .into_iter()
        .filter(|name| !chain::prune_if_stale(name))
        .filter_map(|name| container(&name).ok())
        .collect()
}

/// One running chain, in full.
pub fn container(name: &str) -> Result<Container, Fatal> {
    let checked = chain::checked_records(name);
    // A record nsps cannot check against the kernel is neither shown nor dropped in silence.
    for (record, why) in &checked.unverified {
        common::report::warning(format_args!(
            "chain {name}: the {} namespace recorded for pid {} cannot be verified ({why}): not shown",
            record.ns.kind, record.pid
        ));
    }
    let records = checked.live;
    if records.is_empty() {
        chain::prune_if_stale(name);
        return Err(Fatal::new(format!("no chain named {name} is running"))
            .with_hint("nsps lists the running chains"));
    }
    let find = |kind: &str| records.iter().find(|r| r.ns.kind == kind);
    let pid_record = find("pid");
    let pid = pid_record
        .or_else(|| records.iter().min_by_key(|r| r.pid))
        .map(|r| r.pid)
        .unwrap_or_default();
    let processes = match pid_record {
        Some(record) => members(record.ns.inode),
        None => Vec::new(),
    };
    let payload = pid_record
        .and_then(|r| payload_in(&processes, r.pid))
        .unwrap_or(pid);
    let created = chain::meta(name).map(|m| m.created).unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let text = |record: Option<&Record>, key: &str| {
        record
            .and_then(|r| r.extra.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let net = find("net");
    let mut namespaces: Vec<String> = records
        .iter()
        .filter(|r| r.created)
        .map(|r| r.ns.kind.clone())
        .collect();
    namespaces.sort();
    Ok(Container {
        name: name.to_owned(),
        pid,
        command: cmdline(payload),
        uptime_seconds: now.saturating_sub(created),
        hostname: text(find("uts"), "hostname"),
        addresses: strings(net, &["address", "addresses", "ip"]),
        ports: strings(net, &["ports", "publish", "published"]),
        layer: text(find("mnt"), "layer"),
        namespaces,
        processes,
        cgroup: cgroup_state(&records),
        records,
        status: status_text(name, true),
    })
}

/// A chain's status as `nsps` shows it. A detached chain's supervisor records it (and the
/// OOM kill, once learnt, in the same `status.json`); a foreground chain that has ended left
/// its status with its caller.
pub fn status_text(name: &str, running: bool) -> String {
    match (supervisor::read_status(name), running) {
        (Some(status), _) if status.oom_killed || !running => status.text(),
        (_, true) => "running".into(),
        (None, false) => "exited".into(),
        (Some(status), false) => status.text(),
    }
}

/// The stopped chains that kept something: a log (detached chains) or an overlay layer.
pub fn stopped() -> Vec<Container> {
    let mut names: Vec<String> = chain::names()
        .into_iter()
        .filter(|n| chain::has_ended(n) && chain::is_kept(n))
        .collect();
    for layer in layer_dirs() {
        let Ok(entries) = fs::read_dir(layer) else {
            continue;
        };
        names.extend(
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| chain::validate_name(n).is_ok() && chain::has_ended(n)),
        );
    }
    names.sort();
    names.dedup();
    names.into_iter().map(|name| stopped_one(&name)).collect()
}

/// One chain, running or stopped but kept (`nsps NAME`).
pub fn running_or_kept(name: &str) -> Result<Container, Fatal> {
    match container(name) {
        Err(_) if chain::is_kept(name) && chain::has_ended(name) => Ok(stopped_one(name)),
        found => found,
    }
}

fn stopped_one(name: &str) -> Container {
    let layer = layer_dirs()
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|l| l.is_dir())
        .map(|l| l.display().to_string());
    let status = status_text(name, false);
    Container {
        name: name.to_owned(),
        pid: 0,
        command: String::new(),
        uptime_seconds: 0,
        hostname: None,
        addresses: Vec::new(),
        ports: Vec::new(),
        layer,
        namespaces: Vec::new(),
        records: Vec::new(),
        processes: Vec::new(),
        cgroup: None,
        status,
    }
}

/// Where overlay layers are kept: the data directory's and every range's.
fn layer_dirs() -> Vec<PathBuf> {
    let data = state::data_dir();
    let mut dirs = vec![data.join("overlay")];
    if let Ok(entries) = fs::read_dir(&data) {
        dirs.extend(
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("userns-"))
                .map(|e| e.path().join("overlay")),
        );
    }
    dirs
}

/// String values of the first key present, a string or a list.
fn strings(record: Option<&Record>, keys: &[&str]) -> Vec<String> {
    let Some(record) = record else {
        return Vec::new();
    };
    let Some(value) = keys.iter().find_map(|k| record.extra.get(*k)) else {
        return Vec::new();
    };
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        other => vec![other.to_string()],
    }
}

/// The host pid of the command the user started in the pid namespace with this inode: PID 2
/// under our init, else PID 1.
pub fn payload_pid(pid_ns_inode: u64) -> Option<u32> {
    let processes = members(pid_ns_inode);
    let init = processes.iter().find(|p| p.container_pid == 1)?;
    payload_in(&processes, init.host_pid)
}

fn payload_in(processes: &[Process], init_host_pid: u32) -> Option<u32> {
    let ours = std::fs::read_to_string(format!("/proc/{init_host_pid}/comm"))
        .is_ok_and(|c| c.trim() == "pidns");
    if !ours {
        return Some(init_host_pid);
    }
    processes
        .iter()
        .find(|p| p.container_pid == 2)
        .map(|p| p.host_pid)
}

/// Every process in the pid namespace with this inode, with its innermost pid (from NSpid).
fn members(pid_ns_inode: u64) -> Vec<Process> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut processes: Vec<Process> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/pid")).is_ok_and(|m| m.ino() == pid_ns_inode)
        })
        .filter_map(|pid| {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let inner = status
                .lines()
                .find_map(|l| l.strip_prefix("NSpid:"))?
                .split_whitespace()
                .last()?
                .parse()
                .ok()?;
            Some(Process {
                host_pid: pid,
                container_pid: inner,
                command: cmdline(pid),
            })
        })
        .collect();
    processes.sort_by_key(|p| p.container_pid);
    processes
}

/// A process's command line, arguments joined by spaces.
fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(String::from_utf8_lossy)
                .collect::<Vec<_>>()
                .join(" ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// `nsps rm NAME`: deletes a stopped chain's kept overlay layer and its registration.
pub fn remove(name: &str) -> Result<(), Fatal> {
    if let Some(pid) = chain::live_pid(name) {
        return Err(
            Fatal::new(format!("chain {name} is still running (pid {pid})"))
                .with_hint("stop it first; nsps rm only deletes what a stopped chain kept"),
        );
    }
    // Its namespaces are gone but its first process is not (yet): a supervisor reading the
    // log's last lines (a few seconds at most), or a chain still starting. Waited for briefly.
    let ending = std::time::Duration::from_secs(10);
    if !crate::lifecycle::wait_until_ended(name, Some(std::time::Instant::now() + ending)) {
        return Err(Fatal::new(format!("chain {name} has not ended yet"))
            .with_hint("nsps wait NAME returns once it has; nsps rm -f ends it first"));
    }
    // A chain under `userns --map-auto` keeps its layer in its range's data directory.
    let mut layers: Vec<PathBuf> = layer_dirs().into_iter().map(|d| d.join(name)).collect();
    layers.retain(|l| l.exists());
    let registered = chain::dir(name).is_dir();
    if layers.is_empty() && !registered {
        return Err(Fatal::new(format!(
            "no stopped chain named {name} has a kept layer or log"
        )));
    }
    for layer in layers {
        fs::remove_dir_all(&layer)
            .with_context(|| format!("unable to delete {}", layer.display()))?;
    }
    if registered {
        chain::remove_if_stale(name);
    }
    Ok(())
}
