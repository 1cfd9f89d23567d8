//! Bad input, one table: every flag that takes a value, of every tool (and nsps), gets a
//! malformed value. Each case must exit 125 with stderr starting `TOOL: fatal: `, must not
//! run the payload (a command that would create a marker file), and must change nothing on
//! the throwaway host it runs in (leak audit: links, nft, mounts, state files, processes).

mod escape_common;

use std::process::Command;

use escape_common::*;
use nschain_tests::*;

/// (tool, arguments before the payload). `{dir}` is the test's scratch directory.
const CASES: &[(&str, &[&str])] = &[
    // utsns
    ("utsns", &["--hostname", "bad_host!"]),
    ("utsns", &["--hostname", "-leading-hyphen"]),
    (
        "utsns",
        &[
            "--hostname",
            "a.very-long-label-that-is-more-than-sixty-three-bytes-long-xxxxxxxxxxxx",
        ],
    ),
    ("utsns", &["--hostname", ""]),
    (
        "utsns",
        &[
            "--domainname",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ],
    ),
    ("utsns", &["--join", "{dir}/no-such-file"]),
    ("utsns", &["--join", "/proc/self/ns/net"]),
    ("utsns", &["--join", "999999999"]),
    ("utsns", &["--join", "no-such-chain"]),
    ("utsns", &["--pin", "{dir}/no-such-dir/pin"]),
    ("utsns", &["--name", "bad/name"]),
    ("utsns", &["--name", ""]),
    ("utsns", &["--info-fd", "abc"]),
    ("utsns", &["--info-fd", "-1"]),
    ("utsns", &["--info-fd", "987"]),
    ("utsns", &["--detach=yes"]),
    ("utsns", &["-d", "--name", "bad/name"]),
    // ipcns
    ("ipcns", &["--sysctl", "kernel.hostname=x"]),
    ("ipcns", &["--sysctl", "kernel.shmmax"]),
    ("ipcns", &["--sysctl", "=1"]),
    ("ipcns", &["--sysctl", "kernel.shmmax=abc"]),
    ("ipcns", &["--join", "/proc/self/ns/uts"]),
    ("ipcns", &["--pin", "{dir}/no-such-dir/pin"]),
    ("ipcns", &["--name", "../x"]),
    ("ipcns", &["--info-fd", "x"]),
    // userns
    ("userns", &["--map-user", "abc"]),
    ("userns", &["--map-user", "no-such-user-here"]),
    ("userns", &["--map-user", "a b"]),
    ("userns", &["--map-group", "no-such-group-here"]),
    ("userns", &["--map-user", "-1"]),
    ("userns", &["--map-group", "4294967296"]),
    ("userns", &["--map-users", "0:100000"]),
    ("userns", &["--map-users", "a:b:c"]),
    ("userns", &["--map-users", "0:4294967295:2"]),
    ("userns", &["--map-users", "0:100000:0"]),
    ("userns", &["--map-groups", "0:1:2:3"]),
    ("userns", &["--setgroups", "maybe"]),
    ("userns", &["--join", "/proc/self/ns/pid"]),
    ("userns", &["--pin", "{dir}/no-such-dir/pin"]),
    ("userns", &["--name", "a b"]),
    ("userns", &["--info-fd", "1x"]),
    // pidns
    ("pidns", &["--status-fd", "x"]),
    ("pidns", &["--status-fd", "-2"]),
    ("pidns", &["--status-fd", "988"]),
    // Without a monitor somebody must wait: the init's COMMAND alone is refused.
    ("pidns", &["--no-monitor"]),
    ("pidns", &["--join", "/proc/self/ns/mnt"]),
    ("pidns", &["--pin", "{dir}/no-such-dir/pin"]),
    ("pidns", &["--name", "bad/name"]),
    ("pidns", &["--info-fd", "989"]),
    // mntns
    ("mntns", &["--propagation", "sideways"]),
    ("mntns", &["--argv0", ""]),
    ("mntns", &["--rootfs", "{dir}/no-such-root"]),
    ("mntns", &["--rootfs", "/etc/passwd"]),
    ("mntns", &["--overlay", "{dir}/no-such-lower"]),
    ("mntns", &["--overlay", "/", "--upper", "/etc/passwd"]),
    ("mntns", &["--image", "Bad:Ref"]),
    ("mntns", &["--image", "no-such-image"]),
    ("mntns", &["--image", "x@sha256:00"]),
    (
        "mntns",
        &["--image", "no-such-image", "--entrypoint", "/bin/sh"],
    ),
    ("mntns", &["--rootfs", "/", "--image", "bb"]),
    (
        "mntns",
        &["--overlay", "/", "--upper", "relative:with:colons"],
    ),
    ("mntns", &["--volume", "nocolon"]),
    ("mntns", &["--volume", "{dir}:relative"]),
    ("mntns", &["--volume", "{dir}:/x:rx"]),
    ("mntns", &["--volume", ":/x"]),
    ("mntns", &["--volume", "{dir}/no-such-src:/x"]),
    ("mntns", &["-v", "{dir}:/../.."]),
    ("mntns", &["--tmpfs", "relative"]),
    ("mntns", &["--volume", "{dir}:/x:ro,sideways"]),
    ("mntns", &["--mount", "nfs:{dir}:/x"]),
    ("mntns", &["--mount", "bind:{dir}:relative"]),
    ("mntns", &["--mount", "tmpfs:/x:size=abc"]),
    ("mntns", &["--device-node", "/etc/x:c:1:3"]),
    ("mntns", &["--device-node", "/dev/x:c:1"]),
    (
        "mntns",
        &["--rootfs", "{dir}", "--device-node", "/dev/x:z:1:3"],
    ),
    ("mntns", &["--device-node", "/dev/x:c:1:3"]),
    ("mntns", &["--tmpfs", "/x:size=abc"]),
    ("mntns", &["--tmpfs", "/x:mode=999"]),
    ("mntns", &["--tmpfs", "/x:nosuchopt"]),
    (
        "mntns",
        &["--rootfs", "{root}", "--workdir", "{dir}/no\0such"],
    ),
    (
        "mntns",
        &["--rootfs", "{root}", "-w", "/nsattack/inside-a-file"],
    ),
    ("mntns", &["--preserve-fds", "-1"]),
    ("mntns", &["--preserve-fds", "abc"]),
    ("mntns", &["--preserve-fds", "4294967296"]),
    ("mntns", &["--preserve-fds", "1.5"]),
    ("mntns", &["--user", "abc"]),
    ("mntns", &["--user", "1:x"]),
    ("mntns", &["--user", ":1"]),
    ("mntns", &["--cap-add", "CAP_NOPE"]),
    ("mntns", &["--cap-drop", "nope"]),
    ("mntns", &["--cap-add", ""]),
    ("mntns", &["--join", "/proc/self/ns/net"]),
    // --tty has no value, but no place in a join (nsps exec -t does that).
    ("mntns", &["--join", "/proc/self/ns/mnt", "--tty"]),
    ("mntns", &["--pin", "{dir}/no-such-dir/pin"]),
    ("mntns", &["--name", "bad/name"]),
    ("mntns", &["--info-fd", "990"]),
    ("mntns", &["--ready-fd", "993"]),
    ("mntns", &["--start-fifo", "abc"]),
    ("mntns", &["--start-fifo", "994"]),
    ("mntns", &["--console-fd", "x"]),
    ("mntns", &["--console-fd", "995"]),
    ("mntns", &["--hook-fd", "-3"]),
    ("mntns", &["--hook-fd", "996"]),
    ("mntns", &["--group-add", "abc"]),
    ("mntns", &["--group-add", "-1"]),
    ("mntns", &["--cap-ambient", "CAP_NOPE"]),
    ("mntns", &["--cap-inheritable", "nope"]),
    ("mntns", &["--rootfs", "{root}", "--mask", "relative/path"]),
    (
        "mntns",
        &["--rootfs", "{root}", "--read-only-path", "proc/sys"],
    ),
    ("mntns", &["--seccomp", ""]),
    ("mntns", &["--seccomp", "{dir}/no-such-profile.json"]),
    ("mntns", &["--seccomp", "/etc/passwd"]),
    // netns
    ("netns", &["--bridge=bad/name"]),
    ("netns", &["--bridge=", "--ip", "10.1.1.1"]),
    ("netns", &["--bridge=a-bridge-name-longer-than-ifnamsiz"]),
    ("netns", &["--bridge", "--subnet", "10.0.0.0/33"]),
    ("netns", &["--bridge", "--subnet", "abc"]),
    ("netns", &["--bridge", "--subnet", "10.0.0.1"]),
    ("netns", &["--bridge", "--ip", "300.1.1.1"]),
    ("netns", &["--bridge", "--ip", "abc"]),
    ("netns", &["--bridge", "--mtu", "10"]),
    ("netns", &["--bridge", "--mtu", "abc"]),
    ("netns", &["--bridge", "--publish", "abc"]),
    ("netns", &["--bridge", "--publish", "70000:80"]),
    ("netns", &["--bridge", "--publish", "80:80/sctp"]),
    ("netns", &["--bridge", "-p", "1.2.3:80:80"]),
    ("netns", &["--join", "/proc/self/ns/ipc"]),
    ("netns", &["--pin", "{dir}/no-such-dir/pin"]),
    ("netns", &["--name", "bad/name"]),
    ("netns", &["--info-fd", "991"]),
    ("netns", &["--sysctl", "kernel.hostname=x"]),
    ("netns", &["--sysctl", "net.ipv4.ping_group_range"]),
    ("netns", &["--sysctl", "net.ipv4.no_such_key=1"]),
    ("netns", &["--bridge", "--sysctl", "net.ipv4.ip_forward=1"]),
    // timens
    ("timens", &["--boottime", "abc"]),
    ("timens", &["--boottime", "1.2.3"]),
    ("timens", &["--monotonic", "1.9999999999"]),
    ("timens", &["--boottime", "-999999999"]),
    ("timens", &["--monotonic", "99999999999999999999"]),
    ("timens", &["--uptime", "-1"]),
    ("timens", &["--realtime", "1"]),
    ("timens", &["--join", "/proc/self/ns/net"]),
    (
        "timens",
        &["--join", "/proc/self/ns/time", "--boottime", "1"],
    ),
    ("timens", &["--pin", "{dir}/no-such-dir/pin"]),
    ("timens", &["--name", "bad/name"]),
    ("timens", &["--info-fd", "992"]),
    // cgroupns
    ("cgroupns", &["--memory", "abc"]),
    ("cgroupns", &["--memory", "1m"]),
    ("cgroupns", &["--memory", "-64m"]),
    ("cgroupns", &["--memory", "99999999999t"]),
    ("cgroupns", &["--memory-swap", "x"]),
    ("cgroupns", &["--memory-swap", "128m"]),
    ("cgroupns", &["--memory", "64m", "--memory-swap", "32m"]),
    ("cgroupns", &["--pids-limit", "0"]),
    ("cgroupns", &["--pids-limit", "many"]),
    ("cgroupns", &["--cpus", "0"]),
    ("cgroupns", &["--cpus", "half"]),
    ("cgroupns", &["--cpu-weight", "0"]),
    ("cgroupns", &["--cpu-weight", "10001"]),
    ("cgroupns", &["--cpuset", "1-0"]),
    ("cgroupns", &["--cpuset", "4095"]),
    ("cgroupns", &["--cgroup-parent", "../escape"]),
    (
        "cgroupns",
        &["--cgroup-parent", "cgroup.procs/x", "--memory", "64m"],
    ),
    ("cgroupns", &["--join", "/proc/self/ns/net"]),
    (
        "cgroupns",
        &["--join", "/proc/self/ns/cgroup", "--memory", "64m"],
    ),
    ("cgroupns", &["--pin", "{dir}/no-such-dir/pin"]),
    ("cgroupns", &["--name", "bad/name"]),
    ("cgroupns", &["--info-fd", "993"]),
];

/// nsps: its NAME arguments (the payload only matters for exec).
const NSPS_CASES: &[&[&str]] = &[
    &["bad/name"],
    &["exec", "bad/name", "--"],
    &["exec", "no-such-chain", "--"],
    &["exec", "-t", "no-such-chain", "--"],
    &["exec", "-it", "no-such-chain", "--"],
    &["rm", "bad/name"],
    &["rm", "../x"],
    &["rm", "-f", "no-such-chain"],
    &["logs", "--tail", "x", "some-chain"],
    &["logs", "--tail", "-1", "some-chain"],
    &["logs", "no-such-chain"],
    &["logs", "bad/name"],
    &["wait", "no-such-chain"],
    &["stop", "-t", "x", "some-chain"],
    &["stop", "-t", "-1", "some-chain"],
    &["stop", "-t", "86401", "some-chain"],
    &["stop", "no-such-chain"],
    &["kill", "-s", "NOPE", "some-chain"],
    &["kill", "-s", "0", "some-chain"],
    &["kill", "-s", "65", "some-chain"],
    &["kill", "no-such-chain"],
];

fn expand(arg: &str, lab: &Lab) -> String {
    arg.replace("{dir}", &lab.dir.path().display().to_string())
        .replace("{root}", &lab.root.display().to_string())
}

#[test]
fn every_flag_with_a_malformed_value_is_refused_and_changes_nothing() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("badin");
    let marker = lab.dir.path().join("payload-ran");
    let touch = format!("/bin/touch {}", marker.display());
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut cases: Vec<(&str, Vec<String>)> = CASES
        .iter()
        .map(|(tool, args)| (*tool, args.iter().map(|a| expand(a, &lab)).collect()))
        .collect();
    cases.extend(
        NSPS_CASES
            .iter()
            .map(|args| ("nsps", args.iter().map(|a| expand(a, &lab)).collect())),
    );
    // Every tool with a value flag is covered.
    for tool in TOOLS {
        assert!(cases.iter().any(|(t, _)| t == tool), "no case for {tool}");
    }
    for (tool, args) in cases {
        if args.iter().any(|a| a.contains('\0')) {
            continue; // not passable through argv
        }
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &lab.host.name, tool])
            .args(&args);
        if tool != "nsps" || args.first().is_some_and(|a| a == "exec") {
            if tool != "nsps" {
                cmd.arg("--");
            }
            cmd.args(touch.split(' '));
        }
        lab.env(&mut cmd);
        let out = run(&mut cmd);
        ran += 1;
        let err = stderr(&out);
        let shown = format!("{tool} {}", args.join(" "));
        if out.status.code() != Some(125) || !err.starts_with(&format!("{tool}: fatal: ")) {
            failures.push(format!("`{shown}`: status {}, stderr: {err}", out.status));
        }
        if marker.exists() {
            failures.push(format!("`{shown}`: the payload ran"));
            let _ = std::fs::remove_file(&marker);
        }
        if err.contains("panicked") {
            failures.push(format!("`{shown}`: a panic: {err}"));
        }
    }
    assert!(ran > 95, "only {ran} cases ran");
    lab.assert_clean();
    assert!(
        failures.is_empty(),
        "{} of {ran} malformed values were not refused as the contract says:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn malformed_values_are_refused_rootless_too() {
    if !need_root() || !need_rootless() {
        return;
    }
    let lab = Lab::new("badinrl");
    let marker = lab.dir.path().join("payload-ran");
    let mut failures = Vec::new();
    let cases: &[&[&str]] = &[
        &["userns", "--map-users", "0:1:0"],
        &["userns", "--", "netns", "--subnet", "1.2.3.4/40"],
        &["userns", "--", "utsns", "--hostname", "bad!"],
        &["userns", "--", "ipcns", "--sysctl", "kernel.x=1"],
        &["userns", "--", "pidns", "--status-fd", "x"],
        &["userns", "--", "mntns", "--tmpfs", "x"],
        &["userns", "--", "timens", "--boottime", "-999999999"],
        &["userns", "--", "cgroupns", "--memory", "lots"],
    ];
    for case in cases {
        let mut argv: Vec<String> = case.iter().map(|s| (*s).to_owned()).collect();
        argv.extend([
            "--".to_owned(),
            "/bin/touch".to_owned(),
            marker.display().to_string(),
        ]);
        let out = run(&mut lab.in_host("", true, &argv));
        let culprit = case
            .iter()
            .rev()
            .find(|a| TOOLS.contains(a))
            .unwrap_or(&"userns");
        let err = stderr(&out);
        if out.status.code() != Some(125) || !err.starts_with(&format!("{culprit}: fatal: ")) {
            failures.push(format!("`{}`: {} {err}", case.join(" "), out.status));
        }
        assert!(!marker.exists(), "`{}`: the payload ran", case.join(" "));
    }
    lab.assert_clean();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
