//! `nsps`: list, inspect and enter named chains. No daemon: every fact comes from the chains'
//! registrations (`RUN_DIR/chains/NAME/`) checked against the kernel (`/proc`).

mod enter;
mod inspect;
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
    after_help = "Examples:\n  nsps                      list running chains (like docker ps)\n  nsps web1                 one chain in full, with its PID mapping\n  nsps --json               the same, for scripts\n  nsps exec web1 -- sh      a shell inside web1 (like docker exec)\n  nsps rm web1              delete web1's kept overlay layer once it has stopped"
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

fn run_action(args: Args) -> Result<Status, Fatal> {
    match args.action {
        Some(Action::Exec { name, command }) => enter::exec(&name, command),
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
