//! `--join TARGET`: enter a running container's mount namespace, and (as `nsenter` does with
//! /proc/PID/root and /proc/PID/cwd) its root and working directory when TARGET names a
//! process or a chain. Both are opened before the setns, while the caller's /proc is still
//! the one that shows TARGET. So are the target's credentials, which COMMAND takes unless
//! `--user` or `--cap-*` say otherwise (as `nsps exec`: never more than the container has).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::Context;
use common::chain;
use common::creds::Creds;
use common::info::{self, NsId, Record};
use common::link::Link;
use common::ns::JoinTarget;
use common::{debug, Fatal};
use serde_json::Map;

use crate::resolve;

/// The target's root and working directory, opened before entering, and its credentials.
#[derive(Debug)]
pub struct Joined {
    root: Option<OwnedFd>,
    cwd: Option<OwnedFd>,
    pub creds: Option<Creds>,
}

/// The pid behind a join target, if it names a process.
fn target_pid(link: &Link) -> Option<u32> {
    match link.join_target()? {
        JoinTarget::Pid(pid) => Some(*pid),
        JoinTarget::Chain(_) | JoinTarget::Path(_) => {
            // A chain's namespace is opened as /proc/PID/ns/mnt.
            let path = &link.joined()?.path;
            let mut parts = path.strip_prefix("/proc").ok()?.components();
            let pid = parts.next()?.as_os_str().to_str()?.parse().ok()?;
            (parts.as_path() == Path::new("ns/mnt")).then_some(pid)
        }
    }
}

/// Registers the link and writes the --info-fd line (before the host's paths disappear),
/// then enters the namespace, the target's root and its working directory.
pub fn enter(
    link: &Link,
    ns: &common::link::NsOptions,
    workdir: Option<&Path>,
) -> Result<Joined, Fatal> {
    let pid = target_pid(link);
    let open = |what: &str| -> Result<Option<OwnedFd>, Fatal> {
        match pid {
            Some(pid) => Ok(Some(resolve::open_host_dir(&PathBuf::from(format!(
                "/proc/{pid}/{what}"
            )))?)),
            None => Ok(None),
        }
    };
    let root = open("root")?;
    let cwd = if workdir.is_none() {
        open("cwd")?
    } else {
        None
    };
    let creds =
        match pid {
            Some(pid) => Some(Creds::of_process(pid).map_err(|e| {
                Fatal::from(e).context("unable to read the container's credentials")
            })?),
            None => None,
        };
    announce(link, ns)?;
    link.enter()?;
    let joined = Joined { root, cwd, creds };
    debug::step("enter the target's root", || joined.chroot())
        .map_err(|e| Fatal::from(e).context("unable to enter the container's root"))?;
    Ok(joined)
}

fn announce(link: &Link, ns: &common::link::NsOptions) -> Result<(), Fatal> {
    let Some(joined) = link.joined() else {
        return Ok(());
    };
    let record = Record {
        tool: link.tool().to_owned(),
        pid: common::procfs::own_pid(),
        ns: NsId {
            kind: "mnt".into(),
            inode: joined.inode()?,
        },
        created: false,
        extra: Map::new(),
    };
    if let Some(naming) = chain::naming(ns.name.as_deref())? {
        chain::claim(&naming)?;
        chain::register(&naming.name, &record)?;
    }
    if let Some(fd) = ns.info_fd {
        info::write_line(fd, &record)?;
    }
    Ok(())
}

/// Whether a process joining this mount namespace must get the setuid guard: when the
/// `mntns` that made it recorded one (`setuid_guard` in its registration), or, when nothing
/// registered it, whenever this process is host root (unknown counts as reachable).
/// Read before the namespace is entered: the registrations are on the host.
pub fn setuid_guarded(link: &Link) -> bool {
    let Some(inode) = link.joined().and_then(|j| j.inode().ok()) else {
        return common::state::is_host_root();
    };
    let made = chain::names().into_iter().find_map(|name| {
        chain::live_records(&name)
            .into_iter()
            .find(|r| r.created && r.ns.kind == "mnt" && r.ns.inode == inode)
    });
    match made {
        Some(record) => record.extra.contains_key("setuid_guard"),
        None => common::state::is_host_root(),
    }
}

/// The seccomp profile of the container whose mount namespace `link` joins, as its mntns
/// recorded it: none recorded (mntns made it without a new root) is none; a namespace no chain
/// registered (a pin of someone else's) gets the default.
pub fn seccomp_profile(link: &Link) -> common::seccomp_policy::Choice {
    let made = link
        .joined()
        .and_then(|j| j.inode().ok())
        .and_then(|inode| {
            chain::names().into_iter().find_map(|name| {
                chain::live_records(&name)
                    .into_iter()
                    .find(|r| r.created && r.ns.kind == "mnt" && r.ns.inode == inode)
            })
        });
    match made {
        Some(record) => common::seccomp_policy::recorded(&record.extra)
            .unwrap_or(common::seccomp_policy::Choice::Unconfined),
        None => common::seccomp_policy::Choice::Default,
    }
}

impl Joined {
    fn chroot(&self) -> anyhow::Result<()> {
        if let Some(root) = &self.root {
            nix::unistd::fchdir(root.as_fd().as_raw_fd()).context("unable to enter the root")?;
            nix::unistd::chroot(".").context("unable to chroot into the container's root")?;
        }
        match &self.cwd {
            Some(cwd) => nix::unistd::fchdir(cwd.as_fd().as_raw_fd())
                .context("unable to enter the container's working directory")?,
            None => nix::unistd::chdir("/").context("unable to enter /")?,
        }
        crate::entry::check_cwd_inside_root()
    }
}
