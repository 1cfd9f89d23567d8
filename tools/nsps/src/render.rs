//! `nsps` output: a table for people, JSON for scripts.

use std::io::Write;

use anyhow::Context;
use common::Fatal;

use crate::inspect::Container;

/// The list of running chains.
pub fn list(containers: &[Container], json: bool) -> Result<(), Fatal> {
    let mut out = std::io::stdout().lock();
    if json {
        let value = serde_json::to_string_pretty(containers)?;
        writeln!(out, "{value}").context("unable to write")?;
        return Ok(());
    }
    let rows: Vec<[String; 10]> = containers
        .iter()
        .map(|c| {
            [
                c.name.clone(),
                // A stopped chain (nsps --all) has no process and no uptime.
                if c.pid == 0 {
                    "-".into()
                } else {
                    c.pid.to_string()
                },
                dash(&shorten(&c.command, 32)),
                if c.pid == 0 {
                    "-".into()
                } else {
                    uptime(c.uptime_seconds)
                },
                c.hostname.clone().unwrap_or_else(|| "-".into()),
                dash(&c.addresses.join(",")),
                dash(&c.ports.join(",")),
                c.namespaces.join(","),
                c.layer.clone().unwrap_or_else(|| "-".into()),
                // Last: `exited 3` has a space, and scripts split the earlier columns.
                c.status.clone(),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "PID",
        "COMMAND",
        "UPTIME",
        "HOSTNAME",
        "ADDRESS",
        "PORTS",
        "NAMESPACES",
        "LAYER",
        "STATUS",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(header.to_vec())).context("unable to write")?;
    for row in &rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))
            .context("unable to write")?;
    }
    Ok(())
}

/// One chain in full.
pub fn one(c: &Container, json: bool) -> Result<(), Fatal> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(c)?).context("unable to write")?;
        return Ok(());
    }
    let mut text = format!(
        "name:        {}\nstatus:      {}\npid 1:       {} (host pid)\ncommand:     {}\nuptime:      {}\nhostname:    {}\naddresses:   {}\nports:       {}\nlayer:       {}\nnamespaces:  {}\n",
        c.name,
        c.status,
        c.pid,
        c.command,
        uptime(c.uptime_seconds),
        c.hostname.as_deref().unwrap_or("-"),
        dash(&c.addresses.join(", ")),
        dash(&c.ports.join(", ")),
        c.layer.as_deref().unwrap_or("-"),
        c.namespaces.join(" "),
    );
    for r in &c.records {
        text.push_str(&format!(
            "  {:<6} inode {}  held by host pid {}  ({} by {}){}\n",
            r.ns.kind,
            r.ns.inode,
            r.pid,
            if r.created { "made" } else { "joined" },
            r.tool,
            clocks(r)
        ));
    }
    if let Some(cgroup) = &c.cgroup {
        text.push_str(&limits(cgroup));
    }
    if !c.processes.is_empty() {
        text.push_str("processes (host pid -> container pid):\n");
        for p in &c.processes {
            text.push_str(&format!(
                "  {:>8} -> {:<6} {}\n",
                p.host_pid, p.container_pid, p.command
            ));
        }
    }
    out.write_all(text.as_bytes()).context("unable to write")?;
    Ok(())
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_owned()
    }
}

/// The clock offsets of a time namespace record (timens's `offsets`), as `  clocks: ...`.
fn clocks(record: &common::info::Record) -> String {
    let Some(offsets) = record
        .extra
        .get("offsets")
        .filter(|_| record.ns.kind == "time")
    else {
        return String::new();
    };
    let shown: Vec<String> = ["boottime", "monotonic"]
        .iter()
        .filter_map(|clock| Some(format!("{clock} {} s", offsets.get(*clock)?.as_str()?)))
        .collect();
    format!("  clocks: {}", shown.join(", "))
}

/// The chain's cgroup as `docker stats` shows it once: usage / limit, and the OOM kills.
fn limits(cgroup: &crate::inspect::CgroupState) -> String {
    use common::cgroupfs::human_bytes;
    let u = &cgroup.usage;
    let of = |used: Option<String>, limit: Option<String>| {
        format!(
            "{} / {}",
            used.unwrap_or_else(|| "-".into()),
            limit.unwrap_or_else(|| "no limit".into())
        )
    };
    let mut text = format!(
        "cgroup:      memory {}, pids {}, OOM kills {}",
        of(
            u.memory_bytes.map(human_bytes),
            u.memory_limit.map(human_bytes)
        ),
        of(
            u.pids.map(|p| p.to_string()),
            u.pids_limit.map(|p| p.to_string())
        ),
        u.oom_kills.map_or_else(|| "-".into(), |n| n.to_string()),
    );
    if let Some(cpus) = cgroup.limits.get("cpus").and_then(|v| v.as_f64()) {
        text.push_str(&format!(", cpus {cpus}"));
    }
    if let Some(usec) = u.cpu_usec {
        text.push_str(&format!(", cpu time {:.2} s", usec as f64 / 1e6));
    }
    text.push('\n');
    text
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

fn uptime(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}
