//! The limits, as docker names and spells them (`--memory 64m`, `--cpus 0.5`), and the files
//! that set them in a v1 or a v2 hierarchy.

use std::fmt;

use common::cgroupfs::Version;
use serde_json::{json, Value};

/// The CFS period every `--cpus` quota is a share of (docker's: 100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;
/// The smallest memory limit docker accepts.
pub const MIN_MEMORY: u64 = 6 << 20;

/// A size in bytes, written `64m`, `1g`, `512k`, `1048576` (binary units, as docker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl Size {
    /// Parses docker's RAM sizes: a number, optionally with a fraction, then `b`, `k`, `m`,
    /// `g`, `t` (any case, optionally followed by `b` or `ib`).
    pub fn parse(text: &str) -> Result<Size, String> {
        let bad = || format!("{text:?} is not a size: write e.g. 64m, 1g, 512k or bytes");
        let lower = text.trim().to_ascii_lowercase();
        let split = lower
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(lower.len());
        let (number, unit) = lower.split_at(split);
        let unit = unit.trim_start();
        let shift = match unit.trim_end_matches('b').trim_end_matches('i') {
            "" => 0,
            "k" => 10,
            "m" => 20,
            "g" => 30,
            "t" => 40,
            _ => return Err(bad()),
        };
        if number.is_empty() || number.starts_with('.') || number.matches('.').count() > 1 {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        let bytes = value * (1u64 << shift) as f64;
        if !bytes.is_finite() || bytes >= 9.2e18 {
            return Err(format!("{text:?} is too large"));
        }
        Ok(Size(bytes as u64))
    }

    /// `--memory`: at least 6 MiB, as docker.
    pub fn parse_memory(text: &str) -> Result<Size, String> {
        let size = Size::parse(text)?;
        if size.0 < MIN_MEMORY {
            return Err(format!("{text:?} is below the minimum memory limit of 6m"));
        }
        Ok(size)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (shift, unit) in [(30, "g"), (20, "m"), (10, "k")] {
            if b >= 1 << shift && b.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", b >> shift);
            }
        }
        write!(f, "{b}")
    }
}

/// `--memory-swap`: memory plus swap, or -1 for unlimited swap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swap {
    /// No swap limit.
    Unlimited,
    /// Memory plus swap, at most this.
    Total(Size),
}

impl Swap {
    /// Parses `-1` or a size.
    pub fn parse(text: &str) -> Result<Swap, String> {
        if text.trim() == "-1" {
            return Ok(Swap::Unlimited);
        }
        Size::parse(text).map(Swap::Total)
    }
}

/// `--pids-limit`: N processes, or -1 for unlimited.
pub fn parse_pids(text: &str) -> Result<i64, String> {
    match text.trim().parse::<i64>() {
        Ok(-1) => Ok(-1),
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{text:?} is not a process limit: a number from 1 up, or -1 for unlimited"
        )),
    }
}

/// `--cpus`: a share of the CPUs (0.5 is half of one), at least 0.01.
pub fn parse_cpus(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if (0.01..=1024.0).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a number of CPUs: write e.g. 0.5 or 2 (at least 0.01)"
        )),
    }
}

/// `--cpu-weight`: 1 to 10000 (cgroup v2's cpu.weight; 100 is the default).
pub fn parse_weight(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a CPU weight: 1 to 10000 (100 is the default)"
        )),
    }
}

/// `--cpuset`: a CPU list such as `0-2,5`; checked against the online CPUs at run time.
pub fn parse_cpuset(text: &str) -> Result<String, String> {
    let bad = || format!("{text:?} is not a CPU list: write e.g. 0, 0-2 or 0,2");
    if text.is_empty() {
        return Err(bad());
    }
    for part in text.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (Ok(lo), Ok(hi)) = (lo.parse::<u32>(), hi.parse::<u32>()) else {
            return Err(bad());
        };
        if lo > hi {
            return Err(bad());
        }
    }
    Ok(text.to_owned())
}

/// The CPUs of a list (`0-2,5` → 0, 1, 2, 5).
pub fn cpus_of(list: &str) -> Vec<u32> {
    list.trim()
        .split(',')
        .filter_map(|part| {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            Some(lo.parse::<u32>().ok()?..=hi.parse::<u32>().ok()?)
        })
        .flatten()
        .collect()
}

/// Every limit asked for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// `--memory`.
    pub memory: Option<Size>,
    /// `--memory-swap`.
    pub swap: Option<Swap>,
    /// `--pids-limit` (-1: unlimited).
    pub pids: Option<i64>,
    /// `--cpus`.
    pub cpus: Option<f64>,
    /// `--cpu-weight`.
    pub weight: Option<u64>,
    /// `--cpuset`.
    pub cpuset: Option<String>,
}

/// One file to write: in the hierarchy of `controller`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The controller whose hierarchy holds the file.
    pub controller: &'static str,
    /// The file name.
    pub file: &'static str,
    /// What to write.
    pub value: String,
    /// The flag that asked for it (for messages).
    pub flag: &'static str,
}

impl Limits {
    /// Whether any limit is set (without one, cgroupns makes only a namespace).
    pub fn any(&self) -> bool {
        self.memory.is_some()
            || self.swap.is_some()
            || self.pids.is_some()
            || self.cpus.is_some()
            || self.weight.is_some()
            || self.cpuset.is_some()
    }

    /// The combination docker refuses: swap without memory, swap below memory.
    pub fn check(&self) -> Result<(), String> {
        match (self.memory, self.swap) {
            (None, Some(_)) => Err("--memory-swap needs --memory (it is memory plus swap)".into()),
            (Some(m), Some(Swap::Total(t))) if t.0 < m.0 => Err(format!(
                "--memory-swap {t} is below --memory {m}: it is memory plus swap, so at least as large"
            )),
            _ => Ok(()),
        }
    }

    /// The controllers the limits need.
    pub fn controllers(&self) -> Vec<&'static str> {
        let mut all = Vec::new();
        if self.memory.is_some() {
            all.push("memory");
        }
        if self.pids.is_some() {
            all.push("pids");
        }
        if self.cpus.is_some() || self.weight.is_some() {
            all.push("cpu");
        }
        if self.cpuset.is_some() {
            all.push("cpuset");
        }
        all
    }

    /// The files to write, in order, for a hierarchy of `version`. `swap_file` says whether
    /// the host accounts swap (v1 memory.memsw.*, v2 memory.swap.max): without it the swap
    /// setting is left out (there is no swap to bound).
    pub fn settings(&self, version: Version, swap_file: bool) -> Vec<Setting> {
        let v2 = version == Version::V2;
        let mut out = Vec::new();
        let mut set = |controller, file, value: String, flag| {
            out.push(Setting {
                controller,
                file,
                value,
                flag,
            })
        };
        if let Some(memory) = self.memory {
            set(
                "memory",
                if v2 {
                    "memory.max"
                } else {
                    "memory.limit_in_bytes"
                },
                memory.0.to_string(),
                "--memory",
            );
            // Docker: without --memory-swap, as much swap as memory.
            let total = self
                .swap
                .unwrap_or(Swap::Total(Size(memory.0.saturating_mul(2))));
            if swap_file {
                let value = match (total, v2) {
                    (Swap::Unlimited, true) => "max".to_owned(),
                    (Swap::Unlimited, false) => "-1".to_owned(),
                    (Swap::Total(t), true) => (t.0 - memory.0).to_string(),
                    (Swap::Total(t), false) => t.0.to_string(),
                };
                let file = if v2 {
                    "memory.swap.max"
                } else {
                    "memory.memsw.limit_in_bytes"
                };
                set("memory", file, value, "--memory-swap");
            }
        }
        if let Some(pids) = self.pids {
            let value = if pids < 0 {
                "max".to_owned()
            } else {
                pids.to_string()
            };
            set("pids", "pids.max", value, "--pids-limit");
        }
        if let Some(cpus) = self.cpus {
            let quota = ((cpus * CPU_PERIOD_US as f64).round() as u64).max(1000);
            if v2 {
                set(
                    "cpu",
                    "cpu.max",
                    format!("{quota} {CPU_PERIOD_US}"),
                    "--cpus",
                );
            } else {
                set(
                    "cpu",
                    "cpu.cfs_period_us",
                    CPU_PERIOD_US.to_string(),
                    "--cpus",
                );
                set("cpu", "cpu.cfs_quota_us", quota.to_string(), "--cpus");
            }
        }
        if let Some(weight) = self.weight {
            if v2 {
                set("cpu", "cpu.weight", weight.to_string(), "--cpu-weight");
            } else {
                set(
                    "cpu",
                    "cpu.shares",
                    shares_of(weight).to_string(),
                    "--cpu-weight",
                );
            }
        }
        if let Some(cpuset) = &self.cpuset {
            set("cpuset", "cpuset.cpus", cpuset.clone(), "--cpuset");
        }
        out
    }

    /// The limits as a JSON object (the registration's, shown by `nsps`).
    pub fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        if let Some(m) = self.memory {
            map.insert("memory".into(), json!(m.0));
        }
        match self.swap {
            Some(Swap::Total(t)) => {
                map.insert("memory_swap".into(), json!(t.0));
            }
            Some(Swap::Unlimited) => {
                map.insert("memory_swap".into(), json!(-1));
            }
            None => {}
        }
        if let Some(p) = self.pids {
            map.insert("pids".into(), json!(p));
        }
        if let Some(c) = self.cpus {
            map.insert("cpus".into(), json!(c));
        }
        if let Some(w) = self.weight {
            map.insert("cpu_weight".into(), json!(w));
        }
        if let Some(s) = &self.cpuset {
            map.insert("cpuset".into(), json!(s));
        }
        Value::Object(map)
    }
}

/// v1 cpu.shares for a v2 weight, in proportion: each default (weight 100, 1024 shares) is
/// the other's, and only the ratios between siblings matter to the scheduler.
pub fn shares_of(weight: u64) -> u64 {
    (weight * 1024 / 100).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_dockers_units() {
        assert_eq!(Size::parse("64m"), Ok(Size(64 << 20)));
        assert_eq!(Size::parse("1G"), Ok(Size(1 << 30)));
        assert_eq!(Size::parse("512KiB"), Ok(Size(512 << 10)));
        assert_eq!(Size::parse("1.5g"), Ok(Size(3 << 29)));
        assert_eq!(Size::parse("4096"), Ok(Size(4096)));
        assert_eq!(Size::parse("10mb"), Ok(Size(10 << 20)));
        for bad in ["", "m", "abc", "-1", "1.2.3m", "12q", ".5m", "99999999999t"] {
            assert!(Size::parse(bad).is_err(), "{bad}");
        }
        assert!(Size::parse_memory("1m").is_err());
        assert_eq!(Size(64 << 20).to_string(), "64m");
        assert_eq!(Size(1000).to_string(), "1000");
    }

    #[test]
    fn numbers_and_lists_are_checked() {
        assert_eq!(parse_pids("5"), Ok(5));
        assert_eq!(parse_pids("-1"), Ok(-1));
        assert!(parse_pids("0").is_err() && parse_pids("x").is_err());
        assert_eq!(parse_cpus("0.2"), Ok(0.2));
        assert!(
            parse_cpus("0").is_err() && parse_cpus("nan").is_err() && parse_cpus("-1").is_err()
        );
        assert!(parse_weight("0").is_err() && parse_weight("10001").is_err());
        assert_eq!(parse_cpuset("0-1,3"), Ok("0-1,3".into()));
        assert!(
            parse_cpuset("1-0").is_err() && parse_cpuset("a").is_err() && parse_cpuset("").is_err()
        );
        assert_eq!(cpus_of("0-2,5"), vec![0, 1, 2, 5]);
    }

    #[test]
    fn swap_follows_docker() {
        let mut l = Limits {
            swap: Some(Swap::Unlimited),
            ..Limits::default()
        };
        assert!(l.check().is_err());
        l.memory = Some(Size(64 << 20));
        l.swap = Some(Swap::Total(Size(32 << 20)));
        assert!(l.check().is_err());
        l.swap = None;
        let v1 = l.settings(Version::V1, true);
        assert_eq!(v1[1].file, "memory.memsw.limit_in_bytes");
        assert_eq!(v1[1].value, (128u64 << 20).to_string());
        assert_eq!(l.settings(Version::V1, false).len(), 1);
        let v2 = l.settings(Version::V2, true);
        assert_eq!(
            (v2[1].file, v2[1].value.as_str()),
            ("memory.swap.max", "67108864")
        );
    }

    #[test]
    fn v1_and_v2_files() {
        let l = Limits {
            memory: Some(Size(64 << 20)),
            pids: Some(5),
            cpus: Some(0.2),
            weight: Some(100),
            cpuset: Some("0".into()),
            ..Limits::default()
        };
        let files = |v| {
            l.settings(v, false)
                .into_iter()
                .map(|s| format!("{}={}", s.file, s.value))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            files(Version::V2),
            "memory.max=67108864 pids.max=5 cpu.max=20000 100000 cpu.weight=100 cpuset.cpus=0"
        );
        assert_eq!(
            files(Version::V1),
            "memory.limit_in_bytes=67108864 pids.max=5 cpu.cfs_period_us=100000 cpu.cfs_quota_us=20000 cpu.shares=1024 cpuset.cpus=0"
        );
        assert_eq!(shares_of(1), 10);
        assert_eq!(shares_of(10_000), 102_400);
    }
}
