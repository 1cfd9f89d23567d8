//! Under the chain's supervisor (common::sup: an earlier link forked it and is this process's
//! parent), pidns keeps no monitor of its own: it forks the container's first process,
//! registers it, hands it to the supervisor and exits. The first process is re-parented to
//! the supervisor (a child subreaper), which waits for it, forwards signals, runs the work
//! for after the container and reports the status. So an idle container has two processes of
//! ours, the supervisor and the init.
//!
//! The flags that need the monitor itself (`--status-fd`, `--pgroup`, `--die-with-parent`;
//! `--join` has no container to hand over) keep it.

use std::os::fd::OwnedFd;

use common::after::Adoption;
use common::channel::Channel;
use common::link::Link;
use common::{chain, Context, Fatal};
use nix::unistd::Pid;
use serde_json::json;

use crate::child::Role;
use crate::monitor::MonitorWord;
use crate::{lifeline, Args};

/// The supervisor this link hands its container to.
pub struct Handover {
    /// Its socket (a copy of the hand-down's, which the container's first process inherits
    /// and the next links take).
    channel: Channel,
    supervisor: Pid,
    /// Given to the container's first process, which ties its life to it.
    pidfd: Option<OwnedFd>,
}

/// The hand-over, when the chain has a supervisor that is this process's parent and no flag
/// needs a monitor.
pub fn offer(args: &Args, link: &Link, cx: &mut Context) -> Result<Option<Handover>, Fatal> {
    let needs_monitor =
        link.is_join() || args.status_fd.is_some() || args.pgroup || args.die_with_parent;
    // Taken in any case: a later link's parent is not the supervisor.
    let supervisor = common::sup::supervisor_of_this();
    let Some(supervisor) = supervisor.filter(|_| !needs_monitor) else {
        return Ok(None);
    };
    let handdown = cx.handdown();
    let Some(channel) = common::after::take(handdown.after.take()) else {
        return Ok(None);
    };
    let pidfd = lifeline::pidfd_open(supervisor)
        .map_err(|e| Fatal::from(e).context("unable to open a pidfd of the chain's supervisor"))?;
    // The copy the container's first process inherits (for mntns --rm, --tty).
    let copy = std::os::fd::AsFd::as_fd(&channel)
        .try_clone_to_owned()
        .map_err(|e| Fatal::from(e).context("unable to duplicate the supervisor's socket"))?;
    handdown.after = common::handdown::Slot::Made(copy);
    Ok(Some(Handover {
        channel,
        supervisor,
        pidfd: Some(pidfd),
    }))
}

impl Handover {
    /// The supervisor's pidfd, for the container's first process.
    pub fn take_pidfd(&mut self) -> Option<OwnedFd> {
        self.pidfd.take()
    }

    /// Pins, registers (the supervisor as the monitor), hands the first process over, and
    /// lets it go on.
    pub fn hand_over(
        self,
        link: &Link,
        helper: Option<common::pin::PinHelper>,
        pid: Pid,
        role: Role,
        child: &Channel,
    ) -> Result<(), Fatal> {
        let host_pid = pid.as_raw() as u32;
        // No --status-fd: a link with one keeps its monitor (`offer`).
        let supervisor = json!(self.supervisor.as_raw());
        crate::start::report(link, None, helper, pid, supervisor, role == Role::Init)?;
        if let Some((name, _)) = chain::inherited() {
            // The earlier links' namespaces live on in the first process, not in this one.
            chain::hand_records(&name, common::procfs::own_pid(), host_pid);
        }
        let adoption = Adoption {
            pid: host_pid,
            name: chain::inherited(),
        };
        common::after::send_adoption(&self.channel, &adoption).map_err(|e| {
            Fatal::from(e).context("unable to hand the container to the chain's supervisor")
        })?;
        child
            .send(&MonitorWord::Go)
            .map_err(|e| Fatal::from(e).context("unable to start the container"))?;
        Ok(())
    }
}
