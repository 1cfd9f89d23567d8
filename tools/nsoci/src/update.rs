//! `nsoci update`: new resources for a live (created, running or paused) container, from a
//! `linux.resources` JSON (`--resources FILE`, `-` for stdin) and/or runc's flags; only the
//! fields given are written.

use std::io::Read;
use std::path::{Path, PathBuf};

use common::cgroupfs::Layout;
use common::Fatal;

use crate::resources::{BlockIo, Cpu, Memory, Pids, Resources};
use crate::state::{Container, Status};

/// runc's `update` flags.
#[derive(clap::Args, Debug, Default)]
pub struct UpdateArgs {
    /// linux.resources as JSON, from FILE or `-` (stdin)
    #[arg(short, long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Memory limit (bytes or 64m, 1g; -1: none)
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = parse_memory)]
    pub memory: Option<i64>,
    /// Memory soft limit
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = parse_memory)]
    pub memory_reservation: Option<i64>,
    /// Memory plus swap limit (-1: unlimited swap)
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = parse_memory)]
    pub memory_swap: Option<i64>,
    /// Kernel memory limit (v1)
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = parse_memory)]
    pub kernel_memory: Option<i64>,
    /// Most processes at once (0 or -1: no limit)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// CFS quota in microseconds per period (-1: none)
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds
    #[arg(long, value_name = "US")]
    pub cpu_period: Option<u64>,
    /// CPU shares (relative weight)
    #[arg(long, value_name = "N")]
    pub cpu_share: Option<u64>,
    /// Realtime period in microseconds (v1)
    #[arg(long, value_name = "US")]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds (v1)
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs it may run on (0-1,3)
    #[arg(long, value_name = "CPUS")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes it may use
    #[arg(long, value_name = "MEMS")]
    pub cpuset_mems: Option<String>,
    /// Block IO weight, 10 to 1000
    #[arg(long, value_name = "N")]
    pub blkio_weight: Option<u16>,
    /// The container's id
    pub id: String,
}

/// runc's sizes: bytes or a number with a unit (units.RAMInBytes), or -1.
fn parse_memory(text: &str) -> Result<i64, String> {
    if text == "-1" {
        return Ok(-1);
    }
    let size = cgroupns::Size::parse(text)?;
    i64::try_from(size.0).map_err(|_| format!("{text:?} is too large"))
}

pub fn update(root: &Path, args: &UpdateArgs) -> Result<(), Fatal> {
    let c = Container::load(root, &args.id)?;
    if c.status() == Status::Stopped {
        return Err(Fatal::new(format!(
            "container {} is not running: stopped",
            args.id
        )));
    }
    let res = merged(args)?;
    res.check()?;
    let placed = c.record.cgroup.as_ref().ok_or_else(|| {
        Fatal::new(format!(
            "container {} has no cgroup (an unprivileged container on a cgroup v1 host)",
            args.id
        ))
    })?;
    let layout = Layout::detect()?;
    crate::cgroup::apply(&layout, placed, &res)
}

/// The JSON given, then the flags over it.
fn merged(a: &UpdateArgs) -> Result<Resources, Fatal> {
    let mut res = match &a.resources {
        Some(file) => read_json(file)?,
        None => Resources::default(),
    };
    let memory = [
        a.memory,
        a.memory_reservation,
        a.memory_swap,
        a.kernel_memory,
    ];
    if memory.iter().any(Option::is_some) {
        let m = res.memory.get_or_insert_with(Memory::default);
        m.limit = a.memory.or(m.limit);
        m.reservation = a.memory_reservation.or(m.reservation);
        m.swap = a.memory_swap.or(m.swap);
        m.kernel = a.kernel_memory.or(m.kernel);
    }
    if let Some(limit) = a.pids_limit {
        res.pids = Some(Pids { limit });
    }
    let cpu_given = a.cpu_quota.is_some()
        || a.cpu_period.is_some()
        || a.cpu_share.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some();
    if cpu_given {
        let c = res.cpu.get_or_insert_with(Cpu::default);
        c.quota = a.cpu_quota.or(c.quota);
        c.period = a.cpu_period.or(c.period);
        c.shares = a.cpu_share.or(c.shares);
        c.realtime_period = a.cpu_rt_period.or(c.realtime_period);
        c.realtime_runtime = a.cpu_rt_runtime.or(c.realtime_runtime);
        c.cpus = a.cpuset_cpus.clone().or(c.cpus.take());
        c.mems = a.cpuset_mems.clone().or(c.mems.take());
    }
    if let Some(w) = a.blkio_weight {
        res.block_io.get_or_insert_with(BlockIo::default).weight = Some(w);
    }
    if res.is_empty() {
        return Err(Fatal::new(
            "nothing to update: give --resources FILE or a flag such as --memory",
        ));
    }
    Ok(res)
}

fn read_json(file: &Path) -> Result<Resources, Fatal> {
    let mut text = Vec::new();
    let read = if file == Path::new("-") {
        std::io::stdin().read_to_end(&mut text).map(|_| ())
    } else {
        std::fs::read(file).map(|t| text = t)
    };
    read.map_err(|e| {
        Fatal::from(anyhow::Error::from(e)).context(format!("unable to read {}", file.display()))
    })?;
    serde_json::from_slice(&text).map_err(|e| {
        Fatal::new(format!(
            "--resources {}: not a linux.resources JSON object: {e}",
            file.display()
        ))
    })
}
