//! mntns: private mounts, container roots from --rootfs and --overlay, and the entry into
//! them, checked from the outside (what a user sees on the host) and from the inside (what a
//! container process sees).

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nschain_tests::*;

/// podman's default capability set as /proc/PID/status prints it: CHOWN DAC_OVERRIDE FOWNER
/// FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE SYS_CHROOT SETFCAP (Docker's, a80425fb,
/// has NET_RAW, MKNOD and AUDIT_WRITE too).
const DEFAULT_CAPS: &str = "00000000800405fb";

const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "cat", "ls", "echo", "grep", "id", "ps", "stat", "readlink", "touch", "mkdir", "wc",
    "head", "test", "sleep", "mount", "printf", "pwd", "find", "true",
];

/// A tiny root filesystem: Debian's static busybox and its applet links.
fn busybox_root(dir: &Path) -> PathBuf {
    nschain_tests::roots::busybox_root(dir, BUSYBOX_APPLETS)
}

fn have_busybox() -> bool {
    nschain_tests::need::busybox()
}

fn mntns(state: &Path) -> Command {
    tool("mntns", state)
}

/// A state directory every user may write (rootless runs keep their layers in it).
fn state_dir(scratch: &Path) -> PathBuf {
    let state = scratch.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    state
}

/// The mount points a process sees (field 5 of mountinfo).
fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .collect()
}

/// What a container root may have mounted: mntns's own mounts and the masked and read-only
/// paths the kernel has.
fn allowed_container_mounts() -> BTreeSet<String> {
    let mut set: BTreeSet<String> = [
        "/",
        "/proc",
        "/sys",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/dev",
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/proc/acpi",
        "/proc/asound",
        "/proc/interrupts",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    set.insert("/sys".into());
    set
}

/// Runs `args` (mntns first) inside a throwaway mount namespace that plays the host, and
/// returns the output plus that "host"'s mountinfo before and after, without the machine's
/// named network namespaces (/run/netns/NAME): other tests' throwaway hosts come and go, and
/// deleting one's file unmounts it in every mount namespace, this private one included.
fn in_fake_host(state: &Path, dir: &Path, args: &[&str]) -> (Output, String, String) {
    let mut cmd = Command::new("unshare");
    with_env(&mut cmd, state);
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(
            "cat /proc/self/mountinfo > \"$0/before\"; \"$@\"; rc=$?; \
             cat /proc/self/mountinfo > \"$0/after\"; exit $rc",
        )
        .arg(dir)
        .args(args);
    let out = run(&mut cmd);
    let read = |name: &str| -> String {
        std::fs::read_to_string(dir.join(name))
            .unwrap()
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .nth(4)
                    .is_some_and(|p| !p.starts_with("/run/netns/"))
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    (out, read("before"), read("after"))
}

/// Every file under `dir`, as relative paths (empty when `dir` does not exist).
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(dir).unwrap().to_path_buf());
            if e.file_type().unwrap().is_dir() {
                todo.push(p);
            }
        }
    }
    out
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// The seed scenario: --overlay /

#[test]
fn three_overlay_containers_each_see_only_their_own_file() {
    if !require(is_root(), "root") {
        return;
    }
    assert!(
        !Path::new("/opt/test1").exists(),
        "the host already has /opt/test1: the scenario would prove nothing"
    );
    let dir = scratch();
    let state = state_dir(dir.path());
    let names: Vec<String> = (1..=3)
        .map(|i| format!("seed{}-{i}", std::process::id()))
        .collect();
    // The three run at the same time: each checks it starts without the file, writes its
    // own text, waits for the others to have written theirs, and reads its file back.
    let children: Vec<_> = names
        .iter()
        .map(|name| {
            let mut cmd = mntns(&state);
            cmd.args(["--overlay", "/", "--name", name, "--", "sh", "-c"])
                .arg(
                    "test ! -e /opt/test1 || { echo 'saw a file at start'; exit 3; }; \
                     echo \"text of $0\" > /opt/test1; sleep 0.6; cat /opt/test1",
                )
                .arg(name)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for (name, child) in names.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        assert_eq!(ok_out(&out, name), format!("text of {name}"));
    }
    assert!(
        !Path::new("/opt/test1").exists(),
        "a container wrote to the host's /opt"
    );
    for name in &names {
        let layer = state.join("data/overlay").join(name);
        let file = layer.join("diff/opt/test1");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("text of {name}\n"),
            "{}",
            file.display()
        );
        // Without --rm the layer stays after the container exited.
        assert!(layer.join("work").is_dir() && layer.join("merged").is_dir());
    }
    // Another container cannot read their layers through its view of the host's root.
    let layers = state.join("data/overlay");
    let out = run(mntns(&state)
        .args(["--overlay", "/", "--rm", "--", "sh", "-c"])
        .arg("ls -A \"$0\"; cat \"$0\"/*/diff/opt/test1 2>/dev/null; true")
        .arg(&layers));
    assert_eq!(ok_out(&out, "a fourth container"), "");
}

#[test]
fn rm_deletes_the_layer_when_the_container_exits_and_info_fd_names_it() {
    if !require(is_root(), "root") {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let info = dir.path().join("info");
    let mut cmd = Command::new("sh");
    with_env(&mut cmd, &state);
    cmd.arg("-c")
        .arg(
            "exec mntns --overlay / --rm --info-fd 3 -- \
             sh -c 'echo gone > /opt/test1; sleep 0.5' 3>\"$0\"",
        )
        .arg(&info)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    // While it runs the layer is there, with the file in diff.
    let mut layer = PathBuf::new();
    wait_for("the --info-fd line", Duration::from_secs(30), || {
        let Ok(text) = std::fs::read_to_string(&info) else {
            return false;
        };
        let Ok(line) = serde_json::from_str::<Value>(&text) else {
            return false;
        };
        layer = PathBuf::from(line["layer"].as_str().unwrap());
        assert_eq!(line["tool"], "mntns");
        assert_eq!(line["ns"]["type"], "mnt");
        assert_eq!(line["rm"], true);
        assert_eq!(
            line["rootfs"].as_str().unwrap(),
            layer.join("merged").to_str().unwrap()
        );
        true
    });
    assert!(
        layer.starts_with(state.join("data/overlay")),
        "{}",
        layer.display()
    );
    wait_for("the file in diff", Duration::from_secs(30), || {
        layer.join("diff/opt/test1").exists()
    });
    let out = child.wait_with_output().unwrap();
    ok_out(&out, "mntns --rm");
    // mntns --rm returns only once the layer is deleted (its waiter, without pidns).
    assert!(!layer.exists(), "{} is still there", layer.display());
    assert_eq!(
        tree(&state.join("data/overlay")),
        BTreeSet::new(),
        "no trash left"
    );
}

#[test]
fn a_failed_setup_removes_the_fresh_layer() {
    if !require(is_root(), "root") {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    // /proc cannot take a volume: the failure comes after the layer was made.
    std::fs::create_dir(dir.path().join("src")).unwrap();
    let file = dir.path().join("afile");
    std::fs::write(&file, "x").unwrap();
    let out = run(mntns(&state)
        .args(["--overlay", "/", "-v"])
        .arg(format!("{}:/dev/null/x", file.display()))
        .args(["--", "true"]));
    assert_fatal(&out, "mntns");
    assert_eq!(tree(&state.join("data/overlay")), BTreeSet::new());
    // A user's --upper DIR keeps what was there before; only what mntns made goes.
    let upper = dir.path().join("upper");
    std::fs::create_dir_all(upper.join("notes")).unwrap();
    std::fs::write(upper.join("notes/keep"), "mine").unwrap();
    let out = run(mntns(&state)
        .args(["--overlay", "/", "--upper"])
        .arg(&upper)
        .arg("-v")
        .arg(format!("{}:/dev/null/x", file.display()))
        .args(["--", "true"]));
    assert_fatal(&out, "mntns");
    assert_eq!(
        tree(&upper),
        [PathBuf::from("notes"), PathBuf::from("notes/keep")]
            .into_iter()
            .collect::<BTreeSet<_>>()
    );
}

// ---------------------------------------------------------------------------------------
// A busybox root

#[test]
fn a_busybox_root_sees_only_its_own_mounts_devices_and_no_host() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let root = busybox_root(dir.path());
    let marker = dir.path().join("host-marker");
    std::fs::write(&marker, "host").unwrap();
    let script = "cat /proc/self/mountinfo; echo ---; ls -a /dev; echo ---; \
         for n in null zero full random urandom tty; do stat -c '%n %F %t:%T' /dev/$n; done; echo ---; \
         cat \"$0\" 2>/dev/null && echo REACHED-MARKER; cat /proc/1/root\"$0\" 2>/dev/null && echo REACHED-VIA-PROC; \
         find / -xdev -name host-marker; echo ---; \
         wc -c < /proc/timer_list; wc -c < /proc/interrupts; \
         mkdir /sys/nschain-x 2>/dev/null && echo SYS-WRITABLE; \
         echo x > /proc/sys/kernel/hostname 2>/dev/null && echo PROC-SYS-WRITABLE; \
         if [ -e /proc/sysrq-trigger ]; then echo h > /proc/sysrq-trigger 2>/dev/null && echo SYSRQ-WRITABLE; fi; \
         if [ -e /proc/kcore ]; then head -c 1 /proc/kcore >/dev/null 2>&1 && echo KCORE-READABLE; fi; \
         echo end";
    // Wrapped in a UTS namespace: were /proc/sys writable, only a throwaway hostname changes.
    let mut cmd = Command::new("unshare");
    with_env(&mut cmd, &state);
    cmd.args(["--uts", "--", "mntns", "--rootfs"])
        .arg(&root)
        .args(["--", "/bin/sh", "-c", script])
        .arg(&marker);
    let out = ok_out(&run(&mut cmd), "mntns --rootfs busybox");
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 5, "{out}");

    let points = mount_points(parts[0]);
    let allowed = allowed_container_mounts();
    for point in &points {
        assert!(
            allowed.contains(point),
            "unexpected mount {point} in:\n{}",
            parts[0]
        );
    }
    for needed in [
        "/",
        "/proc",
        "/sys",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/dev/null",
        "/proc/sys",
    ] {
        assert!(
            points.iter().any(|p| p == needed),
            "{needed} not mounted:\n{}",
            parts[0]
        );
    }
    let root_line = parts[0]
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap();
    assert!(
        root_line
            .split_whitespace()
            .nth(3)
            .unwrap()
            .ends_with("/root"),
        "the root is not the rootfs: {root_line}"
    );
    let sys_line = parts[0]
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/sys"))
        .unwrap();
    assert!(
        sys_line
            .split_whitespace()
            .nth(5)
            .unwrap()
            .starts_with("ro"),
        "{sys_line}"
    );

    let dev: BTreeSet<&str> = parts[1].lines().collect();
    let expected: BTreeSet<&str> = [
        ".", "..", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr",
        "stdin", "stdout", "tty", "urandom", "zero",
    ]
    .into_iter()
    .collect();
    assert_eq!(dev, expected);
    let nodes: Vec<&str> = parts[2].lines().collect();
    assert_eq!(
        nodes,
        [
            "/dev/null character special file 1:3",
            "/dev/zero character special file 1:5",
            "/dev/full character special file 1:7",
            "/dev/random character special file 1:8",
            "/dev/urandom character special file 1:9",
            "/dev/tty character special file 5:0",
        ]
    );
    assert!(
        parts[3].trim().is_empty(),
        "the host was reachable: {}",
        parts[3]
    );
    let rest: Vec<&str> = parts[4].lines().collect();
    assert_eq!(
        rest,
        ["0", "0", "end"],
        "masked files readable or paths writable: {}",
        parts[4]
    );
    // The host sees these files with content: the zeros above come from the masks.
    assert!(!std::fs::read_to_string("/proc/interrupts")
        .unwrap()
        .is_empty());
}

#[test]
fn a_command_missing_in_the_new_root_exits_127_with_the_put_mntns_last_hint() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    // Only root can reach the root: no setuid guard, its warning or its dropped caps.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let state = state_dir(dir.path());
    let root = busybox_root(dir.path());
    let out = run(mntns(&state)
        .arg("--rootfs")
        .arg(&root)
        .args(["--", "utsns", "true"]));
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("mntns: fatal: unable to execute utsns"),
        "{err}"
    );
    assert!(
        err.contains("mntns: hint:") && err.contains("put mntns last"),
        "{err}"
    );
    // Missing everywhere: 127 without that hint.
    let out = run(mntns(&state)
        .arg("--rootfs")
        .arg(&root)
        .args(["--", "nschain-no-such-cmd"]));
    assert_eq!(out.status.code(), Some(127));
    assert!(!stderr(&out).contains("hint"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------
// Volumes, tmpfs, read-only root, working directory

#[test]
fn volumes_are_read_write_or_read_only_down_to_their_submounts() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let root = busybox_root(dir.path());
    let rw = dir.path().join("rw");
    let ro = dir.path().join("ro");
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::create_dir_all(ro.join("sub")).unwrap();
    std::fs::write(ro.join("file"), "read me").unwrap();
    let file = dir.path().join("single");
    std::fs::write(&file, "one file").unwrap();
    // The "host" gets a submount under the ro volume's source.
    let mut cmd = Command::new("unshare");
    with_env(&mut cmd, &state);
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg("mount -t tmpfs nschain-sub \"$0/ro/sub\" || exit 9; exec \"$@\"")
        .arg(dir.path())
        .arg("mntns")
        .arg("--rootfs")
        .arg(&root)
        .arg("-v")
        .arg(format!("{}:/data/rw", rw.display()))
        .arg("-v")
        .arg(format!("{}:/data/ro:ro", ro.display()))
        .arg("--volume")
        .arg(format!("{}:/etc/single:ro", file.display()))
        .args(["--", "/bin/sh", "-c"])
        .arg(
            "touch /data/rw/new || echo RW-FAILED; \
             touch /data/ro/x 2>/dev/null && echo RO-WRITABLE; \
             touch /data/ro/sub/x 2>/dev/null && echo RO-SUBMOUNT-WRITABLE; \
             echo x >> /etc/single 2>/dev/null && echo RO-FILE-WRITABLE; \
             cat /data/ro/file; echo; cat /etc/single",
        );
    let out = ok_out(&run(&mut cmd), "volumes");
    assert_eq!(out, "read me\none file");
    assert!(
        rw.join("new").exists(),
        "the rw volume did not write through to the host"
    );
    assert!(!ro.join("x").exists());
}

#[test]
fn a_rootfs_symlink_to_etc_used_as_a_target_stays_inside_the_root() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let root = busybox_root(dir.path());
    std::os::unix::fs::symlink("/etc", root.join("evil")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../etc", root.join("bin/evil2")).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "volume\n").unwrap();
    let unique = format!("nschain-mntns-test-{}", std::process::id());
    let out = run(mntns(&state)
        .arg("--rootfs")
        .arg(&root)
        .arg("-v")
        .arg(format!("{}:/evil/{unique}", src.display()))
        .arg("--tmpfs")
        .arg(format!("/bin/evil2/{unique}-tmp:size=1m"))
        .args(["--", "/bin/sh", "-c"])
        .arg(format!(
            "cat /etc/{unique}/f; touch /etc/{unique}-tmp/t && echo tmpfs-ok"
        )));
    assert_eq!(ok_out(&out, "symlink targets"), "volume\ntmpfs-ok");
    assert!(
        !Path::new("/etc").join(&unique).exists(),
        "wrote to the host's /etc"
    );
    assert!(
        !Path::new("/etc").join(format!("{unique}-tmp")).exists(),
        "wrote to the host's /etc"
    );
    assert!(
        !root.join("etc").join(&unique).exists(),
        "the mount point was made in the rootfs's source (issue 19: a skeleton holds it)"
    );
}

#[test]
fn tmpfs_read_only_root_and_workdir() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let root = busybox_root(dir.path());
    let out = run(mntns(&state)
        .arg("--rootfs")
        .arg(&root)
        .args([
            "--read-only",
            "--tmpfs",
            "/scratch:size=1m,mode=750",
            "-w",
            "/work/dir",
        ])
        .args(["--", "/bin/sh", "-c"])
        .arg(
            "pwd; touch /x 2>/dev/null && echo ROOT-WRITABLE; touch /scratch/y && echo tmpfs-ok; \
             grep ' /scratch ' /proc/self/mountinfo",
        ));
    let out = ok_out(&out, "tmpfs, --read-only, -w");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["/work/dir", "tmpfs-ok"], "{out}");
    assert!(
        lines[2].contains("size=1024k") && lines[2].contains("mode=750"),
        "{out}"
    );
    assert!(lines[2].contains("nosuid,nodev,noexec"), "{out}");
    // Made in a skeleton over the root, not in its source (issue 19).
    assert!(!root.join("work").exists());
}

// ---------------------------------------------------------------------------------------
// Propagation

#[test]
fn a_mount_made_inside_never_appears_on_the_host() {
    if !require(is_root(), "root") {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let point = dir.path().join("m");
    std::fs::create_dir(&point).unwrap();
    // The fake host's mounts are shared, as systemd makes them: the worst case.
    let check = |mntns_args: &[&str]| -> String {
        let mut cmd = Command::new("unshare");
        with_env(&mut cmd, &state);
        cmd.args(["--mount", "--propagation", "shared", "--", "sh", "-c"])
            .arg("\"$@\" || exit 9; grep -c \" $0 \" /proc/self/mountinfo; true")
            .arg(&point)
            .arg("mntns")
            .args(mntns_args)
            .args(["--", "mount", "-t", "tmpfs", "nschain-inside"])
            .arg(&point);
        ok_out(&run(&mut cmd), "propagation")
    };
    assert_eq!(check(&[]), "0", "default (private)");
    assert_eq!(check(&["--propagation", "private"]), "0");
    assert_eq!(check(&["--propagation", "slave"]), "0");
    assert_eq!(
        check(&[
            "--overlay",
            "/",
            "--rm",
            "--cap-add",
            "SYS_ADMIN",
            "--propagation",
            "shared"
        ]),
        "0",
        "container mode"
    );
    // The same check sees a mount that does propagate.
    assert_eq!(check(&["--propagation", "shared"]), "1");
}

// ---------------------------------------------------------------------------------------
// The entry: capabilities, user, file descriptors

fn status_caps(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.split_once(":\t"))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn container_capabilities_are_podmans_default_set_or_what_is_asked() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    // Only root can reach the root: no setuid guard, its warning or its dropped caps.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let state = state_dir(dir.path());
    let root = busybox_root(dir.path());
    let caps = |args: &[&str]| {
        let out = run(mntns(&state).arg("--rootfs").arg(&root).args(args).args([
            "--",
            "/bin/sh",
            "-c",
            "grep ^Cap /proc/self/status; id -u; id -g",
        ]));
        // None of these opens a way to the host: no warning.
        assert_eq!(stderr(&out), "", "{args:?}");
        ok_out(&out, "caps")
    };
    let default = caps(&[]);
    let map = status_caps(&default);
    for (key, want) in [
        ("CapEff", DEFAULT_CAPS),
        ("CapPrm", DEFAULT_CAPS),
        ("CapBnd", DEFAULT_CAPS),
        ("CapInh", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
    ] {
        assert!(
            map.contains(&(key.to_owned(), want.to_owned())),
            "{key}: {default}"
        );
    }
    let none = caps(&["--cap-drop", "ALL"]);
    for key in ["CapEff", "CapPrm", "CapBnd"] {
        assert!(
            status_caps(&none).contains(&(key.to_owned(), "0000000000000000".to_owned())),
            "{none}"
        );
    }
    // NET_RAW (bit 13), MKNOD (27) and AUDIT_WRITE (29) come back on request, silently.
    let back = caps(&[
        "--cap-add",
        "NET_RAW",
        "--cap-add",
        "mknod",
        "--cap-add",
        "CAP_AUDIT_WRITE",
    ]);
    assert!(
        status_caps(&back).contains(&("CapEff".into(), "00000000a80425fb".into())),
        "{back}"
    );
    let more = caps(&["--cap-add", "net_raw", "--cap-drop", "CAP_CHOWN"]);
    // + NET_RAW (bit 13), - CHOWN (bit 0).
    assert!(
        status_caps(&more).contains(&("CapEff".into(), "00000000800425fa".into())),
        "{more}"
    );
    let user = caps(&["--user", "1000:1000", "--no-new-privs"]);
    let ids: Vec<&str> = user.lines().rev().take(2).collect();
    assert_eq!(ids, ["1000", "1000"], "{user}");
    assert!(
        status_caps(&user).contains(&("CapEff".into(), "0000000000000000".into())),
        "{user}"
    );
}

#[test]
fn adding_a_capability_that_opens_the_host_warns_in_one_line() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    // Only root can reach the root: no setuid guard and its warning line.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let state = state_dir(dir.path());
    let root = busybox_root(dir.path());
    for (flag, name, opens) in [
        ("SYS_ADMIN", "SYS_ADMIN", "mount"),
        ("cap_sys_ptrace", "SYS_PTRACE", "trace"),
        ("SYS_MODULE", "SYS_MODULE", "kernel"),
        ("sys_rawio", "SYS_RAWIO", "I/O ports"),
        ("NET_ADMIN", "NET_ADMIN", "routes"),
        ("ALL", "ALL", "every capability"),
    ] {
        let out = run(mntns(&state).arg("--rootfs").arg(&root).args([
            "--cap-add",
            flag,
            "--cap-add",
            flag,
            "--",
            "true",
        ]));
        ok_out(&out, flag);
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{flag}: one line: {err}");
        assert!(
            lines[0].starts_with(&format!("mntns: warning: --cap-add {name} "))
                && lines[0].contains(opens),
            "{flag}: {err}"
        );
    }
    // Without a new root the set starts from the caller's: nothing to warn about.
    let out = run(mntns(&state).args(["--cap-add", "SYS_ADMIN", "--", "true"]));
    ok_out(&out, "no root");
    assert_eq!(stderr(&out), "");
}

#[test]
fn an_fd_on_a_host_directory_is_not_reachable_inside() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let root = busybox_root(dir.path());
    let host_dir = dir.path().join("hostdir");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("secret"), "host").unwrap();
    let inside = |extra: &[&str], script: &str| {
        let mut cmd = Command::new("sh");
        with_env(&mut cmd, &state);
        cmd.arg("-c")
            .arg("exec 7<\"$0\"; shift; exec \"$@\"")
            .arg(&host_dir)
            .arg("-")
            .arg("mntns")
            .arg("--rootfs")
            .arg(&root)
            .args(extra)
            .args(["--", "/bin/sh", "-c", script]);
        ok_out(&run(&mut cmd), "fd test")
    };
    let script = "if [ -e /proc/self/fd/7 ]; then ls /proc/self/fd/7/; else echo closed; fi";
    assert_eq!(inside(&[], script), "closed");
    // Kept on request, it is there (so the check above can fail) ...
    assert_eq!(inside(&["--preserve-fds", "5"], script), "secret");
    // Socket activation: LISTEN_FDS keeps 3.., and LISTEN_PID names COMMAND.
    let mut cmd = Command::new("sh");
    with_env(&mut cmd, &state);
    cmd.arg("-c")
        .arg("exec 3<\"$0\"/secret; shift; exec \"$@\"")
        .arg(&host_dir)
        .arg("-")
        .arg("mntns")
        .arg("--rootfs")
        .arg(&root)
        .args([
            "--",
            "/bin/sh",
            "-c",
            "cat <&3; echo; [ \"$LISTEN_PID\" = $$ ] && echo pid-ok",
        ])
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1");
    assert_eq!(ok_out(&run(&mut cmd), "LISTEN_FDS"), "host\npid-ok");
    // ... but a working directory named through it still stays inside the root.
    // (Or it is refused: the path leads to a directory missing in the rootfs's top
    // directory, which is never written.)
    let mut cmd = Command::new("sh");
    with_env(&mut cmd, &state);
    cmd.arg("-c")
        .arg("exec 7<\"$0\"; shift; exec \"$@\"")
        .arg(&host_dir)
        .arg("-")
        .arg("mntns")
        .arg("--rootfs")
        .arg(&root)
        .args(["--preserve-fds", "5", "-w", "/proc/self/fd/7"])
        .args(["--", "/bin/sh", "-c", "ls; pwd"]);
    let out = run(&mut cmd);
    assert!(!stdout(&out).contains("secret"), "{}", stdout(&out));
    assert!(
        out.status.success() || stderr(&out).contains("never written"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------------------
// Rootless and chains

/// The rootless user-namespace link: our `userns` when it is built, else util-linux unshare.
fn rootless_prefix() -> Vec<String> {
    if bin_dir().join("userns").exists() {
        vec!["userns".into(), "--".into()]
    } else {
        eprintln!("mntns tests: userns is not built, using unshare --user --map-root-user");
        vec![
            "unshare".into(),
            "--user".into(),
            "--map-root-user".into(),
            "--".into(),
        ]
    }
}

/// The pid-namespace link: our `pidns` when built, else `unshare --pid --fork`.
fn pidns_prefix() -> Vec<String> {
    if bin_dir().join("pidns").exists() {
        vec!["pidns".into(), "--".into()]
    } else {
        eprintln!("mntns tests: pidns is not built, using unshare --pid --fork");
        vec![
            "unshare".into(),
            "--pid".into(),
            "--fork".into(),
            "--".into(),
        ]
    }
}

#[test]
fn rootless_rootfs_and_overlay_have_proc_and_dev() {
    if !require(
        rootless_userns_works(),
        "unprivileged user namespaces (uid 65534)",
    ) || !have_busybox()
    {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let root = busybox_root(dir.path());
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = "ls /proc | grep -c '^[0-9]'; ls /dev | wc -l; head -c 4 /dev/urandom | wc -c; \
                  echo ok > /dev/null && echo devnull-ok; touch /new && echo written; \
                  grep ^CapEff /proc/self/status";
    for (mode, arg) in [("--rootfs", root.clone()), ("--overlay", root.clone())] {
        let mut chain: Vec<String> = rootless_prefix();
        chain.extend(pidns_prefix());
        let mut cmd = Command::new(&chain[0]);
        with_env(&mut cmd, &state);
        cmd.args(&chain[1..])
            .arg("mntns")
            .arg(mode)
            .arg(&arg)
            .args([
                "--name",
                &format!("rl{}{}", std::process::id(), &mode[2..4]),
            ])
            .args(["--", "/bin/sh", "-c", script]);
        let out = ok_out(&run(&mut as_nobody(&cmd)), mode);
        let lines: Vec<&str> = out.lines().collect();
        let procs: u32 = lines[0].parse().unwrap();
        assert!(
            procs <= 5,
            "{mode}: only the container's processes in /proc: {out}"
        );
        assert_eq!(lines[1], "14", "{mode}: /dev: {out}");
        assert_eq!(lines[2..5], ["4", "devnull-ok", "written"], "{mode}: {out}");
        assert_eq!(lines[5], format!("CapEff:\t{DEFAULT_CAPS}"), "{mode}");
    }
    // The overlay's write landed in the layer, owned by the unprivileged user on the host.
    let layer = state
        .join("data/overlay")
        .join(format!("rl{}ov", std::process::id()));
    let written = layer.join("diff/new");
    assert_eq!(
        std::fs::metadata(&written).unwrap().uid(),
        65534,
        "{}",
        written.display()
    );
    assert!(!root.join("new").exists() || root.join("new").metadata().unwrap().uid() == 65534);
}

#[test]
fn pidns_then_mntns_proc_shows_only_the_containers_processes() {
    if !require(is_root(), "root") {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let pids = |with_proc: bool| -> Vec<u32> {
        let chain = pidns_prefix();
        let mut cmd = Command::new(&chain[0]);
        with_env(&mut cmd, &state);
        cmd.args(&chain[1..]).arg("mntns");
        if with_proc {
            cmd.arg("--proc");
        }
        cmd.args(["--", "ps", "-e", "-o", "pid="]);
        ok_out(&run(&mut cmd), "pidns -- mntns --proc -- ps")
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect()
    };
    let inside = pids(true);
    assert!(
        !inside.is_empty() && inside.iter().all(|p| *p <= 2),
        "{inside:?}"
    );
    // Without --proc, ps reads the host's /proc: the check above can fail.
    assert!(pids(false).len() > 2);
}

#[test]
fn join_enters_a_running_containers_root_and_working_directory() {
    if !require(is_root(), "root") {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let name = format!("join{}", std::process::id());
    let mut container = mntns(&state)
        .args(["--overlay", "/", "--rm", "--name", &name, "--", "sh", "-c"])
        .arg("mkdir -p /opt/jdir && cd /opt/jdir && echo joined > here && exec sleep 30")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let here = state
        .join("data/overlay")
        .join(&name)
        .join("diff/opt/jdir/here");
    wait_for("the container's file", Duration::from_secs(30), || {
        here.exists()
    });
    std::thread::sleep(Duration::from_millis(100));
    let out = run(mntns(&state).args([
        "--join",
        &name,
        "--",
        "sh",
        "-c",
        "pwd; cat here; test -e /opt/test1 || echo own-root",
    ]));
    container.kill().unwrap();
    container.wait().unwrap();
    assert_eq!(ok_out(&out, "mntns --join"), "/opt/jdir\njoined\nown-root");
}

// ---------------------------------------------------------------------------------------
// Bad input

#[test]
fn bad_input_is_125_and_leaves_the_mount_table_and_data_dir_untouched() {
    if !require(is_root(), "root") {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let good = dir.path().to_str().unwrap().to_owned();
    let missing = format!("{good}/missing");
    let file = file.to_str().unwrap().to_owned();
    let cases: Vec<Vec<String>> = vec![
        vec!["--rootfs".into(), missing.clone()],
        vec!["--rootfs".into(), file.clone()],
        vec!["--overlay".into(), missing.clone()],
        vec!["--overlay".into(), format!("/:{file}")],
        vec![
            "--overlay".into(),
            "/".into(),
            "-v".into(),
            format!("{missing}:/x"),
        ],
        vec!["-v".into(), format!("{good}:relative/target")],
        vec!["-v".into(), format!("{good}:/x:rx")],
        vec!["-v".into(), format!("{good}")],
        vec![
            "--overlay".into(),
            "/".into(),
            "--tmpfs".into(),
            "/t:size=lots".into(),
        ],
        vec!["--tmpfs".into(), "/t:size=0".into()],
        vec!["--tmpfs".into(), "t".into()],
        vec!["--tmpfs".into(), "/t:mode=999".into()],
        vec![
            "--overlay".into(),
            "/".into(),
            "--cap-add".into(),
            "CAP_NO_SUCH".into(),
        ],
        vec!["--cap-drop".into(), "bogus".into()],
        vec!["--propagation".into(), "rshared".into()],
        vec!["--user".into(), "no-such-user-i19".into()],
        vec!["--preserve-fds".into(), "-1".into()],
        vec!["-w".into(), "relative".into()],
        vec!["--rm".into()],
        vec!["--join".into(), "no-such-chain".into()],
        vec![
            "--overlay".into(),
            "/".into(),
            "--upper".into(),
            "rel".into(),
        ],
        vec!["--pin".into(), format!("{missing}/pin")],
        vec![
            "--overlay".into(),
            "/".into(),
            "--name".into(),
            "bad name".into(),
        ],
        vec!["--info-fd".into(), "99".into()],
    ];
    // A data directory with a kept layer and a stale --rm one: bad input touches neither.
    let kept = state.join("data/overlay/kept/diff");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(kept.join("file"), "kept").unwrap();
    let stale = state.join("data/overlay/stale");
    std::fs::create_dir_all(stale.join("diff")).unwrap();
    std::fs::write(stale.join(".rm"), "").unwrap();
    let data_before = tree(&state.join("data"));
    for case in cases {
        let mut args = vec!["mntns"];
        args.extend(case.iter().map(String::as_str));
        args.extend(["--", "true"]);
        let (out, before, after) = in_fake_host(&state, dir.path(), &args);
        assert_fatal(&out, "mntns");
        assert_eq!(before, after, "{case:?} changed the mount table");
        assert_eq!(
            tree(&state.join("data")),
            data_before,
            "{case:?} changed the data dir"
        );
    }
    // A chain name inherited from an earlier link becomes a layer's path: checked too.
    let mut cmd = mntns(&state);
    cmd.env("NSCHAIN_NAME", "../../escape")
        .args(["--overlay", "/", "--", "true"]);
    assert_fatal(&run(&mut cmd), "mntns");
    assert_eq!(tree(&state.join("data")), data_before);
    assert!(!state.join("escape").exists());
}

#[test]
fn an_image_dev_symlink_is_refused_not_followed() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let root = busybox_root(dir.path());
    std::fs::remove_dir(root.join("dev")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("dev")).unwrap();
    let out = run(mntns(&state)
        .arg("--rootfs")
        .arg(&root)
        .args(["--", "/bin/true"]));
    assert_fatal(&out, "mntns");
    assert!(stderr(&out).contains("/dev"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_dir(root.join("etc")).unwrap().count(),
        3,
        "something was made in the symlink's target"
    );
}

#[test]
fn etc_files_come_from_the_chains_own_namespaces() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let root = busybox_root(dir.path());
    // In a network namespace of its own with only a loopback, the hostname maps to
    // 127.0.1.1; the resolver configuration is the host's.
    let mut cmd = Command::new("unshare");
    with_env(&mut cmd, &state);
    cmd.args(["--net", "--", "utsns", "--hostname", "web1", "--", "mntns", "--rootfs"])
        .arg(&root)
        .args([
            "--",
            "/bin/sh",
            "-c",
            "cat /etc/hostname; grep web1 /etc/hosts; grep -c localhost /etc/hosts; cat /etc/resolv.conf",
        ]);
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    assert_eq!(
        ok_out(&run(&mut cmd), "etc files"),
        format!("web1\n127.0.1.1\tweb1\n2\n{host_resolv}").trim_end()
    );
    // The image itself is untouched: the files are bind mounts.
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
        ""
    );
    let out = run(mntns(&state).arg("--rootfs").arg(&root).args([
        "--no-etc",
        "--",
        "/bin/sh",
        "-c",
        "wc -c < /etc/hostname",
    ]));
    assert_eq!(ok_out(&out, "--no-etc"), "0");
}

#[test]
fn stale_rm_layers_are_collected_by_the_next_run() {
    if !require(is_root(), "root") {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    // Inside a pid namespace the cleaner dies with it when the init exits: what it could not
    // finish is left as trash or an unlocked --rm layer ...
    let chain = pidns_prefix();
    for _ in 0..2 {
        let mut cmd = Command::new(&chain[0]);
        with_env(&mut cmd, &state);
        cmd.args(&chain[1..]).args([
            "mntns",
            "--overlay",
            "/",
            "--rm",
            "--",
            "sh",
            "-c",
            "echo x > /opt/test1",
        ]);
        ok_out(&run(&mut cmd), "pidns -- mntns --rm");
    }
    // ... that the next run deletes.
    ok_out(
        &run(mntns(&state).args(["--overlay", "/", "--rm", "--", "true"])),
        "mntns --rm",
    );
    assert_eq!(tree(&state.join("data/overlay")), BTreeSet::new());
}

#[test]
fn without_a_new_root_mount_points_are_not_created_on_the_host() {
    if !require(is_root(), "root") {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let target = dir.path().join("no-such-dir");
    let (out, before, after) = in_fake_host(
        &state,
        dir.path(),
        &["mntns", "--tmpfs", target.to_str().unwrap(), "--", "true"],
    );
    assert_fatal(&out, "mntns");
    assert_eq!(before, after);
    assert!(!target.exists(), "a mount point was created on the host");
    // An existing target works, and the tmpfs is private to the namespace.
    std::fs::create_dir(&target).unwrap();
    let out = run(mntns(&state)
        .arg("--tmpfs")
        .arg(format!("{}:size=1m", target.display()))
        .args(["--", "sh", "-c", "touch \"$0/x\" && echo ok"])
        .arg(&target));
    assert_eq!(ok_out(&out, "--tmpfs on the host tree"), "ok");
    assert!(!target.join("x").exists());
}

#[test]
fn rootless_overlay_of_the_host_root_is_split_per_directory() {
    if !require(
        rootless_userns_works(),
        "unprivileged user namespaces (uid 65534)",
    ) {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let name = format!("rlhost{}", std::process::id());
    let layers = state.join("data/overlay");
    let mut chain: Vec<String> = rootless_prefix();
    chain.extend(pidns_prefix());
    let mut cmd = Command::new(&chain[0]);
    with_env(&mut cmd, &state);
    cmd.args(&chain[1..])
        .args(["mntns", "--overlay", "/", "--name", &name, "--", "sh", "-c"])
        .arg(
            "echo rootless > /opt/test1 && cat /opt/test1; echo top > /nschain-top; \
             ls /dev | wc -l; ls /proc | grep -c '^[0-9]'; ls -A \"$0\" | wc -l",
        )
        .arg(&layers);
    let out = ok_out(&run(&mut as_nobody(&cmd)), "rootless --overlay /");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["rootless", "14", lines[2]], "{out}");
    assert!(
        lines[2].parse::<u32>().unwrap() <= 5,
        "only the container's processes: {out}"
    );
    assert_eq!(lines[3], "0", "the layers are hidden inside: {out}");
    let diff = layers.join(&name).join("diff");
    let written = diff.join("opt/test1");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), "rootless\n");
    assert_eq!(std::fs::metadata(&written).unwrap().uid(), 65534);
    assert!(
        diff.join("nschain-top").exists(),
        "a top-level write lands in diff too"
    );
    assert!(!Path::new("/opt/test1").exists() && !Path::new("/nschain-top").exists());
}

#[test]
fn overlay_lowers_stack_first_on_top_and_upper_chooses_the_layer() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let bottom = busybox_root(dir.path());
    std::fs::write(bottom.join("f"), "bottom\n").unwrap();
    std::fs::write(bottom.join("g"), "only bottom\n").unwrap();
    let top = dir.path().join("top");
    std::fs::create_dir(&top).unwrap();
    std::fs::write(top.join("f"), "top\n").unwrap();
    let upper = dir.path().join("layer");
    let out = run(mntns(&state)
        .arg("--overlay")
        .arg(format!("{}:{}", top.display(), bottom.display()))
        .arg("--upper")
        .arg(&upper)
        .args(["--", "/bin/sh", "-c", "cat /f /g; echo new > /h; rm /g"]));
    assert_eq!(ok_out(&out, "two lowers"), "top\nonly bottom");
    assert_eq!(
        std::fs::read_to_string(upper.join("diff/h")).unwrap(),
        "new\n"
    );
    // The lowers are never written: the deletion is a whiteout in the layer.
    assert!(bottom.join("g").exists() && !top.join("h").exists() && !bottom.join("h").exists());
    let whiteout = std::fs::symlink_metadata(upper.join("diff/g")).unwrap();
    assert_eq!(whiteout.rdev(), 0, "a whiteout is a 0:0 character device");
    assert!(
        !state.join("data").exists(),
        "--upper keeps the layer out of the data dir"
    );
}

#[test]
fn a_pinned_container_mount_namespace_can_be_joined_by_path() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let root = busybox_root(dir.path());
    let pin = dir.path().join("mnt.pin");
    let out = run(mntns(&state)
        .arg("--pin")
        .arg(&pin)
        .arg("--rootfs")
        .arg(&root)
        .args(["--", "/bin/sh", "-c", "echo pinned > /etc/hostname"]));
    ok_out(&out, "mntns --pin");
    let joined = run(mntns(&state).arg("--join").arg(&pin).args([
        "--",
        "/bin/sh",
        "-c",
        "cat /etc/hostname; pwd; ls /",
    ]));
    let unpinned = Command::new("umount").arg(&pin).status().unwrap();
    assert!(unpinned.success());
    let joined = ok_out(&joined, "mntns --join PIN");
    // The container's own /etc/hostname (a bind mount that lives with the namespace).
    assert!(joined.starts_with("pinned\n/\nbin\n"), "{joined}");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
        ""
    );
}

#[test]
fn the_canonical_rootful_chain_runs_on_an_overlay_of_the_host() {
    if !require(is_root(), "root") {
        return;
    }
    for link in ["userns", "ipcns", "utsns", "pidns"] {
        if !require(bin_dir().join(link).exists(), &format!("{link} built")) {
            return;
        }
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let info = dir.path().join("info");
    let mut cmd = Command::new("sh");
    with_env(&mut cmd, &state);
    cmd.arg("-c")
        .arg(
            "exec userns --map-auto -- ipcns -- utsns --hostname web1 -- pidns -- \
             mntns --overlay / --info-fd 3 -- \
             sh -c 'echo hi > /opt/test1; hostname; cat /etc/hostname; id -u' 3>\"$0\"",
        )
        .arg(&info);
    assert_eq!(ok_out(&run(&mut cmd), "canonical chain"), "web1\nweb1\n0");
    let line: Value = serde_json::from_str(&std::fs::read_to_string(&info).unwrap()).unwrap();
    let written = Path::new(line["layer"].as_str().unwrap()).join("diff/opt/test1");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), "hi\n");
    let owner = std::fs::metadata(&written).unwrap().uid();
    assert!(
        owner >= 65536,
        "root inside is an unprivileged uid outside, got {owner}"
    );
    assert!(!Path::new("/opt/test1").exists());
}
