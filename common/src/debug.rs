//! `NSCHAIN_DEBUG=1`: every link prints each step it takes, with its duration, to stderr, so a
//! user can see which link of a long chain misbehaves or is slow. Times are read from the
//! realtime clock: a time namespace (timens) shifts the monotonic one under a running link.

use std::fmt::Display;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::report::tool;

static START: OnceLock<Option<SystemTime>> = OnceLock::new();

/// Reads `NSCHAIN_DEBUG` once, at the start of the tool.
pub fn start() {
    START.get_or_init(|| {
        std::env::var_os("NSCHAIN_DEBUG")
            .filter(|v| !v.is_empty() && v != "0")
            .map(|_| SystemTime::now())
    });
}

/// Whether steps are being traced.
pub fn enabled() -> bool {
    matches!(START.get(), Some(Some(_)))
}

/// Runs one setup step, tracing its name and duration when debugging.
pub fn step<T>(what: impl Display, f: impl FnOnce() -> T) -> T {
    if !enabled() {
        return f();
    }
    let begin = SystemTime::now();
    let result = f();
    let micros = begin.elapsed().unwrap_or_default().as_micros();
    say(format_args!(
        "{}[{}]: debug: {what} ({}.{:03} ms)",
        tool(),
        std::process::id(),
        micros / 1000,
        micros % 1000
    ));
    result
}

/// Prints one trace line in one write: the processes of a chain (pidns's monitor, its
/// container) trace to the same stderr at once, and a line written in pieces interleaves.
fn say(line: std::fmt::Arguments<'_>) {
    let line = format!("{line}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

/// Traces a single event with the time since the tool started.
pub fn note(what: impl Display) {
    if let Some(Some(start)) = START.get() {
        let micros = start.elapsed().unwrap_or_default().as_micros();
        say(format_args!(
            "{}[{}]: debug: {what} (at {}.{:03} ms)",
            tool(),
            std::process::id(),
            micros / 1000,
            micros % 1000
        ));
    }
}
