//! IPv6 stays off on the links bridge mode makes: the bridge, the host's veth ends and the
//! container's eth0. The tool gives out no IPv6 addresses, so the only router advertisements on
//! a bridge come from containers: one sent to ff02::1 would give the host's bridge, and every
//! container on it, an address and a default route of the attacker's choice (the class of
//! Docker's CVE-2020-13401). `accept_ra=0` refuses them; `disable_ipv6=1` drops IPv6 on the
//! link altogether (no link-local address, nothing received).
//!
//! What it costs at scale decides how each link gets there. A write of a link's
//! `disable_ipv6` takes the global rtnl lock by `rtnl_trylock` and restarts the system call
//! while another start holds it, and each /proc/sys/net path component is looked up among one
//! cached entry per network namespace (O(N) per open). So eth0 is born with IPv6 off: the new
//! namespace's `default` is set before the veth exists (no rtnl, no read first). The host's
//! veth end is a bridge port (the bridge takes every frame it receives, its own IPv6 sees
//! none): it gets no address through netlink (`IFLA_INET6_ADDR_GEN_MODE` none, in the message
//! that brings it up) and refuses router advertisements should it ever leave the bridge.

use std::io::ErrorKind;

use common::{debug, Fatal};

use crate::sysctl::NetDir;

/// Turns IPv6 off on `link` of the current network namespace, refusing router advertisements
/// first (should IPv6 be turned on again later). Write it before the link is up, so that it
/// never gets a link-local address. A kernel without IPv6 has nothing to turn off.
pub fn disable(link: &str) -> Result<(), Fatal> {
    refuse_ra(link)?;
    write(link, "disable_ipv6", "1")
}

/// Links made from now on in the current (new) network namespace (`net`: its /proc/sys/net)
/// are born with IPv6 off and refusing router advertisements. Links that exist already (`lo`)
/// keep theirs. Returns whether the kernel has IPv6 (learnt from the first lookup: one more
/// /proc/sys lookup per start would cost O(N) again).
pub fn off_for_new_links(net: &NetDir) -> Result<bool, Fatal> {
    let default = match net.sub("ipv6/conf/default") {
        Ok(dir) => dir,
        Err(e) if e.kind() == ErrorKind::NotFound && !ipv6_present() => return Ok(false),
        Err(e) => {
            return Err(Fatal::from(e)
                .context("unable to open /proc/sys/net/ipv6/conf/default (IPv6 off on eth0)"))
        }
    };
    for (key, value) in [("accept_ra", "0"), ("disable_ipv6", "1")] {
        let path = format!("/proc/sys/net/ipv6/conf/default/{key}");
        debug::step(format_args!("sysctl {path}={value}"), || {
            default.write(key, value)
        })
        .map_err(|e| {
            Fatal::from(e).context(format!(
                "unable to write {path} (IPv6 off on eth0: no router advertisement from a container may configure it)"
            ))
        })?;
    }
    Ok(true)
}

/// Makes a new link refuse router advertisements (no read first: a link just made has the
/// default, 1).
pub fn refuse_ra_new(link: &str) -> Result<(), Fatal> {
    write(link, "accept_ra", "0")
}

/// Makes `link` refuse router advertisements, unless it already does (an existing bridge: its
/// other IPv6 settings are its owner's).
pub fn refuse_ra(link: &str) -> Result<(), Fatal> {
    let path = format!("/proc/sys/net/ipv6/conf/{link}/accept_ra");
    match std::fs::read_to_string(&path) {
        Ok(value) if value.trim() == "0" => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound && !ipv6_present() => Ok(()),
        _ => write(link, "accept_ra", "0"),
    }
}

fn write(link: &str, key: &str, value: &str) -> Result<(), Fatal> {
    let path = format!("/proc/sys/net/ipv6/conf/{link}/{key}");
    match debug::step(format_args!("sysctl {path}={value}"), || {
        std::fs::write(&path, value)
    }) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound && !ipv6_present() => Ok(()),
        Err(e) => Err(Fatal::from(e).context(format!(
            "unable to write {path} (IPv6 off on {link}: no router advertisement from a container may configure it)"
        ))),
    }
}

/// Whether this kernel has IPv6 (not built without it, nor booted with `ipv6.disable=1`).
fn ipv6_present() -> bool {
    std::path::Path::new("/proc/sys/net/ipv6/conf/all").exists()
}
