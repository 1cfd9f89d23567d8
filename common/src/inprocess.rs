//! The in-process hand-off (DESIGN.md §1, "Exec the next"): when the next link is this very
//! program, the multi-call binary `nschain` runs it in the same process instead of an
//! execve, after leaving exactly the state an exec would have left.
//!
//! The next link runs in process only when all of these hold, otherwise it is a real exec:
//! - `NSCHAIN_EXEC_LINKS` is not `1`, and the link did not ask for a real exec
//!   ([`crate::Context::exec_for_real`]: userns when execve would change its capabilities,
//!   mntns changes the root or the credentials, timens's clocks take effect at exec; pidns's
//!   container process, a fork that returns no `Next`, asks through [`run_forked`]);
//! - the next link is not one that makes processes of this memory not dumpable (pidns's
//!   init, mntns and its layer cleaner) while the user namespace differs from the one of
//!   the last execve ([`NOT_DUMPABLE_LINKS`]);
//! - COMMAND's first word resolves through `PATH`, in the current root, to the same file
//!   (device and inode) as `/proc/self/exe`, and its name (or the word after `nschain`) is a
//!   link of the table ([`Links`]): a user's own `netns` earlier in PATH is still exec'd;
//! - the file is not set-user-ID or set-group-ID and has no file capabilities, this process
//!   has one thread, no seccomp filter, no securebits, equal real/effective/saved ids, and
//!   the capabilities execve would compute are a subset of the ones it holds now.
//!
//! What exec does, done here (`Plan::apply`): close every close-on-exec fd, reset every
//! caught signal to its default (the mask and ignored signals stay, as across execve; SIGPIPE
//! ignored, SIGSEGV/SIGBUS left to the Rust runtime, as a fresh start of any link sets them),
//! clear `PR_SET_KEEPCAPS`, make the process dumpable, set the capabilities execve computes,
//! name the process after the link (`comm`) and make `/proc/PID/cmdline` and `environ` the
//! link's own argv and environment (`PR_SET_MM_MAP`, which needs no privilege).

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::Status;
use crate::handdown::Handdown;
use crate::handoff::Context;
use std::sync::OnceLock;

mod exec_state;
use crate::{debug, exit, handdown, report};
pub use exec_state::CapSets;

/// The variable that forces a real exec at every link.
pub const EXEC_LINKS_VAR: &str = "NSCHAIN_EXEC_LINKS";
/// The name of the multi-call binary: `nschain TOOL ARGS...` runs TOOL.
pub const MULTI_CALL: &str = "nschain";

/// How one link of the multi-call binary ended.
#[derive(Debug)]
pub enum Outcome {
    /// The process exits with this status (a failed link, `pidns`'s monitor, `nsps`).
    Exit(Status),
    /// The next link runs in this process.
    Continue(Handoff),
}

/// What the next link of an in-process hand-off starts with.
#[derive(Debug)]
pub struct Handoff {
    /// Its argv, as exec would have given it.
    pub argv: Vec<OsString>,
    /// What the earlier links hand it.
    pub handdown: Handdown,
    /// The earlier links' registrations, not yet written (`common::chain::flush`).
    pub registrations: Vec<(String, crate::info::Record)>,
}

/// A tool's entry in the multi-call table: its argv (`argv[0]` is its name), what the earlier
/// links hand it, and the table.
pub type Entry = fn(Handoff, &'static Links) -> Outcome;

/// The tools a multi-call binary holds, by name.
#[derive(Debug)]
pub struct Links {
    /// `(name, entry)` for each tool.
    pub entries: &'static [(&'static str, Entry)],
}

impl Links {
    fn entry(&self, name: &OsStr) -> Option<(&'static str, Entry)> {
        self.entries
            .iter()
            .find(|(n, _)| OsStr::new(n) == name)
            .copied()
    }

    /// The tool an argv runs: its `argv[0]`'s file name, or the next word after `nschain`.
    /// Returns the tool's name, entry and its own argv.
    pub fn select(
        &self,
        argv: Vec<OsString>,
    ) -> Result<(&'static str, Entry, Vec<OsString>), String> {
        let base = argv
            .first()
            .and_then(|a| Path::new(a).file_name())
            .map(OsStr::to_os_string)
            .unwrap_or_else(|| MULTI_CALL.into());
        let argv = if base == MULTI_CALL {
            argv.into_iter().skip(1).collect::<Vec<_>>()
        } else {
            argv
        };
        let name = argv
            .first()
            .and_then(|a| Path::new(a).file_name())
            .map(OsStr::to_os_string);
        let Some(name) = name else {
            return Err(format!(
                "which tool? {MULTI_CALL} TOOL [ARG]... ({})",
                self.names()
            ));
        };
        match self.entry(&name) {
            Some((tool, entry)) => Ok((tool, entry, argv)),
            None => Err(format!(
                "unknown tool '{}' (one of {})",
                name.to_string_lossy(),
                self.names()
            )),
        }
    }

    /// The tools' names, comma-separated (for messages and `nschain --help`).
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.entries.iter().map(|(n, _)| *n).collect();
        names.join(", ")
    }
}

/// The multi-call binary's `main`: runs the tool argv names, then each link that is handed
/// off in this process, until one execs for real or exits.
pub fn dispatch(links: &'static Links) -> ExitCode {
    let _ = EXEC_USERNS.set(userns_inode());
    let first = Handoff {
        argv: std::env::args_os().collect(),
        handdown: Handdown::from_env(),
        registrations: Vec::new(),
    };
    ExitCode::from(run(first, links))
}

/// Runs the link `next.argv` names, then each link handed off in this process, until one
/// execs for real or exits: returns the status to exit with.
fn run(mut next: Handoff, links: &'static Links) -> Status {
    loop {
        let (_, entry, own) = match links.select(next.argv) {
            Ok(selected) => selected,
            Err(message) => {
                eprintln!("{}: fatal: {message}", report::tool());
                return exit::FAILURE;
            }
        };
        next.argv = own;
        match entry(next, links) {
            Outcome::Exit(code) => return code,
            Outcome::Continue(handoff) => next = handoff,
        }
    }
}

/// For a forked process that starts the next link itself, where an exec would start it
/// afresh (pidns's container process): when `command` can run in this process, leaves the
/// state an exec would, runs it (and every link it hands off to) and returns the status to
/// exit with; `None` when it must be a real exec. What the link before the fork hands down
/// was exported before the fork ([`Context::export_handdown`]), so the next link takes it
/// from the environment and inherited fds, as after an exec.
pub fn run_forked(command: &[OsString], links: &'static Links) -> Option<Status> {
    let argv = try_hand_off(command, links, &[])?;
    let first = Handoff {
        argv,
        handdown: Handdown::from_env(),
        registrations: Vec::new(),
    };
    Some(run(first, links))
}

/// The links that make processes of this memory not dumpable: pidns's init (a fork that
/// never execs), mntns itself and its layer cleaner. Who may trace a process that is not
/// dumpable, and who owns its `/proc/PID` files, comes from the user namespace its memory
/// was made in, by the last execve (`mm->user_ns`): once this process changed user
/// namespace (userns handed off in process), only a real exec gives these links the
/// namespace an exec would. Rootless, the host user could otherwise not reach the init's
/// `/proc/PID/ns` (nsps), and the container would see its /proc/1 owned by nobody.
pub const NOT_DUMPABLE_LINKS: [&str; 2] = ["pidns", "mntns"];

/// The user namespace this process was in at its last execve (set by [`dispatch`]).
static EXEC_USERNS: OnceLock<u64> = OnceLock::new();

fn userns_inode() -> u64 {
    std::fs::metadata("/proc/self/ns/user").map_or(0, |m| m.ino())
}

/// `Ok` when execve would leave this process's capabilities exactly as they are
/// ([`CapSets::after_execve`]): a link that changed its credentials (userns) may then hand
/// off in process. `Err` says what would change.
pub fn execve_keeps_capabilities() -> Result<(), String> {
    let status = exec_state::own_status()?;
    exec_state::single_threaded_without_seccomp(&status)?;
    let now = CapSets::current(&status)?;
    let after = now.after_execve(nix::unistd::geteuid().is_root());
    match after == now {
        true => Ok(()),
        false => Err(format!(
            "execve would change the capabilities from {now:x?} to {after:x?}"
        )),
    }
}

/// Whether `NSCHAIN_EXEC_LINKS=1` forces a real exec at every link.
pub fn exec_links_forced() -> bool {
    std::env::var_os(EXEC_LINKS_VAR).is_some_and(|v| v == "1")
}

/// Called by the hand-off before a real exec of `command`: when the next link can run in
/// this process, leaves the state an exec would and returns the argv to continue with.
/// `keep`: the fds handed to the next link, which stay open.
pub(crate) fn hand_off(
    command: &[OsString],
    cx: &Context,
    keep: &[std::os::fd::RawFd],
) -> Option<Vec<OsString>> {
    let links = cx.links()?;
    if let Some(why) = cx.real_exec_reason() {
        if !exec_links_forced() {
            debug::note(format_args!("real exec: {why}"));
        }
        return None;
    }
    try_hand_off(command, links, keep)
}

/// The checks and the state of [`hand_off`], for a link that may hand off in process.
fn try_hand_off(
    command: &[OsString],
    links: &Links,
    keep: &[std::os::fd::RawFd],
) -> Option<Vec<OsString>> {
    if exec_links_forced() {
        return None;
    }
    let plan = match Plan::check(command, links) {
        Ok(plan) => plan,
        Err(why) => {
            debug::note(format_args!("real exec: {why}"));
            return None;
        }
    };
    match debug::step("hand off in process", || plan.apply(keep)) {
        Ok(()) => Some(command.to_vec()),
        // Every step so far is one the exec does too: exec for real.
        Err(why) => {
            debug::note(format_args!("real exec: {why}"));
            None
        }
    }
}

/// What the in-process hand-off will set, once checked.
struct Plan {
    argv: Vec<OsString>,
    comm: CString,
    caps: exec_state::ExecCaps,
    /// The signals caught now (`SigCgt`), which the hand-off resets.
    caught: u64,
}

impl Plan {
    fn check(command: &[OsString], links: &Links) -> Result<Plan, String> {
        let program = command.first().ok_or("no command")?;
        let name = link_name(command).ok_or("COMMAND is not a link")?;
        if !handdown::LINKS.iter().any(|l| OsStr::new(l) == name) || links.entry(name).is_none() {
            return Err(format!("{} is not a link", name.to_string_lossy()));
        }
        if NOT_DUMPABLE_LINKS.iter().any(|l| OsStr::new(l) == name)
            && !crate::link_trace::Knobs::read().skip("exec-after-userns")
            && EXEC_USERNS
                .get()
                .is_some_and(|&at_exec| at_exec != userns_inode())
        {
            return Err(format!(
                "{} makes processes that are not dumpable, and the user namespace changed \
                 since the last exec (their tracers and /proc owner come from it)",
                name.to_string_lossy()
            ));
        }
        let (path, file) = resolve(program).ok_or("COMMAND not found in PATH")?;
        if (file.dev(), file.ino()) != own_exe()? {
            return Err(format!("{} is another program", path.display()));
        }
        if file.mode() & (libc::S_ISUID | libc::S_ISGID) != 0 {
            return Err("the program is set-user-ID or set-group-ID".into());
        }
        if exec_state::has_file_caps(&path) {
            return Err("the program has file capabilities".into());
        }
        if !exec_state::readable(&path) {
            return Err(
                "the program is not readable (exec would make the process undumpable)".into(),
            );
        }
        let status = exec_state::own_status()?;
        exec_state::single_threaded_without_seccomp(&status)?;
        let caps = exec_state::ExecCaps::compute(&status)?;
        let caught = exec_state::caught_signals(&status)?;
        let base = Path::new(program)
            .file_name()
            .unwrap_or(program)
            .as_bytes()
            .iter()
            .take(15)
            .copied()
            .collect::<Vec<u8>>();
        let comm = CString::new(base).map_err(|e| e.to_string())?;
        Ok(Plan {
            argv: command.to_vec(),
            comm,
            caps,
            caught,
        })
    }

    fn apply(&self, keep: &[std::os::fd::RawFd]) -> Result<(), String> {
        let knobs = crate::link_trace::Knobs::read();
        // The next link checks its state directories afresh, as after an exec.
        crate::state::forget_checked_roots();
        if !knobs.skip("close-fds") {
            exec_state::close_cloexec_fds(keep);
        }
        if !knobs.skip("signals") {
            exec_state::reset_signals(self.caught)?;
        }
        if !knobs.skip("keepcaps") {
            nix::sys::prctl::set_keepcaps(false).map_err(|e| format!("keepcaps: {e}"))?;
        }
        if !knobs.skip("dumpable") {
            exec_state::set_dumpable()?;
        }
        self.caps.apply()?;
        nix::sys::prctl::set_name(&self.comm).map_err(|e| format!("comm: {e}"))?;
        exec_state::set_cmdline(&self.argv)?;
        Ok(())
    }
}

/// The device and inode of `/proc/self/exe`: the file this process image was exec'd from,
/// which stays the same until the next execve (and that starts with a new image, and with it
/// a new cache), so it is looked at once, not at every hand-off.
fn own_exe() -> Result<(u64, u64), String> {
    static EXE: OnceLock<(u64, u64)> = OnceLock::new();
    if let Some(id) = EXE.get() {
        return Ok(*id);
    }
    let me = std::fs::metadata("/proc/self/exe").map_err(|e| e.to_string())?;
    Ok(*EXE.get_or_init(|| (me.dev(), me.ino())))
}

/// The link an argv names: its file name, or the word after `nschain`.
fn link_name(command: &[OsString]) -> Option<&OsStr> {
    let base = Path::new(command.first()?).file_name()?;
    if base == MULTI_CALL {
        return Path::new(command.get(1)?).file_name();
    }
    Some(base)
}

/// The file exec would run for `program`, with its metadata: itself if it holds a `/`, else
/// the first executable regular file of that name in `PATH` (execvp's default path when
/// unset).
fn resolve(program: &OsStr) -> Option<(PathBuf, std::fs::Metadata)> {
    if program.as_bytes().contains(&b'/') {
        let path = PathBuf::from(program);
        let file = std::fs::metadata(&path).ok()?;
        return Some((path, file));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    std::env::split_paths(&path).find_map(|dir| {
        let candidate = if dir.as_os_str().is_empty() {
            PathBuf::from(program)
        } else {
            dir.join(program)
        };
        let file = std::fs::metadata(&candidate).ok()?;
        let runnable = file.is_file()
            && file.permissions().mode() & 0o111 != 0
            && nix::unistd::access(candidate.as_path(), nix::unistd::AccessFlags::X_OK).is_ok();
        runnable.then_some((candidate, file))
    })
}

/// Bytes of an argv or environment as the kernel lays them out: each entry NUL-terminated.
pub(crate) fn nul_joined<'a>(items: impl Iterator<Item = &'a OsStr>) -> Vec<u8> {
    let mut bytes = Vec::new();
    for item in items {
        bytes.extend_from_slice(item.as_bytes());
        bytes.push(0);
    }
    bytes
}

/// The current environment as exec passes it (`KEY=VALUE`).
pub(crate) fn environment() -> Vec<OsString> {
    std::env::vars_os()
        .map(|(k, v)| {
            let mut entry = k.into_vec();
            entry.push(b'=');
            entry.extend(v.into_vec());
            OsString::from_vec(entry)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<OsString> {
        w.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_link_is_the_file_name_or_the_word_after_nschain() {
        assert_eq!(
            link_name(&words(&["/usr/bin/netns", "--"])),
            Some(OsStr::new("netns"))
        );
        assert_eq!(
            link_name(&words(&["nschain", "ipcns"])),
            Some(OsStr::new("ipcns"))
        );
        assert_eq!(link_name(&words(&["nschain"])), None);
    }

    fn dummy(_: Handoff, _: &'static Links) -> Outcome {
        Outcome::Exit(0)
    }

    static TABLE: Links = Links {
        entries: &[("utsns", dummy), ("ipcns", dummy)],
    };

    #[test]
    fn select_by_argv0_or_first_word() {
        let (tool, _, argv) = TABLE
            .select(words(&["/x/utsns", "--", "true"]))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((tool, argv.len()), ("utsns", 3));
        let (tool, _, argv) = TABLE
            .select(words(&["nschain", "ipcns", "true"]))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((tool, argv), ("ipcns", words(&["ipcns", "true"])));
        assert!(TABLE.select(words(&["nschain"])).is_err());
        assert!(TABLE.select(words(&["nschain", "sh"])).is_err());
    }

    #[test]
    fn a_bare_name_resolves_through_path_to_an_executable() {
        assert!(resolve(OsStr::new("sh")).is_some());
        assert!(resolve(OsStr::new("no-such-program-here")).is_none());
        assert!(resolve(OsStr::new("./no-such-program-here")).is_none());
        let (path, _) = resolve(OsStr::new("/bin/sh")).unwrap_or_else(|| unreachable!());
        assert_eq!(path, PathBuf::from("/bin/sh"));
    }

    #[test]
    fn argv_is_laid_out_nul_terminated() {
        let argv = words(&["ipcns", "--", "true"]);
        assert_eq!(
            nul_joined(argv.iter().map(OsString::as_os_str)),
            b"ipcns\0--\0true\0"
        );
    }
}
