//! Rootless unpacking: a layer's whiteouts are char 0:0 nodes, which only a process with
//! CAP_MKNOD in its user namespace may make, and its files' owners are kept only where the
//! namespace maps them. Without host root, nsimage first enters a user namespace of its own:
//! the caller is root there and, when `/etc/subuid` and `/etc/subgid` delegate a range to the
//! caller (mapped by newuidmap/newgidmap, as podman does), ids 1.. are that range, so image
//! ownership is kept; without a range, other owners are squashed to the caller (the applier
//! warns).

use std::process::Command;

use anyhow::{bail, Context, Result};
use nix::unistd::{fork, ForkResult, Gid, Uid};

/// The first `/etc/subuid`-style range of `user` (name or uid): (start, count).
fn range(file: &str, name: Option<&str>, id: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let (who, start, count) = (fields.next()?, fields.next()?, fields.next()?);
        let ours = Some(who) == name || who.parse::<u32>().ok() == Some(id);
        let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
        (ours && count > 0).then_some((start, count.min(65535)))
    })
}

/// Enters a user namespace for unpacking, unless already host root or in a user namespace.
pub fn enter_if_needed() -> Result<()> {
    if common::state::is_host_root() || !common::state::in_initial_user_namespace() {
        return Ok(());
    }
    let (uid, gid) = (Uid::current(), Gid::current());
    // Resolve the data directory first: inside, the caller's ids read as root.
    let _ = common::image::Layout::default_root();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name);
    let ranges = (
        range("/etc/subuid", name.as_deref(), uid.as_raw()),
        range("/etc/subgid", name.as_deref(), uid.as_raw()),
    );
    if let (Some(users), Some(groups)) = ranges {
        match with_range(uid, gid, users, groups) {
            Ok(()) => return Ok(()),
            Err(e) => {
                common::report::warning(format_args!("{e:#}; unpacking with the caller's ids only"))
            }
        }
        return self_map(uid, gid, false);
    }
    self_map(uid, gid, true)
}

fn self_map(uid: Uid, gid: Gid, unshare: bool) -> Result<()> {
    if unshare {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
            .context("unable to create a user namespace to unpack layers in")?;
    }
    std::fs::write("/proc/self/setgroups", "deny")
        .context("unable to write /proc/self/setgroups")?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))
        .context("unable to write the uid map")?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))
        .context("unable to write the gid map")?;
    Ok(())
}

/// Unshares, and has a child still outside run newuidmap/newgidmap on this process; they
/// talk over `common::channel` (the child waits for "unshared", answers whether it mapped).
fn with_range(uid: Uid, gid: Gid, users: (u32, u32), groups: (u32, u32)) -> Result<()> {
    let (ours, theirs) = common::channel::pair().context("unable to make a channel")?;
    let parent = nix::unistd::getpid();
    // SAFETY: nsimage is single-threaded; the child only runs two programs and exits.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            drop(ours);
            let unshared = matches!(theirs.recv::<bool>(), Ok(Some(true)));
            let ids = |first: u32, (start, count): (u32, u32)| {
                [
                    parent.to_string(),
                    "0".into(),
                    first.to_string(),
                    "1".into(),
                    "1".into(),
                    start.to_string(),
                    count.to_string(),
                ]
            };
            let mapped = unshared
                && map("newuidmap", &ids(uid.as_raw(), users))
                && map("newgidmap", &ids(gid.as_raw(), groups));
            let _ = theirs.send(&mapped);
            // SAFETY: _exit ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(theirs);
            let unshared = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER);
            let _ = ours.send(&unshared.is_ok());
            let mapped = matches!(ours.recv::<bool>(), Ok(Some(true)));
            let _ = nix::sys::wait::waitpid(child, None);
            unshared.context("unable to create a user namespace to unpack layers in")?;
            if !mapped {
                bail!("newuidmap/newgidmap could not map the caller's /etc/subuid range");
            }
            Ok(())
        }
    }
}

fn map(program: &str, args: &[String]) -> bool {
    Command::new(program)
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}
