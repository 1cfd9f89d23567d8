//! `userns`: run a command in a new user namespace — root inside, unprivileged outside, and
//! host ids that never clash between containers.
//!
//! ```text
//! prepare    check the options, the maps and /etc/subuid; nothing is changed yet
//! helpers    fork the pin helper (--pin) and the map helper (ranges), before the unshare
//! lease      --map-auto: take a free 65536-id range under the lease lock
//! unshare    CLONE_NEWUSER; the lease now names the new namespace
//! maps       written by the link itself (its own ids) or by the helper (ranges)
//! idmap      --idmap: the helper makes idmapped detached clones for the new namespace
//! data dir   as root with a range: DATA/userns-<host uid>, owned by the range's root
//! register   under the chain's name, while still the caller on the host; a named chain's
//!            directory is given to the host ids of the inner root
//! become     uid/gid 0 inside (or --map-user/--map-group), --keep-caps, hand the idmapped
//!            trees down (NSCHAIN_IDMAP), then exec
//! ```

mod auto;
mod creds;
mod helper;
pub mod idmap;
mod plan;
pub mod subid;
pub mod trees;

use clap::{Parser, ValueEnum};
use common::cli::CommandArgs;
use common::link::{Link, NsOptions};
use common::ns::{self, Namespace};
use common::{chain, debug, report, state, Context, Fatal, Next};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

use crate::helper::Helper;
use crate::idmap::Range;
use crate::plan::{Caller, Plan, Writer};

/// What `/proc/PID/setgroups` is set to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Setgroups {
    /// setgroups(2) works inside (needs a gid map written by newgidmap or root)
    Allow,
    /// setgroups(2) is refused inside, for good (required for an unprivileged self map)
    Deny,
}

impl Setgroups {
    fn as_str(self) -> &'static str {
        match self {
            Setgroups::Allow => "allow",
            Setgroups::Deny => "deny",
        }
    }
}

/// Run COMMAND in a new user namespace, as root inside (or the --map-user/--map-group ids).
///
/// With no map option, your uid and gid become 0 inside (--map-root). Ranges go through
/// newuidmap/newgidmap (checked against /etc/subuid and /etc/subgid) unless you hold
/// CAP_SETUID/CAP_SETGID, e.g. as root, then they are written directly. --map-auto picks a
/// 65536-id host range that no other running chain uses: from your /etc/subuid and /etc/subgid
/// entries, or, as root without entries, from the pool 524288..1879048191 in 64K blocks.
///
/// Put userns first in a rootless chain: every namespace made after it is owned by it.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:\n  userns -- id -u                                   # 0\n  userns -- utsns --hostname web1 -- hostname       # rootless chain\n  userns --map-users 0:100000:65536 --map-groups 0:100000:65536 -- id\n  userns --map-auto --name web1 -- pidns -- sh\n  userns --map-auto --idmap / -- pidns -- mntns --overlay / -- sh\n  userns --map-root --map-users 1:100000:65535 --map-groups 1:100000:65535 -- sh"
)]
pub struct Args {
    /// Map your uid and gid to 0 inside (the default when no map option is given)
    #[arg(long, conflicts_with_all = ["map_user", "map_group", "map_auto", "join"])]
    pub map_root: bool,

    /// Your uid inside (default 0), or a user name of /etc/passwd; with --map-users, which
    /// mapped uid to become
    #[arg(long, value_name = "UID|NAME", value_parser = idmap::parse_user, conflicts_with = "map_auto",
          allow_hyphen_values = true)]
    pub map_user: Option<u32>,

    /// Your gid inside (default 0), or a group name of /etc/group; with --map-groups, which
    /// mapped gid to become
    #[arg(long, value_name = "GID|NAME", value_parser = idmap::parse_group, conflicts_with = "map_auto",
          allow_hyphen_values = true)]
    pub map_group: Option<u32>,

    /// Map host uids OUTER..OUTER+COUNT-1 to INNER.. inside (repeatable)
    #[arg(long, value_name = "INNER:OUTER:COUNT", value_parser = idmap::parse_range,
          conflicts_with_all = ["map_auto", "join"], allow_hyphen_values = true)]
    pub map_users: Vec<Range>,

    /// Map host gids OUTER..OUTER+COUNT-1 to INNER.. inside (repeatable; default: the
    /// ranges of --map-users, so that your own gid is not mapped beside them)
    #[arg(long, value_name = "INNER:OUTER:COUNT", value_parser = idmap::parse_range,
          conflicts_with_all = ["map_auto", "join"], allow_hyphen_values = true)]
    pub map_groups: Vec<Range>,

    /// Map inner ids 0..65535 to a free 65536-id host range, leased while the chain runs
    #[arg(long, conflicts_with = "join")]
    pub map_auto: bool,

    /// Allow or deny setgroups(2) inside (default: deny for a self map, else unchanged)
    #[arg(long, value_name = "POLICY", value_enum, conflicts_with = "join")]
    pub setgroups: Option<Setgroups>,

    /// Keep the capabilities across the exec when the inner uid is not 0 (ambient set)
    #[arg(long)]
    pub keep_caps: bool,

    /// Hand down an idmapped clone of the tree at PATH (absolute; its own mount only, not
    /// its submounts): host root's files read as root inside. mntns uses it where it uses
    /// PATH (--rootfs, --overlay, --volume). Needs host root and a range map (repeatable)
    #[arg(long, value_name = "PATH", conflicts_with = "join")]
    pub idmap: Vec<PathBuf>,

    #[command(flatten)]
    pub ns: NsOptions,

    #[command(flatten)]
    pub command: CommandArgs,
}

/// Why the next link is exec'd for real: execve would compute other capabilities from the
/// new ids than this process holds (common::inprocess::execve_keeps_capabilities).
const CAPS_CHANGE: &str = "execve would change the capabilities userns leaves";

pub fn run(args: Args, cx: &mut Context) -> Result<Next, Fatal> {
    if !keeps_host_ids(&args) {
        // The later links run as other host ids: every record is written now, with the
        // caller's.
        cx.register_at_once()?;
    }
    let link = Link::prepare(cx, Namespace::User, &args.ns)?;
    // Resolve (and export) the host-side state paths now: later links run as root inside the
    // new namespace and would otherwise pick rootless defaults.
    state::run_dir();
    state::data_dir();
    if link.is_join() {
        return join(&link, &args, cx);
    }
    let idmap = trees::check(&args.idmap, cx.handdown().idmap.is_set())?;
    let caller = Caller::current();
    let mut plan = Plan::new(&args, &caller)?;
    let source = match plan.auto {
        true => Some(auto::source(caller.user(), caller.privileged)?),
        false => None,
    };
    trees::check_range(&idmap, &plan, &caller)?;
    trees::warn_without_consumer(&idmap, &args.command.command);

    // Helpers first: they must keep the caller's namespace and privileges.
    let pin = link.pin_helper()?;
    let mut helper = match plan.writer {
        Writer::Helper(_) => Some(Helper::spawn()?),
        Writer::Itself => None,
    };
    let mut lease = match &source {
        Some(source) => {
            // As root, a range's chains keep their layers in its data directory.
            let kept = match caller.privileged {
                true => {
                    // Stale --rm layers are not kept ones: collect them first.
                    debug::step("collect stale layers of every range", || {
                        trees::collect_stale_layers(&state::data_dir())
                    });
                    let name = chain::chosen_name(args.ns.name.as_deref());
                    auto::Kept::read(&state::data_dir(), name.as_deref())
                }
                false => auto::Kept::default(),
            };
            let lease = auto::allocate(source, args.ns.pin.as_deref(), &kept)?;
            plan.set_auto(lease.uid_range(), lease.gid_range());
            Some(lease)
        }
        None => None,
    };

    warn_unreachable_state(&plan, &caller);
    if caller.privileged && plan.host_ids().is_some() && !plan.auto {
        // Only host root reaches every range's data directory: a --rm layer left by a killed
        // chain of another range is collected here, whichever range this chain gets.
        debug::step("collect stale layers of every range", || {
            trees::collect_stale_layers(&state::data_dir())
        });
    }

    unshare_user()?;
    if let Some(lease) = lease.as_mut() {
        lease.commit(ns::current_inode(Namespace::User)?)?;
    }
    write_maps(&plan, helper.as_mut())?;
    if let Some(pin) = pin {
        pin.pin()?;
    }
    let trees = trees::MadeTrees::make(&idmap, helper.as_mut())?;
    let data_dir = share_data_dir(&plan, &caller, helper.as_mut())?;

    // Register while this process is still the caller on the host (its credentials change
    // only at the setresuid below), so the registration directory is writable.
    let mut extra = describe(&plan, lease.as_ref());
    if !idmap.is_empty() {
        extra.insert("idmap".into(), json!(trees.describe()));
    }
    if let Some(dir) = &data_dir {
        extra.insert("data_dir".into(), json!(dir.to_string_lossy()));
    }
    link.finish(common::procfs::own_pid(), extra)?;
    share_chain_dir(&plan, &caller, helper.as_mut())?;
    if let Some(helper) = helper {
        helper.finish();
    }

    creds::become_ids(plan.uid, plan.gid, args.keep_caps)?;
    exec_if_caps_change(cx)?;
    // The trees are the next links' (written at the exec, taken by mntns); the lease belongs
    // to the chain: a successful exec never drops it, a failed one releases it.
    cx.handdown().idmap = trees.hand_down();
    cx.hold(lease);
    Ok(Next::Exec(args.command.command))
}

/// Whether the ids inside are the caller's own on the host: root inside is the caller (a
/// self map, the default). The later links then write their records as the caller, and the
/// chain's records can still be written once, together.
fn keeps_host_ids(args: &Args) -> bool {
    args.ns.join.is_none()
        && !args.map_auto
        && args.map_users.is_empty()
        && args.map_groups.is_empty()
        && args.map_user.unwrap_or(0) == 0
        && args.map_group.unwrap_or(0) == 0
}

/// `unshare(CLONE_NEWUSER)`, saying plainly when user namespaces are switched off.
fn unshare_user() -> Result<(), Fatal> {
    ns::unshare(Namespace::User).map_err(|fatal| {
        let limit = std::fs::read_to_string("/proc/sys/user/max_user_namespaces");
        if limit.is_ok_and(|l| l.trim() == "0") {
            return Fatal::new(format!(
                "user namespaces are disabled here: user.max_user_namespaces is 0 ({:#})",
                fatal.error
            ))
            .with_hint("as root: sysctl -w user.max_user_namespaces=15000 (or ask the administrator)");
        }
        let clone = std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone");
        if clone.is_ok_and(|l| l.trim() == "0") && !nix::unistd::geteuid().is_root() {
            return Fatal::new(format!(
                "unprivileged user namespaces are disabled here: kernel.unprivileged_userns_clone is 0 ({:#})",
                fatal.error
            ))
            .with_hint("as root: sysctl -w kernel.unprivileged_userns_clone=1, or run as root");
        }
        fatal
    })
}

/// `--join`: enter the user namespace, become root inside (or the requested ids), exec.
fn join(link: &Link, args: &Args, cx: &mut Context) -> Result<Next, Fatal> {
    link.enter()?;
    let uid = args.map_user.unwrap_or(0);
    let gid = args.map_group.unwrap_or(0);
    let extra = current_maps();
    link.finish(common::procfs::own_pid(), extra)?;
    creds::become_ids(uid, gid, args.keep_caps)?;
    exec_if_caps_change(cx)?;
    Ok(Next::Exec(args.command.command.clone()))
}

/// The next link runs in process only if execve would leave the capabilities the new ids
/// have as they are (root inside: all of the bounding set; another uid: the ambient set);
/// else a real exec computes them.
fn exec_if_caps_change(cx: &mut Context) -> Result<(), Fatal> {
    if cx.links().is_none() {
        return Ok(());
    }
    match common::inprocess::execve_keeps_capabilities() {
        Ok(()) => Ok(()),
        Err(why) => {
            debug::note(format_args!("{why}"));
            cx.exec_for_real(CAPS_CHANGE)
        }
    }
}

fn write_maps(plan: &Plan, helper: Option<&mut Helper>) -> Result<(), Fatal> {
    let wanted = plan.setgroups;
    match (plan.writer, helper) {
        (Writer::Helper(method), Some(helper)) => helper.write_maps(
            method,
            &plan.uid_map,
            &plan.gid_map,
            wanted.map(Setgroups::as_str),
        )?,
        _ => write_own_maps(plan)?,
    }
    if wanted == Some(Setgroups::Allow) && !creds::setgroups_allowed() {
        return Err(Fatal::new(
            "--setgroups allow: newgidmap denied setgroups, because the gid map includes your own gid",
        )
        .with_hint("map only gids delegated to you in /etc/subgid, or drop --setgroups allow"));
    }
    Ok(())
}

/// The link writes its own single-line maps (its own ids only), `setgroups` denied first.
fn write_own_maps(plan: &Plan) -> Result<(), Fatal> {
    let write = |file: &str, text: &str| {
        debug::step(format_args!("write /proc/self/{file}"), || {
            std::fs::write(format!("/proc/self/{file}"), text)
        })
        .map_err(|e| {
            Fatal::from(e)
                .context(format!("unable to write /proc/self/{file}"))
                .with_hint(
                    "an LSM policy (AppArmor's restrict_unprivileged_userns, SELinux) may forbid \
                     unprivileged user namespaces from mapping ids",
                )
        })
    };
    write("uid_map", &plan.uid_map.text())?;
    if let Some(policy) = plan.setgroups {
        write("setgroups", policy.as_str())?;
    }
    write("gid_map", &plan.gid_map.text())
}

/// A named chain's registration directory must stay writable for the later links, which run
/// as the inner ids, i.e. other host ids: the helper gives it to them.
fn share_chain_dir(plan: &Plan, caller: &Caller, helper: Option<&mut Helper>) -> Result<(), Fatal> {
    let Some((name, generated)) = chain::inherited() else {
        return Ok(());
    };
    let Some((uid, gid)) = plan.host_ids() else {
        return Ok(());
    };
    if uid == caller.uid && gid == caller.gid {
        return Ok(());
    }
    match (helper, caller.privileged) {
        (Some(helper), true) => helper
            .chown(&chain::dir(&name), uid, gid)
            .map_err(|e| e.context(format!("unable to share chain {name} with the namespace"))),
        // A generated name only lists the chain: its later links run unlisted, unwarned.
        _ if generated => Ok(()),
        _ => {
            report::warning(format!(
                "the inner ids are host uid {uid} and gid {gid}, not yours: later links cannot \
                 register in chain {name} (map your own id to {} with --map-user)",
                plan.uid
            ));
            Ok(())
        }
    }
}

/// Before the unshare (the host's view of owners): warns when the later links, other host
/// ids, will not reach their state directories.
fn warn_unreachable_state(plan: &Plan, caller: &Caller) {
    let Some((uid, gid)) = plan.host_ids() else {
        return;
    };
    if !caller.privileged || (uid == caller.uid && gid == caller.gid) {
        return;
    }
    let mut dirs = vec![trees::range_data_dir(&state::data_dir(), uid)];
    if let Some(name) = chain::chosen_name(None) {
        dirs.push(chain::dir(&name));
    }
    trees::warn_unreachable(&dirs, uid, gid);
}

/// As root with a range map, the later links (root inside, another host uid outside) cannot
/// create anything in root's data directory: the helper makes them one of their own,
/// `DATA/userns-<host uid>` (mode 0700, owned by the range's root), exported as their
/// `NSCHAIN_DATA_DIR`. Overlay layers then land there, owned by the range.
fn share_data_dir(
    plan: &Plan,
    caller: &Caller,
    helper: Option<&mut Helper>,
) -> Result<Option<PathBuf>, Fatal> {
    let Some((uid, gid)) = plan.host_ids() else {
        return Ok(None);
    };
    let (Some(helper), true) = (helper, caller.privileged) else {
        return Ok(None);
    };
    if uid == caller.uid && gid == caller.gid {
        return Ok(None);
    }
    let dir = trees::range_data_dir(&state::data_dir(), uid);
    helper
        .make_dir(&dir, uid, gid)
        .map_err(|e| e.context("unable to prepare the data directory of the namespace"))?;
    state::hand_down_data_dir(&dir);
    Ok(Some(dir))
}

fn describe(plan: &Plan, lease: Option<&auto::Lease>) -> Map<String, Value> {
    let mut extra = current_maps();
    extra.insert("inner_uid".into(), json!(plan.uid));
    extra.insert("inner_gid".into(), json!(plan.gid));
    if let Some(lease) = lease {
        extra.insert(
            "lease".into(),
            json!({
                "uid": lease.uid_range().outer,
                "gid": lease.gid_range().outer,
                "count": lease.uid_range().count,
                "source": lease.source(),
                "file": lease.path().to_string_lossy(),
            }),
        );
    }
    extra
}

/// The kernel's view of this process's maps (the truth, whatever was asked).
fn current_maps() -> Map<String, Value> {
    let lines = |file: &str| -> Vec<String> {
        std::fs::read_to_string(format!("/proc/self/{file}"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let mut extra = Map::new();
    extra.insert("uid_map".into(), json!(lines("uid_map")));
    extra.insert("gid_map".into(), json!(lines("gid_map")));
    extra.insert(
        "setgroups".into(),
        json!(std::fs::read_to_string("/proc/self/setgroups")
            .unwrap_or_default()
            .trim()),
    );
    extra
}
