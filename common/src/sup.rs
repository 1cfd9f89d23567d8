//! The chain's supervisor: one host-side process that outlives the container and does, for
//! every link before it and after it, what each would otherwise leave a process of its own
//! behind for (DESIGN.md §1, "Processes per chain").
//!
//! The first link that needs work done after the container and before `pidns` (`netns
//! --bridge`: release the lease and the ports) forks instead of spawning a watcher: the parent
//! stays behind, in the host's namespaces and with the caller's credentials, as the process
//! the caller waits on; the child goes on with the chain. The child's hand-down carries the
//! supervisor's socket in the `after` slot (common::after: `mntns --rm` hands it the layer's
//! removal with its lock, `mntns --tty` its pty) and [`VAR`] names the supervisor.
//!
//! ```text
//! netns (supervisor)   waits, forwards the signals a process sends it, then runs the duties,
//!                      records the status of a named chain, exits with the container's status
//!   netns -> ... -> pidns   forks the init, hands it over (Adopt), exits: the init is
//!                           re-parented to the supervisor, a child subreaper
//!     init (PID 1) -> COMMAND
//! ```
//!
//! So an idle container has two processes of ours: the supervisor and the init. Without a
//! `pidns` (or with a pidns flag the supervisor does not take over) the supervisor waits for
//! its child as the `mntns --rm` waiter does. If the supervisor is SIGKILLed, the child (and,
//! once adopted, the init) dies with it (PDEATHSIG), and what it held is collected as before:
//! a lease by the next start that needs one or `netns gc`, a layer by the next `mntns
//! --overlay`, the registration by `nsps`.

use std::os::fd::{AsRawFd, RawFd};

use nix::unistd::{fork, ForkResult, Pid};

use crate::after::{Adoption, Listener, Message, Offer};
use crate::handdown::Slot;
use crate::signals::{self, SignalFd};
use crate::{chain, debug, exit, report, resident, Context, Fatal};

/// Names the chain's supervisor (its host pid) for the later links: set by the link that
/// forked it, taken by the `pidns` that hands it the container.
pub const VAR: &str = "NSCHAIN_SUPERVISOR";

/// The supervisor's side after the fork.
pub struct Supervisor {
    child: Pid,
    /// The chain's name as the forking link knew it: what the supervisor unregisters when its
    /// child ends before pidns handed the container over (no adoption names it).
    chain: Option<String>,
    signalfd: SignalFd,
    listener: Listener,
    /// What the supervisor gives back after each event, read once from /proc/self/smaps
    /// (its mappings do not change while it serves).
    resident: resident::Plan,
}

/// How the container ended.
#[derive(Debug)]
pub struct Ended {
    /// Its status, shell-encoded (n, or 128+s for a signal).
    pub code: u8,
}

/// Forks the chain's supervisor. Returns `None` in the child, which goes on with the chain
/// (its hand-down has the supervisor's socket, [`VAR`] names it, and it dies with it); the
/// supervisor gets `Some` and must end the process itself (it never returns into the chain).
/// `chain`: the chain's name, if the forking link has one (its child claims it).
pub fn fork_supervisor(cx: &mut Context, chain: Option<&str>) -> Result<Option<Supervisor>, Fatal> {
    let signals = signals::take_over()?;
    let offer = Offer::new()
        .map_err(|e| Fatal::from(e).context("unable to create the supervisor's socket"))?;
    let supervisor = Pid::this();
    // A subreaper before the fork, not after: the init pidns hands over is re-parented here
    // when pidns exits, and a child that got that far before the parent ran again would
    // leave it to the host's init (its status lost). The child does not inherit the flag.
    // SAFETY: PR_SET_CHILD_SUBREAPER takes a flag only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    // SAFETY: links are single-threaded until exec, so both sides may run ordinary code.
    match unsafe { fork() }.map_err(|e| Fatal::from(e).context("unable to fork the supervisor"))? {
        ForkResult::Child => {
            let (listener, theirs) = offer.split();
            drop(listener);
            signals.give_back()?;
            signals::die_with(supervisor, "the chain's supervisor")?;
            cx.handdown().after = Slot::Made(theirs);
            crate::handdown::export(VAR, supervisor.as_raw().to_string());
            Ok(None)
        }
        ForkResult::Parent { child } => {
            let (listener, theirs) = offer.split();
            drop(theirs);
            let _ = nix::sys::prctl::set_dumpable(false);
            let _ = nix::unistd::chdir("/");
            Ok(Some(Supervisor {
                child,
                chain: chain.map(str::to_owned),
                signalfd: signals.signalfd,
                listener,
                resident: resident::Plan::trim_only(),
            }))
        }
    }
}

/// Whether this process may hand its container to the chain's supervisor: [`VAR`] names its
/// parent. Returns the supervisor's pid (the variable is taken: a later link's parent is not
/// the supervisor).
pub fn supervisor_of_this() -> Option<Pid> {
    let found = supervisor_parent();
    crate::handdown::unexport(VAR);
    found
}

/// The chain's supervisor, if [`VAR`] names this process's parent (the variable stays).
pub fn supervisor_parent() -> Option<Pid> {
    let named = std::env::var(VAR).ok()?.parse::<i32>().ok()?;
    (nix::unistd::getppid().as_raw() == named).then(|| Pid::from_raw(named))
}

impl Supervisor {
    /// Closes every descriptor but stdio, its own and `keep` (the setup's sockets, files and
    /// locks of the link that forked it), and leaves nothing else of the caller's open. The
    /// caller must not use or drop the objects that owned them (it ends with `_exit`).
    pub fn keep_only(&mut self, keep: &[RawFd]) {
        let own = [self.signalfd.raw(), self.listener.as_fd().as_raw_fd()];
        let kept: Vec<RawFd> = keep.iter().chain(&own).copied().collect();
        crate::sys::fs::close_all_above_stdio_but(&kept);
        // What the setup allocated and touched goes back to the kernel: the supervisor
        // stays small while it idles.
        self.resident = resident::plan();
        self.resident.apply();
    }

    /// Waits for the container: forwards the signals a process sends (to the child, then to
    /// the adopted init), takes the init pidns hands over and, for `mntns --tty`, proxies the
    /// caller's terminal. Returns how it ended and the adoption, if any.
    pub fn serve(&mut self) -> (Ended, Option<Adoption>) {
        let me = std::process::id();
        let mut adopted: Option<Adoption> = None;
        let mut listening = true;
        loop {
            let mut fds = [
                poll_fd(self.signalfd.raw()),
                poll_fd(if listening {
                    self.listener.as_fd().as_raw_fd()
                } else {
                    -1
                }),
            ];
            // SAFETY: a local array of pollfd; -1 waits without a timeout.
            if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
                continue;
            }
            if fds[1].revents != 0 {
                match self.listener.read_message() {
                    Message::Adopt(adoption) => adopted = Some(adoption),
                    Message::Terminal(master) => {
                        if let Some(code) = self.proxy(master, adopted.as_ref()) {
                            return (Ended { code }, adopted);
                        }
                    }
                    Message::Closed => listening = false,
                    Message::Other | Message::Nothing => {}
                }
            }
            if fds[0].revents != 0 {
                if let Some(code) = self.one_signal(me, &mut adopted) {
                    return (Ended { code }, adopted);
                }
            }
            // Taking the adoption and reaping pidns ran code the fork had not: back to idle
            // (the plan of keep_only: no file read, no allocation per event).
            self.resident.apply();
        }
    }

    /// The process signals go to: the adopted init, else the child.
    fn target(&self, adopted: Option<&Adoption>) -> Pid {
        adopted.map_or(self.child, |a| Pid::from_raw(a.pid as i32))
    }

    /// Proxies the container's terminal until it ends (its status), or `None` if it cannot.
    fn proxy(&self, master: std::os::fd::OwnedFd, adopted: Option<&Adoption>) -> Option<u8> {
        let target = self.target(adopted);
        match crate::pty::Proxy::new(master, true) {
            Ok(proxy) if self.listener.terminal_ready().is_ok() => {
                Some(proxy.run(target, target, &self.signalfd))
            }
            Ok(_) => None,
            Err(e) => {
                report::warning(format_args!(
                    "unable to proxy the container's terminal: {e}"
                ));
                None
            }
        }
    }

    /// One signal: SIGCHLD reaps (the container's status once it ended), any other sent by a
    /// process is forwarded.
    fn one_signal(&mut self, me: u32, adopted: &mut Option<Adoption>) -> Option<u8> {
        let Ok(info) = self.signalfd.read() else {
            let target = self.target(adopted.as_ref());
            return Some(signals::forward_until_exit(target, target, &self.signalfd));
        };
        if info.ssi_signo != libc::SIGCHLD as u32 {
            if signals::sent_by_a_process(&info) && info.ssi_pid != me {
                // SAFETY: kill takes a pid and a signal number.
                unsafe {
                    libc::kill(
                        self.target(adopted.as_ref()).as_raw(),
                        info.ssi_signo as libc::c_int,
                    )
                };
            }
            return None;
        }
        loop {
            let mut status = 0;
            // SAFETY: reaps any child (adopted orphans too) without blocking.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return None;
            }
            if pid == self.child.as_raw() {
                // pidns sent the adoption before it exited: it is queued if it came.
                if adopted.is_none() {
                    *adopted = self.drain_adoption();
                }
                // pidns failed after the adoption and reaped its container itself.
                if !adopted.as_ref().is_some_and(|a| is_child(a.pid)) {
                    *adopted = None;
                    return Some(exit::from_wait_status(status));
                }
            } else if adopted.as_ref().is_some_and(|a| a.pid as i32 == pid) {
                return Some(exit::from_wait_status(status));
            }
        }
    }

    /// Reads what is queued until an adoption, if one is there.
    fn drain_adoption(&mut self) -> Option<Adoption> {
        self.listener.set_nonblocking().ok()?;
        loop {
            match self.listener.read_message() {
                Message::Adopt(adoption) => return Some(adoption),
                Message::Other | Message::Terminal(_) => {}
                Message::Nothing | Message::Closed => return None,
            }
        }
    }

    /// After the container: the status of a named chain that pidns handed over (first, so
    /// that an OOM kill learnt below marks it), the layers and cgroups handed over, the
    /// registration.
    pub fn finish(self, ended: &Ended, adopted: Option<&Adoption>) {
        let named = adopted.and_then(|a| a.name.as_ref().map(|n| (a.pid, n)));
        if let Some((pid, (name, false))) = named {
            if chain::meta(name).is_some() {
                crate::supervisor::record_foreground_exit(name, pid, ended.code);
            }
        }
        self.listener.run_requests();
        if let Some((pid, (name, _))) = named {
            let ended_pids = [crate::procfs::own_pid(), pid, self.child.as_raw() as u32];
            chain::unregister(name, &ended_pids);
            debug::note(format_args!("supervisor: chain {name} done"));
        } else if let Some(name) = &self.chain {
            unregister_unadopted(name, self.child);
        }
    }
}

/// The chain ended before pidns handed its container over (a link failed or was killed
/// during the setup, after its child had registered the chain): nobody else removes the
/// registration. Only one this supervisor's child claimed (another start may hold the
/// name); the records' processes re-parented here (an init that never got its go-ahead,
/// which exits at once) are waited for first.
fn unregister_unadopted(name: &str, child: Pid) {
    let child = child.as_raw() as u32;
    if chain::meta(name).is_none_or(|m| m.pid != child) {
        return;
    }
    let mut ended = vec![crate::procfs::own_pid(), child];
    for record in chain::live_records(name) {
        if !ended.contains(&record.pid) && is_child(record.pid) {
            // SAFETY: waits for a child of this process; a null status is allowed.
            unsafe { libc::waitpid(record.pid as i32, std::ptr::null_mut(), 0) };
            ended.push(record.pid);
        }
    }
    chain::unregister(name, &ended);
    debug::note(format_args!("supervisor: chain {name} ended in its setup"));
}

/// Whether `pid` is a child of this process (alive or not yet reaped).
fn is_child(pid: u32) -> bool {
    // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: WNOWAIT leaves the child as it is; `info` is a local.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    rc == 0
}

fn poll_fd(fd: libc::c_int) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}
