//! Links after `pidns` run in a new pid namespace while /proc is still the host's: what they
//! register, lease and read through /proc is numbered as the host numbers it (issue 19,
//! items 6 and 7).

use std::process::Stdio;
use std::time::Duration;

use nschain_tests::*;

/// `pidns -- userns --map-root` as root: userns reads its own namespace (and its helper
/// writes the maps) through /proc, where getpid() names another process.
#[test]
fn userns_after_pidns_refers_to_itself_as_the_host_numbers_it() {
    require(is_root(), "root");
    let state = scratch();
    let out =
        ok(tool("pidns", state.path()).args(["--", "userns", "--map-root", "--", "id", "-u"]));
    assert_eq!(out, "0");
    // With ranges the maps are written by a helper, to /proc/TARGET of the host's /proc.
    let maps = ok(tool("pidns", state.path()).args([
        "--",
        "userns",
        "--map-users",
        "0:100000:65536",
        "--",
        "cat",
        "/proc/self/uid_map",
        "/proc/self/gid_map",
    ]));
    let lines: Vec<String> = maps
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines, ["0 100000 65536", "0 100000 65536"]);
}

/// `mntns --proc` after pidns registers the host's pid of the process that holds the mount
/// namespace, so a later join lands in it.
#[test]
fn a_mount_namespace_made_after_pidns_is_registered_by_its_host_pid_and_joined() {
    require(is_root(), "root");
    let state = scratch();
    let name = format!("hostpid-{}", std::process::id());
    let mut chain = tool("pidns", state.path())
        .args([
            "--name", &name, "--", "mntns", "--proc", "--", "sleep", "30",
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let registration = state.path().join(format!("run/chains/{name}"));
    wait_for_record(&registration, "mnt");
    std::thread::sleep(Duration::from_millis(50));
    let json: Value = registration.record("mnt").unwrap();
    let pid = json["pid"].as_u64().unwrap();
    assert!(
        pid > 2,
        "the pid inside the container was registered: {json}"
    );
    let inode = std::fs::metadata(format!("/proc/{pid}/ns/mnt"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    assert_eq!(Some(inode), json["ns"]["inode"].as_u64(), "{json}");

    let joined = ok(tool("pidns", state.path()).args([
        "--join",
        &name,
        "--",
        "mntns",
        "--join",
        &name,
        "--",
        "sh",
        "-c",
        "readlink /proc/self/ns/mnt",
    ]));
    assert_eq!(joined, format!("mnt:[{inode}]"));
    chain.kill().unwrap();
    chain.wait().unwrap();
}
