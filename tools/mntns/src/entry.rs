//! The entry into the container, the last thing before exec (DESIGN.md §2, rule 6): working
//! directory checked to be inside the root, the caller's terminal and session keyring left
//! (session.rs), the seccomp filter, user switch, capabilities reduced, no_new_privs, every
//! fd ≥ 3 closed unless kept, then COMMAND.

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use caps::{CapSet, Capability};
use common::{debug, Fatal, Next};
use nix::errno::Errno;
use nix::unistd::{Gid, Uid};

use crate::volume::User;

/// podman's default capability set (containers.conf `default_capabilities`): Docker's without
/// NET_RAW (ARP and router-advertisement spoofing of the other containers of a bridge), MKNOD
/// (device nodes) and AUDIT_WRITE. `--cap-add` brings them back.
pub const DEFAULT_CAPS: [Capability; 11] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_KILL,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETGID,
    Capability::CAP_SETPCAP,
    Capability::CAP_SETUID,
    Capability::CAP_SYS_CHROOT,
];

/// What an added capability opens, for those that open a way towards the host.
const RISKY_CAPS: [(Capability, &str); 5] = [
    (
        Capability::CAP_SYS_ADMIN,
        "lets the container mount file systems, use most privileged kernel interfaces and try most known container escapes",
    ),
    (
        Capability::CAP_SYS_PTRACE,
        "lets the container trace and read the memory of every process it can see, processes joined with nsps exec too",
    ),
    (
        Capability::CAP_SYS_MODULE,
        "lets the container load code into the host's kernel",
    ),
    (
        Capability::CAP_SYS_RAWIO,
        "lets the container use I/O ports and raw device access (iopl, ioperm, /dev/mem where present)",
    ),
    (
        Capability::CAP_NET_ADMIN,
        "lets the container reconfigure its network: take another container's address on a bridge, change routes, ARP entries and firewall rules, make interfaces",
    ),
];

/// One warning line per `--cap-add` value that opens a way towards the host.
pub fn risky_additions(add: &[CapSpec]) -> Vec<String> {
    let mut lines = Vec::new();
    for spec in add {
        let line = match spec {
            CapSpec::All => "--cap-add ALL gives the container every capability: as much power over the host as its user has outside".to_owned(),
            CapSpec::One(cap) => match RISKY_CAPS.iter().find(|(c, _)| c == cap) {
                Some((_, what)) => format!("--cap-add {} {what}", short_name(*cap)),
                None => continue,
            },
        };
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    lines
}

/// `SYS_ADMIN` for CAP_SYS_ADMIN (as the flag takes it).
fn short_name(cap: Capability) -> String {
    let name = cap.to_string();
    name.strip_prefix("CAP_").unwrap_or(&name).to_owned()
}

/// A `--cap-add`/`--cap-drop` value: `ALL` or one capability (`NET_ADMIN`, `cap_net_admin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapSpec {
    All,
    One(Capability),
}

impl FromStr for CapSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let upper = text.to_ascii_uppercase();
        if upper == "ALL" {
            return Ok(CapSpec::All);
        }
        let name = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        Capability::from_str(&name).map(CapSpec::One).map_err(|_| {
            format!("'{text}' is not a capability (see capabilities(7); ALL for every one)")
        })
    }
}

/// The capability set COMMAND gets from `base` and the user's additions and drops.
pub fn compute_caps(
    base: &HashSet<Capability>,
    all: &HashSet<Capability>,
    add: &[CapSpec],
    drop: &[CapSpec],
) -> HashSet<Capability> {
    let mut set = base.clone();
    if drop.contains(&CapSpec::All) {
        set.clear();
    }
    if add.contains(&CapSpec::All) {
        set.extend(all.iter().copied());
    }
    for spec in add {
        if let CapSpec::One(cap) = spec {
            set.insert(*cap);
        }
    }
    for spec in drop {
        if let CapSpec::One(cap) = spec {
            if !add.contains(spec) {
                set.remove(cap);
            }
        }
    }
    set
}

/// The capabilities of `specs` (ALL: every one) that `keep` holds.
fn select(specs: &[CapSpec], keep: &HashSet<Capability>) -> HashSet<Capability> {
    if specs.contains(&CapSpec::All) {
        return keep.clone();
    }
    specs
        .iter()
        .filter_map(|s| match s {
            CapSpec::One(cap) if keep.contains(cap) => Some(*cap),
            _ => None,
        })
        .collect()
}

/// What the entry does.
#[derive(Debug, Default)]
pub struct Entry {
    /// A new root: fds are closed and capabilities reduced by default.
    pub container: bool,
    pub preserve_fds: u32,
    pub user: Option<User>,
    /// The user's supplementary groups (`--user`, from the root's /etc/group).
    pub groups: Vec<u32>,
    pub cap_add: Vec<CapSpec>,
    pub cap_drop: Vec<CapSpec>,
    /// `--cap-inheritable`, `--cap-ambient`: within the set above.
    pub cap_inheritable: Vec<CapSpec>,
    pub cap_ambient: Vec<CapSpec>,
    pub no_new_privs: bool,
    /// A new root or --join: a new session keyring (not `--no-new-keyring`).
    pub new_keyring: bool,
    /// The working directory, already resolved inside the root before pivot_root.
    pub workdir: Option<(PathBuf, OwnedFd)>,
    /// COMMAND exists on the host (looked up before the root changed): a 127 gets a hint.
    pub on_host: bool,
    /// COMMAND is one of our links (then mntns is not last: the hint says so).
    pub next_is_a_link: bool,
    /// `--join` of a process: its credentials instead of the user and capability defaults.
    pub creds: Option<common::creds::Creds>,
    /// A warning said once the entry has succeeded, right before the exec (so that a
    /// failed entry still says one fatal line).
    pub notice: Option<String>,
    /// The `--rm` waiter (waiter.rs): COMMAND dies with it, also after a change of user (which
    /// clears the parent-death signal).
    pub waiter: Option<nix::unistd::Pid>,
    /// `--tty`: the socket to the process that proxies the container's pty (tty.rs).
    pub tty: Option<crate::tty::ProxyLink>,
    /// `--ready-fd` / `--start-fifo`: passed last, right before the exec.
    pub gate: crate::start::Gate,
    /// The seccomp profile (`--seccomp`; the default one in a new root), compiled for the
    /// capabilities COMMAND will hold.
    pub profile: Option<common::seccomp_policy::Compiled>,
    /// This process's bounding set, read once (the kernel answers one capability a call)
    /// for the profile and for the drops; nothing here changes it before the drops.
    pub bounding: std::cell::OnceCell<HashSet<Capability>>,
}

impl Entry {
    /// Enters the container; COMMAND comes next.
    pub fn exec(mut self, command: Vec<OsString>, cx: &mut common::Context) -> Result<Next, Fatal> {
        self.prepare()?;
        std::mem::take(&mut self.gate).pass()?;
        if let Some(notice) = &self.notice {
            common::report::warning(notice);
        }
        if self.container && self.on_host {
            cx.hint_if_not_found(if self.next_is_a_link {
                "it exists on the host but not inside the new root: a link after a root change must exist inside it, so put mntns last in the chain (DESIGN.md §2, rule 6)"
            } else {
                "it exists on the host but not inside the new root: install it in the root, or bind it in with -v"
            });
        }
        Ok(Next::Exec(command))
    }

    /// Whether COMMAND will hold `cap` (in a new root, from the default set and the flags).
    pub fn grants(&self, cap: Capability) -> bool {
        let base: HashSet<Capability> = DEFAULT_CAPS.into_iter().collect();
        compute_caps(&base, &caps::all(), &self.cap_add, &self.cap_drop).contains(&cap)
            && self.user.is_none_or(|u| u.uid == 0)
    }

    /// The names of the capabilities COMMAND will hold (what a seccomp profile is judged
    /// against): the join's credentials, else the default set and the flags.
    pub fn capability_names(&self) -> HashSet<String> {
        if let Some(creds) = &self.creds {
            return creds.bounding_names();
        }
        let base: HashSet<Capability> = if self.container {
            DEFAULT_CAPS.into_iter().collect()
        } else {
            caps::read(None, CapSet::Permitted).unwrap_or_default()
        };
        let all = self.bounding().unwrap_or_default();
        compute_caps(&base, &all, &self.cap_add, &self.cap_drop)
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    /// The bounding set ([`Entry::bounding`]), read at the first call.
    fn bounding(&self) -> Result<HashSet<Capability>, caps::errors::CapsError> {
        if let Some(set) = self.bounding.get() {
            return Ok(set.clone());
        }
        let set = caps::read(None, CapSet::Bounding)?;
        Ok(self.bounding.get_or_init(|| set).clone())
    }

    fn prepare(&self) -> Result<(), Fatal> {
        self.change_dir()?;
        if self.container {
            crate::session::leave_callers_session(self.new_keyring)?;
        }
        if let Some(creds) = &self.creds {
            // The filter first, then the container's user and capability sets.
            creds.apply(self.container || creds.filtered, self.profile.as_ref())?;
        } else {
            if self.container {
                // Before the capabilities go: installing a filter needs CAP_SYS_ADMIN here.
                crate::seccomp::deny_terminal_injection()?;
            }
            if let Some(profile) = &self.profile {
                common::seccomp_policy::install(profile, "the container's profile")?;
            }
            self.switch_user_and_caps()?;
        }
        if let Some(waiter) = self.waiter {
            // After the uid changed: a uid change clears the parent-death signal.
            crate::waiter::die_with(waiter)?;
        }
        if self.no_new_privs {
            debug::step("no_new_privs", nix::sys::prctl::set_no_new_privs)
                .map_err(|e| Fatal::from(e).context("unable to set no_new_privs"))?;
        }
        if let Some(link) = &self.tty {
            // Last, with COMMAND's credentials: the pty is its user's.
            crate::tty::take_terminal(link)?;
        }
        if self.container || self.preserve_fds > 0 {
            self.close_fds()?;
        }
        Ok(())
    }

    fn change_dir(&self) -> Result<(), Fatal> {
        let Some((path, fd)) = &self.workdir else {
            return Ok(());
        };
        debug::step(
            format_args!("chdir {}", path.display()),
            || -> anyhow::Result<()> {
                nix::unistd::fchdir(fd.as_raw_fd())
                    .with_context(|| format!("unable to enter {}", path.display()))?;
                check_cwd_inside_root()
            },
        )
        .map_err(|e| Fatal::from(e).context("unable to set the working directory"))
    }

    fn switch_user_and_caps(&self) -> Result<(), Fatal> {
        let change_caps = self.container
            || !self.cap_add.is_empty()
            || !self.cap_drop.is_empty()
            || !self.cap_ambient.is_empty()
            || !self.cap_inheritable.is_empty();
        if !change_caps && self.user.is_none() {
            return Ok(());
        }
        let keep = if change_caps {
            let base: HashSet<Capability> = if self.container {
                DEFAULT_CAPS.into_iter().collect()
            } else {
                caps::read(None, CapSet::Permitted)
                    .map_err(|e| Fatal::new(format!("unable to read the capabilities: {e}")))?
            };
            let all = self
                .bounding()
                .map_err(|e| Fatal::new(format!("unable to read the capabilities: {e}")))?;
            Some((
                compute_caps(&base, &all, &self.cap_add, &self.cap_drop),
                all,
            ))
        } else {
            None
        };
        debug::step("user and capabilities", || -> anyhow::Result<()> {
            if let Some((keep, bounding)) = &keep {
                // The bounding set first: it needs CAP_SETPCAP, which may be dropped below.
                // Only what it holds needs dropping (one call each).
                for &cap in bounding {
                    if !keep.contains(&cap) {
                        caps::drop(None, CapSet::Bounding, cap).with_context(|| {
                            format!("unable to drop {cap} from the bounding set")
                        })?;
                    }
                }
                caps::clear(None, CapSet::Ambient).context("unable to clear the ambient set")?;
            }
            if let Some(user) = self.user {
                // Asked-for inheritable or ambient capabilities go to a non-root user too (as
                // runc): the permitted set must survive the change of uid for that.
                let carry = !self.cap_ambient.is_empty() || !self.cap_inheritable.is_empty();
                if carry {
                    nix::sys::prctl::set_keepcaps(true).context("unable to set keepcaps")?;
                }
                switch_user(user, &self.groups)?;
            }
            if let Some((keep, _)) = &keep {
                // After a switch to a non-zero uid the kernel has cleared these already.
                let permitted = caps::read(None, CapSet::Permitted)?;
                let keep: HashSet<Capability> = keep.intersection(&permitted).copied().collect();
                caps::set(None, CapSet::Effective, &keep)
                    .context("unable to set the effective capabilities")?;
                caps::set(None, CapSet::Permitted, &keep)
                    .context("unable to set the permitted capabilities")?;
                // Inheritable and ambient only as asked (--cap-inheritable, --cap-ambient),
                // and only within the set COMMAND holds; the ambient ones survive its exec.
                let ambient = select(&self.cap_ambient, &keep);
                let mut inheritable = select(&self.cap_inheritable, &keep);
                inheritable.extend(&ambient);
                caps::set(None, CapSet::Inheritable, &inheritable)
                    .context("unable to set the inheritable capabilities")?;
                for cap in ambient {
                    caps::raise(None, CapSet::Ambient, cap)
                        .with_context(|| format!("unable to raise {cap} in the ambient set"))?;
                }
            }
            Ok(())
        })
        .map_err(|e| Fatal::from(e).context("unable to set up the user and capabilities"))
    }

    fn close_fds(&self) -> Result<(), Fatal> {
        let mut keep = self.preserve_fds;
        if let Some(n) = std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
        {
            keep = keep.max(n);
            std::env::set_var("LISTEN_PID", std::process::id().to_string());
        }
        let first = 3u32.saturating_add(keep);
        debug::step(format_args!("close fds >= {first} at exec"), || {
            // Marked close-on-exec rather than closed: the exec closes them all, and should it
            // fail, no descriptor still owned by the tool was closed behind its back.
            common::sys::fs::cloexec_range_or_each(first)
        })
        .map_err(|e| Fatal::from(e).context("unable to close the inherited file descriptors"))
    }
}

/// Supplementary groups set to `groups` (when the user namespace allows setgroups), then gid,
/// then uid.
fn switch_user(user: User, groups: &[u32]) -> anyhow::Result<()> {
    let groups: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    match nix::unistd::setgroups(&groups) {
        Ok(()) => {}
        Err(Errno::EPERM)
            if std::fs::read_to_string("/proc/self/setgroups")
                .is_ok_and(|s| s.trim() == "deny") => {}
        Err(e) => {
            return Err(anyhow::Error::from(e).context("unable to clear the supplementary groups"))
        }
    }
    let gid = Gid::from_raw(user.gid);
    let uid = Uid::from_raw(user.uid);
    nix::unistd::setresgid(gid, gid, gid).with_context(|| {
        format!(
            "unable to switch to gid {} (is it mapped in the user namespace?)",
            user.gid
        )
    })?;
    nix::unistd::setresuid(uid, uid, uid).with_context(|| {
        format!(
            "unable to switch to uid {} (is it mapped in the user namespace?)",
            user.uid
        )
    })?;
    Ok(())
}

/// CVE-2024-21626: a working directory reached through a leaked fd or /proc magic link lies
/// outside the root, and getcwd says so with "(unreachable)".
pub fn check_cwd_inside_root() -> anyhow::Result<()> {
    let cwd = nix::unistd::getcwd().context("unable to read the working directory")?;
    if !cwd.is_absolute() || !Path::new("/").join(&cwd).starts_with("/") {
        anyhow::bail!(
            "the working directory {} is outside the root",
            cwd.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_parse() {
        assert_eq!("ALL".parse::<CapSpec>().unwrap(), CapSpec::All);
        assert_eq!("all".parse::<CapSpec>().unwrap(), CapSpec::All);
        assert_eq!(
            "net_admin".parse::<CapSpec>().unwrap(),
            CapSpec::One(Capability::CAP_NET_ADMIN)
        );
        assert_eq!(
            "CAP_SYS_ADMIN".parse::<CapSpec>().unwrap(),
            CapSpec::One(Capability::CAP_SYS_ADMIN)
        );
        for bad in ["", "CAP_", "NET_ADMINX", "cap_bogus", "1"] {
            assert!(bad.parse::<CapSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn caps_are_computed_like_podman() {
        let base: HashSet<Capability> = DEFAULT_CAPS.into_iter().collect();
        let all: HashSet<Capability> = caps::all();
        let one = |c| CapSpec::One(c);
        assert_eq!(compute_caps(&base, &all, &[], &[]), base);
        assert!(compute_caps(&base, &all, &[], &[CapSpec::All]).is_empty());
        let only = compute_caps(
            &base,
            &all,
            &[one(Capability::CAP_NET_ADMIN)],
            &[CapSpec::All],
        );
        assert_eq!(only, [Capability::CAP_NET_ADMIN].into_iter().collect());
        let most = compute_caps(
            &base,
            &all,
            &[CapSpec::All],
            &[one(Capability::CAP_SYS_ADMIN)],
        );
        assert_eq!(most.len(), all.len() - 1);
        let fewer = compute_caps(&base, &all, &[], &[one(Capability::CAP_CHOWN)]);
        assert_eq!(fewer.len(), 10);
    }

    #[test]
    fn the_default_set_is_podmans_eleven() {
        let base: HashSet<Capability> = DEFAULT_CAPS.into_iter().collect();
        assert_eq!(base.len(), 11);
        for absent in [
            Capability::CAP_NET_RAW,
            Capability::CAP_MKNOD,
            Capability::CAP_AUDIT_WRITE,
        ] {
            assert!(!base.contains(&absent), "{absent}");
        }
        let back = compute_caps(
            &base,
            &caps::all(),
            &[CapSpec::One(Capability::CAP_NET_RAW)],
            &[],
        );
        assert!(back.contains(&Capability::CAP_NET_RAW));
    }

    #[test]
    fn risky_additions_warn_once_each() {
        let one = |c| CapSpec::One(c);
        assert!(
            risky_additions(&[one(Capability::CAP_NET_RAW), one(Capability::CAP_MKNOD)]).is_empty()
        );
        let lines = risky_additions(&[
            one(Capability::CAP_SYS_ADMIN),
            one(Capability::CAP_SYS_ADMIN),
            one(Capability::CAP_NET_ADMIN),
            CapSpec::All,
        ]);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("--cap-add SYS_ADMIN lets the container mount"));
        assert!(lines[1].starts_with("--cap-add NET_ADMIN "));
        assert!(lines[2].starts_with("--cap-add ALL "));
        for (cap, _) in RISKY_CAPS {
            let line = &risky_additions(&[one(cap)])[0];
            assert!(line.contains(&short_name(cap)) && !line.contains('\n'));
        }
    }
}
