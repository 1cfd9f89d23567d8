//! The hand-off: what happens after a link, and the one place it happens (DESIGN.md §1).
//!
//! A tool's entry is `run(args, cx) -> Result<Next, Fatal>`: it sets up its namespace and
//! says what comes next, [`Next::Exec`] (the rest of its argv: the next link or COMMAND) or
//! [`Next::Exit`] (a status: `pidns`'s monitor, `nsps`, `netns gc`). Only [`perform`] carries
//! that out, so every link ends the same way.
//!
//! The [`Context`] is what a link knows of itself beyond its arguments: its name (the message
//! prefix, the debug trace and the `tool` of its chain registration come from it) and what it
//! keeps alive until the exec ([`Context::hold`]): values whose owner is the hand-off itself,
//! released by a failed exec and never by a successful one.

use std::any::Any;
use std::ffi::OsString;

use crate::cli::Status;
use crate::handdown::{self, Handdown};
use crate::inprocess::{self, Handoff, Links, Outcome};
use crate::{chain, exec, exit, report, Fatal};

/// What happens after this link.
#[derive(Debug)]
pub enum Next {
    /// Run the rest of argv (empty: `$SHELL`, else `/bin/sh`): the next link or COMMAND.
    Exec(Vec<OsString>),
    /// Exit with this status.
    Exit(Status),
}

/// What a link knows of itself besides its arguments, and what it hands on.
pub struct Context {
    tool: &'static str,
    not_found_hint: Option<String>,
    argv0: Option<OsString>,
    held: Vec<Box<dyn Any>>,
    links: Option<&'static Links>,
    real_exec: Option<&'static str>,
    register_at_once: bool,
    handdown: Handdown,
    registrations: chain::Pending,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("tool", &self.tool)
            .field("held", &self.held.len())
            .field("real_exec", &self.real_exec)
            .finish()
    }
}

impl Context {
    /// The context of link `tool` starting in this process. Its name becomes the prefix of
    /// every message printed from here on.
    pub fn new(tool: &'static str) -> Context {
        report::set_tool(tool);
        Context {
            tool,
            not_found_hint: None,
            argv0: None,
            held: Vec::new(),
            links: None,
            real_exec: None,
            register_at_once: false,
            handdown: Handdown::default(),
            registrations: chain::Pending::default(),
        }
    }

    /// The list a link's registration goes to when the chain registers once: in the
    /// multi-call binary, unless every link execs (`NSCHAIN_EXEC_LINKS=1`). The records are
    /// written before the process execs, forks the container or exits; an in-process
    /// hand-off carries them to the next link.
    pub fn deferred_registrations(&self) -> Option<chain::Pending> {
        (self.links.is_some() && !self.register_at_once && !inprocess::exec_links_forced())
            .then(|| self.registrations.clone())
    }

    /// Writes the registrations the chain deferred ([`Context::deferred_registrations`]).
    pub fn register_now(&self) -> Result<(), Fatal> {
        chain::flush(&self.registrations)
    }

    /// The context of link `tool`, given what the earlier links handed down.
    pub fn with_handdown(tool: &'static str, handdown: Handdown) -> Context {
        let mut cx = Context::new(tool);
        cx.handdown = handdown;
        cx
    }

    /// What the earlier links handed down, and what this link hands on (its owner is this
    /// context: taken by a consumer, written at a real exec, moved on by an in-process one).
    pub fn handdown(&mut self) -> &mut Handdown {
        &mut self.handdown
    }

    /// For a child that will exec the next link itself (pidns's container process): writes
    /// the hand-downs to the environment now, fds inherited.
    pub fn export_handdown(&self) -> Result<(), Fatal> {
        self.register_now()?;
        self.handdown
            .export()
            .map_err(|e| Fatal::from(e).context("unable to hand down to the container"))
    }

    /// The context of a link of the multi-call binary, whose next link may run in this
    /// process ([`crate::inprocess`]).
    pub fn in_multi_call(tool: &'static str, handoff: Handoff, links: &'static Links) -> Context {
        let mut cx = Context::with_handdown(tool, handoff.handdown);
        *cx.registrations.borrow_mut() = handoff.registrations;
        cx.links = Some(links);
        cx
    }

    /// The multi-call table, if this link runs in the multi-call binary.
    pub fn links(&self) -> Option<&'static Links> {
        self.links
    }

    /// Registers this link at once, and first what the earlier links deferred: called by a
    /// link before it changes its credentials (userns), so that every record is written
    /// with the privileges it was made with.
    pub fn register_at_once(&mut self) -> Result<(), Fatal> {
        self.register_at_once = true;
        self.register_now()
    }

    /// Asks for a real exec of the next program, because of `why`: this link will leave a
    /// state an in-process hand-off cannot give the next one as an exec would (a new root).
    /// Registers at once ([`Context::register_at_once`]).
    pub fn exec_for_real(&mut self, why: &'static str) -> Result<(), Fatal> {
        self.real_exec = Some(why);
        self.register_at_once()
    }

    /// Why this link must exec for real, if it asked to.
    pub fn real_exec_reason(&self) -> Option<&'static str> {
        self.real_exec
    }

    /// The link's name: `mntns`, `pidns`, ...
    pub fn tool(&self) -> &'static str {
        self.tool
    }

    /// The hint given if [`Next::Exec`] fails because the program is not found (127).
    pub fn hint_if_not_found(&mut self, hint: impl Into<String>) {
        self.not_found_hint = Some(hint.into());
    }

    /// The `argv[0]` COMMAND gets when [`Next::Exec`] execs it (default: its program), as
    /// `exec -a` does (mntns `--argv0`: an OCI hook's `args[0]`).
    pub fn set_argv0(&mut self, argv0: OsString) {
        self.argv0 = Some(argv0);
    }

    /// Keeps `value` alive until the exec: what the next program inherits (an fd named in a
    /// variable, a lease the chain keeps) must outlive this link's `run`. A failed exec drops
    /// it (its `Drop` undoes what the link made); a successful one never does.
    pub fn hold<T: Any>(&mut self, value: T) {
        self.held.push(Box::new(value));
    }
}

/// Carries out `next`: hands off to the next link in this process ([`crate::inprocess`]),
/// execs (returning only on failure, as a [`Fatal`] with 126 or 127), or gives the status
/// to exit with.
pub fn perform(next: Next, cx: &mut Context) -> Result<Outcome, Fatal> {
    match next {
        Next::Exit(status) => {
            cx.register_now()?;
            Ok(Outcome::Exit(status))
        }
        Next::Exec(command) => {
            crate::link_trace::plant();
            let command = exec::command_or_shell(command);
            if let Some(argv) = inprocess::hand_off(&command, cx, &cx.handdown.fds()) {
                // As across an exec: what was held for the next link is never dropped (its
                // fds stay open, its registrations stay), and nothing else of this link is.
                for value in std::mem::take(&mut cx.held) {
                    std::mem::forget(value);
                }
                let handdown = std::mem::take(&mut cx.handdown);
                let registrations = std::mem::take(&mut *cx.registrations.borrow_mut());
                return Ok(Outcome::Continue(Handoff {
                    argv,
                    handdown,
                    registrations,
                }));
            }
            cx.register_now()?;
            let to_a_link = command.first().is_some_and(|p| handdown::is_link(p));
            if to_a_link {
                cx.handdown.export().map_err(|e| {
                    Fatal::from(e).context("unable to hand the next link what it is handed")
                })?;
            } else {
                cx.handdown.shed();
            }
            let error = exec::exec_as(command, cx.argv0.take());
            // The exec failed: what was held for the next program is released (undone).
            cx.held.clear();
            match cx.not_found_hint.take() {
                Some(hint) if error.code == exit::NOT_FOUND => Err(error.with_hint(hint)),
                _ => Err(error),
            }
        }
    }
}

/// For a forked process that starts the next program itself (pidns's container process:
/// its link returned no [`Next`] on this side of the fork, and exported its hand-downs
/// before it, [`Context::export_handdown`]). The next link runs in this process when it can
/// ([`inprocess::run_forked`], the same checks and steps as [`perform`]'s hand-off); the
/// process then exits with the chain's status. Otherwise `command` is exec'd. Returns only
/// when that exec failed.
pub fn exec_forked(command: Vec<OsString>, links: Option<&'static Links>) -> Fatal {
    crate::link_trace::plant();
    let command = exec::command_or_shell(command);
    // As after an exec, nothing of the link before runs again: no destructor of the frames
    // below, not even when a later link panics (the status of a panic, 101, as if exec'd).
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        links.and_then(|links| inprocess::run_forked(&command, links))
    }));
    let status = match ran {
        Ok(Some(status)) => status,
        Ok(None) => return exec::exec(command),
        Err(_) => 101,
    };
    // What the links printed is all that runs at this exit (std's end of `main` does this).
    let _ = std::io::Write::flush(&mut std::io::stdout());
    crate::sys::process::exit_group(status.into())
}

/// Runs one link to its end: `run`, then [`perform`]; a failure is printed as the contract's
/// one line and becomes the exit status.
pub fn finish(result: Result<Next, Fatal>, cx: &mut Context) -> Outcome {
    match result.and_then(|next| perform(next, cx)) {
        Ok(outcome) => outcome,
        Err(fatal) => {
            fatal.print();
            Outcome::Exit(fatal.code)
        }
    }
}
