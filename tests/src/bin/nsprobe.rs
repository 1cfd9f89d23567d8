//! nsprobe: prints, as one JSON object, what a chain test needs to see of the process it runs
//! as: pid, ppid, ids and id maps, hostname, domainname, namespace inodes, the SysV IPC objects
//! it can see, mounts, network interfaces, capabilities, cwd, open fds and the clocks a time
//! namespace shifts.
//!
//! Actions before printing: `--mkshm KEY` creates a SysV shm segment, `--mkmq NAME` a POSIX
//! message queue; `--mq NAME` reports whether a POSIX queue of that name is visible.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;

use serde_json::{json, Value};

fn main() -> std::process::ExitCode {
    let mut mq_checks = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        let result = match (arg.as_str(), value) {
            ("--mkshm", Some(key)) => make_shm(&key),
            ("--mkmq", Some(name)) => make_mq(&name),
            ("--mq", Some(name)) => {
                mq_checks.push(name);
                Ok(())
            }
            (other, _) => Err(format!("unknown or incomplete argument {other}")),
        };
        if let Err(e) = result {
            eprintln!("nsprobe: fatal: {e}");
            return std::process::ExitCode::from(1);
        }
    }
    let mq: BTreeMap<String, bool> = mq_checks
        .into_iter()
        .map(|n| {
            let seen = mq_visible(&n);
            (n, seen)
        })
        .collect();
    let probe = json!({
        "pid": std::process::id(),
        "ppid": std::os::unix::process::parent_id(),
        "uid": status_field("Uid"),
        "gid": status_field("Gid"),
        "uid_map": read_lines("/proc/self/uid_map"),
        "gid_map": read_lines("/proc/self/gid_map"),
        "setgroups": read_trim("/proc/self/setgroups"),
        "hostname": read_trim("/proc/sys/kernel/hostname"),
        "domainname": read_trim("/proc/sys/kernel/domainname"),
        "ns": namespaces(),
        "sysv_shm_keys": sysv_keys("/proc/sysvipc/shm"),
        "sysv_msg_keys": sysv_keys("/proc/sysvipc/msg"),
        "sysv_sem_keys": sysv_keys("/proc/sysvipc/sem"),
        "mq": mq,
        "mounts": mount_points(),
        "interfaces": interfaces(),
        "caps": {
            "effective": status_field("CapEff"),
            "permitted": status_field("CapPrm"),
            "bounding": status_field("CapBnd"),
            "ambient": status_field("CapAmb"),
        },
        "no_new_privs": status_field("NoNewPrivs"),
        "cwd": fs::read_link("/proc/self/cwd").map(|p| p.display().to_string()).unwrap_or_default(),
        "fds": open_fds(),
        "nspid": status_field("NSpid"),
        "clocks": {
            "monotonic": clock_seconds(libc::CLOCK_MONOTONIC),
            "boottime": clock_seconds(libc::CLOCK_BOOTTIME),
        },
    });
    println!("{probe}");
    std::process::ExitCode::SUCCESS
}

/// What a clock reads, in seconds.
fn clock_seconds(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn read_trim(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn read_lines(path: &str) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn status_field(name: &str) -> String {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_default()
}

fn namespaces() -> Value {
    use std::os::unix::fs::MetadataExt;
    let mut map = serde_json::Map::new();
    for kind in ["user", "pid", "net", "ipc", "uts", "mnt", "cgroup", "time"] {
        if let Ok(meta) = fs::metadata(format!("/proc/self/ns/{kind}")) {
            map.insert(kind.into(), json!(meta.ino()));
        }
    }
    map.into()
}

fn sysv_keys(path: &str) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn mount_points() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .collect()
}

fn interfaces() -> Vec<String> {
    fs::read_to_string("/proc/self/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|n| n.trim().to_owned()))
        .collect()
}

fn open_fds() -> Vec<String> {
    let mut fds: Vec<(u32, String)> = fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let fd = e.file_name().to_str()?.parse().ok()?;
                    let target = fs::read_link(e.path()).ok()?.display().to_string();
                    Some((fd, target))
                })
                .collect()
        })
        .unwrap_or_default();
    fds.sort();
    fds.into_iter().map(|(fd, t)| format!("{fd}={t}")).collect()
}

fn make_shm(key: &str) -> Result<(), String> {
    let key: i32 = key.parse().map_err(|_| format!("bad shm key {key}"))?;
    // SAFETY: shmget only takes integers.
    let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | 0o600) };
    if id < 0 {
        return Err(format!("shmget: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn mq_name(name: &str) -> Result<CString, String> {
    CString::new(format!("/{}", name.trim_start_matches('/'))).map_err(|e| e.to_string())
}

fn make_mq(name: &str) -> Result<(), String> {
    let name = mq_name(name)?;
    // SAFETY: name is a valid C string; a null attr pointer asks for default attributes.
    let mqd = unsafe {
        libc::mq_open(
            name.as_ptr(),
            libc::O_CREAT | libc::O_RDWR,
            0o600 as libc::c_uint,
            std::ptr::null::<libc::mq_attr>(),
        )
    };
    if mqd < 0 {
        return Err(format!("mq_open: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn mq_visible(name: &str) -> bool {
    let Ok(name) = mq_name(name) else {
        return false;
    };
    // SAFETY: name is a valid C string.
    let mqd = unsafe { libc::mq_open(name.as_ptr(), libc::O_RDONLY) };
    if mqd >= 0 {
        // SAFETY: mqd was just opened.
        unsafe { libc::mq_close(mqd) };
        return true;
    }
    false
}
