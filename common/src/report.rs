//! `TOOL: fatal|warning|hint: ...` reporting and the error type every tool returns.

use std::fmt::Display;
use std::sync::Mutex;

use crate::exit;

/// The name of the link running in this process. Its source is the link's
/// [`crate::handoff::Context`], which sets it when the link starts; this copy is only what the
/// printers below read, since warnings come from deep inside setup code that has no context.
static TOOL: Mutex<Option<&'static str>> = Mutex::new(None);

/// Records the running link's name for every later message (by [`crate::handoff::Context::new`]).
pub fn set_tool(name: &'static str) {
    let mut tool = TOOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *tool = Some(name);
}

/// The running link's name, as it prefixes every message (`nschain` before any link starts).
pub fn tool() -> &'static str {
    let tool = TOOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tool.unwrap_or("nschain")
}

/// A failure before the exec: the message chain, the exit status and an optional hint.
#[derive(Debug)]
pub struct Fatal {
    /// What failed, with its causes.
    pub error: anyhow::Error,
    /// The exit status (125 unless the contract says otherwise: 126, 127).
    pub code: u8,
    /// One line on what to do about it.
    pub hint: Option<String>,
}

impl Fatal {
    /// A failure with status 125.
    pub fn new(message: impl Display) -> Self {
        Self::from(anyhow::anyhow!("{message}"))
    }

    /// The same failure with another exit status.
    pub fn with_code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }

    /// The same failure with a `TOOL: hint:` line (the first hint given wins: it is the most
    /// specific one).
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        if self.hint.is_none() {
            self.hint = Some(hint.into());
        }
        self
    }

    /// Adds an outer context to the message, as anyhow's `.context()` does.
    pub fn context(mut self, context: impl Display + Send + Sync + 'static) -> Self {
        self.error = self.error.context(context);
        self
    }

    /// The one-line message, errno rendered as plain text.
    pub fn message(&self) -> String {
        plain_errno(&format!("{:#}", self.error))
    }

    /// Prints `TOOL: fatal: ...` (and the hint) to stderr.
    pub fn print(&self) {
        eprintln!("{}: fatal: {}", tool(), self.message());
        if let Some(hint) = &self.hint {
            hint_line(hint);
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Fatal {
    fn from(error: E) -> Self {
        Fatal {
            error: error.into(),
            code: exit::FAILURE,
            hint: None,
        }
    }
}

/// Attaches hints and contexts to a `Result` on its way to a [`Fatal`].
pub trait Hint<T> {
    /// The error as a [`Fatal`] with `hint`.
    fn hint(self, hint: impl Into<String>) -> Result<T, Fatal>;
    /// The error as a [`Fatal`] with `context` before it.
    fn fatal_context(self, context: impl Display + Send + Sync + 'static) -> Result<T, Fatal>;
}

impl<T, E: Into<Fatal>> Hint<T> for Result<T, E> {
    fn hint(self, hint: impl Into<String>) -> Result<T, Fatal> {
        self.map_err(|e| e.into().with_hint(hint))
    }

    fn fatal_context(self, context: impl Display + Send + Sync + 'static) -> Result<T, Fatal> {
        self.map_err(|e| e.into().context(context))
    }
}

/// Prints `TOOL: warning: ...`.
pub fn warning(message: impl Display) {
    eprintln!("{}: warning: {}", tool(), plain_errno(&message.to_string()));
}

/// Prints `TOOL: note: ...`: a choice made for the user that they may want to know.
pub fn note(message: impl Display) {
    eprintln!("{}: note: {message}", tool());
}

/// Prints `TOOL: hint: ...`.
pub fn hint_line(message: impl Display) {
    eprintln!("{}: hint: {message}", tool());
}

/// Renders errno text the way users read it: `Operation not permitted`, not
/// `EPERM: Operation not permitted` (nix) or `Operation not permitted (os error 1)` (std).
pub fn plain_errno(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = strip_os_error(rest) {
            rest = after;
            continue;
        }
        if let Some(after) = strip_errno_name(rest, out.chars().last()) {
            rest = after;
            continue;
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// ` (os error 13)` → removed.
fn strip_os_error(text: &str) -> Option<&str> {
    let after = text.strip_prefix(" (os error ")?;
    let digits = after.bytes().take_while(u8::is_ascii_digit).count();
    after[digits..].strip_prefix(')').filter(|_| digits > 0)
}

/// `EPERM: ` at the start of a word → removed.
fn strip_errno_name(text: &str, before: Option<char>) -> Option<&str> {
    if before.is_some_and(|c| c.is_alphanumeric()) || !text.starts_with('E') {
        return None;
    }
    let name = text
        .bytes()
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        .count();
    if name < 3 {
        return None;
    }
    text[name..].strip_prefix(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_is_rendered_as_plain_text() {
        assert_eq!(
            plain_errno("unable to mount proc: EPERM: Operation not permitted"),
            "unable to mount proc: Operation not permitted"
        );
        assert_eq!(
            plain_errno("unable to open x: No such file or directory (os error 2)"),
            "unable to open x: No such file or directory"
        );
        assert_eq!(plain_errno("EXDEV stays EXDEV"), "EXDEV stays EXDEV");
        assert_eq!(plain_errno("CLONE_NEWUTS: EINVAL: x"), "CLONE_NEWUTS: x");
    }

    #[test]
    fn the_first_hint_wins() {
        let fatal = Fatal::new("x").with_hint("specific").with_hint("generic");
        assert_eq!(fatal.hint.as_deref(), Some("specific"));
        assert_eq!(fatal.code, exit::FAILURE);
    }
}
