//! cgroupns: docker's limits on this machine's cgroup layout (v1 hybrid here: memory, pids,
//! cpu, cpuacct mounted apart, a unified mount with hugetlb only), the cgroup removed after a
//! normal exit, a SIGKILL of the first link and of the watcher (then `cgroupns gc`), the v2
//! mechanics on the unified mount and the v2 limit files in a directory shaped like v2, the
//! order rule, nsps, and the container's read-only cgroupfs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cgroupfs::{Cgroup, Layout, Version};
use nschain_tests::audit::{self, all_chain_cgroups};
use nschain_tests::*;
use serde_json::Value;

fn cgroupns(state: &Path, args: &[&str]) -> Command {
    let mut cmd = tool("cgroupns", state);
    cmd.args(args);
    cmd
}

/// The directories of chain `name`'s cgroup, in every hierarchy.
fn dirs_of(name: &str) -> BTreeSet<PathBuf> {
    let wanted = format!("nschain-{name}");
    all_chain_cgroups()
        .into_iter()
        .filter(|d| d.file_name().is_some_and(|n| n == wanted.as_str()))
        .collect()
}

/// Waits (up to 30 s: the watcher works after the chain's process is gone) until chain
/// `name` has no cgroup directory left.
fn assert_gone(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dirs_of(name).is_empty() {
        assert!(
            Instant::now() < deadline,
            "cgroup of {name} left behind: {:?}",
            dirs_of(name)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A unique chain name for one test.
fn unique(tag: &str) -> String {
    format!("cgt-{tag}-{}", std::process::id())
}

/// Where chain `name`'s cgroup is in the hierarchy of `controller` (made below the caller's).
fn dir_in(controller: &str, name: &str) -> PathBuf {
    let layout = Layout::detect().unwrap();
    layout
        .find(controller)
        .unwrap_or_else(|| panic!("no {controller} hierarchy"))
        .own_dir()
        .join(format!("nschain-{name}"))
}

fn spawn_quiet(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

#[test]
fn a_memory_hog_is_oom_killed_ending_137_with_a_warning_naming_the_limit() {
    if !need::root() || !require(have("python3"), "python3") {
        return;
    }
    let state = scratch();
    let before = audit::snapshot(state.path(), None);
    let hog = [
        "python3",
        "-c",
        "a = bytearray(200 << 20); print('survived')",
    ];
    // Without the limit the allocation succeeds (the defence off).
    let free = run(Command::new(hog[0]).args(&hog[1..]));
    assert!(stdout(&free).contains("survived"), "{}", stderr(&free));
    let name = unique("oom");
    // As a user's shell reports it: the payload killed by SIGKILL is 137.
    let cgroupns_bin = bin("cgroupns").display().to_string();
    let mut args = vec![
        "-c",
        "\"$@\"; echo \"exit $?\"",
        "sh",
        &cgroupns_bin,
        "--memory",
        "64m",
        "--name",
        &name,
        "--",
    ];
    args.extend(hog);
    let mut cmd = Command::new("sh");
    cmd.args(&args);
    with_env(&mut cmd, state.path());
    let out = run(&mut cmd);
    let err = stderr(&out);
    assert_eq!(stdout(&out).trim(), "exit 137", "{err}");
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("cgroupns: warning: "))
        .collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("--memory 64m") && warnings[0].contains("OOM"),
        "{err}"
    );
    assert_gone(&name);
    audit::assert_nothing_left(&before, state.path(), None, &[]);
}

#[test]
fn a_detached_chain_killed_by_the_oom_killer_shows_oom_killed() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let name = unique("oomd");
    let out = run(&mut cgroupns(
        state.path(),
        &[
            "-d",
            "--memory",
            "64m",
            "--name",
            &name,
            "--",
            "python3",
            "-c",
            "a = bytearray(200 << 20)",
        ],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), name);
    // nsps wait returns the container's status, then nsps --all shows why it ended.
    let mut wait = tool("nsps", state.path());
    wait.args(["wait", &name]);
    let waited = run(&mut wait);
    assert_eq!(waited.status.code(), Some(137), "{}", stderr(&waited));
    // The watcher marks the OOM kill as it collects the cgroup, right after the end.
    let listing = || {
        let mut all = tool("nsps", state.path());
        all.arg("--all");
        ok(&mut all)
    };
    let oom_shown = || {
        listing()
            .lines()
            .any(|l| l.starts_with(&name) && l.ends_with("OOM-killed"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !oom_shown() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(oom_shown(), "{}", listing());
    let mut rm = tool("nsps", state.path());
    rm.args(["rm", &name]);
    ok(&mut rm);
    assert_gone(&name);
}

#[test]
fn a_pids_limit_makes_a_loop_of_background_sleeps_fail_to_fork() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let script = "for i in 1 2 3 4 5 6 7; do sleep 1 & done; wait; echo all-forked";
    // The loop forks all seven without the limit.
    let free = run(cgroupns(state.path(), &["--", "sh", "-c", script]).env("LC_ALL", "C"));
    assert!(stdout(&free).contains("all-forked"), "{}", stderr(&free));
    let name = unique("pids");
    let out = run(&mut cgroupns(
        state.path(),
        &[
            "--pids-limit",
            "5",
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            script,
        ],
    ));
    let err = stderr(&out);
    assert!(err.contains("fork"), "no fork failure: {err}");
    assert_ne!(out.status.code(), Some(0));
    assert!(!stdout(&out).contains("all-forked"));
    // The host is not the one limited: it forks as before.
    assert!(run(Command::new("sh").args(["-c", script]))
        .status
        .success());
    assert_gone(&name);
}

#[test]
fn a_busy_loop_under_cpus_0_2_gets_a_fifth_of_a_cpu() {
    if !need::root() || !require(have("timeout"), "timeout (coreutils)") {
        return;
    }
    let state = scratch();
    let name = unique("cpu");
    let layout = Layout::detect().unwrap();
    // CPU time from the cgroup's own accounting (never wall time): cpuacct on v1, cpu.stat
    // on v2, read by the payload before it ends.
    let (usage, stat) = match layout.find("cpuacct") {
        Some(_) => (
            dir_in("cpuacct", &name).join("cpuacct.usage"),
            dir_in("cpu", &name).join("cpu.stat"),
        ),
        None => (
            dir_in("cpu", &name).join("cpu.stat"),
            dir_in("cpu", &name).join("cpu.stat"),
        ),
    };
    let script = format!(
        "timeout 2 sh -c 'while :; do :; done'; cat {} {}",
        usage.display(),
        stat.display()
    );
    let out = ok(&mut cgroupns(
        state.path(),
        &["--cpus", "0.2", "--name", &name, "--", "sh", "-c", &script],
    ));
    let seconds = match out.lines().next().unwrap().trim().parse::<f64>() {
        Ok(ns) => ns / 1e9,
        Err(_) => {
            let usec: f64 = out
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .unwrap()
                .parse()
                .unwrap();
            usec / 1e6
        }
    };
    // 0.2 of 2 s is 0.4 s; a loaded machine may give less (other work takes the CPU), never
    // more than the quota.
    assert!(
        seconds > 0.0 && seconds <= 0.55,
        "{seconds} s of CPU in 2 s: {out}"
    );
    let throttled: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("nr_throttled "))
        .unwrap()
        .parse()
        .unwrap();
    // What stopped it near its share was the quota (under heavy load it may never reach it).
    if seconds >= 0.3 {
        assert!(throttled > 0, "never throttled: {out}");
    }
    assert_gone(&name);
}

#[test]
fn without_limits_it_is_a_cgroup_namespace_only_like_unshare_c() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let before = all_chain_cgroups();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let inside = ok(&mut cgroupns(
        state.path(),
        &["--", "cat", "/proc/self/cgroup"],
    ));
    let via_unshare = ok(Command::new("unshare").args(["-C", "cat", "/proc/self/cgroup"]));
    assert_eq!(inside, via_unshare);
    assert!(inside.lines().all(|l| l.ends_with(":/")), "{inside}");
    assert!(
        own.lines().any(|l| !l.ends_with(":/")),
        "the test runs at the root: {own}"
    );
    let ns = ok(&mut cgroupns(
        state.path(),
        &["--", "readlink", "/proc/self/ns/cgroup"],
    ));
    assert_ne!(
        ns.trim(),
        std::fs::read_link("/proc/self/ns/cgroup")
            .unwrap()
            .display()
            .to_string()
    );
    assert!(
        all_chain_cgroups()
            .difference(&before)
            .all(|d| !d.to_string_lossy().contains("cgroupns-")),
        "a cgroup was made without limits"
    );
}

#[test]
fn the_cgroup_is_gone_after_a_normal_exit_in_every_hierarchy() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let before = audit::snapshot(state.path(), None);
    let name = unique("exit");
    let listing = ok(&mut cgroupns(
        state.path(),
        &[
            "--memory",
            "64m",
            "--pids-limit",
            "64",
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            "sleep 0.1 & echo made",
        ],
    ));
    assert!(listing.contains("made"));
    assert_gone(&name);
    audit::assert_nothing_left(&before, state.path(), None, &[]);
}

#[test]
fn the_chains_stderr_is_released_at_its_end_not_after_the_cleanup() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let name = unique("stderr");
    let memory = dir_in("memory", &name);
    // The container leaves a child cgroup behind: the removal waits for it (up to 5 s).
    let sub = memory.join("sub");
    let out = run(&mut cgroupns(
        state.path(),
        &[
            "--memory",
            "64m",
            "--name",
            &name,
            "--",
            "mkdir",
            &sub.display().to_string(),
        ],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    // Our pipes saw their end while the watcher still waits to remove the cgroup: once the
    // child goes, it finishes the removal (had it held stderr, it would have given up).
    assert!(memory.is_dir(), "removed before the child cgroup went");
    std::fs::remove_dir(&sub).unwrap();
    assert_gone(&name);
}

#[test]
fn the_cgroup_and_what_is_left_in_it_go_after_sigkill_of_the_first_link() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let before = audit::snapshot(state.path(), None);
    let name = unique("kill");
    let mut child = spawn_quiet(&mut cgroupns(
        state.path(),
        &[
            "--memory",
            "64m",
            "--name",
            &name,
            "--",
            "pidns",
            "--",
            "sh",
            "-c",
            "sleep 100 & sleep 100",
        ],
    ));
    let memory = Cgroup {
        dirs: vec![(Version::V1, dir_in("memory", &name))],
    };
    // The monitor, init, sh and two sleeps.
    wait_until("the container in its cgroup", || memory.procs().len() >= 5);
    let members = memory.procs();
    assert!(dirs_of(&name).len() >= 4, "{:?}", dirs_of(&name));
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    child.wait().unwrap();
    assert_gone(&name);
    for pid in members {
        assert!(!pid_alive(pid), "process {pid} of the container survived");
    }
    audit::assert_nothing_left(&before, state.path(), None, &[]);
}

#[test]
fn after_sigkill_of_the_watcher_too_cgroupns_gc_and_the_next_start_collect_the_cgroup() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let run_dir = format!("NSCHAIN_RUN_DIR={}", state.path().join("run").display());
    for collector in ["gc", "next start"] {
        let name = unique(if collector == "gc" { "gc" } else { "next" });
        let mut child = spawn_quiet(&mut cgroupns(
            state.path(),
            &[
                "--pids-limit",
                "20",
                "--name",
                &name,
                "--",
                "sh",
                "-c",
                "sleep 100 & sleep 100",
            ],
        ));
        let pids = Cgroup {
            dirs: vec![(Version::V1, dir_in("pids", &name))],
        };
        wait_until("the container in its cgroup", || pids.procs().len() >= 3);
        let members = pids.procs();
        let watchers: Vec<u32> = audit::processes_with_env(&run_dir)
            .iter()
            .filter(|p| p.contains("gc --watch"))
            .filter_map(|p| p.split(' ').next()?.parse().ok())
            .collect();
        assert_eq!(
            watchers.len(),
            1,
            "{:?}",
            audit::processes_with_env(&run_dir)
        );
        for pid in [watchers[0], child.id()] {
            // SAFETY: kill only sends a signal (the watcher and the chain we started).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // Nobody watches any more: the cgroup stays, with the left sleep in it.
        assert!(!dirs_of(&name).is_empty(), "removed without a watcher?");
        assert!(members.iter().any(|p| pid_alive(*p)));
        if collector == "gc" {
            ok(&mut cgroupns(state.path(), &["gc"]));
        } else {
            ok(&mut cgroupns(
                state.path(),
                &["--pids-limit", "5", "--", "true"],
            ));
        }
        assert_gone(&name);
        for pid in members {
            assert!(!pid_alive(pid), "{collector}: process {pid} survived");
        }
    }
}

/// A directory for a hand-made cgroup below the caller's own in hierarchy `h`.
fn own_child(h: &common::cgroupfs::Hierarchy, tag: &str) -> PathBuf {
    h.own_dir().join(format!("nschain-{}", unique(tag)))
}

#[test]
fn v2_mechanics_on_the_unified_mount_mkdir_move_events_kill() {
    if !need::root() {
        return;
    }
    let layout = Layout::detect().unwrap();
    let Some(unified) = layout.unified() else {
        assert!(!require(false, "a cgroup2 (unified) mount"));
        return;
    };
    let dir = own_child(unified, "v2mech");
    std::fs::create_dir(&dir).unwrap();
    let cgroup = Cgroup {
        dirs: vec![(Version::V2, dir.clone())],
    };
    let events = || std::fs::read_to_string(dir.join("cgroup.events")).unwrap();
    assert!(events().contains("populated 0"), "{}", events());
    let mut child = Command::new("sleep").arg("100").spawn().unwrap();
    cgroup.add(child.id()).unwrap();
    assert_eq!(cgroup.procs(), vec![child.id()]);
    assert!(events().contains("populated 1"), "{}", events());
    // cgroup.kill (what the watcher uses on v2) kills every member.
    cgroup.kill(Duration::from_secs(5)).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    wait_until("populated 0", || events().contains("populated 0"));
    cgroup.remove(Duration::from_secs(5)).unwrap();
    assert!(!dir.exists());
}

#[test]
fn v1_leftovers_are_frozen_and_killed_before_the_removal() {
    if !need::root() {
        return;
    }
    let layout = Layout::detect().unwrap();
    let (Some(freezer), Some(pids)) = (layout.find("freezer"), layout.find("pids")) else {
        assert!(!require(false, "v1 freezer and pids hierarchies"));
        return;
    };
    if freezer.version != Version::V1 {
        return;
    }
    let dirs: Vec<(Version, PathBuf)> = [freezer, pids]
        .iter()
        .map(|h| (Version::V1, own_child(h, "v1kill")))
        .collect();
    for (_, d) in &dirs {
        std::fs::create_dir(d).unwrap();
    }
    let cgroup = Cgroup { dirs };
    // A leftover that keeps forking: without the freezer a kill loop may race its children.
    let mut child = Command::new("sh")
        .args(["-c", "while :; do sleep 5 & sleep 0.01; done"])
        .spawn()
        .unwrap();
    cgroup.add(child.id()).unwrap();
    wait_until("children forked inside", || cgroup.procs().len() >= 5);
    cgroup.kill(Duration::from_secs(5)).unwrap();
    assert!(cgroup.procs().is_empty());
    child.wait().unwrap();
    cgroup.remove(Duration::from_secs(5)).unwrap();
    assert!(cgroup.dirs.iter().all(|(_, d)| !d.exists()));
}

#[test]
fn v2_limit_files_are_written_in_a_directory_shaped_like_v2() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(
        root.path().join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    )
    .unwrap();
    std::fs::write(root.path().join("cgroup.subtree_control"), "").unwrap();
    let mountinfo = format!(
        "30 23 0:26 / {} rw - cgroup2 cgroup2 rw,nsdelegate\n",
        root.path().display()
    );
    let layout = Layout::parse(&mountinfo, "0::/\n", |m| {
        std::fs::read_to_string(m.join("cgroup.controllers")).unwrap_or_default()
    });
    let h = layout.unified().unwrap();
    let dir = cgroupns::parent_dir(h, None).join("nschain-x");
    std::fs::create_dir(&dir).unwrap();
    // A host that accounts swap has memory.swap.max.
    std::fs::write(dir.join("memory.swap.max"), "max\n").unwrap();
    let limits = cgroupns::Limits {
        memory: Some(cgroupns::Size(64 << 20)),
        swap: Some(cgroupns::Swap::Total(cgroupns::Size(96 << 20))),
        pids: Some(64),
        cpus: Some(0.5),
        weight: Some(200),
        cpuset: Some("0".into()),
    };
    let cgroup = Cgroup {
        dirs: vec![(Version::V2, dir.clone())],
    };
    cgroupns::write_limits(&layout, &cgroup, &limits).unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.path().join("cgroup.subtree_control")).unwrap(),
        "+memory +pids +cpu +cpuset"
    );
    assert_eq!(read("memory.max"), "67108864");
    assert_eq!(read("memory.swap.max"), (32u64 << 20).to_string());
    assert_eq!(read("pids.max"), "64");
    assert_eq!(read("cpu.max"), "50000 100000");
    assert_eq!(read("cpu.weight"), "200");
    assert_eq!(read("cpuset.cpus"), "0");
    assert!(!dir.join("memory.limit_in_bytes").exists());
    // What nsps reads back.
    std::fs::write(dir.join("memory.current"), "1024\n").unwrap();
    let usage = cgroup.usage();
    assert_eq!(
        (usage.memory_bytes, usage.memory_limit),
        (Some(1024), Some(64 << 20))
    );
    assert_eq!(usage.pids_limit, Some(64));
}

#[test]
fn cgroup2_mounts_inside_a_user_namespace_only_from_a_cgroupns_made_after_userns() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let mnt = state.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let script = format!(
        "mount -t cgroup2 none {m} && test -f {m}/cgroup.procs && echo mounted",
        m = mnt.display()
    );
    let mut userns_first = tool("userns", state.path());
    userns_first.args(["--", "cgroupns", "--", "mntns", "--", "sh", "-c", &script]);
    let after = run(&mut userns_first);
    assert!(
        stdout(&after).contains("mounted"),
        "userns -- cgroupns: {}",
        stderr(&after)
    );
    let before = run(&mut cgroupns(
        state.path(),
        &["--", "userns", "--", "mntns", "--", "sh", "-c", &script],
    ));
    assert!(
        !stdout(&before).contains("mounted"),
        "cgroupns -- userns mounted it: {}",
        stdout(&before)
    );
    assert!(
        stderr(&before).contains("ermission") || stderr(&before).contains("not permitted"),
        "{}",
        stderr(&before)
    );
}

/// Exit 125 with one fatal line and one hint containing `hint`.
fn assert_refused(out: &std::process::Output, hint: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("cgroupns: fatal: "))
            .count(),
        1,
        "{err}"
    );
    let hints: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("cgroupns: hint: "))
        .collect();
    assert_eq!(hints.len(), 1, "{err}");
    assert!(hints[0].contains(hint), "{err}");
}

#[test]
fn limits_after_pidns_or_after_a_rootful_userns_are_refused_naming_rule_8() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let before = audit::snapshot(state.path(), None);
    let marker = state.path().join("ran");
    let touch = format!("touch {}", marker.display());
    for first in [&["pidns"][..], &["userns", "--map-auto"]] {
        let mut cmd = tool(first[0], state.path());
        cmd.args(&first[1..]).args([
            "--", "cgroupns", "--memory", "64m", "--", "sh", "-c", &touch,
        ]);
        assert_refused(&run(&mut cmd), "(DESIGN.md §2, rule 8)");
        assert!(!marker.exists(), "{first:?}: the payload ran");
    }
    // The right order works: limits first, then userns and pidns.
    let mut cmd = cgroupns(
        state.path(),
        &[
            "--memory",
            "64m",
            "--",
            "userns",
            "--map-auto",
            "--",
            "pidns",
            "--",
            "true",
        ],
    );
    ok(&mut cmd);
    audit::assert_nothing_left(&before, state.path(), None, &[]);
}

#[test]
fn rootless_limits_on_cgroup_v1_are_refused_with_a_hint_and_the_namespace_alone_works() {
    if !need::root() || !need::rootless() {
        return;
    }
    let layout = Layout::detect().unwrap();
    if layout.kind() == common::cgroupfs::Kind::Unified {
        return; // a v2 host may delegate: the v1 refusal does not apply
    }
    let state = scratch();
    std::fs::set_permissions(
        state.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut alone = as_nobody(&cgroupns(state.path(), &["--memory", "64m", "--", "true"]));
    assert_refused(&run(&mut alone), "cgroup v2");
    let mut under = as_nobody(&tool("userns", state.path()));
    under.args(["--", "cgroupns", "--pids-limit", "5", "--", "true"]);
    assert_refused(&run(&mut under), "cgroup v2");
    let mut bare = as_nobody(&tool("userns", state.path()));
    bare.args(["--", "cgroupns", "--", "cat", "/proc/self/cgroup"]);
    assert!(ok(&mut bare).lines().all(|l| l.ends_with(":/")));
}

#[test]
fn runtime_bad_values_leave_nothing_behind() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let before = audit::snapshot(state.path(), None);
    let before_cgroups = all_chain_cgroups();
    for args in [
        &["--memory", "64m", "--cgroup-parent", "cgroup.procs/x"][..],
        &["--cpuset", "4095"],
        &["--memory", "64m", "--join", "/proc/self/ns/cgroup"],
    ] {
        let mut cmd = cgroupns(state.path(), args);
        cmd.args(["--", "true"]);
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("cgroupns: fatal: "),
            "{}",
            stderr(&out)
        );
    }
    audit::assert_nothing_left(&before, state.path(), None, &[]);
    let made: Vec<PathBuf> = all_chain_cgroups()
        .difference(&before_cgroups)
        .filter(|d| d.to_string_lossy().contains("nschain-cgroupns-"))
        .cloned()
        .collect();
    assert!(made.is_empty(), "left: {made:?}");
}

#[test]
fn nsps_shows_the_limits_and_usage_and_nsps_exec_is_bounded_by_them() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let name = unique("nsps");
    let mut chain = spawn_quiet(&mut cgroupns(
        state.path(),
        &[
            "--memory",
            "64m",
            "--pids-limit",
            "12",
            "--name",
            &name,
            "--",
            "pidns",
            "--",
            "sleep",
            "100",
        ],
    ));
    let pids = Cgroup {
        dirs: vec![(Version::V1, dir_in("pids", &name))],
    };
    wait_until("the container in its cgroup", || pids.procs().len() >= 3);
    let shown = ok(tool("nsps", state.path()).arg(&name));
    let line = shown
        .lines()
        .find(|l| l.starts_with("cgroup:"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        line.contains("/ 64.0 MiB") && line.contains("pids 3 / 12") && line.contains("OOM kills 0"),
        "{line}"
    );
    let json: Value =
        serde_json::from_str(&ok(tool("nsps", state.path()).args(["--json", &name]))).unwrap();
    assert_eq!(json["cgroup"]["limits"]["memory"], 64 << 20);
    assert_eq!(json["cgroup"]["usage"]["pids_limit"], 12);
    assert!(json["cgroup"]["usage"]["memory_bytes"].as_u64().unwrap() > 0);
    // COMMAND counts against the limit, nsps waiting for it does not: 3 + cat.
    let current = dir_in("pids", &name).join("pids.current");
    let counted = ok(tool("nsps", state.path()).args([
        "exec",
        &name,
        "--",
        "cat",
        &current.display().to_string(),
    ]));
    assert_eq!(counted.trim(), "4", "the waiting nsps counted");
    // nsps exec joins the cgroup: its command sees the chain's cgroup as its root and cannot
    // fork past the chain's limit (the host could).
    let script = "cat /proc/self/cgroup; for i in $(seq 20); do sleep 2 & done; wait";
    let out = run(tool("nsps", state.path()).args(["exec", &name, "--", "sh", "-c", script]));
    assert!(
        stdout(&out).lines().all(|l| l.ends_with(":/")),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("fork"),
        "not bounded: {}",
        stderr(&out)
    );
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(chain.id() as libc::pid_t, libc::SIGKILL) };
    chain.wait().unwrap();
    assert_gone(&name);
}

#[test]
fn mntns_mounts_the_containers_own_cgroupfs_read_only() {
    if !need::root() || !need::busybox() {
        return;
    }
    let state = scratch();
    // The range's root must reach the busybox root.
    std::fs::set_permissions(
        state.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let root = roots::busybox_root(state.path(), &["sh", "cat", "echo"]);
    let name = unique("mnt");
    let root_s = root.display().to_string();
    let script =
        "cat /sys/fs/cgroup/pids/pids.max; echo x > /sys/fs/cgroup/pids/pids.max || echo read-only";
    // Rootful without userns: the chain's cgroupns is the container's.
    let out = ok(&mut cgroupns(
        state.path(),
        &[
            "--pids-limit",
            "33",
            "--name",
            &name,
            "--",
            "pidns",
            "--",
            "mntns",
            "--rootfs",
            &root_s,
            "--",
            "sh",
            "-c",
            script,
        ],
    ));
    assert!(out.lines().next() == Some("33"), "{out}");
    assert!(out.contains("read-only"), "{out}");
    // Under a range map: the bare cgroupns after userns is what mntns mounts.
    let name2 = unique("mnt2");
    let out = ok(&mut cgroupns(
        state.path(),
        &[
            "--pids-limit",
            "34",
            "--name",
            &name2,
            "--",
            "userns",
            "--map-auto",
            "--",
            "cgroupns",
            "--",
            "pidns",
            "--",
            "mntns",
            "--rootfs",
            &root_s,
            "--",
            "sh",
            "-c",
            script,
        ],
    ));
    assert!(out.lines().next() == Some("34"), "{out}");
    assert!(out.contains("read-only"), "{out}");
    assert_gone(&name);
    assert_gone(&name2);
}

#[test]
fn a_bounded_nginx_chain_serves_and_a_fork_bomb_run_in_it_by_nsps_exec_stops_at_the_limit() {
    if !need::network()
        || !require(have("nginx"), "nginx (nginx-light)")
        || !require(have("curl"), "curl")
    {
        return;
    }
    let state = scratch();
    let name = unique("web");
    let pids = dir_in("pids", &name);
    let script = format!(
        r#"
        mount -t tmpfs tmpfs /run
        d={dir}
        netns --bridge -p 80:80 -- cgroupns --memory 128m --pids-limit 64 --name {name} -- \
          userns --map-auto --idmap / -- ipcns -- utsns -- pidns -- mntns --overlay / --rm -- \
          nginx -g 'daemon off;' 2>$d/err &
        wait_for curl -sf 127.0.0.1:80 || {{ cat $d/err; exit 1; }}
        echo "page before: $(curl -s -o /dev/null -w '%{{http_code}}' 127.0.0.1:80)"
        echo "max before: $(cat {pids}/pids.max)"
        nsps exec {name} -- sh -c 'f() {{ f | f & }}; f; echo bombed' 2>/dev/null || true
        echo "current: $(cat {pids}/pids.current)"
        echo "events: $(cat {pids}/pids.events)"
        echo "page during: $(curl -s -m 5 -o /dev/null -w '%{{http_code}}' 127.0.0.1:80)"
        echo "host forks: $(sh -c 'for i in 1 2 3 4 5 6 7 8; do true & done; wait; echo yes')"
        kill %1; wait
        wait_for test ! -e {pids} || {{ echo "cgroup left"; exit 1; }}
        echo stopped
        "#,
        dir = state.path().display(),
        pids = pids.display(),
    );
    let out = ok_out(
        &in_throwaway_host(state.path(), 90, &script),
        "bounded nginx chain",
    );
    assert!(out.contains("page before: 200"), "{out}");
    assert!(out.contains("max before: 64"), "{out}");
    let current: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("current: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(current <= 64, "{out}");
    let hits: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("events: max "))
        .unwrap_or_else(|| panic!("{out}"))
        .trim()
        .parse()
        .unwrap();
    assert!(hits > 0, "the bomb never hit the limit: {out}");
    assert!(out.contains("page during: 200"), "{out}");
    assert!(out.contains("host forks: yes"), "{out}");
    assert!(out.contains("stopped"), "{out}");
    assert_gone(&name);
}

#[test]
fn info_fd_pin_and_join_follow_the_contract() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let info = state.path().join("info.json");
    let pin = state.path().join("cgroup.ns");
    std::fs::write(&pin, "").unwrap();
    let cgroupns_bin = bin("cgroupns").display().to_string();
    let name = unique("info");
    let script = format!(
        "exec 3>{info}; exec {cgroupns_bin} --memory 64m --pids-limit 9 --name {name} --info-fd 3 --pin {pin} -- true",
        info = info.display(),
        pin = pin.display()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    with_env(&mut cmd, state.path());
    ok(&mut cmd);
    let line: Value = serde_json::from_str(std::fs::read_to_string(&info).unwrap().trim()).unwrap();
    assert_eq!(line["tool"], "cgroupns");
    assert_eq!(line["ns"]["type"], "cgroup");
    assert_eq!(line["cgroup"]["limits"]["memory"], 64 << 20);
    assert_eq!(line["cgroup"]["limits"]["pids"], 9);
    assert_eq!(line["cgroup"]["name"], format!("nschain-{name}"));
    let inode = line["ns"]["inode"].as_u64().unwrap();
    // The pin keeps the namespace (the cgroup itself goes with the chain).
    let joined = ok(&mut cgroupns(
        state.path(),
        &[
            "--join",
            &pin.display().to_string(),
            "--",
            "readlink",
            "/proc/self/ns/cgroup",
        ],
    ));
    assert_eq!(joined.trim(), format!("cgroup:[{inode}]"));
    assert_gone(&name);
    run(Command::new("umount").arg(&pin));
}

#[test]
fn cgroup_parent_is_made_where_missing_in_every_hierarchy_and_left_in_place_as_docker() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let layout = Layout::detect().unwrap();
    let parent = unique("parent");
    let used = ["memory", "pids", "cpu", "cpuacct", "freezer"];
    let tops: Vec<PathBuf> = layout
        .hierarchies
        .iter()
        .filter(|h| h.version == Version::V2 || used.iter().any(|c| h.has(c)))
        .map(|h| h.own_dir().join(&parent))
        .collect();
    // Two levels, existing in one hierarchy only: made in the others (as docker does).
    std::fs::create_dir_all(tops[0].join("jobs")).unwrap();
    assert!(!tops[1].exists());
    let name = unique("child");
    let nested = format!("{parent}/jobs");
    let pids_parent = layout.find("pids").unwrap().own_dir().join(&nested);
    let shown = ok(&mut cgroupns(
        state.path(),
        &[
            "--cgroup-parent",
            &nested,
            "--pids-limit",
            "7",
            "--name",
            &name,
            "--",
            "cat",
            &pids_parent
                .join(format!("nschain-{name}"))
                .join("pids.max")
                .display()
                .to_string(),
        ],
    ));
    assert_eq!(shown.trim(), "7");
    assert_gone(&name);
    // The parent stays, in every hierarchy, for the next chain (docker leaves it too).
    for top in &tops {
        assert!(
            top.join("jobs").is_dir(),
            "{} missing",
            top.join("jobs").display()
        );
        std::fs::remove_dir(top.join("jobs")).unwrap();
        std::fs::remove_dir(top).unwrap();
    }
}

#[test]
fn nsps_exec_joins_a_cgroup_namespace_made_after_userns_as_an_unprivileged_user() {
    if !need::root() || !need::rootless() {
        return;
    }
    let state = scratch();
    std::fs::set_permissions(
        state.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let before = audit::snapshot(state.path(), None);
    let name = unique("rlexec");
    let mut chain = as_nobody(&tool("userns", state.path()));
    chain.args([
        "--", "cgroupns", "--name", &name, "--", "pidns", "--", "sleep", "100",
    ]);
    let mut child = spawn_quiet(&mut chain);
    let mut exec = as_nobody(&tool("nsps", state.path()));
    exec.args(["exec", &name, "--", "readlink", "/proc/self/ns/cgroup"]);
    let mut joined = String::new();
    wait_until("nsps exec into the chain", || {
        let out = run(&mut exec);
        joined = stdout(&out);
        out.status.success()
    });
    // The chain's process (pidns's monitor, once cgroupns) holds the chain's cgroup namespace.
    let payload = std::fs::read_link(format!("/proc/{}/ns/cgroup", child.id())).unwrap();
    assert_eq!(joined.trim(), payload.display().to_string());
    assert_ne!(
        joined.trim(),
        std::fs::read_link("/proc/self/ns/cgroup")
            .unwrap()
            .display()
            .to_string()
    );
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    child.wait().unwrap();
    audit::assert_nothing_left(&before, state.path(), None, &[]);
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn the_cgroup_goes_after_sigkill_of_any_process_of_the_chain() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let before = audit::snapshot(state.path(), None);
    for victim in ["monitor", "init", "payload", "leftover"] {
        let name = unique(&format!("any-{victim}"));
        let mut child = spawn_quiet(&mut cgroupns(
            state.path(),
            &[
                "--pids-limit",
                "20",
                "--name",
                &name,
                "--",
                "pidns",
                "--",
                "sh",
                "-c",
                "sleep 100 & exec sleep 101",
            ],
        ));
        let pids = Cgroup {
            dirs: vec![(Version::V1, dir_in("pids", &name))],
        };
        // The monitor, init, the payload and its background sleep.
        wait_until("the container in its cgroup", || {
            pids.procs()
                .iter()
                .any(|p| cmdline(*p).starts_with("sleep 101"))
                && pids
                    .procs()
                    .iter()
                    .any(|p| cmdline(*p).starts_with("sleep 100"))
        });
        let members = pids.procs();
        let monitor = child.id();
        let init = *members
            .iter()
            .find(|p| parent_of(**p) == Some(monitor))
            .unwrap();
        let target = match victim {
            "monitor" => monitor,
            "init" => init,
            "payload" => *members
                .iter()
                .find(|p| cmdline(**p).starts_with("sleep 101"))
                .unwrap(),
            _ => *members
                .iter()
                .find(|p| cmdline(**p).starts_with("sleep 100"))
                .unwrap(),
        };
        // SAFETY: kill only sends a signal to a process of the chain we started.
        unsafe { libc::kill(target as libc::pid_t, libc::SIGKILL) };
        if victim == "leftover" {
            // The container goes on: its cgroup stays until it ends.
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                !dirs_of(&name).is_empty(),
                "removed while the container runs"
            );
            // SAFETY: as above.
            unsafe { libc::kill(monitor as libc::pid_t, libc::SIGTERM) };
        }
        child.wait().unwrap();
        assert_gone(&name);
        for pid in members {
            assert!(
                !pid_alive(pid),
                "{victim}: process {pid} ({}) survived",
                cmdline(pid)
            );
        }
    }
    audit::assert_nothing_left(&before, state.path(), None, &[]);
}

#[test]
fn gc_removes_the_half_written_record_of_a_start_killed_while_writing_it() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let records = state.path().join("run/cgroupns");
    std::fs::create_dir_all(&records).unwrap();
    // What a start SIGKILLed between its write and its rename leaves: a temporary named
    // after its (now ended) pid. A live writer's temporary is not touched.
    let mut ended = Command::new("true").spawn().unwrap();
    ended.wait().unwrap();
    let abandoned = records.join(format!("nschain-cgroupns-1.tmp{}", ended.id()));
    let live = records.join(format!("nschain-cgroupns-2.tmp{}", std::process::id()));
    std::fs::write(&abandoned, "{\"pid\":").unwrap();
    std::fs::write(&live, "{\"pid\":").unwrap();
    ok(&mut cgroupns(state.path(), &["gc"]));
    assert!(!abandoned.exists(), "the dead writer's temporary stayed");
    assert!(live.exists(), "a live writer's temporary was removed");
}

#[test]
fn a_sigkill_at_any_moment_of_the_setup_leaves_nothing_once_collected() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let before = audit::snapshot(state.path(), None);
    let before_cgroups = all_chain_cgroups();
    for step in 0..30u64 {
        let mut child = spawn_quiet(&mut cgroupns(
            state.path(),
            &["--memory", "64m", "--pids-limit", "9", "--", "sleep", "100"],
        ));
        // 0 to 29 ms: from before the record to after the exec of a debug build.
        std::thread::sleep(Duration::from_millis(step));
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        child.wait().unwrap();
    }
    // The watchers clean what they were handed; the rest (killed before the hand-over) is
    // collected by gc.
    ok(&mut cgroupns(state.path(), &["gc"]));
    audit::assert_nothing_left(&before, state.path(), None, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let made: Vec<PathBuf> = all_chain_cgroups()
            .difference(&before_cgroups)
            .filter(|d| d.to_string_lossy().contains("nschain-cgroupns-"))
            .cloned()
            .collect();
        if made.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left: {made:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
