//! utsns: its own hostname and domainname, joined, pinned, named; bad input refused.

use std::process::{Command, Stdio};
use std::time::Duration;

use nschain_tests::*;

fn utsns(state: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = tool("utsns", state);
    cmd.args(args);
    cmd
}

/// The run and data directories hold nothing (bad input leaves nothing behind).
fn assert_state_empty(state: &std::path::Path) {
    for dir in ["run/chains", "data"] {
        let path = state.join(dir);
        let entries: Vec<_> = std::fs::read_dir(&path)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(
            entries.is_empty(),
            "left behind in {}: {entries:?}",
            path.display()
        );
    }
}

#[test]
fn the_hostname_is_set_inside_and_unchanged_outside() {
    require(is_root(), "root");
    let state = scratch();
    let before = host_hostname();
    let out = ok(&mut utsns(
        state.path(),
        &[
            "--hostname",
            "web1",
            "--domainname",
            "example.org",
            "--",
            "nsprobe",
        ],
    ));
    let probe = probe_json(&out);
    assert_eq!(probe["hostname"], "web1");
    assert_eq!(probe["domainname"], "example.org");
    assert_ne!(probe["ns"]["uts"], own_ns_inode("uts"));
    assert_eq!(
        probe["ns"]["ipc"],
        own_ns_inode("ipc"),
        "only the uts namespace changes"
    );
    assert_eq!(host_hostname(), before);
}

#[test]
fn two_chains_use_the_same_hostname_at_once() {
    require(is_root(), "root");
    let state = scratch();
    let spawn = || {
        utsns(
            state.path(),
            &["--hostname", "same", "--", "sh", "-c", "sleep 0.3; nsprobe"],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let a = probe_json(&stdout(&a.wait_with_output().unwrap()));
    let b = probe_json(&stdout(&b.wait_with_output().unwrap()));
    assert_eq!(a["hostname"], "same");
    assert_eq!(b["hostname"], "same");
    assert_ne!(a["ns"]["uts"], b["ns"]["uts"], "two separate namespaces");
}

#[test]
fn a_pinned_namespace_can_be_joined_later() {
    require(is_root(), "root");
    let state = scratch();
    let pin = state.path().join("uts.pin");
    ok(&mut utsns(
        state.path(),
        &[
            "--pin",
            pin.to_str().unwrap(),
            "--hostname",
            "pinned",
            "--",
            "true",
        ],
    ));
    let joined = ok(&mut utsns(
        state.path(),
        &["--join", pin.to_str().unwrap(), "--", "hostname"],
    ));
    assert_eq!(joined, "pinned");
    ok(Command::new("umount").arg(&pin));
}

#[test]
fn a_running_chain_is_joined_by_pid_and_by_name() {
    require(is_root(), "root");
    let state = scratch();
    let mut first = utsns(
        state.path(),
        &[
            "--name",
            "uts-join-test",
            "--hostname",
            "running",
            "--",
            "sleep",
            "30",
        ],
    )
    .spawn()
    .unwrap();
    let pid = first.id().to_string();
    let mut by_name = String::new();
    for _ in 0..100 {
        let out = run(&mut utsns(
            state.path(),
            &["--join", "uts-join-test", "--", "hostname"],
        ));
        if out.status.success() {
            by_name = stdout(&out);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(by_name, "running");
    assert_eq!(
        ok(&mut utsns(
            state.path(),
            &["--join", &pid, "--", "hostname"]
        )),
        "running"
    );

    // The name is taken while the chain runs, and free again once it is gone.
    let clash = run(&mut utsns(
        state.path(),
        &["--name", "uts-join-test", "--", "true"],
    ));
    assert_fatal(&clash, "utsns");
    assert!(
        stderr(&clash).contains("in use by a running chain"),
        "{}",
        stderr(&clash)
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let gone = run(&mut utsns(
        state.path(),
        &["--join", "uts-join-test", "--", "true"],
    ));
    assert_fatal(&gone, "utsns");
    ok(&mut utsns(
        state.path(),
        &["--name", "uts-join-test", "--", "true"],
    ));
}

#[test]
fn joining_a_namespace_of_another_type_fails() {
    let state = scratch();
    let out = run(&mut utsns(
        state.path(),
        &["--join", "/proc/self/ns/net", "--", "true"],
    ));
    assert_fatal(&out, "utsns");
    assert!(
        stderr(&out).contains("is a namespace of type net, not uts"),
        "{}",
        stderr(&out)
    );
    let out = run(&mut utsns(
        state.path(),
        &["--join", "/etc/passwd", "--", "true"],
    ));
    assert_fatal(&out, "utsns");
    assert!(
        stderr(&out).contains("is not a namespace file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn info_fd_describes_the_namespace() {
    require(is_root(), "root");
    let state = scratch();
    let mut cmd = Command::new("sh");
    with_env(&mut cmd, state.path());
    cmd.args(["-c", "utsns --hostname info --info-fd 3 -- nsprobe 3>info.json >probe.json && cat info.json probe.json"])
        .current_dir(state.path());
    let out = ok(&mut cmd);
    let mut lines = out.lines();
    let info = probe_json(lines.next().unwrap());
    let probe = probe_json(lines.next().unwrap());
    assert_eq!(info["tool"], "utsns");
    assert_eq!(info["ns"]["type"], "uts");
    assert_eq!(info["ns"]["inode"], probe["ns"]["uts"]);
    assert_eq!(
        info["pid"], probe["pid"],
        "utsns execs: the payload keeps its pid"
    );
    assert_eq!(info["hostname"], "info");
}

#[test]
fn bad_values_exit_125_and_leave_nothing_behind() {
    let state = scratch();
    let long = "a".repeat(65);
    let missing_pin = state.path().join("no/such/dir/pin");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--hostname", ""], "empty"),
        (vec!["--hostname", &long], "the limit is 64"),
        (vec!["--hostname", "web_1"], "RFC 1123"),
        (vec!["--hostname", "-web"], "RFC 1123"),
        (vec!["--hostname", "a b"], "RFC 1123"),
        (vec!["--domainname", ""], "empty"),
        (vec!["--domainname", "a b"], "printable"),
        (vec!["--join", "bad name"], "invalid chain name"),
        (vec!["--join", "0"], "not a valid PID"),
        (vec!["--join", "/nonexistent/ns"], "unable to open"),
        (
            vec!["--join", "no-such-chain"],
            "no chain named no-such-chain",
        ),
        (
            vec!["--pin", missing_pin.to_str().unwrap()],
            "unable to create pin file",
        ),
        (vec!["--name", "bad/name"], "invalid chain name"),
        (vec!["--name", ""], "invalid chain name"),
        (vec!["--info-fd", "x"], "not a file descriptor number"),
        (vec!["--info-fd", "-1"], "not a file descriptor number"),
        (vec!["--info-fd", "99"], "file descriptor 99 is not open"),
    ];
    let marker = state.path().join("ran");
    for (args, message) in cases {
        let mut cmd = utsns(state.path(), &args);
        cmd.args(["--", "touch", marker.to_str().unwrap()]);
        let out = run(&mut cmd);
        assert_fatal(&out, "utsns");
        assert!(
            stderr(&out).contains(message),
            "{args:?}: expected {message:?} in {}",
            stderr(&out)
        );
        assert!(!marker.exists(), "{args:?}: the command ran");
        assert_state_empty(state.path());
        assert!(!missing_pin.exists());
    }
}

#[test]
fn rootless_under_a_user_namespace_and_refused_without_one() {
    require(rootless_userns_works(), "unprivileged user namespaces");
    let state = scratch();
    let before = host_hostname();
    let mut chain = Command::new(bin("userns"));
    with_env(&mut chain, state.path());
    chain.args(["--", "utsns", "--hostname", "rootless", "--", "hostname"]);
    assert_eq!(ok(&mut as_nobody(&chain)), "rootless");
    assert_eq!(host_hostname(), before);

    // utsns before userns: the uts namespace would belong to the host, so it is refused.
    let wrong = utsns(
        state.path(),
        &["--hostname", "x", "--", "userns", "--", "hostname"],
    );
    let out = run(&mut as_nobody(&wrong));
    assert_fatal(&out, "utsns");
    assert!(
        stderr(&out).contains("utsns: hint: ") && stderr(&out).contains("userns before"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_join_refuses_to_rename_the_running_container() {
    require(is_root(), "root");
    let state = scratch();
    let pin = state.path().join("uts.pin");
    ok(&mut utsns(
        state.path(),
        &[
            "--pin",
            pin.to_str().unwrap(),
            "--hostname",
            "kept",
            "--",
            "true",
        ],
    ));
    let pin_s = pin.to_str().unwrap();
    for setting in [
        ["--hostname", "renamed"],
        ["--domainname", "renamed.example"],
    ] {
        let out = run(&mut utsns(
            state.path(),
            &[
                "--join",
                pin_s,
                setting[0],
                setting[1],
                "--",
                "touch",
                "/tmp/nschain-must-not-run",
            ],
        ));
        assert_fatal(&out, "utsns");
        assert!(
            stderr(&out).contains("--join enters a UTS namespace that is already set up"),
            "{}",
            stderr(&out)
        );
    }
    assert!(!std::path::Path::new("/tmp/nschain-must-not-run").exists());
    let names = ok(&mut utsns(
        state.path(),
        &[
            "--join",
            pin_s,
            "--",
            "sh",
            "-c",
            "echo $(hostname) $(domainname)",
        ],
    ));
    assert_eq!(names.split_whitespace().next(), Some("kept"));
    assert!(!names.contains("renamed"), "{names}");
    ok(Command::new("umount").arg(&pin));
}
