//! Releasing what a container held (its address, published ports and nft elements) once its
//! network namespace is gone, and `netns gc [--prune]`.
//!
//! Two paths, so that a SIGKILL at any moment never breaks the next run:
//! - a tiny watcher: forked by the chain's supervisor as it ends (a chain with `pidns`), or,
//!   without a supervisor, double-forked before the unshare (so it lives in the host namespace
//!   and is nobody's child in the container) and re-executed as `netns gc --watch` (a fresh,
//!   small process) that waits on a pidfd of the container's process. Then it waits for the
//!   kernel to delete the container's veth (the namespace is gone: no process and no pin
//!   holds it any more) and releases the lease;
//! - lazy collection: a bridge-mode start that finds no address free (or asks for `--ip` or
//!   `-p`, checked against every lease) and `netns gc` release, under the lock, the leases
//!   whose veth no longer exists (a SIGKILLed watcher, a crash in the middle of a setup).
//!
//! The nft elements are always deleted before the lease, so an address is never reused while
//! a stale port rule still points at it.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use common::channel::{self, Channel};
use common::cli::Status;
use common::{debug, report, Fatal, Hint};
use serde::{Deserialize, Serialize};

use crate::ipam::{Lease, Store};
use crate::netlink::Rtnl;
use crate::nft;

/// The watcher's descriptors after its exec.
const WATCH_GO_FD: RawFd = 3;
const WATCH_PIDFD: RawFd = 4;

/// The lease directory.
pub fn state_dir() -> PathBuf {
    common::state::run_dir().join("netns")
}

/// How long a start waits for the kernel to finish tearing down the namespace of a container
/// whose process is gone, when that container holds what the start asks for.
const SETTLE: Duration = Duration::from_secs(2);

/// Whether the process that made a lease's namespace still holds it (one stat, no netlink).
fn holder_alive(lease: &Lease) -> bool {
    let path = format!("/proc/{}/ns/net", lease.pid);
    lease.netns != 0 && std::fs::metadata(path).is_ok_and(|m| m.ino() == lease.netns)
}

/// Whether a lease's namespace still exists: its host-side veth is still there (or, before
/// it has one, its creator is still setting it up).
pub fn is_alive(store: &Store, rtnl: &mut Rtnl, lease: &Lease) -> anyhow::Result<bool> {
    if lease.ifindex == 0 {
        return Ok(store.in_setup(lease));
    }
    if holder_alive(lease) {
        return Ok(true);
    }
    let link = rtnl
        .link_by_index(lease.ifindex)
        .context("unable to look up a container's veth")?;
    Ok(link.is_some_and(|l| l.name == lease.veth))
}

/// Releases a lease: its nft elements first, then the file.
pub fn release(store: &Store, lease: &Lease) -> anyhow::Result<()> {
    debug::step(format_args!("release {}", lease.ip), || {
        nft::delete_ports(&lease.ports, lease.isolated.then_some(lease.ip))?;
        store.remove(lease)
    })
}

/// Releases every dead lease; returns the live ones.
pub fn collect(store: &Store, rtnl: &mut Rtnl) -> anyhow::Result<Vec<Lease>> {
    let mut live = Vec::new();
    for lease in store.all_leases()? {
        if is_alive(store, rtnl, &lease)? {
            live.push(lease);
        } else if let Err(e) = release(store, &lease) {
            report::warning(format_args!("unable to release {}: {e:#}", lease.ip));
        }
    }
    Ok(live)
}

/// Settles the live leases that hold what a start asks for (`clashes`) and whose process is
/// gone: when a container's last process exits, the kernel deletes its veth only after the
/// namespace's teardown (tens of milliseconds), and a command run again straight away must
/// find its port and address free. Waits (up to [`SETTLE`]) for those veths to go and
/// releases their leases; a lease whose namespace something else still holds (a pin, a
/// daemon the command left) stays. Returns the live leases and those released.
pub fn settle(
    store: &Store,
    rtnl: &mut Rtnl,
    live: Vec<Lease>,
    clashes: impl Fn(&Lease) -> bool,
) -> anyhow::Result<(Vec<Lease>, Vec<Lease>)> {
    let (mut dying, mut kept): (Vec<Lease>, Vec<Lease>) = live
        .into_iter()
        .partition(|l| clashes(l) && !holder_alive(l));
    let mut released = Vec::new();
    let deadline = Instant::now() + SETTLE;
    while !dying.is_empty() {
        let mut still = Vec::new();
        for lease in dying {
            if is_alive(store, rtnl, &lease)? {
                still.push(lease);
            } else if let Err(e) = release(store, &lease) {
                report::warning(format_args!("unable to release {}: {e:#}", lease.ip));
                kept.push(lease);
            } else {
                released.push(lease);
            }
        }
        dying = still;
        if dying.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    kept.extend(dying);
    Ok((kept, released))
}

/// `netns gc [--prune]`.
#[derive(clap::Args, Debug)]
pub struct GcArgs {
    /// Also delete the bridges netns created (never another interface) and the nft table
    /// `ip nschain` once no container uses them
    #[arg(long)]
    pub prune: bool,

    /// Internal: the cleanup watcher of one container
    #[arg(long, hide = true)]
    pub watch: bool,
}

/// Runs `netns gc`.
pub fn gc_main(args: &GcArgs) -> Result<Status, Fatal> {
    if args.watch {
        return watch().map(|()| 0);
    }
    gc(args.prune)?;
    Ok(0)
}

fn gc(prune: bool) -> Result<(), Fatal> {
    let dir = state_dir();
    if !dir.exists() && !prune {
        return Ok(());
    }
    let store = Store::lock(&dir)?;
    let mut rtnl = Rtnl::open().context("unable to open a netlink socket")?;
    let live = collect(&store, &mut rtnl)?;
    let (live, _) = settle(&store, &mut rtnl, live, |_| true)?;
    if !prune {
        return Ok(());
    }
    // One bridge that cannot be pruned does not keep the others (or the table) behind.
    let mut failed = 0;
    for bridge in store.bridges()? {
        if live.iter().any(|l| l.bridge == bridge) {
            continue;
        }
        let keep_table = !live.is_empty();
        if let Err(e) = prune_bridge(&store, &mut rtnl, &bridge, keep_table) {
            report::warning(format_args!("unable to prune the bridge {bridge}: {e:#}"));
            failed += 1;
        }
    }
    if live.is_empty() {
        if let Err(e) = nft::delete_table() {
            report::warning(format_args!(
                "unable to delete the nft table ip nschain: {e:#}"
            ));
            failed += 1;
        }
    }
    if failed > 0 {
        return Err(Fatal::new(format!(
            "gc --prune: {failed} of the things to prune could not be removed (see the warnings)"
        )));
    }
    Ok(())
}

/// Undoes what netns did to one unused bridge, as its record says: deletes a bridge netns
/// created, removes the gateway address it added to someone else's bridge, and never touches
/// an interface it has no record of (a bridge it did not create, `lo`, a veth).
fn prune_bridge(
    store: &Store,
    rtnl: &mut Rtnl,
    bridge: &str,
    keep_table: bool,
) -> anyhow::Result<()> {
    if let Some(record) = store.bridge_record(bridge) {
        let link = rtnl
            .link_by_index(record.ifindex)
            .context("unable to look up the bridge")?
            .filter(|l| l.name == bridge && l.is_bridge);
        let subnet = record.subnet.parse::<crate::ipam::Cidr>().ok();
        if let Some(link) = link {
            let foreign = rtnl
                .ports_of(link.index)
                .context("unable to list its ports")?;
            if record.created && !foreign.is_empty() {
                // No container of netns uses it: these are someone else's interfaces.
                let names: Vec<&str> = foreign.iter().map(|l| l.name.as_str()).collect();
                report::warning(format_args!(
                    "the bridge {bridge} is left: it has ports netns did not attach ({})",
                    names.join(", ")
                ));
                // Still ours: a later prune deletes it once they are gone.
                return Ok(());
            }
            if record.created {
                debug::step(format_args!("delete bridge {bridge}"), || {
                    rtnl.delete_link(link.index)
                })
                .context("unable to delete it")?;
            } else if let Some(subnet) = subnet.filter(|_| record.address_added) {
                let gateway = subnet.gateway();
                let has = rtnl
                    .addresses_of(link.index)
                    .context("unable to list its addresses")?
                    .iter()
                    .any(|a| a.ip == gateway && a.prefix == subnet.prefix);
                if has {
                    rtnl.delete_address(link.index, gateway, subnet.prefix)
                        .with_context(|| format!("unable to remove {gateway} from it"))?;
                }
            }
        }
        if let Some(subnet) = subnet.filter(|_| keep_table) {
            if nft::table_exists().unwrap_or(false) {
                for line in nft::delete_bridge_lines(bridge, &subnet) {
                    let _ = nft::apply(&line);
                }
            }
        }
    }
    store.forget_bridge(bridge)
}

/// The parent's end of a watcher: tells it which lease to watch, or (dropped unsent) that the
/// setup failed.
#[derive(Debug)]
pub struct Watcher {
    channel: Channel,
}

impl Watcher {
    /// Spawns the watcher (detached), which re-executes this binary as `netns gc --watch`.
    /// `held`: the sockets that reserve the published host ports, kept by the watcher until
    /// the container is gone.
    pub fn spawn(held: Vec<OwnedFd>) -> Result<Watcher, Fatal> {
        debug::step("spawn cleanup watcher", || spawn_watcher(&held))
            .fatal_context("unable to start the cleanup watcher")
    }

    /// The channel to the chain's supervisor, which starts the watcher once the container
    /// is gone (see [`supervise`]).
    pub fn over(channel: Channel) -> Watcher {
        Watcher { channel }
    }

    /// Hands the lease over; the watcher releases it when the namespace is gone.
    pub fn go(self, lease: &Lease) -> Result<(), Fatal> {
        let target = Target {
            bridge: lease.bridge.clone(),
            ip: lease.ip,
            pid: lease.pid,
            ifindex: lease.ifindex,
            veth: lease.veth.clone(),
        };
        self.channel
            .send(&target)
            .context("unable to hand the lease to the cleanup watcher")?;
        Ok(())
    }
}

/// The chain's supervisor forked by netns (common::sup): waits for the container, runs the
/// work handed to it, then forks the watcher with the lease the child sent (it waits for the
/// veth's deletion and keeps the ports until then) and exits with the container's status.
pub fn supervise(
    mut supervisor: common::sup::Supervisor,
    targets: Channel,
    held: Vec<OwnedFd>,
) -> ! {
    let mut keep: Vec<RawFd> = held.iter().map(AsRawFd::as_raw_fd).collect();
    keep.push(targets.as_fd().as_raw_fd());
    supervisor.keep_only(&keep);
    let (ended, adopted) = supervisor.serve();
    supervisor.finish(&ended, adopted.as_ref());
    let target = targets
        .set_nonblocking()
        .ok()
        .and_then(|()| targets.recv::<Target>().ok().flatten());
    drop(targets);
    match target {
        // The usual end: this process forks the watcher (no exec of a fresh program: a
        // thousand containers ending at once paid a thousand execs) and exits.
        Some(target) => become_watcher_child(target, held),
        // The setup failed: an exec'd watcher collects whatever it left.
        None => {
            if let Err(e) = spawn_watcher(&held) {
                report::warning(format_args!("unable to start the cleanup watcher: {e:#}"));
            }
            drop(held);
        }
    }
    // SAFETY: _exit ends the supervisor without running the chain's destructors (their fds
    // were closed by number in keep_only).
    unsafe { libc::_exit(i32::from(ended.code)) }
}

/// Forks the watcher of `target` from the ending supervisor: in the child (a new session,
/// stdin and stdout on /dev/null, stderr too unless debugging, no signal blocked, named as
/// the exec'd watcher) it releases the lease once the veth is gone and exits; the parent
/// returns at once (to exit with the container's status). The supervisor has shed its memory
/// (common::resident), so the child is as small as an exec'd watcher without paying for
/// the exec. If the fork fails, the watcher is exec'd as before.
fn become_watcher_child(target: Target, held: Vec<OwnedFd>) {
    // SAFETY: the supervisor is single-threaded (a fork of the netns link, which starts no
    // thread); the child only makes system calls and runs the watcher's plain Rust code.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => drop(held),
        Ok(nix::unistd::ForkResult::Child) => {
            detach_as_watcher();
            let code = match release_when_gone(&target, held) {
                Ok(()) => 0,
                Err(e) => {
                    e.print();
                    1
                }
            };
            // SAFETY: _exit ends the watcher without the supervisor's destructors.
            unsafe { libc::_exit(code) }
        }
        Err(e) => {
            debug::note(format_args!(
                "fork of the cleanup watcher failed ({e}): exec it"
            ));
            match spawn_watcher(&held) {
                Ok(watcher) => {
                    let _ = watcher.channel.send(&target);
                }
                Err(e) => {
                    report::warning(format_args!("unable to start the cleanup watcher: {e:#}"))
                }
            }
        }
    }
}

/// What `common::detached` gives an exec'd watcher, for the forked one: its own session (a
/// terminal's signals for the caller's group do not reach it), no descriptor of the caller's
/// (a pipe it reads would not see its end), no blocked signal, and its name.
fn detach_as_watcher() {
    let _ = nix::unistd::setsid();
    let _ = common::signals::restore(&common::signals::Set::empty());
    let _ = nix::sys::prctl::set_name(c"netns-gc-watch");
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let last = if debug::enabled() { 1 } else { 2 };
        for fd in 0..=last {
            // SAFETY: dup2 onto a standard descriptor this process owns.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

fn pidfd_self() -> anyhow::Result<OwnedFd> {
    common::sys::process::pidfd_open(std::process::id() as libc::pid_t)
        .map_err(std::io::Error::from)
        .context("unable to open a pidfd")
}

fn spawn_watcher(held: &[OwnedFd]) -> anyhow::Result<Watcher> {
    let pidfd = pidfd_self()?;
    let (ours, theirs) =
        channel::pair().context("unable to create the cleanup watcher's channel")?;
    let argv = [
        CString::new("netns")?,
        CString::new("gc")?,
        CString::new("--watch")?,
    ];
    // NSCHAIN_DEBUG: the watcher keeps stderr, so that its trace and errors are seen.
    let mut fds = vec![
        (theirs.as_fd().as_raw_fd(), WATCH_GO_FD),
        (pidfd.as_raw_fd(), WATCH_PIDFD),
    ];
    // The port-holding sockets from 5 up: the watcher never touches them, they close when
    // it exits.
    fds.extend(
        held.iter()
            .enumerate()
            .map(|(i, fd)| (fd.as_raw_fd(), WATCH_PIDFD + 1 + i as RawFd)),
    );
    common::detached::spawn(c"/proc/self/exe", &argv, &fds, debug::enabled())
        .context("unable to spawn netns gc --watch")?;
    Ok(Watcher { channel: ours })
}

/// `netns gc --watch`: the watcher's life.
fn watch() -> Result<(), Fatal> {
    // Executed through /proc/self/exe, the watcher would show as `exe`: name it.
    let _ = nix::sys::prctl::set_name(c"netns-gc-watch");
    let held = held_ports();
    // SAFETY: the spawner placed the channel at this number for us alone.
    let go = Channel::adopt(unsafe { OwnedFd::from_raw_fd(WATCH_GO_FD) });
    // SAFETY: likewise for the pidfd of the container's process.
    let pidfd = unsafe { OwnedFd::from_raw_fd(WATCH_PIDFD) };
    let target = go.ok().and_then(|go| go.recv::<Target>().ok().flatten());
    let Some(target) = target else {
        // The setup failed or was killed: collect whatever it left.
        drop(pidfd);
        drop(held);
        return gc(false);
    };
    common::sys::process::pidfd_wait_exited(pidfd.as_fd());
    drop(pidfd);
    release_when_gone(&target, held)
}

/// Waits for the target's veth to be deleted (its namespace is gone), frees its ports and
/// releases its lease.
fn release_when_gone(target: &Target, held: Vec<OwnedFd>) -> Result<(), Fatal> {
    let mut events =
        Rtnl::open_link_deletion(target.ifindex).context("unable to watch link events")?;
    let mut rtnl = Rtnl::open().context("unable to open a netlink socket")?;
    loop {
        match rtnl.link_by_index(target.ifindex) {
            Ok(Some(link)) if link.name == target.veth => {
                match events.wait_link_deleted(target.ifindex) {
                    // An undecodable event only means: look again.
                    Err(e) if e.kind() != std::io::ErrorKind::InvalidData => {
                        return Err(Fatal::from(e).context("unable to watch link events"))
                    }
                    _ => {}
                }
            }
            Ok(_) => break,
            Err(e) => return Err(Fatal::from(e).context("unable to look up the veth")),
        }
    }
    drop(events);
    // The ports are free the moment the namespace is gone, before the lock: a start that
    // waits for them (see `settle`) holds it.
    drop(held);
    let store = Store::lock(&state_dir())?;
    let lease = store
        .lease(&target.bridge, target.ip)
        .filter(|l| l.pid == target.pid && l.ifindex == target.ifindex);
    if let Some(lease) = lease {
        release(&store, &lease)?;
    }
    Ok(())
}

/// Takes the port-holding sockets the spawner placed, one after another, from
/// `WATCH_PIDFD + 1` up (every other descriptor above was closed before the exec).
fn held_ports() -> Vec<OwnedFd> {
    let mut held = Vec::new();
    let mut fd = WATCH_PIDFD + 1;
    // SAFETY: F_GETFD only asks whether the descriptor is open.
    while unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
        // SAFETY: placed for this process alone by the spawner; owned from here on.
        held.push(unsafe { OwnedFd::from_raw_fd(fd) });
        fd += 1;
    }
    held
}

#[derive(Debug, Serialize, Deserialize)]
struct Target {
    bridge: String,
    ip: Ipv4Addr,
    pid: u32,
    ifindex: u32,
    veth: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watcher_receives_its_target_or_the_end() {
        let (ours, theirs) = channel::pair().unwrap();
        let target = Target {
            bridge: "nschain0".into(),
            ip: Ipv4Addr::new(10, 200, 0, 2),
            pid: 42,
            ifindex: 7,
            veth: "nsc0ac80002".into(),
        };
        ours.send(&target).unwrap();
        drop(ours);
        let t = theirs.recv::<Target>().unwrap().unwrap();
        assert_eq!(t.bridge, "nschain0");
        assert_eq!(t.ip, Ipv4Addr::new(10, 200, 0, 2));
        assert_eq!((t.pid, t.ifindex), (42, 7));
        assert_eq!(t.veth, "nsc0ac80002");
        // A setup that failed closes its end unsent.
        assert!(theirs.recv::<Target>().unwrap().is_none());
    }
}
