//! The hooks that run in the container's namespaces (createContainer, startContainer): each
//! is a process joined to the init through the links' `--join` (join.rs), as `exec` is, with
//! the hook's env and the state on stdin. createContainer joins only the mount namespace
//! (before pivot_root its root is still the host's, where the hook's path resolves);
//! startContainer joins the init as a process, in the container's root. A hook's `timeout`
//! kills it, as in the runtime's namespaces.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Fatal;
use nix::fcntl::OFlag;

use crate::hooks::Hook;
use crate::join::{self, Mnt};

/// Runs `hooks` in order in the namespaces of `pid`; the first failure stops them.
pub fn run(
    kind: &str,
    hooks: &[Hook],
    pid: i32,
    mnt: Mnt,
    state: &serde_json::Value,
) -> Result<(), Fatal> {
    for hook in hooks {
        run_one(hook, pid, mnt, state)
            .map_err(|e| e.context(format!("{kind} hook {}", hook.path.display())))?;
    }
    Ok(())
}

fn run_one(hook: &Hook, pid: i32, mnt: Mnt, state: &serde_json::Value) -> Result<(), Fatal> {
    let tools = crate::create::tools_dir()?;
    let (status_read, status_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| Fatal::from(e).context("unable to create a pipe"))?;
    let status_fd = crate::create::inheritable(status_write.into_raw_fd(), 16)?;
    let (mut argv, pidns) = join::argv(&tools, pid, status_fd.as_raw_fd(), mnt)?;
    // Root in the container (as runc's hooks, run before the user's credentials are taken),
    // with mntns's default capabilities: a hook is the runtime's, not the user's process.
    argv.extend([
        "--user".into(),
        "0:0".into(),
        "--seccomp".into(),
        "unconfined".into(),
        "--clearenv".into(),
    ]);
    for var in &hook.env {
        argv.extend(["-e".into(), var.into()]);
    }
    if let Some(argv0) = hook.args.first() {
        // The spec: args[0] is the hook's argv[0], as execv's.
        argv.extend(["--argv0".into(), argv0.into()]);
    }
    argv.push("--".into());
    argv.push(hook.path.clone().into());
    argv.extend(hook.args.iter().skip(1).map(OsString::from));
    crate::pid1::become_subreaper()?;
    let (program, rest) = argv
        .split_first()
        .ok_or_else(|| Fatal::new("empty chain"))?;
    let mut chain = std::process::Command::new(program)
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| Fatal::from(anyhow::Error::from(e)).context("unable to run it"))?;
    drop(status_fd);
    if let Some(mut stdin) = chain.stdin.take() {
        // A hook that does not read its stdin is no error.
        let _ = stdin.write_all(state.to_string().as_bytes());
    }
    let deadline = hook
        .timeout
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t));
    let hook_pid = if pidns {
        let joined = crate::pid1::read_status(status_read);
        // pidns, which exits once the hook is on its way.
        let forked = chain
            .wait()
            .map(common::exit::shell_status)
            .unwrap_or(common::exit::FAILURE);
        match joined {
            Some(joined) if forked == 0 => joined,
            _ => return Err(Fatal::new(format!("failed: exit status {}", forked.max(1)))),
        }
    } else {
        chain.id() as i32
    };
    let code = wait_until(hook_pid, deadline)?;
    if code == 0 {
        Ok(())
    } else {
        Err(Fatal::new(format!("failed: exit status {code}")))
    }
}

/// Waits for the hook (this process's child or an orphan given to it), killing it at the
/// deadline (the hook's `timeout`).
fn wait_until(pid: i32, deadline: Option<Instant>) -> Result<u8, Fatal> {
    loop {
        let mut raw = 0;
        // SAFETY: waitpid on one pid without blocking, writing a local.
        let rc = unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) };
        if rc == pid {
            return Ok(common::exit::from_wait_status(raw));
        }
        if rc < 0 && nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            return Ok(common::exit::FAILURE);
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            // SAFETY: kill(2) of the hook this function waits for, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = crate::pid1::wait(pid);
            return Err(Fatal::new("timed out"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
