//! The container's `/etc/resolv.conf`, as Docker and Podman write it.
//!
//! A host that runs a local resolver (systemd-resolved's `nameserver 127.0.0.53`, dnsmasq on
//! 127.0.0.1) names a server in *its* network namespace: a container with a network
//! namespace of its own cannot reach it. Which namespace the container has is what netns
//! handed down in `NSCHAIN_NET` (see common::handdown): without it, the container shares the
//! caller's network namespace and the file is kept as it is. With it, loopback servers are
//! dropped; if none is left, slirp4netns's built-in forwarder (10.0.2.3, which asks the host's
//! servers from the host's namespace) is used, else Docker's defaults (8.8.8.8, 8.8.4.4).
//! `search` and `options` lines are kept.

use std::net::IpAddr;

/// slirp4netns's DNS forwarder.
pub const SLIRP_DNS: &str = "10.0.2.3";
/// Docker's fallback servers (moby libnetwork/resolvconf).
pub const DEFAULT_DNS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// The container's resolv.conf from the host's `text`; `stack` is the handed-down
/// `NSCHAIN_NET` (None: the caller's network namespace).
pub fn container_resolv(text: &str, stack: Option<&str>) -> String {
    let Some(stack) = stack else {
        return text.to_owned();
    };
    let mut out = String::new();
    let mut servers = 0;
    for line in text.lines() {
        if let Some(address) = nameserver(line) {
            if is_loopback(address) {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        let fallback: &[&str] = if stack == "slirp4netns" {
            &[SLIRP_DNS]
        } else {
            &DEFAULT_DNS
        };
        for server in fallback {
            out.push_str("nameserver ");
            out.push_str(server);
            out.push('\n');
        }
    }
    out
}

/// The address of a `nameserver ADDRESS` line.
fn nameserver(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    (words.next()? == "nameserver").then_some(())?;
    words.next()
}

/// 127.0.0.0/8 and ::1 (an IPv6 address may carry a `%zone`).
fn is_loopback(address: &str) -> bool {
    let plain = address.split('%').next().unwrap_or(address);
    plain.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOLVED: &str = "# managed by systemd-resolved\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";

    #[test]
    fn the_callers_network_keeps_the_file() {
        assert_eq!(container_resolv(RESOLVED, None), RESOLVED);
    }

    #[test]
    fn loopback_servers_fall_back_like_docker() {
        let out = container_resolv(RESOLVED, Some("bridge"));
        assert!(!out.contains("127.0.0.53"), "{out}");
        assert!(
            out.contains("nameserver 8.8.8.8\nnameserver 8.8.4.4\n"),
            "{out}"
        );
        assert!(out.contains("options edns0 trust-ad\n") && out.contains("search lan\n"));
        let out = container_resolv(RESOLVED, Some("slirp4netns"));
        assert!(
            out.contains("nameserver 10.0.2.3\n") && !out.contains("8.8.8.8"),
            "{out}"
        );
        let out = container_resolv("nameserver ::1\nnameserver 127.0.1.1\n", Some("pasta"));
        assert_eq!(out, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }

    #[test]
    fn reachable_servers_are_kept_without_a_fallback() {
        let text = "nameserver 127.0.0.1\nnameserver 192.168.1.1\nnameserver fe80::1%eth0\n";
        let out = container_resolv(text, Some("bridge"));
        assert_eq!(out, "nameserver 192.168.1.1\nnameserver fe80::1%eth0\n");
    }
}
