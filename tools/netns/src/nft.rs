//! The firewall side: one nftables table of our own, `ip nschain`, created once and atomically
//! by an `nft -f -` batch. Published ports are map elements keyed by the host port (or host
//! address and port), so each container's elements are added and removed on their own, and a
//! host port can never be claimed twice (`add element` of an existing key fails).
//!
//! - prerouting/output: `fib daddr type local` → DNAT through the maps (clients on other hosts
//!   keep their source address; the host itself reaches 127.0.0.1:HOSTPORT);
//! - postrouting: masquerade 127/8 sources going to a bridge (needs `route_localnet` on the
//!   bridge), DNAT'ed container→container traffic (hairpin), and outbound traffic;
//! - input guard: packets to 127/8 from another interface than lo are dropped unless DNAT'ed
//!   (the CVE-2020-8558 class that `route_localnet` would open otherwise);
//! - isolate: as Docker's networks, nothing is forwarded from one bridge of ours to another
//!   (`same_bridge` holds the pair `"br" . "br"` of each), except through a published port;
//!   nor routed through the host between two `--icc=false` containers (set `isolated`) of one
//!   bridge, whose bridge ports are isolated from each other at layer 2.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::ipam::Cidr;
use crate::netlink::Messages;
use crate::publish::{Proto, Publish};

pub const TABLE: &str = "nschain";

/// The isolation between bridges: a chain of its own, so that a table made by an older
/// version gets it too (flushed and filled in one batch: never twice, never missing).
const ISOLATE: &str = "add set ip nschain same_bridge { type ifname . ifname; }
add set ip nschain isolated { type ipv4_addr; }
add chain ip nschain isolate { type filter hook forward priority 0; policy accept; }
flush chain ip nschain isolate
add rule ip nschain isolate iifname @bridges oifname @bridges iifname . oifname != @same_bridge ct status & dnat == 0 drop
add rule ip nschain isolate iifname . oifname @same_bridge ip saddr @isolated ip daddr @isolated ct status & dnat == 0 drop
";

const BASE: &str = "table ip nschain {
	set bridges { type ifname; }
	set subnets { type ipv4_addr; flags interval; }
	map tcp_ports { type inet_service : ipv4_addr . inet_service; }
	map udp_ports { type inet_service : ipv4_addr . inet_service; }
	map tcp_hostports { type ipv4_addr . inet_service : ipv4_addr . inet_service; }
	map udp_hostports { type ipv4_addr . inet_service : ipv4_addr . inet_service; }
	chain publish {
		dnat ip to ip daddr . tcp dport map @tcp_hostports
		dnat ip to ip daddr . udp dport map @udp_hostports
		dnat ip to tcp dport map @tcp_ports
		dnat ip to udp dport map @udp_ports
	}
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		fib daddr type local jump publish
	}
	chain output {
		type nat hook output priority -100; policy accept;
		fib daddr type local jump publish
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		ip saddr 127.0.0.0/8 oifname @bridges masquerade
		ct status dnat ip saddr @subnets oifname @bridges masquerade
		ip saddr @subnets oifname != @bridges masquerade
	}
	chain guard {
		type filter hook input priority 0; policy accept;
		iifname != \"lo\" ip daddr 127.0.0.0/8 ct status & dnat == 0 drop
	}
}
";

/// Whether the table `ip nschain` exists in this network namespace, asked over nfnetlink
/// (no `nft` process on the fast path).
pub fn table_exists() -> io::Result<bool> {
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFT_MSG_GETTABLE: u16 = 1;
    const NFTA_TABLE_NAME: u16 = 1;
    const NLMSG_ERROR: u16 = 2;
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    // nlmsghdr (16) + nfgenmsg (4) + attribute (4 + "nschain\0" = 8)
    let name = b"nschain\0";
    let attr_len = 4 + name.len();
    let total = 16 + 4 + attr_len;
    let mut msg = Vec::with_capacity(total);
    msg.extend_from_slice(&(total as u32).to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE).to_ne_bytes());
    msg.extend_from_slice(&(libc::NLM_F_REQUEST as u16 | libc::NLM_F_ACK as u16).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]);
    msg.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    msg.extend_from_slice(&NFTA_TABLE_NAME.to_ne_bytes());
    msg.extend_from_slice(name);
    socket.send(&msg, 0)?;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut found = false;
    loop {
        buf.clear();
        let len = socket.recv(&mut buf, 0)?;
        let data = &buf[..len.min(buf.len())];
        let mut messages = Messages::new(data);
        for message in &mut messages {
            let kind = u16::from_ne_bytes([message[4], message[5]]);
            if kind == NLMSG_ERROR && message.len() >= 20 {
                let code = i32::from_ne_bytes([message[16], message[17], message[18], message[19]]);
                return match code {
                    0 => Ok(found),
                    c if -c == libc::ENOENT => Ok(false),
                    c => Err(io::Error::from_raw_os_error(-c)),
                };
            }
            if kind == NFNL_SUBSYS_NFTABLES << 8 {
                found = true; // NFT_MSG_NEWTABLE: the table's description
            }
        }
        if messages.truncated() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "short nfnetlink reply",
            ));
        }
    }
}

/// Runs one `nft -f -` batch (atomic: all of it or nothing) in the current namespace.
pub fn apply(batch: &str) -> anyhow::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("unable to run nft (install nftables)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(batch.as_bytes())
            .context("unable to write to nft")?;
    }
    let out = child.wait_with_output().context("unable to run nft")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| l.starts_with("Error:"))
            .or_else(|| err.lines().next())
            .unwrap_or("")
            .trim()
            .trim_start_matches("Error: ");
        bail!("nft failed: {first}");
    }
    Ok(())
}

/// The batch that creates the table (only sent when it is missing, under the lease lock).
pub fn base_table() -> &'static str {
    BASE
}

/// Adds a bridge and its subnet to the masquerade and isolation sets (and the isolation
/// chain, for a table made by an older version).
pub fn add_bridge(batch: &mut String, bridge: &str, subnet: &Cidr) {
    batch.push_str(ISOLATE);
    let _ = writeln!(batch, "add element ip {TABLE} bridges {{ \"{bridge}\" }}");
    let _ = writeln!(batch, "add element ip {TABLE} subnets {{ {subnet} }}");
    let _ = writeln!(
        batch,
        "add element ip {TABLE} same_bridge {{ \"{bridge}\" . \"{bridge}\" }}"
    );
}

/// The `delete element` lines of a bridge (one per set: each may be missing on its own).
pub fn delete_bridge_lines(bridge: &str, subnet: &Cidr) -> Vec<String> {
    vec![
        format!("delete element ip {TABLE} bridges {{ \"{bridge}\" }}\n"),
        format!("delete element ip {TABLE} subnets {{ {subnet} }}\n"),
        format!("delete element ip {TABLE} same_bridge {{ \"{bridge}\" . \"{bridge}\" }}\n"),
    ]
}

/// The map and key of a published port.
fn key(publish: &Publish) -> (String, String) {
    let proto = match publish.proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    match publish.host_ip {
        Some(host_ip) => (
            format!("{proto}_hostports"),
            format!("{host_ip} . {}", publish.host_port),
        ),
        None => (format!("{proto}_ports"), publish.host_port.to_string()),
    }
}

/// Adds a container's published ports.
pub fn add_ports(batch: &mut String, ports: &[Publish], ip: Ipv4Addr) {
    for publish in ports {
        let (map, key) = key(publish);
        let port = publish.port;
        let _ = writeln!(
            batch,
            "add element ip {TABLE} {map} {{ {key} : {ip} . {port} }}"
        );
    }
}

/// Adds an `--icc=false` container's address to the set `isolated` (and the set and its
/// rule, for a table made by an older version).
pub fn add_isolated(batch: &mut String, ip: Ipv4Addr) {
    batch.push_str(ISOLATE);
    let _ = writeln!(batch, "add element ip {TABLE} isolated {{ {ip} }}");
}

/// The `delete element` lines for a container's published ports, one per port.
pub fn delete_port_lines(ports: &[Publish]) -> Vec<String> {
    ports
        .iter()
        .map(|publish| {
            let (map, key) = key(publish);
            format!("delete element ip {TABLE} {map} {{ {key} }}\n")
        })
        .collect()
}

/// Removes a container's elements (its published ports; its address from `isolated`): one
/// batch, and when it fails (an element already gone), each element on its own so that the
/// others still go.
pub fn delete_ports(ports: &[Publish], isolated: Option<Ipv4Addr>) -> anyhow::Result<()> {
    let mut lines = delete_port_lines(ports);
    lines.extend(isolated.map(|ip| format!("delete element ip {TABLE} isolated {{ {ip} }}\n")));
    if lines.is_empty() {
        return Ok(());
    }
    if apply(&lines.concat()).is_ok() {
        return Ok(());
    }
    if !table_exists().unwrap_or(true) {
        return Ok(());
    }
    for line in &lines {
        let _ = apply(line);
    }
    Ok(())
}

/// The chains of other tables that drop forwarded packets by default (`table ip filter` /
/// `chain FORWARD` of Docker's iptables-nft, a firewalld zone...): an accept in our table
/// cannot override them.
pub fn forward_drop_chains() -> Vec<String> {
    let Ok(out) = Command::new("nft")
        .args(["list", "chains"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    forward_drop_in(&String::from_utf8_lossy(&out.stdout))
}

fn forward_drop_in(listing: &str) -> Vec<String> {
    let mut table = "";
    let mut chain = "";
    let mut found = Vec::new();
    for line in listing.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("table ") {
            table = rest.trim_end_matches('{').trim();
        } else if let Some(rest) = line.strip_prefix("chain ") {
            chain = rest.trim_end_matches('{').trim();
        } else if line.contains("hook forward")
            && line.contains("policy drop")
            && table != format!("ip {TABLE}")
        {
            found.push(format!("{table} {chain}"));
        }
    }
    found
}

/// Deletes the whole table (`gc --prune`).
pub fn delete_table() -> anyhow::Result<()> {
    if table_exists().unwrap_or(true) {
        apply(&format!("delete table ip {TABLE}\n"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_drop_chains_are_found() {
        let listing = "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n\tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\ntable inet fw {\n\tchain fwd {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\n";
        assert_eq!(
            forward_drop_in(listing),
            vec!["ip filter FORWARD".to_owned()]
        );
        assert!(forward_drop_in("").is_empty());
    }

    #[test]
    fn elements_are_keyed_by_host_port() {
        let mut batch = String::new();
        let ports: Vec<Publish> = ["80:8080", "127.0.0.1:81:80/udp"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        add_ports(&mut batch, &ports, Ipv4Addr::new(10, 200, 0, 2));
        assert_eq!(
            batch,
            "add element ip nschain tcp_ports { 80 : 10.200.0.2 . 8080 }\n\
             add element ip nschain udp_hostports { 127.0.0.1 . 81 : 10.200.0.2 . 80 }\n"
        );
        assert_eq!(
            delete_port_lines(&ports).concat(),
            "delete element ip nschain tcp_ports { 80 }\n\
             delete element ip nschain udp_hostports { 127.0.0.1 . 81 }\n"
        );
    }
}
