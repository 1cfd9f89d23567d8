//! `spec`: a starting config.json, runc's defaults (what mntns makes in a new root).

use std::path::Path;

use common::Fatal;
use serde_json::{json, Value};

use crate::state::SPEC_VERSION;

/// The capabilities runc's spec gives (also podman's default set's core).
const CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// runc's default config; `rootless` adds a user namespace mapping the caller to root and
/// leaves the network namespace out, as `runc spec --rootless`.
pub fn default_config(rootless: bool) -> Value {
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    if rootless {
        namespaces.push(json!({"type": "user"}));
    } else {
        namespaces.insert(1, json!({"type": "network"}));
    }
    let mut config = json!({
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "nsoci",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": namespaces,
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    if rootless {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    }
    config
}

/// Writes `BUNDLE/config.json`, never over an existing one (runc's wording).
pub fn write(bundle: &Path, rootless: bool) -> Result<(), Fatal> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Fatal::new("File config.json exists. Remove it first."));
    }
    let text = serde_json::to_string_pretty(&default_config(rootless)).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(|e| {
        Fatal::from(anyhow::Error::from(e)).context(format!("unable to write {}", path.display()))
    })
}
