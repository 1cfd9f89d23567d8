//! `ipcns`: run a command in a new IPC namespace.

mod sysctl;

use clap::Parser;
use common::cli::CommandArgs;
use common::link::{Link, NsOptions};
use common::ns::Namespace;
use common::{Context, Fatal, Next};
use serde_json::{json, Map};

pub use sysctl::IpcSysctl;

/// Run COMMAND in a new IPC namespace: System V shared memory, semaphores and message queues,
/// and POSIX message queues become private to it. Put ipcns before mntns, so that mntns can
/// mount this namespace's /dev/mqueue.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:\n  ipcns -- ipcs\n  ipcns --sysctl kernel.shmmax=67108864 --sysctl fs.mqueue.msg_max=64 -- ./server\n\nIPC sysctls: kernel.{shmmax,shmall,shmmni,shm_rmid_forced,msgmax,msgmnb,msgmni,sem}\n             fs.mqueue.{queues_max,msg_max,msgsize_max,msg_default,msgsize_default}"
)]
pub struct Args {
    /// Set an IPC sysctl of the new namespace (repeatable), e.g. kernel.shmmax=67108864
    #[arg(long, value_name = "KEY=VALUE", value_parser = sysctl::IpcSysctl::parse)]
    pub sysctl: Vec<IpcSysctl>,

    #[command(flatten)]
    pub ns: NsOptions,

    #[command(flatten)]
    pub command: CommandArgs,
}

pub fn run(args: Args, cx: &mut Context) -> Result<Next, Fatal> {
    if args.ns.join.is_some() && !args.sysctl.is_empty() {
        // The limits of a running container are not the joiner's to change.
        return Err(Fatal::new(
            "--join enters an IPC namespace that is already set up: it takes no --sysctl",
        )
        .with_hint("set the limits with --sysctl on the ipcns that makes the namespace"));
    }
    let link = Link::prepare(cx, Namespace::Ipc, &args.ns)?;
    link.enter()?;
    for setting in &args.sysctl {
        setting.apply()?;
    }
    let mut extra = Map::new();
    if !args.sysctl.is_empty() {
        let applied: Map<_, _> = args
            .sysctl
            .iter()
            .map(|s| (s.key.clone(), json!(s.value)))
            .collect();
        extra.insert("sysctl".into(), applied.into());
    }
    link.finish(common::procfs::own_pid(), extra)?;
    Ok(Next::Exec(args.command.command))
}
