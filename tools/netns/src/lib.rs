//! `netns`: run a command in a new network namespace, with `lo` up; in bridge mode with its
//! own address on a host bridge and published ports; rootless through a user-mode stack.

mod bridge;
mod bridged;
mod cleanup;
mod ipam;
mod ipv6;
mod netlink;
mod nft;
mod own_sys;
mod publish;
mod rootless;
mod sysctl;

pub use sysctl::{NetDir, NetSysctl};

use std::net::Ipv4Addr;

use clap::Parser;
use common::cli::CommandArgs;
use common::handdown::Slot;
use common::link::{Link, NsOptions};
use common::ns::Namespace;
use common::{debug, Context, Fatal, Next};
use serde_json::{json, Map};

pub use ipam::Cidr;
pub use publish::{Proto, Publish};

/// Run COMMAND in a new network namespace: its own interfaces, addresses, routes and ports.
///
/// Without a mode, the namespace has only `lo`, up (unlike `unshare -n`). `--bridge` gives it
/// an address on a host bridge, a default route, outbound masquerade and published ports (needs
/// CAP_NET_ADMIN on the host: put netns before userns). Rootless, `--slirp4netns` (or `--pasta`)
/// gives it user-mode networking with published ports.
#[derive(Parser, Debug)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    subcommand_value_name = "SUBCOMMAND",
    subcommand_help_heading = "Subcommands",
    disable_help_subcommand = true,
    after_help = "Examples:
  netns -- ./flaky-test                      (lo only: no network)
  netns --bridge -p 8080:80 -- nginx -g 'daemon off;'
  netns --bridge=br1 --subnet 10.210.0.0/16 --ip 10.210.0.9 -- sh
  netns --bridge --icc=false -- sh           (no traffic with the other --icc=false containers)
  userns -- netns --slirp4netns -p 8080:80 -- python3 -m http.server 80
  netns gc [--prune]                         (release what dead containers left; --prune: the bridges netns made, its table)

Notes:
  --bridge takes its NAME only as --bridge=NAME (so `netns --bridge true` runs true).
  `gc` is a subcommand only as the very first argument: `netns -- gc` runs a program named gc.
  Isolation: containers on different bridges cannot reach each other (as Docker's networks).
  Cleanup: a small watcher releases the address and ports when the namespace is gone; after
  a SIGKILL the next bridge-mode start, or `netns gc`, does it."
)]
pub struct Args {
    /// Bridge mode: an address on the host bridge NAME (default nschain0, created if missing)
    #[arg(
        long,
        value_name = "NAME",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "nschain0",
        value_parser = bridge::parse_name
    )]
    pub bridge: Option<String>,

    /// The bridge's subnet (default: a free /16 from 10.200.0.0/16 up)
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<Cidr>,

    /// The container's address (default: the next free one of the subnet)
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<Ipv4Addr>,

    /// MTU of the container's interface
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(68..=65535))]
    pub mtu: Option<u32>,

    /// Inter-container communication (Docker's icc): --icc=false isolates this container
    /// from the other --icc=false containers of its bridge
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub icc: bool,

    // Help as an attribute: the brackets are CLI syntax, not rustdoc links.
    #[arg(
        short = 'p',
        long,
        value_name = "SPEC",
        help = "Publish a port on the host (repeatable): [HOSTIP:]HOSTPORT:PORT[/tcp|/udp]"
    )]
    pub publish: Vec<Publish>,

    /// Rootless: user-mode networking through slirp4netns (address 10.0.2.100)
    #[arg(long, conflicts_with_all = ["bridge", "pasta"])]
    pub slirp4netns: bool,

    /// Rootless: user-mode networking through passt's pasta (2024-02 or later)
    #[arg(long, conflicts_with = "bridge")]
    pub pasta: bool,

    /// Set a sysctl of the new network namespace (net.*, repeatable; loopback mode), e.g.
    /// net.ipv4.ping_group_range="0 0"
    #[arg(long, value_name = "KEY=VALUE", value_parser = NetSysctl::parse)]
    pub sysctl: Vec<NetSysctl>,

    #[command(flatten)]
    pub ns: NsOptions,

    #[command(flatten)]
    pub command: CommandArgs,

    #[command(subcommand)]
    pub action: Option<Action>,
}

/// What netns does instead of running a command (only as its very first word).
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Release the addresses, ports and nft elements of containers that are gone
    Gc(cleanup::GcArgs),
}

pub fn run(args: Args, cx: &mut Context) -> Result<Next, Fatal> {
    if let Some(Action::Gc(gc)) = &args.action {
        return cleanup::gc_main(gc).map(Next::Exit);
    }
    check_modes(&args)?;
    if let Some(bridge) = args.bridge.clone() {
        return bridged::run(args, &bridge, cx);
    }
    if args.slirp4netns || args.pasta {
        return run_user_mode(args, cx);
    }
    let link = Link::prepare(cx, Namespace::Net, &args.ns)?;
    link.enter()?;
    let mut extra = Map::new();
    if !link.is_join() {
        loopback_up()?;
        // As Docker: every port is the container's own (see bridged.rs).
        let _ = bridge::write_sysctl("net/ipv4/ip_unprivileged_port_start", "0");
        for setting in &args.sysctl {
            setting.apply()?;
        }
        extra.insert("mode".into(), json!("loopback"));
    }
    link.finish(common::procfs::own_pid(), extra)?;
    let stack = if link.is_join() { "join" } else { "loopback" };
    cx.handdown().net = Slot::Made(stack.to_owned());
    own_sys::exec(args.command.command, cx)
}

fn check_modes(args: &Args) -> Result<(), Fatal> {
    let mode = args.bridge.is_some() || args.slirp4netns || args.pasta;
    if args.ns.join.is_some() && (mode || !args.publish.is_empty() || args.mtu.is_some()) {
        return Err(Fatal::new(
            "--join enters a network namespace that is already set up: it takes no --bridge, --slirp4netns, --pasta, --publish or --mtu",
        )
        .with_hint("a pod shares the network of its first container: publish the ports there"));
    }
    if !mode && !args.publish.is_empty() {
        return Err(Fatal::new(
            "--publish needs a network: add --bridge (rootful) or --slirp4netns (rootless)",
        ));
    }
    if args.bridge.is_none() && (args.ip.is_some() || args.subnet.is_some()) {
        return Err(Fatal::new("--ip and --subnet need --bridge")
            .with_hint("netns --bridge --subnet CIDR --ip ADDR -- COMMAND"));
    }
    if args.bridge.is_none() && !args.icc {
        return Err(Fatal::new("--icc=false needs --bridge")
            .with_hint("netns --bridge --icc=false -- COMMAND"));
    }
    if (mode || args.ns.join.is_some()) && !args.sysctl.is_empty() {
        return Err(Fatal::new(
            "--sysctl sets a new loopback-only namespace (not with --join, --bridge, --slirp4netns or --pasta yet)",
        ));
    }
    if !mode && args.mtu.is_some() {
        return Err(Fatal::new("--mtu needs --bridge, --slirp4netns or --pasta"));
    }
    if let Some((a, b)) = publish::first_clash(&args.publish) {
        return Err(Fatal::new(format!(
            "the host port of {a} is published twice (also by {b})"
        )));
    }
    Ok(())
}

/// Brings `lo` up in the current (new) namespace.
fn loopback_up() -> Result<(), Fatal> {
    debug::step("lo up", || -> std::io::Result<()> {
        let mut rtnl = netlink::Rtnl::open()?;
        rtnl.set_up(1, None)
    })
    .map_err(|e| Fatal::from(e).context("unable to bring lo up"))
}

fn run_user_mode(args: Args, cx: &mut Context) -> Result<Next, Fatal> {
    let stack = if args.pasta {
        rootless::check_pasta()?;
        rootless::Stack::Pasta
    } else {
        rootless::Stack::Slirp4netns
    };
    let link = Link::prepare(cx, Namespace::Net, &args.ns)?;
    let api_dir = cleanup::state_dir();
    let helper = rootless::spawn(stack, args.mtu, &args.publish, &api_dir)?;
    link.enter()?;
    loopback_up()?;
    let exit_fd = helper.start(&args.publish)?;
    let mut extra = Map::new();
    extra.insert("mode".into(), json!(stack.program()));
    if stack == rootless::Stack::Slirp4netns {
        extra.insert(
            "address".into(),
            json!(format!("{}/24", rootless::SLIRP_GUEST)),
        );
        extra.insert("gateway".into(), json!(rootless::SLIRP_GATEWAY));
    }
    extra.insert(
        "ports".into(),
        json!(args
            .publish
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()),
    );
    link.finish(common::procfs::own_pid(), extra)?;
    if let Some(fd) = &exit_fd {
        rootless::inherit(fd)?;
    }
    cx.handdown().net = Slot::Made(stack.program().to_owned());
    // The exit pipe is inherited: the helper quits when its last holder is gone.
    cx.hold(exit_fd);
    own_sys::exec(args.command.command, cx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Args {
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn gc_is_a_subcommand_only_as_the_first_word() {
        assert!(matches!(
            parse(&["netns", "gc"]).action,
            Some(Action::Gc(_))
        ));
        let Some(Action::Gc(gc)) = parse(&["netns", "gc", "--prune"]).action else {
            panic!("gc --prune");
        };
        assert!(gc.prune);
        for argv in [&["netns", "--", "gc"][..], &["netns", "--bridge", "gc"]] {
            let args = parse(argv);
            assert!(args.action.is_none(), "{argv:?}");
            assert_eq!(args.command.command, ["gc"], "{argv:?}");
        }
        assert!(Args::try_parse_from(["netns", "gc", "--prun"]).is_err());
    }
}
