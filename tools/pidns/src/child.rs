//! Inside the namespace: the tiny init (PID 1) and COMMAND (PID 2), or COMMAND alone
//! (`--no-init`: PID 1; `--join`: a process of the joined namespace).
//!
//! Everything here runs in a forked copy of the monitor and ends in exec, in the next link
//! run in this process (common::handoff::exec_forked, which ends it with the chain's status)
//! or in `_exit`: it never returns into `main`.

use std::ffi::OsString;
use std::os::fd::OwnedFd;

use common::channel::Channel;

use common::inprocess::Links;
use common::{debug, exit, Fatal};
use nix::unistd::{fork, ForkResult, Pid};

use crate::lifeline;
use crate::monitor::{ChildReport, MonitorWord};
use crate::shed;
use common::signals::{self, SignalFd};

/// What runs inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The init (PID 1) that forks COMMAND as PID 2.
    Init,
    /// COMMAND itself, as PID 1 (`--no-init`) or as a joined process (`--join`).
    Command,
}

/// What the monitor hands to its child across the fork.
pub struct Child {
    pub role: Role,
    pub command: Vec<OsString>,
    /// `--pgroup`: COMMAND gets a process group of its own, signals go to the group.
    pub pgroup: bool,
    /// With `--pgroup`: the caller was the terminal's foreground group, so COMMAND's group
    /// takes the terminal (else Ctrl-C would reach nobody).
    pub foreground: bool,
    /// A pidfd of the monitor: the container dies with it.
    pub monitor: OwnedFd,
    /// A pidfd of the chain's supervisor when the monitor hands the container over to it
    /// (common::sup) and exits: the container dies with the supervisor instead.
    pub adopter: Option<OwnedFd>,
    /// The channel to the monitor (close-on-exec): the monitor says go once it has registered
    /// the container; a report back means COMMAND was not executed, the end closed by the
    /// exec means it was.
    pub channel: Channel,
    /// The caller's signal mask, restored for COMMAND (std's exec leaves the mask alone).
    pub mask: signals::Set,
    /// The caller's SIGCHLD disposition, restored for COMMAND.
    pub sigchld: signals::Disposition,
    /// The multi-call table: COMMAND, when it is the next link, may run in this process
    /// (common::handoff::exec_forked).
    pub links: Option<&'static Links>,
}

/// Ends this process at once, without running anything of the monitor's.
fn exit_now(code: u8) -> ! {
    // SAFETY: _exit ends the process without unwinding or running destructors.
    unsafe { libc::_exit(code.into()) }
}

/// Reports that COMMAND never ran, prints why, and exits with the failure's status.
fn fail(channel: &Channel, fatal: Fatal) -> ! {
    let _ = channel.send(&ChildReport::NotExecuted { code: fatal.code });
    fatal.print();
    exit_now(fatal.code)
}

/// The forked child's whole life: tied to the monitor (or, when the monitor hands the
/// container to the chain's supervisor, to the supervisor once the monitor is gone), the
/// go-ahead, then its role.
pub fn run(mut child: Child) -> ! {
    let adopter = child.adopter.take();
    if adopter.is_none() {
        tie(&child, &child.monitor, "its monitor");
    }
    // Wait for the go-ahead: the monitor registers the container and writes --status-fd and
    // --info-fd first. EOF instead means the monitor failed (it said why, and kills us).
    match child.channel.recv() {
        Ok(Some(MonitorWord::Go)) => {}
        Ok(None) => exit_now(exit::FAILURE),
        Err(e) => fail(
            &child.channel,
            Fatal::from(std::io::Error::from(e)).context("unable to hear from the monitor"),
        ),
    }
    if let Some(adopter) = adopter {
        adopted(&child, adopter);
    }
    match child.role {
        Role::Init => init(child),
        Role::Command => command(child),
    }
}

/// Ties this process's life to `to`'s (a pidfd); exits at once if `to` is gone already.
fn tie(child: &Child, to: &OwnedFd, whom: &str) {
    match lifeline::tie_to(to) {
        Ok(true) => {}
        // Gone already: nobody to report to.
        Ok(false) => exit_now(exit::FAILURE),
        Err(e) => fail(
            &child.channel,
            Fatal::from(e).context(format!("unable to tie the container to {whom}")),
        ),
    }
}

/// Under the chain's supervisor, after the go-ahead: the monitor's exit (which re-parents
/// this process to the supervisor, a subreaper), then the tie to the supervisor. A
/// parent-death signal set before would fire at the monitor's exit.
fn adopted(child: &Child, adopter: OwnedFd) {
    lifeline::wait_exited(&child.monitor);
    tie(child, &adopter, "the chain's supervisor");
}

/// COMMAND: own process group if asked, then exec (or the next link in this process) with
/// the caller's signal mask and SIGCHLD disposition restored (the other dispositions were
/// never changed on this side of the fork).
fn command(child: Child) -> ! {
    if child.pgroup {
        let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
        if child.foreground {
            signals::set_foreground(nix::unistd::getpgrp());
        }
    }
    let Child {
        command,
        channel,
        mask,
        sigchld,
        links,
        ..
    } = child;
    if let Err(e) = signals::restore_sigchld(&sigchld) {
        fail(
            &channel,
            Fatal::from(e).context("unable to restore SIGCHLD"),
        );
    }
    // From here on, a pending signal hits COMMAND with the caller's dispositions.
    if let Err(e) = signals::restore(&mask) {
        fail(
            &channel,
            Fatal::from(e).context("unable to restore the signal mask"),
        );
    }
    // The next link runs in this process when it can, as an exec would start it.
    let fatal = common::handoff::exec_forked(command, links);
    fail(&channel, fatal)
}

/// PID 1: forks COMMAND, sheds everything, then forwards signals and reaps until COMMAND
/// exits, and exits with its status (the kernel then kills what is left in the namespace).
fn init(child: Child) -> ! {
    let set = signals::Set::taken_over();
    let signalfd = match debug::step("init: signalfd", || SignalFd::new(&set)) {
        Ok(fd) => fd,
        Err(e) => fail(
            &child.channel,
            Fatal::from(e).context("unable to create a signalfd"),
        ),
    };
    // COMMAND waits for PID 1 to shed its root, capabilities and dumpable flag: before that,
    // a container process with CAP_SYS_PTRACE could reach the caller's files through
    // /proc/1/root. The init closes its end once shed; COMMAND waits for that end.
    let (shed_wait, shed_done) = match common::channel::pair() {
        Ok(pair) => pair,
        Err(e) => fail(
            &child.channel,
            Fatal::from(e).context("unable to create a socket pair"),
        ),
    };
    // SAFETY: single-threaded; the child only waits, sets its process group and execs.
    let payload = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(signalfd);
            drop(shed_done);
            // Nothing is ever sent: the end of the init's side is the word.
            let _ = shed_wait.recv::<()>();
            drop(shed_wait);
            command(child)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => fail(
            &child.channel,
            Fatal::from(e).context("unable to fork COMMAND"),
        ),
    };
    if child.pgroup {
        // Also from this side, so that no signal finds the group missing.
        let _ = nix::unistd::setpgid(payload, payload);
    }
    let target = if child.pgroup {
        Pid::from_raw(-payload.as_raw())
    } else {
        payload
    };
    drop(child);
    drop(shed_wait);
    // Read while /proc is still in reach: shed empties the root.
    let resident = common::resident::plan();
    shed::shed();
    drop(shed_done);
    let fd = signalfd.into_raw();
    shed::close_all_but(fd);
    // The pages forked from pidns go back: the init idles small (DESIGN.md "Processes per
    // chain").
    resident.apply();
    for signal in signals::JOB_CONTROL {
        signals::ignore(signal);
    }
    serve(fd, payload, target)
}

/// The init's loop: no allocation, one read per signal.
fn serve(fd: libc::c_int, payload: Pid, target: Pid) -> ! {
    loop {
        match signals::read_raw(fd) {
            Ok(info) if info.ssi_signo == libc::SIGCHLD as u32 => reap(payload),
            Ok(info) => {
                if signals::sent_by_a_process(&info) {
                    // SAFETY: kill takes a pid (or -pgid) and a signal number.
                    unsafe {
                        libc::kill(target.as_raw(), info.ssi_signo as libc::c_int);
                    }
                }
            }
            // Signals cannot be read any more: still reap, and still exit with COMMAND.
            Err(_) => loop {
                let mut status = 0;
                // SAFETY: waits for any child; `status` is a local.
                let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
                if pid == payload.as_raw() {
                    exit_now(exit::from_wait_status(status));
                }
                if pid < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    exit_now(exit::FAILURE);
                }
            },
        }
    }
}

/// Reaps every zombie (SIGCHLD coalesces); exits with COMMAND's status if it is one of them.
fn reap(payload: Pid) {
    loop {
        let mut status = 0;
        // SAFETY: waits for any child without blocking; `status` is a local.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid == payload.as_raw() {
            exit_now(exit::from_wait_status(status));
        }
        if pid <= 0 {
            return;
        }
    }
}
