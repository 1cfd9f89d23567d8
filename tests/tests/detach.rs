//! Issue 18, item 1: `--detach`. A detached chain returns as soon as its payload runs, with its
//! name; its output goes to its log; `nsps stop` ends it leaving nothing; a setup failure
//! under `-d` is the caller's (125 and the message on the caller's stderr), and leaves
//! nothing. Every chain runs in a throwaway network namespace that plays the host.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod escape_common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use escape_common::HostNs;
use nschain_tests::*;

/// A tiny nginx.conf in `dir`: listens on 80, serves `page`, logs its requests to stdout and
/// its notices to stderr (so that the container's log has them), one process.
fn nginx_site(dir: &Path, page: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("index.html"), format!("{page}\n")).unwrap();
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\n\
         error_log stderr notice;\nevents {{ worker_connections 64; }}\nhttp {{\n\
         access_log /dev/stdout;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
         server {{ listen 80; root {d}; }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    dir.join("nginx.conf")
}

/// `ip netns exec HOST ARGV...` with the test's state.
fn in_host(host: &HostNs, state: &Path, argv: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &host.name]).args(argv);
    with_env(&mut cmd, state);
    cmd
}

/// stdout as printed.
fn raw(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn retry(what: &str, mut f: impl FnMut() -> Option<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = f() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The audit's starting point once the host has the bridge and nft table netns keeps (a first
/// chain makes them; they are the host's from then on).
fn settled(host: &HostNs, state: &Path) -> audit::Snapshot {
    ok(&mut in_host(
        host,
        state,
        &["netns", "--bridge", "--", "true"],
    ));
    // Its cleanup watcher releases the lease once the veth is gone: wait for it to leave,
    // then for two snapshots that agree (bounded: a machine under load is slow, not stuck).
    let marker = format!("NSCHAIN_RUN_DIR={}", state.join("run").display());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        while !audit::processes_with_env(&marker).is_empty() && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let before = audit::snapshot(state, Some(&host.name));
        std::thread::sleep(Duration::from_millis(300));
        let again = audit::snapshot(state, Some(&host.name));
        if before == again {
            return before;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the host never settled:\n{before:?}\n{again:?}"
        );
    }
}

fn need() -> bool {
    need::network()
        && require(have("nginx"), "nginx (nginx-light)")
        && require(have("curl"), "curl")
}

#[test]
fn a_detached_nginx_is_served_logged_stopped_and_leaves_nothing() {
    if !need() {
        return;
    }
    let host = HostNs::new("det");
    let state = scratch();
    let s = state.path();
    let conf = nginx_site(&s.join("site"), "detached page");
    let conf = conf.display().to_string();
    let before = settled(&host, s);
    let out = run(&mut in_host(
        &host,
        s,
        &[
            "netns",
            "--bridge",
            "-p",
            "8080:80",
            "--name",
            "web",
            "-d",
            "--",
            "utsns",
            "--hostname",
            "web",
            "--",
            "pidns",
            "--",
            "nginx",
            "-c",
            &conf,
            "-e",
            "stderr",
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(raw(&out), "web\n");
    assert_eq!(
        stderr(&out),
        "",
        "the caller's stderr gets nothing of a chain that started"
    );
    // It returned while the container runs.
    let row = ok(tool("nsps", s).arg("web"));
    assert!(row.contains("status:      running"), "{row}");

    let page = retry("curl reaches the container", || {
        let out = run(&mut in_host(
            &host,
            s,
            &["curl", "-sf", "-m", "3", "127.0.0.1:8080"],
        ));
        out.status.success().then(|| raw(&out))
    });
    assert_eq!(page, "detached page\n");
    // nginx's request log (stdout) and notices (stderr) are in the container's log.
    let logs = retry("the request is logged", || {
        let out = run(tool("nsps", s).args(["logs", "web"]));
        let text = raw(&out);
        text.contains("\"GET / HTTP/1.1\" 200")
            .then_some(text + &stderr(&out))
    });
    assert!(logs.contains("[notice]"), "{logs}");

    // `nsps wait` in another process, `nsps stop` in a third.
    let waiter = tool("nsps", s)
        .args(["wait", "web"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = run(tool("nsps", s).args(["stop", "web"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(raw(&out), "web\n");
    let waited = waiter.wait_with_output().unwrap();
    // nginx ends on SIGTERM with status 0; the status file says the same.
    assert_eq!(waited.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&waited.stdout), "0\n");
    let all = ok(tool("nsps", s).arg("--all"));
    assert!(
        all.lines()
            .any(|l| l.starts_with("web ") && l.ends_with("exited 0")),
        "{all}"
    );
    // Everything the chain made is gone (veth, nft elements, leases, processes); the log and
    // status stay until nsps rm.
    audit::assert_nothing_left(&before, s, Some(&host.name), &[]);
    assert!(s.join("run/chains/web/container.log").exists());
    ok(tool("nsps", s).args(["rm", "web"]));
    assert!(!s.join("run/chains/web").exists());
}

#[test]
fn a_setup_failure_under_detach_is_the_callers_and_leaves_nothing() {
    if !need() {
        return;
    }
    let host = HostNs::new("detf");
    let state = scratch();
    let s = state.path();
    let before = settled(&host, s);
    // A bad flag at the first link, then at a later one.
    let out = run(&mut in_host(
        &host,
        s,
        &["netns", "-d", "--bogus", "--", "true"],
    ));
    assert_fatal(&out, "netns");
    assert_eq!(raw(&out), "");
    let out = run(&mut in_host(
        &host,
        s,
        &[
            "netns",
            "--bridge",
            "-d",
            "--",
            "utsns",
            "--hostname",
            "bad_host!",
            "--",
            "true",
        ],
    ));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("utsns: fatal: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(raw(&out), "", "no name for a chain that did not start");
    // COMMAND not found: 127, the message on the caller's stderr.
    let out = run(&mut in_host(
        &host,
        s,
        &["netns", "-d", "--", "/nonexistent/cmd"],
    ));
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unable to execute /nonexistent/cmd"),
        "{}",
        stderr(&out)
    );
    audit::assert_nothing_left(&before, s, Some(&host.name), &[]);
    assert_eq!(std::fs::read_dir(s.join("run/chains")).unwrap().count(), 0);

    // A port already published.
    let out = run(&mut in_host(
        &host,
        s,
        &[
            "netns", "--bridge", "-p", "8081:80", "-d", "--name", "first", "--", "sleep", "100",
        ],
    ));
    assert_eq!(raw(&out), "first\n", "{}", stderr(&out));
    let out = run(&mut in_host(
        &host,
        s,
        &[
            "netns", "--bridge", "-p", "8081:80", "-d", "--name", "second", "--", "sleep", "100",
        ],
    ));
    assert_fatal(&out, "netns");
    assert!(stderr(&out).contains("8081"), "{}", stderr(&out));
    assert!(!s.join("run/chains/second").exists());
    ok(tool("nsps", s).args(["rm", "-f", "first"]));
    audit::assert_nothing_left(&before, s, Some(&host.name), &[]);
    assert_eq!(std::fs::read_dir(s.join("run/chains")).unwrap().count(), 0);
}

#[test]
fn an_unnamed_detached_chain_gets_a_generated_name() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let s = state.path();
    // `exec`: no child of sh keeps the log open once rm -f has killed it (the drain
    // would wait for it, DRAIN_MAX at most).
    let out = run(tool("utsns", s).args(["-d", "--", "sh", "-c", "echo hi; exec sleep 100"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let name = raw(&out);
    let name = name.strip_suffix('\n').unwrap();
    assert!(name.starts_with("utsns-") && name.len() == 12, "{name}");
    let logs = retry("the log has hi", || {
        let out = run(tool("nsps", s).args(["logs", name]));
        raw(&out).contains("hi").then(|| raw(&out))
    });
    assert_eq!(logs, "hi\n");
    // A later link's -d is ignored: the chain is already detached.
    ok(tool("nsps", s).args(["rm", "-f", name]));
    let out = run(tool("utsns", s).args(["--", "pidns", "-d", "--", "echo", "foreground"]));
    assert_eq!(raw(&out), "foreground\n", "{}", stderr(&out));
}
