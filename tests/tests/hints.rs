//! Hints that match the cause (issue 19, item 18): one line of error, one hint, and the hint
//! is about what actually went wrong.

mod escape_common;

use std::process::Command;

use nschain_tests::*;

/// The single hint line of a failed run (and the run failed the contract's way).
fn only_hint(out: &std::process::Output, tool: &str, code: i32) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "one error line and one hint:\n{err}");
    assert!(lines[0].starts_with(&format!("{tool}: fatal: ")), "{err}");
    lines[1]
        .strip_prefix(&format!("{tool}: hint: "))
        .unwrap_or_else(|| panic!("no hint line:\n{err}"))
        .to_owned()
}

#[test]
fn a_mistyped_flag_gets_the_suggestion_only() {
    let state = scratch();
    let hint = only_hint(
        &run(tool("utsns", state.path()).args(["--hostnme", "x", "--", "true"])),
        "utsns",
        125,
    );
    assert_eq!(hint, "a similar argument exists: '--hostname'");
    let hint = only_hint(
        &run(tool("utsns", state.path()).args(["--frob"])),
        "utsns",
        125,
    );
    assert_eq!(hint, "see 'utsns --help'");
}

#[test]
fn a_program_missing_from_the_new_root_is_not_told_to_put_mntns_last() {
    require(is_root(), "root");
    let dir = scratch();
    // Only root can reach the root: no setuid guard and its warning line.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let root = escape_common::busybox_root(dir.path());
    let root = root.to_str().unwrap();
    // mntns is last already: the program is simply not in the image.
    let hint = only_hint(
        &run(tool("mntns", dir.path()).args(["--rootfs", root, "--", "python3"])),
        "mntns",
        127,
    );
    assert_eq!(
        hint,
        "it exists on the host but not inside the new root: install it in the root, or bind it in with -v"
    );
    // A link after the new root: that one is the order.
    let hint = only_hint(
        &run(tool("mntns", dir.path()).args(["--rootfs", root, "--", "utsns", "--", "true"])),
        "mntns",
        127,
    );
    assert!(hint.contains("put mntns last"), "{hint}");
}

#[test]
fn a_link_after_a_new_root_is_told_to_put_mntns_last_not_to_run_as_root() {
    require(is_root(), "root");
    let state = scratch();
    for next in [&["pidns"][..], &["netns", "--bridge"]] {
        let mut argv = vec!["--overlay", "/", "--rm", "--"];
        argv.extend_from_slice(next);
        argv.extend_from_slice(&["--", "true"]);
        let hint = only_hint(&run(tool("mntns", state.path()).args(&argv)), next[0], 125);
        assert!(
            hint.contains("put mntns last in the chain (DESIGN.md §2, rule 6)"),
            "{hint}"
        );
        assert!(
            !hint.contains("run as root") && !hint.contains("before userns"),
            "{hint}"
        );
    }
}

#[test]
fn bridge_mode_without_root_and_without_userns_says_so() {
    require(is_root(), "root (to become uid 65534)");
    let state = scratch();
    let mut cmd = as_user(NOBODY, bin("netns"));
    cmd.args(["--bridge", "--", "true"]);
    with_env(&mut cmd, state.path());
    let hint = only_hint(&run(&mut cmd), "netns", 125);
    assert!(hint.contains("run it as root"), "{hint}");
    assert!(
        !hint.contains("before userns"),
        "no userns in this chain: {hint}"
    );
}

#[test]
fn a_read_only_root_without_proc_runs_instead_of_getting_the_pidns_hint() {
    require(is_root(), "root");
    let dir = scratch();
    let image = dir.path().join("image");
    std::fs::create_dir_all(image.join("bin")).unwrap();
    copy_exe(
        std::path::Path::new("/bin/busybox"),
        &image.join("bin/busybox"),
    );
    std::os::unix::fs::symlink("busybox", image.join("bin/sh")).unwrap();
    let view = dir.path().join("view");
    std::fs::create_dir(&view).unwrap();
    // A read-only image without /proc, as a squashfs or a read-only bind is: the mount point
    // lives in a skeleton over the image, so there is nothing to hint about.
    let script = format!(
        "mount --bind {i} {v} && mount -o remount,bind,ro {v} && exec \"$@\"",
        i = image.display(),
        v = view.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sh",
    ])
    .arg(bin("pidns"))
    .args([
        "--",
        "mntns",
        "--rootfs",
        view.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "echo $(ls /proc | wc -l) entries",
    ]);
    with_env(&mut cmd, dir.path());
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).ends_with("entries") && !stdout(&out).starts_with("0 "),
        "{}",
        stdout(&out)
    );
    assert!(!image.join("proc").exists());
}
