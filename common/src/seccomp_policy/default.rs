//! The default profile of a container: Docker's policy, written as our own rules.
//!
//! Docker's default profile is an allowlist: about 350 ordinary system calls run, the ones that
//! act on the whole machine or on kernel state no namespace isolates fail with EPERM unless the
//! container holds the capability that makes them legitimate, and a call the profile does not
//! know fails (so a kernel's new system call is refused until someone looks at it). The same
//! here: every call of this machine's table runs except those below; a number beyond the table
//! fails with ENOSYS, so that libc falls back to an older call, as with `clone3`.

use super::profile::{Action, ArgCondition, Filter, Op, Profile, Rule};

/// Calls allowed only with a capability: `(capability, names)`. Without it they get EPERM.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "open_tree_attr",
            "perf_event_open",
            "pivot_root",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "swapoff",
            "swapon",
            "syslog",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_SYS_BOOT", &["kexec_file_load", "kexec_load", "reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "finit_module", "init_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &["kcmp", "pidfd_getfd", "process_madvise"],
    ),
    ("CAP_SYS_RAWIO", &["ioperm", "iopl"]),
    (
        "CAP_SYS_TIME",
        &["clock_adjtime", "clock_settime", "settimeofday"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "migrate_pages",
            "move_pages",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
];

/// Calls no container gets: kernel state no namespace isolates (keys, userfaultfd's page
/// faults, io_uring's unaudited paths), and obsolete interfaces.
const NEVER: &[&str] = &[
    "add_key",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "keyctl",
    "nfsservctl",
    "request_key",
    "sysfs",
    "_sysctl",
    "uselib",
    "userfaultfd",
    "ustat",
];

/// The namespace flags of clone(2): creating namespaces needs CAP_SYS_ADMIN in the profile.
const CLONE_NAMESPACES: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// personality(2) values programs use (Linux, with ADDR_NO_RANDOMIZE / UNAME26, and the query).
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

fn rule(names: &[&str], action: Action) -> Rule {
    Rule {
        names: names.iter().map(|n| n.to_string()).collect(),
        name: None,
        action,
        errno_ret: None,
        args: Vec::new(),
        includes: Filter::default(),
        excludes: Filter::default(),
    }
}

fn with_cap(mut rule: Rule, cap: &str) -> Rule {
    rule.includes.caps = vec![cap.to_string()];
    rule
}

fn without_cap(mut rule: Rule, cap: &str) -> Rule {
    rule.excludes.caps = vec![cap.to_string()];
    rule
}

/// The default profile (judged against the container's capabilities when compiled).
pub fn profile() -> Profile {
    let mut rules = Vec::new();
    for (cap, names) in BY_CAPABILITY {
        rules.push(with_cap(rule(names, Action::Allow), cap));
    }
    // Without CAP_SYS_ADMIN: clone without namespace flags, and clone3 (whose flags are in
    // memory a filter cannot read) ENOSYS so that libc falls back to clone.
    let mut plain_clone = without_cap(rule(&["clone"], Action::Allow), "CAP_SYS_ADMIN");
    plain_clone.args = vec![ArgCondition {
        index: 0,
        value: CLONE_NAMESPACES,
        value_two: 0,
        op: Op::MaskedEq,
    }];
    rules.push(plain_clone);
    let mut clone3 = without_cap(rule(&["clone3"], Action::Errno), "CAP_SYS_ADMIN");
    clone3.errno_ret = Some(libc::ENOSYS as u32);
    rules.push(clone3);
    for value in PERSONALITIES {
        let mut allowed = rule(&["personality"], Action::Allow);
        allowed.args = vec![ArgCondition {
            index: 0,
            value,
            value_two: 0,
            op: Op::Eq,
        }];
        rules.push(allowed);
    }
    let mut refused: Vec<&str> = NEVER.to_vec();
    refused.push("personality");
    for (_, names) in BY_CAPABILITY {
        refused.extend(names.iter());
    }
    refused.sort_unstable();
    refused.dedup();
    rules.push(rule(&refused, Action::Errno));
    Profile {
        default_action: Action::Allow,
        default_errno_ret: Some(libc::EPERM as u32),
        architectures: vec!["SCMP_ARCH_X86_64".into()],
        flags: Vec::new(),
        listener_path: None,
        syscalls: rules,
    }
}
