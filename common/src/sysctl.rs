//! Writing a namespaced sysctl: `ipcns --sysctl` and `netns --sysctl` set keys of the namespace
//! they just made, through /proc/sys (the current namespace's view of it).

use anyhow::Context;

use crate::{debug, Fatal};

/// Writes `value` to sysctl `key` (`kernel.shmmax`, `net.ipv4.ping_group_range`).
pub fn write(key: &str, value: &str) -> Result<(), Fatal> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    debug::step(format_args!("sysctl {key}={value}"), || {
        std::fs::write(&path, value)
    })
    .with_context(|| format!("unable to set {key} to {value}"))
    .map_err(Fatal::from)
}
