//! `nsoci ps [--format table|json] ID [PS_ARGS...]`: the container's processes, the pids of
//! its cgroup as the host sees them (runc's). `json` prints the pids; `table` runs the
//! host's `ps` (default `-ef`) and keeps its header and the container's lines.

use std::path::Path;
use std::process::Command;

use common::Fatal;

use crate::state::{Container, Status};

/// The container's pids, ascending.
pub fn pids(c: &Container) -> Result<Vec<u32>, Fatal> {
    if c.status() == Status::Stopped {
        return Err(Fatal::new(format!(
            "container {} is not running",
            c.record.id
        )));
    }
    match &c.record.cgroup {
        Some(placed) => Ok(placed.cgroup.procs()),
        // No cgroup (rootless on v1): the init alone is known for sure.
        None => Ok(vec![c.record.pid as u32]),
    }
}

pub fn ps(root: &Path, id: &str, format: &str, ps_args: &[String]) -> Result<(), Fatal> {
    let c = Container::load(root, id)?;
    let pids = pids(&c)?;
    match format {
        "json" => {
            println!("{}", serde_json::Value::from(pids));
            Ok(())
        }
        "table" => table(&pids, ps_args),
        other => Err(Fatal::new(format!(
            "invalid format option '{other}': table or json"
        ))),
    }
}

fn table(pids: &[u32], ps_args: &[String]) -> Result<(), Fatal> {
    let args: Vec<&str> = if ps_args.is_empty() {
        vec!["-ef"]
    } else {
        ps_args.iter().map(String::as_str).collect()
    };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Fatal::from(anyhow::Error::from(e)).context("unable to run ps"))?;
    if !out.status.success() {
        return Err(Fatal::new(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let column = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Fatal::new("couldn't find PID field in ps output"))?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(column)
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}
