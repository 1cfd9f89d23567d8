//! The start gate of a process `exec -t` starts with a terminal nsoci proxies itself: mntns
//! makes the pty and sends the master, then waits at the gate (its `--start-fifo`) until
//! nsoci has given the pty the caller's size, so that the process's first look at its
//! terminal (a shell's prompt, `stty size`) sees it. `run` has `exec.fifo` for that; an
//! exec's gate is a FIFO of its own, unlinked as soon as it is opened: nothing is left in
//! the container's directory, whatever becomes of nsoci.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use common::Fatal;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;

/// A new FIFO in `dir` (the container's directory), opened O_PATH and unlinked.
pub fn make(dir: &Path) -> Result<OwnedFd, Fatal> {
    let path = dir.join(format!("exec-{}.fifo", std::process::id()));
    let _ = std::fs::remove_file(&path);
    // 0622: the process's user, whoever it is, opens it for writing at the gate.
    nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o622))
        .map_err(|e| Fatal::from(e).context("unable to create the exec's start gate"))?;
    let opened = nix::sys::stat::fchmodat(
        None,
        &path,
        Mode::from_bits_truncate(0o622),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .and_then(|()| nix::fcntl::open(&path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()));
    let _ = std::fs::remove_file(&path);
    let fd = opened.map_err(|e| Fatal::from(e).context("unable to open the exec's start gate"))?;
    // SAFETY: open just returned this descriptor, owned by no one else.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Opens the gate: mntns, blocked opening the FIFO for writing, goes on to exec. Returns
/// at once if `pid` (the process, this process's child) ended before it got there (its
/// status says why).
pub fn open(fifo: &OwnedFd, pid: i32) -> Result<(), Fatal> {
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    wait_for_writer(Path::new(&path), || ended(pid))
        .map(drop)
        .map_err(|e| Fatal::from(e).context("unable to open the exec's start gate"))
}

/// Opens a start gate's FIFO for reading and waits for the byte the process at the gate
/// writes as it goes on: true once it came, false when `gone` says the process ended first.
/// `run`'s exec.fifo and an exec's own gate both work this way.
pub fn wait_for_writer(fifo: &Path, gone: impl Fn() -> bool) -> nix::Result<bool> {
    // Non-blocking: a process that died before the gate must not hang nsoci.
    let fd = nix::fcntl::open(
        fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: open just returned this descriptor; the File owns it.
    let mut reader = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut byte = [0u8; 1];
    loop {
        let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
        let _ = nix::poll::poll(&mut fds, PollTimeout::from(100u16));
        match reader.read(&mut byte) {
            Ok(1) => return Ok(true),
            _ if gone() => return Ok(false),
            _ => {}
        }
    }
}

/// Whether child `pid` has ended (it is left to be reaped).
fn ended(pid: i32) -> bool {
    // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: WNOWAIT leaves the child as it is; `info` is a local.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: si_pid is set by waitid when a child was found (0 when none has ended).
    rc != 0 || unsafe { info.si_pid() } != 0
}
