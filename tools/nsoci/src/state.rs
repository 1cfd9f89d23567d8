//! The state of a container under `--root` (runc's layout): `ROOT/ID/state.json` and, until
//! `start`, `ROOT/ID/exec.fifo`. The pid is stored with its start time (/proc/PID/stat field
//! 22), so that a pid reused by another process reads as stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::Fatal;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The runtime-spec version nsoci reports.
pub const SPEC_VERSION: &str = "1.2.0";

/// What `create` records.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Record {
    pub id: String,
    pub pid: i32,
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub annotations: BTreeMap<String, String>,
    /// The init waits at the start gate (false while `create` runs).
    pub ready: bool,
    /// The config's hooks, for `start` (poststart) and `delete` (poststop).
    #[serde(default)]
    pub hooks: crate::hooks::Hooks,
    /// The container's cgroup (None: an unprivileged container on a v1 host has none).
    #[serde(default)]
    pub cgroup: Option<crate::cgroup::Placed>,
    /// The chain's registration (`RUN_DIR/chains/NAME`, its generated name), which `delete`
    /// removes: pidns runs without a monitor, so nobody else does when the container ends.
    #[serde(default)]
    pub chain: Option<String>,
}

/// The registered chain whose records name `pid` (the container's PID 1) and hold its
/// namespaces now: the name the chain handed to its last link (`NSCHAIN_NAME` in the
/// environment of the init, which has not exec'd the payload yet), checked against its
/// records, so that `create` costs the same however many chains run; else (a link reached
/// without an exec keeps the first one's environment) every registration is looked at.
pub fn registration_of(pid: i32) -> Option<String> {
    registration_with(pid, handed_name(pid))
}

/// [`registration_of`] with the name read from the init's environment earlier: `run`
/// without a start gate reads it before `ready`, as later the init may have exec'd the
/// payload or ended. An init that ended has no records left to check: its handed name is
/// taken as it is (`delete` unregisters a chain only when nothing of it is live).
pub fn registration_with(pid: i32, handed: Option<String>) -> Option<String> {
    let holds = |name: &String| {
        common::chain::live_records(name)
            .iter()
            .any(|r| r.pid as i32 == pid)
    };
    match handed {
        Some(name) if holds(&name) => return Some(name),
        Some(name) if !common::procfs::running(pid as u32, None) => return Some(name),
        _ => {}
    }
    common::chain::names().into_iter().find(holds)
}

/// `NSCHAIN_NAME` in the environment `pid` was exec'd with.
pub fn handed_name(pid: i32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{}=", common::chain::NAME_VAR);
    environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(prefix.as_bytes()))
        .and_then(|name| String::from_utf8(name.to_vec()).ok())
}

/// The spec's statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// The directory holding every container's state.
pub fn root_dir(given: Option<&Path>) -> PathBuf {
    if let Some(dir) = given {
        return dir.to_path_buf();
    }
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
    // runc's rule: root of a user namespace (rootless podman's) that is not USER=root uses
    // $XDG_RUNTIME_DIR too; the host's /run is not its to write.
    let userns_root = !common::state::in_initial_user_namespace()
        && std::env::var("USER").map_or(true, |u| u != "root");
    if nix::unistd::geteuid().is_root() && !(userns_root && xdg.is_some()) {
        return PathBuf::from("/run/nsoci");
    }
    match xdg {
        Some(dir) => PathBuf::from(dir).join("nsoci"),
        None => PathBuf::from(format!("/tmp/nsoci-{}", nix::unistd::geteuid())),
    }
}

/// runc's rule for ids: letters, digits, `_ + - .`, not `.` or `..`; it names a directory.
pub fn check_id(id: &str) -> Result<(), Fatal> {
    let valid = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if valid {
        Ok(())
    } else {
        Err(Fatal::new(format!("invalid container id '{id}'")))
    }
}

/// One container's directory.
#[derive(Debug)]
pub struct Container {
    pub dir: PathBuf,
    pub record: Record,
}

impl Container {
    /// Loads container `id`; an unknown id is runc's "container does not exist".
    pub fn load(root: &Path, id: &str) -> Result<Container, Fatal> {
        check_id(id)?;
        let dir = root.join(id);
        let text = std::fs::read(dir.join("state.json"))
            .map_err(|_| Fatal::new(format!("container {id} does not exist")))?;
        let record = serde_json::from_slice(&text)
            .map_err(|e| Fatal::new(format!("container {id}: unreadable state: {e}")))?;
        Ok(Container { dir, record })
    }

    pub fn fifo(&self) -> PathBuf {
        self.dir.join("exec.fifo")
    }

    /// The spec's rules: the init gone (or a zombie, or another process with its pid) is
    /// stopped; at the gate, created; past it, running.
    pub fn status(&self) -> Status {
        if !alive(self.record.pid, self.record.start_time) {
            return Status::Stopped;
        }
        if !self.record.ready {
            Status::Creating
        } else if self.fifo().exists() {
            Status::Created
        } else if self
            .record
            .cgroup
            .as_ref()
            .is_some_and(crate::pause::is_frozen)
        {
            Status::Paused
        } else {
            Status::Running
        }
    }

    /// The State JSON of the runtime spec (plus runc's rootfs, created, owner).
    pub fn state_json(&self) -> serde_json::Value {
        let status = self.status();
        let pid = if status == Status::Stopped {
            0
        } else {
            self.record.pid
        };
        json!({
            "ociVersion": SPEC_VERSION,
            "id": self.record.id,
            "pid": pid,
            "status": status.as_str(),
            "bundle": self.record.bundle,
            "rootfs": self.record.rootfs,
            "created": self.record.created,
            "owner": "",
            "annotations": self.record.annotations,
        })
    }
}

/// Writes `state.json` whole (a rename: a reader never sees half of it).
pub fn save(dir: &Path, record: &Record) -> Result<(), Fatal> {
    let tmp = dir.join("state.json.tmp");
    let text = serde_json::to_vec(record).map_err(|e| Fatal::new(e.to_string()))?;
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, dir.join("state.json")))
        .map_err(|e| {
            Fatal::from(anyhow::Error::from(e))
                .context(format!("unable to write {}", dir.display()))
        })
}

/// `pid` is still the process that was recorded, and has not ended.
pub fn alive(pid: i32, start_time: u64) -> bool {
    pid > 0 && common::procfs::running(pid as u32, Some(start_time))
}

/// Now as RFC 3339 UTC with nanoseconds (runc's `created`).
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc() {
        assert!(check_id("web-1_a.b+c").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "é"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_look_like_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T');
    }
}
