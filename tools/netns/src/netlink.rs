//! A small synchronous rtnetlink client (netlink-sys + netlink-packet-route): links, veth
//! pairs, bridges, addresses and routes. No threads, no async runtime.
//!
//! A NETLINK_ROUTE socket stays bound to the network namespace it was created in, so the tool
//! opens one before `unshare(CLONE_NEWNET)` (the host side) and one after (the new namespace).

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, RawFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind,
    InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// `IN6_ADDR_GEN_MODE_NONE`: a link that generates no IPv6 address of its own.
const IN6_ADDR_GEN_MODE_NONE: u8 = 1;

/// The multicast group of link events (`RTNLGRP_LINK`).
const RTNLGRP_LINK: u32 = 1;

/// The messages of one netlink datagram (rtnetlink's and nfnetlink's alike), each with its
/// header, in order. It stops at a length shorter than a header or running past the datagram
/// ([`Messages::truncated`] then says so) and at a tail too short for a header.
pub struct Messages<'a> {
    data: &'a [u8],
    offset: usize,
    truncated: bool,
}

/// The length of a netlink message header.
const HEADER: usize = 16;

impl<'a> Messages<'a> {
    /// The messages of `data`, one received datagram.
    pub fn new(data: &'a [u8]) -> Messages<'a> {
        Messages {
            data,
            offset: 0,
            truncated: false,
        }
    }

    /// Whether the walk stopped at a message whose length does not fit.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.data.get(self.offset..)?;
        if rest.len() < HEADER {
            return None;
        }
        let length = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if length < HEADER || length > rest.len() {
            self.truncated = true;
            self.offset = self.data.len();
            return None;
        }
        // Messages are 4-byte aligned within the datagram.
        self.offset += (length + 3) & !3;
        Some(&rest[..length])
    }
}

/// One rtnetlink socket, bound to the network namespace it was opened in.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Rtnl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtnl").field("seq", &self.seq).finish()
    }
}

/// A link as the tool needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub controller: Option<u32>,
    /// Whether it is a bridge (`IFLA_INFO_KIND` "bridge").
    pub is_bridge: bool,
}

/// An IPv4 address on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    pub ip: Ipv4Addr,
    pub prefix: u8,
}

impl Rtnl {
    /// Opens a socket in the current network namespace (close-on-exec).
    pub fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl {
            socket,
            seq: 0,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Opens a socket that receives the deletion of link `index` and no other event (for the
    /// cleanup watcher): a socket filter drops the rest in the kernel, so that the deletion
    /// of each of N containers' veths wakes its own watcher, not all N.
    pub fn open_link_deletion(index: u32) -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        common::sys::bpf::attach_socket_filter(socket.as_fd(), &deletion_filter(index))?;
        socket.bind_auto()?;
        socket.add_membership(RTNLGRP_LINK)?;
        Ok(Rtnl {
            socket,
            seq: 0,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        Ok(self.seq)
    }

    /// Receives one datagram and decodes every message in it.
    fn receive(&mut self) -> io::Result<Vec<NetlinkMessage<RouteNetlinkMessage>>> {
        self.buf.clear();
        let len = self.socket.recv(&mut self.buf, 0)?;
        let data = &self.buf[..len.min(self.buf.len())];
        let mut messages = Vec::new();
        for bytes in Messages::new(data) {
            match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
                Ok(message) => messages.push(message),
                // An attribute this crate cannot decode: skip the message, and answer the
                // caller's request with an error only if it was the answer it waited for.
                Err(e) if bytes.len() == data.len() => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
                }
                Err(_) => {}
            }
        }
        Ok(messages)
    }

    /// Sends a request and waits for its acknowledgement.
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        let seq = self.send(message, flags | NLM_F_ACK)?;
        loop {
            for reply in self.receive()? {
                if reply.header.sequence_number != seq {
                    continue;
                }
                if let NetlinkPayload::Error(error) = reply.payload {
                    return match error.code {
                        None => Ok(()),
                        Some(_) => Err(error.to_io()),
                    };
                }
            }
        }
    }

    /// Sends a dump request and collects the answers.
    fn dump(&mut self, message: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(message, NLM_F_DUMP)?;
        let mut answers = Vec::new();
        loop {
            for reply in self.receive()? {
                if reply.header.sequence_number != seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(answers),
                            Some(_) => Err(error.to_io()),
                        }
                    }
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    _ => {}
                }
            }
        }
    }

    /// Sends a get request and returns the single answer (None when the kernel says ENODEV).
    fn get_link(&mut self, message: LinkMessage) -> io::Result<Option<Link>> {
        let seq = self.send(RouteNetlinkMessage::GetLink(message), 0)?;
        loop {
            for reply in self.receive()? {
                if reply.header.sequence_number != seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                        return Ok(Some(to_link(&link)))
                    }
                    NetlinkPayload::Error(error) => {
                        let err = error.to_io();
                        return match err.raw_os_error() {
                            Some(libc::ENODEV) => Ok(None),
                            _ if error.code.is_none() => Ok(None),
                            _ => Err(err),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// The link called `name`, if any.
    pub fn link_by_name(&mut self, name: &str) -> io::Result<Option<Link>> {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        self.get_link(message)
    }

    /// The link with index `index`, if any.
    pub fn link_by_index(&mut self, index: u32) -> io::Result<Option<Link>> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        self.get_link(message)
    }

    /// The links attached to the bridge `index` (its ports).
    pub fn ports_of(&mut self, index: u32) -> io::Result<Vec<Link>> {
        let answers = self.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
        Ok(answers
            .iter()
            .filter_map(|a| match a {
                RouteNetlinkMessage::NewLink(link) => Some(to_link(link)),
                _ => None,
            })
            .filter(|l| l.controller == Some(index))
            .collect())
    }

    /// Creates a bridge with a fixed MAC address (so it does not flap as ports come and go).
    pub fn create_bridge(&mut self, name: &str, mac: [u8; 6], mtu: Option<u32>) -> io::Result<()> {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        message
            .attributes
            .push(LinkAttribute::Address(mac.to_vec()));
        if let Some(mtu) = mtu {
            message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Creates a veth pair: `host` on the bridge `controller` in this socket's namespace, and
    /// `peer` directly in the namespace of `peer_ns_fd`.
    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_ns_fd: RawFd,
        controller: u32,
        mtu: Option<u32>,
    ) -> io::Result<()> {
        let mut peer_message = LinkMessage::default();
        peer_message
            .attributes
            .push(LinkAttribute::IfName(peer.to_owned()));
        peer_message
            .attributes
            .push(LinkAttribute::NetNsFd(peer_ns_fd));
        if let Some(mtu) = mtu {
            peer_message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(host.to_owned()));
        message
            .attributes
            .push(LinkAttribute::Controller(controller));
        if let Some(mtu) = mtu {
            message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_message))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Brings a link up (and sets its MTU when given).
    pub fn set_up(&mut self, index: u32, mtu: Option<u32>) -> io::Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        if let Some(mtu) = mtu {
            message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        self.request(RouteNetlinkMessage::NewLink(message), 0)
    }

    /// Brings a bridge port up with hairpin mode on (a container can reach its own
    /// published port through the host); `isolated`: the port talks to no other isolated
    /// port of the bridge (`IFLA_BRPORT_ISOLATED`, Docker's icc=false); `no_ipv6_address`:
    /// the link generates no IPv6 address, link-local included (`IFLA_INET6_ADDR_GEN_MODE`
    /// none; only on a kernel with IPv6, which otherwise refuses the attribute).
    pub fn set_port_up_hairpin(
        &mut self,
        index: u32,
        isolated: bool,
        no_ipv6_address: bool,
    ) -> io::Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        let mut port = vec![InfoBridgePort::HairpinMode(true)];
        if isolated {
            port.push(InfoBridgePort::Isolated(true));
        }
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(port)),
        ]));
        if no_ipv6_address {
            message
                .attributes
                .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                    vec![AfSpecInet6::AddrGenMode(IN6_ADDR_GEN_MODE_NONE)],
                )]));
        }
        self.request(RouteNetlinkMessage::NewLink(message), 0)
    }

    /// Deletes a link (for a veth, both ends go).
    pub fn delete_link(&mut self, index: u32) -> io::Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(message), 0)
    }

    /// Adds an IPv4 address to a link.
    pub fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.prefix_len = prefix;
        message.header.index = index;
        message
            .attributes
            .push(AddressAttribute::Local(IpAddr::V4(ip)));
        message
            .attributes
            .push(AddressAttribute::Address(IpAddr::V4(ip)));
        if prefix < 31 {
            let host_bits = 32 - u32::from(prefix);
            let broadcast = u32::from(ip) | ((1u32 << host_bits) - 1);
            message
                .attributes
                .push(AddressAttribute::Broadcast(Ipv4Addr::from(broadcast)));
        }
        self.request(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Removes an IPv4 address from a link.
    pub fn delete_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.prefix_len = prefix;
        message.header.index = index;
        message
            .attributes
            .push(AddressAttribute::Local(IpAddr::V4(ip)));
        self.request(RouteNetlinkMessage::DelAddress(message), 0)
    }

    /// Every IPv4 address of this namespace.
    pub fn addresses(&mut self) -> io::Result<Vec<Addr>> {
        self.addresses_of(0)
    }

    /// The IPv4 addresses of link `index` (0: of every link), filtered by the kernel
    /// (NETLINK_GET_STRICT_CHK) rather than dumped whole.
    pub fn addresses_of(&mut self, index: u32) -> io::Result<Vec<Addr>> {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.index = index;
        if index != 0 {
            self.socket.set_netlink_get_strict_chk(true)?;
        }
        let answers = self.dump(RouteNetlinkMessage::GetAddress(message));
        if index != 0 {
            self.socket.set_netlink_get_strict_chk(false)?;
        }
        let answers = answers?;
        let mut out = Vec::new();
        for answer in answers {
            if let RouteNetlinkMessage::NewAddress(addr) = answer {
                let ip = addr.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                });
                let ip = ip.or_else(|| {
                    addr.attributes.iter().find_map(|a| match a {
                        AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                        _ => None,
                    })
                });
                if let Some(ip) = ip.filter(|_| index == 0 || addr.header.index == index) {
                    out.push(Addr {
                        index: addr.header.index,
                        ip,
                        prefix: addr.header.prefix_len,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The destinations (network, prefix) of every IPv4 route of every table.
    pub fn route_destinations(&mut self) -> io::Result<Vec<(Ipv4Addr, u8)>> {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        let answers = self.dump(RouteNetlinkMessage::GetRoute(message))?;
        let mut out = Vec::new();
        for answer in answers {
            if let RouteNetlinkMessage::NewRoute(route) = answer {
                if route.header.kind != RouteType::Unicast {
                    continue;
                }
                let prefix = route.header.destination_prefix_length;
                if prefix == 0 {
                    continue; // a default route overlaps everything and nothing
                }
                let dest = route.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
                    _ => None,
                });
                out.push((dest.unwrap_or(Ipv4Addr::UNSPECIFIED), prefix));
            }
        }
        Ok(out)
    }

    /// Adds the default route via `gateway`.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> io::Result<()> {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::Boot;
        message.header.scope = RouteScope::Universe;
        message.header.kind = RouteType::Unicast;
        message
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        self.request(
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Blocks until the kernel announces that link `index` was deleted.
    pub fn wait_link_deleted(&mut self, index: u32) -> io::Result<()> {
        loop {
            let messages = match self.receive() {
                Ok(messages) => messages,
                // Events were lost: the caller checks the link again.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Ok(()),
                Err(e) => return Err(e),
            };
            for message in messages {
                if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) =
                    message.payload
                {
                    if link.header.index == index {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// The classic BPF program that accepts a message only if it is `RTM_DELLINK` of `index`.
/// Absolute loads read big-endian, and netlink headers are in host order: the constants are
/// compared as the load sees them.
fn deletion_filter(index: u32) -> [libc::sock_filter; 6] {
    use common::sys::bpf::{jump, stmt};
    use libc::{BPF_ABS, BPF_H, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    /// `nlmsghdr.nlmsg_type`, then `ifinfomsg.ifi_index` after the 16-byte header.
    const TYPE: u32 = 4;
    const INDEX: u32 = 16 + 4;
    let dellink = u32::from(u16::from_be_bytes(libc::RTM_DELLINK.to_ne_bytes()));
    let index = u32::from_be_bytes(index.to_ne_bytes());
    [
        stmt(BPF_LD | BPF_H | BPF_ABS, TYPE),
        jump(BPF_JMP | BPF_JEQ | BPF_K, dellink, 0, 3),
        stmt(BPF_LD | BPF_W | BPF_ABS, INDEX),
        jump(BPF_JMP | BPF_JEQ | BPF_K, index, 0, 1),
        stmt(BPF_RET | BPF_K, u32::MAX),
        stmt(BPF_RET | BPF_K, 0),
    ]
}

fn to_link(message: &LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        controller: None,
        is_bridge: false,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name.clone_from(name),
            LinkAttribute::Controller(index) => link.controller = Some(*index),
            LinkAttribute::LinkInfo(infos) => {
                link.is_bridge = infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge)));
            }
            _ => {}
        }
    }
    link
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message of `length` bytes (header included) of type `kind`, padded to 4 bytes.
    fn message(length: u32, kind: u16) -> Vec<u8> {
        let mut bytes = length.to_ne_bytes().to_vec();
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.resize(((length as usize) + 3) & !3, 0);
        bytes
    }

    #[test]
    fn walks_aligned_messages_and_stops_at_one_that_does_not_fit() {
        let mut data = message(18, 1);
        data.extend(message(20, 2));
        let walked: Vec<usize> = Messages::new(&data).map(<[u8]>::len).collect();
        assert_eq!(walked, [18, 20]);

        data.extend(message(64, 3)[..20].iter());
        let mut messages = Messages::new(&data);
        assert_eq!(messages.by_ref().count(), 2);
        assert!(messages.truncated());

        let mut short = Messages::new(&[0u8; 10]);
        assert_eq!(short.next(), None);
        assert!(!short.truncated());
    }
}
