//! The in-process hand-off is an exec (DESIGN.md §1, "Exec the next"): the same chains of
//! the multi-call binary, with links handed off in process and with `NSCHAIN_EXEC_LINKS=1`,
//! rootful and rootless, leave the payload the same view (open fds, signal mask and
//! dispositions, capabilities, no_new_privs, seccomp, ids and maps, environment, cwd, root,
//! namespaces) and each link the same start (fds, signals, capabilities, keepcaps, dumpable,
//! comm, cmdline: `NSCHAIN_DEBUG_LINKS`). Every link is made to leave behind what an exec
//! must undo (`NSCHAIN_DEBUG_HANDOFF=plant`), and switching off one step of the in-process
//! hand-off must make the comparison fail.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nschain_tests::*;

const TOOLS: [&str; 8] = [
    "mntns", "utsns", "ipcns", "pidns", "netns", "userns", "nsps", "timens",
];

/// A directory of hard links to one copy of the multi-call binary, as `make install` lays
/// them out, readable by uid 65534.
fn install(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let main = bin.join("nschain");
    copy_exe(&nschain_tests::bin("nschain"), &main);
    for tool in TOOLS {
        fs::hard_link(&main, bin.join(tool)).unwrap();
    }
    bin
}

struct Run {
    payload: String,
    links: BTreeMap<String, String>,
    stderr: String,
}

fn run_chain(
    scratch: &Path,
    chain: &[&str],
    payload: &[&str],
    exec: bool,
    knobs: &str,
    rootless: bool,
) -> Run {
    let bin = scratch.join("bin");
    let mode = if exec { "exec" } else { "in" };
    let traces = scratch.join(format!(
        "trace-{mode}-{}",
        fs::read_dir(scratch).unwrap().count()
    ));
    fs::create_dir(&traces).unwrap();
    fs::set_permissions(&traces, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mut cmd = Command::new(bin.join(chain[0]));
    cmd.args(&chain[1..]).args(payload);
    with_env(&mut cmd, &scratch.join(format!("state-{rootless}")));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env("PATH", format!("{path}:{}", bin_dir().display()))
        .env("HOME", scratch)
        .env("NSCHAIN_DEBUG", "1")
        .env("NSCHAIN_DEBUG_LINKS", &traces)
        .env("NSCHAIN_DEBUG_HANDOFF", knobs)
        .current_dir(scratch);
    if exec {
        cmd.env("NSCHAIN_EXEC_LINKS", "1");
    } else {
        cmd.env_remove("NSCHAIN_EXEC_LINKS");
    }
    let out = if rootless {
        run(&mut as_nobody(&cmd))
    } else {
        run(&mut cmd)
    };
    let payload = ok_out(&out, &format!("{chain:?} {payload:?} exec={exec}"));
    let mut links = BTreeMap::new();
    for entry in fs::read_dir(&traces).unwrap().flatten() {
        let text = fs::read_to_string(entry.path()).unwrap();
        links.insert(entry.file_name().to_string_lossy().into_owned(), text);
    }
    Run {
        payload,
        links,
        stderr: stderr(&out),
    }
}

/// What the payload sees, one field a line, without what differs from run to run (inode
/// numbers of pipes and namespaces: a namespace is `new` or `host`'s, as seen by this test).
fn payload_view(
    scratch: &Path,
    chain: &[&str],
    exec: bool,
    knobs: &str,
    rootless: bool,
) -> (Vec<String>, Run) {
    let status = run_chain(
        scratch,
        chain,
        &["cat", "/proc/self/status"],
        exec,
        knobs,
        rootless,
    );
    let mut view: Vec<String> = status
        .payload
        .lines()
        .filter(|l| {
            [
                "SigBlk",
                "SigIgn",
                "SigCgt",
                "Cap",
                "NoNewPrivs",
                "Seccomp",
                "Uid",
                "Gid",
                "Groups",
            ]
            .iter()
            .any(|k| l.starts_with(k))
        })
        .map(str::to_owned)
        .collect();
    let env = run_chain(scratch, chain, &["env"], exec, knobs, rootless).payload;
    let mut env: Vec<String> = env
        .lines()
        .filter(|l| !l.starts_with("NSCHAIN_EXEC_LINKS=") && !l.starts_with("NSCHAIN_DEBUG_LINKS="))
        .map(|l| format!("env {l}"))
        .collect();
    env.sort();
    view.extend(env);
    let probe = probe_json(&run_chain(scratch, chain, &["nsprobe"], exec, knobs, rootless).payload);
    for key in ["uid_map", "gid_map", "setgroups", "cwd", "hostname"] {
        view.push(format!("{key}: {}", probe[key]));
    }
    let fds: Vec<String> = probe["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().split(":[").next().unwrap())
        .map(|f| match f.split_once("=/proc/") {
            // nsprobe reading its own /proc/PID/fd
            Some((fd, _)) => format!("{fd}=/proc/PID/fd"),
            None => f.to_owned(),
        })
        .collect();
    view.push(format!("fds: {fds:?}"));
    for (kind, inode) in probe["ns"].as_object().unwrap() {
        let host = own_ns_inode(kind);
        let new = inode.as_u64().is_some_and(|i| i != host);
        view.push(format!("ns {kind}: {}", if new { "new" } else { "host" }));
    }
    let root = run_chain(
        scratch,
        chain,
        &["readlink", "/proc/self/root"],
        exec,
        knobs,
        rootless,
    );
    view.push(format!("root: {}", root.payload.trim()));
    (view, status)
}

fn differences(a: &[String], b: &[String]) -> Vec<String> {
    let mut diff: Vec<String> = a
        .iter()
        .filter(|l| !b.contains(l))
        .map(|l| format!("in process: {l}"))
        .collect();
    diff.extend(
        b.iter()
            .filter(|l| !a.contains(l))
            .map(|l| format!("exec: {l}")),
    );
    diff
}

fn link_differences(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut diff = Vec::new();
    if a.keys().collect::<Vec<_>>() != b.keys().collect::<Vec<_>>() {
        diff.push(format!("links {:?} vs {:?}", a.keys(), b.keys()));
    }
    for (name, text) in a {
        let other: Vec<String> = b
            .get(name)
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default();
        let mine: Vec<String> = text.lines().map(str::to_owned).collect();
        diff.extend(
            differences(&mine, &other)
                .into_iter()
                .map(|d| format!("{name}: {d}")),
        );
    }
    diff
}

/// Compares both modes of `chain`; returns the differences (payload and per link) and the
/// in-process run's stderr.
fn compare(scratch: &Path, chain: &[&str], knobs: &str, rootless: bool) -> (Vec<String>, String) {
    let (inproc, in_run) = payload_view(scratch, chain, false, knobs, rootless);
    let (exec, exec_run) = payload_view(scratch, chain, true, knobs, rootless);
    assert!(
        !exec_run.stderr.contains("hand off in process"),
        "{}",
        exec_run.stderr
    );
    let mut diff = differences(&inproc, &exec);
    diff.extend(link_differences(&in_run.links, &exec_run.links));
    (diff, in_run.stderr)
}

const ROOTFUL: [&str; 7] = ["netns", "--", "ipcns", "--", "utsns", "--hostname", "h"];

fn chain_with(prefix: &[&'static str], rest: &[&'static str]) -> Vec<&'static str> {
    let mut chain = prefix.to_vec();
    chain.extend(rest);
    chain.push("--");
    chain
}

#[test]
fn rootful_chains_see_the_same_in_process_and_exec() {
    if !need::root() {
        return;
    }
    let dir = scratch();
    install(dir.path());
    for (chain, container) in [
        (chain_with(&ROOTFUL, &[]), None),
        (
            chain_with(&ROOTFUL, &["--", "timens", "--", "pidns", "--", "mntns"]),
            Some("pidns[2]"),
        ),
        (
            chain_with(&ROOTFUL, &["--", "pidns", "--no-init", "--", "mntns"]),
            Some("pidns[1]"),
        ),
    ] {
        let (diff, stderr) = compare(dir.path(), &chain, "plant", false);
        assert!(diff.is_empty(), "{chain:?}:\n{}", diff.join("\n"));
        // netns and ipcns handed off in process: the comparison compared two modes.
        assert!(
            stderr.matches("hand off in process").count() >= 2,
            "{stderr}"
        );
        // So did pidns's container process, to mntns (forked: it has a pid of its own).
        if let Some(process) = container {
            assert!(
                stderr.contains(&format!("{process}: debug: hand off in process")),
                "{stderr}"
            );
        }
    }
}

#[test]
fn rootless_chains_see_the_same_in_process_and_exec() {
    if !need::rootless() {
        return;
    }
    let dir = scratch();
    install(dir.path());
    let userns = ["userns", "--"];
    // userns hands off in process (root inside: execve would leave the capabilities as
    // they are) ...
    let chain = chain_with(&[&userns[..], &ROOTFUL[..]].concat(), &[]);
    let (diff, stderr) = compare(dir.path(), &chain, "plant", true);
    assert!(diff.is_empty(), "{chain:?}:\n{}", diff.join("\n"));
    assert!(
        stderr.matches("hand off in process").count() >= 3,
        "{stderr}"
    );
    // ... but pidns, whose init is not dumpable, is exec'd for real after it.
    let chain = chain_with(
        &[&userns[..], &ROOTFUL[..]].concat(),
        &["--", "pidns", "--", "mntns"],
    );
    let (diff, stderr) = compare(dir.path(), &chain, "plant", true);
    assert!(diff.is_empty(), "{chain:?}:\n{}", diff.join("\n"));
    assert!(
        stderr.contains("real exec: pidns makes processes that are not dumpable"),
        "{stderr}"
    );
    // pidns's memory was made by that exec, in the container's user namespace: its
    // container process hands mntns off in process.
    assert!(
        stderr.contains("pidns[2]: debug: hand off in process"),
        "{stderr}"
    );
}

/// The payload's view of its parent, pidns's init, once the init has shed (bounding set
/// CAP_KILL only, waiting for signals): the owner of its /proc/PID/environ.
const INIT_OWNER: &str = r#"
while read k v; do [ "$k" = PPid: ] && p=$v; done </proc/self/status
i=0
until grep -q "^CapBnd:.0000000000000020" /proc/$p/status && grep -q "^State:.S" /proc/$p/status; do
    i=$((i + 1)); [ $i -gt 500 ] && break; sleep 0.01
done
stat -c %u:%g /proc/$p/environ"#;

/// Without the real exec of pidns after userns, the init's memory would keep the caller's
/// user namespace: the payload would see the init's /proc files owned by nobody, not root.
#[test]
fn pidns_after_userns_in_process_would_show() {
    if !need::rootless() {
        return;
    }
    let dir = scratch();
    install(dir.path());
    let chain = ["userns", "--", "pidns", "--"];
    let owner = |exec: bool, knobs: &str| {
        let payload = ["sh", "-c", INIT_OWNER];
        let run = run_chain(dir.path(), &chain, &payload, exec, knobs, true);
        run.payload.trim().to_owned()
    };
    let exec = owner(true, "");
    assert_eq!(exec, "0:0");
    assert_eq!(owner(false, ""), exec);
    assert_eq!(owner(false, "skip-exec-after-userns"), "65534:65534");
}

/// Each step of the in-process hand-off, switched off, is caught by the comparison of the
/// links' starts, in the field it sets.
#[test]
fn the_comparison_catches_a_skipped_step() {
    if !need::root() {
        return;
    }
    let dir = scratch();
    install(dir.path());
    let chain = chain_with(&ROOTFUL, &[]);
    for (step, field) in [
        ("close-fds", "fds: "),
        ("keepcaps", "keepcaps: "),
        ("dumpable", "dumpable: "),
        ("signals", "SigCgt: "),
    ] {
        let knobs = format!("plant,skip-{step}");
        let inproc = run_chain(dir.path(), &chain, &["true"], false, &knobs, false);
        let exec = run_chain(dir.path(), &chain, &["true"], true, &knobs, false);
        let diff = link_differences(&inproc.links, &exec.links);
        assert!(
            diff.iter()
                .any(|d| d.contains(&format!("in process: {field}"))),
            "skip-{step} went unnoticed: {diff:?}"
        );
    }
}

/// The next link runs in process only when it is the same file: a user's own `ipcns`
/// earlier in PATH is exec'd, and what the links name is what `ps` shows.
#[test]
fn another_program_of_the_same_name_is_exec_d() {
    if !need::root() {
        return;
    }
    let dir = scratch();
    let bin = install(dir.path());
    let own = dir.path().join("own");
    fs::create_dir(&own).unwrap();
    write_exe(&own.join("ipcns"), "#!/bin/sh\necho own ipcns\n", 0o755);
    let mut cmd = Command::new(bin.join("netns"));
    cmd.args(["--", "ipcns", "--", "true"]);
    with_env(&mut cmd, &dir.path().join("state"));
    cmd.env(
        "PATH",
        format!("{}:{}:/usr/bin:/bin", own.display(), bin.display()),
    )
    .env("NSCHAIN_DEBUG", "1");
    let out = run(&mut cmd);
    assert_eq!(ok_out(&out, "own ipcns"), "own ipcns");
    assert!(
        stderr(&out).contains("is another program"),
        "{}",
        stderr(&out)
    );
}

/// A named chain started through `nschain` (tests/tests/handoff.rs's own hard links).
fn named_chain(dir: &Path, exec: bool) -> std::process::Child {
    let bin = dir.join("bin");
    let mut cmd = Command::new(bin.join("netns"));
    cmd.args([
        "--name", "web", "--", "ipcns", "--", "utsns", "--", "sleep", "30",
    ]);
    with_env(&mut cmd, &dir.join(format!("state-{exec}")));
    cmd.env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    if exec {
        cmd.env("NSCHAIN_EXEC_LINKS", "1");
    }
    cmd.stdin(std::process::Stdio::null());
    cmd.spawn().unwrap()
}

fn registration_files(dir: &Path, exec: bool) -> Vec<String> {
    let chain = dir.join(format!("state-{exec}/run/chains/web"));
    for _ in 0..200 {
        let mut files: Vec<String> = fs::read_dir(&chain)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files.retain(|f| f.ends_with(".json"));
        if files.iter().any(|f| f.contains("uts")) {
            return files;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!(
        "chain web never registered its uts namespace in {}",
        chain.display()
    );
}

/// Links handed off in process register once, in one file; nsps reads the same records
/// either way, and says so when it cannot check one against the kernel.
#[test]
fn an_in_process_chain_registers_once() {
    if !need::rootless() {
        return;
    }
    let dir = scratch();
    let bin = install(dir.path());
    for exec in [false, true] {
        let mut chain = named_chain(dir.path(), exec);
        let files = registration_files(dir.path(), exec);
        let state = dir.path().join(format!("state-{exec}"));
        let mut nsps = Command::new(bin.join("nsps"));
        nsps.arg("web");
        with_env(&mut nsps, &state);
        let shown = ok(&mut nsps);
        let mut as_other = as_nobody(&nsps);
        let unverified = run(&mut as_other);
        chain.kill().unwrap();
        chain.wait().unwrap();
        assert!(shown.contains("ipc net uts"), "{shown}");
        if exec {
            assert_eq!(
                files,
                ["chain.json", "ipc.json", "net.json", "uts.json"],
                "{files:?}"
            );
        } else {
            assert_eq!(files.len(), 2, "{files:?}");
            assert!(
                files[1].starts_with("links-") && files[1].ends_with("-net-ipc-uts.json"),
                "{files:?}"
            );
        }
        // uid 65534 may not read root's /proc/PID/ns: nsps says it cannot verify.
        assert!(
            stderr(&unverified).contains("cannot be verified"),
            "{}",
            stderr(&unverified)
        );
    }
}
