//! Issue 19, item 8: "`--rm` without pidns returns before the layer is gone". When a chain's
//! command returns, what it held is free, as with `docker run --rm`: the process the caller
//! waits on (mntns's waiter, or pidns's monitor) deletes the `--rm` layer before it exits,
//! passes COMMAND's status through, forwards the signals sent to it, and leaves nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod escape_common;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use escape_common::*;
use nschain_tests::*;

const RUNS: usize = 30;

/// A scratch directory with a busybox root and the chain's state.
struct Setup {
    dir: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = scratch();
        let root = busybox_root(dir.path());
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        Setup { dir, root, state }
    }

    fn layers(&self) -> PathBuf {
        self.state.join("data/overlay")
    }

    /// The layers (and trash) left in the data directory.
    fn left(&self) -> Vec<String> {
        std::fs::read_dir(self.layers())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `[pidns --] mntns --overlay ROOT --rm -- COMMAND...`
    fn chain(&self, pidns: bool, rm: bool, command: &[&str]) -> Command {
        let mut cmd = tool(if pidns { "pidns" } else { "mntns" }, &self.state);
        if pidns {
            cmd.arg("--").arg("mntns");
        }
        cmd.arg("--overlay").arg(&self.root);
        if rm {
            cmd.arg("--rm");
        }
        cmd.arg("--").args(command);
        cmd
    }
}

/// Runs a chain as a shell runs `CHAIN; ls`: waits for its exit only (stdio to /dev/null, so
/// that no read to EOF waits for a helper that keeps stderr open).
fn status_only(cmd: &mut Command) -> std::process::ExitStatus {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
}

/// A spawned chain, SIGKILLed if a failed assertion leaves it running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn ready() -> bool {
    need_root() && have_busybox()
}

/// `pidfd_open(2)`.
fn pidfd(pid: i32) -> OwnedFd {
    match common::sys::process::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => panic!("pidfd_open {pid}: {e}"),
    }
}

/// Waits until the process behind `fd` has exited (it polls readable).
fn wait_exit(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as i32) };
    n > 0
}

/// The children of `pid` (its main thread's).
fn children(pid: u32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Waits for `child` (killing it after `timeout`); its shell-encoded status.
fn wait_status(child: &mut Child, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().expect("an exit code, not a signal");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (1) The check proves itself first: at the moment COMMAND exits — when the old mntns, which
/// exec'd into COMMAND, returned to its caller — the layer is still there in some runs (it was
/// deleted by a cleaner afterwards). Then: when mntns returns, the layer is gone, in every run.
#[test]
fn the_layer_is_gone_when_mntns_rm_returns() {
    if !ready() {
        return;
    }
    let setup = Setup::new();
    // Without the wait: the caller looks when COMMAND has exited.
    let mut seen_after_command = 0;
    for _ in 0..RUNS {
        let mut child = Running(
            setup
                .chain(false, true, &["sh", "-c", "echo $$; read x; exec true"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        // Without a pid namespace, COMMAND's $$ is its host pid.
        let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
        let pid: i32 = lines.next().unwrap().unwrap().parse().unwrap();
        let command = pidfd(pid);
        assert!(!setup.left().is_empty(), "no layer while COMMAND runs");
        child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
        assert!(
            wait_exit(&command, Duration::from_secs(10)),
            "COMMAND did not exit"
        );
        if !setup.left().is_empty() {
            seen_after_command += 1;
        }
        assert_eq!(wait_status(&mut child.0, Duration::from_secs(10)), 0);
    }
    eprintln!("layer still there when COMMAND exited: {seen_after_command} of {RUNS} runs");
    assert!(
        seen_after_command > 0,
        "the control never saw the race: the check below could not fail"
    );
    // With the wait: mntns itself, 30 times in a row, then look at once.
    let mut left = 0;
    for _ in 0..RUNS {
        let status = status_only(&mut setup.chain(false, true, &["true"]));
        assert!(status.success(), "{status}");
        if !setup.left().is_empty() {
            left += 1;
        }
    }
    assert_eq!(
        left, 0,
        "layers left when mntns --rm returned: {left} of {RUNS}"
    );
}

/// (2) COMMAND's status comes through the waiter: n, or 128+s for a signal; the layer goes
/// in every case, a failed setup's too.
#[test]
fn commands_status_comes_through() {
    if !ready() {
        return;
    }
    let setup = Setup::new();
    for (script, code) in [
        ("exit 3", 3),
        ("kill -USR1 $$", 128 + libc::SIGUSR1),
        ("kill -TERM $$", 128 + libc::SIGTERM),
        ("kill -KILL $$", 128 + libc::SIGKILL),
    ] {
        let out = run(&mut setup.chain(false, true, &["sh", "-c", script]));
        assert_eq!(out.status.code(), Some(code), "{script}: {}", stderr(&out));
        assert_eq!(setup.left(), Vec::<String>::new(), "{script}");
    }
    // Not found in the root: 127, as without --rm.
    let out = run(&mut setup.chain(false, true, &["/no/such/program"]));
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert_eq!(setup.left(), Vec::<String>::new());
    // A setup that fails after the layer was made: one fatal line, 125, the layer gone.
    let file = setup.dir.path().join("afile");
    std::fs::write(&file, "x").unwrap();
    let out = run(tool("mntns", &setup.state)
        .arg("--overlay")
        .arg(&setup.root)
        .args(["--rm", "-v"])
        .arg(format!("{}:/dev/null/x", file.display()))
        .args(["--", "true"]));
    assert_fatal(&out, "mntns");
    assert_eq!(setup.left(), Vec::<String>::new());
}

/// (3) The waiter is what the caller holds: `kill -TERM` of it reaches COMMAND (which exits 7
/// from its trap), and the layer goes. While it waits, it holds no fd but stdio, its signalfd
/// and the layer's lock (not a descriptor the caller passed on), in the host's mount
/// namespace. A `kill -9` of it ends COMMAND too.
#[test]
fn signals_sent_to_the_waiter_reach_command() {
    if !ready() {
        return;
    }
    let setup = Setup::new();
    let passed = setup.dir.path().join("passed");
    std::fs::write(&passed, "").unwrap();
    let mut cmd = Command::new("sh");
    with_env(&mut cmd, &setup.state);
    cmd.arg("-c")
        .arg(
            "exec mntns --overlay \"$0\" --rm -- sh -c \
             'trap \"echo got-term; exit 7\" TERM; echo ready; while :; do sleep 0.05; done' 7<\"$1\"",
        )
        .arg(&setup.root)
        .arg(&passed)
        .stdout(Stdio::piped());
    let mut child = Running(cmd.spawn().unwrap());
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let waiter = child.0.id();
    // What the waiter holds.
    let fds: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{waiter}/fd"))
        .unwrap()
        .flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            (
                e.file_name().to_string_lossy().into_owned(),
                target.display().to_string(),
            )
        })
        .collect();
    for (fd, target) in &fds {
        let fine = ["0", "1", "2"].contains(&fd.as_str())
            || target == "anon_inode:[signalfd]"
            || (target.starts_with(&setup.layers().display().to_string())
                && target.ends_with("/.rm"));
        assert!(fine, "the waiter holds fd {fd} -> {target}: {fds:?}");
    }
    assert_eq!(
        std::fs::read_link(format!("/proc/{waiter}/ns/mnt")).unwrap(),
        std::fs::read_link("/proc/self/ns/mnt").unwrap(),
        "the waiter stays in the host's mount namespace"
    );
    assert_ne!(
        std::fs::read_link(format!("/proc/{}/ns/mnt", children(waiter)[0])).unwrap(),
        std::fs::read_link("/proc/self/ns/mnt").unwrap(),
        "COMMAND runs in the new one"
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(waiter as i32, libc::SIGTERM) };
    assert_eq!(wait_status(&mut child.0, Duration::from_secs(10)), 7);
    assert_eq!(lines.next().unwrap().unwrap(), "got-term");
    assert_eq!(setup.left(), Vec::<String>::new());

    // kill -9 of the waiter: COMMAND is SIGKILLed with it; the next start collects the layer.
    let mut child = Running(
        setup
            .chain(false, true, &["sh", "-c", "echo $$; exec sleep 30"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let command = pidfd(lines.next().unwrap().unwrap().parse().unwrap());
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert!(
        wait_exit(&command, Duration::from_secs(5)),
        "COMMAND outlived its waiter"
    );
    let out = run(&mut setup.chain(false, true, &["true"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(setup.left(), Vec::<String>::new());
}

/// (4) The same promise with pidns before mntns: its monitor deletes the layer before it
/// exits, 30 runs in a row; COMMAND's status comes through.
#[test]
fn the_layer_is_gone_when_pidns_returns() {
    if !ready() {
        return;
    }
    let setup = Setup::new();
    let mut left = 0;
    for _ in 0..RUNS {
        let status = status_only(&mut setup.chain(true, true, &["true"]));
        assert!(status.success(), "{status}");
        if !setup.left().is_empty() {
            left += 1;
        }
    }
    assert_eq!(left, 0, "layers left when pidns returned: {left} of {RUNS}");
    let out = run(&mut setup.chain(true, true, &["sh", "-c", "exit 3"]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(setup.left(), Vec::<String>::new());
}

/// (5) Nothing left on the host (the audit: mounts, state files, processes, namespaces) and no
/// extra process: with --rm the caller's child is the waiter and COMMAND its child; without
/// --rm mntns execs COMMAND itself (the caller's child is COMMAND).
#[test]
fn nothing_is_left_and_no_extra_process() {
    if !ready() {
        return;
    }
    let setup = Setup::new();
    let watched = [setup.dir.path()];
    let before = audit::snapshot_watching(&setup.state, None, &watched);
    for pidns in [false, true] {
        for _ in 0..3 {
            let out = run(&mut setup.chain(pidns, true, &["sh", "-c", "echo x > /tmp/x"]));
            assert!(out.status.success(), "{}", stderr(&out));
        }
    }
    audit::assert_nothing_left_watching(&before, &setup.state, None, &[], &watched);

    // --rm: COMMAND's parent is the process the caller started.
    let child = setup
        .chain(false, true, &["sh", "-c", "echo $PPID $$"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let waiter = child.id();
    let out = child.wait_with_output().unwrap();
    let text = ok_out(&out, "mntns --rm");
    let pids: Vec<u32> = text
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids[0], waiter, "{text}");
    // No --rm: a plain exec, COMMAND is the process the caller started.
    let child = setup
        .chain(false, false, &["sh", "-c", "echo $$"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(ok_out(&out, "mntns").trim(), started.to_string());
    // That layer is kept (no --rm): remove it by hand.
    for name in setup.left() {
        std::fs::remove_dir_all(setup.layers().join(name)).unwrap();
    }
    audit::assert_nothing_left_watching(&before, &setup.state, None, &[], &watched);
}

/// Rootless (uid 65534, `userns --map-root` before mntns, no pidns): the same promise, status
/// passed through, nothing left.
#[test]
fn rootless_the_layer_is_gone_when_mntns_rm_returns() {
    if !ready() || !need_rootless() {
        return;
    }
    let setup = Setup::new();
    std::fs::set_permissions(&setup.state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let chain = |script: &str| {
        let mut cmd = tool("userns", &setup.state);
        cmd.args(["--map-root", "--", "mntns", "--overlay"])
            .arg(&setup.root)
            .args(["--rm", "--", "sh", "-c", script]);
        as_nobody(&cmd)
    };
    // The layer is where the test looks while the container runs.
    let mut child = Running(chain("read x").stdin(Stdio::piped()).spawn().unwrap());
    let start = Instant::now();
    while setup.left().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "no layer made");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert_eq!(wait_status(&mut child.0, Duration::from_secs(10)), 0);
    let mut left = 0;
    for _ in 0..10 {
        let status = status_only(&mut chain("exit 4"));
        assert_eq!(status.code(), Some(4), "{status}");
        if !setup.left().is_empty() {
            left += 1;
        }
    }
    assert_eq!(left, 0, "layers left when a rootless mntns --rm returned");
}
