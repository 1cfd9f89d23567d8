//! `linux.resources` (runtime-spec config-linux.md) and the cgroup files that carry each
//! field, in a v1 hierarchy (runc's `fs` manager) or the v2 one (runc's `fs2`). Pure: what to
//! write is decided here, cgroup.rs writes it.

use std::collections::BTreeMap;

use common::cgroupfs::Version;
use common::Fatal;
use serde::{Deserialize, Serialize};

/// The whole `linux.resources` object (also `nsoci update --resources`'s input).
#[derive(Deserialize, Serialize, Debug, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    #[serde(default)]
    pub devices: Vec<DeviceRule>,
    pub memory: Option<Memory>,
    pub cpu: Option<Cpu>,
    pub pids: Option<Pids>,
    #[serde(rename = "blockIO")]
    pub block_io: Option<BlockIo>,
    #[serde(default)]
    pub hugepage_limits: Vec<Hugepage>,
    pub network: Option<Network>,
    /// v2 files written as they are (`"memory.high": "64M"`).
    #[serde(default)]
    pub unified: BTreeMap<String, String>,
}

#[derive(Deserialize, Serialize, Debug, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    pub limit: Option<i64>,
    pub reservation: Option<i64>,
    pub swap: Option<i64>,
    pub kernel: Option<i64>,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: Option<i64>,
    pub swappiness: Option<u64>,
    #[serde(rename = "disableOOMKiller")]
    pub disable_oom_killer: Option<bool>,
}

#[derive(Deserialize, Serialize, Debug, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Cpu {
    pub shares: Option<u64>,
    pub quota: Option<i64>,
    pub burst: Option<u64>,
    pub period: Option<u64>,
    pub realtime_runtime: Option<i64>,
    pub realtime_period: Option<u64>,
    pub cpus: Option<String>,
    pub mems: Option<String>,
    pub idle: Option<i64>,
}

#[derive(Deserialize, Serialize, Debug, Default, Clone)]
pub struct Pids {
    pub limit: i64,
}

#[derive(Deserialize, Serialize, Debug, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct BlockIo {
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
    #[serde(default)]
    pub weight_device: Vec<WeightDevice>,
    #[serde(default)]
    pub throttle_read_bps_device: Vec<Throttle>,
    #[serde(default)]
    pub throttle_write_bps_device: Vec<Throttle>,
    #[serde(default, rename = "throttleReadIOPSDevice")]
    pub throttle_read_iops_device: Vec<Throttle>,
    #[serde(default, rename = "throttleWriteIOPSDevice")]
    pub throttle_write_iops_device: Vec<Throttle>,
}

#[derive(Deserialize, Serialize, Debug, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct WeightDevice {
    pub major: i64,
    pub minor: i64,
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
}

#[derive(Deserialize, Serialize, Debug, Default, Clone)]
pub struct Throttle {
    pub major: i64,
    pub minor: i64,
    pub rate: u64,
}

#[derive(Deserialize, Serialize, Debug, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Hugepage {
    pub page_size: String,
    pub limit: u64,
}

#[derive(Deserialize, Serialize, Debug, Default, Clone)]
pub struct Network {
    #[serde(rename = "classID")]
    pub class_id: Option<u32>,
    #[serde(default)]
    pub priorities: Vec<Priority>,
}

#[derive(Deserialize, Serialize, Debug, Default, Clone)]
pub struct Priority {
    pub name: String,
    pub priority: u32,
}

/// One rule of the device cgroup (`linux.resources.devices`).
#[derive(Deserialize, Serialize, Debug, Default, Clone)]
pub struct DeviceRule {
    pub allow: bool,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: Option<String>,
}

/// One file to write: the controller whose hierarchy holds it, its name, the value, and the
/// config field it comes from (for errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub controller: &'static str,
    pub file: String,
    pub value: String,
    pub field: &'static str,
}

/// The nodes every container may use whatever its rules say (runc's AllowedDevices):
/// null, zero, full, random, urandom, tty, console, ptmx and the pty slaves.
const DEFAULT_ALLOWED: [&str; 9] = [
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

/// The output list and one push, shared by the v1 and v2 tables.
struct Out<'a>(&'a mut Vec<Setting>);

impl Out<'_> {
    fn set(&mut self, controller: &'static str, file: &str, value: String, field: &'static str) {
        self.0.push(Setting {
            controller,
            file: file.to_owned(),
            value,
            field,
        });
    }
}

impl Resources {
    /// Whether anything is asked at all.
    pub fn is_empty(&self) -> bool {
        self.memory.is_none()
            && self.cpu.is_none()
            && self.pids.is_none()
            && self.block_io.is_none()
            && self.hugepage_limits.is_empty()
            && self.network.is_none()
            && self.unified.is_empty()
            && self.devices.is_empty()
    }

    /// Checks values no file would refuse but the spec rules out.
    pub fn check(&self) -> Result<(), Fatal> {
        if let Some(m) = &self.memory {
            if let (Some(limit), Some(swap)) = (m.limit, m.swap) {
                if limit > 0 && swap > 0 && swap < limit {
                    return Err(Fatal::new(format!(
                        "linux.resources.memory: swap ({swap}) must not be below limit ({limit}): swap is memory plus swap"
                    )));
                }
            }
            if m.swappiness.is_some_and(|s| s > 100) {
                return Err(Fatal::new(
                    "linux.resources.memory.swappiness: must be 0 to 100",
                ));
            }
        }
        if let Some(b) = &self.block_io {
            for w in b.weight.iter().chain(&b.leaf_weight) {
                if !(10..=1000).contains(w) {
                    return Err(Fatal::new(format!(
                        "linux.resources.blockIO: weight {w} is out of range 10 to 1000"
                    )));
                }
            }
        }
        for key in self.unified.keys() {
            if key.contains('/') || key.starts_with('.') || !key.contains('.') {
                return Err(Fatal::new(format!(
                    "linux.resources.unified: '{key}' is not a cgroup file name"
                )));
            }
        }
        Ok(())
    }

    /// The files to write in a hierarchy of `version`, in order.
    pub fn settings(&self, version: Version) -> Result<Vec<Setting>, Fatal> {
        let mut list = Vec::new();
        let mut out = Out(&mut list);
        match version {
            Version::V1 => {
                self.v1_memory(&mut out);
                self.v1_cpu(&mut out);
                self.v1_rest(&mut out);
            }
            Version::V2 => {
                self.v2_memory(&mut out)?;
                self.v2_cpu(&mut out)?;
                self.v2_rest(&mut out)?;
            }
        }
        Ok(list)
    }

    fn v1_memory(&self, out: &mut Out) {
        let Some(m) = &self.memory else { return };
        // The limit before memsw (memsw ≥ limit); cgroup.rs retries in the other order.
        let numbers = [
            ("memory.limit_in_bytes", m.limit, "memory.limit"),
            ("memory.memsw.limit_in_bytes", m.swap, "memory.swap"),
            (
                "memory.soft_limit_in_bytes",
                m.reservation,
                "memory.reservation",
            ),
            ("memory.kmem.limit_in_bytes", m.kernel, "memory.kernel"),
            (
                "memory.kmem.tcp.limit_in_bytes",
                m.kernel_tcp,
                "memory.kernelTCP",
            ),
        ];
        for (file, value, field) in numbers {
            if let Some(v) = value {
                out.set("memory", file, v.to_string(), field);
            }
        }
        if let Some(v) = m.swappiness {
            out.set(
                "memory",
                "memory.swappiness",
                v.to_string(),
                "memory.swappiness",
            );
        }
        if m.disable_oom_killer == Some(true) {
            out.set(
                "memory",
                "memory.oom_control",
                "1".into(),
                "memory.disableOOMKiller",
            );
        }
    }

    fn v1_cpu(&self, out: &mut Out) {
        let Some(c) = &self.cpu else { return };
        let show = |v: Option<u64>| v.map(|v| v.to_string());
        let signed = |v: Option<i64>| v.map(|v| v.to_string());
        // The period before the quota, as runc (a quota is checked against the period).
        let fields = [
            ("cpu.shares", show(c.shares), "cpu.shares"),
            ("cpu.cfs_period_us", show(c.period), "cpu.period"),
            ("cpu.cfs_quota_us", signed(c.quota), "cpu.quota"),
            ("cpu.cfs_burst_us", show(c.burst), "cpu.burst"),
            (
                "cpu.rt_period_us",
                show(c.realtime_period),
                "cpu.realtimePeriod",
            ),
            (
                "cpu.rt_runtime_us",
                signed(c.realtime_runtime),
                "cpu.realtimeRuntime",
            ),
            ("cpu.idle", signed(c.idle), "cpu.idle"),
        ];
        for (file, value, field) in fields {
            if let Some(v) = value {
                out.set("cpu", file, v, field);
            }
        }
        cpuset(c, out);
    }

    fn v1_rest(&self, out: &mut Out) {
        if let Some(p) = &self.pids {
            out.set("pids", "pids.max", pids_value(p.limit), "pids.limit");
        }
        if let Some(b) = &self.block_io {
            if let Some(w) = b.weight {
                out.set("blkio", "blkio.weight", w.to_string(), "blockIO.weight");
            }
            if let Some(w) = b.leaf_weight {
                out.set(
                    "blkio",
                    "blkio.leaf_weight",
                    w.to_string(),
                    "blockIO.leafWeight",
                );
            }
            for d in &b.weight_device {
                let dev = format!("{}:{}", d.major, d.minor);
                if let Some(w) = d.weight {
                    out.set(
                        "blkio",
                        "blkio.weight_device",
                        format!("{dev} {w}"),
                        "blockIO.weightDevice",
                    );
                }
                if let Some(w) = d.leaf_weight {
                    out.set(
                        "blkio",
                        "blkio.leaf_weight_device",
                        format!("{dev} {w}"),
                        "blockIO.weightDevice",
                    );
                }
            }
            for (file, _, list, field) in throttles(b) {
                for t in list {
                    let value = format!("{}:{} {}", t.major, t.minor, t.rate);
                    out.set("blkio", &format!("blkio.{file}"), value, field);
                }
            }
        }
        for h in &self.hugepage_limits {
            let file = format!("hugetlb.{}.limit_in_bytes", h.page_size);
            out.set("hugetlb", &file, h.limit.to_string(), "hugepageLimits");
        }
        if let Some(n) = &self.network {
            if let Some(id) = n.class_id {
                out.set(
                    "net_cls",
                    "net_cls.classid",
                    id.to_string(),
                    "network.classID",
                );
            }
            for p in &n.priorities {
                let value = format!("{} {}", p.name, p.priority);
                out.set(
                    "net_prio",
                    "net_prio.ifpriomap",
                    value,
                    "network.priorities",
                );
            }
        }
        if !self.devices.is_empty() {
            for rule in &self.devices {
                let (file, value) = device_line(rule);
                out.set("devices", file, value, "devices");
            }
            for allowed in DEFAULT_ALLOWED {
                out.set("devices", "devices.allow", allowed.into(), "devices");
            }
        }
    }

    fn v2_memory(&self, out: &mut Out) -> Result<(), Fatal> {
        let Some(m) = &self.memory else {
            return Ok(());
        };
        if m.kernel.is_some() || m.kernel_tcp.is_some() {
            return refuse_v2("memory.kernel");
        }
        if m.disable_oom_killer == Some(true) {
            return refuse_v2("memory.disableOOMKiller");
        }
        if let Some(v) = m.limit {
            out.set("memory", "memory.max", max_or(v), "memory.limit");
        }
        if let Some(v) = m.reservation {
            out.set("memory", "memory.low", max_or(v), "memory.reservation");
        }
        // v2's swap excludes memory: swap.max = (memory+swap) − memory.
        match (m.swap, m.limit) {
            (Some(-1), _) => out.set("memory", "memory.swap.max", "max".into(), "memory.swap"),
            (Some(swap), Some(limit)) if limit > 0 => out.set(
                "memory",
                "memory.swap.max",
                (swap - limit).to_string(),
                "memory.swap",
            ),
            (Some(_), _) => return refuse_v2("memory.swap without memory.limit"),
            (None, _) => {}
        }
        Ok(())
    }

    fn v2_cpu(&self, out: &mut Out) -> Result<(), Fatal> {
        let Some(c) = &self.cpu else { return Ok(()) };
        if c.realtime_period.is_some() || c.realtime_runtime.is_some() {
            return refuse_v2("cpu.realtime*");
        }
        if let Some(s) = c.shares {
            out.set(
                "cpu",
                "cpu.weight",
                weight_of_shares(s).to_string(),
                "cpu.shares",
            );
        }
        if c.quota.is_some() || c.period.is_some() {
            let quota = match c.quota {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".into(),
            };
            let period = c.period.unwrap_or(100_000);
            out.set("cpu", "cpu.max", format!("{quota} {period}"), "cpu.quota");
        }
        if let Some(b) = c.burst {
            out.set("cpu", "cpu.max.burst", b.to_string(), "cpu.burst");
        }
        if let Some(i) = c.idle {
            out.set("cpu", "cpu.idle", i.to_string(), "cpu.idle");
        }
        cpuset(c, out);
        Ok(())
    }

    fn v2_rest(&self, out: &mut Out) -> Result<(), Fatal> {
        if let Some(p) = &self.pids {
            out.set("pids", "pids.max", pids_value(p.limit), "pids.limit");
        }
        if let Some(b) = &self.block_io {
            if let Some(w) = b.weight {
                out.set(
                    "io",
                    "io.weight",
                    io_weight(w).to_string(),
                    "blockIO.weight",
                );
            }
            for (_, key, list, field) in throttles(b) {
                for t in list {
                    let value = format!("{}:{} {key}={}", t.major, t.minor, t.rate);
                    out.set("io", "io.max", value, field);
                }
            }
        }
        for h in &self.hugepage_limits {
            let file = format!("hugetlb.{}.max", h.page_size);
            out.set("hugetlb", &file, h.limit.to_string(), "hugepageLimits");
        }
        if self.network.is_some() {
            return refuse_v2("network");
        }
        for (key, value) in &self.unified {
            out.set(controller_of(key), key, value.clone(), "unified");
        }
        Ok(())
    }
}

fn refuse_v2(field: &str) -> Result<(), Fatal> {
    Err(Fatal::new(format!(
        "linux.resources.{field} has no cgroup v2 file: leave it out on a v2 host"
    )))
}

fn cpuset(c: &Cpu, out: &mut Out) {
    if let Some(v) = &c.cpus {
        out.set("cpuset", "cpuset.cpus", v.clone(), "cpu.cpus");
    }
    if let Some(v) = &c.mems {
        out.set("cpuset", "cpuset.mems", v.clone(), "cpu.mems");
    }
}

type ThrottleRow<'a> = (&'static str, &'static str, &'a Vec<Throttle>, &'static str);

/// The four throttles: v1 file suffix, v2 io.max key, the list, the config field.
fn throttles(b: &BlockIo) -> [ThrottleRow<'_>; 4] {
    [
        (
            "throttle.read_bps_device",
            "rbps",
            &b.throttle_read_bps_device,
            "blockIO.throttleReadBpsDevice",
        ),
        (
            "throttle.write_bps_device",
            "wbps",
            &b.throttle_write_bps_device,
            "blockIO.throttleWriteBpsDevice",
        ),
        (
            "throttle.read_iops_device",
            "riops",
            &b.throttle_read_iops_device,
            "blockIO.throttleReadIOPSDevice",
        ),
        (
            "throttle.write_iops_device",
            "wiops",
            &b.throttle_write_iops_device,
            "blockIO.throttleWriteIOPSDevice",
        ),
    ]
}

/// The controller named by a v2 file's prefix (`memory.high` → memory); `cgroup.*` files
/// belong to the core (no controller).
fn controller_of(file: &str) -> &'static str {
    match file.split('.').next().unwrap_or("") {
        "memory" => "memory",
        "cpu" => "cpu",
        "cpuset" => "cpuset",
        "pids" => "pids",
        "io" => "io",
        "hugetlb" => "hugetlb",
        "rdma" => "rdma",
        "misc" => "misc",
        _ => "",
    }
}

/// pids.max: a positive limit, else no limit (the spec: 0 or -1 is unlimited).
fn pids_value(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".into()
    }
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000), runc's formula.
pub fn weight_of_shares(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// v1 blkio weight (10..1000) to v2 io.weight (1..10000), runc's formula.
fn io_weight(weight: u16) -> u64 {
    1 + (u64::from(weight).saturating_sub(10)) * 9999 / 990
}

/// A v1 device rule: (devices.allow or devices.deny, "TYPE MAJOR:MINOR ACCESS").
fn device_line(rule: &DeviceRule) -> (&'static str, String) {
    let file = if rule.allow {
        "devices.allow"
    } else {
        "devices.deny"
    };
    let num = |n: Option<i64>| match n {
        Some(n) if n >= 0 => n.to_string(),
        _ => "*".into(),
    };
    let kind = rule.kind.as_deref().unwrap_or("a");
    let access = rule
        .access
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    let (major, minor) = (num(rule.major), num(rule.minor));
    (file, format!("{kind} {major}:{minor} {access}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Resources {
        serde_json::from_str(text).unwrap_or_default()
    }

    fn files(r: &Resources, v: Version) -> Vec<(String, String)> {
        r.settings(v)
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s.file, s.value))
            .collect()
    }

    #[test]
    fn memory_and_cpu_go_to_runcs_v1_files() {
        let r = parse(
            r#"{"memory":{"limit":67108864,"reservation":33554432,"swap":134217728},
                "cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0","mems":"0"},
                "pids":{"limit":32}}"#,
        );
        let f = files(&r, Version::V1);
        let has = |file: &str, value: &str| f.iter().any(|(a, b)| a == file && b == value);
        assert!(has("memory.limit_in_bytes", "67108864"));
        assert!(has("memory.soft_limit_in_bytes", "33554432"));
        assert!(has("memory.memsw.limit_in_bytes", "134217728"));
        assert!(has("cpu.shares", "512"));
        assert!(has("cpu.cfs_quota_us", "50000"));
        assert!(has("cpuset.mems", "0"));
        assert!(has("pids.max", "32"));
        let period = f.iter().position(|(a, _)| a == "cpu.cfs_period_us");
        let quota = f.iter().position(|(a, _)| a == "cpu.cfs_quota_us");
        assert!(period < quota, "the period is written before the quota");
    }

    #[test]
    fn v2_converts_swap_shares_and_quota() {
        let r = parse(
            r#"{"memory":{"limit":67108864,"swap":134217728,"reservation":1048576},
                "cpu":{"shares":1024,"quota":50000,"period":100000},"pids":{"limit":-1},
                "unified":{"memory.high":"50000000"}}"#,
        );
        let f = files(&r, Version::V2);
        let has = |file: &str, value: &str| f.iter().any(|(a, b)| a == file && b == value);
        assert!(has("memory.max", "67108864"));
        assert!(has("memory.swap.max", "67108864"));
        assert!(has("memory.low", "1048576"));
        assert!(has("cpu.weight", "39"));
        assert!(has("cpu.max", "50000 100000"));
        assert!(has("pids.max", "max"));
        assert!(has("memory.high", "50000000"));
    }

    #[test]
    fn v2_refuses_what_it_has_no_file_for() {
        for bad in [
            r#"{"memory":{"kernel":1048576}}"#,
            r#"{"cpu":{"realtimeRuntime":1000}}"#,
            r#"{"network":{"classID":1}}"#,
        ] {
            assert!(parse(bad).settings(Version::V2).is_err(), "{bad}");
        }
    }

    #[test]
    fn device_rules_keep_their_order_then_the_defaults() {
        let r = parse(
            r#"{"devices":[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":10,"minor":229,"access":"rw"},
                {"allow":true,"type":"b","major":8,"access":"r"}]}"#,
        );
        let f = files(&r, Version::V1);
        assert_eq!(f[0], ("devices.deny".into(), "a *:* rwm".into()));
        assert_eq!(f[1], ("devices.allow".into(), "c 10:229 rw".into()));
        assert_eq!(f[2], ("devices.allow".into(), "b 8:* r".into()));
        assert!(f.iter().skip(3).all(|(a, _)| a == "devices.allow"));
        assert!(f.iter().any(|(_, b)| b == "c 136:* rwm"));
    }

    #[test]
    fn checks_catch_what_the_spec_rules_out() {
        assert!(parse(r#"{"memory":{"limit":100000000,"swap":1000}}"#)
            .check()
            .is_err());
        assert!(parse(r#"{"blockIO":{"weight":5}}"#).check().is_err());
        assert!(parse(r#"{"unified":{"../x":"1"}}"#).check().is_err());
        assert!(parse(r#"{"memory":{"limit":100000000,"swap":-1}}"#)
            .check()
            .is_ok());
    }

    #[test]
    fn shares_convert_like_runc() {
        assert_eq!(weight_of_shares(2), 1);
        assert_eq!(weight_of_shares(262_144), 10_000);
        assert_eq!(weight_of_shares(1024), 39);
        assert_eq!(io_weight(10), 1);
        assert_eq!(io_weight(1000), 10_000);
    }
}
