//! `start`, `state`, `kill`, `delete`, `list`: the container's directory and its init.

use std::path::Path;
use std::time::{Duration, Instant};

use common::Fatal;

use crate::hooks;
use crate::signal;
use crate::state::{self, Container, Status};

/// Opens the start gate: the init, blocked opening exec.fifo for writing, goes on to exec.
pub fn start(root: &Path, id: &str) -> Result<(), Fatal> {
    let c = Container::load(root, id)?;
    match c.status() {
        Status::Created => {}
        Status::Stopped => return Err(Fatal::new("cannot start a container that has stopped")),
        Status::Running | Status::Paused => {
            return Err(Fatal::new("cannot start an already running container"))
        }
        Status::Creating => {
            return Err(Fatal::new(
                "cannot start a container that is still being created",
            ))
        }
    }
    // The spec: in the container, after `start`, before the user's process; a failure stops
    // the container (runc's: start fails, the container is then deleted by the caller).
    if let Err(e) = crate::inside::run(
        "startContainer",
        &c.record.hooks.start_container,
        c.record.pid,
        crate::join::Mnt::Process,
        &c.state_json(),
    ) {
        // SAFETY: kill(2) on the recorded pid, checked against its start time by status().
        unsafe { libc::kill(c.record.pid, libc::SIGKILL) };
        return Err(e);
    }
    let alive = || state::alive(c.record.pid, c.record.start_time);
    let passed = crate::gate::wait_for_writer(&c.fifo(), || !alive())
        .map_err(|e| Fatal::from(e).context("unable to open exec.fifo"))?;
    if !passed {
        let _ = std::fs::remove_file(c.fifo());
        return Err(Fatal::new("cannot start a container that has stopped"));
    }
    std::fs::remove_file(c.fifo())
        .map_err(|e| Fatal::from(anyhow::Error::from(e)).context("unable to remove exec.fifo"))?;
    // The spec: a failing poststart hook is a warning; the container runs on.
    if let Err(e) = hooks::run("poststart", &c.record.hooks.poststart, &c.state_json()) {
        common::report::warning(e.message());
    }
    Ok(())
}

/// Prints the State JSON.
pub fn state(root: &Path, id: &str) -> Result<(), Fatal> {
    let c = Container::load(root, id)?;
    println!("{}", pretty(&c.state_json()));
    Ok(())
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Sends a signal to the init (created or running only, as the spec says).
pub fn kill(root: &Path, id: &str, sig: &str, all: bool) -> Result<(), Fatal> {
    let c = Container::load(root, id)?;
    let signo = signal::parse(sig)?;
    match c.status() {
        Status::Created | Status::Running | Status::Paused => {}
        _ => return Err(Fatal::new("container not running")),
    }
    // The pid is the container's PID 1 itself (runc's model): it ignores what it has no
    // handler for, SIGKILL aside, which ends the whole pid namespace.
    if all {
        if c.record.cgroup.is_some() {
            return crate::cgroup::signal_all(&c, signo);
        }
        // No cgroup of its own: every process of its pid namespace, PID 1 last.
        for pid in crate::pid1::others_in_pid_namespace(c.record.pid) {
            // SAFETY: kill(2) of a process seen in the container's pid namespace just now.
            unsafe { libc::kill(pid, signo) };
        }
    }
    // SAFETY: kill(2) on the recorded pid, checked against its start time just above.
    let rc = unsafe { libc::kill(c.record.pid, signo) };
    nix::errno::Errno::result(rc)
        .map_err(|e| Fatal::from(e).context(format!("unable to signal container {id}")))?;
    Ok(())
}

/// Deletes a stopped container (`--force`: kills it first); unknown ids are an error unless
/// forced, as with runc.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<(), Fatal> {
    let c = match Container::load(root, id) {
        Ok(c) => c,
        Err(_) if force => {
            state::check_id(id)?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let status = c.status();
    if status != Status::Stopped {
        if !force {
            return Err(Fatal::new(format!(
                "cannot delete container {id} that is not stopped: {}",
                status.as_str()
            )));
        }
        if let Some(placed) = &c.record.cgroup {
            // Thawed first: a frozen init cannot die.
            crate::cgroup::kill_all(placed);
        }
        // SAFETY: kill(2) on the recorded pid, checked against its start time by status().
        unsafe { libc::kill(c.record.pid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while state::alive(c.record.pid, c.record.start_time) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if let Err(e) = hooks::run("poststop", &c.record.hooks.poststop, &c.state_json()) {
        common::report::warning(e.message());
    }
    if let Some(placed) = &c.record.cgroup {
        // What the init left behind goes with it, then the cgroup nsoci made.
        crate::cgroup::kill_all(placed);
        crate::cgroup::remove(placed);
    }
    if let Some(name) = &c.record.chain {
        // The init has ended (a zombie's records do not count): nsps no longer lists it.
        common::chain::unregister(name, &[c.record.pid as u32]);
    }
    std::fs::remove_dir_all(&c.dir).map_err(|e| {
        Fatal::from(anyhow::Error::from(e)).context(format!("unable to remove {}", c.dir.display()))
    })
}

/// `list`: a table (runc's columns), ids only, or JSON.
pub fn list(root: &Path, format: &str, quiet: bool) -> Result<(), Fatal> {
    let mut all = Vec::new();
    // No state root yet is an empty list (runc's too); one that cannot be read is an error.
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => Some(entries),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(
                Fatal::from(anyhow::Error::from(e)).context(format!("open {}", root.display()))
            )
        }
    };
    if let Some(entries) = entries {
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if let Ok(c) = Container::load(root, &id) {
                all.push(c);
            }
        }
    }
    all.sort_by(|a, b| a.record.id.cmp(&b.record.id));
    if quiet {
        for c in &all {
            println!("{}", c.record.id);
        }
        return Ok(());
    }
    match format {
        "json" => {
            let states: Vec<_> = all.iter().map(Container::state_json).collect();
            println!("{}", serde_json::Value::from(states));
        }
        "table" => {
            println!(
                "{:<12} {:<8} {:<10} {:<40} {:<32} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for c in &all {
                let s = c.state_json();
                println!(
                    "{:<12} {:<8} {:<10} {:<40} {:<32} {}",
                    c.record.id,
                    s["pid"].as_i64().unwrap_or(0),
                    c.status().as_str(),
                    c.record.bundle.display(),
                    c.record.created,
                    nix::unistd::geteuid()
                );
            }
        }
        other => {
            return Err(Fatal::new(format!(
                "invalid --format '{other}': table or json"
            )))
        }
    }
    Ok(())
}
