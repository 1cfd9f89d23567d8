//! The last step of every link: exec the rest of argv.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::{debug, exit, Fatal};

/// The command to run: the given one, else `$SHELL`, else `/bin/sh`.
pub fn command_or_shell(command: Vec<OsString>) -> Vec<OsString> {
    if !command.is_empty() {
        return command;
    }
    let shell = std::env::var_os("SHELL")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".into());
    vec![shell]
}

/// Replaces the process with COMMAND (looked up in `PATH`). std's exec resets SIGPIPE to its
/// default, but it does NOT restore the signal mask (measured with Rust 1.95): a link that
/// blocks signals (pidns) restores the caller's mask and dispositions itself before this.
///
/// Returns only on failure: 127 when COMMAND was not found, 126 when it could not be run.
pub fn exec(command: Vec<OsString>) -> Fatal {
    exec_as(command, None)
}

/// [`exec`], with `argv0` as COMMAND's `argv[0]` instead of its program (`exec -a`).
pub fn exec_as(command: Vec<OsString>, argv0: Option<OsString>) -> Fatal {
    let argv = command_or_shell(command);
    let (program, args) = match argv.split_first() {
        Some(split) => split,
        None => return Fatal::new("no command to run"),
    };
    let mut exec_mark = None;
    if !crate::handdown::is_link(program) {
        // A detached chain's supervisor learns from this mark whether COMMAND was exec'd.
        exec_mark = crate::supervisor::payload_exec_mark();
        // COMMAND itself: nothing the chain handed down reaches it.
        crate::handdown::shed_for_payload();
    }
    debug::note(format_args!("exec {}", program.to_string_lossy()));
    let mut cmd = Command::new(program);
    if let Some(argv0) = argv0 {
        cmd.arg0(argv0);
    }
    let error = cmd.args(args).exec();
    if let Some(mark) = exec_mark {
        crate::supervisor::payload_exec_failed(mark);
    }
    let code = if error.kind() == ErrorKind::NotFound {
        exit::NOT_FOUND
    } else {
        exit::CANNOT_EXECUTE
    };
    Fatal::from(error)
        .context(format!("unable to execute {}", program.to_string_lossy()))
        .with_code(code)
}
