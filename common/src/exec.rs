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

/// Replaces the process with COMMAND (looked up in `PATH`). std's exec restores SIGPIPE and
/// the signal mask, so the payload starts with default signal handling.
///
/// Returns only on failure: 127 when COMMAND was not found, 126 when it could not be run.
pub fn exec(command: Vec<OsString>) -> Fatal {
    let argv = command_or_shell(command);
    let (program, args) = match argv.split_first() {
        Some(split) => split,
        None => return Fatal::new("no command to run"),
    };
    if !crate::handdown::is_link(program) {
        // COMMAND itself: nothing the chain handed down reaches it.
        crate::handdown::shed_for_payload();
    }
    debug::note(format_args!("exec {}", program.to_string_lossy()));
    let error = Command::new(program).args(args).exec();
    let code = if error.kind() == ErrorKind::NotFound {
        exit::NOT_FOUND
    } else {
        exit::CANNOT_EXECUTE
    };
    Fatal::from(error)
        .context(format!("unable to execute {}", program.to_string_lossy()))
        .with_code(code)
}
