//! Rootless unpacking: a layer's whiteouts are char 0:0 nodes, which only a process with
//! CAP_MKNOD in its user namespace may make. Without host root, nsimage first enters a user
//! namespace of its own (the caller as root); files keep the caller as owner on the host, and
//! ids the namespace does not map are squashed (the applier warns).

use anyhow::{Context, Result};

/// Enters a user namespace mapping the caller to root, unless already host root.
pub fn enter_if_needed() -> Result<()> {
    if common::state::is_host_root() || !common::state::in_initial_user_namespace() {
        return Ok(());
    }
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    // Resolve the data directory first: inside, the caller's ids read as root.
    let _ = common::image::Layout::default_root();
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
        .context("unable to create a user namespace to unpack layers in")?;
    std::fs::write("/proc/self/setgroups", "deny")
        .context("unable to write /proc/self/setgroups")?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))
        .context("unable to write the uid map")?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))
        .context("unable to write the gid map")?;
    Ok(())
}
