//! `nsoci exec`: runc's `exec`. A process joins the running container through the links'
//! own `--join` (join.rs) and mntns applies the process (user, groups, capabilities,
//! environment, working directory, no_new_privs, the container's seccomp profile). As with
//! the init, pidns leaves no monitor: the process goes to the caller's subreaper (nsoci itself
//! until it exits, then conmon or the shim), its pid is what `--pid-file` gets, and nsoci
//! exits with its status unless `--detach`.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use common::cli::Status;
use common::Fatal;
use nix::fcntl::OFlag;

use crate::config::{self, Process};
use crate::create;
use crate::join::{self, Mnt};
use crate::state::{Container, Status as State};

/// runc's `exec` flags.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// The process as an OCI process JSON (runtime-spec config.md#process); the other
    /// process flags are then ignored
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Return once the process runs instead of waiting for it
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid to FILE
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Give the process a terminal (its master goes to --console-socket; without one, nsoci
    /// proxies the caller's terminal to it)
    #[arg(short, long)]
    pub tty: bool,
    /// Unix socket to send the terminal's master to (SCM_RIGHTS, as runc)
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Set an environment variable (KEY=VALUE), on top of the container's
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// User (numeric) to run as: UID[:GID]
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Supplementary group ids
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the container's (within its bounding set)
    #[arg(short, long, value_name = "CAP")]
    pub cap: Vec<String>,
    /// Pass file descriptors 3 to 3+N-1 to the process
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// The container's id
    pub id: String,
    /// The command and its arguments (without --process)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Runs the process in container `args.id`; its status, or 0 with `--detach`.
pub fn exec(root: &Path, args: ExecArgs) -> Result<Status, Fatal> {
    // Not detached: a signal while the process is set up waits for it (forward.rs).
    let held = (!args.detach).then(crate::forward::hold);
    let c = Container::load(root, &args.id)?;
    match c.status() {
        State::Created | State::Running => {}
        _ => return Err(Fatal::new("cannot exec in a stopped container")),
    }
    let process = process(&c, &args)?;
    // runc's: a terminal with no socket to send it to, when not detached, is nsoci's to proxy.
    let own_tty = process.terminal && args.console_socket.is_none() && !args.detach;
    let (console, proxy_socket) = if own_tty {
        let (ours, theirs) = crate::terminal::socket_pair()?;
        (Some(theirs), Some(ours))
    } else {
        (
            console(process.terminal, args.console_socket.as_deref())?,
            None,
        )
    };
    let tools = create::tools_dir()?;
    let floor = 3 + args.preserve_fds as RawFd + 16;
    let (status_read, status_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| Fatal::from(e).context("unable to create a pipe"))?;
    let status_fd = create::inheritable(status_write.into_raw_fd_owned(), floor)?;
    let (ready_read, ready_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| Fatal::from(e).context("unable to create a pipe"))?;
    let ready_fd = create::inheritable(ready_write.into_raw_fd_owned(), floor)?;
    let console_fd = console
        .map(|s| create::inheritable(s.into_raw_fd_owned(), floor))
        .transpose()?;
    // nsoci's own terminal is sized before the process may look at it: it waits at a gate.
    let gate = own_tty.then(|| crate::gate::make(&c.dir)).transpose()?;
    let gate_fd = gate
        .as_ref()
        .map(|g| {
            let copy = g.try_clone().map_err(|e| {
                Fatal::from(anyhow::Error::from(e)).context("unable to pass the start gate")
            })?;
            create::inheritable(copy.into_raw_fd_owned(), floor)
        })
        .transpose()?;
    let pid = c.record.pid;
    let (mut argv, pidns) = join::argv(&tools, pid, status_fd.as_raw_fd(), Mnt::Process)?;
    crate::chain::process_args(&mut argv, &process);
    if args.preserve_fds > 0 {
        argv.extend([
            "--preserve-fds".into(),
            args.preserve_fds.to_string().into(),
        ]);
    }
    if let Some(fd) = &console_fd {
        argv.extend(["--console-fd".into(), fd.as_raw_fd().to_string().into()]);
    }
    if let Some(fd) = &gate_fd {
        argv.extend(["--start-fifo".into(), fd.as_raw_fd().to_string().into()]);
    }
    // `ready` right before the exec of the process: --detach returns then, as runc's.
    argv.extend(["--ready-fd".into(), ready_fd.as_raw_fd().to_string().into()]);
    argv.push("--".into());
    argv.extend(process.args.iter().map(OsString::from));
    join::enter_cgroup(pid)?;
    crate::pid1::become_subreaper()?;
    let mut chain = create::spawn(
        &argv,
        &process.rlimits,
        process.user.umask,
        process.oom_score_adj,
        Vec::new(),
    )?;
    drop((status_fd, console_fd, ready_fd, gate_fd));
    let joined = match wait_ready(&mut chain, pidns, status_read, ready_read) {
        Ok(joined) => joined,
        Err(status) => return Ok(status),
    };
    if let Some(path) = &args.pid_file {
        if let Err(e) = create::write_pid_file(path, joined) {
            // As runc: a caller that did not get the pid cannot manage the process.
            // SAFETY: kill(2) of our own child, not yet reaped (its pid cannot be reused).
            unsafe { libc::kill(joined, libc::SIGKILL) };
            crate::pid1::wait(joined);
            return Err(e);
        }
    }
    if args.detach {
        return Ok(0);
    }
    let Some(held) = held else {
        return Ok(crate::pid1::wait(joined));
    };
    if let Some(socket) = proxy_socket {
        // The proxy passes the caller's signals on too (common::pty::Proxy).
        let open_gate = || {
            gate.as_ref()
                .map_or(Ok(()), |g| crate::gate::open(g, joined))
        };
        return crate::terminal::proxy(socket, joined, &held, open_gate);
    }
    Ok(crate::forward::wait(joined, &held))
}

/// The process's pid once mntns said `ready` (right before its exec, or its start gate);
/// else the status to exit with: the chain failed before (it said why).
fn wait_ready(
    chain: &mut std::process::Child,
    pidns: bool,
    status_read: OwnedFd,
    ready_read: OwnedFd,
) -> Result<i32, Status> {
    let joined = if pidns {
        match crate::pid1::read_status(status_read) {
            Some(joined) => joined,
            // The chain failed before pidns forked (it said why): its status.
            None => return Err(chain_status(chain)),
        }
    } else {
        chain.id() as i32
    };
    if pidns {
        // pidns, which exits once the process is on its way.
        let code = chain_status(chain);
        if code != 0 {
            return Err(code);
        }
    }
    let mut said = [0u8; 6];
    let ready = std::fs::File::from(ready_read)
        .read_exact(&mut said)
        .is_ok()
        && &said == b"ready\n";
    if !ready {
        // mntns failed to enter (it said why): its status.
        return Err(crate::pid1::wait(joined));
    }
    Ok(joined)
}

fn chain_status(chain: &mut std::process::Child) -> Status {
    chain
        .wait()
        .map(common::exit::shell_status)
        .unwrap_or(common::exit::FAILURE)
}

/// Converts an owned descriptor into a raw one for [`create::inheritable`], which takes it.
trait IntoRawOwned {
    fn into_raw_fd_owned(self) -> RawFd;
}

impl<T: std::os::fd::IntoRawFd> IntoRawOwned for T {
    fn into_raw_fd_owned(self) -> RawFd {
        self.into_raw_fd()
    }
}

/// The process: `--process FILE` as it is, else the container's own process with the flags
/// on top (runc's rules: args from the command line, env added, cwd and user replaced,
/// capabilities added).
fn process(c: &Container, args: &ExecArgs) -> Result<Process, Fatal> {
    if let Some(file) = &args.process {
        let text = std::fs::read(file).map_err(|e| {
            Fatal::from(anyhow::Error::from(e)).context(format!(
                "unable to read the process file {}",
                file.display()
            ))
        })?;
        let mut p: Process = serde_json::from_slice(&text)
            .map_err(|e| Fatal::new(format!("process file {}: {e}", file.display())))?;
        p.terminal |= args.tty;
        if p.args.is_empty() {
            return Err(Fatal::new("process args cannot be empty"));
        }
        return Ok(p);
    }
    if args.command.is_empty() {
        return Err(Fatal::new(
            "exec: no command given (the arguments after ID)",
        ));
    }
    let config = config::load(&c.record.bundle)?;
    let mut p = config.process.unwrap_or_default();
    p.args.clone_from(&args.command);
    p.terminal = args.tty;
    p.env.extend(args.env.iter().cloned());
    if let Some(cwd) = &args.cwd {
        p.cwd.clone_from(cwd);
    }
    if let Some(user) = &args.user {
        let (uid, gid) = parse_user(user)?;
        p.user.uid = uid;
        p.user.gid = gid.unwrap_or(p.user.gid);
    }
    p.user.additional_gids.extend(&args.additional_gids);
    if !args.cap.is_empty() {
        let caps = p.capabilities.get_or_insert_with(Default::default);
        for cap in &args.cap {
            let name = canonical_cap(cap)?;
            for set in [&mut caps.bounding, &mut caps.effective, &mut caps.permitted] {
                if !set.contains(&name) {
                    set.push(name.clone());
                }
            }
        }
    }
    p.no_new_privileges |= args.no_new_privs;
    Ok(p)
}

/// `UID[:GID]`, numbers only (as runc's exec).
fn parse_user(text: &str) -> Result<(u32, Option<u32>), Fatal> {
    let bad = || Fatal::new(format!("invalid --user '{text}': UID[:GID], numbers"));
    let (uid, gid) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text, None),
    };
    let uid = uid.parse().map_err(|_| bad())?;
    let gid = gid.map(|g| g.parse().map_err(|_| bad())).transpose()?;
    Ok((uid, gid))
}

/// `CAP_NET_ADMIN` from `net_admin`, `NET_ADMIN` or `CAP_NET_ADMIN`; unknown names refused.
fn canonical_cap(text: &str) -> Result<String, Fatal> {
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if name.parse::<caps::Capability>().is_err() {
        return Err(Fatal::new(format!(
            "invalid --cap '{text}': unknown capability"
        )));
    }
    Ok(name)
}

/// The console socket, connected, when the process has a terminal (runc's rule: a terminal
/// needs a socket to send it to).
pub fn console(terminal: bool, socket: Option<&Path>) -> Result<Option<OwnedFd>, Fatal> {
    match (terminal, socket) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(Fatal::new(
            "--console-socket is given but the process has no terminal (process.terminal, --tty)",
        )),
        (true, None) => Err(Fatal::new(
            "cannot allocate tty if runc will detach without setting console socket",
        )
        .with_hint(
            "nsoci proxies a terminal itself only for a foreground run or exec: give --console-socket",
        )),
        (true, Some(path)) => {
            let stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
                Fatal::from(anyhow::Error::from(e)).context(format!(
                    "unable to connect to the console socket {}",
                    path.display()
                ))
            })?;
            Ok(Some(OwnedFd::from(stream)))
        }
    }
}
