//! Issue 18, items 2 and 4: a chain's life from another shell. `nsps logs`, `wait`, `stop`,
//! `kill`, `rm -f` on detached chains (and on a foreground one), `nsps --all` and the STATUS
//! column, the log's cap, and a detached chain outliving the shell that started it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nschain_tests::*;

/// `utsns -d --name NAME -- pidns -- sh -c SCRIPT`: returns once the script runs, with the
/// guard that removes the chain when the test ends.
#[must_use = "the chain is removed when the guard drops"]
fn start<'a>(state: &'a Path, name: &'a str, script: &str) -> Removed<'a> {
    start_chain(state, name, &["pidns", "--", "sh", "-c", script])
}

/// `utsns -d --name NAME -- ARGS...`, guarded as [`start`].
fn start_chain<'a>(state: &'a Path, name: &'a str, args: &[&str]) -> Removed<'a> {
    // Made first: a start that fails an assertion after the chain runs is removed too.
    let removed = Removed { state, name };
    let out = run(tool("utsns", state)
        .args(["-d", "--name", name, "--"])
        .args(args));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(raw(&out), format!("{name}\n"));
    removed
}

/// Removes a detached chain the test started when the test ends, also after a failed
/// assertion: `nsps rm -f` (bounded), then a SIGKILL to whatever is left in the supervisor's
/// session (what `rm -f` did not reach: a process that left the chain).
struct Removed<'a> {
    state: &'a Path,
    name: &'a str,
}

impl Drop for Removed<'_> {
    fn drop(&mut self) {
        let supervisor = supervisor_pid(self.state, self.name);
        if let Ok(mut rm) = tool("nsps", self.state)
            .args(["rm", "-f", self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            let deadline = Instant::now() + Duration::from_secs(30);
            while rm.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = rm.kill();
            let _ = rm.wait();
        }
        if let Some(sid) = supervisor {
            for pid in session_members(sid) {
                // SAFETY: kill(2) on a process of the session this test's chain made.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// The supervisor's pid, from the chain's status.json.
fn supervisor_pid(state: &Path, name: &str) -> Option<i32> {
    let text = std::fs::read(chain_dir(state, name).join("status.json")).ok()?;
    let status: Value = serde_json::from_slice(&text).ok()?;
    status["supervisor"].as_i64().map(|p| p as i32)
}

/// The processes of session `sid` (the supervisor leads its chain's session).
fn session_members(sid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            // /proc/PID/stat: "PID (COMM) STATE PPID PGRP SESSION ...", COMM may hold spaces.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(3)?.parse::<i32>().ok())
                    == Some(sid)
            })
        })
        .collect()
}

/// stdout as printed (not trimmed: the newlines are part of what is checked).
fn raw(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn nsps(state: &Path, args: &[&str]) -> std::process::Output {
    run(tool("nsps", state).args(args))
}

/// Waits (up to 20 s) until `nsps logs NAME` shows `text`.
fn wait_for_log(state: &Path, name: &str, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = nsps(state, &["logs", name]);
        let shown = format!("{}{}", raw(&out), stderr(&out));
        if shown.contains(text) {
            return shown;
        }
        assert!(Instant::now() < deadline, "no '{text}' in the log: {shown}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The row of `nsps [--all]` for `name`.
fn row(state: &Path, all: bool, name: &str) -> Option<String> {
    let args: &[&str] = if all { &["--all"] } else { &[] };
    let out = nsps(state, args);
    assert!(out.status.success(), "{}", stderr(&out));
    raw(&out)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(str::to_owned)
}

fn chain_dir(state: &Path, name: &str) -> std::path::PathBuf {
    state.join("run/chains").join(name)
}

#[test]
fn logs_keep_both_streams_and_wait_returns_the_status_in_another_process() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let s = state.path();
    let _two = start(s, "two", "echo to-out; echo to-err >&2; sleep 1; exit 3");
    // `nsps wait` from another process, started before the end.
    let waiter = tool("nsps", s)
        .args(["wait", "two"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_log(s, "two", "to-err");
    let out = nsps(s, &["logs", "two"]);
    assert_eq!(raw(&out), "to-out\n");
    assert_eq!(stderr(&out), "to-err\n");
    let out = nsps(s, &["logs", "--timestamps", "--tail", "1", "two"]);
    let line = format!("{}{}", raw(&out), stderr(&out));
    assert_eq!(line.lines().count(), 1, "{line}");
    // RFC 3339, UTC: 2026-12-03T08:00:32.123456789Z to-err
    let (time, text) = line.trim_end().split_once(' ').unwrap();
    assert!(
        time.len() == 30 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{line}"
    );
    assert!(text == "to-out" || text == "to-err", "{line}");
    assert!(row(s, false, "two").unwrap().ends_with("running"));
    let done = waiter.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&done.stdout), "3\n");
    // Ended: listed only with --all, with its status; its log stays until nsps rm.
    assert!(row(s, false, "two").is_none());
    assert!(row(s, true, "two").unwrap().ends_with("exited 3"));
    assert!(raw(&nsps(s, &["two"])).contains("status:      exited 3"));
    assert_eq!(raw(&nsps(s, &["logs", "two"])), "to-out\n");
    assert_eq!(nsps(s, &["wait", "two"]).status.code(), Some(3));
    assert!(nsps(s, &["rm", "two"]).status.success());
    assert!(!chain_dir(s, "two").exists());
    assert!(row(s, true, "two").is_none());
}

/// Item 1's name conflict, as docker's: a stopped chain that kept its log keeps its name until
/// `nsps rm`; starting another chain under it, detached or not, fails and leaves the old log.
#[test]
fn a_stopped_chains_name_is_refused_until_nsps_rm_frees_it() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let s = state.path();
    let _first = start(s, "again", "echo first-run; exit 2");
    assert_eq!(nsps(s, &["wait", "again"]).status.code(), Some(2));
    for detach in [&["-d"][..], &[]] {
        let out = run(tool("utsns", s).args(detach).args([
            "--name",
            "again",
            "--",
            "pidns",
            "--",
            "echo",
            "second-run",
        ]));
        assert_fatal(&out, "utsns");
        let err = stderr(&out);
        assert!(
            err.contains("in use by a stopped chain (exited 2)")
                && err.contains("utsns: hint: ")
                && err.contains("nsps rm again"),
            "{detach:?}: {err}"
        );
        assert!(!raw(&out).contains("second-run"), "{detach:?} ran");
    }
    assert_eq!(raw(&nsps(s, &["logs", "again"])), "first-run\n");
    assert!(row(s, true, "again").unwrap().ends_with("exited 2"));
    assert!(nsps(s, &["rm", "again"]).status.success());
    let _second = start(s, "again", "echo second-run");
    assert_eq!(nsps(s, &["wait", "again"]).status.code(), Some(0));
    assert_eq!(raw(&nsps(s, &["logs", "again"])), "second-run\n");
}

/// Item 2's drain: what the chain's other processes print after its first process ended is
/// logged, read until the pipe closes; a process that keeps the pipe open for good (here a
/// sleep left behind by a chain without pidns) does not keep the supervisor, and so `nsps
/// rm` (which waits for it), forever.
#[test]
fn output_after_the_first_process_ended_is_logged_and_a_lingering_writer_not_waited_for() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let s = state.path();
    let script = "(sleep 0.5; echo late-line) & (exec sleep 97) & echo early-line";
    let _late = start_chain(s, "late", &["sh", "-c", script]);
    let supervisor = supervisor_pid(s, "late").expect("no supervisor recorded");
    wait_for_log(s, "late", "late-line");
    assert_eq!(raw(&nsps(s, &["logs", "late"])), "early-line\nlate-line\n");
    // `nsps rm` while the supervisor may still read: it waits for its end, then removes.
    let out = nsps(s, &["rm", "late"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!chain_dir(s, "late").exists());
    // The supervisor stopped reading while the sleep still held the pipe.
    let lingering = session_members(supervisor).into_iter().any(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == b"sleep\097\0")
    });
    assert!(
        lingering,
        "the lingering writer is gone: the test proves nothing"
    );
    for pid in session_members(supervisor) {
        // SAFETY: kill(2) on what this test's chain left in its session.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

#[test]
fn logs_follow_until_the_chain_ends() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let s = state.path();
    let _fol = start(
        s,
        "fol",
        "for i in 1 2 3 4 5; do echo line$i; sleep 0.2; done",
    );
    let out = nsps(s, &["logs", "-f", "fol"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(raw(&out), "line1\nline2\nline3\nline4\nline5\n");
}

#[test]
fn stop_ends_a_chain_with_sigterm_and_kills_one_that_ignores_it() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let s = state.path();
    let before = audit::snapshot(s, None);
    let _polite = start(
        s,
        "polite",
        "trap 'echo bye; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
    );
    let _stubborn = start(
        s,
        "stubborn",
        "trap '' TERM; echo ready; while :; do sleep 0.1; done",
    );
    wait_for_log(s, "polite", "ready");
    wait_for_log(s, "stubborn", "ready");
    let out = nsps(s, &["stop", "polite"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(raw(&out), "polite\n");
    // Returned only once the chain had ended: its status is already recorded.
    assert_eq!(nsps(s, &["wait", "polite"]).status.code(), Some(7));
    assert!(raw(&nsps(s, &["logs", "polite"])).contains("bye"));

    let out = nsps(s, &["stop", "-t", "1", "stubborn"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // SIGTERM was ignored: SIGKILL to the container's init ended it (pidns: 128+9).
    assert_eq!(nsps(s, &["wait", "stubborn"]).status.code(), Some(137));
    assert!(row(s, true, "stubborn").unwrap().ends_with("exited 137"));
    // Stopping a stopped chain is no error.
    assert_eq!(nsps(s, &["stop", "stubborn"]).status.code(), Some(0));
    for name in ["polite", "stubborn"] {
        assert!(nsps(s, &["rm", name]).status.success());
    }
    audit::assert_nothing_left(&before, s, None, &[]);
    assert!(!s.join("run/chains/polite").exists());
}

#[test]
fn kill_sends_the_signal_asked_for_and_rm_f_kills_then_removes() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let s = state.path();
    let before = audit::snapshot(s, None);
    let _sig = start(
        s,
        "sig",
        "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.1; done",
    );
    wait_for_log(s, "sig", "ready");
    let out = nsps(s, &["kill", "-s", "USR1", "sig"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    wait_for_log(s, "sig", "got-usr1");
    assert!(row(s, false, "sig").unwrap().ends_with("running"));
    // rm of a running chain needs -f.
    let out = nsps(s, &["rm", "sig"]);
    assert_fatal(&out, "nsps");
    assert!(stderr(&out).contains("still running"), "{}", stderr(&out));
    let out = nsps(s, &["rm", "-f", "sig"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!chain_dir(s, "sig").exists());
    audit::assert_nothing_left(&before, s, None, &[]);

    let _nine = start(s, "nine", "sleep 100");
    let out = nsps(s, &["kill", "-s", "9", "nine"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(nsps(s, &["wait", "nine"]).status.code(), Some(137));
    assert!(nsps(s, &["rm", "nine"]).status.success());
}

#[test]
fn a_foreground_chain_is_stopped_from_another_shell() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let s = state.path();
    let _fg = Removed {
        state: s,
        name: "fg",
    };
    let mut fg = tool("utsns", s)
        .args(["--name", "fg", "--", "pidns", "--", "sleep", "100"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !row(s, false, "fg").is_some_and(|r| r.contains("sleep 100")) {
        assert!(Instant::now() < deadline, "fg never listed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(row(s, false, "fg").unwrap().ends_with("running"));
    let out = nsps(s, &["stop", "fg"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The caller got the status: sleep killed by the forwarded SIGTERM.
    assert_eq!(fg.wait().unwrap().code(), Some(128 + libc::SIGTERM));
    let out = nsps(s, &["logs", "fg"]);
    assert_fatal(&out, "nsps");
}

#[test]
fn a_detached_chain_outlives_the_shell_that_started_it() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let s = state.path();
    let _surv = Removed {
        state: s,
        name: "surv",
    };
    let mut shell = Command::new("sh");
    shell
        .args(["-c", "utsns -d --name surv -- pidns -- sleep 100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .process_group(0);
    with_env(&mut shell, s);
    let child = shell.spawn().unwrap();
    let group = child.id() as i32;
    let out = child.wait_with_output().unwrap();
    assert_eq!(raw(&out), "surv\n", "{}", stderr(&out));
    // The shell's whole process group hangs up and is killed, as when a terminal closes.
    // SAFETY: kill(2) on the process group this test made for the shell.
    unsafe {
        libc::kill(-group, libc::SIGHUP);
        libc::kill(-group, libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(200));
    let listed = row(s, false, "surv").expect("surv is gone with its shell");
    assert!(listed.ends_with("running"), "{listed}");
    let pid: i32 = listed.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: getsid only reads the session of a process.
    let (theirs, ours) = unsafe { (libc::getsid(pid), libc::getsid(0)) };
    assert_ne!(theirs, ours, "the chain is not in a session of its own");
    assert!(nsps(s, &["stop", "surv"]).status.success());
    assert_eq!(nsps(s, &["wait", "surv"]).status.code(), Some(143));
}

#[test]
fn the_log_is_capped_while_a_container_prints_forever() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let s = state.path();
    // A chain that never stops talking must not outlive a failed assertion: made first.
    let _flood = Removed {
        state: s,
        name: "flood",
    };
    let out = run(tool("utsns", s).env("NSCHAIN_LOG_MAX", "64K").args([
        "-d",
        "--name",
        "flood",
        "--",
        "pidns",
        "--",
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo \"line $i of a container that never stops talking\"; done",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = chain_dir(s, "flood");
    let older = dir.join("container.log.1");
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    // Several rotations: the older file is replaced again and again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !older.exists() {
        assert!(Instant::now() < deadline, "never rotated");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut seen = std::collections::BTreeSet::from([ino(&older)]);
    while seen.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "rotated only {} times",
            seen.len()
        );
        if let Ok(meta) = std::fs::metadata(&older) {
            seen.insert(std::os::unix::fs::MetadataExt::ino(&meta));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // What the log holds on disk stays under two files of the cap (a rotation swaps files:
    // a third name may show for an instant, never more bytes).
    for _ in 0..50 {
        let sizes: Vec<(String, u64)> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("container.log"))
            .map(|e| {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                (e.file_name().to_string_lossy().into_owned(), size)
            })
            .collect();
        let total: u64 = sizes.iter().map(|(_, s)| s).sum();
        assert!(total <= 2 * (64 << 10), "{sizes:?}");
        assert!(sizes.iter().all(|(_, s)| *s <= 64 << 10), "{sizes:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = nsps(s, &["logs", "--tail", "2", "flood"]);
    let text = raw(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines
        .iter()
        .all(|l| l.ends_with("of a container that never stops talking")));
    assert!(nsps(s, &["stop", "flood"]).status.success());
    assert!(nsps(s, &["rm", "flood"]).status.success());
}

#[test]
fn bad_values_of_the_new_flags_are_refused() {
    let state = scratch();
    let s = state.path();
    for args in [
        &["logs", "--tail", "many", "x"][..],
        &["logs", "--tail", "-3", "x"],
        &["stop", "-t", "soon", "x"],
        &["stop", "--time", "-1", "x"],
        &["kill", "-s", "SIGNOPE", "x"],
        &["kill", "--signal", "0", "x"],
        &["kill", "-s", "99", "x"],
        &["wait", "no-such-chain"],
        &["logs", "no-such-chain"],
    ] {
        let out = nsps(s, args);
        assert_fatal(&out, "nsps");
    }
    for size in ["1", "10X", "", "-5M"] {
        let out = run(tool("utsns", s)
            .env("NSCHAIN_LOG_MAX", size)
            .args(["-d", "--", "true"]));
        assert_fatal(&out, "utsns");
        assert!(stderr(&out).contains("NSCHAIN_LOG_MAX"), "{}", stderr(&out));
    }
    let out = run(tool("utsns", s).args(["--detach=yes", "--", "true"]));
    assert_fatal(&out, "utsns");
    // Nothing was started, nothing registered.
    let chains = std::fs::read_dir(s.join("run/chains"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(chains, 0);
}

#[test]
fn a_rootless_chain_detaches_logs_and_is_waited_for() {
    if !need::root() || !need::rootless() {
        return;
    }
    let state = scratch();
    let s = state.path();
    let _rl = Removed {
        state: s,
        name: "rl",
    };
    let mut cmd = tool("userns", s);
    cmd.args([
        "-d",
        "--name",
        "rl",
        "--",
        "pidns",
        "--",
        "sh",
        "-c",
        "id -u; sleep 0.3; exit 4",
    ]);
    let out = run(&mut as_nobody(&cmd));
    assert_eq!(raw(&out), "rl\n", "{}", stderr(&out));
    let out = run(&mut as_nobody(tool("nsps", s).args(["wait", "rl"])));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // Root inside: the payload's `id -u`.
    let out = run(&mut as_nobody(tool("nsps", s).args(["logs", "rl"])));
    assert_eq!(raw(&out), "0\n", "{}", stderr(&out));
    let out = run(&mut as_nobody(tool("nsps", s).args(["rm", "rl"])));
    assert!(out.status.success(), "{}", stderr(&out));
}
