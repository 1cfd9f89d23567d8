//! Where the chain's cgroup goes and how it is made: one directory per hierarchy, under the
//! caller's own cgroup (or `--cgroup-parent`), limits written, this process moved in.
//!
//! ```text
//! check     the hierarchies the limits need exist and the parent is writable by us
//! mkdir     <parent>/nschain-<name> in every hierarchy used (v1 cpuset: mems copied)
//! move      this process in (v2: before enabling controllers, "no internal processes")
//! enable    v2: +memory +pids +cpu +cpuset in the parent's cgroup.subtree_control
//! limits    the files of each flag
//! ```
//! A failure at any step moves this process back and removes what was made.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::cgroupfs::{Cgroup, Hierarchy, Layout, Version};
use common::{debug, Fatal};

use crate::limits::{self, Limits};

/// The v1 controllers a chain's cgroup is made in even without a limit on them: usage
/// (memory, pids, CPU time) for nsps, and the freezer that stops leftovers before the kill.
const V1_ALWAYS: [&str; 5] = ["memory", "pids", "cpu", "cpuacct", "freezer"];

/// The rule of DESIGN.md §2 that limits break when placed wrong.
pub const RULE: &str = "(DESIGN.md §2, rule 8)";

/// The chain's cgroup, made and entered.
#[derive(Debug)]
pub struct Placed {
    /// Its directories.
    pub cgroup: Cgroup,
    /// Where this process was before (per hierarchy), to go back to on failure.
    origin: Vec<PathBuf>,
}

impl Placed {
    /// Undoes [`make`]: this process back where it was, the directories removed.
    pub fn undo(&self) {
        for dir in &self.origin {
            let _ = fs::write(dir.join("cgroup.procs"), "0");
        }
        let _ = self.cgroup.remove(Duration::from_millis(500));
    }
}

/// Which hierarchies the chain's cgroup is made in: (hierarchy, needed by a limit).
pub fn hierarchies<'a>(layout: &'a Layout, limits: &Limits) -> Result<Vec<&'a Hierarchy>, Fatal> {
    let needed = limits.controllers();
    for controller in &needed {
        if layout.find(controller).is_none() {
            return Err(Fatal::new(format!(
                "no mounted cgroup hierarchy has the {controller} controller, which {} needs",
                flag_of(controller)
            )));
        }
    }
    let mut chosen: Vec<&Hierarchy> = Vec::new();
    for h in &layout.hierarchies {
        let wanted = match h.version {
            // The unified hierarchy: the only one (v2), or in the hybrid layout for
            // cgroup.kill and cgroup.events.
            Version::V2 => true,
            Version::V1 => V1_ALWAYS.iter().any(|c| h.has(c)) || needed.iter().any(|c| h.has(c)),
        };
        if wanted && !chosen.contains(&h) {
            chosen.push(h);
        }
    }
    Ok(chosen)
}

fn flag_of(controller: &str) -> &'static str {
    match controller {
        "memory" => "--memory",
        "pids" => "--pids-limit",
        "cpu" => "--cpus/--cpu-weight",
        _ => "--cpuset",
    }
}

/// The parent directory in hierarchy `h`: `--cgroup-parent` (absolute: from the root of
/// the caller's cgroup namespace; relative: below the caller's cgroup), else the caller's.
pub fn parent_dir(h: &Hierarchy, parent: Option<&Path>) -> PathBuf {
    match parent {
        Some(p) if p.is_absolute() => h.mount.join(p.strip_prefix("/").unwrap_or(p)),
        Some(p) => h.own_dir().join(p),
        None => h.own_dir(),
    }
}

/// Checks, before anything is made, that this process may create cgroups under the parent
/// in every hierarchy a limit needs (inside a user namespace, the host's cgroup directories
/// belong to an unmapped root).
pub fn check_writable(
    layout: &Layout,
    limits: &Limits,
    parent: Option<&Path>,
) -> Result<(), Fatal> {
    for controller in limits.controllers() {
        let Some(h) = layout.find(controller) else {
            continue;
        };
        // A missing --cgroup-parent is made (as docker does): its nearest existing
        // ancestor is where we must be able to write.
        let wanted = parent_dir(h, parent);
        let dir = wanted
            .ancestors()
            .find(|d| d.is_dir())
            .unwrap_or(&h.mount)
            .to_path_buf();
        if nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK).is_err() {
            return Err(Fatal::new(format!(
                "unable to create a cgroup in {}: Permission denied",
                dir.display()
            ))
            .with_hint(permission_hint()));
        }
    }
    Ok(())
}

/// Makes the cgroup `name` with `limits` and moves this process in.
pub fn make(
    layout: &Layout,
    limits: &Limits,
    parent: Option<&Path>,
    name: &str,
) -> Result<Placed, Fatal> {
    let chosen = hierarchies(layout, limits)?;
    let mut placed = Placed {
        cgroup: Cgroup::default(),
        origin: chosen.iter().map(|h| h.own_dir()).collect(),
    };
    let needed = limits.controllers();
    for h in &chosen {
        let parent_dir = parent_dir(h, parent);
        let dir = parent_dir.join(name);
        // Needed: a limit lives there, or it is the only hierarchy (a v2 host).
        let is_needed = needed.iter().any(|c| layout.find(c) == Some(*h))
            || layout.kind() == common::cgroupfs::Kind::Unified;
        match make_parent(h, &parent_dir).and_then(|()| {
            debug::step(format_args!("mkdir {}", dir.display()), || {
                fs::create_dir(&dir)
            })
        }) {
            Ok(()) => placed.cgroup.dirs.push((h.version, dir.clone())),
            // A hierarchy only watched (no limit of ours lives there) may be closed to us.
            Err(e) if !is_needed && e.kind() == std::io::ErrorKind::PermissionDenied => {
                debug::note(format_args!("skipped {}: {e}", dir.display()));
                continue;
            }
            Err(e) => {
                placed.undo();
                return Err(mkdir_error(&parent_dir, &dir, e));
            }
        }
        if h.version == Version::V1 && h.has("cpuset") {
            let copied = copy_cpuset(&parent_dir, &dir);
            if let Err(e) = copied {
                placed.undo();
                return Err(e);
            }
        }
    }
    if let Err(e) = enter_and_limit(&placed, layout, limits) {
        placed.undo();
        return Err(e);
    }
    Ok(placed)
}

/// Makes a missing `--cgroup-parent` in hierarchy `h`, level by level (a new v1 cpuset gets
/// its parent's CPUs and memory nodes). It stays after the chain, as docker's does: other
/// chains may share it, and it is the caller's name.
fn make_parent(h: &Hierarchy, parent_dir: &Path) -> std::io::Result<()> {
    if parent_dir.is_dir() {
        return Ok(());
    }
    let missing: Vec<&Path> = parent_dir
        .ancestors()
        .take_while(|d| !d.is_dir() && d.starts_with(&h.mount))
        .collect();
    for dir in missing.into_iter().rev() {
        match debug::step(format_args!("mkdir {}", dir.display()), || {
            fs::create_dir(dir)
        }) {
            Ok(()) => {}
            // Made by a chain starting at the same time.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        if h.version == Version::V1 && h.has("cpuset") {
            for file in ["cpuset.mems", "cpuset.cpus"] {
                let value = fs::read_to_string(dir.parent().unwrap_or(dir).join(file))?;
                fs::write(dir.join(file), value.trim())?;
            }
        }
    }
    Ok(())
}

/// Moves this process in, then [`write_limits`].
fn enter_and_limit(placed: &Placed, layout: &Layout, limits: &Limits) -> Result<(), Fatal> {
    debug::step("move into the cgroup", || placed.cgroup.add(0))?;
    write_limits(layout, &placed.cgroup, limits)
}

/// Writes the limits into the cgroup's directories: each setting into the hierarchy that
/// carries its controller; in a v2 hierarchy the parent first gives the controllers to its
/// children (`cgroup.subtree_control`).
pub fn write_limits(layout: &Layout, cgroup: &Cgroup, limits: &Limits) -> Result<(), Fatal> {
    let needed = limits.controllers();
    for (version, dir) in &cgroup.dirs {
        if *version != Version::V2 {
            continue;
        }
        let v2_needed: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|c| layout.find(c).is_some_and(|h| h.version == Version::V2))
            .collect();
        enable_controllers(dir.parent().unwrap_or(dir), &v2_needed)?;
    }
    for (version, dir) in &cgroup.dirs {
        let swap_file = match version {
            Version::V1 => dir.join("memory.memsw.limit_in_bytes").exists(),
            Version::V2 => dir.join("memory.swap.max").exists(),
        };
        for setting in limits.settings(*version, swap_file) {
            let owner = layout.find(setting.controller);
            if !owner.is_some_and(|h| h.version == *version && dir.starts_with(&h.mount)) {
                continue;
            }
            let file = dir.join(setting.file);
            debug::step(format_args!("{} = {}", setting.file, setting.value), || {
                fs::write(&file, &setting.value)
            })
            .map_err(|e| {
                Fatal::from(anyhow::Error::from(e)).context(format!(
                    "{}: unable to write {} to {}",
                    setting.flag,
                    setting.value,
                    file.display()
                ))
            })?;
        }
    }
    Ok(())
}

/// v2: makes `controllers` available to the children of `parent` (one write, as
/// `+memory +pids`), unless they are already.
pub fn enable_controllers(parent: &Path, controllers: &[&str]) -> Result<(), Fatal> {
    let file = parent.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&file).unwrap_or_default();
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    fs::write(&file, missing.join(" ")).map_err(|e| {
        let busy = e.raw_os_error() == Some(libc::EBUSY);
        let fatal = Fatal::from(anyhow::Error::from(e)).context(format!(
            "unable to enable {} in {}",
            missing.join(" "),
            file.display()
        ));
        if busy {
            fatal.with_hint(
                "the parent cgroup holds processes of its own, and cgroup v2 gives \
                 controllers only to the children of a cgroup without them: start the \
                 chain in a cgroup of its own (systemd-run --user --scope -p Delegate=yes \
                 -- cgroupns ...), or pass --cgroup-parent",
            )
        } else {
            fatal
        }
    })
}

/// v1 cpuset: a new cpuset has no CPUs or memory nodes until given some.
fn copy_cpuset(parent: &Path, dir: &Path) -> Result<(), Fatal> {
    for file in ["cpuset.mems", "cpuset.cpus"] {
        let value = fs::read_to_string(parent.join(file)).unwrap_or_default();
        if !value.trim().is_empty() {
            fs::write(dir.join(file), value.trim()).map_err(|e| {
                Fatal::from(anyhow::Error::from(e))
                    .context(format!("unable to write {}", dir.join(file).display()))
            })?;
        }
    }
    Ok(())
}

/// `--cpuset` names only CPUs that are online.
pub fn check_cpuset(limits: &Limits) -> Result<(), Fatal> {
    let Some(list) = &limits.cpuset else {
        return Ok(());
    };
    let online = fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let online = limits::cpus_of(&online);
    if let Some(cpu) = limits::cpus_of(list)
        .into_iter()
        .find(|c| !online.contains(c))
    {
        return Err(Fatal::new(format!(
            "--cpuset {list}: CPU {cpu} is not online (online: {})",
            fs::read_to_string("/sys/devices/system/cpu/online")
                .unwrap_or_default()
                .trim()
        )));
    }
    Ok(())
}

/// The error of a mkdir, with the hint that fits who we are.
fn mkdir_error(parent: &Path, dir: &Path, e: std::io::Error) -> Fatal {
    let code = e.raw_os_error();
    let exists = e.kind() == std::io::ErrorKind::AlreadyExists;
    let missing = e.kind() == std::io::ErrorKind::NotFound;
    let fatal = Fatal::from(anyhow::Error::from(e))
        .context(format!("unable to create the cgroup {}", dir.display()));
    if exists {
        return fatal.with_hint("a cgroup of that name exists: another chain of that name runs, or `cgroupns gc` collects a dead one");
    }
    if missing {
        return fatal.with_hint(format!(
            "the parent cgroup {} was removed while the chain started: start it again",
            parent.display()
        ));
    }
    if !matches!(code, Some(libc::EACCES | libc::EPERM | libc::EROFS)) {
        return fatal;
    }
    fatal.with_hint(permission_hint())
}

/// Why cgroups cannot be made here, and what to do.
pub fn permission_hint() -> String {
    let v2 = Layout::detect().is_ok_and(|l| l.kind() == common::cgroupfs::Kind::Unified);
    let rootless = if v2 {
        "systemd-run --user --scope -p Delegate=yes -- ..."
    } else {
        "a cgroup v2 host (v1 is never delegated)"
    };
    if common::state::in_initial_user_namespace() {
        // Not root on the host: what can be delegated, and how.
        return if v2 {
            format!(
                "rootless limits need a cgroup delegated to you: run the chain under {rootless}"
            )
        } else {
            rootless_v1_hint().to_owned()
        };
    }
    // Inside a user namespace the host's cgroup directories belong to an unmapped root.
    format!(
        "limits need host root over the cgroup filesystem: in a rootful chain put cgroupns \
         with limits before userns; rootless, they need {rootless} {RULE}"
    )
}

/// The hint of a rootless chain on a cgroup v1 host.
pub fn rootless_v1_hint() -> &'static str {
    "cgroup v1 cannot be delegated to an unprivileged user safely: rootless limits need a \
     cgroup v2 host (and systemd-run --user --scope -p Delegate=yes); without limits, \
     cgroupns makes only a namespace"
}

/// Whether this process runs in a pid namespace below the one /proc shows (after pidns):
/// there, limits would leave out pidns's monitor and init.
pub fn after_pidns() -> bool {
    let depth = |path: &str| {
        fs::read_to_string(path).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .map(|v| v.split_whitespace().count())
        })
    };
    match (depth("/proc/self/status"), depth("/proc/1/status")) {
        (Some(own), Some(init)) => own > init,
        _ => false,
    }
}
