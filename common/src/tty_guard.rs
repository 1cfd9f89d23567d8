//! Puts a terminal back as it was when the process that made it raw dies without doing so.
//!
//! The process that proxies a container's pty ([`crate::pty::Proxy`]) puts the caller's
//! terminal in raw mode and restores it on every way out it controls. A SIGKILL (or the OOM
//! killer) leaves no way out: the caller's shell, if it does not restore the terminal itself
//! (bash does after a job killed by a signal; sh, make, a script do not), is left on a raw
//! terminal. So, before the terminal is made raw, a small guard process is forked with the
//! settings to restore:
//!
//! ```text
//! proxy   holds its end of a channel (close-on-exec, in no other process); on its own way
//!         out restores the terminal, sends "restored", and reaps the guard
//! guard   holds only the terminal and its end of the channel; a message: exits; end of
//!         file (the proxy died without a word): restores the saved settings, exits
//! ```
//!
//! The guard ignores the job-control and terminal signals (it may find itself in a background
//! process group once the caller's shell has taken the terminal back: SIGTTOU ignored lets
//! tcsetattr through) and is named `ttyguard` in `ps`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use serde::{Deserialize, Serialize};

use crate::channel::{self, Channel};

/// The proxy's word to the guard.
#[derive(Debug, Serialize, Deserialize)]
struct Restored;

/// A running guard; dropping it tells the guard the terminal is restored and reaps it.
#[derive(Debug)]
pub struct Guard {
    pid: libc::pid_t,
    channel: Option<Channel>,
}

/// Forks the guard of terminal `tty`, which restores `saved` if this process dies first.
pub fn spawn(tty: RawFd, saved: &libc::termios) -> io::Result<Guard> {
    let (ours, theirs) = channel::pair()?;
    let beside = PidNsBeside::enter()?;
    // SAFETY: the child makes only raw system calls on data prepared before (watch) and ends
    // with exit_group, as fork_raw requires.
    let forked = unsafe { crate::sys::process::fork_raw() };
    if forked == Ok(0) {
        watch(tty, theirs.as_fd().as_raw_fd(), saved);
    }
    beside.leave();
    Ok(Guard {
        pid: forked?,
        channel: Some(ours),
    })
}

/// The guard is forked into this process's own pid namespace. pidns's monitor proxies after
/// its unshare: its children go to the container's pid namespace, where the guard would be the
/// container's to see, and killed with it (and, unreaped, would keep its init from ending).
/// There it is forked beside the monitor with `setns` to the monitor's own namespace and
/// back; without the right to (a monitor in a user namespace of its own), no guard.
struct PidNsBeside {
    /// The namespace for children to go back to, when it was changed.
    children: Option<std::fs::File>,
}

impl PidNsBeside {
    fn enter() -> io::Result<PidNsBeside> {
        use std::os::unix::fs::MetadataExt;
        let own = std::fs::File::open("/proc/self/ns/pid")?;
        let children = std::fs::File::open("/proc/self/ns/pid_for_children")?;
        if own.metadata()?.ino() == children.metadata()?.ino() {
            return Ok(PidNsBeside { children: None });
        }
        nix::sched::setns(&own, nix::sched::CloneFlags::CLONE_NEWPID)?;
        Ok(PidNsBeside {
            children: Some(children),
        })
    }

    fn leave(self) {
        if let Some(children) = self.children {
            if let Err(e) = nix::sched::setns(&children, nix::sched::CloneFlags::CLONE_NEWPID) {
                crate::debug::note(format_args!(
                    "unable to set the children's pid namespace back: {e}"
                ));
            }
        }
    }
}

/// The guard: waits for the proxy's word or its end; never returns.
fn watch(tty: RawFd, channel: RawFd, saved: &libc::termios) -> ! {
    const IGNORED: [libc::c_int; 8] = [
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGHUP,
        libc::SIGTERM,
        libc::SIGPIPE,
    ];
    // SAFETY: signal, prctl, fcntl, dup2, close_range (which allocates nothing), read,
    // tcsetattr and exit_group are async-signal-safe; every buffer is a local or `saved`,
    // which the child's copy of the parent's memory keeps valid.
    unsafe {
        for signal in IGNORED {
            libc::signal(signal, libc::SIG_IGN);
        }
        libc::prctl(libc::PR_SET_NAME, c"ttyguard".as_ptr());
        // Only the terminal (fd 0) and the channel (fd 1) stay open: nothing else the proxy
        // holds (the pty master, its channels, the caller's output) is kept alive by the guard.
        let tty_copy = libc::fcntl(tty, libc::F_DUPFD, 10);
        let channel_copy = libc::fcntl(channel, libc::F_DUPFD, 10);
        if tty_copy < 0
            || channel_copy < 0
            || libc::dup2(tty_copy, 0) < 0
            || libc::dup2(channel_copy, 1) < 0
        {
            crate::sys::process::exit_group(1);
        }
        crate::sys::fs::close_range_or_each(2, libc::c_uint::MAX);
        // A datagram (its size does not matter): the word; 0, end of file: the proxy is gone.
        let mut buf = [0u8; 64];
        let n = loop {
            let n = libc::read(1, buf.as_mut_ptr().cast(), buf.len());
            if n >= 0 || *libc::__errno_location() != libc::EINTR {
                break n;
            }
        };
        if n == 0 {
            libc::tcsetattr(0, libc::TCSANOW, saved);
        }
        crate::sys::process::exit_group(0)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(channel) = self.channel.take() {
            let _ = channel.send(&Restored);
        }
        loop {
            // SAFETY: reaps our own child; a null status pointer is allowed.
            let rc = unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), 0) };
            if rc >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break;
            }
        }
    }
}
