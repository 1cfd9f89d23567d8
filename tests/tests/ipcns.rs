//! ipcns: SysV IPC and POSIX message queues made inside are private to the namespace and
//! visible to whoever joins it; IPC sysctls apply to the namespace only.

use std::process::Command;
use std::time::Duration;

use nschain_tests::*;

fn ipcns(state: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = tool("ipcns", state);
    cmd.args(args);
    cmd
}

fn keys(probe: &Value) -> Vec<String> {
    probe["sysv_shm_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

/// `/proc/sysvipc/shm` prints keys in decimal.
const KEY: &str = "482451";

#[test]
fn ipc_objects_are_private_to_the_namespace_and_shared_with_joiners() {
    require(is_root(), "root");
    let state = scratch();
    let pin = state.path().join("ipc.pin");
    // The first container makes a SysV segment and a POSIX queue, then stays up.
    let mut first = ipcns(
        state.path(),
        &[
            "--name",
            "ipc-test",
            "--",
            "sh",
            "-c",
            &format!("nsprobe --mkshm {KEY} --mkmq nschain-q >/dev/null && exec sleep 30"),
        ],
    )
    .spawn()
    .unwrap();
    let mut joined = Value::Null;
    for _ in 0..100 {
        let out = run(&mut ipcns(
            state.path(),
            &["--join", "ipc-test", "--", "nsprobe", "--mq", "nschain-q"],
        ));
        if out.status.success() {
            let probe = probe_json(&stdout(&out));
            // The queue is made just after the segment: wait for both.
            if keys(&probe).contains(&KEY.to_owned()) && probe["mq"]["nschain-q"] == true {
                joined = probe;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        joined["mq"]["nschain-q"], true,
        "a joined process sees the queue: {joined}"
    );
    assert_eq!(
        joined["ns"]["ipc"].as_u64(),
        Some(nschain_ns_of(first.id()))
    );

    // Neither the host nor a second container sees them.
    let host = probe_json(&ok(Command::new(bin("nsprobe")).args(["--mq", "nschain-q"])));
    assert!(
        !keys(&host).contains(&KEY.to_owned()),
        "the host sees the segment"
    );
    assert_eq!(host["mq"]["nschain-q"], false, "the host sees the queue");
    let other = probe_json(&ok(&mut ipcns(
        state.path(),
        &[
            "--pin",
            pin.to_str().unwrap(),
            "--",
            "nsprobe",
            "--mq",
            "nschain-q",
        ],
    )));
    assert!(
        !keys(&other).contains(&KEY.to_owned()),
        "another ipcns sees the segment"
    );
    assert_eq!(
        other["mq"]["nschain-q"], false,
        "another ipcns sees the queue"
    );
    ok(Command::new("umount").arg(&pin));

    first.kill().unwrap();
    first.wait().unwrap();
}

fn nschain_ns_of(pid: u32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/ipc"))
        .unwrap()
        .ino()
}

#[test]
fn ipc_sysctls_apply_inside_only() {
    require(is_root(), "root");
    let state = scratch();
    let host_before = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let out = ok(&mut ipcns(
        state.path(),
        &[
            "--sysctl",
            "kernel.shmmax=1048576",
            "--sysctl",
            "fs.mqueue.msg_max=64",
            "--sysctl",
            "kernel/sem=250 256000 32 64",
            "--",
            "cat",
            "/proc/sys/kernel/shmmax",
            "/proc/sys/fs/mqueue/msg_max",
            "/proc/sys/kernel/sem",
        ],
    ));
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines, ["1048576", "64", "250 256000 32 64"]);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_before
    );
}

#[test]
fn bad_values_exit_125_and_leave_nothing_behind() {
    let state = scratch();
    let marker = state.path().join("ran");
    for (args, message) in [
        (vec!["--sysctl", "kernel.shmmax"], "is not KEY=VALUE"),
        (vec!["--sysctl", "kernel.shmmax=-5"], "unsigned integer"),
        (vec!["--sysctl", "kernel.sem=1 2"], "4 unsigned integers"),
        (
            vec!["--sysctl", "net.ipv4.ip_forward=1"],
            "is not an IPC namespace sysctl",
        ),
        (
            vec!["--sysctl", "kernel.hostname=x"],
            "is not an IPC namespace sysctl",
        ),
        (
            vec!["--join", "/proc/self/ns/uts"],
            "is a namespace of type uts, not ipc",
        ),
        (vec!["--join", "nope-chain"], "no chain named nope-chain"),
        (vec!["--name", "a b"], "invalid chain name"),
        (vec!["--info-fd", "77"], "not open"),
    ] {
        let mut cmd = ipcns(state.path(), &args);
        cmd.args(["--", "touch", marker.to_str().unwrap()]);
        let out = run(&mut cmd);
        assert_fatal(&out, "ipcns");
        assert!(
            stderr(&out).contains(message),
            "{args:?}: expected {message:?} in {}",
            stderr(&out)
        );
        assert!(!marker.exists(), "{args:?}: the command ran");
        assert!(
            !state.path().join("run/chains").exists()
                || std::fs::read_dir(state.path().join("run/chains"))
                    .unwrap()
                    .next()
                    .is_none()
        );
    }
}

#[test]
fn rootless_under_a_user_namespace() {
    require(rootless_userns_works(), "unprivileged user namespaces");
    let state = scratch();
    let mut chain = Command::new(bin("userns"));
    with_env(&mut chain, state.path());
    chain.args(["--", "ipcns", "--sysctl", "kernel.shmmax=65536", "--", "sh", "-c", &format!("nsprobe --mkshm {KEY} --mkmq rootless-q --mq rootless-q && cat /proc/sys/kernel/shmmax")]);
    let out = ok(&mut as_nobody(&chain));
    let mut lines = out.lines();
    let probe = probe_json(lines.next().unwrap());
    assert!(keys(&probe).contains(&KEY.to_owned()));
    assert_eq!(probe["mq"]["rootless-q"], true);
    assert_eq!(lines.next(), Some("65536"));
    let host = probe_json(&ok(
        Command::new(bin("nsprobe")).args(["--mq", "rootless-q"])
    ));
    assert!(!keys(&host).contains(&KEY.to_owned()));
    assert_eq!(host["mq"]["rootless-q"], false);
}

#[test]
fn a_join_refuses_to_change_the_limits_of_the_running_container() {
    require(is_root(), "root");
    let state = scratch();
    let pin = state.path().join("ipc.pin");
    let pin_s = pin.to_str().unwrap();
    ok(&mut ipcns(
        state.path(),
        &[
            "--pin",
            pin_s,
            "--sysctl",
            "kernel.shmmax=1048576",
            "--",
            "true",
        ],
    ));
    let out = run(&mut ipcns(
        state.path(),
        &[
            "--join",
            pin_s,
            "--sysctl",
            "kernel.shmmax=4096",
            "--",
            "true",
        ],
    ));
    assert_fatal(&out, "ipcns");
    assert!(
        stderr(&out).contains(
            "--join enters an IPC namespace that is already set up: it takes no --sysctl"
        ),
        "{}",
        stderr(&out)
    );
    let limit = ok(&mut ipcns(
        state.path(),
        &["--join", pin_s, "--", "cat", "/proc/sys/kernel/shmmax"],
    ));
    assert_eq!(limit, "1048576");
    ok(Command::new("umount").arg(&pin));
}
