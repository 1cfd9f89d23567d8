//! `nsps exec NAME -- COMMAND`: enter a running chain, in one process, in the order that
//! keeps the host out of reach (runc's nsexec order):
//!
//! ```text
//! re-exec   from a sealed memfd copy of nsps (CVE-2019-5736)
//! cgroup    the chain's cgroup opened (cgroupns with limits), while still host root
//! open      namespaces, the payload's /proc dir, root and cwd (host side, nothing changed)
//! setns     the namespaces the chain made: those owned outside its user namespace, the
//!           user namespace, the others, the mount namespace last
//! chroot    the payload's root, then its working directory
//! setns     the pid namespace: only the children of this process are born into it
//! session   no controlling terminal, a new empty session keyring (as mntns's entry)
//! creds     the payload's seccomp filters (the container's, and the setuid guard's when
//!           mntns recorded it), groups, uid/gid, five capability sets, no_new_privs
//!           (never more than the container has)
//! fork      COMMAND appears in the container only now, with nothing of the host, not
//!           dumpable until its exec, and moves itself into the chain's cgroup; nsps waits
//!           outside (outside the cgroup too) and returns its status
//! ```

use std::ffi::OsString;
use std::fs::File;
use std::time::{Duration, Instant};

use common::channel::Channel;
use common::cli::Status;
use common::info::Record;
use common::ns::{self, Namespace, NsFile};
use common::{chain, debug, Fatal};

use crate::target::Target;

/// The order namespaces are joined in: the user namespace gives the rights to join the
/// others; the mount namespace changes the root, so it comes after them; the pid namespace
/// comes last, as it takes effect only for the child forked once everything else is done.
/// The time namespace takes effect for this process at once (setns, unlike unshare, moves
/// the caller): joined before the fork, COMMAND reads the container's clocks.
/// COMMAND moves into the chain's cgroup after joining its cgroup namespace, whose root that
/// cgroup is: it then sees itself at the root, as the container does.
const ORDER: [Namespace; 8] = [
    Namespace::User,
    Namespace::Net,
    Namespace::Ipc,
    Namespace::Uts,
    Namespace::Cgroup,
    Namespace::Time,
    Namespace::Mnt,
    Namespace::Pid,
];

/// How long `nsps exec` waits for a chain that is still starting.
const SETTLE: Duration = Duration::from_secs(5);

/// Runs COMMAND inside the chain and returns its status. `tty`: the socket to the host side of
/// `nsps exec -t` (pty.rs), which gets the pty made in the container.
pub fn exec(name: &str, command: Vec<OsString>, tty: Option<Channel>) -> Result<Status, Fatal> {
    // The joined child runs this binary until its exec: from a sealed copy, not the host's.
    crate::seal::reexec()?;
    // This process holds the host's /proc and namespace files until the fork: nothing may
    // read them through /proc/PID (it is not in the container's pid namespace, but its
    // children are).
    debug::step("not dumpable", || nix::sys::prctl::set_dumpable(false))
        .map_err(|e| Fatal::from(e).context("unable to make nsps not dumpable"))?;
    // A chain that is still starting has not registered its later links yet: joining it then
    // would leave out, say, its mount namespace and run COMMAND on the host's filesystem.
    let payload = wait_until_settled(name)?;
    let checked = chain::checked_records(name);
    // Joining without a namespace the chain made would run COMMAND half outside it.
    if let Some((record, why)) = checked.unverified.first() {
        return Err(Fatal::new(format!(
            "cannot verify the {} namespace chain {name} recorded for pid {}: {why}",
            record.ns.kind, record.pid
        ))
        .with_hint("run nsps exec as the user who started the chain, or as root"));
    }
    let records = checked.live;
    // Its limits bind COMMAND and all it forks, as they bind the container; this process,
    // which only waits, stays outside (it counts against no --pids-limit). COMMAND moves
    // itself in after the fork, through files opened now, while we are host root.
    let entry = match chain_cgroup(&records) {
        Some(cgroup) => Some(
            debug::step("open the chain's cgroup", || cgroup.open_entry())
                .map_err(|e| Fatal::from(e).context("unable to join the chain's cgroup"))?,
        ),
        None => None,
    };
    let made = |kind: Namespace| {
        records
            .iter()
            .any(|r| r.ns.kind == kind.proc_name() && r.created)
    };
    let mut namespaces = Vec::new();
    for kind in join_order(&records).into_iter().filter(|k| made(*k)) {
        namespaces.push(chain::open_namespace(name, kind)?);
    }
    let mnt = namespaces
        .iter()
        .find(|n| n.kind == Namespace::Mnt)
        .map(NsFile::inode)
        .transpose()?;
    let target = Target::open(payload, mnt)?;
    // COMMAND is not a link of this chain: it must not register under its name.
    std::env::remove_var(chain::NAME_VAR);

    // The pid namespace waits for the end, unless it belongs outside the chain's user
    // namespace (then it must be joined before it, while this process has the right to).
    let mut past_user = !namespaces.iter().any(|n| n.kind == Namespace::User);
    let mut pid = None;
    for ns in &namespaces {
        past_user |= ns.kind == Namespace::User;
        if ns.kind == Namespace::Pid && past_user {
            pid = Some(ns);
        } else {
            ns.enter()?;
        }
    }
    if mnt.is_some() {
        target.enter_root()?;
    }
    let creds = target.creds()?;
    if let Some(pid) = pid {
        pid.enter()?;
    }
    // Nothing of the host stays open past this point (spawn closes the rest).
    drop((namespaces, target));
    // As mntns's entry (its session.rs), in the same place: before the filter and the drop.
    let leader = crate::session::leave_callers_session()?;
    if setuid_guarded(&records) {
        // The container's own processes cannot plant setuid files in a root other host users
        // reach (mntns's setuid guard, issue 13 item 7): nor can a joined one.
        common::setuid_guard::install()?;
    }
    let filter = creds.filtered || seccomp_recorded(&records);
    let profile =
        common::seccomp_policy::build(&recorded_profile(&records), creds.bounding_names())?;
    creds.apply(filter, profile.as_ref())?;
    // With COMMAND's credentials, in the container's root: its devpts, its user's pty.
    let terminal = tty.is_some();
    if let Some(channel) = tty {
        crate::pty::container_side(channel)?;
    }
    crate::spawn::run(command, leader, terminal, entry)
}

/// The cgroup the chain's cgroupns made, if any.
fn chain_cgroup(records: &[Record]) -> Option<common::cgroupfs::Cgroup> {
    let dirs = records
        .iter()
        .find(|r| r.ns.kind == "cgroup" && r.created)?
        .extra
        .get("cgroup")?
        .get("dirs")?
        .clone();
    Some(common::cgroupfs::Cgroup {
        dirs: serde_json::from_value(dirs).ok()?,
    })
}

/// Whether the chain's mount link put its container under the setuid guard.
fn setuid_guarded(records: &[Record]) -> bool {
    records
        .iter()
        .any(|r| r.ns.kind == "mnt" && r.created && r.extra.contains_key("setuid_guard"))
}

/// The seccomp profile the chain's mount link recorded for its container (none recorded:
/// no new root, so none).
fn recorded_profile(records: &[Record]) -> common::seccomp_policy::Choice {
    records
        .iter()
        .filter(|r| r.ns.kind == "mnt" && r.created)
        .find_map(|r| common::seccomp_policy::recorded(&r.extra))
        .unwrap_or(common::seccomp_policy::Choice::Unconfined)
}

/// Whether the chain's mount link recorded that its container got the seccomp filter.
fn seccomp_recorded(records: &[Record]) -> bool {
    records.iter().any(|r| {
        r.ns.kind == "mnt"
            && r.extra.get("seccomp").and_then(|v| v.as_str())
                == Some(common::info::SECCOMP_CONTAINER)
    })
}

/// Waits until the chain's payload runs: every link has then registered (each registers
/// before its exec). The payload is PID 2 under our init, else PID 1 of the chain's pid
/// namespace, else the process holding the chain's namespaces.
fn wait_until_settled(name: &str) -> Result<u32, Fatal> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let records = chain::live_records(name);
        if records.is_empty() {
            return Err(Fatal::new(format!("no chain named {name} is running"))
                .with_hint("nsps lists the running chains"));
        }
        let payload = match records.iter().find(|r| r.ns.kind == "pid") {
            Some(pid) => crate::inspect::payload_pid(pid.ns.inode),
            None => records.iter().map(|r| r.pid).max(),
        };
        if let Some(pid) =
            payload.filter(|pid| !common::handdown::LINKS.contains(&comm(*pid).as_str()))
        {
            return Ok(pid);
        }
        if Instant::now() > deadline {
            return Err(Fatal::new(format!(
                "chain {name} is still starting after {} s",
                SETTLE.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_owned())
        .unwrap_or_default()
}

/// The kinds in the order to join them: namespaces the chain made before its user namespace
/// (`netns` in a rootful chain) belong to the caller's user namespace, so they are joined
/// first, while still privileged there; then the user namespace; then the rest.
fn join_order(records: &[Record]) -> Vec<Namespace> {
    let user = records.iter().find(|r| r.ns.kind == "user" && r.created);
    let outside = |kind: Namespace| {
        user.is_some_and(|user| {
            records.iter().any(|r| {
                r.ns.kind == kind.proc_name()
                    && File::open(format!("/proc/{}/ns/{kind}", r.pid))
                        .ok()
                        .and_then(|f| ns::owner_inode(&f).ok())
                        .is_some_and(|owner| owner != user.ns.inode)
            })
        })
    };
    let (before, after): (Vec<_>, Vec<_>) = ORDER
        .into_iter()
        .partition(|kind| *kind != Namespace::User && outside(*kind));
    before.into_iter().chain(after).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_first_then_mount_then_pid() {
        assert_eq!(join_order(&[]), ORDER.to_vec());
        let words: Vec<&str> = ORDER.iter().map(|k| k.proc_name()).collect();
        assert_eq!(words.join(" "), "user net ipc uts cgroup time mnt pid");
    }
}
