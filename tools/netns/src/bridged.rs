//! Bridge mode, step by step. Every check a user can fail (address, subnet, ports) comes
//! before the first change of the host; a failure after it undoes what was done.
//!
//! ```text
//! host netlink socket, global lock; with --ip or -p: collect dead leases, check them
//! plan the bridge's subnet; claim the address (exclusive creation); check the ports
//! bridge (if missing), ip_forward, nft table and bridge elements if missing; unlock
//! nft port elements; fork the cleanup watcher; unshare (+ pin)
//! veth: host end on the bridge, peer created as eth0 directly in the new namespace
//! IPv6 off for eth0 (the new namespace's default, before the veth); RAs refused on the host
//! end (back in the host namespace for it), which comes up without an IPv6 address
//! inside: lo, eth0 address + up, default route; lease completed; unlock; exec
//! ```

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use anyhow::Context;
use common::link::Link;
use common::ns::Namespace;
use common::{debug, Fatal, Hint, Next};
use serde_json::{json, Map};

use crate::bridge::{self, Bridge};
use crate::cleanup::{self, Watcher};
use crate::ipam::{self, Lease, Store};
use crate::netlink::Rtnl;
use crate::nft;
use crate::publish::{Proto, Publish};
use crate::Args;

/// The container's interface name.
const PEER: &str = "eth0";

pub fn run(args: Args, bridge_name: &str, cx: &mut common::Context) -> Result<Next, Fatal> {
    let link = Link::prepare(cx, Namespace::Net, &args.ns)?;
    bridge::check_privilege()?;
    let mut host = Rtnl::open().context("unable to open a netlink socket")?;
    let host_ns =
        File::open("/proc/self/ns/net").context("unable to open the host network namespace")?;
    let (store, mut br, ready) = lock_unless_ready(&args, &mut host, bridge_name)?;
    let mut lease = Lease {
        ip: br.gateway(),
        bridge: br.name.clone(),
        pid: common::procfs::own_pid(),
        netns: 0,
        veth: String::new(),
        ifindex: 0,
        ports: args.publish.clone(),
        isolated: !args.icc,
    };
    let (mut claim, held) = claim_and_hold(&args, &store, &mut host, &br, &mut lease)?;
    let mut undo = Undo {
        entered: false,
        ports: false,
        veth: None,
    };
    let bridged = match ready {
        Some(index) => bridge::enable_forwarding().map(|()| index),
        None => prepare_bridge(&args, &mut host, &store, &mut br),
    };
    let bridge_index = match bridged {
        Ok(index) => index,
        Err(error) => {
            undo.run(&mut host, &host_ns, &store, &lease);
            return Err(error);
        }
    };
    let store = store.unlock(); // the lease is claimed, the bridge is ready
    let ip = lease.ip;
    let watcher = match start_watcher(&args, cx, &link, held, claim, &mut lease) {
        Ok((watcher, kept)) => {
            claim = kept;
            watcher
        }
        Err(error) => {
            undo.run(&mut host, &host_ns, &store, &lease);
            return Err(error);
        }
    };
    let result = setup(
        &args,
        &link,
        &mut host,
        &host_ns,
        &store,
        &br,
        bridge_index,
        &mut lease,
        &mut undo,
        watcher,
    );
    let watcher = match result {
        Ok(watcher) => watcher,
        Err(error) => {
            undo.run(&mut host, &host_ns, &store, &lease);
            return Err(error);
        }
    };
    drop(claim); // the lease is complete and its veth exists
    watcher.go(&lease)?;
    let mut extra = Map::new();
    extra.insert("mode".into(), json!("bridge"));
    extra.insert("bridge".into(), json!(br.name));
    extra.insert("subnet".into(), json!(br.subnet.to_string()));
    extra.insert(
        "address".into(),
        json!(format!("{ip}/{}", br.subnet.prefix)),
    );
    extra.insert("gateway".into(), json!(br.gateway().to_string()));
    extra.insert("veth".into(), json!(lease.veth));
    extra.insert("peer".into(), json!(PEER));
    extra.insert(
        "ports".into(),
        json!(lease
            .ports
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()),
    );
    link.finish(common::procfs::own_pid(), extra)?;
    cx.handdown().net = common::handdown::Slot::Made("bridge".to_owned());
    crate::own_sys::exec(args.command.command, cx)
}

/// The lease store, the bridge's plan and, when the bridge is ready, its ifindex.
///
/// The global lock is taken only for what needs it: a bridge, its record or the nft table to
/// make, or `--ip`/`-p` (checked against every lease). A start on a ready bridge claims its
/// address without it; the veth and the rest of the setup always run unlocked, the lease
/// protected by its claim.
fn lock_unless_ready(
    args: &Args,
    host: &mut Rtnl,
    name: &str,
) -> Result<(Store, Bridge, Option<u32>), Fatal> {
    let dir = cleanup::state_dir();
    let plan =
        |host: &mut Rtnl| debug::step("plan bridge", || bridge::plan(host, name, args.subnet));
    if args.ip.is_none() && args.publish.is_empty() {
        let br = plan(host)?;
        let store = Store::open(&dir).fatal_context("unable to open the lease directory")?;
        if let Some(index) = ready_bridge(&store, &br)? {
            return Ok((store, br, Some(index)));
        }
    }
    let store = debug::step("lock leases", || Store::lock(&dir))
        .fatal_context("unable to lock the lease directory")?;
    // Planned again under the lock: another start may have made the bridge meanwhile.
    let br = plan(host)?;
    Ok((store, br, None))
}

/// The bridge's ifindex if nothing is left to do to it: it exists with its gateway address,
/// netns recorded it, and the nft table exists (then [`prepare_bridge`] would change nothing).
fn ready_bridge(store: &Store, br: &Bridge) -> Result<Option<u32>, Fatal> {
    let Some(link) = br.link.as_ref().filter(|_| !br.needs_address) else {
        return Ok(None);
    };
    if store
        .bridge_record(&br.name)
        .is_none_or(|r| r.ifindex != link.index)
    {
        return Ok(None);
    }
    let exists =
        debug::step("check nft table", nft::table_exists).context("unable to query nftables")?;
    Ok(exists.then_some(link.index))
}

/// The address (claimed) and the host ports (held), checked against every lease when asked
/// for explicitly (`--ip`, `-p`: dead leases collected first, a dying container waited for);
/// otherwise the next address that this start creates the lease of first.
fn claim_and_hold(
    args: &Args,
    store: &Store,
    host: &mut Rtnl,
    br: &Bridge,
    lease: &mut Lease,
) -> Result<(ipam::Claim, Vec<OwnedFd>), Fatal> {
    if args.ip.is_none() && args.publish.is_empty() {
        return Ok((claim_next(store, host, br, lease)?, Vec::new()));
    }
    let live = debug::step("collect dead leases", || cleanup::collect(store, host))?;
    // A container whose command just returned may still hold what this one asks for, for
    // the tens of milliseconds the kernel takes to tear its namespace down.
    let (live, released) = debug::step("settle leases", || {
        cleanup::settle(store, host, live, |l| {
            (l.bridge == br.name && Some(l.ip) == args.ip)
                || l.ports
                    .iter()
                    .any(|q| args.publish.iter().any(|p| q.clashes_with(p)))
        })
    })?;
    let claim = match args.ip {
        Some(ip) => {
            check_wanted(br, &live, ip)?;
            lease.ip = ip;
            lease.veth = ipam::veth_name(ip);
            store
                .claim(lease)
                .fatal_context(format!("unable to lease {ip}"))?
                .ok_or_else(|| in_use(ip, None))?
        }
        None => claim_next(store, host, br, lease)?,
    };
    match check_ports(&args.publish, &live, &released) {
        Ok(held) => Ok((claim, held)),
        Err(error) => {
            let _ = store.remove(lease);
            Err(error)
        }
    }
}

/// Claims the next free address after the last one given (round robin). Only when none is
/// free are the dead leases collected (under the global lock, which the caller holds), once.
fn claim_next(
    store: &Store,
    host: &mut Rtnl,
    br: &Bridge,
    lease: &mut Lease,
) -> Result<ipam::Claim, Fatal> {
    for collected in [false, true] {
        if collected {
            let locked = store.lock_if_unlocked()?;
            debug::step("collect dead leases", || {
                cleanup::collect(locked.as_ref().unwrap_or(store), host)
            })?;
        }
        for ip in ipam::candidates(&br.subnet, store.last(&br.name)) {
            lease.ip = ip;
            lease.veth = ipam::veth_name(ip);
            let claimed = store
                .claim(lease)
                .fatal_context(format!("unable to lease {ip}"))?;
            if let Some(claim) = claimed {
                return Ok(claim);
            }
        }
    }
    let taken = store.leases(&br.name).map(|l| l.len()).unwrap_or(0);
    Err(Fatal::new(format!(
        "the subnet {} of the bridge {} is exhausted ({taken} containers)",
        br.subnet, br.name,
    ))
    .with_hint("stop a container, run `netns gc`, or use another bridge with a larger --subnet"))
}

/// The bridge (created if missing), forwarding, its record and its nft table and elements
/// (once per bridge), under the global lock; its ifindex.
fn prepare_bridge(
    args: &Args,
    host: &mut Rtnl,
    store: &Store,
    br: &mut Bridge,
) -> Result<u32, Fatal> {
    let ensured = bridge::ensure(host, br, args.mtu)?;
    bridge::enable_forwarding()?;
    let bridge_index = br.link.as_ref().map(|l| l.index).unwrap_or(0);
    let adopted = record_bridge(store, br, bridge_index, ensured)?;
    let exists =
        debug::step("check nft table", nft::table_exists).context("unable to query nftables")?;
    let mut batch = String::new();
    if !exists {
        batch.push_str(nft::base_table());
    }
    if adopted || !exists {
        nft::add_bridge(&mut batch, &br.name, &br.subnet);
    }
    if !batch.is_empty() {
        debug::step("nft bridge", || nft::apply(&batch))
            .context("unable to set up the nft table ip nschain")?;
    }
    if !exists {
        for chain in nft::forward_drop_chains() {
            common::report::warning(format_args!(
                "the nft chain '{chain}' drops forwarded packets by default: the containers on {} may get no traffic (accept iifname/oifname {} there; with Docker, in DOCKER-USER)",
                br.name, br.name
            ));
        }
    }
    Ok(bridge_index)
}

/// Records what netns did to the bridge (once per bridge, under the lease lock), so that
/// `gc --prune` undoes only that. Returns whether the bridge is new to netns (its nft
/// elements are to be added).
fn record_bridge(
    store: &Store,
    br: &Bridge,
    index: u32,
    ensured: bridge::Ensured,
) -> Result<bool, Fatal> {
    let known = store.bridge_record(&br.name).filter(|r| r.ifindex == index);
    if known.is_some() && !ensured.address_added {
        return Ok(false);
    }
    let record = ipam::BridgeRecord {
        ifindex: index,
        created: ensured.created || known.as_ref().is_some_and(|r| r.created),
        address_added: ensured.address_added,
        subnet: br.subnet.to_string(),
    };
    store
        .record_bridge(&br.name, &record)
        .fatal_context(format!("unable to record the bridge {}", br.name))?;
    Ok(known.is_none())
}

/// Who releases the lease once the container is gone. Before a `pidns`, this link forks the
/// chain's supervisor (common::sup): it keeps the held ports, waits for the container (the
/// init pidns hands it) and then starts the watcher; this process goes on as the child.
/// Otherwise the watcher is spawned now, detached. Returns the claim (dropped in the
/// supervisor, whose copy must not keep the lease "in setup").
fn start_watcher<C>(
    args: &Args,
    cx: &mut common::Context,
    link: &Link,
    held: Vec<OwnedFd>,
    claim: C,
    lease: &mut Lease,
) -> Result<(Watcher, C), Fatal> {
    let before_pidns = args
        .command
        .command
        .iter()
        .any(|w| std::path::Path::new(w).file_name() == Some(std::ffi::OsStr::new("pidns")));
    if !before_pidns || std::env::var_os(common::sup::VAR).is_some() {
        return Ok((Watcher::spawn(held)?, claim));
    }
    let (ours, theirs) = common::channel::pair()
        .map_err(|e| Fatal::from(e).context("unable to create the supervisor's channel"))?;
    match common::sup::fork_supervisor(cx, link.naming().map(|n| n.name.as_str()))? {
        None => {
            drop(held);
            drop(theirs);
            // The lease names the process that holds the namespace.
            lease.pid = common::procfs::own_pid();
            Ok((Watcher::over(ours), claim))
        }
        Some(supervisor) => {
            drop(claim);
            drop(ours);
            cleanup::supervise(supervisor, theirs, held)
        }
    }
}

/// What to undo when the setup fails after the lease was written.
struct Undo {
    entered: bool,
    ports: bool,
    veth: Option<u32>,
}

impl Undo {
    fn run(&self, host: &mut Rtnl, host_ns: &File, store: &Store, lease: &Lease) {
        if let Some(index) = self.veth {
            let _ = host.delete_link(index);
        }
        if self.entered {
            // nft runs in the namespace it is started from: go back to the host's.
            let _ = nix::sched::setns(host_ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET);
        }
        if self.ports {
            let _ = nft::delete_ports(&lease.ports, lease.isolated.then_some(lease.ip));
        }
        let _ = store.remove(lease);
    }
}

#[allow(clippy::too_many_arguments)]
fn setup(
    args: &Args,
    link: &Link,
    host: &mut Rtnl,
    host_ns: &File,
    store: &Store,
    br: &Bridge,
    bridge_index: u32,
    lease: &mut Lease,
    undo: &mut Undo,
    watcher: Watcher,
) -> Result<Watcher, Fatal> {
    let mut batch = String::new();
    nft::add_ports(&mut batch, &lease.ports, lease.ip);
    if lease.isolated {
        nft::add_isolated(&mut batch, lease.ip);
    }
    if !batch.is_empty() {
        debug::step("nft batch", || nft::apply(&batch)).map_err(|e| port_error(e, &lease.ports))?;
        undo.ports = true;
    }
    link.enter()?;
    undo.entered = true;
    // Before the veth: eth0 is born with IPv6 off (see ipv6.rs), never a link-local address.
    let net = crate::NetDir::open().context("unable to open /proc/sys/net")?;
    let ipv6 = crate::ipv6::off_for_new_links(&net)?;
    let own_ns =
        File::open("/proc/self/ns/net").context("unable to open the new network namespace")?;
    debug::step("create veth", || {
        host.create_veth(
            &lease.veth,
            PEER,
            own_ns.as_raw_fd(),
            bridge_index,
            args.mtu,
        )
    })
    .with_context(|| format!("unable to create the veth pair {} / {PEER}", lease.veth))?;
    let veth = host
        .link_by_name(&lease.veth)
        .context("unable to look up the new veth")?
        .ok_or_else(|| Fatal::new(format!("the veth {} vanished", lease.veth)))?;
    undo.veth = Some(veth.index);
    in_namespace(host_ns, &own_ns, || crate::ipv6::refuse_ra_new(&lease.veth))?;
    // No IPv6 address on the host end, set as it comes up (see ipv6.rs); its carrier is off
    // until eth0 is up, so no link-local address can come first.
    debug::step("veth up", || {
        host.set_port_up_hairpin(veth.index, !args.icc, ipv6)
    })
    .with_context(|| format!("unable to bring {} up", lease.veth))?;
    let mut inner = Rtnl::open().context("unable to open a netlink socket in the new namespace")?;
    debug::step("lo up", || inner.set_up(1, None)).context("unable to bring lo up")?;
    let eth0 = inner
        .link_by_name(PEER)
        .context("unable to look up eth0")?
        .ok_or_else(|| Fatal::new("eth0 is missing in the new namespace"))?;
    // A gratuitous ARP when eth0 comes up: neighbours forget a previous holder's MAC.
    let _ = debug::step("sysctl net/ipv4/conf/eth0/arp_notify=1", || {
        net.write(&format!("ipv4/conf/{PEER}/arp_notify"), "1")
    });
    // As Docker: every port is the container's own. Its root may be an unprivileged range
    // (userns after netns), without CAP_NET_BIND_SERVICE over a namespace the host owns.
    let _ = debug::step("sysctl net/ipv4/ip_unprivileged_port_start=0", || {
        net.write("ipv4/ip_unprivileged_port_start", "0")
    });
    debug::step("eth0 address", || {
        inner.add_address(eth0.index, lease.ip, br.subnet.prefix)
    })
    .with_context(|| format!("unable to add {} to eth0", lease.ip))?;
    debug::step("eth0 up", || inner.set_up(eth0.index, None)).context("unable to bring eth0 up")?;
    debug::step("default route", || inner.add_default_route(br.gateway()))
        .with_context(|| format!("unable to add the default route via {}", br.gateway()))?;
    lease.netns = own_ns.metadata().map(|m| m.ino()).unwrap_or(0);
    lease.ifindex = veth.index;
    store
        .update(lease)
        .fatal_context("unable to record the lease")?;
    Ok(watcher)
}

/// Runs `f` in the network namespace `there` (a sysctl of a link there: /proc/sys/net shows
/// the namespace of the process that opens it), then comes back to `here`.
fn in_namespace(
    there: &File,
    here: &File,
    f: impl FnOnce() -> Result<(), Fatal>,
) -> Result<(), Fatal> {
    use nix::sched::{setns, CloneFlags};
    setns(there.as_fd(), CloneFlags::CLONE_NEWNET)
        .context("unable to enter the host network namespace")?;
    let result = f();
    // Failing to come back would run COMMAND in the host's namespace: fatal above all.
    setns(here.as_fd(), CloneFlags::CLONE_NEWNET)
        .context("unable to come back to the new network namespace")?;
    result
}

fn port_error(error: anyhow::Error, ports: &[Publish]) -> Fatal {
    let text = format!("{error:#}");
    let fatal = Fatal::from(error).context("unable to publish the ports");
    if text.contains("File exists") && !ports.is_empty() {
        fatal.with_hint("a host port is already published in the nft table ip nschain (by a container netns does not know of?): see `nft list table ip nschain`")
    } else {
        fatal
    }
}

/// `--ip`: in the subnet, not the gateway, and not leased by a live container.
fn check_wanted(br: &Bridge, live: &[Lease], ip: Ipv4Addr) -> Result<(), Fatal> {
    br.subnet.check_host(ip).map_err(|e| {
        Fatal::new(format!("--ip {ip}: {e}"))
            .with_hint(format!("the bridge {} has subnet {}", br.name, br.subnet))
    })?;
    match live.iter().find(|l| l.bridge == br.name && l.ip == ip) {
        Some(holder) => Err(in_use(ip, Some(holder.pid))),
        None => Ok(()),
    }
}

fn in_use(ip: Ipv4Addr, pid: Option<u32>) -> Fatal {
    let holder = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    Fatal::new(format!(
        "the address {ip} is in use by another container{holder}"
    ))
    .with_hint("omit --ip to get a free address")
}

/// A host port is an error when another live container publishes it, or a host process
/// listens on it (TCP) or uses it (UDP).
///
/// The port is held by a socket bound (not listening) in the host namespace, handed to the
/// cleanup watcher, which keeps it for the container's life: a host process started later
/// cannot bind the port either, so DNAT never silently shadows it. A TCP port that only a
/// connection in TIME_WAIT uses is free (held with SO_REUSEADDR); one that the watcher of a
/// container just `released` still holds is waited for.
fn check_ports(
    publish: &[Publish],
    live: &[Lease],
    released: &[Lease],
) -> Result<Vec<OwnedFd>, Fatal> {
    let mut held = Vec::with_capacity(publish.len());
    for p in publish {
        if let Some(holder) = live
            .iter()
            .find(|l| l.ports.iter().any(|q| q.clashes_with(p)))
        {
            return Err(Fatal::new(format!(
                "the host port {}/{} is already published by the container at {} (pid {})",
                p.host_port,
                p.proto.as_str(),
                holder.ip,
                holder.pid
            ))
            .with_hint("choose another HOSTPORT in -p HOSTPORT:PORT"));
        }
        let addr = SocketAddrV4::new(p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED), p.host_port);
        let was_ours = released
            .iter()
            .any(|l| l.ports.iter().any(|q| q.clashes_with(p)));
        let fd = debug::step(format_args!("hold {addr}/{}", p.proto.as_str()), || {
            hold_free_port(p, addr, was_ours)
        })?;
        held.extend(fd);
    }
    Ok(held)
}

/// Holds one host port (see [`check_ports`]); None when only sockets that do not listen use
/// it and none of them lets it be shared.
fn hold_free_port(
    p: &Publish,
    addr: SocketAddrV4,
    was_ours: bool,
) -> Result<Option<OwnedFd>, Fatal> {
    // The watcher of a released container closes its sockets as soon as the veth is gone.
    let deadline = Instant::now()
        + if was_ours {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        };
    loop {
        let error = match hold_port(addr, p.proto, false) {
            Ok(fd) => return Ok(Some(fd)),
            Err(e) => e,
        };
        if error.raw_os_error() == Some(libc::EADDRNOTAVAIL) {
            return Err(Fatal::new(format!(
                "-p {p}: {} is not an address of this host",
                addr.ip()
            ))
            .with_hint("omit HOSTIP to publish on every address of the host"));
        }
        let in_use = error.raw_os_error() == Some(libc::EADDRINUSE);
        let listened = p.proto == Proto::Udp || tcp_listener(addr);
        if in_use && !listened {
            if let Ok(fd) = hold_port(addr, p.proto, true) {
                return Ok(Some(fd));
            }
        }
        if !in_use || Instant::now() >= deadline {
            if in_use && !listened {
                debug::note(format_args!(
                    "{addr}/tcp is bound by a socket that does not listen: not held"
                ));
                return Ok(None);
            }
            let what = if p.proto == Proto::Udp {
                "uses it"
            } else {
                "listens there"
            };
            let fatal = Fatal::from(error).context(format!(
                "the host port {addr}/{} is not free",
                p.proto.as_str()
            ));
            return Err(fatal.with_hint(format!(
                "a host process {what}: stop it or choose another HOSTPORT"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether a socket of the host listens on this TCP address (the port on the same or a
/// wildcard address, IPv4 or IPv6), from /proc/net/tcp{,6}: state 0A is LISTEN.
fn tcp_listener(addr: SocketAddrV4) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| listens_on(line, addr))
    })
}

/// One line of /proc/net/tcp{,6}: `sl local_address rem_address st ...`, the address in hex
/// as the kernel stores it (network order, printed as a native integer).
fn listens_on(line: &str, addr: SocketAddrV4) -> bool {
    let mut fields = line.split_whitespace();
    let (Some(local), Some(state)) = (fields.nth(1), fields.nth(1)) else {
        return false;
    };
    let Some((ip, port)) = local.split_once(':') else {
        return false;
    };
    if state != "0A" || u16::from_str_radix(port, 16).ok() != Some(addr.port()) {
        return false;
    }
    let words: Vec<u32> = (0..ip.len() / 8)
        .filter_map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).ok())
        .map(|w| u32::from_be_bytes(w.to_ne_bytes()))
        .collect();
    let v4 = match words.as_slice() {
        [w] => Some(Ipv4Addr::from(*w)),
        [0, 0, 0, 0] => Some(Ipv4Addr::UNSPECIFIED),
        [0, 0, 0xffff, w] => Some(Ipv4Addr::from(*w)),
        _ => None, // another IPv6 address: no clash with an IPv4 bind
    };
    v4.is_some_and(|ip| ip.is_unspecified() || addr.ip().is_unspecified() || ip == *addr.ip())
}

/// Binds (without listening; SO_REUSEADDR only when `reuse`) a socket on the host port.
fn hold_port(addr: SocketAddrV4, proto: Proto, reuse: bool) -> std::io::Result<OwnedFd> {
    let kind = match proto {
        Proto::Tcp => libc::SOCK_STREAM,
        Proto::Udp => libc::SOCK_DGRAM,
    };
    // SAFETY: socket(2) with constant arguments returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if reuse {
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReuseAddr, &true)?;
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sin` is a valid sockaddr_in of the length given, alive for the call.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listening_sockets_count() {
        let on = |ip: [u8; 4], port| SocketAddrV4::new(Ipv4Addr::from(ip), port);
        // 127.0.0.1:8400 LISTEN; the same in TIME_WAIT (06); 0.0.0.0:80 LISTEN.
        let listen = "   0: 0100007F:20D0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1";
        let time_wait = "   1: 0100007F:20D0 0100007F:C350 06 00000000:00000000 03:00000F9C 00000000     0        0 0";
        let any = "   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2";
        assert!(listens_on(listen, on([127, 0, 0, 1], 8400)));
        assert!(listens_on(listen, on([0, 0, 0, 0], 8400)));
        assert!(!listens_on(listen, on([10, 0, 0, 1], 8400)));
        assert!(!listens_on(listen, on([127, 0, 0, 1], 8401)));
        assert!(!listens_on(time_wait, on([127, 0, 0, 1], 8400)));
        assert!(listens_on(any, on([10, 1, 2, 3], 80)));
        // tcp6: [::]:80 and [::ffff:127.0.0.1]:80 listen on IPv4 too; [::1]:80 does not.
        let v6_any = "   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0";
        let v6_mapped = "   0: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A 0";
        let v6_lo = "   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 0";
        assert!(listens_on(v6_any, on([127, 0, 0, 1], 80)));
        assert!(listens_on(v6_mapped, on([127, 0, 0, 1], 80)));
        assert!(!listens_on(v6_mapped, on([127, 0, 0, 2], 80)));
        assert!(!listens_on(v6_lo, on([127, 0, 0, 1], 80)));
        assert!(!listens_on("garbage", on([127, 0, 0, 1], 80)));
    }
}
