//! This process as the mounted /proc numbers it.
//!
//! After `pidns`, a link runs in a new pid namespace while /proc is still the host's:
//! `getpid()` (2, say) then names another process — or none — in /proc, in the chain's
//! registrations and in leases that others judge by /proc. `/proc/self` is resolved by the
//! /proc mount itself, so it gives the pid every reader of that /proc sees.

/// This process's pid in the pid namespace of the mounted /proc (the host's, before a link
/// mounts a new /proc); `getpid()` when /proc is missing.
pub fn own_pid() -> u32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(std::process::id)
}

/// A capability set of this process from /proc/self/status (`CapEff`, `CapBnd`, ...).
pub fn capabilities(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

const CAP_SYS_ADMIN: u64 = 1 << 21;

/// Whether this process is root with its capabilities cut to a container's: CAP_SYS_ADMIN
/// gone from its bounding set. That is a link running after `mntns` made a new root (and
/// entered the container), whatever the chain before it had; the hint is "put mntns last",
/// not "run as root".
pub fn runs_with_container_capabilities() -> bool {
    nix::unistd::geteuid().is_root()
        && capabilities("CapBnd").is_some_and(|bounding| bounding & CAP_SYS_ADMIN == 0)
}

/// The hint for a link that lacks a privilege because of [`runs_with_container_capabilities`].
pub const PUT_MNTNS_LAST: &str = "this link runs with a container's capabilities: a link after mntns with a new root is inside the container, so put mntns last in the chain (DESIGN.md §2, rule 6)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_new_pid_namespace_it_is_getpid() {
        assert_eq!(own_pid(), std::process::id());
    }

    #[test]
    fn capability_sets_are_read_from_status() {
        assert!(capabilities("CapBnd").is_some());
        assert!(capabilities("CapEff").is_some());
        assert_eq!(capabilities("NoSuchField"), None);
    }
}
