//! Idmapped layers: `userns --map-auto --idmap PATH` hands down an idmapped clone of PATH,
//! and `mntns` uses it where it uses PATH (`--overlay`, `--rootfs`, `--volume`), so that the
//! most secure rootful chain runs real programs: root inside is an unprivileged host range,
//! yet it owns the host's root-owned files as it sees them, and what it writes lands in its
//! own layer, owned by its range.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nschain_tests::audit;
use nschain_tests::*;

fn need_root() -> bool {
    nschain_tests::need::root()
}

fn need_links() -> bool {
    [
        "userns", "ipcns", "utsns", "pidns", "mntns", "nsps", "netns",
    ]
    .iter()
    .all(|link| require(bin_dir().join(link).exists(), &format!("{link} built")))
}

/// A state directory the range's root can traverse (its layers live below it).
fn state_dir(scratch: &Path) -> PathBuf {
    let state = scratch.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    state
}

fn sh(state: &Path, script: &str) -> Command {
    let mut cmd = Command::new("sh");
    with_env(&mut cmd, state);
    cmd.arg("-c").arg(script);
    cmd
}

/// Every entry of a directory with its mtime (what "untouched" means for the host's /opt).
fn listing(dir: &Path) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().mtime(),
            )
        })
        .collect();
    out.push((".".into(), std::fs::metadata(dir).unwrap().mtime()));
    out.sort();
    out
}

/// The first host uid of the range a `uid_map` line maps inner 0 to.
fn range_of(uid_map_line: &str) -> u32 {
    let fields: Vec<&str> = uid_map_line.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"0"), "uid_map: {uid_map_line}");
    fields[1].parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// The seed's fifth question, for real programs

#[test]
fn root_inside_creates_opt_test1_over_an_idmapped_host_root() {
    if !need_root() || !need_links() {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let info = dir.path().join("info");
    let opt_before = listing(Path::new("/opt"));
    let name = format!("idm-opt-{}", std::process::id());
    let before = audit::snapshot(&state, None);
    // The chain runs until its stdin closes, so that the host can look at it meanwhile.
    let mut cmd = sh(
        &state,
        &format!(
            "exec userns --map-auto --idmap / --name {name} -- ipcns -- utsns --hostname web1 -- \
             pidns -- mntns --overlay / --info-fd 3 -- sh -c '\
             echo hi > /opt/test1 && echo created; \
             stat -c \"%u:%g %n\" / /opt /opt/test1 /etc/passwd; \
             echo \"map $(head -1 /proc/self/uid_map)\"; \
             echo \"idmap=${{NSCHAIN_IDMAP-unset}}\"; \
             ls /proc/self/fd | tr \"\\n\" \" \"; echo; \
             echo ready; read x' 3>\"$0\"",
        ),
    );
    cmd.arg(&info)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "ready" {
            break;
        }
        out.push(line);
    }
    // While it runs, nsps shows the chain's layer (recorded by mntns).
    let shown = ok(tool("nsps", &state).arg(&name));
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "chain failed: {status} {out:?} {err}");
    let out = out.join("\n");

    assert!(
        out.contains("created"),
        "root inside could not create /opt/test1: {out} {err}"
    );
    // Host root's files read as root inside; so does the new file.
    for path in ["/", "/opt", "/opt/test1", "/etc/passwd"] {
        assert!(
            out.contains(&format!("0:0 {path}\n")),
            "{path} is not root's inside: {out}"
        );
    }
    assert!(
        out.contains("idmap=unset"),
        "NSCHAIN_IDMAP reached COMMAND: {out}"
    );
    let fds = out
        .lines()
        .find(|l| l.starts_with("0 1 2"))
        .unwrap_or_else(|| panic!("no fd list: {out}"));
    assert_eq!(
        fds.split_whitespace().count(),
        4,
        "COMMAND (ls) holds more than 0-2 and its own directory fd: {fds}"
    );

    // On the host: the file is in the container's diff dir, owned by its range.
    let range = range_of(
        out.lines()
            .find_map(|l| l.strip_prefix("map "))
            .unwrap_or_else(|| panic!("no uid map: {out}")),
    );
    assert!(range >= 65536, "root inside is host uid {range}");
    let record: Value = serde_json::from_str(&std::fs::read_to_string(&info).unwrap()).unwrap();
    let layer = PathBuf::from(record["layer"].as_str().unwrap());
    assert_eq!(
        layer,
        state
            .join("data")
            .join(format!("userns-{range}"))
            .join("overlay")
            .join(&name),
        "the layer lives in the range's data directory"
    );
    assert_eq!(record["idmap"], serde_json::json!(["/"]));
    let written = layer.join("diff/opt/test1");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), "hi\n");
    let meta = std::fs::metadata(&written).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (range, range),
        "the new file belongs to the container's range"
    );
    let data_dir = std::fs::metadata(state.join("data").join(format!("userns-{range}"))).unwrap();
    assert_eq!((data_dir.uid(), data_dir.mode() & 0o7777), (range, 0o700));
    assert!(
        shown.contains(&format!("layer:       {}", layer.display())),
        "nsps does not show the layer: {shown}"
    );
    // The host's /opt is untouched.
    assert!(!Path::new("/opt/test1").exists());
    assert_eq!(
        listing(Path::new("/opt")),
        opt_before,
        "the host's /opt changed"
    );
    // Kept: the named layer; and the lease, which the audit counts as live while any process
    // of the machine runs in its range (tests running in parallel take the same range from
    // their own run directories).
    audit::assert_nothing_left(
        &before,
        &state,
        None,
        &[&state.join("data"), &state.join("run/userns")],
    );
}

#[test]
fn without_a_consumer_the_tree_passes_through_pidns_to_the_payload() {
    if !need_root() || !need_links() {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    // What the next link receives: a shell named like a link (COMMAND itself receives
    // neither the variable nor the fds, issue 19; see mntns_user.rs).
    let links = dir.path().join("links");
    std::fs::create_dir(&links).unwrap();
    std::os::unix::fs::symlink("/bin/sh", links.join("mntns")).unwrap();
    let out = ok_out(
        &run(&mut sh(
            &state,
            &format!("exec userns --map-auto --idmap / --idmap /tmp -- ipcns -- utsns -- pidns -- {links}/mntns -c '\
             printf \"%s\\n\" \"$NSCHAIN_IDMAP\"; \
             printf \"%s\\n\" \"$NSCHAIN_IDMAP\" | while read fd path; do \
               echo \"fd $fd $(stat -L -c %d:%i /proc/self/fd/$fd) $(stat -c %d:%i $path) $path\"; done'",
                links = links.display()
            ),
        )),
        "chain without mntns",
    );
    let fds: Vec<&str> = out.lines().filter(|l| l.starts_with("fd ")).collect();
    assert_eq!(fds.len(), 2, "{out}");
    // The chain has no consumer: userns says so.
    let out_err = run(&mut sh(
        &state,
        "exec userns --map-auto --idmap / -- pidns -- true",
    ));
    assert!(
        stderr(&out_err).contains("userns: warning: no mntns follows in this chain"),
        "{}",
        stderr(&out_err)
    );
    let quiet = run(&mut sh(
        &state,
        "exec userns --map-auto --idmap / -- pidns -- mntns --overlay / --rm -- true",
    ));
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert!(!stderr(&quiet).contains("warning"), "{}", stderr(&quiet));
    for (line, path) in fds.iter().zip(["/", "/tmp"]) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(words[1].parse::<u32>().unwrap() > 2, "{line}");
        assert_eq!(
            words[2], words[3],
            "the fd is not the tree of {path}: {line}"
        );
        assert_eq!(words[4], path, "{line}");
    }
}

#[test]
fn the_nginx_scenario_runs_under_map_auto_with_idmapped_host_root() {
    if !need_root()
        || !need_links()
        || !require(have("nginx"), "nginx (nginx-light)")
        || !require(have("curl"), "curl")
        || !require(have("nft"), "nft (nftables)")
    {
        return;
    }
    let www = Command::new("id")
        .args(["-u", "www-data"])
        .output()
        .unwrap();
    let www_uid: u32 = stdout(&www).trim().parse().unwrap();
    let dir = scratch();
    let state = state_dir(dir.path());
    // The "host" is a throwaway network + mount + pid namespace (as in tests/netns.rs).
    // netns makes the network namespace before userns, so it belongs to the host's user
    // namespace and root inside may bind port 80 there only because netns lowers
    // ip_unprivileged_port_start in it (as Docker does in every container). No wrapper
    // between the links: a program that is not a link gets none of the chain's variables
    // (issue 19), so the chain's name would not reach mntns.
    let script = format!(
        r#"
        set -u
        mount -t tmpfs tmpfs /run
        ip link set lo up
        d={dir}
        wait_for() {{ for _ in $(seq 100); do if "$@" >/dev/null 2>&1; then return 0; fi; sleep 0.1; done; return 1; }}
        for i in 1 2 3; do
            netns --bridge -p $((79 + i)):80 --name idmweb$i -- \
              userns --map-auto --idmap / -- ipcns -- utsns --hostname web$i -- pidns -- \
              mntns --overlay / -- \
              sh -c "echo 'page of web$i' > /var/www/html/index.html; exec nginx -g 'daemon off;'" \
              2>$d/err$i &
        done
        for port in 80 81 82; do wait_for curl -sf 127.0.0.1:$port || {{ cat $d/err*; exit 1; }}; done
        for port in 80 81 82; do echo "port $port: $(curl -s 127.0.0.1:$port)"; done
        for pid in $(pgrep -x nginx); do
            echo "nginx $(stat -c %u /proc/$pid) $(head -1 /proc/$pid/uid_map | awk '{{print $2}}') $(tr '\0' ' ' < /proc/$pid/cmdline)"
        done
        for f in $NSCHAIN_DATA_DIR/userns-*/overlay/idmweb*/diff/var/log/nginx/access.log \
                 $NSCHAIN_DATA_DIR/userns-*/overlay/idmweb*/diff/run/nginx.pid; do
            echo "file $(stat -c '%u %s' $f) $f"
        done
        kill $(jobs -p); wait
        echo stopped
        "#,
        dir = dir.path().display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--net",
        "--mount",
        "--pid",
        "--fork",
        "--mount-proc",
        "--propagation",
        "private",
        "timeout",
        "60",
        "bash",
        "-c",
        &script,
    ]);
    with_env(&mut cmd, &state);
    let out = ok_out(&run(&mut cmd), "nginx scenario");
    for (port, i) in [(80, 1), (81, 2), (82, 3)] {
        assert!(
            out.contains(&format!("port {port}: page of web{i}")),
            "{out}"
        );
    }
    // (host uid, range) of each nginx process: masters are the range's root, workers its
    // www-data, and the three containers have three distinct ranges.
    let procs: Vec<(u32, u32, String)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("nginx "))
        .map(|l| {
            let mut w = l.splitn(3, ' ');
            (
                w.next().unwrap().parse().unwrap(),
                w.next().unwrap().parse().unwrap(),
                w.next().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut ranges: Vec<u32> = procs.iter().map(|p| p.1).collect();
    ranges.sort();
    ranges.dedup();
    assert_eq!(ranges.len(), 3, "not three distinct ranges: {out}");
    for range in &ranges {
        assert!(*range >= 65536, "{out}");
        let of: Vec<&(u32, u32, String)> = procs.iter().filter(|p| p.1 == *range).collect();
        assert!(
            of.iter().any(|p| p.0 == *range && p.2.contains("master")),
            "no master as root inside in range {range}: {out}"
        );
        assert!(
            of.iter()
                .any(|p| p.0 == range + www_uid && p.2.contains("worker")),
            "no worker as www-data ({www_uid}) inside in range {range}: {out}"
        );
        // nginx wrote its log and pid file; they landed in the layer, owned by the range.
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("file {} ", range + www_uid))
                    && l.contains(&format!("userns-{range}/"))
                    && l.ends_with("access.log")
                    && !l.contains(" 0 ")),
            "no access log written by www-data in range {range}: {out}"
        );
        assert!(
            out.lines().any(|l| l.starts_with(&format!("file {range} "))
                && l.contains(&format!("userns-{range}/"))
                && l.ends_with("run/nginx.pid")),
            "no /run/nginx.pid in range {range}: {out}"
        );
    }
    assert!(out.contains("stopped"), "{out}");
}

// ---------------------------------------------------------------------------------------
// What is idmapped and what is not

#[test]
fn a_plain_volume_of_a_root_only_directory_stays_unreadable_but_an_idmapped_one_is_root_s() {
    if !need_root() || !need_links() {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let secret = dir.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::write(secret.join("file"), "host only\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(secret.join("file"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let s = secret.display();
    // A plain volume: the host's owner (root) is unmapped inside, so root inside is nobody
    // to it, even with --idmap / (the volume is not that tree).
    let out = run(&mut sh(
        &state,
        &format!(
            "exec userns --map-auto --idmap / -- mntns --overlay / --rm -v {s}:/secret:ro -- \
             sh -c 'stat -c \"%u %n\" /secret; cat /secret/file && echo READ'"
        ),
    ));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("65534 /secret"), "{text}");
    assert!(
        !text.contains("READ"),
        "root inside read a host-only file: {text}"
    );
    assert!(text.contains("Permission denied"), "{text}");
    // The same directory idmapped: its root-owned files are root's inside (read-only here).
    let out = ok_out(
        &run(&mut sh(
            &state,
            &format!(
                "exec userns --map-auto --idmap {s} -- mntns --overlay / --rm -v {s}:/secret:ro -- \
                 sh -c 'stat -c \"%u %n\" /secret; cat /secret/file; touch /secret/x 2>&1 || echo RO'"
            ),
        )),
        "idmapped volume",
    );
    assert!(out.contains("0 /secret"), "{out}");
    assert!(out.contains("host only"), "{out}");
    assert!(
        out.contains("Read-only file system") && out.contains("RO"),
        "{out}"
    );
    assert!(!secret.join("x").exists());
}

#[test]
fn an_idmapped_rootfs_is_root_s_inside_and_its_writes_keep_host_ownership() {
    if !need_root()
        || !need_links()
        || !require(
            Path::new("/bin/busybox").exists(),
            "/bin/busybox (busybox-static)",
        )
    {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    for d in ["etc", "proc", "sys", "dev", "srv"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in ["hostname", "hosts", "resolv.conf"] {
        std::fs::write(root.join("etc").join(f), "").unwrap();
    }
    copy_exe(
        std::path::Path::new("/bin/busybox"),
        &root.join("bin/busybox"),
    );
    for applet in ["sh", "stat", "touch", "echo", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let r = root.display();
    let script = "stat -c '%u %n' / /srv; touch /srv/made && echo made";
    // Without the tree: the image is host root's, unmapped inside.
    let out = run(&mut sh(
        &state,
        &format!("exec userns --map-auto -- mntns --rootfs {r} -- /bin/sh -c \"{script}\""),
    ));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("65534 /srv"), "{text}");
    assert!(!text.contains("made\n"), "{text}");
    // With it: root inside owns the image, and what it writes is host root's (the image is
    // written through the idmap, not copied).
    let out = ok_out(
        &run(&mut sh(
            &state,
            &format!(
                "exec userns --map-auto --idmap {r} -- mntns --rootfs {r} -- /bin/sh -c \"{script}\""
            ),
        )),
        "idmapped rootfs",
    );
    assert!(out.contains("0 /srv") && out.contains("made"), "{out}");
    assert_eq!(std::fs::metadata(root.join("srv/made")).unwrap().uid(), 0);
}

// ---------------------------------------------------------------------------------------
// Bad input: 125, `userns: fatal:`, nothing left

#[test]
fn bad_idmap_values_fail_with_125_and_leave_nothing() {
    if !need_root() || !need_links() {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let cases: &[(&[&str], &str)] = &[
        (&["--map-auto", "--idmap"], "--idmap"),
        (
            &["--map-auto", "--idmap", "/nonexistent/tree", "--", "true"],
            "No such file",
        ),
        (
            &["--map-auto", "--idmap", "tmp", "--", "true"],
            "not an absolute path",
        ),
        (
            &["--map-auto", "--idmap", "", "--", "true"],
            "a value is required for '--idmap",
        ),
        (&["--idmap", "/", "--", "true"], "needs a range map"),
        (
            &["--map-root", "--idmap", "/", "--", "true"],
            "needs a range map",
        ),
        (
            &["--join", "/proc/self/ns/user", "--idmap", "/", "--", "true"],
            "--idmap",
        ),
    ];
    let before = audit::snapshot(&state, None);
    for (args, expected) in cases {
        let out = run(tool("userns", &state).args(*args));
        assert_fatal(&out, "userns");
        assert!(
            stderr(&out).contains(expected),
            "userns {args:?}: expected '{expected}' in: {}",
            stderr(&out)
        );
    }
    // A filesystem the kernel cannot idmap (procfs): the helper's failure reaches the user as
    // userns's own, errno as plain text, with its hint.
    let out = run(tool("userns", &state).args([
        "--map-auto",
        "--idmap",
        "/proc",
        "--",
        "mntns",
        "--",
        "true",
    ]));
    assert_fatal(&out, "userns");
    assert!(
        stderr(&out).contains(
            "userns: fatal: unable to make an idmapped tree of /proc: unable to idmap the clone \
             of /proc (mount_setattr): Invalid argument\nuserns: hint: the filesystem of /proc \
             cannot be idmapped"
        ),
        "{}",
        stderr(&out)
    );
    // A hand-set variable is refused by userns (one producer) and by mntns (not a tree).
    let out = run(tool("userns", &state)
        .args(["--map-auto", "--idmap", "/", "--", "true"])
        .env("NSCHAIN_IDMAP", "3 /"));
    assert_fatal(&out, "userns");
    assert!(stderr(&out).contains("NSCHAIN_IDMAP"), "{}", stderr(&out));
    for value in ["1 /", "x /", "3", "9 relative", "0 /\n"] {
        let out = run(tool("mntns", &state)
            .args(["--", "true"])
            .env("NSCHAIN_IDMAP", value));
        assert_fatal(&out, "mntns");
        assert!(
            stderr(&out).contains("invalid NSCHAIN_IDMAP"),
            "{value:?}: {}",
            stderr(&out)
        );
    }
    // An open fd that is not the tree it claims to be.
    let out = run(&mut sh(
        &state,
        "exec 7</etc/passwd; NSCHAIN_IDMAP='7 /' exec mntns -- true",
    ));
    assert_fatal(&out, "mntns");
    assert!(
        stderr(&out).contains("is not the tree of /"),
        "{}",
        stderr(&out)
    );
    audit::assert_nothing_left(&before, &state, None, &[]);
    assert!(
        !state.join("data").exists(),
        "a refused --idmap made a data directory"
    );
}

#[test]
fn idmap_is_refused_rootless_with_a_hint() {
    if !require(rootless_userns_works(), "rootless user namespaces") {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = audit::snapshot(&state, None);
    for args in [
        &["--idmap", "/", "--", "true"][..],
        &[
            "--map-users",
            "0:100000:65536",
            "--map-groups",
            "0:100000:65536",
            "--idmap",
            "/",
            "--",
            "true",
        ][..],
    ] {
        let out = run(&mut as_nobody(tool("userns", &state).args(args)));
        assert_fatal(&out, "userns");
        let err = stderr(&out);
        assert!(err.contains("--idmap needs root on the host"), "{err}");
        assert!(
            err.contains("userns: hint:") && err.contains("--map-root"),
            "{err}"
        );
    }
    audit::assert_nothing_left(&before, &state, None, &[]);
}

#[test]
fn a_name_given_after_map_auto_fails_with_a_hint() {
    if !need_root() || !need_links() {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let name = format!("idm-late-{}", std::process::id());
    let out = run(&mut sh(
        &state,
        &format!("exec userns --map-auto -- utsns --name {name} -- true"),
    ));
    assert_fatal(&out, "utsns");
    assert!(
        stderr(&out).contains("give --name at userns or an earlier link"),
        "{}",
        stderr(&out)
    );
    // Given at userns, the same chain registers every link.
    let out = ok_out(
        &run(&mut sh(
            &state,
            &format!("exec userns --map-auto --name {name} -- utsns -- ls \"$NSCHAIN_RUN_DIR/chains/{name}\""),
        )),
        "named at userns",
    );
    assert!(
        out.contains("user.json") && out.contains("uts.json"),
        "{out}"
    );
}

#[test]
fn a_state_dir_the_range_cannot_reach_is_named_in_a_warning() {
    if !need_root() || !need_links() {
        return;
    }
    let dir = scratch();
    let state = dir.path().join("private");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = run(&mut sh(
        &state,
        "exec userns --map-auto --name idm-private -- mntns --overlay / --rm -- true",
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    let range = err
        .split("host uid ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or("?");
    let warning = format!(
        "userns: warning: host uid {range} (the namespace's ids outside) cannot reach {}",
        state.join("data").display(),
    );
    assert!(err.contains(&warning), "{err}");
    assert!(
        err.contains(&format!("chmod o+x {}", state.display())),
        "{err}"
    );
    assert_eq!(
        err.matches("userns: warning:").count(),
        1,
        "said once: {err}"
    );
}

// ---------------------------------------------------------------------------------------
// One overlay instead of one per directory

#[test]
fn the_idmapped_overlay_is_one_mount_not_one_per_directory() {
    if !need_root() || !need_links() {
        return;
    }
    let dir = scratch();
    let state = state_dir(dir.path());
    let count = |idmap: &str| -> usize {
        let out = ok_out(
            &run(&mut sh(
                &state,
                &format!(
                    "exec userns --map-auto {idmap} -- mntns --overlay / --rm -- \
                     sh -c 'grep -c \" overlay overlay \" /proc/self/mountinfo'"
                ),
            )),
            "overlay",
        );
        out.trim().parse().unwrap()
    };
    assert_eq!(count("--idmap /"), 1, "the idmapped root is one overlay");
    assert!(
        count("") > 1,
        "without --idmap the host root is split per directory"
    );
}
