//! `utsns`: run a command in a new UTS namespace, with its own hostname and domainname.

mod names;

use clap::Parser;
use common::cli::CommandArgs;
use common::link::{Link, NsOptions};
use common::ns::Namespace;
use common::{debug, Context, Fatal, Next};
use serde_json::{json, Map};

pub use names::{validate_domainname, validate_hostname};

/// Run COMMAND in a new UTS namespace: its own hostname and NIS domain name, invisible to the
/// host and to every other container (the same hostname can be used by many at once).
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:\n  utsns --hostname web1 -- hostname\n  utsns --hostname build -- make\n  utsns --pin /run/web1.uts --hostname web1 true; utsns --join /run/web1.uts -- hostname"
)]
pub struct Args {
    /// Hostname inside the namespace (RFC 1123, at most 64 bytes)
    #[arg(long, value_name = "NAME", allow_hyphen_values = true, value_parser = names::parse_hostname)]
    pub hostname: Option<String>,

    /// NIS domain name inside the namespace (at most 64 bytes)
    #[arg(long, value_name = "NAME", allow_hyphen_values = true, value_parser = names::parse_domainname)]
    pub domainname: Option<String>,

    #[command(flatten)]
    pub ns: NsOptions,

    #[command(flatten)]
    pub command: CommandArgs,
}

pub fn run(args: Args, cx: &mut Context) -> Result<Next, Fatal> {
    if args.ns.join.is_some() && (args.hostname.is_some() || args.domainname.is_some()) {
        // Renaming a running container behind its back (and behind nsps) is not a join.
        return Err(Fatal::new(
            "--join enters a UTS namespace that is already set up: it takes no --hostname or --domainname",
        )
        .with_hint("a container's name is set when it starts: give --hostname to the utsns that makes it"));
    }
    let link = Link::prepare(cx, Namespace::Uts, &args.ns)?;
    link.enter()?;
    if let Some(name) = &args.hostname {
        debug::step("sethostname", || nix::unistd::sethostname(name))
            .map_err(|e| Fatal::from(e).context("unable to set the hostname"))?;
    }
    if let Some(name) = &args.domainname {
        names::set_domainname(name)?;
    }
    let hostname = nix::unistd::gethostname().unwrap_or_default();
    let mut extra = Map::new();
    extra.insert("hostname".into(), json!(hostname.to_string_lossy()));
    link.finish(common::procfs::own_pid(), extra)?;
    Ok(Next::Exec(args.command.command))
}
