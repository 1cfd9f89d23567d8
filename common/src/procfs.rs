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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_new_pid_namespace_it_is_getpid() {
        assert_eq!(own_pid(), std::process::id());
    }
}
