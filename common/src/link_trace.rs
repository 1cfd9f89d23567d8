//! Debugging the hand-off between links (tests/tests/handoff.rs uses both):
//!
//! - `NSCHAIN_DEBUG_LINKS=DIR`: every link, as it starts, writes what it was handed to
//!   `DIR/NN-TOOL` (NN counts the links): its open fds, signal mask and dispositions,
//!   capabilities, no_new_privs, seccomp, keepcaps, dumpable, `comm` and `cmdline`. The same
//!   chain must leave the same files whether each link was exec'd or run in process.
//! - `NSCHAIN_DEBUG_HANDOFF=plant[,skip-STEP...]`: `plant` makes every link leave, right
//!   before its hand-off, what an exec must undo (a close-on-exec fd, keepcaps set, not
//!   dumpable, a caught SIGUSR2); `skip-close-fds`, `skip-signals`, `skip-keepcaps`,
//!   `skip-dumpable` switch that step of the in-process hand-off off, and
//!   `skip-exec-after-userns` the real exec of pidns or mntns after a user namespace changed
//!   in process ([`crate::inprocess::NOT_DUMPABLE_LINKS`]), so that a test can show the
//!   comparison catches it.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// The directory variable of the per-link trace.
pub const LINKS_VAR: &str = "NSCHAIN_DEBUG_LINKS";
/// The variable of the hand-off knobs.
pub const HANDOFF_VAR: &str = "NSCHAIN_DEBUG_HANDOFF";

/// The hand-off knobs of `NSCHAIN_DEBUG_HANDOFF`.
#[derive(Debug, Default)]
pub struct Knobs(Vec<String>);

impl Knobs {
    /// Reads the variable.
    pub fn read() -> Knobs {
        let value = std::env::var(HANDOFF_VAR).unwrap_or_default();
        Knobs(
            value
                .split(',')
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Whether the in-process step `step` is switched off.
    pub fn skip(&self, step: &str) -> bool {
        self.0.iter().any(|w| w.strip_prefix("skip-") == Some(step))
    }

    fn plant(&self) -> bool {
        self.0.iter().any(|w| w == "plant")
    }
}

extern "C" fn ignore(_: libc::c_int) {}

/// Before a hand-off with `plant`: leaves what an exec must undo.
pub fn plant() {
    if !Knobs::read().plant() {
        return;
    }
    if let Ok(fd) = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) {
        // Deliberately left open: the hand-off must close it.
        let _ = fd;
    }
    let _ = nix::sys::prctl::set_keepcaps(true);
    let _ = nix::sys::prctl::set_dumpable(false);
    let handler = ignore as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: installs a handler that does nothing; it only has to be seen as caught.
    unsafe { libc::signal(libc::SIGUSR2, handler) };
}

/// At the start of link `tool`: writes its trace when `NSCHAIN_DEBUG_LINKS` names a directory.
pub fn record(tool: &str) {
    let Some(dir) = std::env::var_os(LINKS_VAR).filter(|d| !d.is_empty()) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let text = snapshot();
    let n = fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    let _ = fs::write(dir.join(format!("{n:02}-{tool}")), text);
}

/// What this process holds now, one `key: value` a line.
pub fn snapshot() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "fds: {}", open_fds().join(" "));
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    for key in [
        "SigBlk",
        "SigIgn",
        "SigCgt",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
    ] {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .unwrap_or("")
            .trim();
        let _ = writeln!(out, "{key}: {value}");
    }
    let keepcaps = nix::sys::prctl::get_keepcaps().map(|k| k as u8);
    let _ = writeln!(out, "keepcaps: {keepcaps:?}");
    let _ = writeln!(out, "dumpable: {:?}", nix::sys::prctl::get_dumpable());
    let comm = fs::read_to_string("/proc/self/comm").unwrap_or_default();
    let _ = writeln!(out, "comm: {}", comm.trim());
    let cmdline = fs::read("/proc/self/cmdline").unwrap_or_default();
    let _ = writeln!(
        out,
        "cmdline: {}",
        String::from_utf8_lossy(&cmdline).replace('\0', " ")
    );
    out
}

/// Open fds with what they are, without inode numbers (which differ from run to run); the
/// one reading /proc/self/fd is left out.
fn open_fds() -> Vec<String> {
    let Ok(entries) = fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut fds: Vec<(i32, String)> = entries
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(e.path()).ok()?;
            Some((fd, kind(&target)))
        })
        .filter(|(_, kind)| !kind.starts_with("/proc/") || !kind.ends_with("/fd"))
        .collect();
    fds.sort();
    fds.into_iter().map(|(fd, k)| format!("{fd}={k}")).collect()
}

fn kind(target: &Path) -> String {
    let text = target.display().to_string();
    match text.split_once(":[") {
        Some((kind, _)) => kind.to_owned(),
        None => text,
    }
}
