//! The escape suite: each case is a real attempt from inside a container, by the static
//! attacker `nsattack` (tests/tests/escape_common/nsattack.c), against the three chains
//! (rootful, rootful with `userns --map-auto`, rootless as uid 65534), each with a busybox
//! root, each inside a throwaway host (network, IPC and UTS namespaces made by the test).
//! Every case must be BLOCKED; a failure message starts with `HOLE [CVE or claim]`.
//! Every test audits what it leaves behind.

mod escape_common;

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use escape_common::*;
use nschain_tests::*;

fn configs() -> Vec<Config> {
    if need_rootless() {
        Config::ALL.to_vec()
    } else {
        vec![Config::Rootful, Config::RootfulUserns]
    }
}

/// Runs `attack` (nsattack's argv) in every configuration and asserts it was blocked.
fn attack_everywhere(lab: &Lab, claim: &str, pre: &str, attack: &[&str]) {
    for config in configs() {
        let mut command = vec!["/nsattack"];
        command.extend_from_slice(attack);
        let out = run(&mut lab.chain(config, pre, &[], &command));
        assert_blocked(claim, config, &out);
    }
}

#[test]
fn a_host_only_file_is_unreadable() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("read");
    let secret = lab.dir.path().join("host-secret");
    std::fs::write(&secret, "host-only secret").unwrap();
    let s = secret.display().to_string();
    let via_proc1 = format!("/proc/1/root{s}");
    let via_self = format!("/proc/self/root{s}");
    let via_dots = format!("/../../../..{s}");
    let via_etc = "/etc/shadow".to_owned();
    attack_everywhere(
        &lab,
        "claim: a host-only file cannot be read from a container",
        "",
        &["read", &s, &via_proc1, &via_self, &via_dots, &via_etc],
    );
    lab.assert_clean();
}

#[test]
fn chroot_escape_with_fchdir_stops_at_the_container_root() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("chroot");
    let marker = lab.dir.path().join("host-marker");
    std::fs::write(&marker, "host").unwrap();
    attack_everywhere(
        &lab,
        "claim: pivot_root, not chroot: the fchdir chroot escape stays inside",
        "",
        &["chroot", &marker.display().to_string()],
    );
    lab.assert_clean();
}

#[test]
fn core_pattern_and_sysrq_trigger_are_not_writable() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("sysctl");
    attack_everywhere(
        &lab,
        "claim: /proc/sys/kernel/core_pattern and /proc/sysrq-trigger are read-only",
        "",
        &["sysctl"],
    );
    lab.assert_clean();
}

#[test]
fn host_processes_and_the_pidns_monitor_are_invisible_and_init_is_untouchable() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("procs");
    let marker = format!("nsc-host-process-{}", std::process::id());
    let mut host_proc = Command::new(attacker())
        .args(["sleep", "60000", &marker])
        .spawn()
        .unwrap();
    let reversed: String = marker.chars().rev().collect();
    attack_everywhere(
        &lab,
        "claim: host processes, the pidns monitor and the init cannot be seen, signalled or traced",
        "",
        &["procs", &reversed],
    );
    host_proc.kill().unwrap();
    host_proc.wait().unwrap();
    lab.assert_clean();
}

#[test]
fn setns_through_proc_or_a_leaked_namespace_fd_fails() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("setns");
    for config in configs() {
        let mut cmd = lab.chain(config, "", &[], &["/nsattack", "setns"]);
        // A namespace fd of the host, left open (not close-on-exec) by the caller at fd 7:
        // the chain must not carry it into the container.
        let host_ns = std::fs::File::open("/proc/self/ns/mnt").unwrap();
        let raw = host_ns.as_raw_fd();
        // SAFETY: dup2 on fds of the forked child before exec; no allocation.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(raw, 7) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = run(&mut cmd);
        assert_blocked(
            "claim: no namespace handle of the host is reachable (setns through /proc/*/ns or an fd)",
            config,
            &out,
        );
    }
    lab.assert_clean();
}

#[test]
fn no_fd_or_working_directory_of_the_host_reaches_the_container_cve_2024_21626() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("fds");
    for config in configs() {
        let mut cmd = lab.chain(config, "", &[], &["/nsattack", "fds"]);
        // A directory fd of the host at fd 7 and a file at fd 8, not close-on-exec, and the
        // caller's cwd on the host (the scratch dir).
        let dir = std::fs::File::open(lab.dir.path()).unwrap();
        let file = std::fs::File::open("/etc/passwd").unwrap();
        let (d, f) = (dir.as_raw_fd(), file.as_raw_fd());
        // SAFETY: dup2 on fds of the forked child before exec; no allocation.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(d, 7) < 0 || libc::dup2(f, 8) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = run(&mut cmd);
        assert_blocked(
            "CVE-2024-21626: a host fd or working directory left by a link",
            config,
            &out,
        );
        // The runc exploit itself: the working directory given as /proc/self/fd/N.
        for workdir in ["/proc/self/fd/7", "/proc/1/cwd", "/proc/self/cwd/.."] {
            let mut cmd = lab.chain(config, "", &["-w", workdir], &["/nsattack", "fds"]);
            // SAFETY: as above.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(d, 7) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let out = run(&mut cmd);
            if out.status.code() == Some(125) {
                assert!(stderr(&out).contains("mntns: fatal:"), "{}", stderr(&out));
                continue;
            }
            assert_blocked(
                &format!("CVE-2024-21626: mntns -w {workdir} leads outside the root"),
                config,
                &out,
            );
        }
        drop((dir, file));
    }
    lab.assert_clean();
}

#[test]
fn proc_self_exe_as_the_command_never_runs_a_host_binary_cve_2019_5736() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("selfexe");
    for config in configs() {
        // runc's CVE: the image's entrypoint is /proc/self/exe, so the runtime re-executes
        // ITSELF inside the container, where the container can reopen it for writing.
        let out = run(&mut lab.chain(config, "", &[], &["/proc/self/exe", "--version"]));
        let text = stdout(&out);
        assert!(
            !TOOLS.iter().any(|t| text.starts_with(t)),
            "HOLE [CVE-2019-5736] in the {} chain: /proc/self/exe as the command ran the host's {text}",
            config.name()
        );
    }
    lab.assert_clean();
}

/// A named container whose payload watches for host binaries of ours, while `join` enters it
/// `joins` times (`nsps exec` or a `--join` chain).
fn watch_joins(
    lab: &mut Lab,
    config: Config,
    claim: &str,
    join: &dyn Fn(&Lab, &str) -> Command,
) -> Result<(), String> {
    let copies = lab.private_tools();
    let ids = dev_ino(&copies);
    let name = format!("exe{}{}", std::process::id(), config as u8);
    let mut command = vec!["/nsattack", "exe-watch", "2500"];
    command.extend(ids.iter().map(String::as_str));
    let argv = lab.chain_argv(config, Some(&name), &[], &command);
    let container = lab
        .in_host("", config == Config::Rootless, &argv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the registration, then join it again and again.
    let mut joined = 0;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(20));
        let out = run(&mut join(lab, &name));
        if out.status.success() {
            joined += 1;
            if joined == 25 {
                break;
            }
        }
    }
    let out = container.wait_with_output().unwrap();
    if joined == 0 {
        return Err(format!(
            "[{claim}] could not join the {} chain: {}",
            config.name(),
            stderr(&out)
        ));
    }
    check_blocked(claim, config, &out)
}

#[test]
fn no_writable_handle_to_a_host_binary_when_joined_with_nsps_exec_cve_2019_5736() {
    if !need_root() {
        return;
    }
    let mut results = Vec::new();
    // One lab per chain: a rootless chain refuses a state directory that root made.
    for config in configs() {
        let mut lab = Lab::new("nspsexec");
        results.push(watch_joins(
            &mut lab,
            config,
            "CVE-2019-5736: a writable handle to a host binary through /proc/PID/exe when joined (nsps exec)",
            &|lab, name| {
                let nobody = lab_is_rootless(lab, name);
                let argv = vec![
                    "nsps".to_owned(),
                    "exec".to_owned(),
                    name.to_owned(),
                    "--".to_owned(),
                    "/bin/true".to_owned(),
                ];
                lab.in_host("", nobody, &argv)
            },
        ));
        lab.assert_clean();
    }
    assert_all(results);
}

/// Whether the named chain of this lab runs as uid 65534 (its registration is nobody's).
fn lab_is_rootless(lab: &Lab, name: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(lab.chain_dir(name)).is_ok_and(|m| m.uid() == 65534)
}

#[test]
fn no_writable_handle_to_a_host_binary_when_a_second_chain_joins_at_start_cve_2019_5736() {
    if !need_root() {
        return;
    }
    let mut results = Vec::new();
    for config in configs() {
        let mut lab = Lab::new("joinstart");
        results.push(watch_joins(
            &mut lab,
            config,
            "CVE-2019-5736: a writable handle to a host binary through /proc/PID/exe when a new chain starts in a running container's pid namespace",
            &|lab, name| {
                let mut argv: Vec<String> = Vec::new();
                if lab.has_user(name) {
                    argv.extend(["userns", "--join", name, "--"].map(str::to_owned));
                }
                argv.extend(["pidns", "--join", name, "--", "mntns", "--rootfs"].map(str::to_owned));
                argv.push(lab.root.display().to_string());
                argv.extend(["--", "/bin/true"].map(str::to_owned));
                lab.in_host("", lab_is_rootless(lab, name), &argv)
            },
        ));
        lab.assert_clean();
    }
    assert_all(results);
}

#[test]
fn a_process_joined_with_nsps_exec_gets_no_host_fd_cwd_namespace_or_process() {
    if !need_root() {
        return;
    }
    let marker = format!("nsc-host-process-j{}", std::process::id());
    let mut host_proc = Command::new(attacker())
        .args(["sleep", "60000", &marker])
        .spawn()
        .unwrap();
    let reversed: String = marker.chars().rev().collect();
    let mut results = Vec::new();
    for config in configs() {
        // One lab per chain: a rootless chain refuses a state directory that root made.
        let lab = Lab::new("joined");
        let name = format!("join{}{}", std::process::id(), config as u8);
        let argv = lab.chain_argv(config, Some(&name), &[], &["/bin/sleep", "30"]);
        let mut container = lab
            .in_host("", config == Config::Rootless, &argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        lab.wait_registered(&name);
        for attack in [&["fds"][..], &["setns"][..], &["procs", &reversed][..]] {
            let mut argv: Vec<String> = ["nsps", "exec", &name, "--", "/nsattack"]
                .map(str::to_owned)
                .to_vec();
            argv.extend(attack.iter().map(|s| (*s).to_owned()));
            let mut cmd = lab.in_host("", config == Config::Rootless, &argv);
            // A host directory and a host namespace left open by the caller of nsps exec.
            let dir = std::fs::File::open(lab.dir.path()).unwrap();
            let ns = std::fs::File::open("/proc/self/ns/mnt").unwrap();
            let (d, n) = (dir.as_raw_fd(), ns.as_raw_fd());
            // SAFETY: dup2 in the forked child before exec.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(d, 7) < 0 || libc::dup2(n, 8) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let out = run(&mut cmd);
            results.push(check_blocked(
                &format!(
                    "CVE-2024-21626 / claim: nothing of the host reaches a process joined with nsps exec ({})",
                    attack[0]
                ),
                config,
                &out,
            ));
        }
        lab.kill_all_and_wait();
        let _ = container.wait();
        lab.assert_clean();
    }
    host_proc.kill().unwrap();
    host_proc.wait().unwrap();
    assert_all(results);
}

#[test]
fn a_host_loopback_service_and_abstract_socket_are_unreachable() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("net");
    let port = 20000 + (std::process::id() % 20000);
    let abstract_name = format!("nsc-host-sock-{}", std::process::id());
    let serve = format!(
        "{} serve {port} {abstract_name} > serve.out 2>&1 & trap 'kill $!' EXIT; sleep 0.2",
        attacker().display()
    );
    // The attack works from the host itself (so the test can fail).
    let mut cmd = lab.in_host(
        &serve,
        false,
        &[
            attacker().display().to_string(),
            "net".to_owned(),
            port.to_string(),
            abstract_name.clone(),
        ],
    );
    let out = run(&mut cmd);
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("ESCAPED"))
            .count(),
        2,
        "the host's own services must be reachable from the host: {}",
        stdout(&out)
    );
    let pre = serve.clone();
    attack_everywhere(
        &lab,
        "claim: a container cannot reach the host's 127.0.0.1 or abstract unix sockets",
        &pre,
        &["net", &port.to_string(), &abstract_name],
    );
    lab.assert_clean();
}

#[test]
fn host_sysv_ipc_is_invisible() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("sysv");
    let key = "0x4e534331";
    let pre = format!("{} mksysv {key}", attacker().display());
    // The objects exist on the "host".
    let out = run(&mut lab.in_host(
        &pre,
        false,
        &[attacker().display().to_string(), "sysv".into(), key.into()],
    ));
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("ESCAPED"))
            .count(),
        3,
        "{}",
        stdout(&out)
    );
    attack_everywhere(
        &lab,
        "claim: SysV IPC of the host is invisible inside (ipcns)",
        &pre,
        &["sysv", key],
    );
    lab.assert_clean();
}

#[test]
fn the_host_hostname_does_not_change() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("uts");
    for config in configs() {
        // sethostname(2) is refused (no CAP_SYS_ADMIN) or changes the container's own name.
        let out = run(&mut lab.chain(config, "", &[], &["/nsattack", "sethostname", "evil"]));
        assert!(
            stdout(&out).contains("hostname set to evil")
                || stdout(&out).contains("BLOCKED sethostname"),
            "{}: {}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("host-hostname=nsc-host"),
            "HOLE [claim: the host's hostname cannot be changed] in the {} chain: {}",
            config.name(),
            stderr(&out)
        );
    }
    lab.assert_clean();
}

#[test]
fn tiocsti_cannot_push_keystrokes_into_the_callers_terminal_cve_2017_5226() {
    if !need_root() || !require(have("script"), "script (util-linux) for a pty") {
        return;
    }
    let lab = Lab::new("tiocsti");
    let legacy = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti").unwrap_or_default();
    eprintln!("dev.tty.legacy_tiocsti = {}", legacy.trim());
    let mut results = Vec::new();
    for config in configs() {
        let argv = lab.chain_argv(config, None, &[], &["/nsattack", "tiocsti", "x"]);
        let mut inner: Vec<String> = Vec::new();
        if config == Config::Rootless {
            inner.extend(setpriv_as(NOBODY));
        }
        inner.extend(argv);
        let quoted: Vec<String> = inner.iter().map(|a| format!("'{a}'")).collect();
        // Run the chain under a pty (script), as a user at a terminal would.
        let argv = vec![
            "script".to_owned(),
            "-qec".to_owned(),
            quoted.join(" "),
            "/dev/null".to_owned(),
        ];
        let mut cmd = lab.in_host("", false, &argv);
        let out = run(&mut cmd);
        let text = stdout(&out).replace('\r', "");
        // (A pushed key is echoed at the start of the next line: look anywhere in it.)
        let escaped: Vec<&str> = text.lines().filter(|l| l.contains("ESCAPED")).collect();
        if !escaped.is_empty() {
            results.push(Err(format!(
                "HOLE [CVE-2017-5226: TIOCSTI pushes keystrokes into the caller's terminal] in the {} chain:\n{text}",
                config.name()
            )));
            continue;
        }
        assert!(
            text.lines().any(|l| l.contains("BLOCKED TIOCSTI on fd 0")),
            "the attack did not run under a terminal in the {} chain: {text}\n{}",
            config.name(),
            stderr(&out)
        );
        results.push(Ok(()));
    }
    lab.assert_clean();
    assert_all(results);
}
