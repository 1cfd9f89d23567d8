//! timens: the container's monotonic and boot-time clocks shifted (uptime), rootless under
//! userns, pinned and joined with the offsets kept, in a full chain before pidns; bad input
//! refused.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use nschain_tests::*;

fn timens(state: &Path, args: &[&str]) -> Command {
    let mut cmd = tool("timens", state);
    cmd.args(args);
    cmd
}

/// What the caller's clocks read, in seconds (the test runs in the host's time namespace).
fn host_clock(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we own.
    assert_eq!(unsafe { libc::clock_gettime(clock, &mut ts) }, 0);
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn host_uptime() -> f64 {
    host_clock(libc::CLOCK_BOOTTIME)
}

/// The first number of /proc/uptime as printed by `cat /proc/uptime`.
fn uptime_of(text: &str) -> f64 {
    text.split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not /proc/uptime: {text:?}"))
}

/// Runs `cmd` and returns what it printed of `clock` with the host's reading before and
/// after it, so that an offset can be checked to ±1 s.
fn reading(
    cmd: &mut Command,
    read: impl Fn(&str) -> f64,
    clock: libc::clockid_t,
) -> (f64, f64, f64) {
    let before = host_clock(clock);
    let out = ok(cmd);
    let after = host_clock(clock);
    (before, read(&out), after)
}

fn assert_shifted(got: (f64, f64, f64), offset: f64, what: &str) {
    let (before, value, after) = got;
    assert!(
        value >= before + offset - 1.0 && value <= after + offset + 1.0,
        "{what}: read {value}, the host read {before}..{after}: expected an offset of {offset} s (±1 s)"
    );
}

/// Runs `cmd`, which prints /proc/uptime, and checks that it read `n` s plus at most the time
/// the command took (/proc/uptime shows hundredths, rounded down).
fn assert_uptime_set(cmd: &mut Command, n: f64, what: &str) {
    let started = host_uptime();
    let uptime = uptime_of(&ok(cmd));
    let took = host_uptime() - started;
    assert!(
        uptime >= n - 0.01 && uptime <= n + took,
        "{what}: read {uptime}, expected {n} s to {n} + {took:.3} s"
    );
}

#[test]
fn boottime_shifts_the_uptime_the_command_reads() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let got = reading(
        &mut timens(
            state.path(),
            &["--boottime", "1000", "--", "cat", "/proc/uptime"],
        ),
        uptime_of,
        libc::CLOCK_BOOTTIME,
    );
    assert_shifted(got, 1000.0, "timens --boottime 1000 -- cat /proc/uptime");
    // A fraction and a negative offset are exact to the nanosecond in the kernel's listing.
    let offsets = ok(&mut timens(
        state.path(),
        &[
            "--boottime",
            "-1.5",
            "--",
            "cat",
            "/proc/self/timens_offsets",
        ],
    ));
    assert!(
        offsets.contains("boottime")
            && offsets
                .lines()
                .any(|l| l.split_whitespace().eq(["boottime", "-2", "500000000"])),
        "{offsets}"
    );
}

#[test]
fn monotonic_moves_clock_monotonic_and_nothing_else() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let before = (host_clock(libc::CLOCK_MONOTONIC), host_uptime());
    let out = ok(&mut timens(
        state.path(),
        &["--monotonic", "86400", "--", "nsprobe"],
    ));
    let after = (host_clock(libc::CLOCK_MONOTONIC), host_uptime());
    let probe = probe_json(&out);
    let monotonic = probe["clocks"]["monotonic"].as_f64().unwrap();
    let boottime = probe["clocks"]["boottime"].as_f64().unwrap();
    assert_shifted((before.0, monotonic, after.0), 86400.0, "CLOCK_MONOTONIC");
    assert_shifted(
        (before.1, boottime, after.1),
        0.0,
        "CLOCK_BOOTTIME (not asked for)",
    );
    assert_ne!(
        probe["ns"]["time"],
        own_ns_inode("time"),
        "a new time namespace"
    );
    assert_eq!(
        probe["ns"]["uts"],
        own_ns_inode("uts"),
        "only the time namespace changes"
    );
}

#[test]
fn uptime_sets_what_proc_uptime_reads() {
    if !need::root() {
        return;
    }
    let state = scratch();
    assert_uptime_set(
        &mut timens(
            state.path(),
            &["--uptime", "5", "--", "cat", "/proc/uptime"],
        ),
        5.0,
        "timens --uptime 5",
    );
    // A new namespace without offsets reads the caller's clocks.
    let got = reading(
        &mut timens(state.path(), &["--", "cat", "/proc/uptime"]),
        uptime_of,
        libc::CLOCK_BOOTTIME,
    );
    assert_shifted(got, 0.0, "timens without offsets");
}

#[test]
fn rootless_under_a_user_namespace_and_refused_without_one() {
    if !need::rootless() {
        return;
    }
    let state = scratch();
    let mut chain = tool("userns", state.path());
    chain.args([
        "--",
        "timens",
        "--boottime",
        "100",
        "--",
        "cat",
        "/proc/uptime",
    ]);
    let got = reading(&mut as_nobody(&chain), uptime_of, libc::CLOCK_BOOTTIME);
    assert_shifted(got, 100.0, "userns -- timens --boottime 100 as uid 65534");

    // Without userns the time namespace would belong to the host: refused, with the rule,
    // and the pin file it would have made is gone again.
    let pin = state.path().join("refused.pin");
    let marker = state.path().join("ran");
    let alone = timens(
        state.path(),
        &[
            "--pin",
            pin.to_str().unwrap(),
            "--boottime",
            "100",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
    );
    let out = run(&mut as_nobody(&alone));
    assert_fatal(&out, "timens");
    assert!(
        stderr(&out).contains("timens: hint: ") && stderr(&out).contains("(DESIGN.md §2, rule 1)"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists(), "the command ran");
    assert!(!pin.exists(), "the pin file was left behind");
}

#[test]
fn a_pinned_namespace_keeps_its_offsets_when_joined() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let pin = state.path().join("time.pin");
    let pin_s = pin.to_str().unwrap();
    ok(&mut timens(
        state.path(),
        &[
            "--pin",
            pin_s,
            "--boottime",
            "1000",
            "--monotonic",
            "50",
            "--",
            "true",
        ],
    ));
    let got = reading(
        &mut timens(
            state.path(),
            &["--join", pin_s, "--", "cat", "/proc/uptime"],
        ),
        uptime_of,
        libc::CLOCK_BOOTTIME,
    );
    assert_shifted(got, 1000.0, "joined through the pin");

    // A join never rewrites the clocks of a running namespace.
    let marker = state.path().join("ran");
    for setting in [["--boottime", "5"], ["--monotonic", "5"], ["--uptime", "5"]] {
        let out = run(&mut timens(
            state.path(),
            &[
                "--join",
                pin_s,
                setting[0],
                setting[1],
                "--",
                "touch",
                marker.to_str().unwrap(),
            ],
        ));
        assert_fatal(&out, "timens");
        assert!(
            stderr(&out).contains("--join enters a time namespace whose clocks are set already"),
            "{}",
            stderr(&out)
        );
        assert!(!marker.exists(), "{setting:?}: the command ran");
    }
    let offsets = ok(&mut timens(
        state.path(),
        &["--join", pin_s, "--", "cat", "/proc/self/timens_offsets"],
    ));
    let words: Vec<Vec<&str>> = offsets
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(words.contains(&vec!["boottime", "1000", "0"]), "{offsets}");
    assert!(words.contains(&vec!["monotonic", "50", "0"]), "{offsets}");
    ok(Command::new("umount").arg(&pin));
}

#[test]
fn a_named_chain_is_listed_joined_and_entered_by_nsps_exec() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let name = "timens-join-test";
    let mut first = timens(
        state.path(),
        &["--name", name, "--boottime", "1000", "--", "sleep", "30"],
    )
    .spawn()
    .unwrap();
    let mut listed = String::new();
    for _ in 0..100 {
        listed = ok(&mut tool("nsps", state.path()));
        if listed.contains(name) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let row = listed
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("nsps does not list {name}:\n{listed}"));
    assert!(row.split_whitespace().any(|w| w == "time"), "{row}");
    let detail = ok(tool("nsps", state.path()).arg(name));
    assert!(
        detail.contains("clocks: boottime 1000 s, monotonic 0 s"),
        "{detail}"
    );

    let mut exec = tool("nsps", state.path());
    exec.args(["exec", name, "--", "cat", "/proc/uptime"]);
    assert_shifted(
        reading(&mut exec, uptime_of, libc::CLOCK_BOOTTIME),
        1000.0,
        "nsps exec",
    );
    let joined = reading(
        &mut timens(state.path(), &["--join", name, "--", "cat", "/proc/uptime"]),
        uptime_of,
        libc::CLOCK_BOOTTIME,
    );
    assert_shifted(joined, 1000.0, "timens --join NAME");
    first.kill().unwrap();
    first.wait().unwrap();
}

/// `nsps ARGS`, as uid 65534 when `nobody`.
fn nsps(state: &Path, nobody: bool, args: &[&str]) -> Command {
    let mut cmd = tool("nsps", state);
    cmd.args(args);
    match nobody {
        true => as_nobody(&cmd),
        false => cmd,
    }
}

/// Starts `chain` (named `name`, ending in a long sleep), waits until nsps lists it, and
/// returns what `nsps exec NAME -- cat /proc/uptime` reads.
fn uptime_through_nsps_exec(
    state: &Path,
    mut chain: Command,
    name: &str,
    nobody: bool,
) -> (f64, f64, f64) {
    let mut running = chain.spawn().unwrap();
    let listed = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        ok(&mut nsps(state, nobody, &[])).contains(name)
    });
    assert!(listed, "{name} never listed");
    let mut exec = nsps(state, nobody, &["exec", name, "--", "cat", "/proc/uptime"]);
    let got = reading(&mut exec, uptime_of, libc::CLOCK_BOOTTIME);
    running.kill().unwrap();
    running.wait().unwrap();
    got
}

#[test]
fn nsps_exec_joins_the_clocks_on_either_side_of_a_user_namespace() {
    if !need::rootless() {
        return;
    }
    // Rootful: the time namespace belongs to the host's user namespace, made before userns.
    let state = scratch();
    let rootful = timens(
        state.path(),
        &[
            "--name",
            "timens-rootful",
            "--boottime",
            "500",
            "--",
            "userns",
            "--map-auto",
            "--",
            "pidns",
            "--",
            "sleep",
            "30",
        ],
    );
    let got = uptime_through_nsps_exec(state.path(), rootful, "timens-rootful", false);
    assert_shifted(
        got,
        500.0,
        "nsps exec, time namespace outside the user namespace",
    );
    // Rootless: owned by the chain's user namespace, joined after it (a state directory of
    // its own: root's is not uid 65534's to write).
    let state = scratch();
    let mut rootless = tool("userns", state.path());
    rootless.args([
        "--name",
        "timens-rootless",
        "--",
        "timens",
        "--boottime",
        "700",
        "--",
        "pidns",
        "--",
        "sleep",
        "30",
    ]);
    let got = uptime_through_nsps_exec(state.path(), as_nobody(&rootless), "timens-rootless", true);
    assert_shifted(
        got,
        700.0,
        "nsps exec as uid 65534, time namespace inside the user namespace",
    );
}

#[test]
fn info_fd_names_the_namespace_the_link_itself_entered() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let mut cmd = Command::new("sh");
    with_env(&mut cmd, state.path());
    cmd.args([
        "-c",
        "timens --uptime 7 --monotonic -0.5 --info-fd 3 -- nsprobe 3>info.json >probe.json && cat info.json probe.json",
    ])
    .current_dir(state.path());
    let before = host_uptime();
    let out = ok(&mut cmd);
    let after = host_uptime();
    let mut lines = out.lines();
    let info = probe_json(lines.next().unwrap());
    let probe = probe_json(lines.next().unwrap());
    assert_eq!(info["tool"], "timens");
    assert_eq!(info["ns"]["type"], "time");
    assert_eq!(info["ns"]["inode"], probe["ns"]["time"]);
    assert_eq!(
        info["pid"], probe["pid"],
        "timens execs: the payload keeps its pid"
    );
    assert_eq!(info["offsets"]["monotonic"], "-0.5");
    let boottime: f64 = info["offsets"]["boottime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (7.0 - after..=7.0 - before).contains(&boottime),
        "--uptime 7 wrote a boot-time offset of {boottime}"
    );
}

#[test]
fn in_a_full_chain_before_pidns_init_and_payload_share_the_offset() {
    if !need::root() || !need::busybox() {
        return;
    }
    let dir = scratch();
    let root = roots::busybox_root(dir.path(), &["sh", "cat", "readlink", "test", "sleep"]);
    let name = "timens-chain-test";
    // The payload reports, then waits for the test to look at its init from the host (a
    // container cannot read its non-dumpable init's namespace links).
    let script = "cat /proc/uptime; readlink /proc/self/ns/time; \
                  while ! test -e /done; do sleep 0.05; done";
    let before = host_uptime();
    let mut chain = timens(
        dir.path(),
        &[
            "--name",
            name,
            "--boottime",
            "100000",
            "--",
            "ipcns",
            "--",
            "utsns",
            "--",
            "pidns",
            "--",
            "mntns",
            "--rootfs",
            root.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            script,
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(chain.stdout.take().unwrap()).lines();
    let uptime = uptime_of(&lines.next().unwrap().unwrap());
    let payload_ns = lines.next().unwrap().unwrap();
    let after = host_uptime();
    let listed = probe_json(&ok(tool("nsps", dir.path()).args(["--json", name])));
    let init = listed["pid"].as_u64().unwrap();
    let init_ns = std::fs::read_link(format!("/proc/{init}/ns/time")).unwrap();
    std::fs::write(root.join("done"), "").unwrap();
    assert!(chain.wait().unwrap().success());
    assert_shifted((before, uptime, after), 100000.0, "the container's uptime");
    assert_eq!(
        init_ns.to_str().unwrap(),
        payload_ns,
        "the container's init runs in the payload's time namespace"
    );
    assert_ne!(payload_ns, format!("time:[{}]", own_ns_inode("time")));

    // Rootless, after userns, the same chain.
    if !need::rootless() {
        return;
    }
    let mut chain = tool("userns", dir.path());
    chain.args([
        "--",
        "timens",
        "--uptime",
        "0",
        "--",
        "pidns",
        "--",
        "mntns",
        "--rootfs",
        root.to_str().unwrap(),
        "--",
        "cat",
        "/proc/uptime",
    ]);
    assert_uptime_set(
        &mut as_nobody(&chain),
        0.0,
        "userns -- timens --uptime 0 -- ...",
    );
}

fn assert_refused(out: &Output, args: &[&str], message: &str) {
    assert_fatal(out, "timens");
    assert!(
        stderr(out).contains(message),
        "{args:?}: expected {message:?} in {}",
        stderr(out)
    );
    assert_eq!(
        stderr(out)
            .lines()
            .filter(|l| l.contains(": fatal: "))
            .count(),
        1,
        "{args:?}: one fatal line: {}",
        stderr(out)
    );
}

#[test]
fn bad_values_exit_125_and_leave_nothing_behind() {
    let state = scratch();
    let pin = state.path().join("time.pin");
    let pin_s = pin.to_str().unwrap();
    let mut cases: Vec<(Vec<&str>, &str)> = Vec::new();
    for flag in ["--boottime", "--monotonic", "--uptime"] {
        cases.extend([
            (vec![flag, "abc"], "is not a number of seconds"),
            (vec![flag, "1.2.3"], "is not a number of seconds"),
            (vec![flag, ""], "is not a number of seconds"),
            (vec![flag, "1e3"], "is not a number of seconds"),
            (vec![flag, "1.9999999999"], "more than 9 decimals"),
            (vec![flag, "99999999999999999999999"], "out of range"),
            (vec![flag, "9999999999"], "out of range"),
        ]);
    }
    cases.extend([
        (vec!["--boottime", "-999999999"], "cannot read less than 0"),
        (
            vec!["--monotonic", "-999999999.5"],
            "cannot read less than 0",
        ),
        (vec!["--uptime", "-1"], "is negative"),
        (
            vec!["--monotonic", "4611686000"],
            "the kernel allows at most",
        ),
        (vec!["--realtime", "5"], "realtime clock"),
        (
            vec!["--uptime", "5", "--boottime", "5"],
            "cannot be used with",
        ),
        (vec!["--join", "/proc/self/ns/uts"], "not time"),
        (
            vec!["--join", "/proc/self/ns/time", "--boottime", "1"],
            "--join enters a time namespace",
        ),
        (vec!["--name", "bad/name"], "invalid chain name"),
        (vec!["--info-fd", "x"], "not a file descriptor number"),
    ]);
    let marker = state.path().join("ran");
    for (args, message) in cases {
        // Each with a pin: a refusal must not leave the pin file behind either.
        let mut cmd = timens(state.path(), &args);
        if !args.contains(&"--join") {
            cmd.args(["--pin", pin_s]);
        }
        cmd.args(["--", "touch", marker.to_str().unwrap()]);
        let out = run(&mut cmd);
        assert_refused(&out, &args, message);
        assert!(!marker.exists(), "{args:?}: the command ran");
        assert!(!pin.exists(), "{args:?}: the pin file was left behind");
        let chains = state.path().join("run/chains");
        let left: Vec<_> = std::fs::read_dir(&chains)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{args:?}: left behind {left:?}");
    }
}
