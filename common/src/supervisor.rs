//! `--detach` (`-d`): the chain runs in its own session under one small host-side supervisor
//! that keeps its log and its status, and the caller returns as soon as the payload has been
//! exec'd (DESIGN.md §1, "Detached chains").
//!
//! ```text
//! caller    parses, decides the name, forks the supervisor, waits for its report:
//!           "ok" → prints the name, exits 0; "fail N" → prints the chain's stderr, exits N
//! supervisor  new session; claims the name; forks the chain (stdin /dev/null, stdout and
//!           stderr into pipes it logs, NSCHAIN_DETACH_FD a socket to it); reports; logs until
//!           the chain's first process ends and its other writers are gone (DRAIN_MAX at
//!           most); writes status.json
//! chain     the first link goes on as in the foreground; just before COMMAND's exec, the
//!           process that execs it sends the supervisor the read end of a fresh close-on-exec
//!           pipe: EOF on it is a successful exec, a byte a failed one
//! ```
//!
//! The pipe is made by the process that execs, at the last moment, so no other process of
//! the chain (a monitor, a waiter, a helper) holds a copy of its write end. Until that exec,
//! what the chain writes to stderr is kept too: a chain that fails has its messages shown to
//! the caller, and leaves nothing (its registration and log are removed).

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult, Pid};
use serde::{Deserialize, Serialize};

use crate::chain::{self, Naming};
use crate::channel::{self, Channel, RecvError};
use crate::logfile::{self, Stream};
use crate::{exit, report, Fatal};

/// The socket to the supervisor, for the process that execs COMMAND.
pub const FD_VAR: &str = "NSCHAIN_DETACH_FD";
/// The chain's status, in its registration directory.
pub const STATUS_FILE: &str = "status.json";
/// The most of the chain's setup stderr relayed to the caller (it fits one channel message).
const SETUP_STDERR_MAX: usize = 32 << 10;
/// How long, at most, the log is still read after the chain's first process ended. Until then
/// it is read to its end, when every writer has closed it (the chain's other processes, its
/// helpers cleaning up), as docker reads a container's pipe until it closes. A process that
/// outlives the chain and keeps the pipe (a daemon started without pidns, whose end would
/// kill it) is not waited for longer: `nsps stop` and `wait` return after this at most.
const DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// A detached chain's state, as `nsps` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    /// `running` or `exited`.
    pub state: String,
    /// Host pid of the chain's first process (the supervisor's child).
    pub pid: Option<u32>,
    /// Host pid of the supervisor.
    pub supervisor: u32,
    /// The shell encoding of the chain's status (128+s for a signal), once exited.
    pub exit_code: Option<u8>,
    /// The signal that killed the chain's first process, if one did.
    pub signal: Option<String>,
    /// Killed by the OOM killer: set by whoever learns it (the memory cgroup's events).
    #[serde(default)]
    pub oom_killed: bool,
    /// Recorded for a foreground chain ([`record_foreground_exit`]): it keeps no log, and its
    /// name may be reused at once.
    #[serde(default)]
    pub foreground: bool,
    /// Unix time of the start and of the end, in seconds.
    pub started: u64,
    /// Unix time of the end, once exited.
    pub finished: Option<u64>,
}

impl Status {
    /// What `nsps` prints: `running`, `exited N`, `killed by SIGNAL`, `OOM-killed`.
    pub fn text(&self) -> String {
        if self.oom_killed {
            return "OOM-killed".into();
        }
        match (&self.state[..], &self.signal, self.exit_code) {
            ("running", _, _) => "running".into(),
            (_, Some(signal), _) => format!("killed by {signal}"),
            (_, None, Some(code)) => format!("exited {code}"),
            _ => self.state.clone(),
        }
    }
}

/// The status file of chain `name`.
pub fn status_path(name: &str) -> PathBuf {
    chain::dir(name).join(STATUS_FILE)
}

/// The recorded status of chain `name`, if it was started detached.
pub fn read_status(name: &str) -> Option<Status> {
    serde_json::from_slice(&crate::procfs::read_small(status_path(name)).ok()?).ok()
}

/// The hook for whoever learns that the OOM killer ended the chain (its memory cgroup's
/// `oom_kill` count): `nsps` then shows `OOM-killed`. The supervisor keeps the mark when it
/// writes the final status. Only a detached chain has a status to mark.
pub fn record_oom_kill(name: &str) {
    if let Some(mut status) = read_status(name) {
        status.oom_killed = true;
        write_status(name, &status);
    }
}

/// The status of a foreground chain, recorded by the link that waited for its container
/// (pidns's monitor) before it exits, so that `nsps wait` and `nsps --all` show it as they do
/// a detached chain's. `pid`: the container's first process; `code`: its status, shell-encoded.
/// A detached chain's supervisor writes its own (and was there first: nothing is changed).
pub fn record_foreground_exit(name: &str, pid: u32, code: u8) {
    if read_status(name).is_some() {
        return;
    }
    let status = Status {
        state: "exited".into(),
        pid: Some(pid),
        supervisor: crate::procfs::own_pid(),
        exit_code: Some(code),
        signal: None,
        oom_killed: false,
        foreground: true,
        started: chain::meta(name).map_or(0, |m| m.created),
        finished: Some(now()),
    };
    write_status(name, &status);
}

fn write_status(name: &str, status: &Status) {
    let path = status_path(name);
    // Per writer: the supervisor and an OOM hook may write at once.
    let written = serde_json::to_vec(status)
        .map_err(std::io::Error::other)
        .and_then(|text| crate::state::write_whole(&path, &text));
    if let Err(e) = written {
        crate::debug::note(format_args!("unable to write {}: {e}", path.display()));
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The supervisor's report to the caller.
#[derive(Debug, Serialize, Deserialize)]
enum Report {
    /// COMMAND has been exec'd.
    Started,
    /// The chain failed before: its status, and what it wrote to stderr meanwhile.
    Failed { code: u8, stderr: String },
}

/// The message the process that execs COMMAND sends the supervisor, with the exec mark's
/// read end.
#[derive(Debug, Serialize, Deserialize)]
struct ExecMark {
    exec: bool,
}

/// What this process does after [`detach`].
#[derive(Debug)]
pub enum Outcome {
    /// Go on as the chain's first link.
    Chain,
    /// Exit with this status (the caller, or the supervisor once the chain has ended).
    Exit(u8),
}

/// Whether no earlier link ran: only the first link of a chain detaches.
fn is_first_link() -> bool {
    [crate::handdown::LIST_VAR, chain::NAME_VAR, FD_VAR]
        .iter()
        .all(|var| std::env::var_os(var).is_none_or(|v| v.is_empty()))
}

/// `--detach` at link `tool` (named `name`, if given): forks the supervisor and returns
/// [`Outcome::Chain`] in the chain's first process; elsewhere the status to exit with. A
/// later link of a chain ignores it.
pub fn detach(tool: &'static str, name: Option<&str>) -> Outcome {
    if !is_first_link() {
        return Outcome::Chain;
    }
    match start(tool, name) {
        Ok(outcome) => outcome,
        Err(fatal) => {
            fatal.print();
            Outcome::Exit(fatal.code)
        }
    }
}

fn start(tool: &'static str, name: Option<&str>) -> Result<Outcome, Fatal> {
    let max = logfile::max_from_env().map_err(Fatal::new)?;
    let naming = chain::naming_for(name, tool, true)?
        .ok_or_else(|| Fatal::new("a detached chain needs a name"))?;
    let (report_r, report_w) = channel::pair()
        .map_err(|e| Fatal::from(e).context("unable to create the supervisor's channel"))?;
    // SAFETY: the tools are single-threaded until their exec (DESIGN.md §4), so the child
    // may run anything.
    match unsafe { fork() }.map_err(|e| Fatal::from(e).context("unable to fork"))? {
        ForkResult::Parent { .. } => {
            drop(report_w);
            Ok(Outcome::Exit(caller_waits(report_r, &naming.name)))
        }
        ForkResult::Child => {
            drop(report_r);
            Ok(supervisor(&naming, report_w, max))
        }
    }
}

/// The caller's side: the supervisor's report, then the name (or the chain's messages).
fn caller_waits(report: Channel, name: &str) -> u8 {
    match report.recv::<Report>() {
        Ok(Some(Report::Started)) => {
            println!("{name}");
            0
        }
        Ok(Some(Report::Failed { code, stderr })) => {
            let _ = std::io::stderr().write_all(stderr.as_bytes());
            code
        }
        Ok(None) | Err(_) => {
            Fatal::new(format!(
                "the supervisor of chain {name} ended without a report"
            ))
            .print();
            exit::FAILURE
        }
    }
}

/// The pipes and socket between the supervisor and the chain.
struct Wiring {
    out: (OwnedFd, OwnedFd),
    err: (OwnedFd, OwnedFd),
    socket: (Channel, Channel),
    log: logfile::Writer,
}

fn wire(naming: &Naming, max: u64) -> Result<Wiring, Fatal> {
    chain::claim(naming)?;
    let wired = || -> anyhow::Result<Wiring> {
        let log = logfile::Writer::create(&logfile::path_in(&chain::dir(&naming.name)), max)?;
        Ok(Wiring {
            out: pipe2(OFlag::O_CLOEXEC)?,
            err: pipe2(OFlag::O_CLOEXEC)?,
            socket: channel::pair()?,
            log,
        })
    };
    wired().map_err(|e| {
        let _ = std::fs::remove_dir_all(chain::dir(&naming.name));
        Fatal::from(e).context("unable to set up the detached chain's log")
    })
}

/// The supervisor: starts the chain in its own session and watches it to its end.
fn supervisor(naming: &Naming, report: Channel, max: u64) -> Outcome {
    let _ = nix::unistd::setsid();
    // Nothing of the caller's stdio is held: `$(netns -d ...)` returns at the report.
    let _ = stdio_to(None, None);
    let wiring = match wire(naming, max) {
        Ok(wiring) => wiring,
        Err(fatal) => {
            send_report(&report, failed(fatal.code, rendered(&fatal).as_bytes()));
            return Outcome::Exit(fatal.code);
        }
    };
    // SAFETY: single-threaded (the supervisor never starts a thread).
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(report);
            become_chain(wiring)
        }
        Ok(ForkResult::Parent { child }) => {
            let Wiring {
                out,
                err,
                socket,
                log,
            } = wiring;
            drop((out.1, err.1, socket.1));
            let watch = Watch::new(naming.name.clone(), child, out.0, err.0, socket.0, log);
            watch.run(report);
            Outcome::Exit(0)
        }
        Err(e) => {
            let fatal = Fatal::from(e).context("unable to fork");
            let _ = std::fs::remove_dir_all(chain::dir(&naming.name));
            send_report(&report, failed(fatal.code, rendered(&fatal).as_bytes()));
            Outcome::Exit(fatal.code)
        }
    }
}

/// The chain's first process: stdio to the supervisor, the socket handed down.
fn become_chain(wiring: Wiring) -> Outcome {
    let Wiring {
        out,
        err,
        socket,
        log,
    } = wiring;
    drop((out.0, err.0, socket.0, log));
    let placed = stdio_to(Some(out.1.as_fd()), Some(err.1.as_fd()));
    let kept = socket.1.into_inheritable();
    match (placed, kept) {
        (Ok(()), Ok(fd)) => {
            crate::handdown::export(FD_VAR, fd.to_string());
            Outcome::Chain
        }
        _ => {
            Fatal::new("unable to hand the chain its log").print();
            Outcome::Exit(exit::FAILURE)
        }
    }
}

/// stdin from /dev/null; stdout and stderr to the given descriptors, else /dev/null too.
fn stdio_to(
    out: Option<std::os::fd::BorrowedFd>,
    err: Option<std::os::fd::BorrowedFd>,
) -> nix::Result<()> {
    let null = nix::fcntl::open(
        "/dev/null",
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: open returned a new descriptor nothing else owns.
    let null = unsafe { OwnedFd::from_raw_fd(null) };
    let raw = |fd: Option<std::os::fd::BorrowedFd>| fd.map_or(null.as_raw_fd(), |f| f.as_raw_fd());
    nix::unistd::dup2(null.as_raw_fd(), 0)?;
    nix::unistd::dup2(raw(out), 1)?;
    nix::unistd::dup2(raw(err), 2)?;
    Ok(())
}

fn rendered(fatal: &Fatal) -> String {
    let mut text = format!("{}: fatal: {}\n", report::tool(), fatal.message());
    if let Some(hint) = &fatal.hint {
        text.push_str(&format!("{}: hint: {hint}\n", report::tool()));
    }
    text
}

fn failed(code: u8, stderr: &[u8]) -> Report {
    Report::Failed {
        code,
        stderr: String::from_utf8_lossy(stderr).into_owned(),
    }
}

/// Tells the caller; a caller gone (killed while waiting) changes nothing.
fn send_report(report: &Channel, message: Report) {
    let _ = report.send(&message);
}

/// How far the payload's exec has come, as the supervisor knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exec {
    Waiting,
    Done,
    Failed,
}

/// The supervisor's watch over a running chain.
struct Watch {
    name: String,
    child: Pid,
    pidfd: Option<OwnedFd>,
    streams: [Option<OwnedFd>; 2],
    socket: Option<Channel>,
    exec_pipe: Option<OwnedFd>,
    exec: Exec,
    setup_stderr: Vec<u8>,
    log: logfile::Writer,
    status: Status,
}

impl Watch {
    fn new(
        name: String,
        child: Pid,
        out: OwnedFd,
        err: OwnedFd,
        socket: Channel,
        log: logfile::Writer,
    ) -> Watch {
        let pidfd = crate::sys::process::pidfd_open(child.as_raw()).ok();
        let status = Status {
            state: "running".into(),
            pid: Some(child.as_raw() as u32),
            supervisor: std::process::id(),
            exit_code: None,
            signal: None,
            oom_killed: false,
            foreground: false,
            started: now(),
            finished: None,
        };
        write_status(&name, &status);
        Watch {
            name,
            child,
            pidfd,
            streams: [Some(out), Some(err)],
            socket: Some(socket),
            exec_pipe: None,
            exec: Exec::Waiting,
            setup_stderr: Vec::new(),
            log,
            status,
        }
    }

    /// Watches the chain until its first process ends: reports to the caller once the
    /// payload's exec is known, logs, then records the status.
    fn run(mut self, report: Channel) {
        let mut report = Some(report);
        let mut ended: Option<WaitStatus> = None;
        while ended.is_none() {
            self.poll_once(-1, &mut ended);
            if self.exec == Exec::Done {
                if let Some(report) = report.take() {
                    send_report(&report, Report::Started);
                }
            }
        }
        // The chain's first process is gone: settle what it sent before.
        self.settle_exec();
        let code = ended.map(status_code).unwrap_or(exit::FAILURE);
        if let Some(report) = report.take() {
            if self.exec != Exec::Done {
                let code = if code == 0 { exit::FAILURE } else { code };
                // What it printed last may still be in the pipe.
                self.drain();
                // Removed first: the caller returns on the report and finds nothing left.
                let _ = std::fs::remove_dir_all(chain::dir(&self.name));
                send_report(&report, failed(code, &self.setup_stderr));
                return;
            }
            send_report(&report, Report::Started);
        }
        self.drain();
        self.status.state = "exited".into();
        self.status.exit_code = Some(code);
        if let Some(WaitStatus::Signaled(_, signal, _)) = ended {
            self.status.signal = Some(signal.as_str().to_owned());
        }
        self.status.finished = Some(now());
        // The OOM hook: another writer may have set it meanwhile.
        if let Some(current) = read_status(&self.name) {
            self.status.oom_killed |= current.oom_killed;
        }
        write_status(&self.name, &self.status);
    }

    /// The payload's exec message, if it came before the first process ended.
    fn settle_exec(&mut self) {
        if let Some(socket) = self.socket.take() {
            if socket.set_nonblocking().is_ok() {
                self.receive(&socket);
            }
        }
        if let Some(pipe) = self.exec_pipe.take() {
            let _ = fcntl(pipe.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
            self.read_exec(pipe);
        }
    }

    /// Reads the last output of the chain's other processes: to the end of both streams, for
    /// [`DRAIN_MAX`] at most.
    fn drain(&mut self) {
        // The first process is reaped already: its pidfd is not polled again.
        let mut reaped = Some(WaitStatus::StillAlive);
        let deadline = std::time::Instant::now() + DRAIN_MAX;
        while self.streams.iter().any(Option::is_some) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                crate::debug::note("a process outside the chain keeps its log open: not read");
                break;
            }
            let left_ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
            self.poll_once(left_ms, &mut reaped);
        }
        for stream in [Stream::Stdout, Stream::Stderr] {
            let _ = self.log.close(stream);
        }
    }

    fn poll_once(&mut self, timeout_ms: i32, ended: &mut Option<WaitStatus>) {
        let slots: Vec<(usize, RawFd)> = [
            self.streams[0].as_ref().map(AsRawFd::as_raw_fd),
            self.streams[1].as_ref().map(AsRawFd::as_raw_fd),
            self.socket.as_ref().map(|c| c.as_fd().as_raw_fd()),
            self.exec_pipe.as_ref().map(AsRawFd::as_raw_fd),
            match ended {
                None => self.pidfd.as_ref().map(AsRawFd::as_raw_fd),
                Some(_) => None,
            },
        ]
        .iter()
        .enumerate()
        .filter_map(|(i, fd)| fd.map(|fd| (i, fd)))
        .collect();
        // SAFETY: every descriptor polled is owned by self and outlives this call.
        let fds: Vec<std::os::fd::BorrowedFd> = slots
            .iter()
            .map(|(_, fd)| unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) })
            .collect();
        let mut polled: Vec<PollFd> = fds
            .iter()
            .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        // Without a pidfd the child is polled for with waitpid every 200 ms.
        let timeout_ms = match self.pidfd {
            None if ended.is_none() => 200,
            _ => timeout_ms,
        };
        let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::NONE);
        match poll(&mut polled, timeout) {
            Ok(0) | Err(_) => {
                if self.pidfd.is_none() && ended.is_none() {
                    *ended = self.reap(true);
                }
                return;
            }
            Ok(_) => {}
        }
        let ready: Vec<usize> = slots
            .iter()
            .zip(&polled)
            .filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty()))
            .map(|((i, _), _)| *i)
            .collect();
        drop(polled);
        for slot in ready {
            match slot {
                0 => self.read_stream(Stream::Stdout),
                1 => self.read_stream(Stream::Stderr),
                2 => {
                    if let Some(socket) = self.socket.take() {
                        if self.receive(&socket) {
                            self.socket = Some(socket);
                        }
                    }
                }
                3 => {
                    if let Some(pipe) = self.exec_pipe.take() {
                        self.read_exec(pipe);
                    }
                }
                _ => *ended = self.reap(false),
            }
        }
    }

    /// Waits for the chain's first process (without blocking when `poll_only`).
    fn reap(&mut self, poll_only: bool) -> Option<WaitStatus> {
        let flags = poll_only.then_some(nix::sys::wait::WaitPidFlag::WNOHANG);
        match waitpid(self.child, flags) {
            Ok(WaitStatus::StillAlive) => None,
            Ok(status) => Some(status),
            Err(_) => Some(WaitStatus::Exited(self.child, i32::from(exit::FAILURE))),
        }
    }

    fn read_stream(&mut self, stream: Stream) {
        let index = stream as usize;
        let Some(fd) = self.streams[index].as_ref() else {
            return;
        };
        let mut buf = [0u8; 64 << 10];
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) | Err(nix::errno::Errno::EBADF) => {
                self.streams[index] = None;
                let _ = self.log.close(stream);
            }
            Ok(n) => {
                let _ = self.log.write(stream, &buf[..n]);
                // Until COMMAND runs, stderr is the setup's: also what a failed exec prints
                // after its mark came (the mark is sent first).
                if stream == Stream::Stderr && self.exec != Exec::Done {
                    let room = SETUP_STDERR_MAX.saturating_sub(self.setup_stderr.len());
                    self.setup_stderr.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            Err(_) => {}
        }
    }

    /// Takes the exec mark from the channel; false once the channel has nothing more to give
    /// (every holder closed it, or it sent something else).
    fn receive(&mut self, socket: &Channel) -> bool {
        match socket.recv_with_fds::<ExecMark>() {
            Ok(Some((ExecMark { exec: true }, mut fds))) if fds.len() == 1 => {
                if self.exec_pipe.is_none() && self.exec == Exec::Waiting {
                    self.exec_pipe = fds.pop();
                }
                true
            }
            Err(RecvError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            _ => false,
        }
    }

    fn read_exec(&mut self, pipe: OwnedFd) {
        let mut byte = [0u8; 1];
        self.exec = match nix::unistd::read(pipe.as_raw_fd(), &mut byte) {
            Ok(0) => Exec::Done,
            Ok(_) => Exec::Failed,
            Err(nix::errno::Errno::EAGAIN) => Exec::Failed,
            Err(_) => Exec::Failed,
        };
    }
}

fn status_code(status: WaitStatus) -> u8 {
    match status {
        WaitStatus::Exited(_, code) => code as u8,
        WaitStatus::Signaled(_, signal, _) => 128u8.wrapping_add(signal as u8),
        _ => exit::FAILURE,
    }
}

/// Just before COMMAND's exec in a detached chain: sends the supervisor the read end of a new
/// close-on-exec pipe and returns its write end, to be kept open across the exec (a
/// successful exec closes it). `None` outside a detached chain.
pub fn payload_exec_mark() -> Option<OwnedFd> {
    let fd: RawFd = std::env::var(FD_VAR).ok()?.trim().parse().ok()?;
    crate::handdown::unexport(FD_VAR);
    // SAFETY: the descriptor named in NSCHAIN_DETACH_FD was handed down for this one use
    // (DESIGN.md §1, handed-down fds); this process takes it and nothing else owns it.
    let socket = Channel::adopt(unsafe { OwnedFd::from_raw_fd(fd) }).ok()?;
    let (read, write) = pipe2(OFlag::O_CLOEXEC).ok()?;
    socket
        .send_with_fds(&ExecMark { exec: true }, &[read.as_fd()])
        .ok()?;
    Some(write)
}

/// COMMAND's exec failed: the supervisor learns it through the mark.
pub fn payload_exec_failed(mark: OwnedFd) {
    let _ = nix::unistd::write(&mark, b"f");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str, code: Option<u8>, signal: Option<&str>, oom: bool) -> Status {
        Status {
            state: state.into(),
            pid: Some(2),
            supervisor: 1,
            exit_code: code,
            signal: signal.map(str::to_owned),
            oom_killed: oom,
            foreground: false,
            started: 0,
            finished: None,
        }
    }

    #[test]
    fn status_reads_as_nsps_shows_it() {
        assert_eq!(status("running", None, None, false).text(), "running");
        assert_eq!(status("exited", Some(3), None, false).text(), "exited 3");
        assert_eq!(
            status("exited", Some(137), Some("SIGKILL"), false).text(),
            "killed by SIGKILL"
        );
        assert_eq!(
            status("exited", Some(137), Some("SIGKILL"), true).text(),
            "OOM-killed"
        );
    }
}
