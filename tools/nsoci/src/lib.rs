//! `nsoci`: an OCI runtime with runc's command line, so that podman, containerd and CRI-O can
//! run nschain containers. A bundle's config.json becomes a chain of the installed links
//! (chain.rs), run as the init of the container; nsoci itself holds no namespace code.
//!
//! ```text
//! nsoci create --bundle B ID    userns → … → pidns --no-monitor → mntns; PID 1 waits at exec.fifo
//! nsoci start ID                opens exec.fifo: mntns execs process.args
//! nsoci run ID                  create + start; no gate unless startContainer hooks need one
//! nsoci exec ID CMD             userns --join → … → mntns --join PID (exec.rs, join.rs)
//! nsoci state|kill|delete ID    ROOT/ID/state.json, PID 1's pid and start time
//! ```

mod cgroup;
mod chain;
mod config;
mod create;
mod devices;
mod exec;
mod features;
mod forward;
mod gate;
mod hooks;
mod inside;
mod join;
mod lifecycle;
mod log;
mod pause;
mod pid1;
mod ps;
mod resources;
mod signal;
mod spec;
mod state;
mod terminal;
mod update;

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use common::cli::Status;
use common::{Context, Fatal, Next};

/// An OCI runtime (runc's command line) that runs a bundle through the nschain links.
#[derive(Parser, Debug)]
#[command(
    disable_version_flag = true,
    disable_help_subcommand = true,
    subcommand_value_name = "COMMAND",
    after_help = "Examples:\n  mkdir -p b/rootfs && cp -a ROOT/. b/rootfs && cd b && nsoci spec\n  nsoci run demo\n  podman --runtime $(command -v nsoci) run --rm IMAGE true"
)]
pub struct Args {
    /// Directory of the containers' state (default /run/nsoci; rootless
    /// $XDG_RUNTIME_DIR/nsoci)
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Also write errors to FILE (engines read it)
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Format of --log: text or json
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Use systemd's cgroup manager: refused (nsoci places containers with cgroupfs)
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,

    /// Trace the chain's steps on stderr (NSCHAIN_DEBUG=1 for every link)
    #[arg(long, global = true)]
    pub debug: bool,

    /// Print the version in runc's three-line form
    #[arg(short = 'v', long)]
    pub version: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The bundle: a directory with config.json
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// Write the init's pid to FILE
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the terminal's master to (process.terminal), as runc
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Accepted: mntns always uses pivot_root
    #[arg(long)]
    pub no_pivot: bool,
    /// Keep the caller's session keyring
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass file descriptors 3 to 3+N-1 to the container
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// The container's id
    pub id: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container: set it up and wait for `start`
    Create(CreateArgs),
    /// Run process.args of a created container
    Start { id: String },
    /// Print a container's state (JSON)
    State { id: String },
    /// Run a process in a running container (runc's exec)
    Exec(exec::ExecArgs),
    /// Send a signal (name or number, default TERM) to a container's init
    Kill {
        /// Signal every process of the container (the same signal: the init takes the
        /// namespace with it)
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Delete a stopped container (--force: kill it first)
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container; wait for it unless --detach
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once it is started
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits
        #[arg(long)]
        keep: bool,
    },
    /// List containers
    List {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print what this runtime supports (JSON, runtime-spec features.md)
    Features,
    /// Change the resources of a live container (linux.resources JSON and/or flags)
    Update(update::UpdateArgs),
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// List a container's processes (host pids)
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        /// Arguments for the host's ps (table format; default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Write a starting config.json
    Spec {
        #[arg(short, long, value_name = "DIR", default_value = ".")]
        bundle: PathBuf,
        /// A config for an unprivileged caller (user namespace, no network namespace)
        #[arg(long)]
        rootless: bool,
    },
}

pub fn run(args: Args, _cx: &mut Context) -> Result<Next, Fatal> {
    if args.debug {
        std::env::set_var("NSCHAIN_DEBUG", "1");
    }
    let log = log::Log::new(args.log.clone(), args.log_format == "json");
    let result = dispatch(args);
    if let Err(fatal) = &result {
        log.error(&fatal.message());
    }
    result.map(Next::Exit)
}

fn dispatch(args: Args) -> Result<Status, Fatal> {
    if args.version {
        println!(
            "nsoci version {}\ncommit: {}\nspec: {}",
            env!("CARGO_PKG_VERSION"),
            option_env!("NSCHAIN_COMMIT").unwrap_or("unknown"),
            state::SPEC_VERSION
        );
        return Ok(0);
    }
    let root = state::root_dir(args.root.as_deref());
    let Some(command) = args.command else {
        return Err(Fatal::new("no command given").with_hint("see 'nsoci --help'"));
    };
    if args.systemd_cgroup && matches!(command, Command::Create(_) | Command::Run { .. }) {
        cgroup::refuse_systemd()?;
    }
    match command {
        Command::Update(u) => update::update(&root, &u)?,
        Command::Pause { id } => pause::pause(&root, &id)?,
        Command::Resume { id } => pause::resume(&root, &id)?,
        Command::Ps {
            format,
            id,
            ps_args,
        } => ps::ps(&root, &id, &format, &ps_args)?,
        Command::Create(c) => {
            // A signal while it is made undoes the container instead of halving it.
            let held = forward::hold();
            let id = c.id.clone();
            create::create(&request(root.clone(), c, None))?;
            undo_if_interrupted(&root, &id, held)?;
        }
        Command::Run {
            create,
            detach,
            keep,
        } => return run_container(root, create, detach, keep),
        Command::Exec(e) => return exec::exec(&root, e),
        Command::Start { id } => lifecycle::start(&root, &id)?,
        Command::State { id } => lifecycle::state(&root, &id)?,
        Command::Kill { all, id, signal } => lifecycle::kill(&root, &id, &signal, all)?,
        Command::Delete { force, id } => lifecycle::delete(&root, &id, force)?,
        Command::List { format, quiet } => lifecycle::list(&root, &format, quiet)?,
        Command::Features => println!(
            "{}",
            serde_json::to_string_pretty(&features::features()).unwrap_or_default()
        ),
        Command::Spec { bundle, rootless } => spec::write(&bundle, rootless)?,
    }
    Ok(0)
}

fn request(root: PathBuf, c: CreateArgs, own_terminal: Option<OwnedFd>) -> create::Request {
    create::Request {
        own_terminal,
        root,
        id: c.id,
        bundle: c.bundle,
        pid_file: c.pid_file,
        preserve_fds: c.preserve_fds,
        no_new_keyring: c.no_new_keyring,
        console_socket: c.console_socket,
        run: false,
    }
}

/// `run`: create, start, and (unless detached) wait for the init, exit with its status and
/// delete the container. In the foreground, a terminal (process.terminal) without
/// --console-socket is nsoci's own, proxied to the caller's, as runc's `run -t`.
fn run_container(root: PathBuf, c: CreateArgs, detach: bool, keep: bool) -> Result<Status, Fatal> {
    // Before anything is made (forward.rs): a signal now waits for the payload, or undoes
    // a detached container.
    let held = forward::hold();
    let id = c.id.clone();
    let (ours, theirs) = if detach || c.console_socket.is_some() {
        (None, None)
    } else {
        let (ours, theirs) = terminal::socket_pair()?;
        (Some(ours), Some(theirs))
    };
    let req = create::Request {
        run: true,
        ..request(root.clone(), c, theirs)
    };
    let created = create::create(&req);
    // mntns holds the other end now: EOF on ours if it fails before it sends the master.
    drop(req);
    let init = created?;
    let start = || {
        let started = if init.gated {
            lifecycle::start(&root, &id)
        } else {
            // No gate: the init went on to exec process.args after `ready`, as past `start`.
            hooks::poststart(&root, &id);
            Ok(())
        };
        started.inspect_err(|_| {
            let _ = lifecycle::delete(&root, &id, true);
            let _ = pid1::wait(init.pid);
        })
    };
    let status = match ours.filter(|_| init.terminal && !detach) {
        // The pty is sized before the container is started (create.rs gates it).
        Some(socket) => terminal::proxy(socket, init.pid, &held, start)?,
        None => {
            start()?;
            if detach {
                undo_if_interrupted(&root, &id, held)?;
                return Ok(0);
            }
            forward::wait(init.pid, &held)
        }
    };
    if !keep {
        lifecycle::delete(&root, &id, true)?;
    }
    Ok(status)
}

/// After a detached `create` (or `run -d`): a terminating signal that came meanwhile removes
/// the container, then acts as it would have when it came; ignored by nsoci's caller, it is
/// an error with its status.
fn undo_if_interrupted(root: &std::path::Path, id: &str, held: forward::Held) -> Result<(), Fatal> {
    let Some(sig) = held.interrupted() else {
        return Ok(());
    };
    lifecycle::delete(root, id, true)?;
    held.release();
    Err(Fatal::new(format!(
        "container {id} was removed: signal {sig} came while it was created"
    ))
    .with_code(128 + sig as u8))
}
