//! `nsps`: list, inspect and enter named chains. No daemon: every fact comes from the chains'
//! registrations (`RUN_DIR/chains/NAME/`) checked against the kernel (`/proc`).

mod enter;
mod inspect;
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
    after_help = "Examples:\n  nsps                      list running chains (like docker ps)\n  nsps web1                 one chain in full, with its PID mapping\n  nsps --json               the same, for scripts\n  nsps exec -it web1 -- sh  a shell on a terminal inside web1 (like docker exec -it)\n  nsps rm web1              delete web1's kept overlay layer once it has stopped"
)]
pub struct Args {
    /// Print JSON instead of a table
    #[arg(long, global = true)]
    pub json: bool,

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
    /// Delete a stopped chain's kept overlay layer and its registration
    Rm {
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
        Some(Action::Rm { name }) => inspect::remove(&name).map(|()| 0),
        None => match args.name {
            Some(name) => {
                let view = inspect::container(&name)?;
                render::one(&view, args.json)?;
                Ok(0)
            }
            None => {
                render::list(&inspect::running(), args.json)?;
                Ok(0)
            }
        },
    }
}
