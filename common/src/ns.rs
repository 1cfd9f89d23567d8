//! Namespace handles: kinds, inode readout, unshare with hints, and opening a join target
//! with its type checked.

use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use nix::errno::Errno;
use nix::sched::CloneFlags;

use crate::{chain, debug, Fatal, Hint};

/// One kind of Linux namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// CLONE_NEWUSER: uids, gids, capabilities.
    User,
    /// CLONE_NEWPID: process ids.
    Pid,
    /// CLONE_NEWNET: interfaces, addresses, routes, ports.
    Net,
    /// CLONE_NEWIPC: SysV IPC and POSIX message queues.
    Ipc,
    /// CLONE_NEWUTS: hostname and domainname.
    Uts,
    /// CLONE_NEWNS: mounts.
    Mnt,
    /// CLONE_NEWCGROUP: the cgroup root.
    Cgroup,
    /// CLONE_NEWTIME: the monotonic and boot-time clocks.
    Time,
}

impl Namespace {
    /// Every kind, in the order a process joins them (user first).
    pub const ALL: [Namespace; 8] = [
        Namespace::User,
        Namespace::Pid,
        Namespace::Net,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Mnt,
        Namespace::Cgroup,
        Namespace::Time,
    ];

    /// The file name under `/proc/PID/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Pid => "pid",
            Namespace::Net => "net",
            Namespace::Ipc => "ipc",
            Namespace::Uts => "uts",
            Namespace::Mnt => "mnt",
            Namespace::Cgroup => "cgroup",
            Namespace::Time => "time",
        }
    }

    /// The `CLONE_NEW*` flag, as `unshare(2)` and `setns(2)` take it.
    pub fn clone_flag(self) -> CloneFlags {
        CloneFlags::from_bits_retain(self.raw_flag())
    }

    fn raw_flag(self) -> libc::c_int {
        match self {
            Namespace::User => libc::CLONE_NEWUSER,
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::Net => libc::CLONE_NEWNET,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Mnt => libc::CLONE_NEWNS,
            Namespace::Cgroup => libc::CLONE_NEWCGROUP,
            Namespace::Time => libc::CLONE_NEWTIME,
        }
    }

    fn from_raw_flag(flag: libc::c_int) -> Option<Namespace> {
        Namespace::ALL.into_iter().find(|ns| ns.raw_flag() == flag)
    }

    /// The `/proc/PID/ns/` file that names this namespace for a process (`pid` and `time`
    /// use the `*_for_children` file: they apply to children of the unsharing process).
    pub fn proc_path(self, pid: Option<u32>) -> PathBuf {
        let file = match self {
            Namespace::Pid => "pid_for_children",
            Namespace::Time => "time_for_children",
            other => other.proc_name(),
        };
        match pid {
            Some(pid) => PathBuf::from(format!("/proc/{pid}/ns/{file}")),
            None => PathBuf::from(format!("/proc/self/ns/{file}")),
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.proc_name())
    }
}

/// Entering a new user or mount namespace may change what the state directory checks saw
/// (owners mapped anew, other directories): they are made again ([`crate::state`]).
fn forget_checks_on_change(ns: Namespace) {
    if matches!(ns, Namespace::User | Namespace::Mnt) {
        crate::state::forget_checked_roots();
    }
}

/// The inode number that identifies a namespace (what `lsns` and `readlink` show).
pub fn inode_of(path: &Path) -> anyhow::Result<u64> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("unable to read namespace {}", path.display()))?;
    Ok(meta.ino())
}

/// The inode of this process's namespace of the given kind (for `pid`: the one its children
/// are born into).
pub fn current_inode(ns: Namespace) -> anyhow::Result<u64> {
    inode_of(&ns.proc_path(None))
}

/// `unshare(2)` one namespace, with a hint for the causes users meet.
pub fn unshare(ns: Namespace) -> Result<(), Fatal> {
    forget_checks_on_change(ns);
    debug::step(format_args!("unshare({ns})"), || {
        nix::sched::unshare(ns.clone_flag())
    })
    .map_err(|errno| {
        let hint = unshare_hint(ns, errno);
        let fatal = Fatal::from(errno).context(format!("unable to unshare the {ns} namespace"));
        match hint {
            Some(hint) => fatal.with_hint(hint),
            None => fatal,
        }
    })
}

/// "an ipc", "a net": the article the namespace's name takes.
fn with_article(ns: Namespace) -> String {
    let name = ns.to_string();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

fn unshare_hint(ns: Namespace, errno: Errno) -> Option<String> {
    match (ns, errno) {
        // A container's seccomp profile refuses new namespaces without CAP_SYS_ADMIN: the
        // same EPERM as a disabled sysctl, but the cause is the order.
        (_, Errno::EPERM) if crate::procfs::runs_with_container_capabilities() => {
            Some(crate::procfs::PUT_MNTNS_LAST.into())
        }
        (Namespace::User, Errno::EPERM | Errno::EACCES) => Some(
            "user namespaces are disabled here: check the sysctls user.max_user_namespaces and \
             kernel.unprivileged_userns_clone, or an LSM policy (AppArmor, SELinux)"
                .into(),
        ),
        (Namespace::User, Errno::EINVAL) => Some(
            "a user namespace cannot be created by a multi-threaded process or inside a chroot"
                .into(),
        ),
        (_, Errno::EPERM) => Some(format!(
            "creating {} namespace needs CAP_SYS_ADMIN: run as root, or put userns before \
             this link so that it owns the namespace (DESIGN.md §2, rule 1)",
            with_article(ns)
        )),
        (_, Errno::ENOSPC) => Some(format!(
            "the limit in /proc/sys/user/max_{ns}_namespaces is reached"
        )),
        (_, Errno::EUSERS) => Some("user namespaces are nested too deeply (limit 32)".into()),
        (_, Errno::EINVAL) => Some(format!("this kernel does not support {ns} namespaces")),
        _ => None,
    }
}

/// What `--join` names: a namespace file, a process, or a named chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinTarget {
    /// A namespace file (/proc/PID/ns/TYPE, a pinned file).
    Path(PathBuf),
    /// A process, whose namespace of the link's type is joined.
    Pid(u32),
    /// A running chain, by its registered name.
    Chain(String),
}

impl FromStr for JoinTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err("expected a namespace file, a PID or a chain name".into());
        }
        if text.contains('/') {
            return Ok(JoinTarget::Path(text.into()));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u32>() {
                Ok(pid) if pid > 0 => Ok(JoinTarget::Pid(pid)),
                _ => Err(format!("'{text}' is not a valid PID")),
            };
        }
        chain::validate_name(text)
            .map(|()| JoinTarget::Chain(text.to_owned()))
            .map_err(|e| format!("{e} (a path to a namespace file must contain a '/')"))
    }
}

impl fmt::Display for JoinTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinTarget::Path(path) => write!(f, "{}", path.display()),
            JoinTarget::Pid(pid) => write!(f, "process {pid}"),
            JoinTarget::Chain(name) => write!(f, "chain {name}"),
        }
    }
}

/// An open namespace file whose type has been checked.
#[derive(Debug)]
pub struct NsFile {
    /// Its type, as the kernel says (`NS_GET_NSTYPE`).
    pub kind: Namespace,
    /// The open file, for `setns`.
    pub file: File,
    /// Where it was opened, for messages.
    pub path: PathBuf,
}

impl NsFile {
    /// Opens the namespace of kind `kind` that `target` names, refusing a file of another type.
    pub fn open(kind: Namespace, target: &JoinTarget) -> Result<NsFile, Fatal> {
        let path = match target {
            JoinTarget::Path(path) => path.clone(),
            JoinTarget::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/{}", kind.proc_name())),
            JoinTarget::Chain(name) => return chain::open_namespace(name, kind),
        };
        let file = File::open(&path)
            .with_context(|| format!("unable to open {}", path.display()))
            .fatal_context(format!("cannot join {target}"))?;
        let actual = namespace_type(&file)
            .with_context(|| format!("{} is not a namespace file", path.display()))?;
        if actual != kind {
            return Err(Fatal::new(format!(
                "{} is a namespace of type {actual}, not {kind}",
                path.display()
            )));
        }
        Ok(NsFile { kind, file, path })
    }

    /// The namespace's inode number.
    pub fn inode(&self) -> anyhow::Result<u64> {
        Ok(self.file.metadata()?.ino())
    }

    /// `setns(2)` into this namespace.
    pub fn enter(&self) -> Result<(), Fatal> {
        forget_checks_on_change(self.kind);
        debug::step(format_args!("setns({})", self.kind), || {
            nix::sched::setns(self.file.as_fd(), self.kind.clone_flag())
        })
        .map_err(|errno| {
            let fatal = Fatal::from(errno)
                .context(format!("unable to join the {} namespace {}", self.kind, self.path.display()));
            if errno == Errno::EPERM {
                fatal.with_hint("joining a namespace needs CAP_SYS_ADMIN over its owner: run as root, or join its user namespace first (userns --join)")
            } else {
                fatal
            }
        })
    }
}

nix::ioctl_none!(
    /// NS_GET_NSTYPE, `_IO(0xb7, 0x3)`: the type of a namespace file.
    ns_get_nstype,
    0xb7,
    0x3
);
nix::ioctl_none!(
    /// NS_GET_USERNS, `_IO(0xb7, 0x1)`: a new fd of the user namespace that owns a namespace.
    ns_get_userns,
    0xb7,
    0x1
);

/// The inode of the user namespace that owns a namespace (`lsns -o ONS`).
pub fn owner_inode(file: &File) -> anyhow::Result<u64> {
    // SAFETY: NS_GET_USERNS takes no argument; it returns a new fd that we own at once.
    let raw = unsafe { ns_get_userns(file.as_raw_fd()) }?;
    // SAFETY: `raw` is a fresh descriptor owned by nobody else.
    let owner = File::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) });
    Ok(owner.metadata()?.ino())
}

/// The kind of namespace an nsfs file refers to.
pub fn namespace_type(file: &File) -> anyhow::Result<Namespace> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd's namespace type.
    let raw = unsafe { ns_get_nstype(file.as_raw_fd()) }?;
    Namespace::from_raw_flag(raw).context("unknown namespace type")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_targets_are_paths_pids_or_names() {
        assert_eq!(
            "/proc/1/ns/uts".parse::<JoinTarget>(),
            Ok(JoinTarget::Path("/proc/1/ns/uts".into()))
        );
        assert_eq!(
            "./pin".parse::<JoinTarget>(),
            Ok(JoinTarget::Path("./pin".into()))
        );
        assert_eq!("42".parse::<JoinTarget>(), Ok(JoinTarget::Pid(42)));
        assert_eq!(
            "web1".parse::<JoinTarget>(),
            Ok(JoinTarget::Chain("web1".into()))
        );
        assert!("0".parse::<JoinTarget>().is_err());
        assert!("99999999999".parse::<JoinTarget>().is_err());
        assert!("".parse::<JoinTarget>().is_err());
        assert!("bad name".parse::<JoinTarget>().is_err());
    }

    #[test]
    fn own_namespaces_have_the_right_type() -> anyhow::Result<()> {
        for ns in [
            Namespace::Uts,
            Namespace::Net,
            Namespace::Mnt,
            Namespace::User,
        ] {
            let file = File::open(ns.proc_path(None))?;
            assert_eq!(namespace_type(&file)?, ns);
        }
        Ok(())
    }
}
