//! Issue 13, item 6: the caller's kernel keys stay outside the container. Kernel keys have
//! no namespace: a process finds them through the session keyring it inherits, so a
//! container that keeps its caller's session keyring reads the caller's keys (`keyctl add
//! user secret hunter2 @s` on the host, `keyctl print %user:secret` inside). mntns gives a
//! new root, and a process it joins into a container, a new empty session keyring;
//! `--no-new-keyring` keeps the caller's and is the weakened setup each attack first escapes
//! from. The host side is `nsattack keyring-session`, which makes a session keyring of its own
//! holding the key (so nothing of the machine's keyrings is touched) and runs the chain in it.

mod escape_common;

use std::process::{Command, Stdio};

use escape_common::*;
use nschain_tests::*;

const CLAIM: &str = "claim: the caller's session keyring (kernel keys) stays outside the container";

fn configs() -> Vec<Config> {
    if need_rootless() {
        Config::ALL.to_vec()
    } else {
        vec![Config::Rootful, Config::RootfulUserns]
    }
}

/// `argv` run in a new session keyring holding the user key `secret` = `hunter2`, as the
/// chain's user.
fn with_key(lab: &Lab, config: Config, argv: Vec<String>) -> Command {
    let mut full = vec![
        lab.root.join("nsattack").display().to_string(),
        "keyring-session".to_owned(),
        "secret".to_owned(),
        "hunter2".to_owned(),
    ];
    full.extend(argv);
    lab.in_host("", config == Config::Rootless, &full)
}

/// The weakened run must read the key both ways; the defended run must read it neither way.
fn check(config: Config, weakened: bool, out: &std::process::Output) -> Result<(), String> {
    let text = stdout(out);
    if weakened {
        let both = [
            "ESCAPED read the caller's key found from the session keyring: hunter2",
            "ESCAPED read the caller's key by its serial number: hunter2",
        ];
        if both.iter().all(|l| text.contains(l)) {
            return Ok(());
        }
        return Err(format!(
            "[{CLAIM}] the attack does not work even with --no-new-keyring in the {} chain: it proves nothing\nstdout:\n{text}\nstderr:\n{}",
            config.name(),
            stderr(out)
        ));
    }
    check_blocked(CLAIM, config, out)?;
    for line in [
        "BLOCKED find the caller's key from the session keyring",
        "BLOCKED read the caller's key by its serial number",
    ] {
        if !text.contains(line) {
            return Err(format!(
                "[{CLAIM}] '{line}' missing in the {} chain:\n{text}",
                config.name()
            ));
        }
    }
    Ok(())
}

/// Two defences stand in the way: the new session keyring, and the seccomp profile (keyctl,
/// add_key and request_key refused). The attack first runs with both switched off; then each
/// is shown to hold alone.
const RUNS: [(bool, &[&str]); 3] = [
    (true, &["--no-new-keyring", "--seccomp", "unconfined"]),
    (false, &["--seccomp", "unconfined"]),
    (false, &["--no-new-keyring"]),
];

#[test]
fn a_container_cannot_read_the_callers_session_keys() {
    if !need_root() {
        return;
    }
    let mut results = Vec::new();
    for config in configs() {
        // One lab per chain: a rootless chain refuses a state directory that root made.
        let lab = Lab::new("keyring");
        for (weakened, mntns_args) in RUNS {
            let argv = lab.chain_argv(
                config,
                None,
                mntns_args,
                &["/nsattack", "keyring", "secret"],
            );
            let out = run(&mut with_key(&lab, config, argv));
            results.push(check(config, weakened, &out));
        }
        lab.assert_clean();
    }
    assert_all(results);
}

#[test]
fn a_process_joined_with_mntns_join_or_nsps_exec_cannot_read_the_callers_session_keys() {
    if !need_root() {
        return;
    }
    let mut results = Vec::new();
    for config in configs() {
        let lab = Lab::new("keyjoin");
        let name = format!("key{}{}", std::process::id(), config as u8);
        let argv = lab.chain_argv(config, Some(&name), &[], &["/bin/sleep", "30"]);
        let mut container = lab
            .in_host("", config == Config::Rootless, &argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        lab.wait_registered(&name);
        for (weakened, mntns_args) in RUNS {
            let mut argv: Vec<String> = Vec::new();
            if lab.has_user(&name) {
                argv.extend(["userns", "--join", &name, "--"].map(str::to_owned));
            }
            argv.extend(
                ["pidns", "--join", &name, "--", "mntns", "--join", &name].map(str::to_owned),
            );
            argv.extend(mntns_args.iter().map(|a| a.to_string()));
            argv.extend(["--", "/nsattack", "keyring", "secret"].map(str::to_owned));
            let out = run(&mut with_key(&lab, config, argv));
            results.push(check(config, weakened, &out));
        }
        // nsps exec (no opt-out there): its joined process must not carry the keyring in
        // either (today it ends in the `mntns --join` proven above).
        let argv = [
            "nsps",
            "exec",
            &name,
            "--",
            "/nsattack",
            "keyring",
            "secret",
        ]
        .map(str::to_owned);
        let out = run(&mut with_key(&lab, config, argv.to_vec()));
        results.push(check(config, false, &out));
        lab.kill_all_and_wait();
        let _ = container.wait();
        lab.assert_clean();
    }
    assert_all(results);
}

#[test]
fn no_new_keyring_takes_no_value() {
    let dir = scratch();
    let out = run(tool("mntns", dir.path()).args(["--no-new-keyring=yes", "--", "true"]));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("mntns: "), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_keyring_that_cannot_be_made_stops_the_container() {
    if !need_root() || !require(have("strace"), "strace (fault injection)") {
        return;
    }
    let lab = Lab::new("keyfault");
    let root = lab.root.display().to_string();
    for (errno, runs) in [("ENOMEM", false), ("ENOSYS", true)] {
        let inject = format!("--inject=keyctl:error={errno}:when=1");
        let argv = [
            "strace",
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            &inject,
            "mntns",
            "--rootfs",
            &root,
            "--",
            "/bin/echo",
            "ran",
        ]
        .map(str::to_owned);
        let out = run(&mut lab.in_host("", false, &argv));
        if runs {
            // A kernel without keys: nothing to keep out.
            assert_eq!(stdout(&out), "ran", "keyctl {errno}: {}", stderr(&out));
        } else {
            assert_eq!(
                out.status.code(),
                Some(125),
                "keyctl {errno}: {}",
                stderr(&out)
            );
            assert!(!stdout(&out).contains("ran"));
            assert!(
                stderr(&out).starts_with("mntns: fatal: unable to join a new session keyring")
                    && stderr(&out).contains("--no-new-keyring"),
                "{}",
                stderr(&out)
            );
        }
    }
    lab.assert_clean();
}
