//! `pause` / `resume`: the container's cgroup frozen and thawed, v1 through the freezer
//! controller (`freezer.state`), v2 through `cgroup.freeze` (done when `cgroup.events` says
//! `frozen 1`). `state` and `list` then say `paused`.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::cgroupfs::Version;
use common::Fatal;

use crate::cgroup::Placed;
use crate::state::{Container, Status};

/// `nsoci pause ID`: a running container only, as runc.
pub fn pause(root: &Path, id: &str) -> Result<(), Fatal> {
    let c = Container::load(root, id)?;
    match c.status() {
        Status::Running => {}
        Status::Paused => return Err(Fatal::new(format!("container {id} is already paused"))),
        other => {
            return Err(Fatal::new(format!(
                "container {id} is not running: {}",
                other.as_str()
            )))
        }
    }
    set_frozen(placed(&c)?, true)
}

/// `nsoci resume ID`: a paused container only.
pub fn resume(root: &Path, id: &str) -> Result<(), Fatal> {
    let c = Container::load(root, id)?;
    if c.status() != Status::Paused {
        return Err(Fatal::new(format!("container {id} is not paused")));
    }
    set_frozen(placed(&c)?, false)
}

fn placed(c: &Container) -> Result<&Placed, Fatal> {
    c.record.cgroup.as_ref().ok_or_else(|| {
        Fatal::new(format!(
            "container {} has no cgroup (an unprivileged container on a cgroup v1 host): it cannot be paused",
            c.record.id
        ))
    })
}

/// Where the freezing is done: v1 freezer.state, else v2 cgroup.freeze.
fn control(placed: &Placed) -> Option<(Version, &Path)> {
    let dirs = &placed.cgroup.dirs;
    dirs.iter()
        .find(|(v, d)| *v == Version::V1 && d.join("freezer.state").exists())
        .or_else(|| {
            dirs.iter()
                .find(|(v, d)| *v == Version::V2 && d.join("cgroup.freeze").exists())
        })
        .map(|(v, d)| (*v, d.as_path()))
}

/// Whether the container's cgroup is frozen (or freezing).
pub fn is_frozen(placed: &Placed) -> bool {
    match control(placed) {
        Some((Version::V1, dir)) => {
            let state = fs::read_to_string(dir.join("freezer.state")).unwrap_or_default();
            matches!(state.trim(), "FROZEN" | "FREEZING")
        }
        Some((Version::V2, dir)) => {
            fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
        }
        None => false,
    }
}

/// Freezes or thaws, and waits until the kernel says it is done (up to 5 s).
pub fn set_frozen(placed: &Placed, frozen: bool) -> Result<(), Fatal> {
    let Some((version, dir)) = control(placed) else {
        return Err(Fatal::new(
            "the container's cgroup has no freezer (v1 freezer controller or v2 cgroup.freeze)",
        ));
    };
    let (file, value, done_file, done) = match (version, frozen) {
        (Version::V1, true) => ("freezer.state", "FROZEN", "freezer.state", "FROZEN"),
        (Version::V1, false) => ("freezer.state", "THAWED", "freezer.state", "THAWED"),
        (Version::V2, true) => ("cgroup.freeze", "1", "cgroup.events", "frozen 1"),
        (Version::V2, false) => ("cgroup.freeze", "0", "cgroup.events", "frozen 0"),
    };
    fs::write(dir.join(file), value).map_err(|e| {
        Fatal::from(anyhow::Error::from(e)).context(format!(
            "unable to write {value} to {}",
            dir.join(file).display()
        ))
    })?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = fs::read_to_string(dir.join(done_file)).unwrap_or_default();
        if now.lines().any(|l| l.trim() == done) {
            return Ok(());
        }
        if Instant::now() > deadline {
            if frozen {
                // As runc: a freeze that does not take is undone, not left half-done.
                let _ = fs::write(
                    dir.join(file),
                    if version == Version::V1 {
                        "THAWED"
                    } else {
                        "0"
                    },
                );
            }
            return Err(Fatal::new(format!(
                "the cgroup {} did not become {done} within 5 s",
                dir.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
