//! `--tty`: COMMAND on a terminal of the container's own (a pty of its /dev/pts), proxied to
//! the caller's terminal from the host side, as `nsps exec -t` does (common::pty).
//!
//! The pty is opened last, with COMMAND's user, capabilities and filter already in place,
//! after pivot_root: `/dev/pts/ptmx` is the container's devpts. Its master goes by SCM_RIGHTS to
//! the process that proxies, which must stay on the host side, be small, and end when the
//! payload ends:
//!
//! ```text
//! pidns before mntns   pidns's monitor: outside the container's pid namespace (nothing in it
//!                      can signal or ptrace it), it already waits for the container and
//!                      holds the socket for work after it (common::after), which carries the
//!                      master
//! no pidns             mntns forks before it unshares; the parent stays in the caller's
//!                      namespaces with stdio, a signalfd and the socket only, as the --rm
//!                      waiter does, and exits with the child's status; the child dies with it
//! ```
//!
//! COMMAND then leads a new session whose controlling terminal is the slave: Ctrl-C, Ctrl-Z and
//! job control act in the container, and nothing there refers to the caller's terminal.

use std::os::fd::{AsFd, AsRawFd};

use common::channel::{self, Channel};
use common::pty::{self, Proxy};
use common::signals::{self, SignalFd};
use common::{debug, Fatal};
use nix::unistd::{fork, ForkResult, Pid};

/// The process that proxies, and the channel to it.
#[derive(Debug)]
pub enum ProxyLink {
    /// pidns's monitor, through the channel for work after the container.
    Monitor(Channel),
    /// The process mntns forked (COMMAND dies with it).
    Own(Channel, Pid),
    /// `--console-fd`: an OCI runtime's console socket (nsoci), which gets the master and
    /// proxies nothing back (conmon, containerd's shim do the proxying).
    Console(std::os::fd::OwnedFd),
}

/// `--console-fd FD`: close-on-exec at once (it must not reach COMMAND).
pub fn console(fd: std::os::fd::RawFd) -> Result<ProxyLink, Fatal> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| Fatal::from(e).context(format!("unable to use --console-fd {fd}")))?;
    // SAFETY: the caller handed this descriptor to mntns for the pty master (checked open by
    // the parser); owning it closes it once the master is sent.
    Ok(ProxyLink::Console(unsafe {
        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
    }))
}

/// Where the master goes: pidns's monitor when there is one, else a process forked here.
pub fn proxy_link(after: Option<&Channel>) -> Result<ProxyLink, Fatal> {
    if let Some(after) = after {
        debug::note("--tty: pidns's monitor proxies the terminal");
        let channel = after
            .as_fd()
            .try_clone_to_owned()
            .and_then(Channel::adopt)
            .map_err(|e| Fatal::from(e).context("unable to keep the channel to pidns"))?;
        return Ok(ProxyLink::Monitor(channel));
    }
    fork_proxy().map(|(channel, proxy)| ProxyLink::Own(channel, proxy))
}

/// Forks; returns in the child only, with its end of the socket and the proxy's pid. The parent
/// proxies the terminal and exits with the child's status.
fn fork_proxy() -> Result<(Channel, Pid), Fatal> {
    let (ours, theirs) =
        channel::pair().map_err(|e| Fatal::from(e).context("unable to create a channel"))?;
    // Blocked before the fork, so that none is lost before the signalfd reads them.
    let signals = signals::take_over()?;
    let proxy = Pid::this();
    // SAFETY: mntns is single-threaded until exec, so both sides may run ordinary code.
    match unsafe { fork() }.map_err(|e| Fatal::from(e).context("unable to fork"))? {
        ForkResult::Child => {
            drop(ours);
            signals.give_back()?;
            crate::waiter::die_with(proxy)?;
            Ok((theirs, proxy))
        }
        ForkResult::Parent { child } => {
            drop(theirs);
            let signalfd = &signals.signalfd;
            crate::waiter::shed(&[signalfd.raw(), ours.as_fd().as_raw_fd()]);
            let code = proxy_until_exit(child, &ours, signalfd);
            // SAFETY: _exit ends the proxy without running destructors: the fds shed closed
            // by number must not be closed again by their owners.
            unsafe { libc::_exit(i32::from(code)) }
        }
    }
}

fn proxy_until_exit(child: Pid, channel: &Channel, signalfd: &SignalFd) -> u8 {
    let proxy = match pty::recv_master(channel) {
        Ok(Some(master)) => Proxy::new(master, true),
        // The child failed before it made the pty (it said why): its status.
        Ok(None) => return signals::forward_until_exit(child, child, signalfd),
        Err(e) => Err(e),
    };
    match proxy {
        Ok(proxy) if pty::send_ready(channel).is_ok() => proxy.run(child, child, signalfd),
        Ok(_) => signals::forward_until_exit(child, child, signalfd),
        Err(e) => {
            common::report::warning(format_args!(
                "unable to proxy the container's terminal: {e}"
            ));
            signals::forward_until_exit(child, child, signalfd)
        }
    }
}

/// In mntns, right before the exec: the pty of the container's devpts, its master to the
/// proxy, the slave as COMMAND's stdio and controlling terminal in a session of its own.
pub fn take_terminal(link: &ProxyLink) -> Result<(), Fatal> {
    let made = debug::step("open /dev/pts/ptmx", pty::open)
        .map_err(|e| Fatal::from(e).context("unable to open a pty in the container"))?;
    debug::step("hand the pty master to the proxy", || {
        let channel = match link {
            ProxyLink::Console(socket) => {
                let name = format!("/dev/pts/{}", pty::number(made.master.as_fd())?);
                return common::console_socket::send_master(
                    socket.as_fd(),
                    made.master.as_fd(),
                    &name,
                );
            }
            ProxyLink::Monitor(channel) => {
                common::after::send_terminal(channel, made.master.as_fd())?;
                channel
            }
            ProxyLink::Own(channel, _) => {
                pty::send_master(channel, made.master.as_fd())?;
                channel
            }
        };
        pty::wait_ready(channel)
    })
    .map_err(|e| Fatal::from(e).context("unable to hand the pty to the host side"))?;
    drop(made.master);
    debug::step("the pty as controlling terminal", || {
        pty::take_as_terminal(made.slave.as_fd())
    })
    .map_err(|e| {
        Fatal::from(e)
            .context("unable to make the pty the controlling terminal")
            .with_hint("--tty needs mntns not to lead a process group (pidns --pgroup)")
    })
}
