//! `create`: the init is started as the caller's child (so that a subreaper, conmon or
//! containerd-shim, reaps it) running the chain of links; `create` returns once mntns, last,
//! has set everything up and waits at the start gate (`exec.fifo`, as runc).

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use common::Fatal;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::Mode;

use crate::chain;
use crate::config::{self, Rlimit};
use crate::hooks;
use crate::state::{self, Record};

/// What `create` and `run` are given.
#[derive(Debug)]
pub struct Request {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub no_new_keyring: bool,
    /// Where the terminal's master goes (process.terminal).
    pub console_socket: Option<PathBuf>,
    /// Without a console socket: mntns's end of nsoci's own (a foreground `run`, terminal.rs).
    pub own_terminal: Option<OwnedFd>,
    /// `run`: this process starts what it creates, so the init needs no start gate
    /// (exec.fifo) unless startContainer hooks must run between `ready` and the exec, or
    /// nsoci proxies the terminal itself (the pty gets the caller's size before the start).
    pub run: bool,
}

/// A created container's first process.
#[derive(Debug)]
pub struct Init {
    /// The container's PID 1 (the user's process once started): this process's child, or
    /// an orphan given to it as a subreaper.
    pub pid: i32,
    /// It has a terminal (process.terminal).
    pub terminal: bool,
    /// It waits at the start gate (exec.fifo) for `start`; false: it goes on to exec
    /// process.args once set up (`run` without startContainer hooks).
    pub gated: bool,
}

/// Creates the container; returns its init.
pub fn create(req: &Request) -> Result<Init, Fatal> {
    state::check_id(&req.id)?;
    let bundle = std::fs::canonicalize(&req.bundle).map_err(|e| {
        Fatal::from(anyhow::Error::from(e))
            .context(format!("unable to use bundle {}", req.bundle.display()))
    })?;
    let config = config::load(&bundle)?;
    let process = config
        .process
        .as_ref()
        .filter(|p| !p.args.is_empty())
        .ok_or_else(|| Fatal::new("config.json: process.args must not be empty"))?;
    let console = crate::terminal::console(process.terminal, req)?;
    config.hooks.check()?;
    let tools = tools_dir()?;
    common::state::ensure_dir(&req.root, 0o711)
        .map_err(|e| Fatal::from(e).context("unable to use the state directory"))?;
    let dir = req.root.join(&req.id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Fatal::new(format!(
                "container with id {} already exists",
                req.id
            )))
        }
        Err(e) => {
            return Err(Fatal::from(anyhow::Error::from(e))
                .context(format!("unable to create {}", dir.display())))
        }
    }
    let made = Made(dir.clone());
    crate::pid1::become_subreaper()?;
    let mut resources = config.linux.resources.clone().unwrap_or_default();
    if !resources.devices.is_empty() {
        let nodes = crate::devices::allow_rules(&config.linux.devices);
        resources.devices.extend(nodes);
    }
    let placed = crate::cgroup::setup(config.linux.cgroups_path.as_deref(), &req.id, &resources)?;
    let init = start_init(
        req,
        &config,
        process,
        (&bundle, &tools, &dir),
        console,
        placed.as_ref(),
    );
    if let (Err(_), Some(placed)) = (&init, &placed) {
        crate::cgroup::kill_all(placed);
        crate::cgroup::remove(placed);
    }
    let init = init?;
    std::mem::forget(made);
    Ok(init)
}

/// Removes the container's directory unless `create` got through.
struct Made(PathBuf);

impl Drop for Made {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `exec.fifo`, the gate `start` opens, made and opened (O_PATH) for the chain.
fn exec_fifo(dir: &Path) -> Result<RawFd, Fatal> {
    let fifo_path = dir.join("exec.fifo");
    // 0622: the payload's user, whoever it is, opens it for writing at the gate.
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o622))
        .map_err(|e| Fatal::from(e).context("unable to create exec.fifo"))?;
    nix::sys::stat::fchmodat(
        None,
        &fifo_path,
        Mode::from_bits_truncate(0o622),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| Fatal::from(e).context("unable to set the mode of exec.fifo"))?;
    nix::fcntl::open(&fifo_path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Fatal::from(e).context("unable to open exec.fifo"))
}

/// `linux.seccomp` written where mntns --seccomp reads it.
fn seccomp_file(config: &config::Config, dir: &Path) -> Result<Option<PathBuf>, Fatal> {
    let Some(profile) = &config.linux.seccomp else {
        return Ok(None);
    };
    let file = dir.join("seccomp.json");
    std::fs::write(&file, profile.to_string())
        .map_err(|e| Fatal::from(anyhow::Error::from(e)).context("unable to write seccomp.json"))?;
    Ok(Some(file))
}

fn start_init(
    req: &Request,
    config: &config::Config,
    process: &config::Process,
    (bundle, tools, dir): (&Path, &Path, &Path),
    console: Option<OwnedFd>,
    placed: Option<&crate::cgroup::Placed>,
) -> Result<Init, Fatal> {
    // Above the fds the payload keeps (--preserve-fds), not close-on-exec: the chain's.
    let floor = 3 + req.preserve_fds as RawFd + 16;
    // A terminal nsoci proxies itself is sized before the payload may use it: gated too.
    let own_terminal =
        process.terminal && req.own_terminal.is_some() && req.console_socket.is_none();
    let gated = !req.run || !config.hooks.start_container.is_empty() || own_terminal;
    let fifo_fd = gated
        .then(|| exec_fifo(dir).and_then(|fifo| inheritable(fifo, floor)))
        .transpose()?;
    let (ready_read, ready_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| Fatal::from(e).context("unable to create a pipe"))?;
    let (status_read, status_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| Fatal::from(e).context("unable to create a pipe"))?;
    let ready_fd = inheritable(ready_write.into_raw_fd(), floor)?;
    let status_fd = inheritable(status_write.into_raw_fd(), floor)?;
    let (hook_socket, hook_fd) = if config.hooks.before_pivot() {
        let (ours, theirs) = UnixStream::pair()
            .map_err(|e| Fatal::from(e).context("unable to create a socket pair"))?;
        (
            Some(ours),
            Some(inheritable(OwnedFd::from(theirs).into_raw_fd(), floor)?),
        )
    } else {
        (None, None)
    };
    let console_fd = console
        .map(|c| inheritable(c.into_raw_fd(), floor))
        .transpose()?;
    let seccomp = seccomp_file(config, dir)?;
    chain::joined_net_sysctls(config)?;
    let argv = chain::build(
        config,
        process,
        &chain::Inputs {
            tools,
            bundle,
            ready_fd: ready_fd.as_raw_fd(),
            start_fifo: fifo_fd.as_ref().map(AsRawFd::as_raw_fd),
            status_fd: status_fd.as_raw_fd(),
            console_fd: console_fd.as_ref().map(AsRawFd::as_raw_fd),
            hook_fd: hook_fd.as_ref().map(AsRawFd::as_raw_fd),
            preserve_fds: req.preserve_fds,
            no_new_keyring: req.no_new_keyring,
            seccomp,
        },
    )?;
    common::debug::note(format_args!("chain: {}", show(&argv)));
    let mut child = spawn(
        &argv,
        &process.rlimits,
        process.user.umask,
        process.oom_score_adj,
        placed.map(crate::cgroup::procs_files).unwrap_or_default(),
    )?;
    let fifo_fd_taken = fifo_fd.is_some();
    drop((fifo_fd, ready_fd, status_fd, console_fd, hook_fd));
    let mut pid = child.id() as i32;
    let pidns = config.linux.namespaces.iter().any(|n| n.kind == "pid");
    let pipes = Pipes {
        status: pidns.then_some(status_read),
        ready: ready_read,
        hooks: hook_socket,
        gated: fifo_fd_taken,
    };
    let settled = settle(
        req,
        config,
        (bundle, dir),
        &mut child,
        &mut pid,
        pipes,
        placed,
    );
    if pid != child.id() as i32 {
        // pidns, which exits once PID 1 is on its way.
        let _ = child.wait();
    }
    match settled {
        Ok(()) => Ok(Init {
            pid,
            terminal: process.terminal,
            gated,
        }),
        Err(e) => {
            // Whatever failed after the spawn, the init does not outlive this create.
            // SAFETY: kill(2) of the init this create started (a child, or an orphan it reaps).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = crate::pid1::wait(pid);
            Err(e)
        }
    }
}

/// What the chain tells `create`: PID 1 (pidns's --status-fd), the stop before pivot_root
/// (mntns --hook-fd), `ready` (mntns --ready-fd).
struct Pipes {
    status: Option<OwnedFd>,
    ready: OwnedFd,
    hooks: Option<UnixStream>,
    /// The init waits at the start gate after `ready`.
    gated: bool,
}

/// After the spawn: the state, PID 1, the hooks before pivot_root, the wait for `ready`, the
/// pid file.
fn settle(
    req: &Request,
    config: &config::Config,
    (bundle, dir): (&Path, &Path),
    child: &mut Child,
    pid: &mut i32,
    pipes: Pipes,
    placed: Option<&crate::cgroup::Placed>,
) -> Result<(), Fatal> {
    // With pidns, PID 1 is known within moments (its --status-fd): the state is written
    // once it is, not first with pidns's pid (each write is a file replaced by a rename).
    if let Some(pid1) = pipes.status.and_then(crate::pid1::read_status) {
        *pid = pid1;
    }
    // Without a gate the init execs the payload right after `ready` (and may have ended by
    // the time nsoci reads it): the chain's name is read from its environment now.
    let handed = (!pipes.gated).then(|| state::handed_name(*pid)).flatten();
    let start_time = common::procfs::start_time(*pid as u32).unwrap_or(0);
    let mut record = Record {
        id: req.id.clone(),
        pid: *pid,
        start_time,
        bundle: bundle.to_path_buf(),
        rootfs: config
            .root
            .as_ref()
            .map(|r| bundle.join(&r.path))
            .unwrap_or_default(),
        created: state::now_rfc3339(),
        annotations: config.annotations.clone(),
        ready: false,
        hooks: config.hooks.clone(),
        cgroup: placed.cloned(),
        chain: None,
    };
    state::save(dir, &record)?;
    if let Some(socket) = pipes.hooks {
        // The spec: a failing hook stops the container, which is then deleted (by the caller).
        hooks::at_pivot(
            socket,
            &config.hooks,
            &state::Container {
                dir: dir.to_path_buf(),
                record: record.clone(),
            },
        )?;
    }
    // "ready" from mntns, or EOF: the chain failed (it said why on stderr).
    let mut said = [0u8; 6];
    let mut pipe = std::fs::File::from(pipes.ready);
    if pipe.read_exact(&mut said).is_err() || &said != b"ready\n" {
        let status = if *pid == child.id() as i32 {
            child
                .wait()
                .map(common::exit::shell_status)
                .unwrap_or(common::exit::FAILURE)
        } else {
            let _ = child.wait();
            crate::pid1::wait(*pid)
        };
        let code = if status == 0 {
            common::exit::FAILURE
        } else {
            status
        };
        return Err(Fatal::new(format!(
            "container {} failed to start (status {status})",
            req.id
        ))
        .with_code(code));
    }
    record.ready = true;
    record.chain = match handed {
        Some(name) => state::registration_with(*pid, Some(name)),
        None => state::registration_of(*pid),
    };
    state::save(dir, &record)?;
    if let Some(path) = &req.pid_file {
        write_pid_file(path, *pid)?;
    }
    Ok(())
}

/// Moves `fd` to a number ≥ `floor` without close-on-exec: the chain inherits it.
pub(crate) fn inheritable(fd: RawFd, floor: RawFd) -> Result<OwnedFd, Fatal> {
    let moved = fcntl(fd, FcntlArg::F_DUPFD(floor))
        .map_err(|e| Fatal::from(e).context("unable to duplicate a descriptor"))?;
    let _ = nix::unistd::close(fd);
    // SAFETY: F_DUPFD just returned this new descriptor, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

pub(crate) fn spawn(
    argv: &[OsString],
    rlimits: &[Rlimit],
    umask: Option<u32>,
    oom: Option<i32>,
    cgroup_procs: Vec<std::ffi::CString>,
) -> Result<Child, Fatal> {
    let limits: Vec<(i32, libc::rlimit)> = rlimits
        .iter()
        .map(|r| {
            resource(&r.kind).map(|res| {
                (
                    res,
                    libc::rlimit {
                        rlim_cur: r.soft,
                        rlim_max: r.hard,
                    },
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let oom = oom.map(|v| format!("{v}\n"));
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Fatal::new("empty chain"))?;
    let mut command = Command::new(program);
    command.args(args);
    // SAFETY: the closure runs in the forked child before the exec and calls only
    // async-signal-safe functions (setrlimit, umask, open, write, close) on data prepared
    // before the fork.
    unsafe {
        command.pre_exec(move || {
            // Into the container's cgroup before the chain's first instruction, so that
            // everything it forks is counted (runc moves its init the same way).
            for file in &cgroup_procs {
                let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
            }
            for (res, lim) in &limits {
                if libc::setrlimit(*res as libc::__rlimit_resource_t, lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(mask) = umask {
                libc::umask(mask as libc::mode_t);
            }
            if let Some(text) = &oom {
                std::fs::write("/proc/self/oom_score_adj", text)?;
            }
            Ok(())
        });
    }
    command.spawn().map_err(|e| {
        Fatal::from(anyhow::Error::from(e))
            .context(format!("unable to start {}", program.to_string_lossy()))
    })
}

fn resource(name: &str) -> Result<i32, Fatal> {
    let res = match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        other => {
            return Err(Fatal::new(format!(
                "process.rlimits: unknown type '{other}'"
            )))
        }
    };
    Ok(res as i32)
}

/// The links are installed next to nsoci (`make install`, or cargo's target directory).
pub(crate) fn tools_dir() -> Result<PathBuf, Fatal> {
    let exe = std::env::current_exe().map_err(|e| {
        Fatal::from(anyhow::Error::from(e)).context("unable to find nsoci's own path")
    })?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if !dir.join("mntns").is_file() {
        return Err(Fatal::new(format!(
            "the nschain links are not installed next to nsoci (no {})",
            dir.join("mntns").display()
        ))
        .with_hint("install nsoci with the tools (make install)"));
    }
    Ok(dir)
}

pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<(), Fatal> {
    let tmp = path.with_extension("nsoci-tmp");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            Fatal::from(anyhow::Error::from(e))
                .context(format!("unable to write the pid file {}", path.display()))
        })
}

fn show(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
