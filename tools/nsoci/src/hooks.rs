//! Hooks (runtime-spec config.md#posix-platform-hooks), run by nsoci in the runtime's
//! namespaces with the container's state on stdin: prestart and createRuntime once the
//! container is set up (before `create` returns), poststart after `start`, poststop at
//! `delete`. createContainer and startContainer run inside the container, where nsoci has
//! no process of its own: they are refused.

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
    /// Refuses the hooks nsoci cannot run where the spec says.
    pub fn check(&self) -> Result<(), Fatal> {
        if !self.create_container.is_empty() || !self.start_container.is_empty() {
            return Err(Fatal::new(
                "hooks.createContainer and hooks.startContainer are not supported (they run inside the container)",
            ));
        }
        Ok(())
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
