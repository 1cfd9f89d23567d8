//! A seccomp profile as users write it: the OCI runtime spec's `linux.seccomp` object, which
//! is also what `docker run --security-opt seccomp=FILE` and podman take (their extra keys,
//! `includes`/`excludes` by capability and architecture and the older single `name`, are
//! understood too). Parsing only: [`super::compile`] turns it into BPF.

use std::path::Path;

use serde::Deserialize;

/// `linux.seccomp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// What a system call no rule names gets.
    pub default_action: Action,
    /// The errno of a default `SCMP_ACT_ERRNO` (EPERM if absent).
    #[serde(default, deserialize_with = "null_is_default")]
    pub default_errno_ret: Option<u32>,
    /// `SCMP_ARCH_*` names; empty means the native one.
    #[serde(default, deserialize_with = "null_is_default")]
    pub architectures: Vec<String>,
    /// `SECCOMP_FILTER_FLAG_*` names.
    #[serde(default, deserialize_with = "null_is_default")]
    pub flags: Vec<String>,
    /// A seccomp notify listener (`SCMP_ACT_NOTIFY`); not supported.
    #[serde(default, deserialize_with = "null_is_default")]
    pub listener_path: Option<String>,
    /// The rules, first match wins.
    #[serde(default, deserialize_with = "null_is_default")]
    pub syscalls: Vec<Rule>,
}

/// One rule: these system calls, with these argument conditions (all must hold), get `action`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The system calls by name.
    #[serde(default, deserialize_with = "null_is_default")]
    pub names: Vec<String>,
    /// Docker's older form: one name.
    #[serde(default, deserialize_with = "null_is_default")]
    pub name: Option<String>,
    /// What they get.
    pub action: Action,
    /// The errno of `SCMP_ACT_ERRNO` (the profile's default errno, else EPERM, if absent),
    /// or the value of `SCMP_ACT_TRACE`.
    #[serde(default, deserialize_with = "null_is_default")]
    pub errno_ret: Option<u32>,
    /// Conditions on the arguments.
    #[serde(default, deserialize_with = "null_is_default")]
    pub args: Vec<ArgCondition>,
    /// Docker's and podman's condition: the rule applies only if these hold.
    #[serde(default, deserialize_with = "null_is_default")]
    pub includes: Filter,
    /// ... and only if these do not.
    #[serde(default, deserialize_with = "null_is_default")]
    pub excludes: Filter,
}

/// Docker's `includes`/`excludes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Capabilities (`CAP_SYS_ADMIN`), all held / none held.
    #[serde(default, deserialize_with = "null_is_default")]
    pub caps: Vec<String>,
    /// Architectures (`amd64`, `x86_64`, `arm64`, ...).
    #[serde(default, deserialize_with = "null_is_default")]
    pub arches: Vec<String>,
    /// A minimum kernel version (`4.8`).
    #[serde(default, deserialize_with = "null_is_default")]
    pub min_kernel: Option<String>,
}

/// A condition on argument `index`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgCondition {
    /// Which argument (0–5).
    pub index: u32,
    /// The value compared with (the mask, for `SCMP_CMP_MASKED_EQ`).
    pub value: u64,
    /// The second value (what the masked argument must equal, for `SCMP_CMP_MASKED_EQ`).
    #[serde(default, deserialize_with = "null_is_default")]
    pub value_two: u64,
    /// The comparison.
    pub op: Op,
}

/// `SCMP_ACT_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Action {
    /// Kill the thread.
    #[serde(rename = "SCMP_ACT_KILL", alias = "SCMP_ACT_KILL_THREAD")]
    Kill,
    /// Kill the process.
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    /// SIGSYS.
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    /// Fail with an errno.
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    /// Notify a tracer.
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    /// Run it.
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    /// Run it and log it.
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    /// Ask a user-space listener (not supported).
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

/// `SCMP_CMP_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Op {
    /// `!=`
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    /// `<`
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    /// `<=`
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    /// `==`
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    /// `>=`
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    /// `>`
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    /// `arg & value == value_two`
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

/// Docker's and podman's files write `null` for an absent list: the same as leaving it out.
fn null_is_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl Profile {
    /// Reads a profile from a JSON file.
    pub fn load(path: &Path) -> Result<Profile, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Profile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a profile from JSON text (the `linux.seccomp` object, or a Docker profile).
    pub fn parse(text: &[u8]) -> Result<Profile, String> {
        serde_json::from_slice(text).map_err(|e| format!("not a seccomp profile: {e}"))
    }
}

impl Rule {
    /// Every name of the rule.
    pub fn all_names(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .map(String::as_str)
            .chain(self.name.as_deref())
    }
}
