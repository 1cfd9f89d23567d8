//! Issue 19.5: a container's /sys shows its own network namespace, also under a user namespace.
//!
//! In the rootful chain with a user namespace (`netns --bridge -- userns --map-auto -- ... --
//! mntns`), the kernel refuses mntns a new sysfs (the network namespace belongs to the host's
//! user namespace); netns, still host root, hands one down in `NSCHAIN_SYSFS_FD` for mntns to
//! attach. Without it mntns binds the host's /sys: the host's bridge and every other
//! container's veth show in /sys/class/net. Everything runs in escape_common's throwaway host,
//! whose /sys (`ip netns exec`) shows the lab's own network namespace.

mod escape_common;

use std::process::Output;

use escape_common::*;
use nschain_tests::*;

const SUBNET: &str = "10.214.0.0/24";
const BRIDGE: &str = "nschain0";
const WARNING: &str = "mntns: warning: /sys is a read-only bind of the host's";

/// `config`'s chain with netns in bridge mode, mntns writing `--info-fd 9`, running `command`.
/// `weaken`: `env -u NSCHAIN_SYSFS_FD` right after netns (no hand-down).
fn chain(lab: &Lab, config: Config, weaken: bool, command: &[&str]) -> Vec<String> {
    let mut argv = lab.chain_argv(config, None, &["--info-fd", "9"], command);
    assert_eq!(argv[0], "netns");
    argv.insert(1, "--bridge".to_owned());
    if weaken {
        let after_netns = argv.iter().position(|w| w == "--").unwrap() + 1;
        for (i, word) in ["env", "-u", "NSCHAIN_SYSFS_FD"].iter().enumerate() {
            argv.insert(after_netns + i, (*word).to_owned());
        }
    }
    argv
}

/// Another container on the bridge (its veth in the lab's host) while `"$@"` runs; prints
/// `OTHER <veth>` and `INFO <mntns's --info-fd record>`.
const WITH_OTHER: &str = r#"
    netns --bridge -- sleep 60 & o=$!
    i=0
    until veth=$(ip -o link show master nschain0 | grep -o 'nsc[0-9a-f]*@' | head -n1) && [ -n "$veth" ]; do
        i=$((i + 1)); [ $i -lt 100 ] && kill -0 $o || { echo "the other container never came up"; exit 3; }
        sleep 0.05
    done
    echo "OTHER ${veth%@}"
    "$@" 9>info; rc=$?
    echo "INFO $(cat info)"
    kill $o; wait
    i=0
    while [ -n "$(find "$NSCHAIN_RUN_DIR/netns" -type f ! -name lock ! -name last ! -name bridge.json 2>/dev/null)" ]; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "a lease was never released"; exit 3; }
        sleep 0.05
    done
    exit $rc
"#;

fn in_lab(lab: &Lab, script: &str, argv: Vec<String>) -> Output {
    let mut all: Vec<String> = vec!["sh".into(), "-c".into(), script.into(), "sh".into()];
    all.extend(argv);
    run(&mut lab.in_host("", false, &all))
}

fn tagged<'a>(text: &'a str, tag: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(tag))
        .unwrap_or_else(|| panic!("no '{tag}' line in: {text}"))
}

/// The interface names the container listed (the lines between the script's own).
fn listed(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with("OTHER ") && !l.starts_with("INFO ") && !l.starts_with("VAR "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn sys_class_net_under_a_user_namespace_is_the_containers_own() {
    if !need_root() {
        return;
    }
    let mut lab = Lab::new("sysfs");
    lab.make_bridge(SUBNET);
    let command = ["ls", "/sys/class/net"];

    // Proof: without the hand-down, mntns under userns binds the host's /sys, and the host's
    // bridge and the other container's veth are there.
    let out = in_lab(
        &lab,
        WITH_OTHER,
        chain(&lab, Config::RootfulUserns, true, &command),
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let other = tagged(&text, "OTHER ").to_owned();
    let names = listed(&text);
    assert!(
        names.iter().any(|n| n == BRIDGE) && names.contains(&other),
        "without the hand-down the host's bridge and {other} must show (the proof): {names:?}"
    );
    assert!(
        tagged(&text, "INFO ").contains(r#""sys":"host-bind""#),
        "{text}"
    );
    assert_eq!(
        stderr(&out).matches(WARNING).count(),
        1,
        "the host bind is said once on stderr: {}",
        stderr(&out)
    );

    // The defence: netns hands down its own sysfs; with and without userns, exactly eth0 lo.
    for config in [Config::RootfulUserns, Config::Rootful] {
        let out = in_lab(&lab, WITH_OTHER, chain(&lab, config, false, &command));
        let text = stdout(&out);
        assert!(out.status.success(), "{text}\n{}", stderr(&out));
        assert_eq!(
            listed(&text),
            ["eth0", "lo"],
            "{}: /sys/class/net of the container\n{text}",
            config.name()
        );
        assert!(
            tagged(&text, "INFO ").contains(r#""sys":"handed-down""#),
            "{text}"
        );
        assert!(!stderr(&out).contains(WARNING), "{}", stderr(&out));
    }
    lab.assert_clean();
}

/// What COMMAND holds: the variable, then its fds as `ls` sees them (3: its directory).
const FDS: &str = "echo VAR ${NSCHAIN_SYSFS_FD-unset}; ls /proc/self/fd";

fn assert_fds(text: &str) {
    assert_eq!(tagged(text, "VAR "), "unset", "{text}");
    assert_eq!(listed(text), ["0", "1", "2", "3"], "COMMAND's fds: {text}");
}

#[test]
fn the_handed_down_sysfs_reaches_no_command() {
    if !need_root() {
        return;
    }
    let mut lab = Lab::new("sysfs-leak");
    lab.make_bridge(SUBNET);
    // In the container: the shell's own fds and no variable.
    let command = ["sh", "-c", FDS];
    let out = in_lab(
        &lab,
        WITH_OTHER,
        chain(&lab, Config::RootfulUserns, false, &command),
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert_fds(&text);
    assert!(
        tagged(&text, "INFO ").contains(r#""sys":"handed-down""#),
        "{text}"
    );

    // Proof that a leak shows: a program named mntns that is not the consumer (a shell script)
    // gets the variable and the fd when nothing takes them.
    let fake = lab.dir.path().join("fake");
    std::fs::create_dir(&fake).unwrap();
    write_exe(&fake.join("mntns"), &format!("#!/bin/sh\n{FDS}\n"), 0o755);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let fake_mntns = fake.join("mntns").display().to_string();
    let fooled: Vec<String> = [
        "netns",
        "--bridge",
        "--",
        "userns",
        "--map-auto",
        "--",
        &fake_mntns,
    ]
    .map(str::to_owned)
    .to_vec();
    let out = run(&mut lab.in_host("", false, &fooled));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let fd = tagged(&text, "VAR ").to_owned();
    assert!(
        fd != "unset" && listed(&text).contains(&fd),
        "the proof: the fd and its variable reach a COMMAND that is not mntns: {text}"
    );

    // No mntns follows: netns hands nothing down (the host's sh runs as COMMAND, with the
    // fds the lab's shell has anyway).
    let bare: Vec<String> = ["sh", "-c", FDS].map(str::to_owned).to_vec();
    let baseline = ok_out(&run(&mut lab.in_host("", false, &bare)), "sh");
    let argv: Vec<String> = [
        "netns",
        "--bridge",
        "--",
        "userns",
        "--map-auto",
        "--",
        "sh",
        "-c",
        FDS,
    ]
    .map(str::to_owned)
    .to_vec();
    let out = run(&mut lab.in_host("", false, &argv));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert_eq!(tagged(&text, "VAR "), "unset", "{text}");
    assert_eq!(listed(&text), listed(&baseline), "COMMAND's fds: {text}");
    lab.assert_clean();
}

#[test]
fn a_fake_sysfs_fd_is_refused() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("sysfs-fake");
    let root = lab.root.display().to_string();
    let mntns = |pre: &str, value: &str| {
        let argv: Vec<String> = [
            "sh",
            "-c",
            &format!("{pre} exec mntns --rootfs \"$0\" -- ls /sys"),
            &root,
        ]
        .map(str::to_owned)
        .to_vec();
        let mut cmd = lab.in_host("", false, &argv);
        cmd.env("NSCHAIN_SYSFS_FD", value);
        run(&mut cmd)
    };
    // Not a sysfs: refused before anything is made.
    let out = mntns("exec 7</etc/passwd;", "7");
    assert_fatal(&out, "mntns");
    assert!(
        stderr(&out).contains("fd 7 is not a sysfs"),
        "{}",
        stderr(&out)
    );
    // A sysfs, but a directory of the host's /sys, not a detached mount: move_mount refuses it.
    let out = mntns("exec 7</sys/class;", "7");
    assert_fatal(&out, "mntns");
    assert!(
        stderr(&out).contains("not a detached sysfs mount"),
        "{}",
        stderr(&out)
    );
    // Bad values.
    for value in ["x", "2", "-1", "7 8", "", "99"] {
        let out = mntns("", value);
        assert_fatal(&out, "mntns");
        assert!(
            stderr(&out).contains("invalid NSCHAIN_SYSFS_FD"),
            "{value:?}: {}",
            stderr(&out)
        );
        assert_eq!(
            stderr(&out).lines().filter(|l| l.contains("fatal")).count(),
            1,
            "{}",
            stderr(&out)
        );
    }
    lab.assert_clean();
}

/// No netns in the chain: the container shares the host's network, so the host's /sys it gets
/// under userns is its own network's; --info-fd says "host-bind", stderr says nothing.
#[test]
fn without_a_netns_the_host_bind_is_recorded_not_warned() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("sysfs-nonet");
    let argv: Vec<String> = [
        "sh",
        "-c",
        "\"$@\" 9>info; rc=$?; echo \"INFO $(cat info)\"; exit $rc",
        "sh",
        "userns",
        "--map-auto",
        "--",
        "pidns",
        "--",
        "mntns",
        "--info-fd",
        "9",
        "--rootfs",
        &lab.root.display().to_string(),
        "--",
        "ls",
        "/sys/class/net",
    ]
    .map(str::to_owned)
    .to_vec();
    let out = run(&mut lab.in_host("", false, &argv));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert_eq!(listed(&text), ["lo"], "the lab host's interfaces: {text}");
    assert!(
        tagged(&text, "INFO ").contains(r#""sys":"host-bind""#),
        "{text}"
    );
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    lab.assert_clean();
}

#[test]
fn rootless_the_container_mounts_its_own_sysfs() {
    if !need_root() || !need_rootless() {
        return;
    }
    let lab = Lab::new("sysfs-rootless");
    let argv: Vec<String> = [
        "sh",
        "-c",
        "\"$@\" 9>/tmp/$$.info; rc=$?; echo \"INFO $(cat /tmp/$$.info)\"; rm -f /tmp/$$.info; exit $rc",
        "sh",
        "userns",
        "--",
        "netns",
        "--",
        "pidns",
        "--",
        "mntns",
        "--info-fd",
        "9",
        "--rootfs",
        &lab.root.display().to_string(),
        "--",
        "ls",
        "/sys/class/net",
    ]
    .map(str::to_owned)
    .to_vec();
    let out = run(&mut lab.in_host("", true, &argv));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert_eq!(listed(&text), ["lo"], "{text}");
    assert!(tagged(&text, "INFO ").contains(r#""sys":"new""#), "{text}");
    assert!(!stderr(&out).contains(WARNING), "{}", stderr(&out));
    lab.assert_clean();
}
