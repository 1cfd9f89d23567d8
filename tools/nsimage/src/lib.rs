//! `nsimage`: the image store manager. Loads, imports, lists, inspects, tags and removes
//! OCI images in nschain's store (an OCI image layout, `common::image`).

pub mod progress;
pub mod pull;
pub mod registry;
pub mod store;

use clap::{Parser, Subcommand};
use common::cli::Status;
use common::{Context, Fatal, Next};

/// Manage nschain's image store (an OCI image layout under the data directory).
#[derive(Parser, Debug)]
#[command(
    version,
    subcommand_value_name = "SUBCOMMAND",
    subcommand_help_heading = "Subcommands",
    disable_help_subcommand = true
)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Pull an image from a registry
    Pull(pull::PullArgs),
}

pub fn run(args: Args, _cx: &mut Context) -> Result<Next, Fatal> {
    run_action(args).map(Next::Exit)
}

fn run_action(args: Args) -> Result<Status, Fatal> {
    match args.action {
        Action::Pull(args) => {
            pull::run(&store::Store::open_default()?, &args)?;
            Ok(0)
        }
    }
}
