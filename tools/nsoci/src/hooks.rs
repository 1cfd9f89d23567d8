//! Hooks (runtime-spec config.md#posix-platform-hooks), with the container's state on stdin,
//! at the points the spec names:
//!
//! ```text
//! prestart, createRuntime   nsoci, in the runtime's namespaces, when mntns stops before
//!                           pivot_root (its --hook-fd): namespaces made, mounts done
//! createContainer           then, in the container's namespaces, before pivot_root
//!                           (inside.rs: the links' --join; the path resolves as on the host)
//! startContainer            `start`, in the container (after pivot_root), before the gate
//! poststart                 `start`, after the gate, in the runtime's namespaces (`run`
//!                           without startContainer hooks has no gate: after `ready`)
//! poststop                  `delete`
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Fatal;
use serde::{Deserialize, Serialize};

/// One hook.
#[derive(Deserialize, Serialize, Debug, Clone)]
pub struct Hook {
    pub path: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    pub timeout: Option<u64>,
}

/// The hooks of a config.
#[derive(Deserialize, Serialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct Hooks {
    #[serde(default)]
    pub prestart: Vec<Hook>,
    #[serde(default)]
    pub create_runtime: Vec<Hook>,
    #[serde(default)]
    pub create_container: Vec<Hook>,
    #[serde(default)]
    pub start_container: Vec<Hook>,
    #[serde(default)]
    pub poststart: Vec<Hook>,
    #[serde(default)]
    pub poststop: Vec<Hook>,
}

impl Hooks {
    /// The spec's rule: a hook's path is absolute.
    pub fn check(&self) -> Result<(), Fatal> {
        let all = [
            &self.prestart,
            &self.create_runtime,
            &self.create_container,
            &self.start_container,
            &self.poststart,
            &self.poststop,
        ];
        match all
            .iter()
            .flat_map(|h| h.iter())
            .find(|h| !h.path.is_absolute())
        {
            Some(hook) => Err(Fatal::new(format!(
                "hooks: the path '{}' is not absolute",
                hook.path.display()
            ))),
            None => Ok(()),
        }
    }

    /// Whether any hook runs before pivot_root (mntns then stops there: --hook-fd).
    pub fn before_pivot(&self) -> bool {
        !(self.prestart.is_empty()
            && self.create_runtime.is_empty()
            && self.create_container.is_empty())
    }
}

/// At mntns's stop before pivot_root (`pivot` on its --hook-fd): prestart and createRuntime
/// here, createContainer in the container's namespaces, then the go-ahead. Anything but
/// `pivot` (mntns failed first) sends nothing: the wait for `ready` then sees the failure.
pub fn at_pivot(
    socket: std::os::unix::net::UnixStream,
    hooks: &Hooks,
    container: &crate::state::Container,
) -> Result<(), Fatal> {
    use std::io::{BufRead, BufReader};
    let mut line = String::new();
    let mut reader = BufReader::new(&socket);
    if reader.read_line(&mut line).is_err() || line != "pivot\n" {
        return Ok(());
    }
    let state = container.state_json();
    run("prestart", &hooks.prestart, &state)?;
    run("createRuntime", &hooks.create_runtime, &state)?;
    crate::inside::run(
        "createContainer",
        &hooks.create_container,
        container.record.pid,
        crate::join::Mnt::Namespace,
        &state,
    )?;
    (&socket).write_all(b"g").map_err(|e| {
        Fatal::from(anyhow::Error::from(e)).context("unable to let the container go on")
    })
}

/// The poststart hooks of container `id` once its process runs: a failure is a warning
/// (the spec), the container runs on.
pub fn poststart(root: &std::path::Path, id: &str) {
    let Ok(c) = crate::state::Container::load(root, id) else {
        return;
    };
    if let Err(e) = run("poststart", &c.record.hooks.poststart, &c.state_json()) {
        common::report::warning(e.message());
    }
}

/// Runs `hooks` in order with `state` (JSON) on stdin; the first failure stops them.
pub fn run(kind: &str, hooks: &[Hook], state: &serde_json::Value) -> Result<(), Fatal> {
    for hook in hooks {
        run_one(hook, state)
            .map_err(|e| e.context(format!("{kind} hook {}", hook.path.display())))?;
    }
    Ok(())
}

fn run_one(hook: &Hook, state: &serde_json::Value) -> Result<(), Fatal> {
    let mut cmd = Command::new(&hook.path);
    if let Some((first, rest)) = hook.args.split_first() {
        use std::os::unix::process::CommandExt;
        cmd.arg0(first).args(rest);
    }
    cmd.env_clear();
    for var in &hook.env {
        if let Some((k, v)) = var.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| Fatal::from(anyhow::Error::from(e)).context("unable to run it"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is no error.
        let _ = stdin.write_all(state.to_string().as_bytes());
    }
    let deadline = hook
        .timeout
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t));
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Fatal::from(anyhow::Error::from(e)).context("unable to wait for it"))?
        {
            return if status.success() {
                Ok(())
            } else {
                Err(Fatal::new(format!("failed: {status}")))
            };
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Fatal::new("timed out"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
