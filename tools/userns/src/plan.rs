//! From the options to the maps: which lines each map gets, who writes them, what
//! `setgroups` says, and which inner ids the link becomes. Everything here is checked before
//! anything is created, so that a bad value leaves nothing behind.

use std::path::Path;

use common::Fatal;

use crate::helper::Method;
use crate::idmap::{IdMap, Range};
use crate::subid::{SubIds, User, SUBGID, SUBUID};
use crate::{Args, Setgroups};

/// The caller, as the kernel and `newuidmap` see it.
#[derive(Clone, Debug)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// The user of the real uid, looked up (NSS) only when /etc/subuid matters.
    user: std::cell::OnceCell<User>,
    /// CAP_SETUID and CAP_SETGID held: maps are written directly, any outer ids.
    pub privileged: bool,
}

impl Caller {
    pub fn current() -> Caller {
        Caller {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            user: std::cell::OnceCell::new(),
            privileged: crate::creds::privileged(),
        }
    }

    /// The user whose /etc/subuid and /etc/subgid entries apply.
    pub fn user(&self) -> &User {
        self.user.get_or_init(User::current)
    }
}

/// Who writes the maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// The link itself, after the unshare: a single line mapping its own ids, with
    /// `setgroups` denied first (as `unshare --map-root-user`).
    Itself,
    /// The helper forked before the unshare.
    Helper(Method),
}

/// What the link will do.
#[derive(Clone, Debug)]
pub struct Plan {
    pub uid_map: IdMap,
    pub gid_map: IdMap,
    pub writer: Writer,
    /// Written to `setgroups` before the gid map (`None`: left as the kernel or newgidmap
    /// leave it).
    pub setgroups: Option<Setgroups>,
    /// The inner ids to become.
    pub uid: u32,
    pub gid: u32,
    /// `--map-auto`: the ranges come from a lease taken later.
    pub auto: bool,
}

impl Plan {
    /// Decides the maps from the options (for `--map-auto`, with placeholder ranges until
    /// [`Plan::set_auto`]).
    pub fn new(args: &Args, caller: &Caller) -> Result<Plan, Fatal> {
        let uid = args.map_user.unwrap_or(0);
        let gid = args.map_group.unwrap_or(0);
        let (uid_map, gid_map, note) = if args.map_auto {
            (IdMap::default(), IdMap::default(), None)
        } else {
            let (users, groups, note) = follow(&args.map_users, &args.map_groups);
            (
                side(&users, args.map_user, args.map_root, caller.uid),
                side(&groups, args.map_group, args.map_root, caller.gid),
                note,
            )
        };
        let only_self = uid_map.is_single_of(caller.uid) && gid_map.is_single_of(caller.gid);
        let writer = if !args.map_auto && only_self && args.setgroups != Some(Setgroups::Allow) {
            Writer::Itself
        } else if caller.privileged {
            Writer::Helper(Method::Direct)
        } else {
            Writer::Helper(Method::NewIdMap)
        };
        let setgroups = match writer {
            Writer::Itself => Some(Setgroups::Deny),
            Writer::Helper(_) => args.setgroups,
        };
        let plan = Plan {
            uid_map,
            gid_map,
            writer,
            setgroups,
            uid,
            gid,
            auto: args.map_auto,
        };
        if !plan.auto {
            plan.check(caller)?;
        }
        if let Some(note) = note {
            common::report::note(note);
        }
        Ok(plan)
    }

    fn check(&self, caller: &Caller) -> Result<(), Fatal> {
        self.uid_map
            .check("uid")
            .map_err(|e| Fatal::new(format!("--map-users: {e}")))?;
        self.gid_map
            .check("gid")
            .map_err(|e| Fatal::new(format!("--map-groups: {e}")))?;
        if self.uid_map.outer_of(self.uid).is_none() {
            return Err(Fatal::new(format!(
                "inner uid {} is not mapped by the uid map ({})",
                self.uid,
                self.uid_map.text().trim_end().replace('\n', ", ")
            ))
            .with_hint("map it with --map-users, or choose a mapped id with --map-user"));
        }
        if self.gid_map.outer_of(self.gid).is_none() {
            return Err(Fatal::new(format!(
                "inner gid {} is not mapped by the gid map ({})",
                self.gid,
                self.gid_map.text().trim_end().replace('\n', ", ")
            ))
            .with_hint("map it with --map-groups, or choose a mapped id with --map-group"));
        }
        if self.writer == Writer::Helper(Method::NewIdMap) {
            SubIds::read(Path::new(SUBUID))?.check(
                caller.user(),
                caller.uid,
                &self.uid_map.ranges,
                "--map-users",
            )?;
            SubIds::read(Path::new(SUBGID))?.check(
                caller.user(),
                caller.gid,
                &self.gid_map.ranges,
                "--map-groups",
            )?;
            if self.setgroups == Some(Setgroups::Allow) {
                let own = SubIds::read(Path::new(SUBGID))?;
                let delegated = own.of(caller.user());
                let undelegated = self
                    .gid_map
                    .ranges
                    .iter()
                    .find(|r| !delegated.iter().any(|e| e.covers(r.outer, r.count)));
                if let Some(range) = undelegated {
                    return Err(Fatal::new(format!(
                        "--setgroups allow: the gid map maps your own gid ({range}), newgidmap would deny setgroups"
                    ))
                    .with_hint(format!(
                        "map only gids delegated to you in {SUBGID} (e.g. --map-groups 0:START:COUNT), or drop --setgroups allow"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Fills in the `--map-auto` ranges.
    pub fn set_auto(&mut self, uid: Range, gid: Range) {
        self.uid_map = IdMap { ranges: vec![uid] };
        self.gid_map = IdMap { ranges: vec![gid] };
    }

    /// The host uid and gid the inner ids become.
    pub fn host_ids(&self) -> Option<(u32, u32)> {
        Some((
            self.uid_map.outer_of(self.uid)?,
            self.gid_map.outer_of(self.gid)?,
        ))
    }
}

/// The ranges of both sides, and the note to print once they are checked. `--map-users`
/// alone is followed by the group side: left to the default, `--map-users` alone would map the
/// caller's own gid — host root's gid 0 when run as root — next to a range of unprivileged
/// uids, and the container's root would own the host's root group.
fn follow(users: &[Range], groups: &[Range]) -> (Vec<Range>, Vec<Range>, Option<String>) {
    let shown = |ranges: &[Range]| {
        ranges
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    match (users.is_empty(), groups.is_empty()) {
        (false, true) => (
            users.to_vec(),
            users.to_vec(),
            Some(format!(
                "the gid map follows --map-users ({}); give --map-groups to choose another",
                shown(users)
            )),
        ),
        _ => (users.to_vec(), groups.to_vec(), None),
    }
}

/// One side's map: the ranges, plus a line mapping the caller's own id to `single` (default
/// 0) when no range is given or with `--map-root`. With ranges, `single` only says which
/// mapped inner id to become.
fn side(ranges: &[Range], single: Option<u32>, map_root: bool, own: u32) -> IdMap {
    let mut map = IdMap {
        ranges: ranges.to_vec(),
    };
    if map_root || ranges.is_empty() {
        map.ranges.insert(
            0,
            Range {
                inner: single.unwrap_or(0),
                outer: own,
                count: 1,
            },
        );
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> Range {
        text.parse().unwrap()
    }

    #[test]
    fn sides() {
        assert_eq!(side(&[], None, false, 1000).ranges, vec![r("0:1000:1")]);
        assert_eq!(side(&[], Some(7), false, 1000).ranges, vec![r("7:1000:1")]);
        assert_eq!(
            side(&[r("0:100000:65536")], Some(7), false, 1000).ranges,
            vec![r("0:100000:65536")]
        );
        assert_eq!(
            side(&[r("1:100000:65535")], Some(0), true, 1000).ranges,
            vec![r("0:1000:1"), r("1:100000:65535")]
        );
    }
}
