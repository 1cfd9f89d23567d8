//! `mntns`: run a command in a new mount namespace — private mounts on the host tree, or a
//! container root (`--rootfs`, `--overlay`) with its own /proc, /sys, /dev and /etc files,
//! entered safely (DESIGN.md §2 rule 6, §4 "every path inside a container root is hostile").
//!
//! Order of a run (each step traced with NSCHAIN_DEBUG=1):
//!
//! ```text
//! take the handed-down idmapped trees            idmap (NSCHAIN_IDMAP, unexported)
//! check every input (nothing changed yet)        volume, tmpfs, caps, rootfs, sources
//! open and verify the host's device nodes        dev
//! overlay layer + cleaner, or the --rm waiter    overlay, waiter
//!   (before unshare)
//! who else can reach what host root writes       reach (the setuid guard's CAP_FSETID and
//!                                                  CAP_SETFCAP dropped if anyone can)
//! unshare(CLONE_NEWNS), propagation              link, propagation
//! new root: bind rootfs / mount overlay          rootfs, overlay (overlay_split in a userns
//!           (an idmapped tree is attached instead  without an idmapped tree)
//!           of the host's PATH), made nodev        dev
//! --rootfs never written: skeletons instead      skeleton (resolve covers, never creates)
//! /proc (before the old root goes), /sys, /etc files, /dev
//! volumes, tmpfs (targets resolved in the root)  resolve
//! masked and read-only paths                     proc_sys
//! workdir (-w, else the caller's if shown)       workdir
//! register, --info-fd                            link.finish
//! pivot_root(".", "."), detach the old root      rootfs
//! --user in the root's passwd, environment       passwd, env
//! the setuid guard's seccomp filter              setuid_guard
//! no controlling terminal, new session keyring  session (common::terminal,
//!   keyring, seccomp, user, capabilities, nnp,     common::keyring), seccomp,
//!   fds, the setuid guard's warning, exec          entry
//! ```

mod cgroupfs;
mod dev;
mod device_node;
mod dns;
mod entry;
mod env;
mod etc_files;
mod hide_state;
mod hook_point;
mod idmap;
mod image;
mod join;
mod overlay;
mod overlay_split;
mod passwd;
mod proc_sys;
mod propagation;
mod reach;
mod resolve;
mod rootfs;
// The filter lives in common (nsps exec installs it too); `crate::seccomp` still names it.
use common::seccomp;
mod session;
mod setuid_guard;
mod skeleton;
mod start;
mod sys;
mod tty;
pub mod volume;
mod waiter;
mod workdir;

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clap::Parser;
use common::cli::CommandArgs;
use common::handdown::Slot;
use common::link::{Link, NsOptions};
use common::ns::Namespace;
use common::seccomp_policy::{self, Choice};
use common::{debug, Context, Fatal, Hint, Next};
use serde_json::{json, Map};

pub use entry::{CapSpec, DEFAULT_CAPS};
use resolve::Create;
use volume::{Propagation, Tmpfs, User, Volume};

/// Run COMMAND in a new mount namespace. Without a new root, mounts stay private to it
/// (like `unshare -m`); with --rootfs or --overlay, COMMAND runs in a container root with its
/// own /proc, read-only /sys, a minimal /dev, masked kernel files and podman's default
/// capabilities. mntns with a new root must be the last link of a chain.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:\n  mntns --overlay / -- sh -c 'echo hi > /opt/test1'     copy-on-write view of the host root\n  mntns --rootfs ./rootfs -v ./data:/data:ro -- /bin/sh\n  pidns -- mntns --proc -- ps                              only the new pid namespace's processes\n  mntns --tmpfs /tmp:size=64m -- make\n\nThe writable layer of --overlay is kept at $NSCHAIN_DATA_DIR/overlay/<id> (the chain's\nname, or a random id; see --info-fd) unless --rm is given.\n\nTrees handed down by `userns --idmap PATH` (NSCHAIN_IDMAP) are used wherever PATH is:\n--rootfs PATH, an --overlay lower layer, a --volume source (the tree's own mount only)."
)]
#[command(group(clap::ArgGroup::new("layered").args(["overlay", "image"]).multiple(false)))]
pub struct Args {
    /// Mount propagation of the new namespace: private, slave, shared, unbindable or unchanged
    #[arg(long, value_name = "MODE", default_value = "private", value_parser = parse_propagation)]
    pub propagation: Propagation,

    /// Mount a new /proc for the pid namespace this link runs in (always done with a new root)
    #[arg(long)]
    pub proc: bool,

    /// Use DIR as the root filesystem (bound onto itself, pivot_root, old root detached; with
    /// --join FILE, inside that mount namespace instead of a new one, as runc)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["overlay", "image"])]
    pub rootfs: Option<PathBuf>,

    /// Root = overlayfs of the read-only LOWER dirs (first is topmost) and a writable layer;
    /// `--overlay /` is a copy-on-write view of the host's root
    #[arg(long, value_name = "LOWER[:LOWER...]", conflicts_with = "image")]
    pub overlay: Option<OsString>,

    /// Root = an image of the store (nsimage) as overlay lower layers, with a writable layer
    /// as --overlay; its Entrypoint + Cmd, WorkingDir, User and Env apply as in docker run
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,

    /// With --image: run ENTRYPOINT instead of the image's (and without its Cmd); "" for none
    #[arg(long, value_name = "ENTRYPOINT", requires = "image")]
    pub entrypoint: Option<OsString>,

    /// Keep the writable layer in DIR (DIR/diff, DIR/work, DIR/merged) instead of
    /// $NSCHAIN_DATA_DIR/overlay/ID
    #[arg(long, value_name = "DIR", requires = "layered")]
    pub upper: Option<PathBuf>,

    /// Delete the writable layer when COMMAND exits, before mntns returns (without pidns before
    /// it, mntns stays as the process that waits: it forwards the signals sent to it to COMMAND
    /// and exits with COMMAND's status, n or 128+s)
    #[arg(long, requires = "layered")]
    pub rm: bool,

    /// Bind-mount the host's SRC at DST (inside the root), read-write or read-only
    /// (recursively: every submount of SRC too)
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro|rw]")]
    pub volumes: Vec<OsString>,

    /// A volume or a tmpfs, mounted in the order given, after every -v and --tmpfs (a
    /// later mount may go inside an earlier one, as OCI configs and docker order them)
    #[arg(long = "mount", value_name = "bind:SRC:DST[:OPTS]|tmpfs:DST[:OPTS]")]
    pub mounts: Vec<OsString>,

    /// Make a device node in a new root's /dev with its owner and mode (OCI linux.devices;
    /// in a user namespace the host's node at the same path is bound instead)
    #[arg(long, value_name = "/dev/PATH:TYPE:MAJOR:MINOR[:MODE[:UID[:GID]]]")]
    pub device_node: Vec<device_node::DeviceNode>,

    /// Mount a tmpfs at DST (default nosuid,nodev,noexec; options size=N[k|m|g|%], mode=OCTAL,
    /// nr_inodes=, uid=, gid=, ro, exec, suid, dev (not in a new root: nodev there))
    #[arg(long = "tmpfs", value_name = "DST[:OPTIONS]")]
    pub tmpfs: Vec<OsString>,

    /// Make the root filesystem read-only (volumes, tmpfs, /dev keep their own mode)
    #[arg(long)]
    pub read_only: bool,

    /// Working directory of COMMAND, inside the root (created if missing in a new root)
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,

    /// Give COMMAND a terminal of the container's own (a pty of its /dev/pts), proxied to the
    /// caller's from the host side (pidns's monitor, else a process mntns leaves outside)
    #[arg(short = 't', long)]
    pub tty: bool,

    /// Send the master of COMMAND's pty (made in the container's devpts) to the unix socket
    /// at file descriptor FD, as runc does to its --console-socket (conmon, containerd)
    #[arg(long, value_name = "FD", value_parser = common::info::parse_fd, conflicts_with = "tty")]
    pub console_fd: Option<std::os::fd::RawFd>,

    /// Do not generate /etc/hostname, /etc/hosts and /etc/resolv.conf in a new root
    #[arg(long)]
    pub no_etc: bool,

    /// The name COMMAND gets as argv0 instead of its program, as `exec -a` (an OCI hook's args)
    #[arg(long, value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub argv0: Option<String>,

    /// Keep file descriptors 3 to 3+N-1 open for COMMAND (with a new root every other fd ≥ 3
    /// is closed; LISTEN_FDS is honoured too)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,

    // Help as an attribute: the brackets are CLI syntax, not rustdoc links.
    #[arg(
        short = 'u',
        long,
        value_name = "USER[:GROUP]",
        value_parser = parse_user,
        help = "Run COMMAND as USER[:GROUP] (names or ids of the root's /etc/passwd and /etc/group; sets HOME, USER, LOGNAME and the supplementary groups, as Docker)"
    )]
    pub user: Option<passwd::UserSpec>,

    /// Set KEY to VALUE for COMMAND; KEY alone passes the caller's value
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]", value_parser = env::parse_env)]
    pub env: Vec<env::EnvSpec>,

    /// Read variables for COMMAND from FILE (KEY=VALUE or KEY lines, # comments; before -e)
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,

    /// Start COMMAND with an empty environment (then --env-file, -e, --user's; PATH Docker's
    /// default if none is set)
    #[arg(long)]
    pub clearenv: bool,

    /// Add a capability to COMMAND's set (NAME, CAP_NAME or ALL); a new root or --join starts
    /// from podman's default set (CHOWN DAC_OVERRIDE FOWNER FSETID KILL NET_BIND_SERVICE
    /// SETFCAP SETGID SETPCAP SETUID SYS_CHROOT), else from the current one
    #[arg(long, value_name = "CAP", value_parser = parse_cap)]
    pub cap_add: Vec<CapSpec>,

    /// Drop a capability from COMMAND's set (NAME, CAP_NAME or ALL)
    #[arg(long, value_name = "CAP", value_parser = parse_cap)]
    pub cap_drop: Vec<CapSpec>,

    /// Also put CAP in COMMAND's inheritable set (it must be in its set: --cap-add)
    #[arg(long, value_name = "CAP", value_parser = parse_cap)]
    pub cap_inheritable: Vec<CapSpec>,

    /// Also raise CAP in COMMAND's ambient set (and inheritable): it keeps CAP across its
    /// own execs, also as a non-root user (it must be in its set: --cap-add)
    #[arg(long, value_name = "CAP", value_parser = parse_cap)]
    pub cap_ambient: Vec<CapSpec>,

    /// Set no_new_privs: COMMAND cannot gain privileges through setuid files or file caps
    #[arg(long)]
    pub no_new_privs: bool,

    /// Keep the caller's session keyring (kernel keys) in a new root or --join; by default
    /// COMMAND gets a new, empty one, as runc and crun do
    #[arg(long)]
    pub no_new_keyring: bool,

    /// Also mask PATH inside a new root (besides the defaults: /proc/kcore, /sys/firmware...):
    /// a file under /dev/null, a directory under an empty read-only tmpfs
    #[arg(long, value_name = "PATH", value_parser = parse_absolute)]
    pub mask: Vec<PathBuf>,

    /// Also make PATH read-only inside a new root (besides /proc/sys, /proc/bus...)
    #[arg(long, value_name = "PATH", value_parser = parse_absolute)]
    pub read_only_path: Vec<PathBuf>,

    /// Add GID to COMMAND's supplementary groups (after --user's own)
    #[arg(long, value_name = "GID")]
    pub group_add: Vec<u32>,

    /// Write `ready` to file descriptor FD once everything but the exec of COMMAND is done
    /// (a supervisor such as nsoci learns that the container is set up)
    #[arg(long, value_name = "FD", value_parser = common::info::parse_fd)]
    pub ready_fd: Option<std::os::fd::RawFd>,

    /// Before the exec of COMMAND, open the FIFO that file descriptor FD refers to for
    /// writing: COMMAND runs only once someone opens it for reading (runc's exec.fifo)
    #[arg(long, value_name = "FD", value_parser = common::info::parse_fd)]
    pub start_fifo: Option<std::os::fd::RawFd>,

    /// With a new root: before pivot_root, write `pivot` to the socket at FD and wait for one
    /// byte back (an OCI runtime runs its createRuntime and createContainer hooks then)
    #[arg(long, value_name = "FD", value_parser = common::info::parse_fd)]
    pub hook_fd: Option<std::os::fd::RawFd>,

    /// Seccomp profile of COMMAND: default (Docker's policy; the default with a new root or
    /// --join), unconfined, or FILE (an OCI `linux.seccomp` object or a Docker profile)
    #[arg(long, value_name = "PROFILE", value_parser = parse_seccomp)]
    pub seccomp: Option<Choice>,

    #[command(flatten)]
    pub ns: NsOptions,

    #[command(flatten)]
    pub command: CommandArgs,
}

fn parse_propagation(text: &str) -> Result<Propagation, String> {
    text.parse()
}

/// A path inside the new root, absolute (as the OCI config's maskedPaths).
fn parse_absolute(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(format!("'{text}' is not an absolute path"))
    }
}

fn parse_user(text: &str) -> Result<passwd::UserSpec, String> {
    text.parse()
}

fn parse_cap(text: &str) -> Result<CapSpec, String> {
    text.parse()
}

fn parse_seccomp(text: &str) -> Result<Choice, String> {
    text.parse()
}

/// The profile COMMAND gets: `--seccomp`, else the default in a container, else none.
fn seccomp_choice(args: &Args, container: bool) -> Choice {
    match &args.seccomp {
        Some(choice) => choice.clone(),
        None if container => Choice::Default,
        None => Choice::Unconfined,
    }
}

/// The new root, checked.
#[derive(Debug)]
enum NewRoot {
    Rootfs(PathBuf),
    Overlay(Vec<PathBuf>),
}

/// Every input, checked before anything changes.
#[derive(Debug)]
struct Plan {
    root: Option<NewRoot>,
    env: env::EnvPlan,
    volumes: Vec<Volume>,
    tmpfs: Vec<Tmpfs>,
    /// The order of the mounts of `volumes` and `tmpfs`.
    order: Vec<MountSlot>,
}

/// One mount of the plan, by its index in `volumes` or `tmpfs`.
#[derive(Debug, Clone, Copy)]
enum MountSlot {
    Volume(usize),
    Tmpfs(usize),
}

fn check_dir(path: &Path, what: &str) -> Result<PathBuf, Fatal> {
    let meta = std::fs::metadata(path)
        .fatal_context(format!("unable to use {} as {what}", path.display()))?;
    if !meta.is_dir() {
        return Err(Fatal::new(format!(
            "unable to use {} as {what}: not a directory",
            path.display()
        )));
    }
    std::fs::canonicalize(path).fatal_context(format!("unable to use {} as {what}", path.display()))
}

fn plan(args: &Args) -> Result<Plan, Fatal> {
    let root = if let Some(dir) = &args.rootfs {
        Some(NewRoot::Rootfs(check_dir(dir, "the root filesystem")?))
    } else if let Some(lowers) = &args.overlay {
        let mut list = Vec::new();
        for lower in lowers.as_bytes().split(|&b| b == b':') {
            if lower.is_empty() {
                return Err(Fatal::new(format!(
                    "invalid --overlay '{}': an empty lower layer",
                    lowers.to_string_lossy()
                )));
            }
            let path = Path::new(OsStr::from_bytes(lower));
            // An image's layers come from the store, checked by image.rs (a range may reach
            // them only through the store's idmapped tree).
            let dir = if args.image.is_some() {
                path.to_owned()
            } else {
                check_dir(path, "a lower layer")?
            };
            overlay::check_option_path(&dir).map_err(Fatal::new)?;
            list.push(dir);
        }
        if let Some(upper) = &args.upper {
            if !upper.is_absolute() {
                return Err(Fatal::new(format!(
                    "--upper {}: not an absolute path",
                    upper.display()
                )));
            }
            overlay::check_option_path(upper).map_err(Fatal::new)?;
        }
        Some(NewRoot::Overlay(list))
    } else {
        None
    };
    let ordered = ordered_mounts(&args.mounts)?;
    let mut volumes = Vec::new();
    let volume_specs = args
        .volumes
        .iter()
        .chain(ordered.iter().filter_map(|(v, _)| v.as_ref()));
    for spec in volume_specs {
        let volume = volume::parse_volume(spec).map_err(Fatal::new)?;
        // Checked now; opened again once in the new namespace (a mount of another namespace
        // cannot be bound).
        resolve::open_host(&volume.source)
            .fatal_context(format!("invalid volume '{}'", spec.to_string_lossy()))?;
        volumes.push(volume);
    }
    let tmpfs_specs: Vec<&OsString> = args
        .tmpfs
        .iter()
        .chain(ordered.iter().filter_map(|(_, t)| t.as_ref()))
        .collect();
    let tmpfs = tmpfs_specs
        .iter()
        .map(|spec| volume::parse_tmpfs(spec).map_err(Fatal::new))
        .collect::<Result<Vec<_>, _>>()?;
    let order = mount_order(args.volumes.len(), args.tmpfs.len(), &ordered);
    let with_dev = tmpfs_specs
        .iter()
        .zip(&tmpfs)
        .find(|(_, t)| !t.flags.contains(nix::mount::MsFlags::MS_NODEV));
    if let (Some(_), Some((spec, _))) = (&root, with_dev) {
        return Err(Fatal::new(format!(
            "invalid tmpfs '{}': 'dev' is not allowed in a new root (without a device cgroup, a device node made there would open the host's device)",
            spec.to_string_lossy()
        )));
    }
    if root.is_none() && !args.device_node.is_empty() {
        return Err(Fatal::new(
            "--device-node needs a new root (--rootfs, --overlay or --image): it makes nodes in the container's own /dev",
        ));
    }
    if let Some(dir) = &args.workdir {
        if !dir.is_absolute() {
            return Err(Fatal::new(format!(
                "--workdir {}: not an absolute path",
                dir.display()
            )));
        }
    }
    let env = env::EnvPlan::new(args.clearenv, &args.env_file, &args.env).map_err(Fatal::new)?;
    Ok(Plan {
        root,
        env,
        volumes,
        tmpfs,
        order,
    })
}

/// A volume or tmpfs spec of `--mount`, split by its type.
type Ordered = (Option<OsString>, Option<OsString>);

/// `--mount bind:SPEC` / `tmpfs:SPEC` into the -v and --tmpfs specs they are.
fn ordered_mounts(specs: &[OsString]) -> Result<Vec<Ordered>, Fatal> {
    use std::os::unix::ffi::OsStrExt;
    specs
        .iter()
        .map(|spec| {
            let bytes = spec.as_bytes();
            let rest = |n: usize| OsStr::from_bytes(&bytes[n..]).to_os_string();
            if bytes.starts_with(b"bind:") {
                Ok((Some(rest(5)), None))
            } else if bytes.starts_with(b"tmpfs:") {
                Ok((None, Some(rest(6))))
            } else {
                Err(Fatal::new(format!(
                    "invalid mount '{}': expected bind:SRC:DST[:OPTS] or tmpfs:DST[:OPTS]",
                    spec.to_string_lossy()
                )))
            }
        })
        .collect()
}

/// Every -v, every --tmpfs, then the --mount entries in their order.
fn mount_order(volumes: usize, tmpfs: usize, ordered: &[Ordered]) -> Vec<MountSlot> {
    let mut order: Vec<MountSlot> = (0..volumes).map(MountSlot::Volume).collect();
    order.extend((0..tmpfs).map(MountSlot::Tmpfs));
    let (mut v, mut t) = (volumes, tmpfs);
    for (volume, _) in ordered {
        if volume.is_some() {
            order.push(MountSlot::Volume(v));
            v += 1;
        } else {
            order.push(MountSlot::Tmpfs(t));
            t += 1;
        }
    }
    order
}

/// Whether COMMAND can be found on the host (for the hint when it is missing in the root).
fn on_host(command: &[OsString]) -> bool {
    let argv = common::exec::command_or_shell(command.to_vec());
    let Some(program) = argv.first() else {
        return false;
    };
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.as_bytes().contains(&b'/') {
        // A /proc path names this process or the host's /proc, not a program of the host
        // tree that could be copied into the root: no "put mntns last" hint for it.
        let proc = Path::new(program).starts_with("/proc");
        return !proc && executable(Path::new(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| executable(&dir.join(program)))
}

/// Why the next program is exec'd for real (common::inprocess).
const REAL_EXEC: &str = "mntns changes the root and the credentials";

/// The first steps, before anything else: not dumpable, a real exec next, and what earlier
/// links handed down taken (it is this link's, whatever happens next), `--argv0` kept for the exec.
fn begin(cx: &mut Context, argv0: Option<String>) -> Result<HandedDown, Fatal> {
    if let Some(argv0) = argv0 {
        cx.set_argv0(argv0.into());
    }
    // mntns may run inside a container's pid namespace (a joined chain, nsps exec): nothing
    // there may reach this host binary through /proc/PID/exe, its fds or its memory while it
    // runs (CVE-2019-5736). The exec makes COMMAND dumpable again.
    debug::step("not dumpable", || nix::sys::prctl::set_dumpable(false))
        .map_err(|e| Fatal::from(e).context("unable to make mntns not dumpable"))?;
    // A new root, the container's credentials and its seccomp filter: only an execve gives
    // the next program exactly what it should see of them.
    cx.exec_for_real(REAL_EXEC)?;
    HandedDown::take(cx)
}

pub fn run(mut args: Args, cx: &mut Context) -> Result<Next, Fatal> {
    let handed = begin(cx, args.argv0.take())?;
    let gate = start::Gate::take(args.ready_fd, args.start_fifo)?;
    let mut hook_point = hook_point::HookPoint::take(args.hook_fd)?;
    let (plan, image_use) = plan_with_image(&mut args, &handed)?;
    // Registered as the host numbers it: read before --proc mounts the container's /proc
    // (again after the fork of a waiter: the child is the one registered).
    let mut host_pid = common::procfs::own_pid();
    // The caller's directory, kept in a new root where it shows there (workdir).
    let cwd = std::env::current_dir().ok();
    let link = Link::prepare(cx, Namespace::Mnt, &args.ns)?;
    if plan.root.is_some() || link.is_join() {
        // The inputs are valid: say what a capability beyond the default set opens.
        for line in entry::risky_additions(&args.cap_add) {
            common::report::warning(line);
        }
    }
    if link.is_join() && !sets_up_in_joined(&link, &plan) {
        drop(handed);
        return run_join(args, plan, &link, gate, cx);
    }
    let HandedDown {
        trees,
        mut sysfs,
        after,
    } = handed;
    let mut trees = RootTrees::split(trees, &plan);
    let container = plan.root.is_some();
    let seccomp = seccomp_choice(&args, container);
    let mut entry = prepare_entry(&args, container, &seccomp, after.as_ref(), &mut host_pid)?;
    entry.gate = gate;
    // Checked before anything changes; opened again in the new namespace below.
    if container {
        debug::step("verify the host's device nodes", dev::HostNodes::open)?;
    }
    let net = match cx.handdown().net.take() {
        Slot::Made(stack) => Some(stack),
        Slot::Inherited(stack) => Some(stack.to_string_lossy().into_owned()),
        Slot::Empty => None,
    };
    let etc = (container && !args.no_etc).then(|| etc_files::EtcFiles::generate(net.as_deref()));
    let (layer, cleaner, handed_over) = match &plan.root {
        Some(NewRoot::Overlay(lowers)) => {
            let (layer, cleaner, handed_over) =
                prepare_layer(&args, lowers, &trees, after.as_ref(), &mut entry)?;
            if let Some(image) = &image_use {
                image.record(&layer.dir)?;
            }
            if entry.waiter.is_some() {
                host_pid = common::procfs::own_pid();
            }
            (Some(layer), cleaner, handed_over)
        }
        _ => (None, None, false),
    };
    let shared = if container {
        shared_writes(&args, &plan, &layer, &trees.root, &trees.volumes)
    } else {
        Vec::new()
    };
    if !shared.is_empty() {
        setuid_guard::strip_caps(&mut entry);
    }

    link.enter()?;
    let mut extra = Map::new();
    let (root, nodes) = build_root(
        &args, &plan, &layer, &mut trees, &mut sysfs, &mut extra, etc,
    )?;
    set_workdir(&args, &plan, root.as_fd(), cwd.as_deref(), &mut entry)?;
    describe(&plan, &layer, &trees.handed, &shared, &mut extra);
    image::describe(image_use.as_ref(), &mut extra);
    if container || args.seccomp.is_some() {
        extra.insert(seccomp_policy::RECORD_KEY.into(), json!(seccomp.describe()));
    }
    link.finish(host_pid, extra)?;

    hook_point.pass()?;
    enter_root(&args, root, container)?;
    drop(nodes);
    drop(sysfs);
    drop(after);
    release_layer(args.rm && !handed_over, cleaner);
    // The shell's idea of where it is, true in the new root.
    let pwd = container.then(|| {
        entry
            .workdir
            .as_ref()
            .map_or(PathBuf::from("/"), |(p, _)| p.clone())
    });
    settle_user_and_env(&mut entry, args.user.as_ref(), &plan.env, pwd.as_deref())?;
    entry.groups.extend(&args.group_add);
    if !shared.is_empty() {
        entry.notice = Some(setuid_guard::notice(&shared));
        setuid_guard::install()?;
    }
    entry.exec(args.command.command, cx)
}

/// The entry (new_entry), with its pty proxy (`--tty`: forked now, before the unshare) and
/// its seccomp profile compiled for the capabilities COMMAND will hold.
fn prepare_entry(
    args: &Args,
    container: bool,
    seccomp: &Choice,
    after: Option<&common::channel::Channel>,
    host_pid: &mut u32,
) -> Result<entry::Entry, Fatal> {
    let mut entry = new_entry(args, container);
    if args.tty {
        let link = tty::proxy_link(after)?;
        if let tty::ProxyLink::Own(_, proxy) = &link {
            // The child goes on: it is the one registered, and dies with the proxy.
            *host_pid = common::procfs::own_pid();
            entry.waiter = Some(*proxy);
        }
        entry.tty = Some(link);
    }
    if let Some(fd) = args.console_fd {
        entry.tty = Some(tty::console(fd)?);
    }
    entry.profile = seccomp_policy::build(seccomp, entry.capability_names())?;
    Ok(entry)
}

/// `--image` turned into the `--overlay` run it stands for (image.rs), then the plan, with
/// the image's Env first (`--env-file` and `-e` override it).
fn plan_with_image(
    args: &mut Args,
    handed: &HandedDown,
) -> Result<(Plan, Option<image::ImageUse>), Fatal> {
    let image_use = image::apply(args, &handed.trees.paths())?;
    let mut plan = plan(args)?;
    if let Some(image) = &image_use {
        plan.env.set.splice(0..0, image.env.iter().cloned());
    }
    Ok((plan, image_use))
}

/// What earlier links handed down: `userns --idmap`'s trees, netns's sysfs, pidns's socket.
struct HandedDown {
    trees: idmap::HandedDownTrees,
    sysfs: Option<OwnedFd>,
    after: Option<common::channel::Channel>,
}

impl HandedDown {
    fn take(cx: &mut Context) -> Result<HandedDown, Fatal> {
        let handdown = cx.handdown();
        let trees = idmap::HandedDownTrees::take(handdown.idmap.take())?;
        // The sysfs of the network namespace an earlier netns made (common::sysfs).
        let sysfs = common::sysfs::take(handdown.sysfs.take()).map_err(|e| {
            Fatal::new(e).with_hint(format!(
                "{} is set by netns for a later mntns: do not set it by hand",
                common::sysfs::VAR
            ))
        })?;
        // The socket to the link that waits outside (pidns), if any.
        let after = common::after::take(handdown.after.take());
        Ok(HandedDown {
            trees,
            sysfs,
            after,
        })
    }
}

/// The handed-down idmapped trees, each given to the input whose path it is; the rest closed.
struct RootTrees {
    /// The paths of every tree handed down (shown in the registration).
    handed: Vec<String>,
    root: Option<OwnedFd>,
    lowers: Vec<Option<OwnedFd>>,
    /// A tree holding every lower layer below its root (the image store): its path and fd.
    store: Option<(PathBuf, OwnedFd)>,
    volumes: Vec<Option<OwnedFd>>,
}

impl RootTrees {
    fn split(mut trees: idmap::HandedDownTrees, plan: &Plan) -> RootTrees {
        let handed = trees.paths();
        let root = match &plan.root {
            Some(NewRoot::Rootfs(dir)) => trees.take_for(dir, "--rootfs"),
            _ => None,
        };
        let lowers = match &plan.root {
            Some(NewRoot::Overlay(lowers)) => lowers
                .iter()
                .map(|l| trees.take_for(l, "--overlay"))
                .collect(),
            _ => Vec::new(),
        };
        let store = match &plan.root {
            Some(NewRoot::Overlay(list))
                if !list.is_empty() && lowers.iter().all(Option::is_none) =>
            {
                trees
                    .take_containing(&list[0])
                    .filter(|(path, _)| list.iter().all(|l| l.starts_with(path)))
            }
            _ => None,
        };
        let volumes = plan
            .volumes
            .iter()
            .map(|v| trees.take_for(&v.source, "--volume"))
            .collect();
        // The trees nothing here uses are closed now.
        drop(trees);
        RootTrees {
            handed,
            root,
            lowers,
            store,
            volumes,
        }
    }
}

/// How COMMAND is entered, from the flags (workdir, credentials and waiter come later).
fn new_entry(args: &Args, container: bool) -> entry::Entry {
    entry::Entry {
        container,
        preserve_fds: args.preserve_fds,
        user: args
            .user
            .as_ref()
            .and_then(|u| u.numeric_uid())
            .map(|uid| User { uid, gid: uid }),
        groups: Vec::new(),
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        cap_inheritable: args.cap_inheritable.clone(),
        cap_ambient: args.cap_ambient.clone(),
        no_new_privs: args.no_new_privs,
        new_keyring: !args.no_new_keyring,
        workdir: None,
        on_host: container && on_host(&args.command.command),
        next_is_a_link: args
            .command
            .command
            .first()
            .is_some_and(|p| common::handdown::is_link(p)),
        creds: None,
        notice: None,
        waiter: None,
        tty: None,
        profile: None,
        gate: start::Gate::default(),
        bounding: Default::default(),
    }
}

/// The writable layer of `--overlay`, made before the unshare, and who removes it: the link
/// that waits outside (`--rm` under pidns: handed the removal and the layer's lock at once,
/// so that nothing of ours stays in the container; the bool says so), the waiter (`--rm`
/// without pidns: this process becomes the waiter's child) or the cleaner.
fn prepare_layer(
    args: &Args,
    lowers: &[PathBuf],
    trees: &RootTrees,
    after: Option<&common::channel::Channel>,
    entry: &mut entry::Entry,
) -> Result<(overlay::Layer, Option<overlay::Cleaner>, bool), Fatal> {
    // A generated name is not the layer's: a later chain may draw it again.
    let name = common::chain::chosen_name(args.ns.name.as_deref());
    if let Some(name) = &name {
        // It becomes a path component of the layer.
        common::chain::validate_name(name).map_err(Fatal::new)?;
    }
    if args.upper.is_none() {
        debug::step("collect stale --rm layers", overlay::collect_garbage);
    }
    let lower = lowers
        .first()
        .map(PathBuf::as_path)
        .unwrap_or(Path::new("/"));
    if args.rm && entry.grants(caps::Capability::CAP_SYS_PTRACE) {
        common::report::warning(
            "--rm with CAP_SYS_PTRACE: the process that deletes the layer stays in the host's mount namespace, and a container that can ptrace it (same pid namespace) can reach the host's files through it",
        );
    }
    // The topmost lower layer as seen through a handed-down tree: its own, or the store's.
    let below_store = match (&trees.store, lowers.first()) {
        (Some((path, tree)), Some(top)) => Some(
            idmap::open_below(tree.as_fd(), top.strip_prefix(path).unwrap_or(top)).map_err(
                |e| {
                    Fatal::from(e).context(format!(
                        "unable to open {} in the idmapped store",
                        top.display()
                    ))
                },
            )?,
        ),
        _ => None,
    };
    let lower_tree = trees
        .lowers
        .first()
        .and_then(|t| t.as_ref())
        .or(below_store.as_ref())
        .map(|t| t.as_fd());
    let mut layer = overlay::prepare(
        args.upper.as_deref(),
        name.as_deref(),
        args.rm,
        lower,
        lower_tree,
    )?;
    if let Some(after) = after.filter(|_| args.rm) {
        if overlay::hand_over(&mut layer, after) {
            return Ok((layer, None, true));
        }
    }
    let mut cleaner = None;
    if args.rm && after.is_none() {
        // No pidns waits outside: the process the caller waits on deletes the layer.
        entry.waiter = Some(waiter::fork_waiter(&mut layer)?);
    } else {
        cleaner = overlay::Cleaner::spawn(&mut layer)?;
    }
    Ok((layer, cleaner, false))
}

/// In the new namespace: the root (the host's, a bound --rootfs behind its skeleton, or the
/// overlay) with /proc, /sys, /etc files, /dev, volumes, tmpfs and masked paths. Returns the
/// root and the host's device nodes (kept open until the pivot).
fn build_root(
    args: &Args,
    plan: &Plan,
    layer: &Option<overlay::Layer>,
    trees: &mut RootTrees,
    sysfs: &mut Option<OwnedFd>,
    extra: &mut Map<String, serde_json::Value>,
    etc: Option<etc_files::EtcFiles>,
) -> Result<(OwnedFd, Option<dev::HostNodes>), Fatal> {
    let container = plan.root.is_some();
    let setup = if container {
        propagation::for_setup(args.propagation)
    } else {
        args.propagation
    };
    propagation::apply("/", setup)?;
    let nodes = if container {
        Some(debug::step(
            "open the host's device nodes",
            dev::HostNodes::open,
        )?)
    } else {
        None
    };
    let root: OwnedFd = match (&plan.root, layer) {
        (Some(NewRoot::Rootfs(dir)), _) => match trees.root.take() {
            Some(tree) => rootfs::attach_tree(dir, tree)?,
            None => rootfs::bind_self(dir)?,
        },
        (Some(NewRoot::Overlay(lowers)), Some(layer)) => match trees.store.take() {
            Some((path, tree)) => overlay::mount_below_tree(layer, lowers, &path, tree)?,
            None => overlay::mount(layer, lowers, &mut trees.lowers)?,
        },
        _ => resolve::open_host_dir(Path::new("/"))?,
    };
    // A --rootfs is never written: what it lacks is made in a skeleton (skeleton.rs).
    let root = match &plan.root {
        Some(NewRoot::Rootfs(dir)) => {
            let needs = mount_points(args, plan, etc.as_ref());
            skeleton::protect(dir, root, &needs, args.read_only)?
        }
        _ => root,
    };
    // Skeletons included: the whole tree the container can write is nodev.
    if container {
        dev::nodev_root(root.as_fd())?;
    }
    if let Some(nodes) = &nodes {
        // runc's order (/proc, /dev and below, /sys): mountinfo lists them so, as OCI
        // configs give them.
        proc_sys::mount_proc(root.as_fd())?;
        dev::setup(root.as_fd(), nodes)?;
        device_node::make(root.as_fd(), &args.device_node)?;
        let sys = proc_sys::mount_sys(root.as_fd(), sysfs.take())?;
        extra.insert("sys".into(), json!(sys));
        let cgroup = cgroupfs::mount(root.as_fd())
            .map_err(|e| Fatal::from(e).context("unable to mount /sys/fs/cgroup"))?;
        extra.insert("cgroupfs".into(), json!(cgroup));
        if let Some(etc) = &etc {
            etc_files::install(root.as_fd(), etc)?;
        }
    } else if args.proc {
        proc_sys::mount_host_proc()?;
    }
    // Mount points are created inside a new root (in its image or layer), never on the host.
    for slot in &plan.order {
        match *slot {
            MountSlot::Volume(i) => mount_volumes(
                root.as_fd(),
                &plan.volumes[i..=i],
                &mut trees.volumes[i..=i],
                container,
            )?,
            MountSlot::Tmpfs(i) => mount_tmpfs(root.as_fd(), &plan.tmpfs[i..=i], container)?,
        }
    }
    if let Some(nodes) = &nodes {
        let null = nodes
            .null()
            .ok_or_else(|| Fatal::new("no verified /dev/null to mask paths with"))?;
        proc_sys::mask(root.as_fd(), null, &args.mask)?;
        hide_state::hide(root.as_fd())?;
        proc_sys::read_only(root.as_fd(), &args.read_only_path)?;
    }
    Ok((root, nodes))
}

/// COMMAND's working directory: `-w` (created in a new root), else the caller's where the
/// new root shows it.
fn set_workdir(
    args: &Args,
    plan: &Plan,
    root: std::os::fd::BorrowedFd<'_>,
    cwd: Option<&Path>,
    entry: &mut entry::Entry,
) -> Result<(), Fatal> {
    if let Some(dir) = &args.workdir {
        let create = if plan.root.is_some() {
            Create::Dir
        } else {
            Create::No
        };
        let fd = resolve::open_in_root(root, dir, create)
            .fatal_context("unable to set the working directory")?;
        entry.workdir = Some((dir.clone(), fd));
    } else if let Some(new_root) = &plan.root {
        let source = match new_root {
            NewRoot::Rootfs(dir) => Some(dir.as_path()),
            NewRoot::Overlay(lowers) => lowers.first().map(PathBuf::as_path),
        };
        let volumes: Vec<(PathBuf, PathBuf)> = plan
            .volumes
            .iter()
            .map(|v| (v.source.clone(), v.target.clone()))
            .collect();
        entry.workdir = workdir::keep_callers(root, cwd, source, &volumes);
    }
    Ok(())
}

/// What the registration shows of this link (nsps, --info-fd, and nsps exec's guard).
fn describe(
    plan: &Plan,
    layer: &Option<overlay::Layer>,
    handed: &[String],
    shared: &[String],
    extra: &mut Map<String, serde_json::Value>,
) {
    if let Some(new_root) = &plan.root {
        let shown = match (new_root, layer) {
            (NewRoot::Rootfs(dir), _) => dir.clone(),
            (NewRoot::Overlay(_), Some(layer)) => layer.merged(),
            (NewRoot::Overlay(_), None) => PathBuf::new(),
        };
        extra.insert("rootfs".into(), json!(shown.to_string_lossy()));
        // nsps exec gives a joined process the same filter (it cannot be read back).
        extra.insert("seccomp".into(), json!(common::info::SECCOMP_CONTAINER));
    }
    if let Some(layer) = layer {
        extra.insert("id".into(), json!(layer.id));
        extra.insert("layer".into(), json!(layer.dir.to_string_lossy()));
        extra.insert("rm".into(), json!(layer.rm));
    }
    if !handed.is_empty() {
        extra.insert("idmap".into(), json!(handed));
    }
    if !shared.is_empty() {
        // So that whoever joins this container later (nsps exec) can apply the same guard.
        extra.insert("setuid_guard".into(), json!(shared));
    }
}

/// The switch into the new root (pivot_root, old root detached), or the read-only flag
/// on the host's tree.
fn enter_root(args: &Args, root: OwnedFd, container: bool) -> Result<(), Fatal> {
    if container {
        skeleton::finish()?;
        rootfs::pivot(&root)?;
        if args.read_only {
            rootfs::make_root_read_only()?;
        }
        // Set on the new root once it is in place (during setup it stays private).
        if matches!(
            args.propagation,
            Propagation::Shared | Propagation::Unbindable
        ) {
            propagation::apply("/", args.propagation)?;
        }
    } else if args.read_only {
        rootfs::make_root_read_only()?;
    }
    Ok(())
}

/// After a setup that succeeded: the cleaner (if any) deletes a `--rm` layer once COMMAND
/// exits, else leaves at once. (Under pidns the layer was handed over at `prepare_layer`.)
fn release_layer(rm: bool, cleaner: Option<overlay::Cleaner>) {
    if let Some(cleaner) = cleaner {
        cleaner.release(rm);
    }
}

/// Right before the exec, in the final root: `--user` resolved in its /etc/passwd and
/// /etc/group, then COMMAND's environment (env.rs).
fn settle_user_and_env(
    entry: &mut entry::Entry,
    spec: Option<&passwd::UserSpec>,
    env: &env::EnvPlan,
    pwd: Option<&Path>,
) -> Result<(), Fatal> {
    let resolved = match spec {
        Some(spec) => Some(passwd::resolve(spec).map_err(Fatal::new)?),
        None => None,
    };
    if let Some(user) = &resolved {
        entry.user = Some(volume::User {
            uid: user.user.uid,
            gid: user.user.gid,
        });
        entry.groups = user.groups.clone();
    }
    env.apply(resolved.as_ref());
    if let Some(pwd) = pwd {
        std::env::set_var("PWD", pwd);
    }
    Ok(())
}

/// The paths a new root must have for what mntns mounts there (created if missing).
fn mount_points(
    args: &Args,
    plan: &Plan,
    etc: Option<&etc_files::EtcFiles>,
) -> Vec<(PathBuf, Create)> {
    let mut needs: Vec<(PathBuf, Create)> = ["/dev", "/proc", "/sys"]
        .iter()
        .map(|p| (PathBuf::from(p), Create::Dir))
        .collect();
    for (name, _) in etc.map_or(&[][..], |e| &e.files[..]) {
        needs.push((Path::new("/etc").join(name), Create::File));
    }
    if let Some(dir) = &args.workdir {
        needs.push((dir.clone(), Create::Dir));
    }
    for volume in &plan.volumes {
        let kind = match std::fs::metadata(&volume.source) {
            Ok(m) if !m.is_dir() => Create::File,
            _ => Create::Dir,
        };
        needs.push((volume.target.clone(), kind));
    }
    for tmpfs in &plan.tmpfs {
        needs.push((tmpfs.target.clone(), Create::Dir));
    }
    needs
}

/// The host paths the container writes as host root into and other users can reach
/// (setuid_guard says why that matters).
fn shared_writes(
    args: &Args,
    plan: &Plan,
    layer: &Option<overlay::Layer>,
    root_tree: &Option<OwnedFd>,
    volume_trees: &[Option<OwnedFd>],
) -> Vec<String> {
    // Without a user namespace the container's root is host root; an idmapped tree (handed
    // down by `userns --idmap`, host root's files read as root inside) writes as host root.
    let host_root = common::state::is_host_root();
    let mut writable = Vec::new();
    if !args.read_only {
        match (&plan.root, layer) {
            (Some(NewRoot::Rootfs(dir)), _) if host_root || root_tree.is_some() => {
                writable.push(dir.clone());
            }
            (Some(NewRoot::Overlay(_)), Some(layer)) if host_root => {
                writable.push(std::fs::canonicalize(layer.diff()).unwrap_or_else(|_| layer.diff()));
            }
            _ => {}
        }
    }
    for (volume, tree) in plan.volumes.iter().zip(volume_trees) {
        if !volume.read_only && (host_root || tree.is_some()) {
            writable.push(
                std::fs::canonicalize(&volume.source).unwrap_or_else(|_| volume.source.clone()),
            );
        }
    }
    debug::step("who else can reach the writable paths", || {
        writable
            .iter()
            .filter(|p| reach::reachable_by_others(p, &writable))
            .map(|p| p.display().to_string())
            .collect()
    })
}

/// `--join FILE --rootfs DIR`: the new root is set up inside the mount namespace FILE names
/// instead of a new one (an OCI config's mount namespace `path`, which runc and crun enter
/// before they set the rootfs up); a joined process or chain is entered as it is.
fn sets_up_in_joined(link: &Link, plan: &Plan) -> bool {
    matches!(plan.root, Some(NewRoot::Rootfs(_)))
        && matches!(link.join_target(), Some(common::ns::JoinTarget::Path(_)))
}

fn run_join(
    args: Args,
    plan: Plan,
    link: &Link,
    gate: start::Gate,
    cx: &mut Context,
) -> Result<Next, Fatal> {
    if plan.root.is_some()
        || !plan.volumes.is_empty()
        || !plan.tmpfs.is_empty()
        || args.proc
        || args.read_only
        || !args.mask.is_empty()
        || !args.read_only_path.is_empty()
    {
        return Err(Fatal::new(
            "--join enters a running container as it is: --rootfs, --overlay, --volume, --tmpfs, --proc, --read-only, --mask and --read-only-path do not apply",
        ));
    }
    if args.tty {
        return Err(Fatal::new("--tty does not apply to --join")
            .with_hint("nsps exec -t NAME gives a joined process a terminal of the container's"));
    }
    let guarded = join::setuid_guarded(link);
    let joined = join::enter(link, &args.ns, args.workdir.as_deref())?;
    // The target's credentials, unless the flags choose others (a pinned namespace file names
    // no process: then the defaults, as before).
    let own_choice = args.user.is_some() || !args.cap_add.is_empty() || !args.cap_drop.is_empty();
    let creds = joined.creds.clone().filter(|_| !own_choice);
    let workdir = match &args.workdir {
        Some(dir) => {
            let root = resolve::open_host_dir(Path::new("/"))?;
            let fd = resolve::open_in_root(root.as_fd(), dir, Create::No)
                .fatal_context("unable to set the working directory")?;
            Some((dir.clone(), fd))
        }
        None => None,
    };
    let mut entry = entry::Entry {
        container: true,
        preserve_fds: args.preserve_fds,
        user: args
            .user
            .as_ref()
            .and_then(|u| u.numeric_uid())
            .map(|uid| User { uid, gid: uid }),
        groups: Vec::new(),
        cap_add: args.cap_add,
        cap_drop: args.cap_drop,
        cap_inheritable: args.cap_inheritable,
        cap_ambient: args.cap_ambient,
        no_new_privs: args.no_new_privs,
        new_keyring: !args.no_new_keyring,
        workdir,
        on_host: false,
        next_is_a_link: false,
        creds,
        notice: None,
        waiter: None,
        tty: args.console_fd.map(tty::console).transpose()?,
        profile: None,
        gate,
        bounding: Default::default(),
    };
    // The container's own profile, unless --seccomp chooses another.
    let seccomp = match &args.seccomp {
        Some(choice) => choice.clone(),
        None => join::seccomp_profile(link),
    };
    entry.profile = seccomp_policy::build(&seccomp, entry.capability_names())?;
    settle_user_and_env(&mut entry, args.user.as_ref(), &plan.env, None)?;
    entry.groups.extend(&args.group_add);
    if guarded {
        // The same guard as the container's own processes (said when it started).
        setuid_guard::strip_caps(&mut entry);
        setuid_guard::install()?;
    }
    entry.exec(args.command.command, cx)
}

fn mount_volumes(
    root: std::os::fd::BorrowedFd<'_>,
    volumes: &[Volume],
    trees: &mut [Option<OwnedFd>],
    new_root: bool,
) -> Result<(), Fatal> {
    for (i, volume) in volumes.iter().enumerate() {
        let tree = trees.get_mut(i).and_then(Option::take);
        debug::step(
            format_args!("volume {}", volume.target.display()),
            || -> anyhow::Result<()> {
                let source = match &tree {
                    Some(tree) => tree.try_clone()?,
                    None => resolve::open_host(&volume.source)?,
                };
                let create = match resolve::file_type(source.as_fd())? {
                    _ if !new_root => Create::No,
                    nix::sys::stat::SFlag::S_IFDIR => Create::Dir,
                    _ => Create::File,
                };
                let target = resolve::open_in_root(root, &volume.target, create)?;
                if proc_sys::is_proc_or_sys(target.as_fd()) {
                    anyhow::bail!("the target resolves into /proc or /sys, which mntns manages");
                }
                let mut attrs = if volume.read_only {
                    sys::MOUNT_ATTR_RDONLY
                } else {
                    0
                };
                if new_root {
                    // In a new root a volume is nodev too (dev::nodev_root says why).
                    attrs |= sys::MOUNT_ATTR_NODEV;
                }
                match &tree {
                    // The idmapped tree itself is attached (its own mount only); the
                    // attributes are set once it is in this namespace, before COMMAND runs.
                    Some(tree) => {
                        sys::move_onto(tree.as_fd(), target.as_fd())?;
                        if attrs != 0 {
                            sys::set_attr(tree.as_fd(), attrs, false).map_err(sys::new_api)?;
                        }
                    }
                    None => sys::bind(source.as_fd(), target.as_fd(), true, attrs)?,
                }
                if let Some(flags) = volume.propagation {
                    // The fd names the directory under the new mount: open it again.
                    let mounted = resolve::open_in_root(root, &volume.target, Create::No)?;
                    nix::mount::mount(
                        None::<&str>,
                        &sys::fd_path(mounted.as_fd()),
                        None::<&str>,
                        flags,
                        None::<&str>,
                    )
                    .map_err(|e| anyhow::Error::from(e).context("unable to set its propagation"))?;
                }
                Ok(())
            },
        )
        .map_err(|e| {
            Fatal::from(e).context(format!(
                "unable to mount the volume {} at {}",
                volume.source.display(),
                volume.target.display()
            ))
        })?;
    }
    Ok(())
}

fn mount_tmpfs(
    root: std::os::fd::BorrowedFd<'_>,
    list: &[Tmpfs],
    create: bool,
) -> Result<(), Fatal> {
    for tmpfs in list {
        debug::step(
            format_args!("tmpfs {}", tmpfs.target.display()),
            || -> anyhow::Result<()> {
                let create = if create { Create::Dir } else { Create::No };
                let target = resolve::open_in_root(root, &tmpfs.target, create)?;
                if proc_sys::is_proc_or_sys(target.as_fd()) {
                    anyhow::bail!("the target resolves into /proc or /sys, which mntns manages");
                }
                let data = (!tmpfs.data.is_empty()).then_some(tmpfs.data.as_str());
                sys::mount_fs("tmpfs", target.as_fd(), tmpfs.flags, data)?;
                Ok(())
            },
        )
        .map_err(|e| {
            Fatal::from(e).context(format!(
                "unable to mount a tmpfs at {}",
                tmpfs.target.display()
            ))
        })?;
    }
    Ok(())
}
