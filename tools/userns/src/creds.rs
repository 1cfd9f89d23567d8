//! Becoming the inner user before the exec: uid/gid 0 inside (or the `--map-user`/`--map-group`
//! ids), so that the next link starts with the namespace's capabilities; with `--keep-caps`
//! and a non-root inner uid, the capabilities are raised to the ambient set so that they
//! survive the exec, as `unshare --keep-caps` does.

use anyhow::Context;
use caps::CapSet;
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};

use common::{debug, Fatal};

/// Whether `/proc/self/setgroups` allows setgroups(2) in this user namespace.
pub fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "allow")
}

/// Whether this process may write any map of a child user namespace directly.
pub fn privileged() -> bool {
    let has = |cap| caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false);
    has(caps::Capability::CAP_SETUID) && has(caps::Capability::CAP_SETGID)
}

/// Switches to the inner ids `uid`/`gid` (all of real, effective and saved).
pub fn become_ids(uid: u32, gid: u32, keep_caps: bool) -> Result<(), Fatal> {
    debug::step(format_args!("become {uid}:{gid}"), || {
        switch(uid, gid, keep_caps && uid != 0)
    })
}

fn switch(uid: u32, gid: u32, keep_caps: bool) -> Result<(), Fatal> {
    if setgroups_allowed() {
        setgroups(&[]).context("unable to clear the supplementary groups")?;
    }
    let gid_ = Gid::from_raw(gid);
    setresgid(gid_, gid_, gid_).map_err(|e| not_mapped(e, "gid", gid))?;
    if keep_caps {
        // Keep the permitted set across the uid change (it would be cleared).
        // SAFETY: PR_SET_KEEPCAPS only sets a flag of this thread.
        let rc = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
        nix::errno::Errno::result(rc).context("unable to keep the capabilities")?;
    }
    let uid_ = Uid::from_raw(uid);
    setresuid(uid_, uid_, uid_).map_err(|e| not_mapped(e, "uid", uid))?;
    if keep_caps {
        raise_ambient()?;
    }
    Ok(())
}

fn not_mapped(e: nix::errno::Errno, what: &str, id: u32) -> Fatal {
    let fatal = Fatal::from(e).context(format!("unable to become {what} {id} inside"));
    if e != nix::errno::Errno::EINVAL {
        return fatal;
    }
    let option = if what == "uid" { "user" } else { "group" };
    fatal.with_hint(format!(
        "{what} {id} is not mapped in this user namespace: map it, or choose another with --map-{option}"
    ))
}

/// Permitted → effective, inheritable and ambient, so that the capabilities survive the exec
/// of a program run by a non-root uid.
fn raise_ambient() -> Result<(), Fatal> {
    let permitted = caps::read(None, CapSet::Permitted)
        .map_err(|e| Fatal::new(format!("unable to read the capabilities: {e}")))?;
    caps::set(None, CapSet::Effective, &permitted)
        .map_err(|e| Fatal::new(format!("unable to set the effective capabilities: {e}")))?;
    caps::set(None, CapSet::Inheritable, &permitted)
        .map_err(|e| Fatal::new(format!("unable to set the inheritable capabilities: {e}")))?;
    for cap in permitted {
        caps::raise(None, CapSet::Ambient, cap)
            .map_err(|e| Fatal::new(format!("unable to raise {cap} to the ambient set: {e}")))?;
    }
    Ok(())
}
