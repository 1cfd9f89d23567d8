//! The host side of bridge mode: which subnet a bridge has (or gets), creating it with its
//! gateway address, and the host sysctls (`ip_forward`, `route_localnet` on the bridge, IPv6
//! off on a new bridge and router advertisements refused on any).

use std::net::Ipv4Addr;

use anyhow::Context;
use common::{debug, Fatal};

use crate::ipam::Cidr;
use crate::netlink::{Link, Rtnl};

/// Subnets never chosen by default: Docker's docker0 and podman's default network.
const RESERVED: [(Ipv4Addr, u8); 2] = [
    (Ipv4Addr::new(172, 17, 0, 0), 16),
    (Ipv4Addr::new(10, 88, 0, 0), 16),
];

/// A bridge as this run sees it.
#[derive(Debug, Clone)]
pub struct Bridge {
    pub name: String,
    pub subnet: Cidr,
    /// The bridge link, when it exists already.
    pub link: Option<Link>,
    /// Whether the existing bridge lacks its gateway address.
    pub needs_address: bool,
}

impl Bridge {
    pub fn gateway(&self) -> Ipv4Addr {
        self.subnet.gateway()
    }
}

/// Validates a bridge name (an interface name: 1 to 15 bytes, no '/', no whitespace).
pub fn parse_name(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 15
        && text != "."
        && text != ".."
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':' && b != b'"');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "'{text}' is not a valid interface name (1 to 15 printable bytes, no '/', ':' or quotes)"
        ))
    }
}

/// Works out the bridge's subnet without changing anything: the existing bridge's address,
/// else `--subnet`, else the first free /16 of 10.200.0.0 to 10.254.0.0.
pub fn plan(rtnl: &mut Rtnl, name: &str, subnet: Option<Cidr>) -> Result<Bridge, Fatal> {
    let link = rtnl
        .link_by_name(name)
        .with_context(|| format!("unable to look up the bridge {name}"))?;
    if let Some(link) = &link {
        // Checked before anything changes: a veth or `lo` would get the gateway address, then
        // refuse the container's port.
        if !link.is_bridge {
            return Err(Fatal::new(format!("{name} is not a bridge")).with_hint(
                "name a bridge (ip link show type bridge), or a new name for netns to create",
            ));
        }
        // The common case: the bridge exists with its gateway; only its addresses are read.
        let own = rtnl
            .addresses_of(link.index)
            .context("unable to list the bridge's addresses")?;
        if let Some(a) = own.iter().find(|a| a.index == link.index && a.prefix <= 30) {
            let cidr = Cidr::containing(a.ip, a.prefix);
            if a.ip == cidr.gateway() && subnet.is_none_or(|s| s == cidr) {
                return Ok(Bridge {
                    name: name.to_owned(),
                    subnet: cidr,
                    link: Some(link.clone()),
                    needs_address: false,
                });
            }
        }
    }
    let addresses = rtnl
        .addresses()
        .context("unable to list the host addresses")?;
    if let Some(link) = link {
        let existing = addresses
            .iter()
            .find(|a| a.index == link.index && a.prefix <= 30)
            .map(|a| (Cidr::containing(a.ip, a.prefix), a.ip));
        return match (existing, subnet) {
            (Some((cidr, gateway)), wanted) => {
                if let Some(wanted) = wanted {
                    if wanted != cidr {
                        return Err(Fatal::new(format!(
                            "the bridge {name} exists with subnet {cidr}, not {wanted}"
                        ))
                        .with_hint(format!(
                            "omit --subnet, or use another bridge: --bridge=NAME --subnet {wanted}"
                        )));
                    }
                }
                if gateway != cidr.gateway() {
                    return Err(Fatal::new(format!(
                        "the bridge {name} has address {gateway}/{}, expected the gateway {}",
                        cidr.prefix,
                        cidr.gateway()
                    )));
                }
                Ok(Bridge {
                    name: name.to_owned(),
                    subnet: cidr,
                    link: Some(link),
                    needs_address: false,
                })
            }
            (None, wanted) => {
                let subnet = match wanted {
                    Some(s) => check_free(rtnl, s, &addresses)?,
                    None => default_subnet(rtnl, &addresses)?,
                };
                Ok(Bridge {
                    name: name.to_owned(),
                    subnet,
                    link: Some(link),
                    needs_address: true,
                })
            }
        };
    }
    let subnet = match subnet {
        Some(s) => check_free(rtnl, s, &addresses)?,
        None => default_subnet(rtnl, &addresses)?,
    };
    Ok(Bridge {
        name: name.to_owned(),
        subnet,
        link: None,
        needs_address: false,
    })
}

fn used_networks(rtnl: &mut Rtnl, addresses: &[crate::netlink::Addr]) -> Result<Vec<Cidr>, Fatal> {
    let mut used: Vec<Cidr> = rtnl
        .route_destinations()
        .context("unable to list the host routes")?
        .into_iter()
        .filter(|(ip, _)| !ip.is_loopback())
        .map(|(ip, prefix)| Cidr::containing(ip, prefix))
        .collect();
    used.extend(
        addresses
            .iter()
            .filter(|a| !a.ip.is_loopback())
            .map(|a| Cidr::containing(a.ip, a.prefix)),
    );
    Ok(used)
}

fn check_free(
    rtnl: &mut Rtnl,
    subnet: Cidr,
    addresses: &[crate::netlink::Addr],
) -> Result<Cidr, Fatal> {
    if let Some(clash) = used_networks(rtnl, addresses)?
        .into_iter()
        .find(|used| used.overlaps(&subnet))
    {
        return Err(Fatal::new(format!(
            "the subnet {subnet} overlaps the host's route to {clash}"
        ))
        .with_hint("choose a --subnet that no host route or address uses"));
    }
    Ok(subnet)
}

fn default_subnet(rtnl: &mut Rtnl, addresses: &[crate::netlink::Addr]) -> Result<Cidr, Fatal> {
    let used = used_networks(rtnl, addresses)?;
    let reserved: Vec<Cidr> = RESERVED
        .iter()
        .map(|(ip, prefix)| Cidr::containing(*ip, *prefix))
        .collect();
    (200..=254u8)
        .map(|octet| Cidr::containing(Ipv4Addr::new(10, octet, 0, 0), 16))
        .find(|c| !used.iter().chain(&reserved).any(|u| u.overlaps(c)))
        .ok_or_else(|| {
            Fatal::new("no free /16 between 10.200.0.0 and 10.254.0.0 for the bridge")
                .with_hint("give one with --subnet CIDR")
        })
}

/// A locally administered MAC address derived from the bridge's subnet (stable, so the
/// bridge's address does not flap as ports come and go).
fn bridge_mac(subnet: &Cidr) -> [u8; 6] {
    let o = subnet.gateway().octets();
    [0x02, 0x6e, o[0], o[1], o[2], o[3]]
}

/// What [`ensure`] changed on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ensured {
    /// The bridge was created.
    pub created: bool,
    /// The gateway address was added to a bridge that existed without it.
    pub address_added: bool,
}

/// Creates the bridge if missing (IPv6 off, with its gateway address, up, `route_localnet`
/// on), or adds the gateway address to an existing one (which refuses router advertisements
/// from now on).
pub fn ensure(rtnl: &mut Rtnl, bridge: &mut Bridge, mtu: Option<u32>) -> Result<Ensured, Fatal> {
    let name = bridge.name.clone();
    let created = bridge.link.is_none();
    if created {
        debug::step(format_args!("create bridge {name}"), || {
            rtnl.create_bridge(&name, bridge_mac(&bridge.subnet), mtu)
        })
        .with_context(|| format!("unable to create the bridge {name}"))?;
        let link = rtnl
            .link_by_name(&name)
            .context("unable to look up the new bridge")?
            .ok_or_else(|| Fatal::new(format!("the bridge {name} vanished after its creation")))?;
        bridge.link = Some(link);
        crate::ipv6::disable(&name)?;
    } else {
        crate::ipv6::refuse_ra(&name)?;
    }
    let index = bridge.link.as_ref().map(|l| l.index).unwrap_or(0);
    let address_added = !created && bridge.needs_address;
    if created || bridge.needs_address {
        let gateway = bridge.gateway();
        rtnl.add_address(index, gateway, bridge.subnet.prefix)
            .with_context(|| format!("unable to add {gateway} to the bridge {name}"))?;
        bridge.needs_address = false;
    }
    if created {
        rtnl.set_up(index, None)
            .with_context(|| format!("unable to bring the bridge {name} up"))?;
        write_sysctl(&format!("net/ipv4/conf/{name}/route_localnet"), "1")?;
    }
    Ok(Ensured {
        created,
        address_added,
    })
}

/// Turns IPv4 forwarding on in the current (host) namespace, if it is off.
pub fn enable_forwarding() -> Result<(), Fatal> {
    let current = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    if current.trim() != "1" {
        write_sysctl("net/ipv4/ip_forward", "1")?;
    }
    Ok(())
}

/// Writes a sysctl of the current network namespace.
pub fn write_sysctl(key: &str, value: &str) -> Result<(), Fatal> {
    let path = format!("/proc/sys/{key}");
    debug::step(format_args!("sysctl {key}={value}"), || {
        std::fs::write(&path, value)
    })
    .with_context(|| format!("unable to write {path}"))
    .map_err(Fatal::from)
}

/// Fails unless this process can administer the network namespace it is in (CAP_NET_ADMIN in
/// the user namespace that owns it).
pub fn check_privilege() -> Result<(), Fatal> {
    let owned = owns_current_netns().unwrap_or(false);
    let cap = caps_net_admin();
    // The hint names the real cause: caps cut by a new root, no root at all, or a user
    // namespace between the host's network and this link.
    let hint = if common::procfs::runs_with_container_capabilities() {
        common::procfs::PUT_MNTNS_LAST
    } else if common::state::in_initial_user_namespace() {
        "--bridge changes the host's network: run it as root, or rootless use --slirp4netns \
         after userns (DESIGN.md §2, rule 5)"
    } else {
        "--bridge needs CAP_NET_ADMIN in the host network namespace: run netns before \
         userns, or use --slirp4netns (DESIGN.md §2, rule 5)"
    };
    if !owned || !cap {
        bail_fatal(
            "--bridge needs privileges over the host network namespace",
            hint,
        )?;
    }
    Ok(())
}

fn bail_fatal(message: &str, hint: &str) -> Result<(), Fatal> {
    Err(Fatal::new(message).with_hint(hint))
}

fn caps_net_admin() -> bool {
    // CAP_NET_ADMIN is bit 12.
    common::procfs::capabilities("CapEff").is_some_and(|caps| caps & (1 << 12) != 0)
}

// NS_GET_USERNS: _IO(0xb7, 0x1).
nix::ioctl_none!(ns_get_userns, 0xb7, 0x1);

/// Whether the current network namespace is owned by the current user namespace.
fn owns_current_netns() -> anyhow::Result<bool> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::MetadataExt;
    let net = std::fs::File::open("/proc/self/ns/net")?;
    // SAFETY: NS_GET_USERNS takes no argument and returns a new fd (or -1).
    let fd = unsafe { ns_get_userns(net.as_raw_fd()) }?;
    // SAFETY: the ioctl returned a new descriptor that nothing else owns.
    let owner = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mine = std::fs::metadata("/proc/self/ns/user")?;
    let owner_meta = owner.metadata()?;
    if owner_meta.ino() != mine.ino() || owner_meta.dev() != mine.dev() {
        return Ok(false);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names() {
        assert!(parse_name("nschain0").is_ok());
        assert!(parse_name("br-web_1.x").is_ok());
        for bad in [
            "",
            "a/b",
            "a b",
            "0123456789abcdef",
            ".",
            "..",
            "a:b",
            "a\"b",
        ] {
            assert!(parse_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn macs_are_local_and_unicast() {
        let mac = bridge_mac(&"10.200.0.0/16".parse().unwrap());
        assert_eq!(mac[0] & 0x03, 0x02);
        assert_eq!(mac[2..], [10, 200, 0, 1]);
    }
}
