//! `--no-monitor`: runc's model for an OCI runtime (nsoci). COMMAND is forked into the pid
//! namespace (as PID 1 with `--no-init`, or into a joined one with `--join`) and this process
//! exits 0 once COMMAND may go on: COMMAND is then orphaned to the caller's subreaper (conmon,
//! containerd-shim, `nsoci run`), which waits for it and gets its exit status directly. The
//! host pid of COMMAND is told on `--status-fd` (its first line, as with the monitor), which is
//! then closed: no exit line, since nobody here sees the end.
//!
//! Nothing of the monitor runs: no signal forwarding (signals go to COMMAND's pid directly),
//! no work after the container, no unregistering at the end (the runtime's `delete` does it).

use common::link::Link;
use common::ns::{self, Namespace};
use common::{debug, Context, Fatal, Next};
use nix::unistd::{fork, ForkResult};
use serde_json::json;

use crate::Args;

/// Forks COMMAND into the namespace, registers it, lets it go, and exits 0.
pub fn run(
    link: &Link,
    args: &Args,
    helper: Option<common::pin::PinHelper>,
    cx: &mut Context,
) -> Result<Next, Fatal> {
    if !args.no_init && !link.is_join() {
        return Err(Fatal::new(
            "--no-monitor needs --no-init or --join: without a monitor nobody would wait for the init's COMMAND",
        ));
    }
    if link.is_join() {
        link.enter()?;
    } else {
        ns::unshare(Namespace::Pid)?;
    }
    cx.export_handdown()?;
    let (go_read, go_write) = common::channel::pair()
        .map_err(|e| Fatal::from(e).context("unable to create a socket pair"))?;
    // SAFETY: single-threaded; the child only waits for the go-ahead, then execs or _exits.
    let forked = unsafe { fork() }
        .map_err(|e| Fatal::from(e).context("unable to fork the container's first process"))?;
    let child = match forked {
        ForkResult::Child => {
            drop(go_write);
            // The end without a word: this process failed and said why; COMMAND must not
            // run unregistered.
            if !matches!(go_read.recv::<()>(), Ok(Some(()))) {
                // SAFETY: _exit ends the child without running the parent's destructors.
                unsafe { libc::_exit(i32::from(common::exit::FAILURE)) }
            }
            let fatal = common::exec::exec(args.command.command.clone());
            fatal.print();
            // SAFETY: as above.
            unsafe { libc::_exit(i32::from(fatal.code)) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(go_read);
    let started = || -> Result<(), Fatal> {
        crate::start::report(link, args.status_fd, helper, child, json!(null), false)?;
        go_write
            .send(&())
            .map_err(|e| Fatal::from(e).context("unable to start the container"))
    };
    started().map_err(|fatal| crate::start::abandon(child, fatal))?;
    debug::note(format_args!("container started without a monitor: {child}"));
    Ok(Next::Exit(0))
}
