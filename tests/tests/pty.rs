//! Issue 18, item 3: `nsps exec -t` / `-i` and `mntns --tty` give COMMAND a terminal of the
//! container's own, like `docker exec -it`. Each test drives the tools through a real pty made
//! here (the harness plays the user's terminal emulator: it holds the master, sets the window
//! size, types, and reads what is shown), with the tool as the session leader's child on it,
//! as from an interactive shell.

mod escape_common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use escape_common::*;
use nschain_tests::term::{Term, COLS, ROWS};
use nschain_tests::Registrations;

/// Starts a named chain that sleeps; returns once its last link `kind` has registered.
fn start(lab: &Lab, argv: &[String], name: &str, kind: &str) -> Child {
    let child = lab
        .in_host("", false, argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let registration = lab.state.join("run/chains").join(name);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !registration.has_record(kind) {
        assert!(Instant::now() < deadline, "{name} did not register");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// A rootful container over a copy-on-write view of the host's root (its coreutils: `tty`,
/// `stty`), with its own /dev/pts.
fn start_container(lab: &Lab, name: &str) -> Child {
    let argv = lab.chain_argv(
        Config::Rootful,
        Some(name),
        &["--overlay", "/", "--rm"],
        &["sleep", "600"],
    );
    start(lab, &argv, name, "mnt")
}

/// Stops the chain as a user would (SIGTERM to the process they started, whose pid the
/// first link registered: it forwards it to the payload), so that it cleans up after itself.
fn stop(lab: &Lab, mut chain: Child, first: &str, name: &str) {
    let registration = lab.state.join(format!("run/chains/{name}"));
    let value = registration.record(first).expect("the first link's record");
    let pid = value["pid"].as_i64().unwrap() as i32;
    // SAFETY: kill(2) on the chain this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = chain.wait();
    lab.assert_clean();
}

fn nsps(lab: &Lab, args: &[&str]) -> Command {
    let mut cmd = Command::new(nschain_tests::bin("nsps"));
    cmd.args(args);
    lab.env(&mut cmd);
    cmd
}

/// What the command prints about its terminal: its name, the device of its node and of
/// /dev/pts, its size, and (from /proc) its pid, process group, session and the terminal's
/// foreground group.
const ABOUT_TTY: &str = r#"t=$(tty); echo "tty=$t"; echo "dev=$(stat -c %d "$t") pts=$(stat -c %d /dev/pts/ptmx)"; echo "size=$(stty size)"; set -- $(cut -d' ' -f5,6,8 /proc/$$/stat); echo "pid=$$ pgrp=$1 sid=$2 tpgid=$3""#;

fn field<'a>(shown: &'a str, key: &str) -> &'a str {
    let start = shown
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("no {key}= in:\n{shown}"))
        + key.len()
        + 1;
    shown[start..].lines().next().unwrap_or("").trim()
}

/// The terminal is a /dev/pts node of the container's devpts (not the host's), of the
/// caller's size, and COMMAND leads its session as the terminal's foreground group.
fn assert_own_terminal(shown: &str, rows: u16, cols: u16) {
    let tty = field(shown, "tty");
    assert!(tty.starts_with("/dev/pts/"), "tty: {tty}\n{shown}");
    let devs = field(shown, "dev");
    let (dev, pts) = devs.split_once(" pts=").unwrap();
    assert_eq!(
        dev, pts,
        "the pty is not in the container's devpts:\n{shown}"
    );
    let host_pts = std::fs::metadata("/dev/pts").unwrap().dev().to_string();
    assert_ne!(
        dev, host_pts,
        "the pty is in the host's devpts, not the container's:\n{shown}"
    );
    assert_eq!(field(shown, "size"), format!("{rows} {cols}"), "{shown}");
    let ids = field(shown, "pid");
    let words: Vec<&str> = ids.split([' ', '=']).collect();
    // pid P pgrp G sid S tpgid F
    let (pid, pgrp, sid, tpgid) = (words[0], words[2], words[4], words[6]);
    assert_eq!(pid, sid, "COMMAND does not lead its session:\n{shown}");
    assert_eq!(
        pgrp, tpgid,
        "COMMAND is not the terminal's foreground group:\n{shown}"
    );
}

#[test]
fn exec_t_gives_a_pty_of_the_containers_devpts_of_the_callers_size() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("ptyt");
    let chain = start_container(&lab, "ptyt");
    let mut term = Term::new();
    let status = term.run(&mut nsps(
        &lab,
        &["exec", "-t", "ptyt", "--", "sh", "-c", ABOUT_TTY],
    ));
    assert!(status.success(), "{status}:\n{}", term.shown);
    assert_own_terminal(&term.shown, ROWS, COLS);
    stop(&lab, chain, "net", "ptyt");
}

#[test]
fn a_resize_of_the_callers_window_is_seen_inside() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("ptyw");
    let chain = start_container(&lab, "ptyw");
    let mut term = Term::new();
    let script = r#"trap 'echo got-winch' WINCH; echo "before=$(stty size)"; echo ready
for i in $(seq 200); do s=$(stty size); [ "$s" = "44 122" ] && break; sleep 0.05; done
echo "after=$s""#;
    let mut child = term.spawn(&mut nsps(
        &lab,
        &["exec", "-t", "ptyw", "--", "sh", "-c", script],
    ));
    term.wait_for("ready");
    term.resize(44, 122);
    let status = term.wait_exit(&mut child);
    assert!(status.success(), "{status}:\n{}", term.shown);
    assert_eq!(field(&term.shown, "before"), format!("{ROWS} {COLS}"));
    assert_eq!(field(&term.shown, "after"), "44 122", "{}", term.shown);
    assert!(
        term.shown.contains("got-winch"),
        "no SIGWINCH inside:\n{}",
        term.shown
    );
    stop(&lab, chain, "net", "ptyw");
}

#[test]
fn ctrl_c_interrupts_the_command_and_nsps_returns_its_status() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("ptyc");
    let chain = start_container(&lab, "ptyc");
    let mut term = Term::new();
    let mut child = term.spawn(&mut nsps(
        &lab,
        &[
            "exec",
            "-it",
            "ptyc",
            "--",
            "sh",
            "-c",
            "echo ready; sleep 60; echo not-interrupted",
        ],
    ));
    term.wait_for("ready");
    // With -i the caller's terminal is raw: Ctrl-C travels as a byte to the container's pty,
    // whose line discipline signals COMMAND's foreground group there.
    assert!(
        !term.cooked(),
        "-i did not put the caller's terminal in raw mode"
    );
    std::thread::sleep(Duration::from_millis(300));
    term.write("\x03");
    let status = term.wait_exit(&mut child);
    assert_eq!(
        (status.code(), status.signal()),
        (Some(130), None),
        "nsps did not return the interrupted command's status:\n{}",
        term.shown
    );
    assert!(!term.shown.contains("not-interrupted"), "{}", term.shown);
    assert!(
        term.cooked(),
        "the caller's terminal was left in raw mode:\n{}",
        term.shown
    );
    // nsps, the proxy here, SIGKILLed: its guard restores the terminal it made raw.
    assert_killed_proxy_restores(
        &mut term,
        &mut nsps(
            &lab,
            &[
                "exec",
                "-it",
                "ptyc",
                "--",
                "sh",
                "-c",
                "echo ready; sleep 60",
            ],
        ),
        true,
    );
    stop(&lab, chain, "net", "ptyc");
}

/// Runs `cmd` (the process that proxies a pty to this terminal, in raw mode, or, with
/// `spawned_proxies` false, a wrapper of it) until COMMAND runs, SIGKILLs the proxy, and
/// checks the terminal comes back cooked with nothing left on it.
fn assert_killed_proxy_restores(term: &mut Term, cmd: &mut Command, spawned_proxies: bool) {
    term.shown.clear();
    let mut child = term.spawn(cmd);
    term.wait_for("ready");
    // Raw before the kill: without a restore by someone else, it stays so.
    assert!(!term.cooked(), "the proxy did not make the terminal raw");
    let proxy = match spawned_proxies {
        true => child.id() as i32,
        false => guards_parent(term),
    };
    // SAFETY: kill(2) on the proxy this test started.
    unsafe { libc::kill(proxy, libc::SIGKILL) };
    let status = term.wait_exit(&mut child);
    if spawned_proxies {
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !term.cooked() || !holders(&term.slave).is_empty() {
        assert!(
            Instant::now() < deadline,
            "after the proxy's SIGKILL: cooked={}, still on the terminal: {:?}",
            term.cooked(),
            holders(&term.slave)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The proxy, found as the parent of the guard it forked (`ttyguard`, on this terminal).
fn guards_parent(term: &Term) -> i32 {
    let guard = holders(&term.slave)
        .into_iter()
        .find_map(|h| h.strip_suffix(" ttyguard").map(str::to_owned))
        .unwrap_or_else(|| panic!("no ttyguard on the terminal: {:?}", holders(&term.slave)));
    let status = std::fs::read_to_string(format!("/proc/{guard}/status")).unwrap();
    let ppid = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap();
    ppid.trim().parse().unwrap()
}

/// The processes other than this one that hold `fd`'s terminal open (`PID COMM`).
fn holders(fd: &OwnedFd) -> Vec<String> {
    let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    let me = std::process::id().to_string();
    let pids = std::fs::read_dir("/proc").unwrap().flatten();
    pids.filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()) && *pid != me)
        .filter(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.flatten()
                    .any(|f| std::fs::read_link(f.path()).is_ok_and(|l| l == target))
            })
        })
        .map(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            format!("{pid} {}", comm.trim())
        })
        .collect()
}

#[test]
fn the_exit_status_comes_back_and_i_keeps_stdin_attached() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("ptys");
    let chain = start_container(&lab, "ptys");
    let mut term = Term::new();
    let status = term.run(&mut nsps(
        &lab,
        &["exec", "-t", "ptys", "--", "sh", "-c", "exit 7"],
    ));
    assert_eq!(status.code(), Some(7), "{}", term.shown);
    // Typed input reaches COMMAND with -it; the end of the session is its exit.
    let mut child = term.spawn(&mut nsps(
        &lab,
        &[
            "exec",
            "-it",
            "ptys",
            "--",
            "sh",
            "-c",
            "read l; echo \"got=$l\"; exit 9",
        ],
    ));
    std::thread::sleep(Duration::from_millis(500));
    term.write("typed-in\r");
    let status = term.wait_exit(&mut child);
    assert_eq!(status.code(), Some(9), "{}", term.shown);
    assert_eq!(field(&term.shown, "got"), "typed-in");
    // Without a terminal: -i passes stdin on, and without -i COMMAND reads nothing of it.
    for (flags, expected) in [(&["-i"][..], "piped-in\n"), (&[][..], "")] {
        let mut args = vec!["exec"];
        args.extend(flags);
        args.extend(["ptys", "--", "cat"]);
        let mut cmd = nsps(&lab, &args);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"piped-in\n");
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{flags:?}: {}", out.status);
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{flags:?}");
    }
    stop(&lab, chain, "net", "ptys");
}

#[test]
fn mntns_tty_gives_the_container_a_terminal_of_its_own_devpts() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("ptym");
    // Through pidns (its monitor proxies), and alone (mntns leaves a process outside).
    let chained = lab.chain_argv(
        Config::Rootful,
        None,
        &["--overlay", "/", "--rm", "--tty"],
        &["sh", "-c", &format!("{ABOUT_TTY}; exit 4")],
    );
    let alone: Vec<String> = [
        "mntns",
        "--overlay",
        "/",
        "--rm",
        "--tty",
        "--",
        "sh",
        "-c",
        &format!("{ABOUT_TTY}; exit 4"),
    ]
    .map(str::to_owned)
    .to_vec();
    for argv in [chained, alone] {
        let mut term = Term::new();
        let status = term.run(&mut lab.in_host("", false, &argv));
        assert_eq!(status.code(), Some(4), "{argv:?}:\n{}", term.shown);
        assert_own_terminal(&term.shown, ROWS, COLS);
        assert!(term.cooked(), "{argv:?} left the terminal raw");
    }
    // mntns's own proxy (the caller's process; the container is its child) SIGKILLed.
    let mut alone = Command::new(nschain_tests::bin("mntns"));
    lab.env(&mut alone);
    alone.args(["--tty", "--", "sh", "-c", "echo ready; sleep 60"]);
    assert_killed_proxy_restores(&mut Term::new(), &mut alone, true);
    // pidns's monitor SIGKILLed: its guard runs beside it, outside the container's pid
    // namespace (inside, it would die with the container).
    let chained = lab.chain_argv(
        Config::Rootful,
        None,
        &["--tty"],
        &["sh", "-c", "echo ready; sleep 60"],
    );
    assert_killed_proxy_restores(
        &mut Term::new(),
        &mut lab.in_host("", false, &chained),
        false,
    );
    lab.assert_clean();
}

const CLAIM: &str = "CVE-2017-5226 / claim: with -t, a joined process cannot push keystrokes into the caller's terminal";

/// The chain the attack joins: only a UTS namespace, so the joined process is root with
/// CAP_SYS_ADMIN and no seccomp filter (nothing but the terminal it is given defends).
fn start_bare(lab: &Lab, name: &str) -> Child {
    let argv: Vec<String> = ["utsns", "--name", name, "--", "sleep", "600"]
        .map(str::to_owned)
        .to_vec();
    start(lab, &argv, name, "uts")
}

fn legacy_tiocsti() -> String {
    std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti")
        .unwrap_or_else(|_| "absent".to_owned())
        .trim()
        .to_owned()
}

/// The slave's name (`/dev/pts/N` of the host's devpts).
fn slave_name(term: &Term) -> String {
    std::fs::read_link(format!("/proc/self/fd/{}", term.slave.as_raw_fd()))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn with_t_tiocsti_does_not_reach_the_callers_terminal() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("ptyi");
    let chain = start_bare(&lab, "ptyi");
    let marker = format!("nscpty{}x", std::process::id());
    // TIOCSTI of MARKER and a newline on the terminal at fd 1, byte by byte.
    let script = format!(
        "echo \"fd1=$(readlink /proc/$$/fd/1)\"; python3 -c 'import fcntl, termios\n\
         for c in b\"{marker}\\n\": fcntl.ioctl(1, termios.TIOCSTI, bytes([c]))' && echo pushed"
    );
    let attack = |flags: &[&str]| {
        let mut args = vec!["exec"];
        args.extend(flags);
        args.extend(["ptyi", "--", "sh", "-c", &script]);
        let mut term = Term::new();
        let status = term.run(&mut nsps(&lab, &args));
        assert!(status.success(), "{flags:?} {status}:\n{}", term.shown);
        term
    };
    // Without -t the joined process writes to the caller's terminal: as root with
    // CAP_SYS_ADMIN and no filter, its TIOCSTI types into it (CAP_SYS_ADMIN passes the check
    // whatever dev.tty.legacy_tiocsti says), and the caller's shell would run it next.
    let term = attack(&[]);
    let input = term.pending_input();
    assert!(
        term.shown.contains("pushed") && input.contains(&marker),
        "[{CLAIM}] TIOCSTI does not reach the caller's terminal without -t \
         (legacy_tiocsti={}), the test proves nothing: input {input:?}\n{}",
        legacy_tiocsti(),
        term.shown
    );
    assert_eq!(field(&term.shown, "fd1"), slave_name(&term));
    // With -t (stdin not copied in, so nothing the caller's terminal received would be
    // taken away from it): the same TIOCSTI succeeds, on the pty made for the process, and the
    // caller's terminal holds nothing.
    let term = attack(&["-t"]);
    let input = term.pending_input();
    assert!(
        term.shown.contains("pushed"),
        "the TIOCSTI did not run:\n{}",
        term.shown
    );
    assert!(
        !input.contains(&marker),
        "HOLE [{CLAIM}]: the caller's terminal holds {input:?}\n{}",
        term.shown
    );
    let fd1 = field(&term.shown, "fd1");
    assert!(
        fd1.starts_with("/dev/pts/") && fd1 != slave_name(&term),
        "fd 1 is {fd1}, the caller's terminal is {}",
        slave_name(&term)
    );
    assert!(term.cooked(), "the caller's terminal was left in raw mode");
    stop(&lab, chain, "uts", "ptyi");
}

/// `nsoci exec -t` without `--console-socket`: as runc when not detached, nsoci proxies the
/// caller's terminal to a pty of the container's own devpts, and returns the status.
#[test]
fn nsoci_exec_t_without_a_console_socket_proxies_the_callers_terminal() {
    if !need_root() {
        return;
    }
    let dir = nschain_tests::scratch();
    let bundle = dir.path();
    nschain_tests::roots::busybox_root(
        bundle,
        &["sh", "sleep", "tty", "stat", "stty", "cut", "echo"],
    );
    let nsoci = |args: &[&str]| {
        let mut cmd = nschain_tests::tool("nsoci", bundle);
        cmd.arg("--root").arg(bundle.join("state")).args(args);
        cmd
    };
    nschain_tests::ok(nsoci(&["spec"]).current_dir(bundle));
    let file = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    config["root"]["path"] = "root".into();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["sleep", "1000"]);
    std::fs::write(&file, config.to_string()).unwrap();
    let created = nsoci(&["create", "--bundle", bundle.to_str().unwrap(), "pt"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(created.success());
    let mut term = Term::new();
    let script = format!("{ABOUT_TTY}; exit 7");
    let status = term.run(&mut nsoci(&["exec", "-t", "pt", "sh", "-c", &script]));
    nschain_tests::ok(&mut nsoci(&["delete", "--force", "pt"]));
    assert_eq!(status.code(), Some(7), "{status}:\n{}", term.shown);
    assert_own_terminal(&term.shown, ROWS, COLS);
    // The caller's terminal is as it was (raw mode only while the proxy ran).
    assert!(term.cooked(), "{}", term.shown);
}
