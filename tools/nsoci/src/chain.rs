//! config.json → the argv of a chain of the installed links (DESIGN.md §2's rootless order,
//! which serves root too: a loopback-only netns may follow userns):
//!
//! ```text
//! [userns] [netns] [ipcns] [utsns] [timens] [pidns --no-init --no-monitor] [cgroupns] mntns --rootfs ... -- ARGS
//! ```
//!
//! Each namespace is made (or joined, `path`) by its own tool: nsoci holds no namespace code.
//! What a config asks and no link can give is refused here, with the field's name.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use common::Fatal;

use crate::config::{Config, IdMapping, Mount, NamespaceEntry, Process};

/// Where the links are and what nsoci hands the last one besides the config.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub tools: &'a Path,
    pub bundle: &'a Path,
    pub ready_fd: RawFd,
    /// mntns `--start-fifo` (exec.fifo, the gate `start` opens); None: no gate.
    pub start_fifo: Option<RawFd>,
    /// pidns's `--status-fd`: its first line names the container's PID 1 (runc's pid).
    pub status_fd: RawFd,
    /// A connected console socket for mntns `--console-fd` (process.terminal).
    pub console_fd: Option<RawFd>,
    /// mntns `--hook-fd`: the stop before pivot_root for the hooks that run there.
    pub hook_fd: Option<RawFd>,
    pub preserve_fds: u32,
    pub no_new_keyring: bool,
    /// linux.seccomp, written to a file of the container's state for `mntns --seccomp`.
    pub seccomp: Option<PathBuf>,
}

/// The mounts mntns makes itself in a new root (its defaults follow runc's `spec`).
const MADE_BY_MNTNS: [&str; 7] = [
    "/proc",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/sys",
    "/sys/fs/cgroup",
];

/// IPC sysctls, which ipcns sets.
fn is_ipc_sysctl(key: &str) -> bool {
    key.starts_with("kernel.shm")
        || key.starts_with("kernel.msg")
        || key == "kernel.sem"
        || key.starts_with("fs.mqueue.")
}

/// The config's sysctls split by the link that sets them: net.* (netns), IPC (ipcns).
type Sysctls = (Vec<String>, Vec<String>);

fn sysctls(config: &Config) -> Result<Sysctls, Fatal> {
    let (mut net, mut ipc) = (Vec::new(), Vec::new());
    for (k, v) in &config.linux.sysctl {
        let setting = format!("{k}={v}");
        if k.starts_with("net.") {
            net.push(setting);
        } else if is_ipc_sysctl(k) {
            ipc.push(setting);
        } else {
            return Err(Fatal::new(format!(
                "linux.sysctl: '{k}' is not supported (nsoci sets net.* through netns and IPC sysctls through ipcns)"
            )));
        }
    }
    Ok((net, ipc))
}

/// The net.* sysctls of a network namespace joined by path (podman's, made by CNI or
/// netavark, carries net.ipv4.ping_group_range): set here, in a thread that enters it, as
/// runc sets them after joining; netns --join takes none. Refused when the path is nsoci's
/// own namespace: they would change the host.
pub fn joined_net_sysctls(config: &Config) -> Result<(), Fatal> {
    use std::os::unix::fs::MetadataExt;
    let Some(path) = config
        .linux
        .namespaces
        .iter()
        .find(|n| n.kind == "network")
        .and_then(|n| n.path.clone())
    else {
        return Ok(());
    };
    let settings: Vec<(String, String)> = config
        .linux
        .sysctl
        .iter()
        .filter(|(k, _)| k.starts_with("net."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if settings.is_empty() {
        return Ok(());
    }
    let shown = path.display().to_string();
    let file = std::fs::File::open(&path)
        .map_err(|e| Fatal::from(e).context(format!("unable to open network namespace {shown}")))?;
    let inode = |m: std::fs::Metadata| (m.dev(), m.ino());
    if file.metadata().map(inode).ok() == std::fs::metadata("/proc/self/ns/net").map(inode).ok() {
        return Err(Fatal::new(format!(
            "linux.sysctl: net.* sysctls are not allowed in the host network namespace ({shown})"
        )));
    }
    // The thread's own network namespace changes; nsoci's other threads keep theirs.
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
            Fatal::from(e).context(format!("unable to join network namespace {shown}"))
        })?;
        settings
            .iter()
            .try_for_each(|(k, v)| common::sysctl::write(k, v))
    })
    .join()
    .unwrap_or_else(|_| {
        Err(Fatal::new(
            "setting the sysctls of a joined network namespace failed",
        ))
    })
}

/// The full argv: the first word is the first link's absolute path.
pub fn build(config: &Config, process: &Process, inp: &Inputs) -> Result<Vec<OsString>, Fatal> {
    let mut argv: Vec<OsString> = Vec::new();
    let ns = |kind: &str| config.linux.namespaces.iter().find(|n| n.kind == kind);
    check_namespaces(config)?;
    let link = |argv: &mut Vec<OsString>, tool: &str| {
        if !argv.is_empty() {
            argv.push("--".into());
        }
        argv.push(inp.tools.join(tool).into());
    };
    if let Some(user) = ns("user") {
        link(&mut argv, "userns");
        userns_args(
            &mut argv,
            user,
            &config.linux.uid_mappings,
            &config.linux.gid_mappings,
        )?;
    } else if !config.linux.uid_mappings.is_empty() {
        return Err(Fatal::new(
            "linux.uidMappings given without a user namespace in linux.namespaces",
        ));
    }
    let (net_sysctls, ipc_sysctls) = sysctls(config)?;
    if let Some(net) = ns("network") {
        link(&mut argv, "netns");
        join(&mut argv, net);
        // A joined one's are set by nsoci before the chain runs (joined_net_sysctls).
        if net.path.is_none() {
            for s in net_sysctls {
                argv.extend(["--sysctl".into(), s.into()]);
            }
        }
    } else if !net_sysctls.is_empty() {
        return Err(Fatal::new(
            "linux.sysctl: net.* sysctls need a network namespace in linux.namespaces",
        ));
    }
    if let Some(ipc) = ns("ipc") {
        link(&mut argv, "ipcns");
        join(&mut argv, ipc);
        for s in ipc_sysctls {
            argv.extend(["--sysctl".into(), s.into()]);
        }
    } else if !ipc_sysctls.is_empty() {
        return Err(Fatal::new(
            "linux.sysctl: IPC sysctls need an ipc namespace in linux.namespaces",
        ));
    }
    uts_link(&mut argv, config, ns("uts"), &link)?;
    time_link(&mut argv, config, ns("time"), &link)?;
    if let Some(pid) = ns("pid") {
        link(&mut argv, "pidns");
        match &pid.path {
            Some(path) => argv.extend(["--join".into(), path.into()]),
            // The payload is PID 1, as with runc.
            None => argv.push("--no-init".into()),
        }
        // runc's model: no monitor, the init goes to the caller's subreaper (conmon, shim).
        argv.extend([
            "--no-monitor".into(),
            "--status-fd".into(),
            inp.status_fd.to_string().into(),
        ]);
    }
    if let Some(cgroup) = ns("cgroup") {
        // After the init entered the container's cgroup (create.rs): that cgroup becomes
        // the namespace's root; before mntns, which then mounts /sys/fs/cgroup from it.
        link(&mut argv, "cgroupns");
        join(&mut argv, cgroup);
    }
    link(&mut argv, "mntns");
    // A path: the root is set up inside that mount namespace (mntns --join FILE --rootfs).
    if let Some(mount) = ns("mount") {
        join(&mut argv, mount);
    }
    mntns_args(&mut argv, config, process, inp)?;
    argv.push("--".into());
    argv.extend(process.args.iter().map(OsString::from));
    Ok(argv)
}

/// Every namespace type is one we know, and there is a mount namespace: a new one, or one
/// joined by `path` (mntns sets the root up inside it, as runc), which the chain's user
/// namespace must not be a new one (it would hold no right over the joined namespace).
fn check_namespaces(config: &Config) -> Result<(), Fatal> {
    const KNOWN: [&str; 8] = [
        "pid", "network", "mount", "ipc", "uts", "user", "time", "cgroup",
    ];
    if let Some(entry) = config
        .linux
        .namespaces
        .iter()
        .find(|n| !KNOWN.contains(&n.kind.as_str()))
    {
        return Err(Fatal::new(format!(
            "linux.namespaces: unknown namespace type '{}'",
            entry.kind
        )));
    }
    let new_user = config
        .linux
        .namespaces
        .iter()
        .any(|n| n.kind == "user" && n.path.is_none());
    match config.linux.namespaces.iter().find(|n| n.kind == "mount") {
        Some(NamespaceEntry { path: None, .. }) => Ok(()),
        Some(_) if new_user => Err(Fatal::new(
            "linux.namespaces: a mount namespace joined by path needs the user namespace that owns it (a path), not a new one",
        )),
        Some(_) => Ok(()),
        None => Err(Fatal::new(
            "linux.namespaces: nsoci needs a mount namespace (its root is set up by mntns)",
        )),
    }
}

fn join(argv: &mut Vec<OsString>, entry: &NamespaceEntry) {
    if let Some(path) = &entry.path {
        argv.extend(["--join".into(), path.into()]);
    }
}

fn uts_link(
    argv: &mut Vec<OsString>,
    config: &Config,
    uts: Option<&NamespaceEntry>,
    link: &dyn Fn(&mut Vec<OsString>, &str),
) -> Result<(), Fatal> {
    let named = config.hostname.as_deref().is_some_and(|h| !h.is_empty())
        || config.domainname.as_deref().is_some_and(|d| !d.is_empty());
    let Some(uts) = uts else {
        if named {
            // As runc: a hostname without a UTS namespace of its own would rename the host.
            return Err(Fatal::new(
                "unable to set the hostname or domainname without a private UTS namespace",
            ));
        }
        return Ok(());
    };
    link(argv, "utsns");
    join(argv, uts);
    if uts.path.is_none() {
        if let Some(h) = config.hostname.as_deref().filter(|h| !h.is_empty()) {
            argv.extend(["--hostname".into(), h.into()]);
        }
        if let Some(d) = config.domainname.as_deref().filter(|d| !d.is_empty()) {
            argv.extend(["--domainname".into(), d.into()]);
        }
    }
    Ok(())
}

fn time_link(
    argv: &mut Vec<OsString>,
    config: &Config,
    time: Option<&NamespaceEntry>,
    link: &dyn Fn(&mut Vec<OsString>, &str),
) -> Result<(), Fatal> {
    let offsets = &config.linux.time_offsets;
    let Some(time) = time else {
        if !offsets.is_empty() {
            return Err(Fatal::new(
                "linux.timeOffsets need a time namespace in linux.namespaces",
            ));
        }
        return Ok(());
    };
    link(argv, "timens");
    join(argv, time);
    for (clock, offset) in offsets {
        let flag = match clock.as_str() {
            "monotonic" => "--monotonic",
            "boottime" => "--boottime",
            other => {
                return Err(Fatal::new(format!(
                    "linux.timeOffsets: unknown clock '{other}'"
                )))
            }
        };
        argv.extend([flag.into(), seconds(offset.secs, offset.nanosecs).into()]);
    }
    Ok(())
}

/// `secs` + `nanosecs` as timens reads it: `-0.500000000` for secs -1, nanosecs 5e8.
fn seconds(secs: i64, nanosecs: u32) -> String {
    let total = i128::from(secs) * 1_000_000_000 + i128::from(nanosecs);
    let sign = if total < 0 { "-" } else { "" };
    let abs = total.unsigned_abs();
    format!("{sign}{}.{:09}", abs / 1_000_000_000, abs % 1_000_000_000)
}

fn userns_args(
    argv: &mut Vec<OsString>,
    user: &NamespaceEntry,
    uids: &[IdMapping],
    gids: &[IdMapping],
) -> Result<(), Fatal> {
    if let Some(path) = &user.path {
        argv.extend(["--join".into(), path.into()]);
        return Ok(());
    }
    let me = nix::unistd::geteuid().as_raw();
    let own_root = |maps: &[IdMapping], id: u32| {
        maps.len() == 1 && maps[0].container_id == 0 && maps[0].host_id == id && maps[0].size == 1
    };
    if uids.is_empty() || (own_root(uids, me) && own_root(gids, nix::unistd::getegid().as_raw())) {
        argv.push("--map-root".into());
        return Ok(());
    }
    for (flag, maps) in [("--map-users", uids), ("--map-groups", gids)] {
        for m in maps {
            argv.extend([
                flag.into(),
                format!("{}:{}:{}", m.container_id, m.host_id, m.size).into(),
            ]);
        }
    }
    Ok(())
}

/// linux.rootfsPropagation as mntns names it (runc takes the `r` forms too: mntns always
/// applies a propagation recursively).
fn rootfs_propagation(mode: &str) -> Result<&'static str, Fatal> {
    match mode.strip_prefix('r').unwrap_or(mode) {
        "private" => Ok("private"),
        "slave" => Ok("slave"),
        "shared" => Ok("shared"),
        "unbindable" => Ok("unbindable"),
        _ => Err(Fatal::new(format!(
            "linux.rootfsPropagation: '{mode}' is not shared, slave, private or unbindable"
        ))),
    }
}

fn mntns_args(
    argv: &mut Vec<OsString>,
    config: &Config,
    process: &Process,
    inp: &Inputs,
) -> Result<(), Fatal> {
    let root = config
        .root
        .as_ref()
        .ok_or_else(|| Fatal::new("config.json has no root.path"))?;
    let rootfs = inp.bundle.join(&root.path);
    if !rootfs.is_dir() {
        return Err(Fatal::new(format!(
            "root.path {} is not a directory",
            rootfs.display()
        )));
    }
    argv.extend(["--rootfs".into(), rootfs.into(), "--no-etc".into()]);
    if let Some(mode) = config.linux.rootfs_propagation.as_deref() {
        argv.extend(["--propagation".into(), rootfs_propagation(mode)?.into()]);
    }
    crate::devices::args(argv, &config.linux.devices)?;
    if root.readonly {
        argv.push("--read-only".into());
    }
    for mount in &config.mounts {
        mount_args(argv, mount, inp.bundle)?;
    }
    process_args(argv, process);
    for path in &config.linux.masked_paths {
        argv.extend(["--mask".into(), path.into()]);
    }
    for path in &config.linux.readonly_paths {
        argv.extend(["--read-only-path".into(), path.into()]);
    }
    if inp.no_new_keyring {
        argv.push("--no-new-keyring".into());
    }
    if inp.preserve_fds > 0 {
        argv.extend(["--preserve-fds".into(), inp.preserve_fds.to_string().into()]);
    }
    if let Some(fd) = inp.console_fd {
        argv.extend(["--console-fd".into(), fd.to_string().into()]);
    }
    if let Some(fd) = inp.hook_fd {
        argv.extend(["--hook-fd".into(), fd.to_string().into()]);
    }
    // OCI: no linux.seccomp, no filter (mntns's own default would be Docker's).
    match &inp.seccomp {
        Some(file) => argv.extend(["--seccomp".into(), file.into()]),
        None => argv.extend(["--seccomp".into(), "unconfined".into()]),
    }
    argv.extend(["--ready-fd".into(), inp.ready_fd.to_string().into()]);
    if let Some(fd) = inp.start_fifo {
        argv.extend(["--start-fifo".into(), fd.to_string().into()]);
    }
    Ok(())
}

/// What mntns is told of the process, for a new container and for `exec` (mntns --join):
/// working directory, environment, user and groups, capabilities, no_new_privs.
pub fn process_args(argv: &mut Vec<OsString>, process: &Process) {
    if !process.cwd.is_empty() {
        argv.extend(["-w".into(), (&process.cwd).into()]);
    }
    argv.push("--clearenv".into());
    for var in &process.env {
        argv.extend(["-e".into(), var.into()]);
    }
    let user = &process.user;
    argv.extend(["--user".into(), format!("{}:{}", user.uid, user.gid).into()]);
    for gid in &user.additional_gids {
        argv.extend(["--group-add".into(), gid.to_string().into()]);
    }
    if let Some(caps) = &process.capabilities {
        // mntns gives one set (bounding = permitted = effective): a capability only where
        // the config grants it in all three, never more than asked.
        argv.extend(["--cap-drop".into(), "ALL".into()]);
        let granted: Vec<&String> = caps.granted().collect();
        for cap in &granted {
            argv.extend(["--cap-add".into(), cap.into()]);
        }
        for (flag, set) in [
            ("--cap-inheritable", &caps.inheritable),
            ("--cap-ambient", &caps.ambient),
        ] {
            for cap in set.iter().filter(|c| granted.contains(c)) {
                argv.extend([flag.into(), cap.into()]);
            }
        }
    }
    if process.no_new_privileges {
        argv.push("--no-new-privs".into());
    }
}

/// The propagations a bind may ask (mntns takes docker's names, as OCI configs spell them).
const PROPAGATIONS: [&str; 8] = [
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

/// One config mount: what mntns makes itself is left to it, binds and tmpfs become
/// `--mount`, which keeps the config's order; any other type is refused.
fn mount_args(argv: &mut Vec<OsString>, mount: &Mount, bundle: &Path) -> Result<(), Fatal> {
    let dst = &mount.destination;
    if MADE_BY_MNTNS.iter().any(|m| Path::new(m) == dst) {
        return Ok(());
    }
    let kind = mount.kind.as_deref().unwrap_or("");
    let bind = kind == "bind" || mount.options.iter().any(|o| o == "bind" || o == "rbind");
    if bind {
        let source = mount.source.as_ref().ok_or_else(|| {
            Fatal::new(format!("mount at {}: a bind needs a source", dst.display()))
        })?;
        let source: PathBuf = bundle.join(source);
        let ro = mount.options.iter().any(|o| o == "ro");
        let mut spec = OsString::from("bind:");
        spec.push(source);
        spec.push(":");
        spec.push(dst);
        spec.push(if ro { ":ro" } else { ":rw" });
        // The last propagation given wins, as with mount(8).
        if let Some(p) = mount
            .options
            .iter()
            .rev()
            .find(|o| PROPAGATIONS.contains(&o.as_str()))
        {
            spec.push(",");
            spec.push(p);
        }
        argv.extend(["--mount".into(), spec]);
        return Ok(());
    }
    if kind == "tmpfs" {
        const KEPT: [&str; 5] = ["size=", "mode=", "nr_inodes=", "uid=", "gid="];
        let opts: Vec<&str> = mount
            .options
            .iter()
            .map(String::as_str)
            .filter(|o| KEPT.iter().any(|k| o.starts_with(k)) || ["ro", "exec", "suid"].contains(o))
            .collect();
        let mut spec = OsString::from("tmpfs:");
        spec.push(dst);
        if !opts.is_empty() {
            spec.push(":");
            spec.push(opts.join(","));
        }
        argv.extend(["--mount".into(), spec]);
        return Ok(());
    }
    Err(Fatal::new(format!(
        "mounts: a mount of type '{kind}' at {} is not supported (nsoci mounts binds and tmpfs)",
        dst.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_written_as_timens_reads_them() {
        assert_eq!(seconds(10, 0), "10.000000000");
        assert_eq!(seconds(-1, 500_000_000), "-0.500000000");
        assert_eq!(seconds(0, 1), "0.000000001");
    }

    #[test]
    fn ipc_sysctls_are_told_apart() {
        assert!(is_ipc_sysctl("kernel.shmmax"));
        assert!(is_ipc_sysctl("fs.mqueue.msg_max"));
        assert!(!is_ipc_sysctl("net.ipv4.ip_forward"));
    }
}
