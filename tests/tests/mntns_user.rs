//! Issue 19, what a new user hits with mntns: a `--rootfs` left byte for byte as it was
//! (item 3), a resolv.conf the container can use (item 10), nothing of the chain reaching
//! COMMAND and Docker's -e/--env-file/--clearenv/--user (item 13), and COMMAND starting where
//! the caller was when the new root shows that directory (item 15).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nschain_tests::*;

const APPLETS: &[&str] = &[
    "sh", "cat", "ls", "echo", "id", "env", "pwd", "test", "touch", "mkdir", "sort", "grep",
];

/// A busybox root that lacks everything mntns mounts: no dev, proc, sys, etc.
fn bare_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("usr/share")).unwrap();
    std::fs::write(root.join("usr/share/data"), "data\n").unwrap();
    nschain_tests::roots::install_busybox(&root, APPLETS);
    for d in [
        dir,
        &root,
        &root.join("bin"),
        &root.join("usr"),
        &root.join("usr/share"),
    ] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    root
}

fn have_busybox() -> bool {
    nschain_tests::need::busybox()
}

/// Every entry under `dir`: path, type, mode, owner, size, mtime (ns), link target, content.
fn listing(dir: &Path) -> Vec<String> {
    let out = Command::new("find")
        .arg(dir)
        .args(["-printf", "%P %y %m %U:%G %s %T@ %l\\n"])
        .output()
        .unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    for line in lines.iter_mut() {
        let name = line.split(' ').next().unwrap_or("");
        let path = dir.join(name);
        if path.is_file() && !path.is_symlink() {
            let bytes = std::fs::read(&path).unwrap();
            line.push_str(&format!(" {}", String::from_utf8_lossy(&bytes).len()));
            line.push_str(&format!(
                " {:x}",
                bytes
                    .iter()
                    .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)))
            ));
        }
    }
    lines.sort();
    lines
}

fn chain(state: &Path, argv: &[&str]) -> Command {
    let mut cmd = tool(argv[0], state);
    cmd.args(&argv[1..]);
    cmd
}

// ---------------------------------------------------------------------------------------
// Item 3: --rootfs DIR is never written

const INSIDE: &str = "test -f /proc/self/status && test -c /dev/null && test -d /sys/kernel \
    && cat /etc/hostname >/dev/null && test -s /etc/hosts && cat /data/x && pwd";

#[test]
fn a_rootfs_is_left_byte_for_byte_as_it_was() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    let root = bare_root(dir.path());
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("x"), "volume\n").unwrap();
    let volume = format!("{}:/data", src.display());
    let before = listing(&root);
    // The probe sees a change: a write into an existing directory of a writable rootfs is
    // the container's right and shows up (so the checks below can fail).
    ok(chain(dir.path(), &["mntns", "--rootfs"]).arg(&root).args([
        "--",
        "touch",
        "/usr/share/new",
    ]));
    assert_ne!(listing(&root), before, "the listing does not see a change");
    std::fs::remove_file(root.join("usr/share/new")).unwrap();
    // Restore the directory's mtime by rebuilding the snapshot after the cleanup.
    let before = listing(&root);
    for extra in [&[][..], &["--read-only"][..]] {
        let out = ok(chain(dir.path(), &["mntns", "--rootfs"])
            .arg(&root)
            .args(extra)
            .args(["-v", &volume, "--tmpfs", "/scratch", "-w", "/work/dir"])
            .args(["--", "sh", "-c", INSIDE]));
        assert_eq!(out, "volume\n/work/dir", "{extra:?}");
        assert_eq!(listing(&root), before, "{extra:?}: the rootfs changed");
    }
    // --read-only: nothing is writable, not even the skeleton's new entries.
    let out = run(chain(dir.path(), &["mntns", "--rootfs"])
        .arg(&root)
        .args(["--read-only", "-w", "/work", "--", "sh", "-c"])
        .arg("touch /usr/share/y || touch /newtop || touch /work/z || echo all-refused"));
    assert_eq!(stdout(&out), "all-refused", "{}", stderr(&out));
    assert_eq!(listing(&root), before);
}

#[test]
fn a_rootless_rootfs_is_left_as_it_was() {
    if !require(rootless_userns_works(), "unprivileged user namespaces") || !have_busybox() {
        return;
    }
    let dir = scratch();
    let root = bare_root(dir.path());
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = listing(&root);
    let mut cmd = chain(
        &state,
        &["userns", "--", "pidns", "--", "mntns", "--rootfs"],
    );
    cmd.arg(&root).args([
        "-w",
        "/w",
        "--",
        "sh",
        "-c",
        "test -f /proc/self/status && test -c /dev/null && test -s /etc/hosts && pwd",
    ]);
    assert_eq!(ok(&mut as_nobody(&cmd)), "/w");
    assert_eq!(listing(&root), before);
}

// ---------------------------------------------------------------------------------------
// Item 10: DNS the container can use

/// Runs `chain` in a private mount namespace of the test whose /etc/resolv.conf is `resolv`
/// (the host's file stays as it is); `nobody` runs the chain as uid 65534.
fn with_host_resolv(dir: &Path, resolv: &str, nobody: bool, chain: &str) -> String {
    let fake = dir.join("resolv.conf");
    std::fs::write(&fake, resolv).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o644)).unwrap();
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    // /dev/net/tun is 0600 on the test machines: a world-usable node in this mount
    // namespace only, for slirp4netns run by uid 65534.
    let who = if nobody {
        "mknod -m 666 \"$1/tun\" c 10 200 && mount --bind \"$1/tun\" /dev/net/tun && \
         exec setpriv --reuid 65534 --regid 65534 --clear-groups --"
    } else {
        "exec"
    };
    let mut cmd = Command::new("unshare");
    with_env(&mut cmd, &state);
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind \"$0\" /etc/resolv.conf && {who} {chain}"
        ))
        .arg(&fake)
        .arg(dir);
    ok(&mut cmd)
}

const RESOLVED: &str = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";

#[test]
fn a_loopback_resolver_is_replaced_in_a_network_namespace_of_its_own() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    let root = bare_root(dir.path());
    let cat = format!("mntns --rootfs {} -- cat /etc/resolv.conf", root.display());
    // The host's network: its resolver is reachable, the file is kept (what every container
    // got before, bridged or not).
    let shared = with_host_resolv(dir.path(), RESOLVED, false, &cat);
    assert_eq!(shared, RESOLVED.trim());
    // Its own network namespace: loopback servers dropped, Docker's defaults instead.
    let own = with_host_resolv(dir.path(), RESOLVED, false, &format!("netns -- {cat}"));
    assert_eq!(
        own,
        "options edns0 trust-ad\nsearch lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4"
    );
    // A reachable server is kept alone.
    let lan = "nameserver 127.0.0.1\nnameserver 192.0.2.53\n";
    let own = with_host_resolv(dir.path(), lan, false, &format!("netns -- utsns -- {cat}"));
    assert_eq!(own, "nameserver 192.0.2.53");
}

#[test]
fn slirp4netns_containers_get_the_slirp_resolver() {
    if !require(rootless_userns_works(), "unprivileged user namespaces")
        || !require(have("slirp4netns"), "slirp4netns")
        || !have_busybox()
    {
        return;
    }
    let dir = scratch();
    let root = bare_root(dir.path());
    let cat = format!(
        "userns -- netns --slirp4netns -- mntns --rootfs {} -- cat /etc/resolv.conf",
        root.display()
    );
    let out = with_host_resolv(dir.path(), RESOLVED, true, &cat);
    assert_eq!(
        out,
        "options edns0 trust-ad\nsearch lan\nnameserver 10.0.2.3"
    );
}

// ---------------------------------------------------------------------------------------
// Item 13: COMMAND receives only what is its own

#[test]
fn no_internal_fd_reaches_command() {
    if !require(is_root(), "root") {
        return;
    }
    let dir = scratch();
    let fds = "ls -l /proc/self/fd/";
    // The probe sees an inherited fd (so the check below can fail).
    let mut cmd = Command::new("sh");
    with_env(&mut cmd, dir.path());
    cmd.args([
        "-c",
        "exec 5</proc/version; exec pidns -- sh -c \"$0\"",
        fds,
    ]);
    assert!(ok(&mut cmd).contains("-> /proc/version"));
    // pidns offers its after-fd (a socket) to a later mntns: none follows here.
    let out = ok(&mut chain(dir.path(), &["pidns", "--", "sh", "-c", fds]));
    assert!(!out.contains("socket:"), "{out}");
    let out = ok(&mut chain(
        dir.path(),
        &["pidns", "--", "utsns", "--", "sh", "-c", fds],
    ));
    assert!(!out.contains("socket:"), "{out}");
}

#[test]
fn no_chain_variable_reaches_command_but_every_link_gets_them() {
    if !require(rootless_userns_works(), "unprivileged user namespaces") {
        return;
    }
    let dir = scratch();
    let xdg = dir.path().join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o777)).unwrap();
    let name = format!("i19env{}", std::process::id());
    let env = "env | grep ^NSCHAIN_ | sort; echo end";
    let named = |extra: &[&str], script: &str| {
        let mut cmd = tool("userns", dir.path());
        cmd.env_remove("NSCHAIN_RUN_DIR")
            .env_remove("NSCHAIN_DATA_DIR")
            .env("XDG_RUNTIME_DIR", &xdg)
            .env("XDG_DATA_HOME", &xdg)
            .args(["--name", &name, "--"])
            .args(extra)
            .args(["sh", "-c", script]);
        ok(&mut as_nobody(&cmd))
    };
    // The links after userns get the chain's name and state directory: utsns registers.
    let registered = named(
        &["utsns", "--"],
        &format!("ls {}/nschain/chains/{name}", xdg.display()),
    );
    assert!(registered.contains("uts.json"), "{registered}");
    // COMMAND gets none of them, whichever link is last.
    assert_eq!(named(&[], env), "end");
    assert_eq!(named(&["utsns", "--"], env), "end");
    assert_eq!(named(&["utsns", "--", "pidns", "--"], env), "end");
    // What the caller set himself is his (and shows the probe sees such variables).
    let mut cmd = tool("userns", dir.path());
    cmd.args(["--", "utsns", "--", "sh", "-c", env]);
    let out = ok(&mut as_nobody(&cmd));
    assert!(out.contains("NSCHAIN_RUN_DIR="), "{out}");
}

fn account_root(dir: &Path) -> PathBuf {
    let root = bare_root(dir);
    std::fs::create_dir(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nusers:x:100:alice,bob\nwheel:x:10:alice\nalice:x:1000:\n",
    )
    .unwrap();
    root
}

#[test]
fn env_flags_and_user_names_work_as_in_docker() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    let root = account_root(dir.path());
    let file = dir.path().join("env");
    std::fs::write(&file, "# comment\nFROM_FILE=1\nBOTH=file\nCALLER\n").unwrap();
    let mut cmd = chain(dir.path(), &["mntns", "--rootfs"]);
    cmd.arg(&root)
        .env("CALLER", "mine")
        .env("OTHER", "not passed")
        .arg("--env-file")
        .arg(&file)
        .args([
            "-e",
            "BOTH=flag",
            "-e",
            "EMPTY=",
            "-e",
            "UNSET_XYZ",
            "--clearenv",
        ])
        .args(["-u", "alice", "--", "sh", "-c", "id; env | sort"]);
    let out = ok(&mut cmd);
    let expected = "uid=1000(alice) gid=1000(alice) groups=10(wheel),100(users)\n\
        BOTH=flag\nCALLER=mine\nEMPTY=\nFROM_FILE=1\nHOME=/home/alice\nLOGNAME=alice\n\
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nPWD=/\nSHLVL=1\nUSER=alice";
    assert_eq!(out, expected);
    // A group by name; -e wins over what --user implies; the caller's env is kept by default.
    let mut cmd = chain(dir.path(), &["mntns", "--rootfs"]);
    cmd.arg(&root).env("OTHER", "kept").args([
        "-u",
        "1000:users",
        "-e",
        "HOME=/tmp",
        "--",
        "sh",
        "-c",
        "id -g; echo $HOME $OTHER",
    ]);
    assert_eq!(ok(&mut cmd), "100\n/tmp kept");
}

#[test]
fn bad_env_and_user_values_are_125_with_one_line() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    let root = account_root(dir.path());
    let bad_file = dir.path().join("bad-env");
    std::fs::write(&bad_file, "GOOD=1\nA B=2\n").unwrap();
    let root_s = root.to_str().unwrap();
    let missing = dir.path().join("missing").to_str().unwrap().to_owned();
    let cases: Vec<Vec<&str>> = vec![
        vec!["-e", "=x"],
        vec!["-e", ""],
        vec!["-e", "A B=1"],
        vec!["--env-file", &missing],
        vec!["--env-file", bad_file.to_str().unwrap()],
        vec!["--env-file", "/etc"],
        vec!["-u", "a b"],
        vec!["-u", "1000:"],
        vec!["-u", "4294967295"],
        vec!["--rootfs", root_s, "-u", "mallory"],
        vec!["--rootfs", root_s, "-u", "alice:nogroup"],
    ];
    for case in cases {
        let before = listing(&root);
        let out = run(chain(dir.path(), &["mntns"])
            .args(&case)
            .args(["--", "true"]));
        assert_fatal(&out, "mntns");
        let first = stderr(&out);
        let fatal_lines = first.lines().filter(|l| l.contains("fatal:")).count();
        assert_eq!(fatal_lines, 1, "{case:?}: {first}");
        assert_eq!(listing(&root), before, "{case:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Item 15: COMMAND starts where the caller was, when the new root shows it

#[test]
fn the_readme_build_recipe_runs_from_the_project_directory() {
    if !require(is_root(), "root") || !require(have("make"), "make") {
        return;
    }
    let dir = scratch();
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("src/Makefile"),
        "all:\n\t@echo built in $$(pwd) on $$(hostname)\n\t@touch made\n",
    )
    .unwrap();
    let mut cmd = chain(
        dir.path(),
        &[
            "netns",
            "--",
            "utsns",
            "--hostname",
            "build",
            "--",
            "mntns",
            "--overlay",
            "/",
            "--rm",
            "--",
            "make",
            "-C",
            "src",
            "all",
        ],
    );
    cmd.current_dir(&project);
    let out = ok(&mut cmd);
    assert!(
        out.contains(&format!("built in {}/src on build", project.display())),
        "{out}"
    );
    // The build wrote to the layer, which --rm removed: the project is as it was.
    assert!(!project.join("src/made").exists());
}

#[test]
fn the_callers_directory_is_kept_only_where_the_root_shows_it() {
    if !require(is_root(), "root") || !have_busybox() {
        return;
    }
    let dir = scratch();
    let root = bare_root(dir.path());
    let pwd = |cwd: &Path, extra: &[&str]| {
        let mut cmd = chain(dir.path(), &["mntns", "--rootfs"]);
        cmd.arg(&root)
            .args(extra)
            .args(["--", "sh", "-c", "pwd; echo $PWD"])
            .current_dir(cwd);
        ok(&mut cmd)
    };
    // Inside the rootfs's source: the same directory inside.
    assert_eq!(pwd(&root.join("usr/share"), &[]), "/usr/share\n/usr/share");
    // Outside it: /.
    assert_eq!(pwd(dir.path(), &[]), "/\n/");
    // -w wins.
    assert_eq!(pwd(&root.join("usr/share"), &["-w", "/bin"]), "/bin\n/bin");
    // A volume that holds it.
    let src = dir.path().join("src/sub");
    std::fs::create_dir_all(&src).unwrap();
    let volume = format!("{}:/usr/share", dir.path().join("src").display());
    assert_eq!(
        pwd(&src, &["-v", &volume]),
        "/usr/share/sub\n/usr/share/sub"
    );
}
