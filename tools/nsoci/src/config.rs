//! The part of an OCI `config.json` (runtime-spec config.md, config-linux.md) nsoci reads.
//! Fields nsoci does not use are ignored by serde; those it cannot honour are refused in
//! chain.rs, so that a container never runs with less isolation than its config asks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::Fatal;
use serde::Deserialize;

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    #[serde(default)]
    pub oci_version: String,
    pub root: Option<Root>,
    pub process: Option<Process>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub linux: Linux,
    #[serde(default)]
    pub hooks: crate::hooks::Hooks,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Root {
    pub path: PathBuf,
    #[serde(default)]
    pub readonly: bool,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    #[serde(default)]
    pub terminal: bool,
    #[serde(default)]
    pub user: User,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub cwd: String,
    pub capabilities: Option<Capabilities>,
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
    #[serde(default)]
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    pub umask: Option<u32>,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
}

#[derive(Deserialize, Debug, Default)]
pub struct Capabilities {
    #[serde(default)]
    pub bounding: Vec<String>,
    #[serde(default)]
    pub effective: Vec<String>,
    #[serde(default)]
    pub permitted: Vec<String>,
    #[serde(default)]
    pub inheritable: Vec<String>,
    #[serde(default)]
    pub ambient: Vec<String>,
}

#[derive(Deserialize, Debug)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Mount {
    pub destination: PathBuf,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub source: Option<PathBuf>,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    #[serde(default)]
    pub namespaces: Vec<NamespaceEntry>,
    #[serde(default)]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(default)]
    pub gid_mappings: Vec<IdMapping>,
    #[serde(default)]
    pub sysctl: BTreeMap<String, String>,
    #[serde(default)]
    pub time_offsets: BTreeMap<String, TimeOffset>,
    #[serde(default)]
    pub masked_paths: Vec<String>,
    #[serde(default)]
    pub readonly_paths: Vec<String>,
    /// Handed to `mntns --seccomp` as it is (mntns compiles the OCI form).
    pub seccomp: Option<serde_json::Value>,
    /// Written into the container's cgroup (resources.rs, cgroup.rs).
    pub resources: Option<crate::resources::Resources>,
    /// Where the container's cgroup goes (cgroup.rs).
    pub cgroups_path: Option<String>,
    /// The propagation of the container's root (`mntns --propagation`).
    pub rootfs_propagation: Option<String>,
    /// Device nodes made in the container's /dev (`mntns --device`).
    #[serde(default)]
    pub devices: Vec<crate::devices::Device>,
}

#[derive(Deserialize, Debug)]
pub struct NamespaceEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: Option<PathBuf>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct IdMapping {
    #[serde(rename = "containerID")]
    pub container_id: u32,
    #[serde(rename = "hostID")]
    pub host_id: u32,
    pub size: u32,
}

#[derive(Deserialize, Debug)]
pub struct TimeOffset {
    #[serde(default)]
    pub secs: i64,
    #[serde(default)]
    pub nanosecs: u32,
}

impl Capabilities {
    /// The capabilities in the bounding, effective and permitted sets alike.
    pub fn granted(&self) -> impl Iterator<Item = &String> {
        self.bounding
            .iter()
            .filter(|c| self.effective.contains(c) && self.permitted.contains(c))
    }
}

/// Reads and checks `BUNDLE/config.json`.
pub fn load(bundle: &Path) -> Result<Config, Fatal> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(|e| {
        Fatal::from(anyhow::Error::from(e)).context(format!("unable to read {}", path.display()))
    })?;
    let config: Config = serde_json::from_slice(&text)
        .map_err(|e| Fatal::new(format!("{} is not a valid OCI config: {e}", path.display())))?;
    check_version(&config.oci_version)?;
    Ok(config)
}

/// Any 1.x version is accepted, as runc does (crun 1.8 refusing 1.3.0 fails whole suites).
fn check_version(version: &str) -> Result<(), Fatal> {
    if version.split('.').next() == Some("1") {
        Ok(())
    } else {
        Err(Fatal::new(format!(
            "unsupported ociVersion '{version}': nsoci runs 1.x configs"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_one_x_version_is_accepted() {
        assert!(check_version("1.0.2").is_ok());
        assert!(check_version("1.3.0").is_ok());
        assert!(check_version("2.0.0").is_err());
        assert!(check_version("").is_err());
    }

    #[test]
    fn a_minimal_config_parses() {
        let c: Config = serde_json::from_str(
            r#"{"ociVersion":"1.0.0","root":{"path":"rootfs"},"process":{"args":["sh"],"cwd":"/"},
                "linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/proc/1/ns/net"}],
                "uidMappings":[{"containerID":0,"hostID":1000,"size":1}]}}"#,
        )
        .unwrap_or_default();
        assert_eq!(c.linux.namespaces.len(), 2);
        assert_eq!(c.linux.uid_mappings[0].host_id, 1000);
        assert_eq!(c.process.map(|p| p.args), Some(vec!["sh".to_string()]));
    }
}
