//! Seccomp profiles: which system calls a container may make (`mntns --seccomp`, the OCI
//! runtime's `linux.seccomp`).
//!
//! A profile is the OCI JSON (also Docker's and podman's files) ([`Profile`]), compiled here
//! to BPF by our own small compiler ([`compile`]) rather than through libseccomp: the binary
//! stays static and free of C, the program is one we can read and test instruction by
//! instruction, and the rules a profile can state (names, six argument comparisons, actions,
//! flags) compile to a straight list of checks. A container in mntns's container mode gets
//! the default profile ([`default_profile`], Docker's policy) unless `--seccomp unconfined`.
//!
//! This sits beside `common::seccomp`, the terminal-injection filter every container gets
//! whatever its profile: the kernel runs both and the stricter answer wins.

mod compile;
mod default;
mod profile;
mod table;

use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr;

pub use compile::{compile, Compiled, Conditions};
pub use default::profile as default_profile;
pub use profile::{Action, ArgCondition, Filter, Op, Profile, Rule};

use crate::{debug, Fatal};

/// What `--seccomp` chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The default profile (Docker's policy).
    Default,
    /// No profile (the terminal-injection filter stays).
    Unconfined,
    /// A profile file (OCI or Docker JSON), read when the flag is parsed.
    File(PathBuf),
}

impl FromStr for Choice {
    type Err = String;

    /// `default`, `unconfined`, or a path to a profile, which must parse.
    fn from_str(text: &str) -> Result<Choice, String> {
        match text {
            "default" => Ok(Choice::Default),
            "unconfined" => Ok(Choice::Unconfined),
            "" => Err("expected default, unconfined or a profile file".into()),
            path => {
                let path = PathBuf::from(path);
                let profile = Profile::load(&path)?;
                // Checked now, so that a bad profile is a usage error before anything runs.
                compile(&profile, &Conditions::default())?;
                Ok(Choice::File(std::fs::canonicalize(&path).unwrap_or(path)))
            }
        }
    }
}

impl Choice {
    /// How the registration shows it (so that `nsps exec` applies the same).
    pub fn describe(&self) -> String {
        match self {
            Choice::Default => "default".into(),
            Choice::Unconfined => "unconfined".into(),
            Choice::File(path) => path.to_string_lossy().into_owned(),
        }
    }
}

/// The key under which mntns records the profile of its container in the registration.
pub const RECORD_KEY: &str = "seccomp_profile";

/// The profile a registration's extra fields record (a container made before profiles
/// existed, or by mntns without a new root, has none).
pub fn recorded(extra: &serde_json::Map<String, serde_json::Value>) -> Option<Choice> {
    let text = extra.get(RECORD_KEY)?.as_str()?;
    match text {
        "default" => Some(Choice::Default),
        "unconfined" => Some(Choice::Unconfined),
        path => Some(Choice::File(PathBuf::from(path))),
    }
}

/// The number of system call `name` on this machine.
pub fn syscall_number(name: &str) -> Option<u32> {
    table::X86_64
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, nr)| *nr)
}

/// The highest number the table knows.
pub fn highest_number() -> u32 {
    table::X86_64.iter().map(|(_, nr)| *nr).max().unwrap_or(0)
}

fn running_kernel() -> (u32, u32) {
    let Ok(uname) = nix::sys::utsname::uname() else {
        return (0, 0);
    };
    let release = uname.release().to_string_lossy().into_owned();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Compiles the chosen profile for a process that will hold `caps` (`CAP_*` names).
pub fn build(choice: &Choice, caps: HashSet<String>) -> Result<Option<Compiled>, Fatal> {
    let (profile, unknown_errno) = match choice {
        Choice::Unconfined => return Ok(None),
        Choice::Default => (default_profile(), Some(libc::ENOSYS as u32)),
        Choice::File(path) => (Profile::load(path).map_err(Fatal::new)?, None),
    };
    let when = Conditions {
        caps,
        kernel: running_kernel(),
        unknown_errno,
    };
    let compiled = compile(&profile, &when)
        .map_err(|e| Fatal::new(format!("seccomp profile {}: {e}", choice.describe())))?;
    if !compiled.unknown_names.is_empty() {
        debug::note(format_args!(
            "seccomp: names not known here, skipped: {}",
            compiled.unknown_names.join(" ")
        ));
    }
    Ok(Some(compiled))
}

/// Installs a compiled profile for this process and what it executes. Needs CAP_SYS_ADMIN
/// in the current user namespace or no_new_privs.
pub fn install(compiled: &Compiled, what: &str) -> Result<(), Fatal> {
    debug::step(format_args!("seccomp: {what}"), || {
        crate::sys::bpf::install_seccomp_with_flags(&compiled.program, compiled.flags.into())
    })
    .map_err(|e| Fatal::from(e).context(format!("unable to install the seccomp profile {what}")))
}

#[cfg(test)]
mod tests;
