//! `timens`: run a command in a new time namespace, with its own monotonic and boot-time
//! clocks (a container's uptime that starts from zero, or a checkpointed one's that goes on).
//!
//! ```text
//! check      offsets parsed (clap), the kernel has time namespaces, the clocks stay in range
//! pin        a helper forked before the unshare (--pin), as every link
//! unshare    CLONE_NEWTIME: the new namespace is this process's time_for_children
//! offsets    written once, before any process enters
//! enter      setns(time_for_children): this process enters it now, as its execve would,
//!            so that a next link run in the same process already reads the new clocks
//! finish     register, --info-fd, hand off
//! ```

mod clocks;
mod offset;
mod plan;

use clap::Parser;
use common::cli::CommandArgs;
use common::link::{Link, NsOptions};
use common::ns::{self, Namespace};
use common::{Context, Fatal, Next};
use serde_json::{json, Map};

pub use clocks::{Clock, Offsets};
pub use offset::{Offset, CLOCK_MAX_SECS};
pub use plan::Request;

/// Run COMMAND in a new time namespace: its own monotonic and boot-time clocks, shifted from
/// the caller's by the offsets given (wall-clock time stays the host's). Put timens after
/// userns when rootless, and before pidns so that the container's init shares its clocks.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:\n  timens --boottime 1000 -- cat /proc/uptime\n  timens --uptime 0 -- uptime\n  timens --monotonic 86400 -- python3 -c 'import time; print(time.monotonic())'\n  userns -- timens --uptime 0 -- pidns -- sh\n\nSECS is seconds, signed, with up to 9 decimals: 1000, -60, 0.5. The realtime clock\n(date) has no offset in a time namespace."
)]
pub struct Args {
    /// Shift the boot-time clock (CLOCK_BOOTTIME, /proc/uptime) by SECS, e.g. 1000 or -60.5
    #[arg(long, value_name = "SECS[.NS]", allow_hyphen_values = true, value_parser = offset::Offset::parse)]
    pub boottime: Option<Offset>,

    /// Shift the monotonic clock (CLOCK_MONOTONIC) by SECS
    #[arg(long, value_name = "SECS[.NS]", allow_hyphen_values = true, value_parser = offset::Offset::parse)]
    pub monotonic: Option<Offset>,

    /// Set the boot-time clock so that /proc/uptime reads SECS at the start, e.g. 0
    #[arg(long, value_name = "SECS", conflicts_with = "boottime", allow_hyphen_values = true, value_parser = offset::Offset::parse_non_negative)]
    pub uptime: Option<Offset>,

    /// Refused: the realtime clock has no offset in a time namespace
    #[arg(long, value_name = "SECS", hide = true, allow_hyphen_values = true, value_parser = refuse_realtime)]
    pub realtime: Option<String>,

    #[command(flatten)]
    pub ns: NsOptions,

    #[command(flatten)]
    pub command: CommandArgs,
}

/// `--realtime` is accepted by nothing: wall-clock time is the same in every time namespace.
fn refuse_realtime(_: &str) -> Result<String, String> {
    Err(
        "the realtime clock (wall-clock time) cannot be offset in a time namespace: \
         the kernel offsets only --monotonic and --boottime"
            .into(),
    )
}

impl Args {
    /// The clocks asked for.
    pub fn request(&self) -> Request {
        Request {
            boottime: self.boottime,
            monotonic: self.monotonic,
            uptime: self.uptime,
        }
    }
}

pub fn run(args: Args, cx: &mut Context) -> Result<Next, Fatal> {
    let request = args.request();
    if args.ns.join.is_some() && request.any() {
        // The kernel froze the clocks when the first process entered: a join cannot (and
        // must not try to) rewrite them.
        return Err(Fatal::new(
            "--join enters a time namespace whose clocks are set already: it takes no \
             --boottime, --monotonic or --uptime",
        )
        .with_hint("the offsets are written once, by the timens that makes the namespace"));
    }
    clocks::check_supported()?;
    let link = Link::prepare(cx, Namespace::Time, &args.ns)?;
    if link.is_join() {
        link.enter()?;
    } else {
        create(&link, &args, &request)?;
    }
    let offsets = clocks::read()?;
    let mut extra = Map::new();
    extra.insert(
        "offsets".into(),
        json!({
            "monotonic": offsets.monotonic.to_string(),
            "boottime": offsets.boottime.to_string(),
        }),
    );
    link.finish(common::procfs::own_pid(), extra)?;
    Ok(Next::Exec(args.command.command))
}

/// Makes the namespace: unshare, offsets, enter it, pin it.
fn create(link: &Link, args: &Args, request: &Request) -> Result<(), Fatal> {
    let inherited = clocks::read()?;
    let now = Offsets {
        monotonic: Clock::Monotonic.now()?,
        boottime: Clock::Boottime.now()?,
    };
    let settings = plan::offsets(request, &inherited, &now)?;
    // The pin helper creates a missing pin file; a failure before the pin removes it again.
    let new_pin = args.ns.pin.as_ref().filter(|p| !p.exists());
    let helper = link.pin_helper()?;
    let made = ns::unshare(Namespace::Time)
        .and_then(|()| clocks::write(&settings))
        .and_then(|()| clocks::enter_own());
    if let Err(fatal) = made {
        drop(helper);
        if let Some(path) = new_pin {
            let _ = std::fs::remove_file(path);
        }
        return Err(fatal);
    }
    match helper {
        Some(helper) => helper.pin(),
        None => Ok(()),
    }
}
