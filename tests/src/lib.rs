//! Test support shared by every tool's tests and the chain tests: where the binaries are,
//! how to run them (as root, rootless as uid 65534, inside a throwaway "host" network
//! namespace), and the CI rule for tests that cannot run here.
//!
//! A test that needs something this machine lacks calls [`require`]: it skips loudly when run
//! by hand and FAILS when `CI` is set.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod audit;
pub mod exe;
pub mod need;
pub mod roots;
pub mod term;

pub use exe::{copy_exe, write_exe};
pub use serde_json::Value;

/// The directory holding the workspace's binaries (beside the test executable's `deps/`).
/// With `NSCHAIN_TEST_MULTICALL=1`, a directory where every tool is a hard link to the
/// multi-call `nschain` (as `make install` lays them out), so that links hand off in process
/// ([`multicall`]).
pub fn bin_dir() -> PathBuf {
    let profile = profile_dir();
    if std::env::var_os("NSCHAIN_TEST_MULTICALL").is_some_and(|v| v == "1") {
        return multicall(&profile);
    }
    profile
}

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    if deps.ends_with("deps") {
        deps.parent().expect("profile dir").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

/// The tools the multi-call binary holds.
pub const MULTICALL_TOOLS: [&str; 11] = [
    "mntns", "utsns", "ipcns", "pidns", "netns", "userns", "nsps", "timens", "cgroupns", "nsimage",
    "nsoci",
];

/// `PROFILE/multicall-PID/`, made once per test process: every tool a hard link to
/// `PROFILE/nschain`, every other binary of the profile a hard link to itself (made fresh:
/// a rebuilt binary is a new file). Those of test processes that are gone are removed.
pub fn multicall(profile: &Path) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        for entry in std::fs::read_dir(profile).expect("profile dir").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("multicall-") {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = profile.join(format!("multicall-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("multicall dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for entry in std::fs::read_dir(profile).expect("profile dir").flatten() {
            let meta = entry.metadata().expect("metadata");
            let name = entry.file_name();
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                let _ = std::fs::hard_link(entry.path(), dir.join(&name));
            }
        }
        let main = profile.join("nschain");
        assert!(
            main.exists(),
            "nschain is not built: run `cargo build --workspace` first"
        );
        for tool in MULTICALL_TOOLS {
            let _ = std::fs::remove_file(dir.join(tool));
            std::fs::hard_link(&main, dir.join(tool)).expect("hard link");
        }
        dir
    })
    .clone()
}

/// The path of a workspace binary (`utsns`, `nsprobe`, ...).
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// A command for a workspace binary, with the chain's state moved to `state` and the other
/// binaries on PATH (so chains can name the next link by its bare name).
pub fn tool(name: &str, state: &Path) -> Command {
    let mut cmd = Command::new(bin(name));
    with_env(&mut cmd, state);
    cmd
}

/// Sets the test environment: state dirs under `state`, our binaries first on PATH, no
/// inherited chain name or debug trace.
pub fn with_env(cmd: &mut Command, state: &Path) {
    let path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        bin_dir().display()
    );
    cmd.env("PATH", path)
        .env("NSCHAIN_RUN_DIR", state.join("run"))
        .env("NSCHAIN_DATA_DIR", state.join("data"))
        .env_remove("NSCHAIN_NAME")
        .env_remove("NSCHAIN_DEBUG");
    default_terminal_signals(cmd);
}

/// Starts `cmd` with SIGINT, SIGQUIT and SIGHUP at their default, as a user's shell starts a
/// command. A test runner started in the background of a script (`cmd &`) ignores the first
/// two, under `nohup` the third, and an ignored signal survives exec: the containers would
/// ignore Ctrl-C and the forwarded signals the tests send.
pub fn default_terminal_signals(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal(2) is async-signal-safe; nothing else runs between fork and exec here.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            Ok(())
        });
    }
}

/// A scratch directory every user can enter (rootless tests run as uid 65534 inside it).
pub fn scratch() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("nschain-test-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `CI` is set: then a missing capability is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Returns true when `ok`; otherwise skips loudly (false) or, under CI, fails the test.
pub fn require(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("CI requires: {what}");
    }
    eprintln!("SKIPPED (not in CI): needs {what}");
    false
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The argv prefix that runs the rest as uid/gid `id` with no supplementary groups.
pub fn setpriv_as(id: u32) -> Vec<String> {
    let id = id.to_string();
    [
        "setpriv",
        "--reuid",
        &id,
        "--regid",
        &id,
        "--clear-groups",
        "--",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `unshare --net --mount --pid --fork --mount-proc timeout SECONDS bash -c` (the script is
/// the caller's next argument): a throwaway "host" network, mount and pid namespace, as root,
/// where nothing the script starts outlives it and no interface of the machine is touched.
pub fn throwaway_host(seconds: u32) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--net",
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--mount-proc",
        "timeout",
        &seconds.to_string(),
        "bash",
        "-c",
    ]);
    cmd
}

/// Runs `script` in a [`throwaway_host`] with `lo` up, `set -eu`, and `wait_for CMD...` (retries
/// CMD for up to 30 s), with the chain's state under `state`.
pub fn in_throwaway_host(state: &Path, seconds: u32, script: &str) -> Output {
    let mut cmd = throwaway_host(seconds);
    cmd.arg(format!(
        "set -eu\nip link set lo up\nwait_for() {{ for _ in $(seq 600); do if \"$@\" >/dev/null 2>&1; then return 0; fi; sleep 0.05; done; return 1; }}\n{script}"
    ));
    with_env(&mut cmd, state);
    run(&mut cmd)
}

/// The uid/gid the rootless tests run as (nobody).
pub const NOBODY: u32 = 65534;

/// A command that runs `program ARGS` as uid/gid `id` (see [`setpriv_as`]).
pub fn as_user(id: u32, program: impl AsRef<OsStr>) -> Command {
    let prefix = setpriv_as(id);
    let mut cmd = Command::new(&prefix[0]);
    cmd.args(&prefix[1..]).arg(program);
    cmd
}

/// Wraps `cmd` to run as the unprivileged uid/gid 65534 (nobody), with no supplementary groups.
pub fn as_nobody(cmd: &Command) -> Command {
    let mut wrapped = as_user(NOBODY, cmd.get_program());
    wrapped.args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => wrapped.env(key, v),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// Runs `cmd` with stdin closed and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("unable to run {:?}: {e}", cmd.get_program()))
}

/// stdout as a trimmed string.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// stderr as a string.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns trimmed stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}: stdout={} stderr={}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Asserts that an output is a success (naming `what` otherwise) and returns trimmed stdout.
pub fn ok_out(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed with {}: stdout={} stderr={}",
        out.status,
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// Asserts the contract of a failed setup: status 125 and one `TOOL: fatal:` line.
pub fn assert_fatal(out: &Output, tool: &str) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(125),
        "expected 125 from {tool}, got {}: {err}",
        out.status
    );
    assert!(
        err.starts_with(&format!("{tool}: fatal: ")),
        "stderr must start with '{tool}: fatal: ', got: {err}"
    );
}

/// Parses the JSON that `nsprobe` printed.
pub fn probe_json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("nsprobe printed no JSON ({e}): {out}"))
}

/// The inode of one of this (test) process's namespaces.
pub fn own_ns_inode(kind: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .ino()
}

/// The host's hostname as the test process sees it.
pub fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

/// Whether an unprivileged user (uid 65534) can create a user namespace here.
pub fn rootless_userns_works() -> bool {
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "true"]);
    run(&mut as_nobody(&cmd)).status.success()
}

/// The argument list of a command, for messages.
pub fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text of section `name` of a script's output: the lines after its `==NAME==` header,
/// up to the next header, trimmed. Panics (with the whole output) when there is none.
pub fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let start = out
        .find(&format!("=={name}==\n"))
        .unwrap_or_else(|| panic!("no section {name} in:\n{out}"))
        + name.len()
        + 5;
    let rest = &out[start..];
    rest.find("\n==").map_or(rest, |end| &rest[..end]).trim()
}

/// Waits until the chain registered at `chain` (`STATE/run/chains/NAME`) has the record of
/// namespace `kind`: its link is set up. Panics after a generous deadline (a loaded machine
/// starts chains slowly; a chain that never registers fails).
pub fn wait_for_record(chain: &Path, kind: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !chain.has_record(kind) {
        assert!(
            std::time::Instant::now() < deadline,
            "{} did not register {kind}",
            chain.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A chain's registration directory, read as nsps reads it: one record per `KIND.json`, or
/// a list of the records of links that ran in one process (`links-PID-KINDS.json`).
pub trait Registrations {
    /// The record of namespace `kind` (`mnt`, `uts`, ...), if registered.
    fn record(&self, kind: &str) -> Option<Value>;
    /// Whether the namespace `kind` is registered.
    fn has_record(&self, kind: &str) -> bool {
        self.record(kind).is_some()
    }
}

impl Registrations for Path {
    fn record(&self, kind: &str) -> Option<Value> {
        if let Ok(text) = std::fs::read(self.join(format!("{kind}.json"))) {
            return serde_json::from_slice(&text).ok();
        }
        let entries = std::fs::read_dir(self).ok()?;
        entries.flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("links-") || !name.ends_with(".json") {
                return None;
            }
            let list: Vec<Value> = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            list.into_iter().find(|r| r["ns"]["type"] == kind)
        })
    }
}
