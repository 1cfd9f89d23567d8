//! The container's cgroup, as runc's cgroupfs manager places it: `linux.cgroupsPath`
//! (absolute: from the root of each hierarchy; relative: below the caller's own cgroup;
//! none: `nsoci-ID` below the caller's), made where missing, `linux.resources` written
//! (resources.rs), the init moved in before its first instruction (create.rs's pre-exec),
//! removed by `delete`. The directory tools are common::cgroupfs's and cgroupns's; the
//! cgroup namespace, when the config asks one, is made by the `cgroupns` link (chain.rs).

use std::ffi::CString;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::cgroupfs::{Cgroup, Hierarchy, Kind, Layout, Version};
use common::{debug, Fatal};
use serde::{Deserialize, Serialize};

use crate::resources::Resources;

/// The container's cgroup as its state records it.
#[derive(Serialize, Deserialize, Debug, Default, Clone)]
pub struct Placed {
    /// Its directory in each hierarchy.
    pub cgroup: Cgroup,
    /// The directories nsoci made (deepest last): what `delete` removes.
    pub made: Vec<PathBuf>,
}

/// The hierarchies a container joins: every v1 one with a controller, and the unified one.
fn joined(layout: &Layout) -> Vec<&Hierarchy> {
    layout
        .hierarchies
        .iter()
        .filter(|h| {
            h.version == Version::V2 || h.controllers.iter().any(|c| !c.starts_with("name="))
        })
        .collect()
}

/// The container's directory in `h` for `path` (runc's rule).
fn dir_in(h: &Hierarchy, path: &str) -> PathBuf {
    if let Some(abs) = path.strip_prefix('/') {
        h.mount.join(abs)
    } else {
        h.own_dir().join(path)
    }
}

/// `cgroupsPath` without `..`, `.` or empty components.
fn check_path(path: &str) -> Result<(), Fatal> {
    let bad = path.is_empty()
        || path.contains('\n')
        || path.contains(':')
        || path
            .split('/')
            .skip(usize::from(path.starts_with('/')))
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(Fatal::new(format!(
            "linux.cgroupsPath '{path}' is not a cgroupfs path (e.g. /machine/ctr or pods/ctr; slice:prefix:name is systemd's form)"
        )));
    }
    Ok(())
}

/// Makes the container's cgroup and writes its resources. None: an unprivileged caller
/// with nothing to limit (as runc rootless, which then joins no cgroup).
pub fn setup(path: Option<&str>, id: &str, res: &Resources) -> Result<Option<Placed>, Fatal> {
    res.check()?;
    let default = format!("nsoci-{id}");
    let path = path.filter(|p| !p.is_empty()).unwrap_or(&default);
    check_path(path)?;
    let layout = Layout::detect()?;
    let limited = !res.is_empty();
    if !common::state::is_host_root() && layout.kind() != Kind::Unified {
        // Device rules alone are let go, as runc rootless does: mntns's /dev holds only the
        // nodes it is given anyway.
        let beyond_devices = !Resources {
            devices: Vec::new(),
            ..res.clone()
        }
        .is_empty();
        if beyond_devices {
            return Err(Fatal::new(
                "linux.resources need cgroup v2 when not root: this host runs cgroup v1",
            ));
        }
        return Ok(None);
    }
    let mut placed = Placed::default();
    let made = make(&layout, path, res, &mut placed);
    match made {
        Ok(()) => Ok(Some(placed)),
        Err(e) => {
            remove(&placed);
            let denied = e.1 == Some(ErrorKind::PermissionDenied);
            if denied && !limited && !common::state::is_host_root() {
                // Rootless v2 without a delegated cgroup: like runc, run without one.
                return Ok(None);
            }
            Err(e.0)
        }
    }
}

type MakeError = (Fatal, Option<ErrorKind>);

fn make(
    layout: &Layout,
    path: &str,
    res: &Resources,
    placed: &mut Placed,
) -> Result<(), MakeError> {
    let all = joined(layout);
    let mut plan = Vec::new();
    if !res.unified.is_empty() && layout.unified().is_none() {
        return Err((
            Fatal::new("linux.resources.unified: this host has no cgroup v2 hierarchy"),
            None,
        ));
    }
    for h in &all {
        let settings = settings_for(layout, h, res).map_err(|e| (e, None))?;
        plan.push((*h, settings));
    }
    // Every setting needs a hierarchy carrying its controller (runc: "cannot set X limit").
    for (h, settings) in &plan {
        for s in settings {
            let owner = owner_of(layout, s.controller);
            if owner.is_none() && h.version == layout_main(layout) {
                return Err((
                    Fatal::new(format!(
                        "linux.resources.{}: cannot set it: no cgroup hierarchy here has the {} controller",
                        s.field, s.controller
                    )),
                    None,
                ));
            }
        }
    }
    for (h, _) in &plan {
        let dir = dir_in(h, path);
        mkdir_all(h, &dir, placed)?;
        placed.cgroup.dirs.push((h.version, dir));
    }
    apply(layout, placed, res).map_err(|e| (e, None))
}

/// Writes `res` into the container's directories, each setting into the hierarchy that
/// carries its controller (`create`, and `update` on a live container).
pub fn apply(layout: &Layout, placed: &Placed, res: &Resources) -> Result<(), Fatal> {
    for (version, dir) in &placed.cgroup.dirs {
        let Some(h) = layout
            .hierarchies
            .iter()
            .find(|h| h.version == *version && dir.starts_with(&h.mount))
        else {
            continue;
        };
        let mine: Vec<_> = settings_for(layout, h, res)?
            .into_iter()
            .filter(|s| owner_of(layout, s.controller).is_some_and(|o| o == h))
            .collect();
        if h.version == Version::V2 {
            let controllers: Vec<&str> = mine
                .iter()
                .map(|s| s.controller)
                .filter(|c| !c.is_empty())
                .collect();
            enable_down(h, dir, &controllers)?;
        }
        write_all(dir, &mine)?;
    }
    Ok(())
}

/// The settings for hierarchy `h`. In the hybrid layout the unified hierarchy carries only a
/// few controllers (here: hugetlb): it is given the parts of `res` it owns, no more (the
/// rest, v1's, would be refused in v2 terms).
fn settings_for(
    layout: &Layout,
    h: &Hierarchy,
    res: &Resources,
) -> Result<Vec<crate::resources::Setting>, Fatal> {
    if h.version == Version::V1 || layout.kind() == Kind::Unified {
        return res.settings(h.version);
    }
    let owned = |c: &str| layout.find(c).is_some_and(|o| o == h);
    let part = Resources {
        memory: res.memory.clone().filter(|_| owned("memory")),
        cpu: res.cpu.clone().filter(|_| owned("cpu") || owned("cpuset")),
        pids: res.pids.clone().filter(|_| owned("pids")),
        block_io: res.block_io.clone().filter(|_| owned("io")),
        hugepage_limits: if owned("hugetlb") {
            res.hugepage_limits.clone()
        } else {
            Vec::new()
        },
        unified: res.unified.clone(),
        ..Resources::default()
    };
    part.settings(Version::V2)
}

/// The version whose hierarchies take settings no hierarchy carries (v1 on v1 and hybrid).
fn layout_main(layout: &Layout) -> Version {
    if layout.kind() == Kind::Unified {
        Version::V2
    } else {
        Version::V1
    }
}

/// The hierarchy that carries `controller` ("": the v2 core files).
fn owner_of<'a>(layout: &'a Layout, controller: &str) -> Option<&'a Hierarchy> {
    if controller.is_empty() {
        return layout.unified();
    }
    layout.find(controller)
}

/// mkdir -p, recording what was made.
fn mkdir_all(h: &Hierarchy, dir: &Path, placed: &mut Placed) -> Result<(), MakeError> {
    let below = dir.starts_with(&h.mount) && dir != h.mount;
    // The usual case first, a new directory under an existing parent: one mkdir, no stat.
    if below && fs::create_dir(dir).is_ok() {
        debug::note(format_args!("mkdir {}", dir.display()));
        placed.made.push(dir.to_path_buf());
        return made(h, dir);
    }
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.is_dir() && at.starts_with(&h.mount) && at != h.mount {
        missing.push(at.to_path_buf());
        at = at.parent().unwrap_or(&h.mount);
    }
    for d in missing.into_iter().rev() {
        debug::step(format_args!("mkdir {}", d.display()), || fs::create_dir(&d)).map_err(|e| {
            let kind = e.kind();
            (
                Fatal::from(anyhow::Error::from(e))
                    .context(format!("unable to create the cgroup {}", d.display())),
                Some(kind),
            )
        })?;
        placed.made.push(d.clone());
        made(h, &d)?;
    }
    Ok(())
}

/// A new v1 cpuset gets its parent's CPUs and nodes.
fn made(h: &Hierarchy, dir: &Path) -> Result<(), MakeError> {
    if h.version == Version::V1 && h.has("cpuset") {
        copy_cpuset(dir).map_err(|e| (e, None))?;
    }
    Ok(())
}

fn copy_cpuset(dir: &Path) -> Result<(), Fatal> {
    let parent = dir.parent().unwrap_or(dir);
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let value = fs::read_to_string(parent.join(file)).unwrap_or_default();
        if !value.trim().is_empty() {
            write(&dir.join(file), value.trim(), "cpu.cpus")?;
        }
    }
    Ok(())
}

/// v2: every level from the mount down to `dir`'s parent gives `controllers` to its
/// children (runc's fs2 does the same for a deep cgroupsPath).
fn enable_down(h: &Hierarchy, dir: &Path, controllers: &[&str]) -> Result<(), Fatal> {
    if controllers.is_empty() {
        return Ok(());
    }
    let mut levels: Vec<&Path> = dir
        .ancestors()
        .skip(1)
        .take_while(|p| p.starts_with(&h.mount))
        .collect();
    levels.reverse();
    for level in levels {
        cgroupns::enable_controllers(level, controllers)?;
    }
    Ok(())
}

/// Writes the settings in order. v1 memory: a limit above the current memsw is refused
/// until memsw is raised, so on EINVAL the pair is written the other way round.
pub fn write_all(dir: &Path, settings: &[crate::resources::Setting]) -> Result<(), Fatal> {
    let mut i = 0;
    while i < settings.len() {
        let s = &settings[i];
        let file = dir.join(&s.file);
        let next_is_memsw = settings
            .get(i + 1)
            .is_some_and(|n| n.file == "memory.memsw.limit_in_bytes");
        if s.file == "memory.limit_in_bytes" && next_is_memsw {
            let memsw = &settings[i + 1];
            if fs::write(&file, &s.value).is_err() {
                write(&dir.join(&memsw.file), &memsw.value, memsw.field)?;
                write(&file, &s.value, s.field)?;
            } else {
                write(&dir.join(&memsw.file), &memsw.value, memsw.field)?;
            }
            i += 2;
            continue;
        }
        write(&file, &s.value, s.field)?;
        i += 1;
    }
    Ok(())
}

fn write(file: &Path, value: &str, field: &str) -> Result<(), Fatal> {
    // Opened for writing only (no O_CREAT|O_TRUNC, no stat first): one open per setting.
    let written = debug::step(format_args!("{} = {value}", file.display()), || {
        fs::OpenOptions::new()
            .write(true)
            .open(file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, value.as_bytes()))
    });
    written.map_err(|e| {
        if !file.exists() {
            // cgroupfs answers EACCES, not ENOENT, for a file it does not have.
            return Fatal::new(format!(
                "linux.resources.{field}: cannot set it: this kernel has no {}",
                file.display()
            ))
            .with_hint("leave the field out of linux.resources");
        }
        Fatal::from(anyhow::Error::from(e)).context(format!(
            "linux.resources.{field}: unable to write {value:?} to {}",
            file.display()
        ))
    })
}

/// The cgroup.procs files of the container's directories, ready for the init's pre-exec
/// (which writes "0" into each: no allocation after the fork).
pub fn procs_files(placed: &Placed) -> Vec<CString> {
    placed
        .cgroup
        .dirs
        .iter()
        .filter_map(|(_, d)| CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).ok())
        .collect()
}

/// `--systemd-cgroup`: nsoci manages cgroups through cgroupfs only; the answer says why.
pub fn refuse_systemd() -> Result<(), Fatal> {
    if !Path::new("/run/systemd/system").is_dir() {
        return Err(Fatal::new(
            "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system)",
        )
        .with_hint("leave out --systemd-cgroup: nsoci then places the container with cgroupfs (podman: --cgroup-manager=cgroupfs)"));
    }
    Err(Fatal::new(
        "--systemd-cgroup: the systemd cgroup manager is not supported: nsoci manages cgroups through cgroupfs",
    )
    .with_hint("leave out --systemd-cgroup (podman: --cgroup-manager=cgroupfs; containerd: SystemdCgroup = false)"))
}

/// `kill --all`: the signal to every process of the container's cgroup (without a cgroup,
/// to the init, which takes its pid namespace with it).
pub fn signal_all(c: &crate::state::Container, signo: i32) -> Result<(), Fatal> {
    let pids = match &c.record.cgroup {
        Some(placed) => placed.cgroup.procs(),
        None => vec![c.record.pid as u32],
    };
    for pid in pids {
        // SAFETY: kill(2) only sends a signal, to a member of the container's cgroup (or
        // its init, checked against its start time by the caller).
        unsafe { libc::kill(pid as libc::pid_t, signo) };
    }
    Ok(())
}

/// Kills whatever is left in the container's cgroup (thawing it first if paused).
pub fn kill_all(placed: &Placed) {
    let _ = crate::pause::set_frozen(placed, false);
    if let Err(e) = placed.cgroup.kill(Duration::from_secs(5)) {
        common::report::warning(format!("{e:#}"));
    }
}

/// Removes the directories nsoci made, deepest first (what existed before stays).
pub fn remove(placed: &Placed) {
    let made = Cgroup {
        dirs: placed
            .made
            .iter()
            .rev()
            .map(|d| (Version::V1, d.clone()))
            .collect(),
    };
    if let Err(e) = made.remove(Duration::from_secs(2)) {
        common::report::warning(format!("{e:#}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(version: Version, mount: &str, own: &str) -> Hierarchy {
        Hierarchy {
            version,
            controllers: vec!["memory".into()],
            mount: PathBuf::from(mount),
            mount_root: "/".into(),
            own: own.into(),
        }
    }

    #[test]
    fn paths_follow_runc() {
        let mem = h(Version::V1, "/sys/fs/cgroup/memory", "/user/me");
        assert_eq!(
            dir_in(&mem, "/machine/c1"),
            PathBuf::from("/sys/fs/cgroup/memory/machine/c1")
        );
        assert_eq!(
            dir_in(&mem, "pods/c1"),
            PathBuf::from("/sys/fs/cgroup/memory/user/me/pods/c1")
        );
        assert!(check_path("/a/../b").is_err());
        assert!(check_path("system.slice:nsoci:x").is_err());
        assert!(check_path("").is_err());
        assert!(check_path("/a/b").is_ok() && check_path("a/b").is_ok());
    }

    #[test]
    fn a_v2_tree_gets_its_files_and_memsw_order() {
        let root = std::env::temp_dir().join(format!("nsoci-cg-{}", std::process::id()));
        let dir = root.join("c");
        let _ = fs::create_dir_all(&dir);
        let res: Resources = serde_json::from_str(
            r#"{"memory":{"limit":67108864,"swap":134217728},"pids":{"limit":10},"cpu":{"quota":20000,"period":100000}}"#,
        )
        .unwrap_or_default();
        let settings = res.settings(Version::V2).unwrap_or_default();
        for s in &settings {
            let _ = fs::write(dir.join(&s.file), "");
        }
        assert!(write_all(&dir, &settings).is_ok());
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap_or_default();
        assert_eq!(read("memory.max"), "67108864");
        assert_eq!(read("memory.swap.max"), "67108864");
        assert_eq!(read("pids.max"), "10");
        assert_eq!(read("cpu.max"), "20000 100000");
        let missing = Resources {
            hugepage_limits: vec![crate::resources::Hugepage {
                page_size: "2MB".into(),
                limit: 1,
            }],
            ..Resources::default()
        };
        let err = write_all(&dir, &missing.settings(Version::V2).unwrap_or_default());
        assert!(err.is_err_and(|e| e.message().contains("hugepageLimits")));
        let _ = fs::remove_dir_all(&root);
    }
}
