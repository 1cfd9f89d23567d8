//! `nsps`: list, inspect and enter named chains. No daemon: every fact comes from the chains'
//! registrations (`RUN_DIR/chains/NAME/`) checked against the kernel (`/proc`).

mod enter;
mod inspect;
mod lifecycle;
mod logs;
mod pty;
mod render;
mod seal;
mod session;
mod spawn;
mod target;

use std::ffi::OsString;

use clap::{Parser, Subcommand};
use common::cli::Status;
use common::{chain, Context, Fatal, Next};

/// List running chains, show one in full (with its host pid ↔ container pid mapping), enter
/// one, or delete a stopped chain's kept overlay layer.
#[derive(Parser, Debug)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    subcommand_value_name = "SUBCOMMAND",
    subcommand_help_heading = "Subcommands",
    disable_help_subcommand = true,
    after_help = "Examples:\n  nsps                      list running chains (like docker ps)\n  nsps --all                also the stopped ones that kept a layer or a log\n  nsps web1                 one chain in full, with its PID mapping\n  nsps --json               the same, for scripts\n  nsps exec -it web1 -- sh  a shell on a terminal inside web1 (like docker exec -it)\n  nsps logs -f web1         follow what a detached chain writes (like docker logs -f)\n  nsps stop web1            SIGTERM, SIGKILL after 10 s, return once it is gone\n  nsps rm web1              delete web1's kept overlay layer and log once it has stopped"
)]
pub struct Args {
    /// Print JSON instead of a table
    #[arg(long, global = true)]
    pub json: bool,

    /// List stopped chains too, those that kept an overlay layer or a log
    #[arg(short, long)]
    pub all: bool,

    /// Show this chain in full
    #[arg(value_name = "NAME", value_parser = chain::parse_name)]
    pub name: Option<String>,

    #[command(subcommand)]
    pub action: Option<Action>,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Run COMMAND inside a running chain: its namespaces and root, and its payload's user,
    /// capabilities, no_new_privs and seccomp filter (never more than the container has)
    Exec {
        /// Give COMMAND a terminal of the container's own (a pty of its /dev/pts), proxied to
        /// this one: window size, Ctrl-C and job control inside (like `docker exec -t`)
        #[arg(short = 't', long)]
        tty: bool,
        /// Keep stdin attached (without it COMMAND reads /dev/null, like `docker exec -i`)
        #[arg(short = 'i', long)]
        interactive: bool,
        #[arg(value_name = "NAME", value_parser = chain::parse_name)]
        name: String,
        /// Command to run (default: $SHELL, else /bin/sh)
        #[arg(value_name = "COMMAND", trailing_var_arg = true)]
        command: Vec<OsString>,
    },
    /// Delete a stopped chain's kept overlay layer, its log and its registration
    Rm {
        /// Kill the chain first if it is running (SIGKILL)
        #[arg(short, long)]
        force: bool,
        #[arg(value_name = "NAME", value_parser = chain::parse_name)]
        name: String,
    },
    /// Print what a detached chain wrote to stdout and stderr
    Logs {
        /// Keep printing what it writes until it ends
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines (or 'all')
        #[arg(long, value_name = "N", value_parser = logs::parse_tail)]
        tail: Option<usize>,
        /// Prefix every line with the time it was written
        #[arg(short, long)]
        timestamps: bool,
        #[arg(value_name = "NAME", value_parser = chain::parse_name)]
        name: String,
    },
    /// Block until a chain ends; print and exit with its status
    Wait {
        #[arg(value_name = "NAME", value_parser = chain::parse_name)]
        name: String,
    },
    /// Stop a chain: SIGTERM to its init, SIGKILL after the timeout; return once it is gone
    Stop {
        /// Seconds to wait after SIGTERM before SIGKILL
        #[arg(short = 't', long = "time", value_name = "SECS", default_value = "10", value_parser = lifecycle::parse_timeout)]
        time: u64,
        #[arg(value_name = "NAME", value_parser = chain::parse_name)]
        name: String,
    },
    /// Send a signal to a chain's init
    Kill {
        /// The signal: a name (TERM, SIGHUP) or a number
        #[arg(short, long, value_name = "SIGNAL", default_value = "KILL", value_parser = lifecycle::parse_signal)]
        signal: i32,
        #[arg(value_name = "NAME", value_parser = chain::parse_name)]
        name: String,
    },
}

pub fn run(args: Args, _cx: &mut Context) -> Result<Next, Fatal> {
    run_action(args).map(Next::Exit)
}

/// Without `-i`, COMMAND reads /dev/null, not the caller's stdin (as `docker exec`).
fn detach_stdin() -> Result<(), Fatal> {
    let null = std::fs::File::open("/dev/null")
        .map_err(|e| Fatal::from(e).context("unable to open /dev/null"))?;
    nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0)
        .map_err(|e| Fatal::from(e).context("unable to detach stdin"))?;
    Ok(())
}

fn run_action(args: Args) -> Result<Status, Fatal> {
    match args.action {
        Some(Action::Exec {
            tty,
            interactive,
            name,
            command,
        }) => {
            if tty {
                pty::exec(&name, command, interactive)
            } else {
                if !interactive {
                    detach_stdin()?;
                }
                enter::exec(&name, command, None)
            }
        }
        Some(Action::Rm { name, force }) => lifecycle::rm(&name, force),
        Some(Action::Logs {
            follow,
            tail,
            timestamps,
            name,
        }) => logs::show(
            &name,
            logs::Options {
                follow,
                tail,
                timestamps,
            },
        ),
        Some(Action::Wait { name }) => lifecycle::wait(&name),
        Some(Action::Stop { time, name }) => lifecycle::stop(&name, time),
        Some(Action::Kill { signal, name }) => lifecycle::kill(&name, signal),
        None => match args.name {
            Some(name) => {
                let view = inspect::running_or_kept(&name)?;
                render::one(&view, args.json)?;
                Ok(0)
            }
            None => {
                let mut shown = inspect::running();
                if args.all {
                    shown.extend(inspect::stopped());
                }
                render::list(&shown, args.json)?;
                Ok(0)
            }
        },
    }
}
