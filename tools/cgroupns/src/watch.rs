//! Removing a chain's cgroup once the chain is over, and `cgroupns gc`.
//!
//! Two paths, so that a SIGKILL of any link at any moment never leaves a cgroup behind for
//! good (no v1 `release_agent`: a global, host-root program, CVE-2022-0492's door):
//! - a small watcher, spawned detached before this process moves into the cgroup (so it stays
//!   outside it) and re-executed as `cgroupns gc --watch`: it waits on a pidfd of this
//!   process (which becomes the next link, pidns's monitor, or COMMAND), then kills what is
//!   left in the cgroup, removes it, and warns if the OOM killer struck;
//! - a record per cgroup in `RUN/cgroupns/`, written before the mkdir: every start that makes
//!   a cgroup, and `cgroupns gc`, collect the cgroups whose chain process is gone.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use common::cgroupfs::{human_bytes, Cgroup};
use common::channel::{self, Channel};
use common::cli::Status;
use common::{debug, report, Fatal};
use serde::{Deserialize, Serialize};

/// The watcher's descriptors after its exec.
const WATCH_GO_FD: RawFd = 3;
const WATCH_PIDFD: RawFd = 4;

/// How long the kill and the removal may take.
const PATIENCE: Duration = Duration::from_secs(5);

/// The record of one chain's cgroup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The chain's process, as the host's /proc numbers it.
    pub pid: u32,
    /// Its start time (field 22 of /proc/PID/stat), so that a reused pid is not taken for it.
    pub start: u64,
    /// The cgroup's directories.
    pub cgroup: Cgroup,
    /// `--memory` as given, for the OOM warning.
    #[serde(default)]
    pub memory: Option<String>,
    /// The chain's name, if it has one (a detached chain's status is marked on an OOM kill).
    #[serde(default)]
    pub chain: Option<String>,
}

/// The record directory.
pub fn state_dir() -> PathBuf {
    common::state::run_dir().join("cgroupns")
}

fn record_path(name: &str) -> PathBuf {
    state_dir().join(format!("{name}.json"))
}

impl Record {
    fn alive(&self) -> bool {
        common::procfs::running(self.pid, Some(self.start))
    }

    /// Writes the record of cgroup `name` (before its mkdir).
    pub fn write(&self, name: &str) -> Result<(), Fatal> {
        let dir = state_dir();
        common::state::ensure_dir(&dir, 0o755)?;
        // Whole or not at all: a SIGKILL halfway must not leave a record gc cannot read.
        common::state::write_whole(&record_path(name), &serde_json::to_vec(self)?)
            .with_context(|| format!("unable to write {}", record_path(name).display()))?;
        Ok(())
    }

    fn read(name: &str) -> Option<Record> {
        serde_json::from_slice(&std::fs::read(record_path(name)).ok()?).ok()
    }

    /// Kills what is left, removes the cgroup, then the record.
    fn collect(&self, name: &str) -> anyhow::Result<()> {
        debug::step(format_args!("collect cgroup {name}"), || {
            self.cgroup.kill(PATIENCE)?;
            self.cgroup.remove(PATIENCE)
        })?;
        let _ = std::fs::remove_file(record_path(name));
        Ok(())
    }
}

/// Forgets the record of a cgroup that was undone.
pub fn forget(name: &str) {
    let _ = std::fs::remove_file(record_path(name));
}

/// Collects the cgroups of every dead chain (quietly skips what it cannot).
pub fn collect_dead() -> usize {
    let Ok(entries) = std::fs::read_dir(state_dir()) else {
        return 0;
    };
    let mut collected = 0;
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(".json") else {
            // Killed before its rename: no cgroup was made for it yet.
            if common::state::is_abandoned_temporary(&entry.path()) {
                let _ = std::fs::remove_file(entry.path());
            }
            continue;
        };
        let Some(record) = Record::read(name) else {
            continue;
        };
        if record.alive() {
            continue;
        }
        match record.collect(name) {
            Ok(()) => collected += 1,
            Err(e) => report::warning(format_args!("unable to collect the cgroup {name}: {e:#}")),
        }
    }
    collected
}

/// `cgroupns gc`.
#[derive(clap::Args, Debug)]
pub struct GcArgs {
    /// Internal: the cleanup watcher of one chain
    #[arg(long, hide = true)]
    pub watch: bool,
}

/// Runs `cgroupns gc`.
pub fn gc_main(args: &GcArgs) -> Result<Status, Fatal> {
    if args.watch {
        return watch().map(|()| 0);
    }
    collect_dead();
    Ok(0)
}

/// The parent's end of a watcher: tells it which cgroup to watch, or (dropped unsent) that
/// the setup failed. Under the chain's supervisor (common::sup) no watcher is spawned: the
/// supervisor, outside the cgroup, is told instead and removes it once the container ended.
#[derive(Debug)]
pub struct Watcher {
    channel: Channel,
    supervisor: bool,
}

/// What the watcher is told: the cgroup (its record's name) to remove.
#[derive(Debug, Serialize, Deserialize)]
struct Go {
    name: String,
}

impl Watcher {
    /// Spawns the watcher (detached; it keeps stderr for its OOM warning).
    pub fn spawn() -> Result<Watcher, Fatal> {
        debug::step("spawn cleanup watcher", spawn_watcher)
            .map_err(|e| Fatal::from(e.context("unable to start the cleanup watcher")))
    }

    /// The chain's supervisor's socket (a copy of the hand-down's), when it is this
    /// process's parent.
    pub fn supervisor(cx: &mut common::Context) -> Option<Watcher> {
        common::sup::supervisor_parent()?;
        let handdown = cx.handdown();
        let channel = common::after::take(handdown.after.take())?;
        if let Ok(copy) = channel.as_fd().try_clone_to_owned() {
            handdown.after = common::handdown::Slot::Made(copy);
        }
        Some(Watcher {
            channel,
            supervisor: true,
        })
    }

    /// Hands the cgroup over: the watcher (or the supervisor) removes it when this process
    /// (or the container) is gone. `limit`: `--memory` as the OOM warning shows it.
    pub fn go(self, name: &str, limit: Option<&str>) -> Result<(), Fatal> {
        if self.supervisor {
            common::after::request_cgroup_removal(&self.channel, name, limit)
                .context("unable to hand the cgroup to the chain's supervisor")?;
            return Ok(());
        }
        self.channel
            .send(&Go {
                name: name.to_owned(),
            })
            .context("unable to hand the cgroup to the cleanup watcher")?;
        Ok(())
    }
}

fn spawn_watcher() -> anyhow::Result<Watcher> {
    // Under the chain's supervisor (common::sup) this process exits once pidns hands the
    // container over: the supervisor, outside the cgroup, is the one that lasts as long.
    let watched =
        common::sup::supervisor_parent().map_or(std::process::id() as libc::pid_t, |p| p.as_raw());
    let pidfd = common::sys::process::pidfd_open(watched).context("unable to open a pidfd")?;
    let (ours, theirs) =
        channel::pair().context("unable to create the cleanup watcher's channel")?;
    let argv = [
        CString::new("cgroupns")?,
        CString::new("gc")?,
        CString::new("--watch")?,
    ];
    let fds = [
        (theirs.as_fd().as_raw_fd(), WATCH_GO_FD),
        (pidfd.as_raw_fd(), WATCH_PIDFD),
    ];
    common::detached::spawn(c"/proc/self/exe", &argv, &fds, true)
        .context("unable to spawn cgroupns gc --watch")?;
    Ok(Watcher {
        channel: ours,
        supervisor: false,
    })
}

/// `cgroupns gc --watch`: the watcher's life.
fn watch() -> Result<(), Fatal> {
    let _ = nix::sys::prctl::set_name(c"cgroupns-watch");
    // Hold no directory of the caller's: nothing it unmounts may stay busy for us.
    let _ = std::env::set_current_dir("/");
    // SAFETY: the spawner placed the channel at this number for us alone.
    let go = Channel::adopt(unsafe { OwnedFd::from_raw_fd(WATCH_GO_FD) });
    // SAFETY: likewise for the pidfd of the chain's process.
    let pidfd = unsafe { OwnedFd::from_raw_fd(WATCH_PIDFD) };
    let told = go.ok().and_then(|go| go.recv::<Go>().ok().flatten());
    common::sys::process::pidfd_wait_exited(pidfd.as_fd());
    drop(pidfd);
    let name = told.map(|go| go.name).unwrap_or_default();
    let name = name.as_str();
    let Some(record) = (!name.is_empty()).then(|| Record::read(name)).flatten() else {
        // The setup failed (it undid its own cgroup) or was killed: collect what is dead.
        collect_dead();
        return Ok(());
    };
    let oom = record.cgroup.usage().oom_kills.unwrap_or(0);
    if oom > 0 {
        // First, so that a detached chain's status says OOM-killed as soon as can be.
        if let Some(chain) = &record.chain {
            common::supervisor::record_oom_kill(chain);
        }
    }
    warn_oom(&record, oom);
    // The chain is over: its stderr (a pipe, maybe) must not wait for the cleanup. What the
    // cleanup cannot do is left to the next start or `cgroupns gc`.
    release_stderr();
    record.collect(name)?;
    Ok(())
}

/// Points stderr at /dev/null, closing the chain's.
fn release_stderr() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto stderr, a descriptor this process owns; `null` is closed after.
        unsafe { libc::dup2(null.as_raw_fd(), libc::STDERR_FILENO) };
    }
}

/// The one-line warning of an OOM kill, naming the limit.
fn warn_oom(record: &Record, oom: u64) {
    if oom > 0 {
        let limit = record.memory.as_deref().unwrap_or("its limit");
        let limit_bytes = crate::limits::Size::parse(limit)
            .map(|s| format!(" ({})", human_bytes(s.0)))
            .unwrap_or_default();
        report::warning(format_args!(
            "the container ran out of memory: the OOM killer killed {oom} process{} at --memory {limit}{limit_bytes}",
            if oom == 1 { "" } else { "es" }
        ));
    }
}
