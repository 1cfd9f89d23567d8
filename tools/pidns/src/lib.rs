//! `pidns`: run a command in a new PID namespace, as bubblewrap does it, in three processes:
//!
//! ```text
//! monitor  (the caller's pid namespace)  forwards the signals sent to it, exits n or 128+s
//!   init   (PID 1)                       forwards signals, reaps zombies, exits with COMMAND
//!     COMMAND (PID 2)                    signal mask and dispositions restored
//! ```
//!
//! `--no-init` makes COMMAND PID 1 itself; `--join` forks COMMAND into an existing pid
//! namespace (`docker exec`).

mod child;
mod handover;
mod lifeline;
mod monitor;
mod shed;
mod start;
mod status;
mod unmonitored;

use std::os::fd::RawFd;

use clap::Parser;
use common::channel::Channel;
use common::cli::{CommandArgs, Status};
use common::link::{Link, NsOptions};
use common::ns::{self, Namespace};
use common::{chain, debug, signals, Context, Fatal, Next};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::unistd::{fork, getpgrp, ForkResult, Pid};
use serde_json::json;

use crate::child::{Child, Role};

const AFTER_HELP: &str = "\
Processes:
  monitor   stays in the caller's pid namespace; forwards the signals sent to it (TERM, INT,
            HUP, QUIT, USR1, USR2, WINCH, CONT, ALRM, real-time...) to the container and exits
            with its status: n, or 128+s when it was killed by signal s
  init      PID 1: forwards signals to COMMAND (--pgroup: to its process group), reaps every
            orphan, exits with COMMAND's status when COMMAND ends (the kernel then kills the
            rest); it keeps no way out: an empty read-only root (a detached tmpfs), no
            capability but CAP_KILL, not dumpable, no file descriptor of the caller's
  COMMAND   PID 2, with the caller's signal mask and dispositions
Killing the monitor (even with SIGKILL) kills the container; --die-with-parent also kills
the monitor, and so the container, when the process that started pidns dies.

Put mntns AFTER pidns: a proc file system shows the pid namespace of the process that mounts
it, so `pidns -- mntns --proc ...` shows the container's processes, while mntns before pidns
would mount a /proc of the caller's namespace.

Examples:
  pidns -- sh -c 'echo $$'                      # 2 (1 with --no-init)
  pidns --status-fd 3 -- nginx -g 'daemon off;' 3>status.jsonl
  pidns --name web1 -- mntns --proc -- sleep 1000 &
  nsps exec web1 -- ps -ef                      # enter web1: not pidns --join, whose process
                                                # shows in web1 before it leaves the host's root";

/// Run COMMAND in a new PID namespace, under a tiny init: COMMAND is PID 2, PID 1 forwards
/// signals and reaps zombies, and the exit status comes back as n, or 128+s for a signal.
#[derive(Parser, Debug)]
#[command(version, after_help = AFTER_HELP)]
pub struct Args {
    /// Run COMMAND as PID 1 itself, without the init (it must reap orphans, and it ignores
    /// every signal it has no handler for, SIGTERM and SIGINT included)
    #[arg(long, conflicts_with = "join")]
    pub no_init: bool,

    /// Put COMMAND in a process group of its own (the terminal's foreground group, if the
    /// caller's was) and forward signals to the whole group
    #[arg(long)]
    pub pgroup: bool,

    /// Leave no monitor: fork COMMAND (with --no-init or --join), report its pid on
    /// --status-fd, and exit 0; COMMAND goes to the caller's subreaper, which waits for it
    /// (an OCI runtime's model: conmon, containerd-shim)
    #[arg(long, conflicts_with_all = ["pgroup", "die_with_parent"])]
    pub no_monitor: bool,

    /// Kill the container when the process that started pidns dies (PDEATHSIG, checked
    /// race-free through a pidfd)
    #[arg(long)]
    pub die_with_parent: bool,

    /// Write JSON lines to file descriptor FD: {"pid": host pid of PID 1, "ns": {...}} at the
    /// start, then {"exit-code": n} once the container ends, only if COMMAND was executed
    #[arg(long, value_name = "FD", value_parser = status::parse_fd)]
    pub status_fd: Option<RawFd>,

    #[command(flatten)]
    pub ns: NsOptions,

    #[command(flatten)]
    pub command: CommandArgs,
}

pub fn run(args: Args, cx: &mut Context) -> Result<Next, Fatal> {
    let link = Link::prepare(cx, Namespace::Pid, &args.ns)?;
    take_report_fds(&args)?;
    if args.die_with_parent {
        die_with_parent()?;
    }
    export_chain_settings(&link);
    let helper = link.pin_helper()?;
    if args.no_monitor {
        return unmonitored::run(&link, &args, helper, cx);
    }
    let wiring = Wiring::new(args.pgroup)?;
    let mut handover = handover::offer(&args, &link, cx)?;
    // Links inside may leave work for after the container (mntns --rm): the kernel kills
    // everything in the namespace when PID 1 exits, so the monitor (or the chain's
    // supervisor, which has its own socket in the hand-down) does it.
    let after = if link.is_join() || handover.is_some() {
        None
    } else {
        Some(common::after::Offer::new().map_err(|e| {
            Fatal::from(e).context("unable to create the socket for work after the container")
        })?)
    };
    if link.is_join() {
        link.enter()?;
    } else {
        ns::unshare(Namespace::Pid)?;
    }
    let role = if link.is_join() || args.no_init {
        Role::Command
    } else {
        Role::Init
    };
    // The container's first process execs the next link itself: what this link was handed
    // goes down as at any real exec.
    cx.export_handdown()?;
    let adopter = handover.as_mut().and_then(handover::Handover::take_pidfd);
    let inside = Inside {
        role,
        after,
        adopter,
        links: cx.links(),
    };
    let (pid, mut monitor) = wiring.fork(&link, &args, inside)?;
    if let Some(handover) = handover {
        // The chain's supervisor waits for the container: this process ends here.
        handover
            .hand_over(&link, helper, pid, role, &monitor.channel)
            .map_err(|fatal| start::abandon(pid, fatal))?;
        debug::note(format_args!(
            "container handed to the supervisor: PID 1 is {pid}"
        ));
        return Ok(Next::Exit(0));
    }
    // With --no-init and --join, COMMAND's group is ours to signal; the init handles its own.
    let target = if args.pgroup && role == Role::Command {
        let _ = nix::unistd::setpgid(pid, pid);
        Pid::from_raw(-pid.as_raw())
    } else {
        pid
    };
    monitor
        .start(&link, &args, helper, pid, role)
        .map_err(|fatal| start::abandon(pid, fatal))?;
    debug::note(format_args!("container started: PID 1 is {pid}"));
    let code = monitor::watch(pid, target, &monitor.signalfd, monitor.after.as_mut());
    monitor.finish(&link, &args, pid, code);
    Ok(Next::Exit(code))
}

/// The descriptors this link writes to (`--status-fd`, `--info-fd`) are two, and they are not
/// passed on to COMMAND (stdio always is).
fn take_report_fds(args: &Args) -> Result<(), Fatal> {
    if let (Some(status), Some(info)) = (args.status_fd, args.ns.info_fd) {
        if status == info {
            return Err(Fatal::new(format!(
                "--status-fd {status} and --info-fd {info} must be different descriptors"
            )));
        }
    }
    let consumed = [args.status_fd, args.ns.info_fd];
    for fd in consumed.into_iter().flatten().filter(|fd| *fd > 2) {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
            .map_err(|e| Fatal::from(e).context(format!("unable to use file descriptor {fd}")))?;
    }
    Ok(())
}

/// What the monitor and the child share across the fork: signals blocked before it (so none
/// is lost before the signalfd exists), the monitor's pidfd, the go-ahead and exec-report
/// pipes, and the terminal's foreground group.
struct Wiring {
    signals: signals::TakenOver,
    me: std::os::fd::OwnedFd,
    /// The monitor's end of its channel with the child, and the child's.
    ours: Channel,
    theirs: Channel,
    caller_pgrp: Pid,
    foreground: bool,
}

/// What the container's first process is given besides the wiring.
struct Inside {
    role: Role,
    /// The socket for work after the container, handed down inside.
    after: Option<common::after::Offer>,
    /// The chain's supervisor, which adopts the container (common::sup).
    adopter: Option<std::os::fd::OwnedFd>,
    /// The multi-call table: the next link may run in the container's process.
    links: Option<&'static common::inprocess::Links>,
}

/// The monitor's side after the fork.
struct Monitor {
    signalfd: signals::SignalFd,
    /// Closed once the child was told to go on.
    channel: Channel,
    caller_pgrp: Pid,
    foreground: bool,
    after: Option<common::after::Listener>,
}

impl Wiring {
    fn new(pgroup: bool) -> Result<Wiring, Fatal> {
        let signals = signals::take_over()?;
        let me = lifeline::pidfd_open(Pid::this()).map_err(|e| {
            Fatal::from(e)
                .context("unable to open a pidfd")
                .with_hint("pidns needs Linux 5.3 or later (pidfd_open)")
        })?;
        let (ours, theirs) = common::channel::pair().map_err(|e| {
            Fatal::from(e).context("unable to create a channel to the container's first process")
        })?;
        let caller_pgrp = getpgrp();
        let foreground =
            pgroup && nix::unistd::tcgetpgrp(std::io::stdin()).is_ok_and(|fg| fg == caller_pgrp);
        Ok(Wiring {
            signals,
            me,
            ours,
            theirs,
            caller_pgrp,
            foreground,
        })
    }

    /// Forks the container's first process (which never returns here); the monitor keeps its
    /// ends.
    fn fork(self, link: &Link, args: &Args, inside: Inside) -> Result<(Pid, Monitor), Fatal> {
        let Inside {
            role,
            after,
            adopter,
            links,
        } = inside;
        // SAFETY: single-threaded; the child only runs this crate's code, then execs or _exits.
        let forked = unsafe { fork() }.map_err(|errno| {
            let fatal = Fatal::from(errno).context("unable to fork the container's first process");
            if errno == nix::errno::Errno::ENOMEM && link.is_join() {
                fatal.with_hint("the joined pid namespace is dead: its PID 1 has exited")
            } else {
                fatal
            }
        })?;
        match forked {
            ForkResult::Child => {
                drop(self.signals.signalfd);
                drop(self.ours);
                if let Some(offer) = after {
                    if let Err(e) = offer.hand_down() {
                        common::report::warning(format_args!(
                            "unable to hand down {}: {e}",
                            common::after::VAR
                        ));
                    }
                }
                child::run(Child {
                    role,
                    command: args.command.command.clone(),
                    pgroup: args.pgroup,
                    foreground: self.foreground,
                    monitor: self.me,
                    adopter,
                    channel: self.theirs,
                    mask: self.signals.mask,
                    sigchld: self.signals.sigchld,
                    links,
                })
            }
            ForkResult::Parent { child } => {
                drop(adopter);
                Ok((
                    child,
                    Monitor {
                        signalfd: self.signals.signalfd,
                        channel: self.ours,
                        caller_pgrp: self.caller_pgrp,
                        foreground: self.foreground,
                        after: after.map(common::after::Offer::keep),
                    },
                ))
            }
        }
    }
}

impl Monitor {
    /// Reports the start (`--status-fd`), pins, registers, then lets the child go on.
    fn start(
        &mut self,
        link: &Link,
        args: &Args,
        helper: Option<common::pin::PinHelper>,
        pid: Pid,
        role: Role,
    ) -> Result<(), Fatal> {
        let monitor = json!(common::procfs::own_pid());
        start::report(
            link,
            args.status_fd,
            helper,
            pid,
            monitor,
            role == Role::Init,
        )?;
        self.channel
            .send(&monitor::MonitorWord::Go)
            .map_err(|e| Fatal::from(e).context("unable to start the container"))?;
        Ok(())
    }

    /// After the container: its leftover work, the registration, the terminal, the status.
    fn finish(self, link: &Link, args: &Args, pid: Pid, code: Status) {
        if let Some(after) = self.after {
            after.run_requests();
        }
        if !link.is_join() {
            record_status(pid.as_raw() as u32, code);
            unregister(pid.as_raw() as u32);
        }
        if self.foreground {
            monitor::give_back_terminal(self.caller_pgrp);
        }
        if let Some(fd) = args.status_fd {
            if monitor::executed(&self.channel) {
                if let Err(e) = status::write_line(fd, &status::exited(code)) {
                    common::report::warning(format_args!("unable to write to status fd {fd}: {e}"));
                }
            }
            if fd > 2 {
                // SAFETY: the status fd was handed to this link; it is closed once, at the end.
                unsafe {
                    libc::close(fd);
                }
            }
        }
    }
}

/// `--die-with-parent` for the monitor: PDEATHSIG, then a re-check of the parent we meant.
fn die_with_parent() -> Result<(), Fatal> {
    let parent = nix::unistd::getppid();
    let pidfd = lifeline::pidfd_open(parent);
    debug::step("die with parent", lifeline::kill_me_with_parent)
        .map_err(|e| Fatal::from(e).context("unable to set the parent-death signal"))?;
    let gone = nix::unistd::getppid() != parent
        || match &pidfd {
            Ok(fd) => lifeline::has_exited(fd),
            Err(_) => true,
        };
    if gone {
        return Err(Fatal::new(format!(
            "--die-with-parent: the parent process {parent} has already exited"
        )));
    }
    Ok(())
}

/// Records the status of a chain named by the user (a generated name is nobody's to wait for)
/// for `nsps wait` and `nsps --all`; the registration then stays until `nsps rm` or the
/// name's reuse, as a detached chain's does.
fn record_status(init: u32, code: Status) {
    if let Some((name, false)) = chain::inherited() {
        if chain::meta(&name).is_some() {
            common::supervisor::record_foreground_exit(&name, init, code);
        }
    }
}

/// Removes the chain's registration when the container ends (common::chain::unregister).
fn unregister(init: u32) {
    if let Some((name, _)) = chain::inherited() {
        chain::unregister(&name, &[common::procfs::own_pid(), init]);
    }
}

/// COMMAND is forked before this link registers (which exports the chain's name and state
/// directories): export them now, so that the next links see them.
fn export_chain_settings(link: &Link) {
    let Some(naming) = link.naming() else {
        return;
    };
    common::state::run_dir();
    common::state::data_dir();
    if naming.first {
        chain::export(naming);
    }
}
