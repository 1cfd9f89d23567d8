//! The command-line recipe every tool shares: `TOOL [OPTIONS] [--] [COMMAND [ARG]...]`.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::handoff::{self, Context, Next};
use crate::inprocess::{Handoff, Links, Outcome};
use crate::{debug, exit, report, Fatal};

/// What a tool's `run` returns when it does not exec: the status to exit with (`pidns`).
pub type Status = u8;

/// The trailing `COMMAND [ARG]...`: parsing stops at the first word that is not an option,
/// so option-like words of the command pass through untouched.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CommandArgs {
    /// Command to run, with its arguments (default: $SHELL, else /bin/sh)
    #[arg(value_name = "COMMAND", trailing_var_arg = true, value_hint = clap::ValueHint::CommandWithArguments)]
    pub command: Vec<OsString>,
}

/// A tool's entry: sets up its link and says what comes next ([`crate::handoff`]).
pub type Run<A> = fn(A, &mut Context) -> Result<Next, Fatal>;

/// Runs a tool: parses its arguments, calls `run`, carries out the [`Next`] it returns, and
/// turns a failure into the contract's one-line message and exit status. Every `main.rs` is
/// one call to this.
pub fn main<A: Parser>(tool: &'static str, run: Run<A>) -> ExitCode {
    let start = Handoff {
        argv: std::env::args_os().collect(),
        handdown: crate::handdown::Handdown::from_env(),
        registrations: Vec::new(),
    };
    match link(tool, run, start, None) {
        Outcome::Exit(code) => ExitCode::from(code),
        // Without a multi-call table every hand-off is a real exec.
        Outcome::Continue(_) => ExitCode::from(exit::FAILURE),
    }
}

/// One link of a chain, with its argv and what the earlier links hand it (`start`): what [`main`] does, and what the multi-call
/// binary does for each link it runs ([`crate::inprocess`]); with `links`, the next link
/// may run in this process and is returned as [`Outcome::Continue`].
pub fn link<A: Parser>(
    tool: &'static str,
    run: Run<A>,
    start: Handoff,
    links: Option<&'static Links>,
) -> Outcome {
    let argv = start.argv.clone();
    let mut cx = match links {
        Some(links) => Context::in_multi_call(tool, start, links),
        None => Context::with_handdown(tool, start.handdown),
    };
    debug::start();
    crate::link_trace::record(tool);
    let (args, detach) = match parse_detach::<A>(tool, argv) {
        Ok(parsed) => parsed,
        Err(code) => return Outcome::Exit(code),
    };
    if let Some(name) = detach {
        match crate::supervisor::detach(tool, name.as_deref()) {
            crate::supervisor::Outcome::Chain => {}
            crate::supervisor::Outcome::Exit(code) => return Outcome::Exit(code),
        }
    }
    let next = run(args, &mut cx);
    handoff::finish(next, &mut cx)
}

/// Parses argv; `Err` carries the exit status (0 after `--help`/`--version`, 125 for a usage
/// error, already reported with the tool's name).
pub fn parse<A: Parser>(
    tool: &'static str,
    argv: impl IntoIterator<Item = OsString>,
) -> Result<A, u8> {
    parse_detach(tool, argv).map(|(args, _)| args)
}

/// What `--detach` asks for: `Some(--name)` when given ([`crate::link::NsOptions`]).
type DetachRequest = Option<Option<String>>;

/// [`parse`], also reading the shared `--detach` and `--name` (read from the matches, so that
/// no tool's own arguments need to expose them).
fn parse_detach<A: Parser>(
    tool: &'static str,
    argv: impl IntoIterator<Item = OsString>,
) -> Result<(A, DetachRequest), u8> {
    let argv: Vec<OsString> = argv.into_iter().collect();
    if let Some(kind) = crate::generate::requested(&argv) {
        return Err(crate::generate::print(A::command(), tool, &kind));
    }
    let command = A::command().name(tool).bin_name(tool);
    let parsed = command.try_get_matches_from(argv).and_then(|mut matches| {
        let detach = matches!(matches.try_get_one::<bool>("detach"), Ok(Some(true)));
        let name = matches
            .try_get_one::<String>("name")
            .ok()
            .flatten()
            .cloned();
        let args = A::from_arg_matches_mut(&mut matches)?;
        Ok((args, detach.then_some(name)))
    });
    match parsed {
        Ok(parsed) => Ok(parsed),
        Err(error) if !error.use_stderr() => {
            // --help and --version: to stdout, status 0.
            let _ = error.print();
            Err(0)
        }
        Err(error) => {
            let rendered = error.render().to_string();
            // The message is the first paragraph (clap lists missing arguments on the
            // lines below the first); keep it on one line.
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = message.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("{tool}: fatal: {message}");
            // One hint: clap's suggestion of a similar option when it has one. Not its
            // "to pass '--x' as a value, use '-- --x'": after `--` comes the next program.
            let tip = rendered
                .lines()
                .filter_map(|l| l.trim().strip_prefix("tip: "))
                .find(|tip| !tip.starts_with("to pass "));
            match tip {
                Some(tip) => report::hint_line(tip),
                None => report::hint_line(format!("see '{tool} --help'")),
            }
            Err(exit::FAILURE)
        }
    }
}
