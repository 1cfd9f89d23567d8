//! `linux.devices`: nodes made in the container's /dev by `mntns --device-node` (with their
//! type, numbers, mode and owner), and, as runc, each allowed in the device cgroup when the
//! config has device rules.

use std::ffi::OsString;

use common::Fatal;
use serde::Deserialize;

use crate::resources::DeviceRule;

/// One entry of `linux.devices`.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub major: i64,
    #[serde(default)]
    pub minor: i64,
    pub file_mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// The nodes mntns makes in every container (dev.rs): listed again, they are left to it.
const MADE_BY_MNTNS: [(&str, i64, i64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

fn made_by_mntns(d: &Device) -> bool {
    d.kind == "c"
        && MADE_BY_MNTNS
            .iter()
            .any(|(p, ma, mi)| *p == d.path && *ma == d.major && *mi == d.minor)
}

/// `--device-node` for each device.
pub fn args(argv: &mut Vec<OsString>, devices: &[Device]) -> Result<(), Fatal> {
    for d in devices.iter().filter(|d| !made_by_mntns(d)) {
        if !d.path.starts_with("/dev/") {
            return Err(Fatal::new(format!(
                "linux.devices: {} is not below /dev (nsoci makes device nodes in the container's /dev)",
                d.path
            )));
        }
        if !["c", "b", "u", "p"].contains(&d.kind.as_str()) || d.major < 0 || d.minor < 0 {
            return Err(Fatal::new(format!(
                "linux.devices: {}: type '{}' {}:{} is not a device (c, b, u or p)",
                d.path, d.kind, d.major, d.minor
            )));
        }
        let spec = format!(
            "{}:{}:{}:{}:{:o}:{}:{}",
            d.path,
            d.kind,
            d.major,
            d.minor,
            d.file_mode.unwrap_or(0o666) & 0o7777,
            d.uid.unwrap_or(0),
            d.gid.unwrap_or(0)
        );
        argv.extend(["--device-node".into(), spec.into()]);
    }
    Ok(())
}

/// runc allows every node of linux.devices in the device cgroup (after the config's own
/// rules): the rules to append, when there are rules at all.
pub fn allow_rules(devices: &[Device]) -> Vec<DeviceRule> {
    devices
        .iter()
        .filter(|d| d.kind != "p")
        .map(|d| DeviceRule {
            allow: true,
            kind: Some(if d.kind == "u" {
                "c".into()
            } else {
                d.kind.clone()
            }),
            major: Some(d.major),
            minor: Some(d.minor),
            access: Some("rwm".into()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(path: &str, kind: &str, major: i64, minor: i64) -> Device {
        Device {
            path: path.into(),
            kind: kind.into(),
            major,
            minor,
            file_mode: Some(0o620),
            uid: Some(1),
            gid: None,
        }
    }

    #[test]
    fn devices_become_mntns_specs_and_allow_rules() {
        let mut argv = Vec::new();
        let list = [
            device("/dev/fuse", "c", 10, 229),
            device("/dev/null", "c", 1, 3),
        ];
        assert!(args(&mut argv, &list).is_ok());
        assert_eq!(
            argv,
            vec![
                OsString::from("--device-node"),
                "/dev/fuse:c:10:229:620:1:0".into()
            ]
        );
        let rules = allow_rules(&list[..1]);
        assert_eq!(rules[0].major, Some(10));
        assert!(args(&mut argv, &[device("/etc/x", "c", 1, 1)]).is_err());
        assert!(args(&mut argv, &[device("/dev/x", "q", 1, 1)]).is_err());
    }
}
