//! `nsoci`, the OCI runtime front end: the lifecycle of a bundle built from busybox
//! (create → created, start → running, kill → stopped, delete → gone), `run`'s exit status,
//! the pid file, signals by name and number, and the errors of bad bundles, bad configs,
//! unknown ids and wrong states, each leaving nothing behind.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nschain_tests::*;

/// A bundle (busybox root + config.json from `nsoci spec`, edited) and a state root.
struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    fn new(args: &[&str]) -> Bundle {
        let dir = scratch();
        roots::busybox_root(
            dir.path(),
            &[
                "sh", "echo", "sleep", "hostname", "cat", "id", "grep", "mkdir", "ls", "readlink",
                "tty", "stty", "touch",
            ],
        );
        let bundle = Bundle { dir };
        ok(bundle.nsoci(&["spec"]).current_dir(bundle.path()));
        bundle.edit(|c| {
            c["root"]["path"] = "root".into();
            c["process"]["args"] = serde_json::json!(args);
        });
        bundle
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn state_root(&self) -> PathBuf {
        self.path().join("state")
    }

    fn edit(&self, change: impl FnOnce(&mut Value)) {
        let file = self.path().join("config.json");
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).expect("config.json");
        change(&mut config);
        std::fs::write(&file, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    }

    /// `nsoci --root STATE ARGS...`
    fn nsoci(&self, args: &[&str]) -> Command {
        let mut cmd = tool("nsoci", self.path());
        cmd.arg("--root").arg(self.state_root()).args(args);
        cmd
    }

    /// Runs `nsoci ARGS` with the container's stdio on files (the container keeps them).
    fn status(&self, args: &[&str]) -> (Option<i32>, String) {
        let err = self.path().join("nsoci.err");
        let status = self
            .nsoci(args)
            .arg("--bundle")
            .arg(self.path())
            .stdin(Stdio::null())
            .stdout(File::create(self.path().join("out")).unwrap())
            .stderr(File::create(&err).unwrap())
            .status()
            .unwrap();
        (status.code(), std::fs::read_to_string(err).unwrap())
    }

    /// What the container wrote to its stdout so far.
    fn output(&self) -> String {
        std::fs::read_to_string(self.path().join("out")).unwrap_or_default()
    }

    fn state(&self, id: &str) -> Value {
        let out = ok(&mut self.nsoci(&["state", id]));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("state is not JSON ({e}): {out}"))
    }

    /// Waits (bounded) until `check` holds.
    fn wait_for(&self, what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_status(&self, id: &str, status: &str) {
        self.wait_for(&format!("status {status}"), || {
            self.state(id)["status"] == status
        });
    }

    /// The containers the state root holds.
    fn left(&self) -> Vec<String> {
        std::fs::read_dir(self.state_root())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The command line of process `pid`, words joined by spaces.
fn cmdline(pid: i64) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .trim_end_matches('\0')
        .replace('\0', " ")
}

/// `/proc/PID/ns/KIND` as its link reads (`pid:[4026531836]`).
fn ns_of(pid: i64, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A change to a config.json.
type Edit = fn(&mut Value);

fn fails(out: &Output, wording: &str) {
    assert_fatal(out, "nsoci");
    assert!(
        stderr(out).contains(wording),
        "expected '{wording}' in: {}",
        stderr(out)
    );
}

#[test]
fn lifecycle_create_start_kill_delete_with_statuses() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&["sh", "-c", "echo started; exec sleep 1000"]);
    let (code, err) = b.status(&["create", "c1"]);
    assert_eq!(code, Some(0), "create failed: {err}");
    let state = b.state("c1");
    assert_eq!(state["status"], "created", "{state}");
    assert_eq!(state["id"], "c1");
    assert_eq!(
        state["ociVersion"].as_str().map(|v| v.starts_with("1.")),
        Some(true)
    );
    assert_eq!(
        Path::new(state["bundle"].as_str().unwrap()),
        b.path().canonicalize().unwrap()
    );
    let pid = state["pid"].as_i64().unwrap();
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "no process {pid}"
    );
    // process.args runs only at start.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(b.output(), "", "the payload ran before start");

    ok(&mut b.nsoci(&["start", "c1"]));
    b.wait_for("the payload's output", || b.output() == "started\n");
    assert_eq!(b.state("c1")["status"], "running");
    // runc's pid: the user's process itself, PID 1 of the container's pid namespace (no
    // monitor in between), the one `kill` signals.
    assert_eq!(b.state("c1")["pid"], pid);
    assert_eq!(cmdline(pid), "sleep 1000");
    assert_ne!(ns_of(pid, "pid"), ns_of(std::process::id() as i64, "pid"));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(nspid.ends_with("\t1"), "{nspid}");
    fails(
        &run(&mut b.nsoci(&["start", "c1"])),
        "cannot start an already running container",
    );
    fails(
        &run(&mut b.nsoci(&["delete", "c1"])),
        "that is not stopped: running",
    );

    ok(&mut b.nsoci(&["kill", "c1", "KILL"]));
    b.wait_status("c1", "stopped");
    assert_eq!(b.state("c1")["pid"], 0);
    fails(
        &run(&mut b.nsoci(&["kill", "c1", "KILL"])),
        "container not running",
    );
    ok(&mut b.nsoci(&["delete", "c1"]));
    assert!(b.left().is_empty(), "left behind: {:?}", b.left());
    fails(
        &run(&mut b.nsoci(&["state", "c1"])),
        "container c1 does not exist",
    );
}

#[test]
fn run_returns_the_payloads_exit_status_and_leaves_nothing() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&[
        "sh",
        "-c",
        "echo $(hostname) $PWD $(id -u) $(cat /proc/sys/net/ipv4/ping_group_range); exit 7",
    ]);
    b.edit(|c| {
        c["hostname"] = "box7".into();
        c["process"]["cwd"] = "/tmp".into();
        // A net.* sysctl goes to netns --sysctl, in the container's network namespace.
        c["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ping_group_range": "0 7"});
    });
    let (code, err) = b.status(&["run", "r1"]);
    assert_eq!(code, Some(7), "{err}");
    assert_eq!(b.output(), "box7 /tmp 0 0 7\n");
    assert!(b.left().is_empty(), "left behind: {:?}", b.left());
    // The payload ended at once (run has no start gate here): its registration went too.
    let chains = std::fs::read_dir(b.path().join("run/chains"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(chains.is_empty(), "registrations left: {chains:?}");
}

#[test]
fn foreground_run_passes_signals_to_the_payload_and_returns_its_status() {
    if !(need::root() && need::busybox()) {
        return;
    }
    // PID 1 of its pid namespace gets only the signals it handles: these traps.
    let b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'echo got HUP' HUP; trap 'echo got USR1' USR1; trap 'exit 42' TERM; \
         echo ready; while :; do sleep 1000 & wait; done",
    ]);
    let mut nsoci = b
        .nsoci(&["run", "--bundle"])
        .arg(b.path())
        .arg("s1")
        .stdin(Stdio::null())
        .stdout(File::create(b.path().join("out")).unwrap())
        .stderr(File::create(b.path().join("nsoci.err")).unwrap())
        .spawn()
        .unwrap();
    let pid = nsoci.id().to_string();
    b.wait_for("the traps", || b.output() == "ready\n");
    for (sig, seen) in [("-HUP", "got HUP"), ("-USR1", "got USR1")] {
        ok(Command::new("kill").args([sig, &pid]));
        b.wait_for(seen, || b.output().contains(seen));
    }
    // exec, not detached, passes them on to its process too.
    let exec_out = b.path().join("exec.out");
    let mut exec = b
        .nsoci(&["exec", "s1", "sh", "-c"])
        .arg("trap 'exit 43' TERM; echo exec ready; sleep 1000 & wait")
        .stdin(Stdio::null())
        .stdout(File::create(&exec_out).unwrap())
        .spawn()
        .unwrap();
    let said = || std::fs::read_to_string(&exec_out).unwrap_or_default();
    b.wait_for("the exec's trap", || said() == "exec ready\n");
    ok(Command::new("kill").args(["-TERM", &exec.id().to_string()]));
    assert_eq!(exec.wait().unwrap().code(), Some(43));
    ok(Command::new("kill").args(["-TERM", &pid]));
    let status = nsoci.wait().unwrap();
    let err = std::fs::read_to_string(b.path().join("nsoci.err")).unwrap();
    assert_eq!(status.code(), Some(42), "{err}");
    assert_eq!(b.output(), "ready\ngot HUP\ngot USR1\n");
    assert!(b.left().is_empty(), "left behind: {:?}", b.left());
}

#[test]
fn a_signal_while_the_container_is_created_is_not_lost_and_leaves_nothing_half_made() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&["sh", "-c", "trap 'exit 7' TERM; echo up; sleep 1000 & wait"]);
    // A createRuntime hook holds the creation (the init made, stopped before pivot_root)
    // until the test has sent its signal.
    let (held, go) = (b.path().join("held"), b.path().join("go"));
    let hook = format!(
        "touch {}; while [ ! -e {} ]; do sleep 0.01; done",
        held.display(),
        go.display()
    );
    b.edit(|c| {
        c["hooks"] =
            serde_json::json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", hook]}]});
    });
    let before = audit::snapshot_watching(b.path(), None, &[b.path()]);
    let during_create = |verb: &[&str], id: &str| {
        let _ = std::fs::remove_file(&held);
        let _ = std::fs::remove_file(&go);
        let mut nsoci = b
            .nsoci(verb)
            .arg("--bundle")
            .arg(b.path())
            .arg(id)
            .stdin(Stdio::null())
            .stdout(File::create(b.path().join("out")).unwrap())
            .stderr(File::create(b.path().join("nsoci.err")).unwrap())
            .spawn()
            .unwrap();
        b.wait_for("the hook", || held.exists());
        ok(Command::new("kill").args(["-TERM", &nsoci.id().to_string()]));
        std::fs::write(&go, "").unwrap();
        let status = nsoci.wait().unwrap();
        let err = std::fs::read_to_string(b.path().join("nsoci.err")).unwrap();
        (status, err)
    };
    // Foreground run: the SIGTERM waits for the payload and reaches its trap.
    let (status, err) = during_create(&["run"], "sg1");
    assert_eq!(status.code(), Some(7), "{status:?} {err}");
    assert!(b.left().is_empty(), "left behind: {:?}", b.left());
    // Detached create: the container is removed, then the signal ends nsoci.
    let (status, err) = during_create(&["create"], "sg2");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM),
        "{status:?} {err}"
    );
    assert!(b.left().is_empty(), "left behind: {:?}", b.left());
    // Foreground run with nsoci's own terminal (runc's `run -t`): the same through the
    // terminal's proxy, which must not pass the signal on before the payload takes it.
    b.edit(|c| c["process"]["terminal"] = true.into());
    let _ = std::fs::remove_file(&held);
    let _ = std::fs::remove_file(&go);
    let mut term = term::Term::new();
    let mut cmd = b.nsoci(&["run", "--bundle"]);
    cmd.arg(b.path()).arg("sg3");
    let mut nsoci = term.spawn(&mut cmd);
    b.wait_for("the hook", || held.exists());
    ok(Command::new("kill").args(["-TERM", &nsoci.id().to_string()]));
    std::fs::write(&go, "").unwrap();
    let status = term.wait_exit(&mut nsoci);
    assert_eq!(status.code(), Some(7), "{status:?}: {}", term.shown);
    assert!(term.shown.contains("up"), "{}", term.shown);
    assert!(b.left().is_empty(), "left behind: {:?}", b.left());
    audit::assert_nothing_left_watching(&before, b.path(), None, &[], &[b.path()]);
}

#[test]
fn create_writes_the_pid_file_with_the_states_pid() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&["sleep", "1000"]);
    let pid_file = b.path().join("init.pid");
    let (code, err) = b.status(&["create", "--pid-file", pid_file.to_str().unwrap(), "p1"]);
    assert_eq!(code, Some(0), "{err}");
    let written = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(written, b.state("p1")["pid"].to_string());
    ok(&mut b.nsoci(&["delete", "--force", "p1"]));
    assert!(b.left().is_empty());
}

#[test]
fn kill_takes_signal_names_and_numbers() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'echo usr1' USR1; trap 'echo usr2' USR2; echo ready; while :; do sleep 0.05; done",
    ]);
    assert_eq!(b.status(&["create", "k1"]).0, Some(0));
    ok(&mut b.nsoci(&["start", "k1"]));
    b.wait_for("ready", || b.output() == "ready\n");
    let mut expected = String::from("ready\n");
    for (signal, line) in [
        ("USR1", "usr1"),
        ("SIGUSR2", "usr2"),
        ("10", "usr1"),
        ("sigusr1", "usr1"),
    ] {
        ok(&mut b.nsoci(&["kill", "k1", signal]));
        expected.push_str(line);
        expected.push('\n');
        b.wait_for(&format!("the trap of {signal}"), || b.output() == expected);
    }
    fails(
        &run(&mut b.nsoci(&["kill", "k1", "NOPE"])),
        "invalid signal 'NOPE'",
    );
    fails(
        &run(&mut b.nsoci(&["kill", "k1", "0"])),
        "invalid signal '0'",
    );
    ok(&mut b.nsoci(&["kill", "k1", "9"]));
    b.wait_status("k1", "stopped");
    ok(&mut b.nsoci(&["delete", "k1"]));
}

#[test]
fn bad_bundles_and_configs_fail_clearly_and_leave_nothing() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&["true"]);
    let missing = b.path().join("nope");
    let out = run(&mut b.nsoci(&["create", "--bundle", missing.to_str().unwrap(), "x"]));
    fails(&out, "unable to use bundle");
    let config = std::fs::read(b.path().join("config.json")).unwrap();
    std::fs::write(b.path().join("config.json"), "{").unwrap();
    let out = run(&mut b.nsoci(&["create", "--bundle", b.path().to_str().unwrap(), "x"]));
    fails(&out, "is not a valid OCI config");
    std::fs::write(b.path().join("config.json"), &config).unwrap();
    let cases: [(&str, Edit); 4] = [
        ("unsupported ociVersion '2.0.0'", |c| {
            c["ociVersion"] = "2.0.0".into()
        }),
        ("process.args must not be empty", |c| {
            c["process"]["args"] = serde_json::json!([])
        }),
        ("is not a directory", |c| {
            c["root"]["path"] = "missing-root".into()
        }),
        ("without a private UTS namespace", |c| {
            c["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "mount"}])
        }),
    ];
    for (wording, change) in cases {
        b.edit(change);
        let out = run(&mut b.nsoci(&["create", "--bundle", b.path().to_str().unwrap(), "x"]));
        fails(&out, wording);
        assert!(b.left().is_empty(), "{wording}: left behind {:?}", b.left());
        std::fs::write(b.path().join("config.json"), &config).unwrap();
    }
    fails(
        &run(&mut b.nsoci(&["create", "a/b"])),
        "invalid container id 'a/b'",
    );
}

#[test]
fn unknown_ids_and_usage() {
    let b = Bundle { dir: scratch() };
    for verb in ["state", "start", "delete"] {
        fails(
            &run(&mut b.nsoci(&[verb, "ghost"])),
            "container ghost does not exist",
        );
    }
    fails(
        &run(&mut b.nsoci(&["kill", "ghost", "KILL"])),
        "container ghost does not exist",
    );
    // As runc: a forced delete of what does not exist is no error.
    ok(&mut b.nsoci(&["delete", "--force", "ghost"]));
    assert_fatal(
        &run(&mut b.nsoci(&["--log-format", "xml", "list"])),
        "nsoci",
    );
    assert_fatal(&run(&mut b.nsoci(&["create"])), "nsoci");
}

#[test]
fn version_features_spec_and_list() {
    let b = Bundle { dir: scratch() };
    let version = ok(&mut b.nsoci(&["--version"]));
    let lines: Vec<&str> = version.lines().collect();
    assert_eq!(lines.len(), 3, "{version}");
    assert!(lines[0].starts_with("nsoci version "), "{version}");
    assert!(lines[1].starts_with("commit: "), "{version}");
    assert!(lines[2].starts_with("spec: 1."), "{version}");
    let features: Value = serde_json::from_str(&ok(&mut b.nsoci(&["features"]))).unwrap();
    assert_eq!(features["ociVersionMin"], "1.0.0");
    assert!(features["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&"time".into()));
    ok(b.nsoci(&["spec"]).current_dir(b.path()));
    let config: Value =
        serde_json::from_slice(&std::fs::read(b.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["root"]["path"], "rootfs");
    fails(
        &run(b.nsoci(&["spec"]).current_dir(b.path())),
        "File config.json exists",
    );
    let listed: Value =
        serde_json::from_str(&ok(&mut b.nsoci(&["list", "--format", "json"]))).unwrap();
    assert_eq!(listed, serde_json::json!([]));
}

#[test]
fn errors_also_go_to_the_json_log() {
    let b = Bundle { dir: scratch() };
    let log = b.path().join("log.json");
    let out = run(&mut b.nsoci(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "ghost",
    ]));
    fails(&out, "does not exist");
    let line: Value = serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], "container ghost does not exist");
}

#[test]
fn process_user_groups_capabilities_and_env_follow_the_config() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&[
        "sh",
        "-c",
        "id; grep -E '^Cap(Bnd|Inh|Amb)' /proc/self/status; echo $FOO",
    ]);
    b.edit(|c| {
        let p = &mut c["process"];
        p["user"] = serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 7]});
        p["env"] = serde_json::json!(["PATH=/bin", "FOO=bar"]);
        let set = serde_json::json!(["CAP_KILL", "CAP_NET_BIND_SERVICE"]);
        p["capabilities"] = serde_json::json!({
            "bounding": set, "effective": set, "permitted": set,
            "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]
        });
    });
    let (code, err) = b.status(&["run", "u1"]);
    assert_eq!(code, Some(0), "{err}");
    let out = b.output();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("uid=1000 gid=1000 groups="), "{out}");
    assert!(lines[0].contains('5') && lines[0].contains('7'), "{out}");
    // KILL = bit 5, NET_BIND_SERVICE = bit 10; a non-root user keeps only the ambient KILL.
    assert_eq!(lines[1], "CapInh:\t0000000000000020", "{out}");
    assert_eq!(lines[2], "CapBnd:\t0000000000000420", "{out}");
    assert_eq!(lines[3], "CapAmb:\t0000000000000020", "{out}");
    assert_eq!(lines[4], "bar", "{out}");
}

/// podman with a store of its own under `dir` (vfs: no overlay mounts to leave behind).
fn podman(dir: &Path) -> Command {
    let mut cmd = Command::new("podman");
    cmd.arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
        ])
        .env("TMPDIR", dir);
    cmd
}

#[test]
fn podman_runs_an_image_through_nsoci() {
    if !(need::root() && need::busybox() && require(have("podman"), "podman")) {
        return;
    }
    let dir = scratch();
    let root = dir.path().join("image");
    roots::install_busybox(&root, &["sh", "echo", "cat", "tty", "sleep"]);
    let archive = dir.path().join("image.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&archive)
        .arg("."));
    ok(podman(dir.path())
        .arg("import")
        .arg(&archive)
        .arg("localhost/nsoci-bb:1"));
    let nsoci = bin("nsoci");
    let run_image = |script: &str| {
        run(podman(dir.path())
            .arg("--runtime")
            .arg(&nsoci)
            .args(["run", "--rm", "--network", "none"])
            .args([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ])
            .args(["localhost/nsoci-bb:1", "sh", "-c", script]))
    };
    // The payload is PID 1 of its own pid namespace, as with runc.
    let out = run_image("echo hello; echo $$");
    assert_eq!(stdout(&out), "hello\n1", "{}", stderr(&out));
    let out = run_image("exit 3");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = run_image("exec /nonexistent");
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    // -t: conmon gets the pty master through nsoci's --console-socket.
    let with_nsoci = || {
        let mut cmd = podman(dir.path());
        cmd.arg("--runtime").arg(&nsoci);
        cmd
    };
    let limits = [
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
    ];
    let out = ok(with_nsoci()
        .args(["run", "--rm", "-t"])
        .args(limits)
        .args(["localhost/nsoci-bb:1", "tty"]));
    assert_eq!(out.trim(), "/dev/pts/0");
    // exec, plain and -t, into a detached container; its status; kill → 137.
    let id = ok(with_nsoci().args(["run", "-d"]).args(limits).args([
        "localhost/nsoci-bb:1",
        "sleep",
        "1000",
    ]));
    let id = id.trim();
    let out = run(with_nsoci().args(["exec", id, "sh", "-c", "echo exec $$; exit 5"]));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(stdout(&out), "exec 2");
    assert_eq!(
        ok(with_nsoci().args(["exec", "-t", id, "tty"])).trim(),
        "/dev/pts/0"
    );
    ok(with_nsoci().args(["kill", id]));
    assert_eq!(ok(with_nsoci().args(["wait", id])).trim(), "137");
    ok(with_nsoci().args(["rm", id]));
    let left = ok(podman(dir.path()).args(["ps", "-aq"]));
    assert_eq!(left, "", "podman still lists containers");
}

/// What a user of `podman run -d -p 8080:80` does with a web server, podman's commands as
/// `$P` and `$R` (with `--runtime nsoci`): one `KEY=VALUE` line per answer.
const WEB_SCENARIO: &str = r#"set -eu
wait_for() { for _ in $(seq 200); do if "$@" >/dev/null 2>&1; then return 0; fi; sleep 0.05; done; return 1; }
$P import "$ARCHIVE" localhost/nsoci-web:1 >/dev/null
id=$($R run -d -p 8080:80 --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  localhost/nsoci-web:1 sh -c 'trap "echo stopping; exit 7" TERM; echo serving; httpd -f -v -p 80 -h /www & wait')
wait_for curl -sf http://127.0.0.1:8080/
echo "curl=$(curl -sS http://127.0.0.1:8080/)"
echo "ps=$($R ps --format '{{.ID}} {{.Status}} {{.Ports}}')"
echo "exec=$($R exec $id sh -c 'echo $$ $(cat /www/index.html)')"
$R stop -t 10 $id >/dev/null
echo "exitcode=$($R inspect --format '{{.State.ExitCode}}' $id)"
echo "wait=$($R wait $id)"
echo "logs=$($R logs $id 2>&1 | tr '\n' '|')"
$R rm $id >/dev/null
echo "left=$($P ps -aq)"
"#;

/// The lines `KEY=VALUE` of `out`, as a map.
fn keyed(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Checks what [`WEB_SCENARIO`] saw.
fn assert_web_scenario(out: &Output, who: &str) {
    assert!(
        out.status.success(),
        "{who}: {}\n{}",
        stdout(out),
        stderr(out)
    );
    let seen = keyed(&stdout(out));
    let get = |k: &str| seen.get(k).map_or("", String::as_str);
    assert_eq!(get("curl"), "served by nsoci", "{who}: {}", stderr(out));
    // podman ps: the container, up, with its published port.
    let ps = get("ps");
    assert!(
        ps.contains(" Up ") && ps.ends_with("0.0.0.0:8080->80/tcp"),
        "{who}: {ps}"
    );
    // exec runs beside PID 1 in the container's namespaces and root.
    let exec = get("exec");
    assert!(
        exec.ends_with(" served by nsoci") && !exec.starts_with("1 "),
        "{who}: {exec}"
    );
    // stop's SIGTERM reached the trap: exit status 7, as podman reports it.
    assert_eq!(get("exitcode"), "7", "{who}");
    assert_eq!(get("wait"), "7", "{who}");
    // logs: the payload's output and the server's, which answered the request.
    let logs = get("logs");
    assert!(
        logs.starts_with("serving|")
            && logs.contains("response:200|")
            && logs.ends_with("stopping|"),
        "{who}: {logs}"
    );
    assert_eq!(get("left"), "", "{who}: podman still lists containers");
}

#[test]
fn podman_serves_a_published_port_through_nsoci_rootful_and_rootless() {
    if !(need::network() && need::busybox() && require(have("podman"), "podman")) {
        return;
    }
    let dir = scratch();
    let root = dir.path().join("image");
    roots::install_busybox(&root, &["sh", "echo", "cat", "httpd"]);
    std::fs::create_dir(root.join("www")).unwrap();
    std::fs::write(root.join("www/index.html"), "served by nsoci\n").unwrap();
    // Everything uid 65534 reads or writes (the rootless podman's home) is under `open`.
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    for d in [dir.path(), &open] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let archive = open.join("image.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&archive)
        .arg("."));
    std::fs::set_permissions(&archive, std::fs::Permissions::from_mode(0o644)).unwrap();
    let scenario = open.join("web.sh");
    std::fs::write(&scenario, WEB_SCENARIO).unwrap();
    let nsoci = bin("nsoci");
    // Rootful: podman's default network (CNI bridge + portmap) in a namespace that plays the
    // host; CNI's leases and podman's netns files go to tmpfs there, not to the machine's.
    let rootful = format!(
        "mkdir -p /run/netns /var/lib/cni
mount -t tmpfs tmpfs /run/netns; mount -t tmpfs tmpfs /var/lib/cni
export TMPDIR={dir} ARCHIVE={archive} P=\"{podman}\"
R=\"$P --runtime {nsoci}\" bash {scenario}",
        dir = dir.path().display(),
        archive = archive.display(),
        podman = shown(&podman(dir.path())),
        nsoci = nsoci.display(),
        scenario = scenario.display(),
    );
    let out = in_throwaway_host(dir.path(), 60, &rootful);
    assert_web_scenario(&out, "rootful");
    if !(need::rootless() && require(have("slirp4netns"), "slirp4netns")) {
        return;
    }
    // Rootless, as uid 65534 with a home of its own: one uid mapped (no /etc/subuid range),
    // slirp4netns and rootlessport for -p. This machine's /dev/net/tun is 0600: a 0666 node
    // of the same device is bound over it in the throwaway host's mount namespace only.
    let home = open.join("home");
    let rootless = format!(
        "mkdir {open}/dev; mount -t tmpfs tmpfs {open}/dev
mknod -m 666 {open}/dev/tun c 10 200; mount --bind {open}/dev/tun /dev/net/tun
export HOME={home} XDG_RUNTIME_DIR={open}/xdg XDG_CONFIG_HOME={home}/.config
export XDG_DATA_HOME={home}/.local/share TMPDIR={open} ARCHIVE={archive}
export NSCHAIN_RUN_DIR={open}/nschain-run NSCHAIN_DATA_DIR={open}/nschain-data
export P='podman --storage-driver vfs --cgroup-manager=cgroupfs --events-backend=file'
export R=\"$P --runtime {nsoci}\"
{setpriv} bash -c 'mkdir -p $HOME && mkdir -m 700 $XDG_RUNTIME_DIR && exec bash {scenario}'",
        open = open.display(),
        home = home.display(),
        archive = archive.display(),
        nsoci = nsoci.display(),
        setpriv = setpriv_as(NOBODY).join(" "),
        scenario = scenario.display(),
    );
    let out = in_throwaway_host(dir.path(), 60, &rootless);
    assert_web_scenario(&out, "rootless");
}

/// A containerd of the test's own (its own root, state and socket; the caller's, if any, is
/// not touched), killed when dropped.
struct Containerd {
    daemon: std::process::Child,
    socket: PathBuf,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        let config = dir.join("containerd.toml");
        let socket = dir.join("containerd.sock");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{1}\"\n[ttrpc]\n  address = \"{1}.ttrpc\"\n",
                dir.display(),
                socket.display()
            ),
        )
        .unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("containerd.log")).unwrap())
            .spawn()
            .unwrap();
        let c = Containerd { daemon, socket };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.socket.exists() {
            assert!(Instant::now() < deadline, "containerd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        c
    }

    /// `ctr` on this containerd, in a namespace of this test's own.
    fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.socket)
            .args(["--namespace", &format!("nsoci-test-{}", std::process::id())]);
        cmd
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn containerd_runs_a_container_through_nsoci() {
    if !(need::root()
        && need::busybox()
        && require(have("podman"), "podman")
        && require(have("containerd"), "containerd"))
    {
        return;
    }
    let dir = scratch();
    let root = dir.path().join("image");
    roots::install_busybox(&root, &["sh", "echo", "sleep"]);
    let archive = dir.path().join("rootfs.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&archive)
        .arg("."));
    ok(podman(dir.path())
        .arg("import")
        .arg(&archive)
        .arg("localhost/nsoci-ctr:1"));
    let saved = dir.path().join("image.tar");
    ok(podman(dir.path())
        .args(["save", "-o"])
        .arg(&saved)
        .arg("localhost/nsoci-ctr:1"));
    let containerd = Containerd::start(dir.path());
    ok(containerd.ctr().args(["image", "import"]).arg(&saved));
    let nsoci = bin("nsoci");
    let ctr_run = |args: &[&str]| {
        let mut cmd = containerd.ctr();
        cmd.args(["run", "--runtime", "io.containerd.runc.v2", "--runc-binary"])
            .arg(&nsoci)
            .args(args);
        cmd
    };
    // The shim runs nsoci create/start/delete; the status is the payload's, PID 1 its own.
    let out = run(&mut ctr_run(&[
        "--rm",
        "localhost/nsoci-ctr:1",
        "c1",
        "sh",
        "-c",
        "echo $$; exit 3",
    ]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1");
    // A detached task: exec (nsoci exec --process), kill, delete.
    ok(&mut ctr_run(&[
        "-d",
        "localhost/nsoci-ctr:1",
        "c2",
        "sleep",
        "1000",
    ]));
    let out = run(containerd.ctr().args([
        "task",
        "exec",
        "--exec-id",
        "e1",
        "c2",
        "sh",
        "-c",
        "echo exec $$; exit 4",
    ]));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stdout(&out), "exec 2");
    ok(containerd.ctr().args(["task", "kill", "-s", "KILL", "c2"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok(containerd.ctr().args(["task", "ls"])).contains("STOPPED") {
        assert!(Instant::now() < deadline, "c2 did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    ok(containerd.ctr().args(["task", "delete", "c2"]));
    ok(containerd.ctr().args(["container", "rm", "c2"]));
    assert_eq!(ok(containerd.ctr().args(["container", "ls", "-q"])), "");
}

#[test]
fn podman_limits_pauses_and_unpauses_through_nsoci() {
    if !(need::root() && need::busybox() && require(have("podman"), "podman")) {
        return;
    }
    let dir = scratch();
    let root = dir.path().join("image");
    roots::install_busybox(&root, &["sh", "sleep"]);
    let archive = dir.path().join("image.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&archive)
        .arg("."));
    ok(podman(dir.path())
        .arg("import")
        .arg(&archive)
        .arg("localhost/nsoci-bb:1"));
    let nsoci = bin("nsoci");
    let podman_nsoci = || {
        let mut cmd = podman(dir.path());
        cmd.arg("--runtime").arg(&nsoci);
        cmd
    };
    let id = ok(podman_nsoci()
        .args([
            "run",
            "-d",
            "--network",
            "none",
            "--memory",
            "64m",
            "--pids-limit",
            "50",
        ])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args(["localhost/nsoci-bb:1", "sleep", "1000"]));
    let id = id.trim().to_owned();
    let status = || ok(podman_nsoci().args(["inspect", "--format", "{{.State.Status}}", &id]));
    // podman's resources reached the container's cgroup, found by its init's pid.
    let pid = ok(podman_nsoci().args(["inspect", "--format", "{{.State.Pid}}", &id]));
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    let layout = common::cgroupfs::Layout::detect().unwrap();
    let pids = layout.find("pids").unwrap();
    let path = cgroups
        .lines()
        .find_map(|l| l.split_once(":pids:").map(|(_, p)| p.to_owned()))
        .or_else(|| {
            cgroups
                .lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
        })
        .unwrap();
    assert_eq!(
        read_trim(&pids.dir_of(&path).join("pids.max")),
        "50",
        "{cgroups}"
    );
    ok(podman_nsoci().args(["pause", &id]));
    assert_eq!(status().trim(), "paused");
    ok(podman_nsoci().args(["unpause", &id]));
    assert_eq!(status().trim(), "running");
    ok(podman_nsoci().args(["rm", "-f", "-t", "0", &id]));
    assert_eq!(ok(podman(dir.path()).args(["ps", "-aq"])), "");
}

#[test]
fn hooks_run_at_their_points_with_the_state_on_stdin() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&["sh", "-c", "echo user >> /hl/log; exec sleep 1000"]);
    let log = b.path().join("hooks");
    std::fs::create_dir(&log).unwrap();
    // Only the container's root has this file: a hook that sees it runs after pivot_root.
    std::fs::write(b.path().join("root/PIVOT_MARK"), "").unwrap();
    // Each hook appends what it sees: its argv[0] (args[0], not the path, as the spec says),
    // its mount and pid namespaces, its root, the status.
    let hook = |kind: &str, file: &str| {
        serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!(
                "echo {kind} $0 $(readlink /proc/self/ns/mnt) $(readlink /proc/self/ns/pid) \
                 $([ -e /PIVOT_MARK ] && echo pivoted || echo host) \
                 $(grep -o '\"status\":\"[a-z]*\"') >> {file}")]
        })
    };
    let host_log = format!("{}/log", log.display());
    b.edit(|c| {
        c["hooks"] = serde_json::json!({
            "prestart": [hook("prestart", &host_log)],
            "createRuntime": [hook("createRuntime", &host_log)],
            "createContainer": [hook("createContainer", &host_log)],
            "startContainer": [hook("startContainer", "/hl/log")],
            "poststart": [hook("poststart", &host_log)],
            "poststop": [hook("poststop", &host_log)],
        });
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/hl", "type": "bind", "source": log, "options": ["rbind", "rw"]
        }));
    });
    let lines = || -> Vec<String> {
        let text = std::fs::read_to_string(log.join("log")).unwrap_or_default();
        text.lines().map(str::to_owned).collect()
    };
    let (code, err) = b.status(&["create", "h1"]);
    assert_eq!(code, Some(0), "{err}");
    let pid = b.state("h1")["pid"].as_i64().unwrap();
    let me = std::process::id() as i64;
    let (host, inside) = (
        format!("{} {}", ns_of(me, "mnt"), ns_of(me, "pid")),
        format!("{} {}", ns_of(pid, "mnt"), ns_of(pid, "pid")),
    );
    assert_ne!(host, inside);
    let creating = "\"status\":\"creating\"";
    assert_eq!(
        lines(),
        [
            format!("prestart sh {host} host {creating}"),
            format!("createRuntime sh {host} host {creating}"),
            format!("createContainer sh {inside} host {creating}"),
        ]
    );
    ok(&mut b.nsoci(&["start", "h1"]));
    b.wait_for("poststart and the user's process", || lines().len() == 6);
    let all = lines();
    assert_eq!(
        all[3],
        format!("startContainer sh {inside} pivoted \"status\":\"created\"")
    );
    let rest: Vec<&str> = all[4..].iter().map(String::as_str).collect();
    assert!(rest.contains(&"user"), "{all:?}");
    assert!(
        rest.contains(&format!("poststart sh {host} host \"status\":\"running\"").as_str()),
        "{all:?}"
    );
    ok(&mut b.nsoci(&["delete", "--force", "h1"]));
    assert_eq!(
        lines().last().unwrap(),
        &format!("poststop sh {host} host \"status\":\"stopped\"")
    );

    // A failing hook before pivot_root fails create and leaves nothing, the init included.
    for kind in ["createRuntime", "createContainer"] {
        b.edit(|c| {
            c["hooks"] = serde_json::json!({
                kind: [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /dev/null; exit 4"]}]
            })
        });
        let (code, err) = b.status(&["create", "h2"]);
        assert_ne!(code, Some(0));
        assert!(
            err.contains(&format!("{kind} hook /bin/sh: failed")),
            "{err}"
        );
        assert!(b.left().is_empty(), "left behind: {:?}", b.left());
    }
    // A hook in the container past its timeout is killed, and create fails.
    b.edit(|c| {
        c["hooks"] = serde_json::json!({
            "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "sleep 30"], "timeout": 1}]
        })
    });
    let (code, err) = b.status(&["create", "h4"]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("createContainer hook /bin/sh: timed out"),
        "{err}"
    );
    assert!(b.left().is_empty(), "left behind: {:?}", b.left());
    // `run` starts what it made: without startContainer hooks there is no start gate, and
    // the hooks still run at their points, poststart once the user's process runs.
    std::fs::remove_file(log.join("log")).unwrap();
    b.edit(|c| {
        c["hooks"] = serde_json::json!({
            "createRuntime": [hook("createRuntime", &host_log)],
            "createContainer": [hook("createContainer", &host_log)],
            "poststart": [hook("poststart", &host_log)],
            "poststop": [hook("poststop", &host_log)],
        })
    });
    let (code, err) = b.status(&["run", "--detach", "h5"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(b.state("h5")["status"], "running");
    assert!(!b.state_root().join("h5/exec.fifo").exists());
    b.wait_for("the user's process", || lines().len() == 4);
    let all = lines();
    assert!(all[0].starts_with("createRuntime sh") && all[1].starts_with("createContainer sh"));
    assert!(
        all[2..].contains(&"user".to_owned())
            && all[2..].contains(&format!("poststart sh {host} host \"status\":\"running\"")),
        "{all:?}"
    );
    ok(&mut b.nsoci(&["delete", "--force", "h5"]));
    assert!(lines().last().unwrap().starts_with("poststop sh"));

    b.edit(|c| c["hooks"] = serde_json::json!({"poststop": [{"path": "true"}]}));
    let (code, err) = b.status(&["create", "h3"]);
    assert_eq!(code, Some(125));
    assert!(err.contains("the path 'true' is not absolute"), "{err}");
}

#[test]
fn exec_runs_a_process_in_the_container_like_runc() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&["sleep", "1000"]);
    assert_eq!(b.status(&["create", "x1"]).0, Some(0));
    ok(&mut b.nsoci(&["start", "x1"]));
    let init = b.state("x1")["pid"].as_i64().unwrap();
    // Positional args, with --env, --cwd, --user: the process's status is exec's.
    let out = run(&mut b.nsoci(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/bin",
        "--user",
        "1000:1001",
        "x1",
        "sh",
        "-c",
        "echo $FOO $PWD $(id -u):$(id -g) $(readlink /proc/self/ns/pid) $$; exit 3",
    ]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let ns = ns_of(init, "pid");
    assert_eq!(stdout(&out).trim(), format!("bar /bin 1000:1001 {ns} 2"));
    // --process: an OCI process JSON, as podman and containerd send it.
    let process = b.path().join("process.json");
    std::fs::write(
        &process,
        r#"{"args": ["sh", "-c", "echo from $X in $PWD as $(id -u)"], "env": ["X=json"],
            "cwd": "/proc", "user": {"uid": 7, "gid": 7}}"#,
    )
    .unwrap();
    let out = ok(&mut b.nsoci(&["exec", "--process", process.to_str().unwrap(), "x1"]));
    assert_eq!(out.trim(), "from json in /proc as 7");
    // --detach --pid-file: the pid is the process itself, in the container.
    let pid_file = b.path().join("exec.pid");
    let status = b
        .nsoci(&[
            "exec",
            "--detach",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "x1",
            "sleep",
            "77",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let pid: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    // mntns says ready right before its exec of the process.
    b.wait_for("the exec of sleep", || cmdline(pid) == "sleep 77");
    assert_eq!(ns_of(pid, "pid"), ns);
    assert_eq!(ns_of(pid, "mnt"), ns_of(init, "mnt"));
    // Bad values: runc-style one-line errors, status 125.
    let cases: [(&[&str], &str); 7] = [
        (
            &["exec", "--user", "root", "x1", "true"],
            "invalid --user 'root'",
        ),
        (
            &["exec", "--cap", "CAP_NOPE", "x1", "true"],
            "unknown capability",
        ),
        (
            &["exec", "--process", "/no/such.json", "x1"],
            "unable to read the process file",
        ),
        (&["exec", "x1"], "no command given"),
        (
            &["exec", "nosuch", "true"],
            "container nosuch does not exist",
        ),
        (
            // Detached, nobody would proxy the terminal (without -d nsoci does: pty.rs).
            &["exec", "--tty", "--detach", "x1", "true"],
            "without setting console socket",
        ),
        (
            &["exec", "--preserve-fds", "x", "x1", "true"],
            "invalid value 'x'",
        ),
    ];
    for (args, wording) in cases {
        fails(&run(&mut b.nsoci(args)), wording);
    }
    // kill TERM reaches PID 1 only, which ignores it (no handler); --all reaches the others.
    ok(&mut b.nsoci(&["kill", "x1", "TERM"]));
    std::thread::sleep(Duration::from_millis(100));
    assert!(!gone(pid), "kill without --all reached the exec'd process");
    ok(&mut b.nsoci(&["kill", "--all", "x1", "TERM"]));
    b.wait_for("the exec'd process to end on TERM", || gone(pid));
    assert_eq!(b.state("x1")["status"], "running");
    ok(&mut b.nsoci(&["delete", "--force", "x1"]));
    fails(
        &run(&mut b.nsoci(&["exec", "x1", "true"])),
        "container x1 does not exist",
    );
}

/// Process `pid` has ended (it may stay a zombie of whoever adopted it).
fn gone(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')').next().is_some_and(|r| r.starts_with(" Z"))
    })
}

/// A console socket's receiving end, as conmon and containerd's shim have it: python3 takes
/// the master by SCM_RIGHTS, then prints the name sent with it, whether the master's devpts is
/// the host's, and what the pty printed.
fn console_receiver(socket: &Path) -> std::process::Child {
    const SCRIPT: &str = r#"
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
# Listening before the path appears (a rename), so that a connect never finds it refused.
s.bind(sys.argv[1] + ".tmp"); s.listen(1); os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.settimeout(20)
c, _ = s.accept()
fds = array.array("i")
msg, anc, _, _ = c.recvmsg(256, socket.CMSG_LEN(fds.itemsize))
for _, _, data in anc:
    fds.frombytes(data[:fds.itemsize])
m = fds[0]
host = os.fstat(m).st_dev == os.stat("/dev/pts/ptmx").st_dev
out = b""
while True:
    try:
        d = os.read(m, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
print(msg.decode(), "host-devpts" if host else "own-devpts", out.decode().replace("\r", "").strip())
"#;
    let child = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the receiver did not listen");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

#[test]
fn console_socket_gets_a_pty_of_the_containers_devpts() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&["sh", "-c", "tty; echo $$"]);
    b.edit(|c| c["process"]["terminal"] = true.into());
    // run with process.terminal: the init's pty.
    let socket = b.path().join("console.sock");
    let receiver = console_receiver(&socket);
    let (code, err) = b.status(&["run", "--console-socket", socket.to_str().unwrap(), "t1"]);
    assert_eq!(code, Some(0), "{err}");
    let got = stdout(&receiver.wait_with_output().unwrap());
    let words: Vec<&str> = got.split_whitespace().collect();
    assert!(words[0].starts_with("/dev/pts/"), "{got}");
    // The name sent, what `tty` printed inside: the same /dev/pts/N, of the container's devpts.
    assert_eq!(words[1..], ["own-devpts", words[0], "1"], "{got}");
    // exec --tty: a pty of the container's too.
    let b2 = Bundle::new(&["sleep", "1000"]);
    assert_eq!(b2.status(&["create", "t2"]).0, Some(0));
    let socket = b2.path().join("console.sock");
    let receiver = console_receiver(&socket);
    let out = run(&mut b2.nsoci(&[
        "exec",
        "--tty",
        "--console-socket",
        socket.to_str().unwrap(),
        "t2",
        "tty",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = stdout(&receiver.wait_with_output().unwrap());
    let words: Vec<&str> = got.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{got}");
    assert_eq!(words[1..], ["own-devpts", words[0]], "{got}");
    // A socket nobody listens on, and a terminal without a socket, are refused.
    fails(
        &run(&mut b2.nsoci(&["exec", "-t", "--console-socket", "/no/sock", "t2", "tty"])),
        "unable to connect to the console socket",
    );
    ok(&mut b2.nsoci(&["delete", "--force", "t2"]));
    let (code, err) = b.status(&["create", "t3"]);
    assert_eq!(code, Some(125));
    assert!(err.contains("without setting console socket"), "{err}");
    assert!(b.left().is_empty());
}

#[test]
fn foreground_run_with_a_terminal_proxies_the_callers_and_follows_its_size() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&[
        "sh",
        "-c",
        "echo tty=$(tty); echo size=$(stty size); read line; echo size=$(stty size) got=$line; exit 3",
    ]);
    b.edit(|c| c["process"]["terminal"] = true.into());
    let before = audit::snapshot_watching(b.path(), None, &[b.path()]);
    // As runc: a terminal with nowhere to send it and nobody to proxy it is refused.
    for args in [&["create"][..], &["run", "--detach"][..]] {
        let (code, err) = b.status(&[args, &["t0"]].concat());
        assert_eq!(code, Some(125), "{err}");
        assert!(
            err.contains("cannot allocate tty if runc will detach without setting console socket"),
            "{err}"
        );
        assert!(b.left().is_empty(), "left behind: {:?}", b.left());
    }
    // In the foreground, on the user's terminal: nsoci's own pty, the caller's proxied.
    let mut term = term::Term::new();
    let mut cmd = b.nsoci(&["run", "--bundle"]);
    cmd.arg(b.path()).arg("tt1");
    let mut nsoci = term.spawn(&mut cmd);
    term.wait_for(&format!("size={} {}", term::ROWS, term::COLS));
    // The window changes while it runs: the container's pty follows (SIGWINCH to nsoci).
    term.resize(40, 100);
    term.write("hello\r");
    let status = term.wait_exit(&mut nsoci);
    assert_eq!(status.code(), Some(3), "{}", term.shown);
    assert!(
        term.shown.contains("size=40 100 got=hello"),
        "{}",
        term.shown
    );
    let tty = term.shown.split("tty=").nth(1).unwrap_or("").lines().next();
    assert!(
        tty.is_some_and(|t| t.starts_with("/dev/pts/")),
        "not a terminal: {}",
        term.shown
    );
    assert!(term.cooked(), "the caller's terminal was left raw");
    assert!(b.left().is_empty(), "left behind: {:?}", b.left());
    audit::assert_nothing_left_watching(&before, b.path(), None, &[], &[b.path()]);
}

/// `exec -t` without `--console-socket`: nsoci proxies the caller's terminal, and the
/// process's pty has the caller's size from the process's first instruction on (a process
/// that asks at once, as a shell's prompt or `stty size` does, must not see 0 0 or no size).
/// The race is narrow: many execs, one fresh terminal each, of alternating sizes.
#[test]
fn exec_t_gives_the_process_the_callers_size_before_it_runs() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&["sleep", "1000"]);
    assert_eq!(b.status(&["run", "--detach", "xt"]).0, Some(0));
    let before = std::fs::read_dir(b.state_root().join("xt"))
        .unwrap()
        .count();
    for i in 0..12u16 {
        let (rows, cols) = (20 + i, 70 + 2 * i);
        let mut term = term::Term::sized(rows, cols);
        let status = term.run(&mut b.nsoci(&["exec", "-t", "xt", "stty", "size"]));
        assert!(status.success(), "exec {i}: {status}:\n{}", term.shown);
        assert_eq!(
            term.shown.trim(),
            format!("{rows} {cols}"),
            "exec {i}: the process saw another size"
        );
        assert!(term.cooked(), "exec {i} left the terminal raw");
    }
    // Nothing of the execs stays in the container's state directory.
    let after = std::fs::read_dir(b.state_root().join("xt"))
        .unwrap()
        .count();
    assert_eq!(after, before);
    ok(&mut b.nsoci(&["delete", "--force", "xt"]));
    assert!(b.left().is_empty(), "left behind: {:?}", b.left());
}

#[test]
fn every_nsoci_flag_with_a_wrong_value_is_refused_and_leaves_nothing() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&["true"]);
    let file = b.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let file = file.to_str().unwrap();
    let bundle = b.path().to_str().unwrap().to_owned();
    let no_dir = format!("{bundle}/no/such/dir/pid");
    let cases: [(&[&str], &str); 7] = [
        (
            &["create", "--preserve-fds", "abc", "w"],
            "invalid value 'abc'",
        ),
        (
            &["create", "--preserve-fds", "-1", "w"],
            "unexpected argument '-1'",
        ),
        (
            &["create", "--bundle", &bundle, "--pid-file", &no_dir, "w"],
            "unable to write the pid file",
        ),
        (&["create", "--bundle", file, "w"], "unable to read"),
        (&["--log-format", "yaml", "list"], "invalid value 'yaml'"),
        (&["list", "--format", "xml"], "invalid value 'xml'"),
        (&["kill", "w", "SIGNOPE"], "container w does not exist"),
    ];
    for (args, wording) in cases {
        fails(&run(&mut b.nsoci(args)), wording);
        assert!(b.left().is_empty(), "{args:?} left {:?}", b.left());
    }
    // A state root that is a file.
    let out =
        run(tool("nsoci", b.path()).args(["--root", file, "create", "--bundle", &bundle, "w"]));
    fails(&out, "unable to use the state directory");
}

#[test]
fn linux_seccomp_of_the_config_is_applied() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&[
        "sh",
        "-c",
        "mkdir /tmp/a && echo made; mkdir /tmp/b 2>&1; true",
    ]);
    b.edit(|c| {
        c["root"]["readonly"] = false.into();
        c["mounts"] =
            serde_json::json!([{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}]);
    });
    // Without linux.seccomp: no filter refuses mkdir.
    let (code, err) = b.status(&["run", "s0"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(b.output(), "made\n");
    b.edit(|c| {
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                // Old profiles lack close_range: mntns closes the fds another way.
                {"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
            ]
        })
    });
    let (code, err) = b.status(&["run", "sc1"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        b.output().contains("Operation not permitted"),
        "{}",
        b.output()
    );
    assert!(!b.output().contains("made"), "{}", b.output());
}

#[test]
fn rootless_spec_runs_as_uid_65534() {
    if !(need::rootless() && need::busybox()) {
        return;
    }
    let dir = scratch();
    let bundle = dir.path().join("b");
    roots::install_busybox(&bundle.join("rootfs"), &["sh", "id", "cat", "sleep"]);
    let nobody = |args: &[&str]| {
        let mut cmd = as_user(65534, bin("nsoci"));
        cmd.args(args)
            .current_dir(&bundle)
            .env("XDG_RUNTIME_DIR", dir.path().join("xdg"));
        cmd
    };
    std::fs::create_dir(dir.path().join("xdg")).unwrap();
    Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(dir.path())
        .status()
        .unwrap();
    ok(&mut nobody(&["spec", "--rootless"]));
    let file = bundle.join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(config["linux"]["uidMappings"][0]["hostID"], 65534);
    config["process"]["args"] = serde_json::json!(["sh", "-c", "id -u; cat /proc/self/uid_map"]);
    std::fs::write(&file, serde_json::to_vec(&config).unwrap()).unwrap();
    let out = ok(&mut nobody(&["run", "rl1"]));
    let words: Vec<&str> = out.split_whitespace().collect();
    // Root inside, uid 65534 outside; the state lived under $XDG_RUNTIME_DIR/nsoci.
    assert_eq!(words, ["0", "0", "65534", "1"], "{out}");
    // exec joins the rootless container (its user namespace first), as uid 65534 too.
    config["process"]["args"] = serde_json::json!(["sleep", "1000"]);
    std::fs::write(&file, serde_json::to_vec(&config).unwrap()).unwrap();
    // The container keeps run's stdio: not the pipes of this test.
    let status = nobody(&["run", "--detach", "rl2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let out = ok(&mut nobody(&["exec", "rl2", "sh", "-c", "id -u; echo $$"]));
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "2"],
        "{out}"
    );
    ok(&mut nobody(&["delete", "--force", "rl2"]));
    let left = std::fs::read_dir(dir.path().join("xdg/nsoci"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "run left its state behind");
}

/// The container's cgroup directory in the hierarchy carrying `controller` for a relative
/// cgroupsPath (below this process's own cgroup, as runc).
fn cgroup_dir(controller: &str, path: &str) -> Option<PathBuf> {
    let layout = common::cgroupfs::Layout::detect().ok()?;
    Some(layout.find(controller)?.own_dir().join(path))
}

/// The v1 or v2 name of a limit file.
fn limit_file(v1: &'static str, v2: &'static str) -> &'static str {
    let unified = common::cgroupfs::Layout::detect()
        .map(|l| l.kind() == common::cgroupfs::Kind::Unified)
        .unwrap_or(false);
    if unified {
        v2
    } else {
        v1
    }
}

fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

#[test]
fn resources_are_set_seen_inside_updated_live_and_removed_at_delete() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let memory = limit_file("memory.limit_in_bytes", "memory.max");
    let inside = if memory == "memory.max" {
        "/sys/fs/cgroup".to_owned()
    } else {
        "/sys/fs/cgroup/memory".to_owned()
    };
    let b = Bundle::new(&[
        "sh",
        "-c",
        &format!("cat {inside}/{memory}; cat /proc/self/cgroup | grep -c :/$; exec sleep 1000"),
    ]);
    let path = format!("nsoci-test-{}/res", std::process::id());
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = path.clone().into();
        c["linux"]["resources"] = serde_json::json!({
            "memory": {"limit": 64 << 20},
            "pids": {"limit": 20},
            "cpu": {"quota": 20000, "period": 100000}
        });
    });
    let (code, err) = b.status(&["create", "rs1"]);
    assert_eq!(code, Some(0), "create failed: {err}");
    let mem_dir = cgroup_dir("memory", &path).expect("a memory hierarchy");
    let pids_dir = cgroup_dir("pids", &path).expect("a pids hierarchy");
    assert_eq!(read_trim(&mem_dir.join(memory)), (64u64 << 20).to_string());
    assert_eq!(read_trim(&pids_dir.join("pids.max")), "20");
    let init = b.state("rs1")["pid"].as_u64().unwrap().to_string();
    let procs = read_trim(&pids_dir.join("cgroup.procs"));
    assert!(
        procs.lines().any(|p| p == init),
        "init {init} not in {procs}"
    );
    ok(&mut b.nsoci(&["start", "rs1"]));
    // Inside: its own limit, and a cgroup namespace whose root is the container's cgroup.
    b.wait_for("the container's output", || b.output().lines().count() >= 2);
    let out = b.output();
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some((64u64 << 20).to_string().as_str()),
        "{out}"
    );
    assert_ne!(
        lines.next(),
        Some("0"),
        "no cgroup shown as / inside: {out}"
    );
    // update on the live container: flags, then a JSON on stdin.
    ok(&mut b.nsoci(&["update", "--memory", "128m", "rs1"]));
    assert_eq!(read_trim(&mem_dir.join(memory)), (128u64 << 20).to_string());
    let mut update = b.nsoci(&["update", "--resources", "-", "rs1"]);
    update
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = update.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"pids":{"limit":30}}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_trim(&pids_dir.join("pids.max")), "30");
    ok(&mut b.nsoci(&["delete", "--force", "rs1"]));
    assert!(
        !mem_dir.exists() && !pids_dir.exists(),
        "cgroup left behind"
    );
    let parent = pids_dir.parent().unwrap();
    assert!(
        !parent.exists(),
        "{} (made by nsoci) left",
        parent.display()
    );
    assert!(b.left().is_empty());
}

/// utime + stime of `pid` (clock ticks).
fn cpu_ticks(pid: u64) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let f: Vec<&str> = rest.split(' ').collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

#[test]
fn pause_freezes_resume_thaws_and_ps_lists_host_pids() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&["sh", "-c", "while :; do :; done"]);
    let (code, err) = b.status(&["create", "pz1"]);
    assert_eq!(code, Some(0), "create failed: {err}");
    ok(&mut b.nsoci(&["start", "pz1"]));
    let pids: Vec<u64> =
        serde_json::from_str(&ok(&mut b.nsoci(&["ps", "--format", "json", "pz1"])))
            .expect("ps json is a list of pids");
    let init = b.state("pz1")["pid"].as_u64().unwrap();
    assert!(pids.contains(&init), "{pids:?} lacks the init {init}");
    let busy = *pids.iter().max().unwrap();
    let table = ok(&mut b.nsoci(&["ps", "pz1"]));
    assert!(
        table.lines().next().unwrap_or("").contains("PID"),
        "{table}"
    );
    assert!(table.contains(&busy.to_string()), "{table}");
    // Running: its CPU time grows.
    let before = cpu_ticks(busy);
    b.wait_for("CPU time to grow", || cpu_ticks(busy) > before);
    ok(&mut b.nsoci(&["pause", "pz1"]));
    assert_eq!(b.state("pz1")["status"], "paused");
    assert!(ok(&mut b.nsoci(&["list"])).contains("paused"));
    fails(&run(&mut b.nsoci(&["pause", "pz1"])), "already paused");
    fails(&run(&mut b.nsoci(&["start", "pz1"])), "cannot start");
    // Frozen: its CPU time stands still.
    let frozen = cpu_ticks(busy);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(busy), frozen, "CPU time grew while paused");
    ok(&mut b.nsoci(&["resume", "pz1"]));
    assert_eq!(b.state("pz1")["status"], "running");
    b.wait_for("CPU time to grow again", || cpu_ticks(busy) > frozen);
    fails(&run(&mut b.nsoci(&["resume", "pz1"])), "is not paused");
    // A paused container is deleted by --force too (thawed to die).
    ok(&mut b.nsoci(&["pause", "pz1"]));
    ok(&mut b.nsoci(&["delete", "--force", "pz1"]));
    assert!(b.left().is_empty());
    // Gone (or a zombie its reaper has not collected yet).
    b.wait_for("the payload to end", || {
        let stat = std::fs::read_to_string(format!("/proc/{busy}/stat")).unwrap_or_default();
        stat.is_empty() || stat[stat.rfind(')').unwrap_or(0)..].starts_with(") Z")
    });
}

#[test]
fn linux_devices_are_made_with_owner_mode_and_cgroup_rules() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&[
        "sh",
        "-c",
        "ls -ln /dev/nsoci-disk /dev/sub/nsoci-null; echo x > /dev/sub/nsoci-null && echo wrote",
    ]);
    let path = format!("nsoci-test-{}/dev", std::process::id());
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = path.clone().into();
        c["linux"]["devices"] = serde_json::json!([
            {"path": "/dev/nsoci-disk", "type": "b", "major": 7, "minor": 200, "fileMode": 0o640, "uid": 1, "gid": 2},
            {"path": "/dev/sub/nsoci-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}
        ]);
        c["linux"]["resources"] = serde_json::json!({"devices": [{"allow": false, "access": "rwm"}]});
    });
    let (code, err) = b.status(&["create", "d1"]);
    assert_eq!(code, Some(0), "create failed: {err}");
    let devices = cgroup_dir("devices", &path).map(|d| read_trim(&d.join("devices.list")));
    ok(&mut b.nsoci(&["start", "d1"]));
    b.wait_status("d1", "stopped");
    let out = b.output();
    let disk = out
        .lines()
        .find(|l| l.contains("nsoci-disk"))
        .unwrap_or_else(|| panic!("{out}"));
    let fields: Vec<&str> = disk.split_whitespace().collect();
    assert_eq!(
        &fields[..6],
        ["brw-r-----", "1", "1", "2", "7,", "200"],
        "{disk}"
    );
    // The node works (bound from a tmpfs allowing devices, while /dev stays nodev).
    assert!(out.contains("wrote"), "{out}");
    // v1: deny all, then the config's nodes and runc's defaults.
    if let Some(list) = devices {
        assert!(!list.contains("a *:*"), "{list}");
        assert!(
            list.contains("b 7:200 rwm") && list.contains("c 1:3 rwm"),
            "{list}"
        );
    }
    ok(&mut b.nsoci(&["delete", "d1"]));
}

#[test]
fn a_network_namespace_is_joined_by_path() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let mut holder = Command::new("unshare")
        .args(["--net", "sleep", "1000"])
        .spawn()
        .unwrap();
    let ns = format!("/proc/{}/ns/net", holder.id());
    let b = Bundle::new(&[
        "sh",
        "-c",
        "readlink /proc/self/ns/net; cat /proc/sys/net/ipv4/ping_group_range",
    ]);
    let host_range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    b.wait_for("unshare's namespace", || {
        std::fs::read_link(&ns).ok() != std::fs::read_link("/proc/self/ns/net").ok()
    });
    let want = std::fs::read_link(&ns).unwrap();
    b.edit(|c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != "network");
        list.push(serde_json::json!({"type": "network", "path": ns}));
        // As podman sends it for the namespace CNI made: set in the joined namespace.
        c["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ping_group_range": "0 5"});
    });
    let (code, err) = b.status(&["run", "j1"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code, Some(0), "run failed: {err}");
    assert_eq!(
        b.output(),
        format!("{}\n0\t5\n", want.to_string_lossy()),
        "not the namespace of the path, or its sysctl not set"
    );
    let now = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    assert_eq!(now, host_range, "the host's sysctl changed");
    // The host's own namespace by path: its sysctls are refused, as runc refuses them.
    b.edit(|c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != "network");
        list.push(serde_json::json!({"type": "network", "path": "/proc/self/ns/net"}));
    });
    let out = run(&mut b.nsoci(&["run", "--bundle", b.path().to_str().unwrap(), "j2"]));
    fails(&out, "not allowed in the host network namespace");
    assert!(b.left().is_empty(), "left behind: {:?}", b.left());
    let now = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    assert_eq!(now, host_range, "the host's sysctl changed");
}

#[test]
fn a_mount_namespace_is_joined_by_path_and_the_root_set_up_inside_it() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&[
        "sh",
        "-c",
        "readlink /proc/self/ns/mnt; cat /data/f; grep -c ' /data ' /proc/self/mountinfo",
    ]);
    let data = b.path().join("root/data");
    std::fs::create_dir(&data).unwrap();
    let before = audit::snapshot_watching(b.path(), None, &[b.path()]);
    // Another's mount namespace (as a sandbox holds one), with a tmpfs mounted only there.
    let script = format!(
        "mount -t tmpfs -o size=1m only-there {0} && echo here > {0}/f && echo ready && exec sleep 1000",
        data.display()
    );
    let mut holder = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "ready\n", "the holder did not mount its tmpfs");
    let ns = format!("/proc/{}/ns/mnt", holder.id());
    let want = std::fs::read_link(&ns).unwrap();
    assert!(!data.join("f").exists(), "the tmpfs shows on the host");
    b.edit(|c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != "mount");
        list.push(serde_json::json!({"type": "mount", "path": ns}));
    });
    let (code, err) = b.status(&["run", "m1"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code, Some(0), "run failed: {err}");
    assert_eq!(
        b.output(),
        format!("{}\nhere\n1\n", want.to_string_lossy()),
        "not the namespace of the path, or its tmpfs not seen"
    );
    assert!(!data.join("f").exists(), "the tmpfs shows on the host");
    assert!(b.left().is_empty(), "left behind: {:?}", b.left());
    audit::assert_nothing_left_watching(&before, b.path(), None, &[], &[b.path()]);
    // A new user namespace would hold no right over the joined one: refused before anything.
    b.edit(|c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.push(serde_json::json!({"type": "user"}));
        c["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 0, "size": 1}]);
        c["linux"]["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 0, "size": 1}]);
    });
    let out = run(&mut b.nsoci(&["run", "--bundle", b.path().to_str().unwrap(), "m2"]));
    fails(
        &out,
        "a mount namespace joined by path needs the user namespace",
    );
    assert!(b.left().is_empty(), "left behind: {:?}", b.left());
}

#[test]
fn bad_resources_devices_and_paths_fail_runc_style_and_leave_nothing() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&["true"]);
    let path = format!("nsoci-test-{}/bad", std::process::id());
    let cases: [(Edit, &str); 7] = [
        (
            |c| {
                c["linux"]["resources"] =
                    serde_json::json!({"memory": {"limit": 100_000_000, "swap": 1000}})
            },
            "must not be below limit",
        ),
        (
            |c| c["linux"]["resources"] = serde_json::json!({"blockIO": {"weight": 5}}),
            "out of range 10 to 1000",
        ),
        (
            |c| c["linux"]["resources"] = serde_json::json!({"pids": {"limit": "many"}}),
            "not a valid OCI config",
        ),
        (
            |c| c["linux"]["cgroupsPath"] = "/a/../b".into(),
            "is not a cgroupfs path",
        ),
        (
            |c| c["linux"]["rootfsPropagation"] = "sideways".into(),
            "linux.rootfsPropagation",
        ),
        (
            |c| {
                c["linux"]["devices"] =
                    serde_json::json!([{"path": "/etc/x", "type": "c", "major": 1, "minor": 3}])
            },
            "is not below /dev",
        ),
        (
            |c| {
                c["linux"]["resources"] =
                    serde_json::json!({"hugepageLimits": [{"pageSize": "3KB", "limit": 1}]})
            },
            "hugepageLimits",
        ),
    ];
    for (change, wording) in cases {
        b.edit(|c| {
            c["linux"]["cgroupsPath"] = path.clone().into();
            c["linux"].as_object_mut().unwrap().remove("resources");
            c["linux"].as_object_mut().unwrap().remove("devices");
            c["linux"]
                .as_object_mut()
                .unwrap()
                .remove("rootfsPropagation");
        });
        b.edit(change);
        let out = run(&mut b.nsoci(&["create", "--bundle", b.path().to_str().unwrap(), "bad"]));
        fails(&out, wording);
        assert!(b.left().is_empty(), "{wording}: left {:?}", b.left());
        assert!(
            !cgroup_dir("pids", &path).is_some_and(|d| d.parent().unwrap().exists()),
            "{wording}: a cgroup was left"
        );
    }
    let out = run(&mut b.nsoci(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "bad",
    ]));
    fails(&out, "--systemd-cgroup");
    for (args, wording) in [
        (
            &["update", "--memory", "lots", "x"][..],
            "invalid value 'lots'",
        ),
        (&["update", "--pids-limit", "x", "x"], "invalid value 'x'"),
        (
            &["update", "--cpu-period", "-5", "x"],
            "unexpected argument",
        ),
        (
            &["update", "--resources", "/no/such/file", "x"],
            "container x does not exist",
        ),
        (&["pause", "x"], "container x does not exist"),
        (&["resume", "x"], "container x does not exist"),
        (
            &["ps", "--format", "xml", "x"],
            "container x does not exist",
        ),
    ] {
        fails(&run(&mut b.nsoci(args)), wording);
    }
    assert!(b.left().is_empty());
}

#[test]
fn delete_removes_the_chains_registration_and_nsps_no_longer_lists_it() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&["sleep", "1000"]);
    let (code, err) = b.status(&["create", "rg1"]);
    assert_eq!(code, Some(0), "{err}");
    let pid = b.state("rg1")["pid"].as_i64().unwrap();
    let chains = b.path().join("run/chains");
    let registered = || -> Vec<String> {
        std::fs::read_dir(&chains)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let listed = || ok(&mut tool("nsps", b.path()));
    // nsps lists the container's chain, by its PID 1.
    assert_eq!(registered().len(), 1, "{:?}", registered());
    assert!(
        listed().contains(&format!(" {pid} ")),
        "{pid}: {}",
        listed()
    );
    ok(&mut b.nsoci(&["kill", "rg1", "KILL"]));
    b.wait_status("rg1", "stopped");
    ok(&mut b.nsoci(&["delete", "rg1"]));
    // pidns runs without a monitor: delete is what removes the registration.
    assert!(registered().is_empty(), "left: {:?}", registered());
    assert!(!listed().contains(&format!(" {pid} ")), "{}", listed());
}

#[test]
fn ids_are_looked_up_directly_not_by_scanning_the_chains() {
    if !(need::root() && need::busybox() && require(have("strace"), "strace")) {
        return;
    }
    let b = Bundle::new(&["sleep", "1000"]);
    assert_eq!(b.status(&["create", "other"]).0, Some(0));
    let registration = |id: &str| {
        let text = std::fs::read(b.state_root().join(id).join("state.json")).unwrap();
        let record: Value = serde_json::from_slice(&text).unwrap();
        record["chain"].as_str().map(str::to_owned)
    };
    let other = registration("other").expect("other's chain is registered");
    // What nsoci itself (not its chain's links) opens and lists, per command.
    let traced = |args: &[&str]| {
        let trace = b.path().join("trace");
        let mut cmd = Command::new("strace");
        cmd.args(["-qq", "-e", "trace=%file,getdents64", "-o"])
            .arg(&trace);
        cmd.arg(bin("nsoci"))
            .arg("--root")
            .arg(b.state_root())
            .args(args);
        with_env(&mut cmd, b.path());
        let err = b.path().join("trace.err");
        let status = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&err).unwrap())
            .status()
            .unwrap();
        let said = std::fs::read_to_string(&err).unwrap();
        assert!(status.success(), "{args:?}: {status:?} {said}");
        std::fs::read_to_string(&trace).unwrap()
    };
    let trace = traced(&["create", "--bundle", b.path().to_str().unwrap(), "lk1"]);
    let own = registration("lk1").expect("lk1's chain is recorded at create");
    assert!(
        !trace.contains(&other),
        "create scanned other chains:\n{trace}"
    );
    let state_json = b.state_root().join("lk1/state.json").display().to_string();
    for args in [&["state", "lk1"][..], &["kill", "lk1", "KILL"][..]] {
        let trace = traced(args);
        assert!(trace.contains(&state_json), "{args:?}:\n{trace}");
        assert!(!trace.contains("/chains"), "{args:?} read chains:\n{trace}");
    }
    b.wait_status("lk1", "stopped");
    let trace = traced(&["delete", "lk1"]);
    assert!(
        trace.contains(&own),
        "delete left its registration:\n{trace}"
    );
    assert!(
        !trace.contains(&other),
        "delete scanned other chains:\n{trace}"
    );
    ok(&mut b.nsoci(&["delete", "--force", "other"]));
    assert!(b.left().is_empty(), "left behind: {:?}", b.left());
}

#[test]
fn exec_preserve_fds_passes_fd_3_to_the_process() {
    if !(need::root() && need::busybox()) {
        return;
    }
    let b = Bundle::new(&["sleep", "1000"]);
    let (code, err) = b.status(&["create", "f1"]);
    assert_eq!(code, Some(0), "{err}");
    let given = b.path().join("given");
    std::fs::write(&given, "through fd 3\n").unwrap();
    // The caller's fd 3: a file the container cannot see by path.
    let exec = |extra: &[&str]| {
        let file = File::open(&given).unwrap();
        let mut cmd = b.nsoci(&["exec"]);
        cmd.args(extra).args(["f1", "sh", "-c", "cat <&3"]);
        // SAFETY: dup2 onto fd 3 in the forked child before exec (no close-on-exec there).
        unsafe {
            use std::os::fd::AsRawFd;
            use std::os::unix::process::CommandExt;
            let raw = file.as_raw_fd();
            cmd.pre_exec(move || {
                // dup2 onto itself keeps close-on-exec: cleared as well.
                if libc::dup2(raw, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        run(&mut cmd)
    };
    // Without --preserve-fds the process gets no fd 3.
    let out = exec(&[]);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = exec(&["--preserve-fds", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "through fd 3");
    ok(&mut b.nsoci(&["delete", "--force", "f1"]));
}
