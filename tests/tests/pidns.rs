//! pidns: PID 1 and PID 2, the host's view (NSpid), signals (kill, Ctrl-C through a pty,
//! SIGKILL of the monitor, death of the parent), zombies, exit statuses side by side with tini
//! and catatonit, --status-fd, rootless, joined, bad values.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nschain_tests::audit;
use nschain_tests::*;

fn root() -> bool {
    require(is_root(), "root (pidns creates a pid namespace)")
}

/// `pidns ARGS` with the chain's state under `state`.
fn pidns(state: &Path, args: &[&str]) -> Command {
    let mut cmd = tool("pidns", state);
    cmd.args(args);
    cmd
}

/// Starts `pidns --status-fd 3 ARGS` with fd 3 writing to `state/status.jsonl`; the spawned
/// process is the monitor itself (sh execs it).
fn spawn_with_status(state: &Path, args: &[&str]) -> (Child, PathBuf) {
    let status = state.join(format!("status-{}.jsonl", unique()));
    let mut cmd = Command::new("sh");
    with_env(&mut cmd, state);
    cmd.env("STATUS_FILE", &status)
        .arg("-c")
        .arg("exec \"$@\" 3>\"$STATUS_FILE\"")
        .arg("sh")
        .arg(bin("pidns"))
        .args(["--status-fd", "3"])
        .args(args)
        .stdin(Stdio::null());
    (cmd.spawn().unwrap(), status)
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// The JSON lines of a status file, waiting (up to 5 s) until it has at least `n`.
fn status_lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The host pid of PID 1, from the first status line.
fn init_pid(path: &Path) -> u32 {
    let lines = status_lines(path, 1);
    assert!(!lines.is_empty(), "no status line in {}", path.display());
    lines[0]["pid"].as_u64().unwrap() as u32
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `child` (at most `limit`), killing it if it is still running.
fn finish(child: &mut Child, limit: Duration) -> ExitStatus {
    match wait_timeout(child, limit) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}");
        }
    }
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Waits until PID 1 (host pid `init`) has a child running `name` and returns its host pid.
fn wait_for_child(init: u32, name: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pid) = children(init).into_iter().find(|p| comm(*p) == name) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no {name} under pid {init}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The init's root (host pid `init`) is an empty read-only tmpfs (a chroot into a detached one,
/// or a mount namespace of its own holding only that): no mount of the caller's is visible.
fn assert_empty_root(init: u32) {
    let mounts = std::fs::read_to_string(format!("/proc/{init}/mountinfo")).unwrap();
    assert!(mounts.lines().count() <= 1, "{mounts}");
    assert!(
        mounts.is_empty() || (mounts.contains(" / / ro,") && mounts.contains("tmpfs")),
        "{mounts}"
    );
    let root = std::ffi::CString::new(format!("/proc/{init}/root")).unwrap();
    // SAFETY: a zeroed statfs is a valid out-parameter; root is NUL-terminated.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `root` is NUL-terminated and `fs` is a valid out-parameter.
    assert_eq!(unsafe { libc::statfs(root.as_ptr(), &mut fs) }, 0);
    assert_eq!(fs.f_type, libc::TMPFS_MAGIC, "the init's root is a tmpfs");
    // SAFETY: as above, for statvfs.
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `root` is NUL-terminated and `vfs` is a valid out-parameter.
    assert_eq!(unsafe { libc::statvfs(root.as_ptr(), &mut vfs) }, 0);
    assert_ne!(
        vfs.f_flag & libc::ST_RDONLY,
        0,
        "the init's root is read-only"
    );
    assert_eq!(
        std::fs::read_dir(format!("/proc/{init}/root"))
            .unwrap()
            .count(),
        0
    );
}

fn alive(pid: u32) -> bool {
    let state = status_field(pid, "State");
    !state.is_empty() && !state.starts_with('Z')
}

fn signal(pid: u32, sig: &str) {
    ok(Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]));
}

// ---------------------------------------------------------------------------------------------

#[test]
fn command_is_pid_2_under_the_init_and_pid_1_with_no_init() {
    if !root() {
        return;
    }
    let state = scratch();
    let out = ok(&mut pidns(state.path(), &["--", "sh", "-c", "echo $$"]));
    assert_eq!(out, "2");
    let out = ok(&mut pidns(
        state.path(),
        &["--no-init", "--", "sh", "-c", "echo $$"],
    ));
    assert_eq!(out, "1");
    // nsprobe sees a new pid namespace, its parent (the init) as pid 1.
    let probe = probe_json(&ok(&mut pidns(state.path(), &["--", "nsprobe"])));
    assert_eq!(probe["pid"], 2);
    assert_eq!(probe["ppid"], 1);
    assert_ne!(probe["ns"]["pid"].as_u64().unwrap(), own_ns_inode("pid"));
    assert_eq!(probe["ns"]["mnt"].as_u64().unwrap(), own_ns_inode("mnt"));
}

#[test]
fn the_host_sees_the_mapping_in_nspid_and_the_status_fd_reports_it() {
    if !root() {
        return;
    }
    let state = scratch();
    let (mut monitor, status) = spawn_with_status(state.path(), &["--", "sleep", "1000"]);
    let init = init_pid(&status);
    let first = &status_lines(&status, 1)[0];
    assert_eq!(status_field(init, "NSpid"), format!("{init}\t1"));
    let sleep = wait_for_child(init, "sleep");
    assert_eq!(status_field(sleep, "NSpid"), format!("{sleep}\t2"));
    // The namespace inodes are the container's: a new pid namespace, the rest the caller's.
    let pid_ns = std::fs::metadata(format!("/proc/{sleep}/ns/pid")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(first["ns"]["pid"].as_u64().unwrap(), pid_ns.ino());
    assert_eq!(first["ns"]["net"].as_u64().unwrap(), own_ns_inode("net"));
    // The monitor is the init's parent, in the caller's namespace.
    assert_eq!(status_field(init, "PPid"), monitor.id().to_string());
    signal(monitor.id(), "TERM");
    assert_eq!(
        finish(&mut monitor, Duration::from_secs(5)).code(),
        Some(143)
    );
    let lines = status_lines(&status, 2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1], serde_json::json!({"exit-code": 143}));
}

#[test]
fn the_init_sheds_mounts_capabilities_and_the_callers_fds() {
    if !root() {
        return;
    }
    let state = scratch();
    let (mut monitor, status) = spawn_with_status(state.path(), &["--", "sleep", "1000"]);
    let init = init_pid(&status);
    let sleep = wait_for_child(init, "sleep");
    // Only CAP_KILL (bit 5), kept to signal a COMMAND that changed user. The init sheds after
    // its fork of COMMAND: wait for it to settle (bounded), then judge.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while status_field(init, "CapEff") != "0000000000000020" && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status_field(init, "CapEff"), "0000000000000020");
    assert_eq!(status_field(init, "CapBnd"), "0000000000000020");
    assert_empty_root(init);
    // Its only fd is its signalfd: the caller's stdin/stdout/stderr and fd 3 are not kept.
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{init}/fd"))
        .unwrap()
        .map(|e| {
            std::fs::read_link(e.unwrap().path())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(fds, ["anon_inode:[signalfd]"]);
    // COMMAND keeps the caller's capabilities and mount namespace.
    assert_eq!(
        status_field(sleep, "CapEff"),
        status_field(std::process::id(), "CapEff")
    );
    let sleep_mnt = std::fs::read_link(format!("/proc/{sleep}/ns/mnt")).unwrap();
    assert_eq!(sleep_mnt, std::fs::read_link("/proc/self/ns/mnt").unwrap());
    signal(monitor.id(), "TERM");
    assert_eq!(
        finish(&mut monitor, Duration::from_secs(5)).code(),
        Some(143)
    );
}

/// Under a user namespace the init may not mount in the caller's mount namespace: it still
/// ends in an empty read-only tmpfs, and keeps no copy of the caller's mount table (which
/// would hold every filesystem of the host open): it stays in the caller's mount namespace.
#[test]
fn the_init_under_a_user_namespace_sheds_the_callers_mounts_too() {
    if !root() {
        return;
    }
    let state = scratch();
    let status = state.path().join("status-userns.jsonl");
    let mut cmd = Command::new("sh");
    with_env(&mut cmd, state.path());
    cmd.env("STATUS_FILE", &status)
        .arg("-c")
        .arg("exec \"$@\" 3>\"$STATUS_FILE\"")
        .arg("sh")
        .arg(bin("userns"))
        .args(["--map-root", "--"])
        .arg(bin("pidns"))
        .args(["--status-fd", "3", "--", "sleep", "1000"])
        .stdin(Stdio::null());
    let mut monitor = cmd.spawn().unwrap();
    let init = init_pid(&status);
    wait_for_child(init, "sleep");
    let deadline = Instant::now() + Duration::from_secs(5);
    while status_field(init, "CapEff") != "0000000000000020" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let caps = status_field(init, "CapEff");
    let init_mnt = std::fs::read_link(format!("/proc/{init}/ns/mnt")).unwrap();
    let root = std::panic::catch_unwind(|| assert_empty_root(init));
    // Stopped before judging: a failed assertion leaves no container behind.
    signal(monitor.id(), "TERM");
    let code = finish(&mut monitor, Duration::from_secs(5)).code();
    assert_eq!(caps, "0000000000000020");
    if let Err(failure) = root {
        std::panic::resume_unwind(failure);
    }
    assert_eq!(init_mnt, std::fs::read_link("/proc/self/ns/mnt").unwrap());
    assert_eq!(code, Some(143));
}

#[test]
fn kill_term_of_the_monitor_stops_the_container_promptly_with_143() {
    if !root() {
        return;
    }
    let state = scratch();
    let before = audit::snapshot(state.path(), None);
    for extra in [&[][..], &["--pgroup"][..]] {
        let mut args = extra.to_vec();
        args.extend(["--", "sleep", "1000"]);
        let (mut monitor, status) = spawn_with_status(state.path(), &args);
        let init = init_pid(&status);
        wait_for_child(init, "sleep");
        let start = Instant::now();
        signal(monitor.id(), "TERM");
        let code = finish(&mut monitor, Duration::from_secs(5)).code();
        assert_eq!(code, Some(143), "{extra:?}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }
    // Other signals are forwarded as well: HUP, USR1, ALRM kill sleep with 128+s.
    for (sig, code) in [("HUP", 129), ("USR1", 138), ("ALRM", 142), ("INT", 130)] {
        let (mut monitor, status) = spawn_with_status(state.path(), &["--", "sleep", "1000"]);
        wait_for_child(init_pid(&status), "sleep");
        signal(monitor.id(), sig);
        assert_eq!(
            finish(&mut monitor, Duration::from_secs(5)).code(),
            Some(code),
            "{sig}"
        );
    }
    audit::assert_nothing_left(&before, state.path(), None, &[]);
}

#[test]
fn a_handled_signal_reaches_command_which_keeps_running() {
    if !root() {
        return;
    }
    let state = scratch();
    let mut cmd = pidns(
        state.path(),
        &[
            "--",
            "sh",
            "-c",
            "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.05; done",
        ],
    );
    let mut monitor = cmd
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(monitor.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    signal(monitor.id(), "USR1");
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "got-usr1");
    signal(monitor.id(), "TERM");
    assert_eq!(
        finish(&mut monitor, Duration::from_secs(5)).code(),
        Some(143)
    );
}

#[test]
fn with_pgroup_signals_reach_the_whole_process_group() {
    if !root() {
        return;
    }
    let state = scratch();
    // A subshell in COMMAND's group traps USR1 too: only --pgroup reaches it.
    let script = "trap 'echo parent' USR1; \
                  (trap 'echo child; exit 0' USR1; echo ready; while :; do sleep 0.05; done) & \
                  wait; wait";
    let mut monitor = pidns(state.path(), &["--pgroup", "--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(monitor.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    signal(monitor.id(), "USR1");
    let status = finish(&mut monitor, Duration::from_secs(5));
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let mut got: Vec<&str> = rest.lines().collect();
    got.sort();
    assert_eq!(got, ["child", "parent"]);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn ctrl_c_on_a_terminal_stops_the_container() {
    if !root() || !require(have("script"), "script (util-linux) for a pty") {
        return;
    }
    let state = scratch();
    for extra in ["", "--pgroup "] {
        // script gives the command a pty as its controlling terminal; a ^C written to script's
        // stdin becomes a SIGINT from the terminal to its foreground process group.
        let line = format!(
            "{} {extra}-- sh -c 'echo ready; exec sleep 1000'",
            bin("pidns").display()
        );
        let mut cmd = Command::new("script");
        with_env(&mut cmd, state.path());
        cmd.env("SHELL", "/bin/sh")
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut term = cmd.spawn().unwrap();
        let mut out = term.stdout.take().unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("ready") {
            let n = out.read(&mut buf).unwrap();
            assert!(n > 0, "no ready: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        let start = Instant::now();
        let mut stdin = term.stdin.take().unwrap();
        stdin.write_all(b"\x03").unwrap();
        stdin.flush().unwrap();
        let status = finish(&mut term, Duration::from_secs(5));
        assert_eq!(status.code(), Some(130), "{extra}");
        assert!(start.elapsed() < Duration::from_secs(2));
        drop(stdin);
    }
}

#[test]
fn command_gets_the_callers_signal_mask_and_dispositions() {
    if !root() || !require(have("perl"), "perl") {
        return;
    }
    let state = scratch();
    // The caller blocks SIGUSR1 and ignores SIGHUP and SIGCHLD (as nohup and some daemons do).
    let mut cmd = Command::new("perl");
    with_env(&mut cmd, state.path());
    cmd.args([
        "-e",
        "use POSIX; sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGUSR1)); \
         $SIG{HUP} = 'IGNORE'; $SIG{CHLD} = 'IGNORE'; exec @ARGV or exit 99",
    ]);
    let mut probe = Command::new("perl");
    with_env(&mut probe, state.path());
    probe.args(cmd.get_args()).arg(bin("pidns")).args([
        "--",
        "grep",
        "-E",
        "SigBlk|SigIgn",
        "/proc/self/status",
    ]);
    let out = ok(&mut probe);
    let field = |name: &str| {
        let line = out.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().last().unwrap(), 16).unwrap()
    };
    assert_eq!(field("SigBlk:"), 1 << (libc::SIGUSR1 - 1), "{out}");
    let ignored = field("SigIgn:");
    assert_ne!(ignored & (1 << (libc::SIGHUP - 1)), 0, "{out}");
    assert_ne!(ignored & (1 << (libc::SIGCHLD - 1)), 0, "{out}");
    // With SIGCHLD ignored by the caller, the status still comes back (no auto-reaping).
    let mut status = Command::new("perl");
    with_env(&mut status, state.path());
    status
        .args(cmd.get_args())
        .arg(bin("pidns"))
        .args(["--", "sh", "-c", "exit 5"]);
    assert_eq!(run(&mut status).status.code(), Some(5));
    // Without all that, COMMAND starts with what it gets without pidns.
    let grep = ["grep", "-E", "SigBlk|SigIgn", "/proc/self/status"];
    let mut direct = Command::new(grep[0]);
    direct.args(&grep[1..]);
    default_terminal_signals(&mut direct);
    let direct = ok(&mut direct);
    let mut args = vec!["--"];
    args.extend(grep);
    assert_eq!(ok(&mut pidns(state.path(), &args)), direct);
}

#[test]
fn status_fd_1_shares_stdout_with_command() {
    if !root() {
        return;
    }
    let state = scratch();
    let out = ok(&mut pidns(
        state.path(),
        &["--status-fd", "1", "--", "echo", "hi"],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("{\"") && lines[0].contains("\"pid\":"),
        "{out}"
    );
    assert_eq!(lines[1], "hi");
    assert_eq!(lines[2], "{\"exit-code\":0}");
}

#[test]
fn sigkill_of_the_monitor_leaves_no_process_behind() {
    if !root() {
        return;
    }
    let state = scratch();
    let before = audit::snapshot(state.path(), None);
    for args in [
        &["--die-with-parent", "--", "sleep", "1000"][..],
        &["--", "sleep", "1000"][..],
        &["--no-init", "--die-with-parent", "--", "sleep", "1000"][..],
    ] {
        let (mut monitor, status) = spawn_with_status(state.path(), args);
        let init = init_pid(&status);
        let deadline = Instant::now() + Duration::from_secs(5);
        while comm(init) != "sleep" && children(init).is_empty() {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
        monitor.kill().unwrap();
        monitor.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(init) {
            assert!(
                Instant::now() < deadline,
                "{args:?}: pid {init} still alive"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    audit::assert_nothing_left(&before, state.path(), None, &[]);
}

#[test]
fn die_with_parent_kills_the_container_when_the_starting_process_dies() {
    if !root() {
        return;
    }
    let state = scratch();
    let before = audit::snapshot(state.path(), None);
    for (flag, survives) in [("--die-with-parent", false), ("--pgroup", true)] {
        // sh starts pidns in the background and waits; killing sh orphans pidns.
        let status = state.path().join(format!("parent-{}.jsonl", unique()));
        let mut sh = Command::new("sh");
        with_env(&mut sh, state.path());
        sh.arg("-c")
            .arg(format!(
                "{} --status-fd 3 {flag} -- sleep 1000 3>{} & wait",
                bin("pidns").display(),
                status.display()
            ))
            .stdin(Stdio::null());
        let mut sh = sh.spawn().unwrap();
        let init = init_pid(&status);
        wait_for_child(init, "sleep");
        let monitor: u32 = status_field(init, "PPid").parse().unwrap();
        sh.kill().unwrap();
        sh.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while alive(init) && Instant::now() < deadline && !survives {
            std::thread::sleep(Duration::from_millis(10));
        }
        if survives {
            std::thread::sleep(Duration::from_millis(200));
            assert!(alive(monitor) && alive(init), "{flag}: the container died");
            signal(monitor, "TERM");
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while alive(init) || alive(monitor) {
            assert!(Instant::now() < deadline, "{flag}: still alive");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    audit::assert_nothing_left(&before, state.path(), None, &[]);
}

#[test]
fn orphans_are_reaped_no_zombie_stays_behind_pid_1() {
    if !root() {
        return;
    }
    let state = scratch();
    // Three double-forked orphans exit at once; COMMAND lives on.
    let script = "for i in 1 2 3; do sh -c 'sleep 0.1 &'; done; \
                  (sh -c 'exit 0' &); exec sleep 1000";
    let (mut monitor, status) = spawn_with_status(state.path(), &["--", "sh", "-c", script]);
    let init = init_pid(&status);
    // PID 2 has become `sleep 1000`: every orphan was made before.
    let deadline = Instant::now() + Duration::from_secs(5);
    let pid2 = loop {
        let found = children(init)
            .into_iter()
            .find(|p| status_field(*p, "NSpid").ends_with("\t2"));
        if let Some(pid) = found.filter(|p| comm(*p) == "sleep") {
            break pid;
        }
        assert!(Instant::now() < deadline, "no PID 2 running sleep");
        std::thread::sleep(Duration::from_millis(10));
    };
    // The orphans had become the init's children: wait until none is left, zombie or not.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<u32> = children(init).into_iter().filter(|p| *p != pid2).collect();
        if left.is_empty() {
            break;
        }
        let states: Vec<String> = left.iter().map(|p| status_field(*p, "State")).collect();
        assert!(
            Instant::now() < deadline,
            "left under PID 1: {left:?} {states:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // And the same with --no-init shows why the init exists: sh as PID 1 does not reap.
    signal(monitor.id(), "TERM");
    assert_eq!(
        finish(&mut monitor, Duration::from_secs(5)).code(),
        Some(143)
    );
    let (mut monitor, status) =
        spawn_with_status(state.path(), &["--no-init", "--", "sh", "-c", script]);
    let pid1 = init_pid(&status);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let zombies = children(pid1)
            .into_iter()
            .filter(|p| status_field(*p, "State").starts_with('Z'))
            .count();
        if zombies >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expected zombies under a PID 1 that does not reap, got {zombies}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    monitor.kill().unwrap();
    monitor.wait().unwrap();
}

/// The scenarios every init must agree on: (script, expected status).
const STATUSES: [(&str, i32); 6] = [
    ("exit 0", 0),
    ("exit 3", 3),
    ("exit 255", 255),
    ("kill -KILL $$", 137),
    ("ulimit -c 0; kill -SEGV $$", 139),
    ("ulimit -c 0; kill -TERM $$", 143),
];

#[test]
fn exit_statuses_come_back_exactly_as_with_tini_and_catatonit() {
    if !root() {
        return;
    }
    let state = scratch();
    let anchors = require(have("tini"), "tini") && require(have("catatonit"), "catatonit");
    for (script, expected) in STATUSES {
        for extra in [&[][..], &["--no-init"][..]] {
            if extra == ["--no-init"] && script.contains("kill") {
                continue; // PID 1 ignores signals it has no handler for, even SIGKILL
            }
            let mut args = extra.to_vec();
            args.extend(["--", "sh", "-c", script]);
            let out = run(&mut pidns(state.path(), &args));
            assert_eq!(out.status.code(), Some(expected), "pidns {args:?}");
        }
        if !anchors {
            continue;
        }
        // tini -s and catatonit (subreapers when not PID 1), and both as PID 1 of a pid
        // namespace made by unshare.
        for anchor in [
            vec!["tini", "-s", "--"],
            vec!["catatonit", "--"],
            vec!["unshare", "--pid", "--fork", "tini", "--"],
            vec!["unshare", "--pid", "--fork", "catatonit", "--"],
        ] {
            let mut cmd = Command::new(anchor[0]);
            cmd.args(&anchor[1..]).args(["sh", "-c", script]);
            let out = run(&mut cmd);
            assert_eq!(out.status.code(), Some(expected), "{anchor:?} {script}");
        }
    }
}

#[test]
fn a_missing_command_is_127_without_an_exit_code_line() {
    if !root() {
        return;
    }
    let state = scratch();
    let before = audit::snapshot(state.path(), None);
    for extra in [&[][..], &["--no-init"][..]] {
        let mut args = extra.to_vec();
        args.extend(["--", "/nonexistent/nschain-cmd"]);
        let (mut monitor, status) = spawn_with_status(state.path(), &args);
        assert_eq!(
            finish(&mut monitor, Duration::from_secs(5)).code(),
            Some(127)
        );
        let lines = status_lines(&status, 1);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0]["pid"].as_u64().is_some());
        // A command that exits 127 by itself was executed: its line is there.
        let mut args = extra.to_vec();
        args.extend(["--", "sh", "-c", "exit 127"]);
        let (mut monitor, status) = spawn_with_status(state.path(), &args);
        assert_eq!(
            finish(&mut monitor, Duration::from_secs(5)).code(),
            Some(127)
        );
        let lines = status_lines(&status, 2);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[1], serde_json::json!({"exit-code": 127}));
    }
    let out = run(&mut pidns(
        state.path(),
        &["--", "/nonexistent/nschain-cmd"],
    ));
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        stderr(&out).trim(),
        "pidns: fatal: unable to execute /nonexistent/nschain-cmd: No such file or directory"
    );
    audit::assert_nothing_left(&before, state.path(), None, &[]);
}

#[test]
fn rootless_under_userns() {
    if !require(is_root(), "root (to switch to uid 65534)")
        || !require(rootless_userns_works(), "unprivileged user namespaces")
    {
        return;
    }
    let state = scratch();
    // The userns link of this workspace if it is built, else util-linux unshare.
    let userns: Vec<String> = if bin_dir().join("userns").exists() {
        vec![
            bin("userns").display().to_string(),
            "--map-root".into(),
            "--".into(),
        ]
    } else {
        eprintln!("userns is not built: using unshare --user --map-root-user");
        vec!["unshare".into(), "--user".into(), "--map-root-user".into()]
    };
    let mut cmd = Command::new(&userns[0]);
    with_env(&mut cmd, state.path());
    cmd.args(&userns[1..])
        .args([bin("pidns").to_str().unwrap(), "--", "sh", "-c"])
        .arg("echo $$; id -u; kill -TERM $$; echo unreachable");
    let out = run(&mut as_nobody(&cmd));
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert_eq!(stdout(&out), "2\n0");
    // The init of a rootless container sheds the same way, and exit statuses pass.
    let mut cmd = Command::new(&userns[0]);
    with_env(&mut cmd, state.path());
    cmd.args(&userns[1..]).args([
        bin("pidns").to_str().unwrap(),
        "--no-init",
        "--",
        "sh",
        "-c",
        "echo $$; exit 3",
    ]);
    let out = run(&mut as_nobody(&cmd));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1");
}

#[test]
fn rootless_pidns_without_a_user_namespace_fails_with_a_hint() {
    if !root() {
        return;
    }
    let state = scratch();
    let out = run(&mut as_nobody(&pidns(state.path(), &["--", "true"])));
    assert_fatal(&out, "pidns");
    assert!(
        stderr(&out).contains("unable to unshare the pid namespace: Operation not permitted"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("pidns: hint: "), "{}", stderr(&out));
}

#[test]
fn joined_processes_see_only_the_containers_pids() {
    if !root() {
        return;
    }
    let state = scratch();
    let name = format!("pidjoin{}", unique());
    let (mut monitor, status) =
        spawn_with_status(state.path(), &["--name", &name, "--", "sleep", "1000"]);
    let init = init_pid(&status);
    wait_for_child(init, "sleep");
    // ps needs a /proc of the joined namespace: unshare -m mounts one privately.
    let ps = [
        "unshare",
        "--mount",
        "--mount-proc",
        "ps",
        "-e",
        "-o",
        "pid=,comm=",
    ];
    for target in [
        name.clone(),
        init.to_string(),
        format!("/proc/{init}/ns/pid"),
    ] {
        let mut args = vec!["--join", target.as_str(), "--"];
        args.extend(ps);
        let out = ok(&mut pidns(state.path(), &args));
        let procs: Vec<(u32, String)> = out
            .lines()
            .map(|l| {
                let mut f = l.split_whitespace();
                (
                    f.next().unwrap().parse().unwrap(),
                    f.next().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(procs[0], (1, "pidns".to_owned()), "{target}: {out}");
        assert_eq!(procs[1], (2, "sleep".to_owned()), "{target}: {out}");
        assert_eq!(procs.len(), 3, "{target}: {out}");
        assert_eq!(procs[2].1, "ps", "{target}: {out}");
        // The joined process is not PID 1 and reports its own exit status.
        let out = run(&mut pidns(
            state.path(),
            &["--join", &target, "--", "sh", "-c", "echo $$; exit 7"],
        ));
        assert_eq!(out.status.code(), Some(7));
        assert!(stdout(&out).parse::<u32>().unwrap() > 2);
    }
    signal(monitor.id(), "TERM");
    assert_eq!(
        finish(&mut monitor, Duration::from_secs(5)).code(),
        Some(143)
    );
    // Once the container is gone, its name no longer joins.
    let out = run(&mut pidns(state.path(), &["--join", &name, "--", "true"]));
    assert_fatal(&out, "pidns");
}

#[test]
fn a_pinned_namespace_can_be_joined_while_the_container_runs() {
    if !root() {
        return;
    }
    let state = scratch();
    let pin = state.path().join("pid.pin");
    let (mut monitor, status) = spawn_with_status(
        state.path(),
        &["--pin", pin.to_str().unwrap(), "--", "sleep", "1000"],
    );
    let init = init_pid(&status);
    wait_for_child(init, "sleep");
    let out = ok(&mut pidns(
        state.path(),
        &["--join", pin.to_str().unwrap(), "--", "sh", "-c", "echo $$"],
    ));
    assert_eq!(out, "3");
    signal(monitor.id(), "TERM");
    assert_eq!(
        finish(&mut monitor, Duration::from_secs(5)).code(),
        Some(143)
    );
    // The pin keeps the namespace, not its processes: a dead namespace cannot be joined.
    let out = run(&mut pidns(
        state.path(),
        &["--join", pin.to_str().unwrap(), "--", "true"],
    ));
    assert_fatal(&out, "pidns");
    assert!(
        stderr(&out).contains("pidns: hint: the joined pid namespace is dead"),
        "{}",
        stderr(&out)
    );
    ok(Command::new("umount").arg(&pin));
    std::fs::remove_file(&pin).unwrap();
}

#[test]
fn bad_values_are_125_and_leave_nothing_behind() {
    if !root() {
        return;
    }
    let state = scratch();
    let before = audit::snapshot(state.path(), None);
    let not_a_dir = state.path().join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let bad_pin = not_a_dir.join("pin");
    let cases: Vec<Vec<String>> = [
        vec!["--status-fd", "x"],
        vec!["--status-fd", "-1"],
        vec!["--status-fd", "99"],
        vec!["--status-fd", "2", "--info-fd", "2"],
        vec!["--info-fd", "x"],
        vec!["--info-fd", "98"],
        vec!["--join", "bogus"],
        vec!["--join", ""],
        vec!["--join", "/nonexistent/ns"],
        vec!["--join", "/proc/self/ns/net"],
        vec!["--join", "0"],
        vec!["--join", "999999999"],
        vec!["--name", "bad name"],
        vec!["--pin", bad_pin.to_str().unwrap()],
        vec!["--no-init", "--join", "1"],
        vec!["--no-such-flag"],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(str::to_owned).collect())
    .collect();
    for case in cases {
        let mut args: Vec<&str> = case.iter().map(String::as_str).collect();
        args.extend(["--", "sh", "-c", "echo ran"]);
        let out = run(&mut pidns(state.path(), &args));
        assert_fatal(&out, "pidns");
        assert_eq!(stdout(&out), "", "{case:?} ran the command");
    }
    audit::assert_nothing_left(&before, state.path(), None, &[]);
}

#[test]
fn help_says_why_mntns_comes_after_pidns() {
    let state = scratch();
    let out = ok(&mut pidns(state.path(), &["--help"]));
    assert!(out.contains("Put mntns AFTER pidns"), "{out}");
    assert!(
        out.contains("pid namespace of the process that mounts"),
        "{out}"
    );
    for flag in [
        "--no-init",
        "--pgroup",
        "--die-with-parent",
        "--status-fd",
        "--join",
    ] {
        assert!(out.contains(flag), "{flag}");
    }
}

#[test]
fn proc_mounted_after_pidns_shows_the_container_and_before_it_the_host() {
    if !root() {
        return;
    }
    let state = scratch();
    // What `pidns -- mntns --proc` does (mntns after pidns): /proc of the new namespace.
    let ps = ["ps", "-e", "-o", "pid=,comm="];
    let mut args = vec!["--", "unshare", "--mount", "--mount-proc"];
    args.extend(ps);
    let out = ok(&mut pidns(state.path(), &args));
    let procs: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(procs, ["1 pidns", "2 ps"], "{out}");
    // In the wrong order, /proc was mounted by a process of the host's namespace.
    let mut cmd = Command::new("unshare");
    with_env(&mut cmd, state.path());
    cmd.args([
        "--mount",
        "--mount-proc",
        bin("pidns").to_str().unwrap(),
        "--",
    ])
    .args(ps);
    let out = ok(&mut cmd);
    assert!(out.lines().count() > 3, "{out}");
    assert!(!out.lines().any(|l| l.trim() == "2 ps"), "{out}");
}

#[test]
fn a_named_container_is_registered_while_it_runs_and_unregistered_after() {
    if !root() {
        return;
    }
    let state = scratch();
    std::fs::create_dir_all(state.path().join("links")).unwrap();
    std::os::unix::fs::symlink("/bin/sh", state.path().join("links/utsns")).unwrap();
    let before = audit::snapshot(state.path(), None);
    let name = format!("pidreg{}", unique());
    let info = state.path().join("info.json");
    let mut cmd = Command::new("sh");
    with_env(&mut cmd, state.path());
    cmd.arg("-c")
        .arg("exec \"$@\" 4>\"$INFO\"")
        .arg("sh")
        .arg(bin("pidns"))
        .env("INFO", &info)
        .args(["--name", &name, "--info-fd", "4", "--status-fd", "1"])
        .arg("--")
        // What the next link receives: a shell named like a link (COMMAND itself gets no
        // NSCHAIN_NAME, issue 19).
        .arg(state.path().join("links/utsns"))
        .args([
            "-c",
            "echo \"name=$NSCHAIN_NAME\"; cat /proc/self/status | grep NSpid",
        ]);

    let out = ok(&mut cmd);
    let lines: Vec<&str> = out.lines().collect();
    let first: Value = serde_json::from_str(lines[0]).unwrap();
    // The next links see the chain's name; the record names PID 1 by its host pid.
    assert_eq!(lines[1], format!("name={name}"));
    let record: Value = serde_json::from_str(&std::fs::read_to_string(&info).unwrap()).unwrap();
    assert_eq!(record["tool"], "pidns");
    assert_eq!(record["pid"], first["pid"]);
    assert_eq!(record["ns"]["type"], "pid");
    assert_eq!(record["ns"]["inode"], first["ns"]["pid"]);
    assert_eq!(record["init"], true);
    std::fs::remove_file(&info).unwrap();
    // Once the container ends, its registration is gone, also for a chain named earlier.
    audit::assert_nothing_left(&before, state.path(), None, &[]);
    if bin_dir().join("utsns").exists() {
        let name = format!("pidreg{}", unique());
        ok(tool("utsns", state.path()).args(["--name", &name, "--", "pidns", "--", "true"]));
        audit::assert_nothing_left(&before, state.path(), None, &[]);
    }
}

/// COMMAND starts only once PID 1 has shed its root and capabilities: with the init's first
/// shedding step held back 400 ms (strace delays its `fsopen`), COMMAND still finds PID 1
/// holding only CAP_KILL and an empty root. Before the wait, COMMAND ran at once and saw the
/// init with every capability and the caller's root behind /proc/1/root (a container with
/// CAP_SYS_PTRACE could reach the host's files there).
#[test]
fn command_starts_only_after_the_init_has_shed() {
    if !root() || !require(have("strace"), "strace (delay injection)") {
        return;
    }
    let state = scratch();
    let mut cmd = Command::new("strace");
    with_env(&mut cmd, state.path());
    cmd.args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=fsopen"])
        .args(["-e", "inject=fsopen:delay_enter=400000"])
        .arg(bin("pidns"))
        .args([
            "--",
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
        ])
        .arg("mount -t proc proc /proc; grep CapEff /proc/1/status; ls -A /proc/1/root | wc -l");
    let out = run(&mut cmd);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    // The payload sees the init as it stays: CAP_KILL alone, an empty root.
    assert_eq!(text, "CapEff:\t0000000000000020\n0", "{}", stderr(&out));
}
