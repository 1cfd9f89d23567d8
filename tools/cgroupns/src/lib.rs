//! `cgroupns`: run a command in a cgroup of its own with resource limits (memory, processes,
//! CPU), and in a new cgroup namespace whose root is that cgroup.
//!
//! ```text
//! check     limits parsed (clap) and consistent, the hierarchies detected, the order kept
//! collect   cgroups of dead chains (their records in RUN/cgroupns)
//! watch     the cleanup watcher, spawned before the move so that it stays outside
//! make      <parent>/nschain-<name> in each hierarchy, limits, this process moved in
//! unshare   CLONE_NEWCGROUP: the cgroup just entered becomes the namespace's root
//! finish    register (limits, directories), --info-fd, hand off
//! ```
//! Without limits (and without `--cgroup-parent`) only the namespace is made, as `unshare -C`.

mod limits;
mod place;
mod watch;

use std::path::PathBuf;

use clap::Parser;
use common::cgroupfs::{Kind, Layout};
use common::cli::CommandArgs;
use common::link::{Link, NsOptions};
use common::ns::Namespace;
use common::{debug, Context, Fatal, Next};
use serde_json::{json, Map};

pub use limits::{
    cpus_of, parse_cpus, parse_cpuset, parse_pids, parse_weight, Limits, Setting, Size, Swap,
};
pub use place::{enable_controllers, parent_dir, write_limits};

/// Run COMMAND in a cgroup of its own, with docker's resource limits, and in a new cgroup
/// namespace (so the container sees its cgroup as the root). Without limits, only the
/// namespace is made, as `unshare -C`. Limits need host root: in a rootful chain put
/// cgroupns with limits before userns (and before pidns, so that its monitor and init count).
#[derive(Parser, Debug)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    subcommand_value_name = "SUBCOMMAND",
    subcommand_help_heading = "Subcommands",
    disable_help_subcommand = true,
    after_help = "Examples:
  cgroupns --memory 64m -- python3 -c 'bytearray(200 << 20)'     (killed: exit 137 and a warning)
  cgroupns --pids-limit 64 --cpus 0.5 -- make -j8
  cgroupns --memory 128m --pids-limit 64 -- userns --map-auto -- pidns -- mntns --overlay / -- sh
  cgroupns -- cat /proc/self/cgroup                             (a namespace only, as unshare -C)
  cgroupns gc                                                   (remove the cgroups of dead chains)

Notes:
  SIZE is bytes or a number with k, m, g, t (binary: 64m is 64 MiB), as docker.
  --memory-swap is memory plus swap (-1: unlimited swap); unset, as much swap as memory.
  The cgroup is made below the caller's own (or --cgroup-parent) in every hierarchy,
  cgroup v2 or v1, and removed once the chain's process is gone (what is left in it is
  killed first); after a SIGKILL of the watcher, the next start or `cgroupns gc` does it."
)]
pub struct Args {
    /// Memory limit, e.g. 64m or 1g (at least 6m)
    #[arg(short = 'm', long, value_name = "SIZE", value_parser = Size::parse_memory)]
    pub memory: Option<Size>,

    /// Memory plus swap limit (needs --memory; -1: unlimited swap)
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = Swap::parse)]
    pub memory_swap: Option<Swap>,

    /// Most processes (and threads) at once; -1: unlimited
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = limits::parse_pids)]
    pub pids_limit: Option<i64>,

    /// CPU time as a number of CPUs, e.g. 0.5 (a CFS quota per 100 ms)
    #[arg(long, value_name = "F", value_parser = limits::parse_cpus)]
    pub cpus: Option<f64>,

    /// Relative CPU weight under contention, 1 to 10000 (100 is the default)
    #[arg(long, value_name = "N", value_parser = limits::parse_weight)]
    pub cpu_weight: Option<u64>,

    /// The CPUs it may run on, e.g. 0 or 0-1,3
    #[arg(long, visible_alias = "cpuset-cpus", value_name = "CPUS", value_parser = limits::parse_cpuset)]
    pub cpuset: Option<String>,

    /// Make the cgroup under PATH instead of the caller's cgroup (absolute: from the root of
    /// the caller's cgroup namespace; made if missing, and left in place, as docker does)
    #[arg(long, value_name = "PATH", value_parser = parse_parent)]
    pub cgroup_parent: Option<PathBuf>,

    #[command(flatten)]
    pub ns: NsOptions,

    #[command(flatten)]
    pub command: CommandArgs,

    #[command(subcommand)]
    pub action: Option<Action>,
}

/// What cgroupns does instead of running a command (only as its very first word).
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Remove the cgroups of chains that are gone (killing what is left in them)
    Gc(watch::GcArgs),
}

/// `--cgroup-parent`: a cgroup path without `.` or `..` components.
fn parse_parent(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    let bad = text.is_empty()
        || text.contains('\n')
        || path.components().any(|c| {
            matches!(
                c,
                std::path::Component::ParentDir | std::path::Component::CurDir
            )
        });
    if bad {
        return Err(format!(
            "{text:?} is not a cgroup path: write e.g. /nschain or batch/jobs, without . or .."
        ));
    }
    Ok(path)
}

impl Args {
    /// The limits asked for.
    pub fn limits(&self) -> Limits {
        Limits {
            memory: self.memory,
            swap: self.memory_swap,
            pids: self.pids_limit,
            cpus: self.cpus,
            weight: self.cpu_weight,
            cpuset: self.cpuset.clone(),
        }
    }
}

pub fn run(args: Args, cx: &mut Context) -> Result<Next, Fatal> {
    if let Some(Action::Gc(gc)) = &args.action {
        return watch::gc_main(gc).map(Next::Exit);
    }
    let limits = args.limits();
    limits.check().map_err(Fatal::new)?;
    let wants_cgroup = limits.any() || args.cgroup_parent.is_some();
    if args.ns.join.is_some() && wants_cgroup {
        return Err(Fatal::new(
            "--join enters an existing cgroup namespace: it takes no limits or --cgroup-parent",
        )
        .with_hint("nsps exec NAME joins a chain's cgroup and its namespaces"));
    }
    let link = Link::prepare(cx, Namespace::Cgroup, &args.ns)?;
    let mut extra = Map::new();
    let placed = if wants_cgroup {
        let (placed, info) = make_cgroup(&args, &limits, &link, cx)?;
        extra.insert("cgroup".into(), info);
        Some(placed)
    } else {
        None
    };
    let entered = link
        .enter()
        .and_then(|()| link.finish(common::procfs::own_pid(), extra));
    if let Err(fatal) = entered {
        if let Some((placed, name)) = &placed {
            placed.undo();
            watch::forget(name);
        }
        return Err(fatal);
    }
    Ok(Next::Exec(args.command.command))
}

/// Checks the order, collects dead chains' cgroups, starts the watcher, makes the cgroup.
fn make_cgroup(
    args: &Args,
    limits: &Limits,
    link: &Link,
    cx: &mut Context,
) -> Result<((place::Placed, String), serde_json::Value), Fatal> {
    place::check_cpuset(limits)?;
    if place::after_pidns() {
        return Err(Fatal::new(
            "limits after pidns would leave out its monitor and init (and their pid namespace \
             would outlive the cgroup's accounting)",
        )
        .with_hint(format!(
            "put cgroupns with limits before pidns {}",
            place::RULE
        )));
    }
    let layout = Layout::detect()?;
    if !common::state::is_host_root()
        && common::state::in_initial_user_namespace()
        && layout.kind() != Kind::Unified
    {
        return Err(
            Fatal::new("limits need cgroup v2 when not root: this host runs cgroup v1")
                .with_hint(place::rootless_v1_hint()),
        );
    }
    place::check_writable(&layout, limits, args.cgroup_parent.as_deref())?;
    debug::step("collect dead cgroups", watch::collect_dead);
    let name = match link.naming() {
        Some(naming) => format!("nschain-{}", naming.name),
        None => format!("nschain-{:x}", std::process::id()),
    };
    // The process that lasts as long as the chain: this one, or the chain's supervisor
    // (common::sup), to which pidns hands the container before this process exits.
    let holder = common::sup::supervisor_parent()
        .map_or_else(common::procfs::own_pid, |p| p.as_raw() as u32);
    let record = watch::Record {
        pid: holder,
        start: common::procfs::start_time(holder).unwrap_or(0),
        cgroup: common::cgroupfs::Cgroup {
            dirs: place::hierarchies(&layout, limits)?
                .iter()
                .map(|h| {
                    (
                        h.version,
                        place::parent_dir(h, args.cgroup_parent.as_deref()).join(&name),
                    )
                })
                .collect(),
        },
        memory: args.memory.map(|m| m.to_string()),
        chain: link.naming().map(|naming| naming.name.clone()),
    };
    record.write(&name)?;
    let watcher = match watch::Watcher::supervisor(cx).map_or_else(watch::Watcher::spawn, Ok) {
        Ok(w) => w,
        Err(e) => {
            watch::forget(&name);
            return Err(e);
        }
    };
    let placed = match place::make(&layout, limits, args.cgroup_parent.as_deref(), &name) {
        Ok(p) => p,
        Err(e) => {
            watch::forget(&name);
            return Err(e);
        }
    };
    // The record names the directories actually made (a hierarchy only watched may be
    // closed to us), then the watcher takes over.
    let handed = watch::Record {
        cgroup: placed.cgroup.clone(),
        ..record
    }
    .write(&name)
    .and_then(|()| watcher.go(&name, limit_text(args).as_deref()));
    if let Err(e) = handed {
        placed.undo();
        watch::forget(&name);
        return Err(e);
    }
    let info = json!({
        "name": name,
        "layout": layout_name(layout.kind()),
        "dirs": placed.cgroup.dirs,
        "limits": limits.to_json(),
    });
    Ok(((placed, name), info))
}

/// `--memory` as the OOM warning shows it: as given, and in bytes.
fn limit_text(args: &Args) -> Option<String> {
    let given = args.memory.as_ref()?.to_string();
    let bytes = limits::Size::parse(&given)
        .map(|s| format!(" ({})", common::cgroupfs::human_bytes(s.0)))
        .unwrap_or_default();
    Some(format!("{given}{bytes}"))
}

/// The layout as the registration names it.
fn layout_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Unified => "v2",
        Kind::Legacy => "v1",
        Kind::Hybrid => "hybrid",
    }
}
