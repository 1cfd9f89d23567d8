//! The container's credentials, as its payload holds them (`/proc/PID/status`), and giving
//! them to a joining process (`nsps exec`, `mntns --join` of a process or a chain): user, groups, the five capability sets, no_new_privs and the
//! seccomp filter. A joined process never gets more than the container has.

use std::collections::HashSet;

use anyhow::{bail, Context};
use caps::{CapSet, Capability};
use common::{debug, Fatal};
use nix::unistd::{Gid, Uid};

/// What `/proc/PID/status` says of a process's credentials. Ids are as the reader's user
/// namespace sees them (the one that opened the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    /// Real, effective, saved.
    pub uid: [u32; 3],
    /// Real, effective, saved.
    pub gid: [u32; 3],
    /// The supplementary groups.
    pub groups: Vec<u32>,
    /// CapInh.
    pub inheritable: u64,
    /// CapPrm.
    pub permitted: u64,
    /// CapEff.
    pub effective: u64,
    /// CapBnd.
    pub bounding: u64,
    /// CapAmb.
    pub ambient: u64,
    /// NoNewPrivs.
    pub no_new_privs: bool,
    /// Under a seccomp filter (`Seccomp: 2`; strict mode 1 would not let it exec anything).
    pub filtered: bool,
}

impl Creds {
    /// Reads them from `/proc/PID/status` (ids as this process's user namespace sees them).
    pub fn of_process(pid: u32) -> anyhow::Result<Creds> {
        let path = format!("/proc/{pid}/status");
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("unable to read {path}"))?;
        Creds::parse(&text)
    }

    /// Parses the text of `/proc/PID/status`.
    pub fn parse(status: &str) -> anyhow::Result<Creds> {
        let field = |name: &str| -> anyhow::Result<&str> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
                .with_context(|| format!("no {name} line in the process status"))
        };
        let ids = |name: &str| -> anyhow::Result<[u32; 3]> {
            let all: Vec<u32> = field(name)?
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .with_context(|| format!("bad {name} line in the process status"))?;
            match all[..] {
                [real, effective, saved, ..] => Ok([real, effective, saved]),
                _ => bail!("bad {name} line in the process status"),
            }
        };
        let mask = |name: &str| -> anyhow::Result<u64> {
            u64::from_str_radix(field(name)?, 16)
                .with_context(|| format!("bad {name} line in the process status"))
        };
        let groups = field("Groups")?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .context("bad Groups line in the process status")?;
        Ok(Creds {
            uid: ids("Uid")?,
            gid: ids("Gid")?,
            groups,
            inheritable: mask("CapInh")?,
            permitted: mask("CapPrm")?,
            effective: mask("CapEff")?,
            bounding: mask("CapBnd")?,
            ambient: mask("CapAmb")?,
            no_new_privs: field("NoNewPrivs").is_ok_and(|v| v == "1"),
            filtered: field("Seccomp").is_ok_and(|v| v == "2"),
        })
    }

    /// Becomes what the container is. Call it inside every namespace of the container, in its
    /// root, still privileged there, and before the process can be seen from inside.
    pub fn apply(
        &self,
        filter: bool,
        profile: Option<&crate::seccomp_policy::Compiled>,
    ) -> Result<(), Fatal> {
        if filter {
            // Before the capabilities go: installing a filter needs CAP_SYS_ADMIN here.
            common::seccomp::deny_terminal_injection()?;
        }
        if let Some(profile) = profile {
            crate::seccomp_policy::install(profile, "the container's profile")?;
        }
        debug::step("the container's user and capabilities", || self.switch())
            .map_err(|e| Fatal::from(e).context("unable to take the container's credentials"))?;
        if self.no_new_privs {
            debug::step("no_new_privs", nix::sys::prctl::set_no_new_privs)
                .map_err(|e| Fatal::from(e).context("unable to set no_new_privs"))?;
        }
        Ok(())
    }

    fn switch(&self) -> anyhow::Result<()> {
        // The bounding set first: dropping needs CAP_SETPCAP, which may go below.
        for cap in caps::read(None, CapSet::Bounding)? {
            if !has(self.bounding, cap) {
                caps::drop(None, CapSet::Bounding, cap)
                    .with_context(|| format!("unable to drop {cap} from the bounding set"))?;
            }
        }
        caps::clear(None, CapSet::Ambient).context("unable to clear the ambient set")?;
        // Keep the permitted set across the switch to a non-zero uid; it is cut down below.
        nix::sys::prctl::set_keepcaps(true).context("unable to keep the capabilities")?;
        self.switch_ids()?;
        // Inheritable first (it may take only what is permitted), then effective before
        // permitted (effective must stay a subset of permitted).
        caps::set(None, CapSet::Inheritable, &set(self.inheritable))
            .context("unable to set the inheritable capabilities")?;
        caps::set(
            None,
            CapSet::Effective,
            &set(self.effective & self.permitted),
        )
        .context("unable to set the effective capabilities")?;
        caps::set(None, CapSet::Permitted, &set(self.permitted))
            .context("unable to set the permitted capabilities")?;
        for cap in set(self.ambient) {
            caps::raise(None, CapSet::Ambient, cap)
                .with_context(|| format!("unable to raise {cap} in the ambient set"))?;
        }
        nix::sys::prctl::set_keepcaps(false).context("unable to reset keepcaps")?;
        Ok(())
    }

    fn switch_ids(&self) -> anyhow::Result<()> {
        let mut groups: Vec<Gid> = self.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        let mut current = nix::unistd::getgroups().context("unable to read the groups")?;
        groups.sort_by_key(|g| g.as_raw());
        current.sort_by_key(|g| g.as_raw());
        // A rootless user namespace denies setgroups: there the payload has the caller's
        // groups, the ones this process has too.
        if groups != current {
            nix::unistd::setgroups(&groups).context("unable to set the groups")?;
        }
        let [r, e, s] = self.gid.map(Gid::from_raw);
        nix::unistd::setresgid(r, e, s)
            .with_context(|| format!("unable to switch to gid {}", self.gid[1]))?;
        let [r, e, s] = self.uid.map(Uid::from_raw);
        nix::unistd::setresuid(r, e, s)
            .with_context(|| format!("unable to switch to uid {}", self.uid[1]))?;
        Ok(())
    }
}

fn has(mask: u64, cap: Capability) -> bool {
    cap.index() < 64 && mask & cap.bitmask() != 0
}

impl Creds {
    /// The names (`CAP_SYS_ADMIN`, ...) of the bounding set: what a seccomp profile is judged
    /// against.
    pub fn bounding_names(&self) -> HashSet<String> {
        set(self.bounding).iter().map(|c| c.to_string()).collect()
    }
}

/// The capabilities of a mask that this system knows.
fn set(mask: u64) -> HashSet<Capability> {
    caps::all().into_iter().filter(|c| has(mask, *c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\nFDSize:\t64\nGroups:\t10 20 \nNStgid:\t7\t2\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n";

    #[test]
    fn the_status_gives_user_groups_caps_and_flags() {
        let creds = Creds::parse(STATUS).unwrap();
        assert_eq!(creds.uid, [1000; 3]);
        assert_eq!(creds.gid, [100; 3]);
        assert_eq!(creds.groups, vec![10, 20]);
        assert_eq!(creds.effective, 0);
        assert_eq!(creds.bounding, 0xa80425fb);
        assert!(creds.no_new_privs);
        assert!(creds.filtered);
        assert!(has(creds.bounding, Capability::CAP_CHOWN));
        assert!(!has(creds.bounding, Capability::CAP_SYS_ADMIN));
        assert_eq!(set(creds.bounding).len(), 14);
    }

    #[test]
    fn an_unfiltered_root_process_and_a_bad_status() {
        let root = STATUS
            .replace("1000", "0")
            .replace("Seccomp:\t2", "Seccomp:\t0")
            .replace("NoNewPrivs:\t1", "NoNewPrivs:\t0")
            .replace("Groups:\t10 20 ", "Groups:\t");
        let creds = Creds::parse(&root).unwrap();
        assert_eq!(creds.uid, [0; 3]);
        assert!(creds.groups.is_empty());
        assert!(!creds.filtered && !creds.no_new_privs);
        assert!(Creds::parse("Name:\tx\n").is_err());
        assert!(Creds::parse(&STATUS.replace("CapEff:\t0000", "CapEff:\tzz00")).is_err());
    }
}
