//! Joining a running container (`nsps exec`) must not expose the host (issue 13, item 5).
//!
//! Each attack first runs against a joiner in the old order (the process appears in the
//! container's pid namespace before it has entered the mount namespace and dropped its
//! credentials) and must ESCAPE there; then against `nsps exec`, where it must be BLOCKED.
//! The containers get `--cap-add SYS_PTRACE` where the attack needs it: with it, not being
//! dumpable protects nothing in a rootful chain, only the order does.

mod escape_common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use escape_common::*;
use nschain_tests::*;

/// One test at a time: each lab leases the first `--map-auto` range of its own state, and a
/// lease counts as held while any process runs as one of its uids, another test's included.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs a command inside the named chain.
type Joiner<'a> = dyn Fn(&str) -> Command + 'a;

fn configs() -> Vec<Config> {
    if need_rootless() {
        Config::ALL.to_vec()
    } else {
        vec![Config::Rootful, Config::RootfulUserns]
    }
}

/// Runs `check` for every config, each in its own thread (a lab of its own: only one config
/// leases a `--map-auto` range), and returns their results in the order of the configs. The
/// attacks mostly wait (for joiners, for their watch to end): side by side they take the
/// time of the longest.
fn per_config(check: impl Fn(Config) -> Vec<Result<(), String>> + Sync) -> Vec<Result<(), String>> {
    let check = &check;
    std::thread::scope(|s| {
        let threads: Vec<_> = configs()
            .into_iter()
            .map(|config| s.spawn(move || check(config)))
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Starts `command` in a chain of `config` named `name`, and waits until it has registered
/// (mntns registers right before its exec) plus a moment for the attacker to look around.
fn start(lab: &Lab, config: Config, name: &str, mntns_args: &[&str], command: &[&str]) -> Child {
    let argv = lab.chain_argv(config, Some(name), mntns_args, command);
    let child = lab
        .in_host("", config == Config::Rootless, &argv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lab.wait_registered(name);
    std::thread::sleep(Duration::from_millis(300));
    child
}

/// Waits (up to 30 s) until the attacker made `path`.
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The host pid of the chain's PID 1 (the pidns init: in every namespace but the mount one).
fn init_pid(lab: &Lab, name: &str) -> u32 {
    let record = lab.state.join("run/chains").join(name).join("pid.json");
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    value["pid"].as_u64().unwrap() as u32
}

/// The joiner in the old order, as `nsenter` does it: every namespace of the chain but the
/// mount namespace, so its process sees the host's files (the weakened setup).
fn nsenter_without_mnt(lab: &Lab, config: Config, name: &str, command: &[&str]) -> Command {
    let target = init_pid(lab, name).to_string();
    let mut argv: Vec<String> = ["nsenter", "-t", &target, "--pid", "--net", "--ipc", "--uts"]
        .map(str::to_owned)
        .to_vec();
    if config != Config::Rootful {
        argv.push("--user".to_owned());
    }
    if config == Config::Rootless {
        // Its user namespace denies setgroups, which nsenter does unless told not to.
        argv.push("--preserve-credentials".to_owned());
    }
    argv.push("--".to_owned());
    argv.extend(command.iter().map(|s| (*s).to_owned()));
    lab.in_host("", config == Config::Rootless, &argv)
}

/// The host pid of the chain's payload (PID 2: the only child of the pidns init).
fn payload_pid(lab: &Lab, name: &str) -> u32 {
    let init = init_pid(lab, name);
    let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap();
    children.split_whitespace().next().unwrap().parse().unwrap()
}

/// A joiner that enters every namespace and the root of the payload but keeps the caller's
/// credentials (root with every capability, or the owner of a rootless user namespace).
fn nsenter_keeping_credentials(lab: &Lab, config: Config, name: &str, command: &[&str]) -> Command {
    let target = payload_pid(lab, name).to_string();
    let mut argv: Vec<String> = [
        "nsenter", "-t", &target, "--mount", "--uts", "--ipc", "--net", "--pid", "-r", "-w",
    ]
    .map(str::to_owned)
    .to_vec();
    if config != Config::Rootful {
        argv.push("--user".to_owned());
    }
    if config == Config::Rootless {
        argv.push("--preserve-credentials".to_owned());
    }
    argv.push("--".to_owned());
    argv.extend(command.iter().map(|s| (*s).to_owned()));
    lab.in_host("", config == Config::Rootless, &argv)
}

/// `nsps exec NAME -- COMMAND`, as the chain's owner.
fn nsps_exec(lab: &Lab, config: Config, name: &str, command: &[&str]) -> Command {
    let mut argv: Vec<String> = ["nsps", "exec", name, "--"].map(str::to_owned).to_vec();
    argv.extend(command.iter().map(|s| (*s).to_owned()));
    lab.in_host("", config == Config::Rootless, &argv)
}

/// The joining chain `nsps exec` ran before (links with `--join`, user namespace first unless
/// the chain made its network namespace outside it, pidns forking, mntns last).
fn old_joining_chain(lab: &Lab, config: Config, name: &str, command: &[&str]) -> Command {
    let links: &[&str] = match config {
        Config::Rootful => &["netns", "ipcns", "utsns", "pidns", "mntns"],
        Config::RootfulUserns => &["netns", "userns", "ipcns", "utsns", "pidns", "mntns"],
        Config::Rootless => &["userns", "netns", "ipcns", "utsns", "pidns", "mntns"],
    };
    let mut argv: Vec<String> = Vec::new();
    for link in links {
        argv.extend([*link, "--join", name, "--"].map(str::to_owned));
    }
    argv.extend(command.iter().map(|s| (*s).to_owned()));
    lab.in_host("", config == Config::Rootless, &argv)
}

/// Asserts that the attack escaped (the weakened setup), with `what` saying which.
fn check_escaped(claim: &str, config: Config, out: &Output) -> Result<(), String> {
    let text = stdout(out);
    if text.lines().any(|l| l.starts_with("ESCAPED")) {
        return Ok(());
    }
    Err(format!(
        "[{claim}] the attack did not escape against the weakened joiner in the {} chain, so it proves nothing:\nstdout:\n{text}\nstderr:\n{}",
        config.name(),
        stderr(out)
    ))
}

#[test]
fn a_joined_process_never_leads_to_the_host_through_proc_pid_root() {
    if !need_root() || !require(have("nsenter"), "nsenter (util-linux)") {
        return;
    }
    let _serial = serial();
    let claim = "issue 13 item 5: the host's files through /proc/PID/root of a process joined to a container with SYS_PTRACE";
    let results = per_config(|config| {
        let mut results = Vec::new();
        // One lab per chain: a rootless chain refuses a state directory that root made.
        let lab = Lab::new("joinroot");
        let marker = format!("host-only-{}-{}", std::process::id(), config as u8);
        let secret = lab.dir.path().join("secret");
        std::fs::write(&secret, &marker).unwrap();
        let drop_dir = lab.dir.path().join("hostdir");
        std::fs::create_dir(&drop_dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&drop_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let written = drop_dir.join("written-by-container");
        let (secret, drop) = (secret.display().to_string(), drop_dir.display().to_string());
        let ptrace = ["--cap-add", "SYS_PTRACE"];
        let joiners: [(&str, &Joiner); 2] = [
            ("nsenter without the mount namespace", &|name| {
                nsenter_without_mnt(&lab, config, name, &["/bin/sleep", "3"])
            }),
            ("nsps exec", &|name| {
                nsps_exec(&lab, config, name, &["/bin/sleep", "3"])
            }),
        ];
        for (i, (joiner, join)) in joiners.iter().enumerate() {
            // The proof (the weakened joiner) races the attacker's watch: on a loaded machine
            // it may take a few tries; it must escape in one of them.
            let tries = if i == 0 { 4 } else { 1 };
            let mut result = Err(String::new());
            for attempt in 0..tries {
                let name = format!("jroot{}{}{i}{attempt}", std::process::id(), config as u8);
                // The watch lasts until the joiner has ended (the test then makes the stop
                // file in the container's /tmp), 30 s at most: the joined process is never
                // killed by the container's end, nor missed by a watch already over.
                let stop = format!("/tmp/stop-{name}");
                let attack = [
                    "/nsattack",
                    "root-watch",
                    "30000",
                    &secret,
                    &marker,
                    &drop,
                    &stop,
                ];
                let container = start(&lab, config, &name, &ptrace, &attack);
                let stop_file = lab.root.join(&stop[1..]);
                wait_for_file(&stop_file.with_extension("ready"));
                let joined = run(&mut join(&name));
                std::fs::write(&stop_file, "").unwrap();
                let out = container.wait_with_output().unwrap();
                let was_written = written.exists();
                let _ = std::fs::remove_file(&written);
                result = if i == 0 {
                    check_escaped(&format!("{claim} ({joiner})"), config, &out).and_then(|()| {
                    // The read shows the hole everywhere; the write is asserted where the
                    // container's root is the host's (in RU the host directory's checks on the
                    // range's uid vary with what ran before on the machine).
                    if was_written || config != Config::Rootful {
                        Ok(())
                    } else {
                        Err(format!(
                            "[{claim}] the weakened joiner let the container read the host but not write {} in the {} chain:\n{}",
                            written.display(),
                            config.name(),
                            stdout(&out)
                        ))
                    }
                })
                } else {
                    check_blocked(&format!("{claim} ({joiner})"), config, &out).and_then(|()| {
                    if joined.status.success() && !was_written {
                        Ok(())
                    } else {
                        Err(format!(
                            "[{claim}] nsps exec failed ({}) or a file was written on the host ({was_written}): {}",
                            joined.status,
                            stderr(&joined)
                        ))
                    }
                })
                };
                if result.is_ok() {
                    break;
                }
            }
            results.push(result);
        }
        lab.kill_all_and_wait();
        lab.assert_clean();
        results
    });
    assert_all(results);
}

#[test]
fn a_joined_process_has_the_containers_user_capabilities_no_new_privs_and_seccomp() {
    if !need_root() {
        return;
    }
    let _serial = serial();
    let claim = "issue 13 item 5: a joined process gets the container's credentials, never more";
    let results = per_config(|config| {
        let mut results = Vec::new();
        let lab = Lab::new("joincreds");
        // A rootless chain maps only its root: there the container is root without capabilities.
        let mut restricted = vec!["--cap-drop", "ALL", "--no-new-privs"];
        if config != Config::Rootless {
            restricted.extend(["--user", "1000:1000"]);
        }
        let name = format!("jcreds{}{}", std::process::id(), config as u8);
        let mut container = start(&lab, config, &name, &restricted, &["/bin/sleep", "60"]);
        // PID 2 is the payload under the chain's init: the container as it was made.
        let status_like = ["/nsattack", "status-like", "2"];
        let weak = run(&mut nsenter_keeping_credentials(
            &lab,
            config,
            &name,
            &status_like,
        ));
        results.push(check_escaped(
            &format!("{claim} (nsenter into every namespace, keeping the caller's credentials)"),
            config,
            &weak,
        ));
        let new = run(&mut nsps_exec(&lab, config, &name, &status_like));
        results.push(check_blocked(&format!("{claim} (nsps exec)"), config, &new));
        // The chain of --join links nsps exec used to run: mntns --join takes them too now.
        let links = run(&mut old_joining_chain(&lab, config, &name, &status_like));
        results.push(check_blocked(
            &format!("{claim} (pidns --join … mntns --join)"),
            config,
            &links,
        ));
        let id = run(&mut nsps_exec(&lab, config, &name, &["/bin/id"]));
        let expected = if config == Config::Rootless {
            ["uid=0", "gid=0"]
        } else {
            ["uid=1000", "gid=1000"]
        };
        let text = stdout(&id);
        results.push(if expected.iter().all(|e| text.contains(e)) {
            Ok(())
        } else {
            Err(format!(
                "[{claim}] nsps exec {name} id in the {} chain: {text} (expected {expected:?}) {}",
                config.name(),
                stderr(&id)
            ))
        });
        let _ = container.kill();
        lab.kill_all_and_wait();
        let _ = container.wait();
        lab.assert_clean();
        results
    });
    assert_all(results);
}

#[test]
fn no_writable_handle_to_a_host_binary_from_a_container_with_sys_ptrace_cve_2019_5736() {
    if !need_root() {
        return;
    }
    let _serial = serial();
    let claim = "CVE-2019-5736 with SYS_PTRACE: a writable handle to a host binary through /proc/PID/exe of a joining process";
    let results = per_config(|config| {
        let mut results = Vec::new();
        let mut lab = Lab::new("joinexe");
        let ids = dev_ino(&lab.private_tools());
        let mut attack = vec!["/nsattack", "exe-watch", "2500"];
        attack.extend(ids.iter().map(String::as_str));
        let ptrace = ["--cap-add", "SYS_PTRACE"];
        for (i, joiner) in ["the old joining chain", "nsps exec"].iter().enumerate() {
            let claim = format!("{claim} ({joiner})");
            // The window is short: the proof (the old chain, rootful) may take a few tries to
            // catch a joining mntns; it must escape in one of them.
            let proof = i == 0 && config == Config::Rootful;
            let tries = if proof { 4 } else { 1 };
            let mut result = Err(String::new());
            for attempt in 0..tries {
                let name = format!("jexe{}{}{i}{attempt}", std::process::id(), config as u8);
                let container = start(&lab, config, &name, &ptrace, &attack);
                let deadline = Instant::now() + Duration::from_millis(1500);
                while Instant::now() < deadline {
                    let mut join = if i == 0 {
                        old_joining_chain(&lab, config, &name, &["/bin/true"])
                    } else {
                        nsps_exec(&lab, config, &name, &["/bin/true"])
                    };
                    run(&mut join);
                }
                let out = container.wait_with_output().unwrap();
                // Only where the container's root may write the host's binary can it escape.
                result = if proof {
                    check_escaped(&claim, config, &out)
                } else {
                    check_blocked(&claim, config, &out)
                };
                if result.is_ok() {
                    break;
                }
            }
            results.push(result);
        }
        lab.kill_all_and_wait();
        lab.assert_clean();
        results
    });
    assert_all(results);
}
