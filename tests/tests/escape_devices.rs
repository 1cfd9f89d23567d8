//! Host devices through a node the container makes (issue 13, item 1). There is no device
//! cgroup: a rootful container root with CAP_MKNOD can make the node of any host device, and
//! only `nodev` on every mount it can write stops the node from opening. The attack uses a
//! loop device the test attaches to a file it made: a write through the node lands in that
//! file, which the test reads on the host. Each attack first succeeds in a plain
//! `unshare --mount` with a tmpfs mounted `dev` (the defence off), then must be blocked in the
//! three chains, on a `--rootfs` and on an `--overlay`, in /dev, /tmp, /, a volume and a
//! `--tmpfs`, with the default capabilities and with `--cap-add MKNOD`.

mod escape_common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use escape_common::*;
use nschain_tests::*;

fn configs() -> Vec<Config> {
    if need_rootless() {
        Config::ALL.to_vec()
    } else {
        vec![Config::Rootful, Config::RootfulUserns]
    }
}

fn need_loop() -> bool {
    need_root()
        && require(have("losetup"), "losetup (util-linux)")
        && require(have("mkfs.ext4"), "mkfs.ext4 (e2fsprogs)")
}

/// Runs `nsattack ARGS` as host root in a plain `unshare --mount`, chrooted into a copy of
/// the attacker whose /tmp and /dev are tmpfs mounted `dev` (as a container without the
/// defence would have them). Nothing is made on the host's own directories.
fn on_weak_host(lab: &Lab, args: &[&str]) -> std::process::Output {
    let jail = lab.dir.path().join("weak-host");
    for d in ["tmp", "dev/shm"] {
        std::fs::create_dir_all(jail.join(d)).unwrap();
    }
    copy_exe(&attacker(), &jail.join("nsattack"));
    let j = jail.display();
    let script = format!(
        "mount -t tmpfs tmpfs {j}/tmp && mount -t tmpfs tmpfs {j}/dev && mkdir {j}/dev/shm && exec chroot {j} /nsattack \"$@\""
    );
    run(Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(script)
        .arg("sh")
        .args(args))
}

fn marker(tag: &str) -> String {
    format!("NSATTACK-{tag}-{}", std::process::id())
}

#[test]
fn a_node_of_a_host_loop_device_made_inside_does_not_open() {
    if !need_loop() {
        return;
    }
    let lab = Lab::new("devnode");
    let disk = LoopDevice::new(&lab.dir.path().join("loop.img"), 1, false);
    let (maj, min) = (disk.major.to_string(), disk.minor.to_string());

    // The defence off: the same attack as host root, in a tmpfs mounted `dev`.
    let mark = marker("host");
    let out = on_weak_host(&lab, &["devnode", &maj, &min, &mark, "/tmp", "/dev"]);
    let text = stdout(&out);
    assert!(
        text.contains("ESCAPED write the host's loop device") && disk.holds(&mark),
        "the attack does not work even without nodev, it proves nothing:\n{text}\n{}",
        stderr(&out)
    );

    // Two worlds: the lab's, which every chain can reach (so other host users can too: a
    // rootful chain gets the setuid guard there, whose seccomp filter also refuses mknod), and
    // one only root can enter, where nothing but nodev stands in the way of a rootful chain.
    let world = |base: &Path| {
        let volume = base.join("vol");
        let uppers = base.join("uppers");
        for d in [&volume, &uppers] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        (volume, uppers)
    };
    let private = lab.dir.path().join("private");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let private_root = busybox_root(&private);
    let dirs = ["/dev", "/tmp", "/", "/dev/shm", "/vol", "/tt"];
    let mut runs: Vec<(Config, bool)> = configs().into_iter().map(|c| (c, false)).collect();
    runs.insert(0, (Config::Rootful, true));
    let mut results = Vec::new();
    for (config, in_private) in runs {
        let (base, root) = if in_private {
            (private.clone(), private_root.clone())
        } else {
            (lab.dir.path().to_owned(), lab.root.clone())
        };
        let (volume, uppers) = world(&base);
        let vol = format!("{}:/vol", volume.display());
        let root = root.display().to_string();
        for overlay in [false, true] {
            for cap_add in [true, false] {
                let tag = format!("{config:?}-{in_private}-{overlay}-{cap_add}");
                let mark = marker(&tag);
                let upper = uppers.join(&tag).display().to_string();
                let mut args = vec!["-v", &vol, "--tmpfs", "/tt:mode=1777"];
                if overlay {
                    args.extend(["--overlay", &root, "--upper", &upper]);
                } else {
                    args.extend(["--rootfs", &root]);
                }
                if cap_add {
                    args.extend(["--cap-add", "MKNOD"]);
                }
                let mut command = vec!["/nsattack", "devnode", &maj, &min, &mark];
                command.extend(dirs);
                let mut argv = config.links(None);
                argv.push("mntns".into());
                argv.extend(args.iter().map(|a| (*a).to_owned()));
                argv.push("--".into());
                argv.extend(command.iter().map(|a| (*a).to_owned()));
                let out = run(&mut lab.in_host("", config == Config::Rootless, &argv));
                let shown = format!(
                    "{} {}{}{}",
                    if overlay { "--overlay" } else { "--rootfs" },
                    if in_private {
                        "only root can reach, "
                    } else {
                        ""
                    },
                    config.name(),
                    if cap_add { " --cap-add MKNOD" } else { "" }
                );
                let claim = format!("claim: a device node made inside does not open ({shown})");
                results.push(check_blocked(&claim, config, &out));
                if disk.holds(&mark) {
                    results.push(Err(format!(
                        "HOLE [{claim}]: the write reached the host's file behind {}",
                        disk.dev
                    )));
                }
                // Rootful with CAP_MKNOD in a root only root can reach, the nodes are made:
                // what blocks them is nodev.
                if in_private && cap_add {
                    let text = stdout(&out);
                    for dir in dirs.iter().filter(|d| **d != "/dev/shm") {
                        let made =
                            format!("INFO mknod {}/nsattack-blk-", dir.trim_end_matches('/'));
                        if !text.contains(&made) {
                            results.push(Err(format!(
                                "[{claim}] mknod in {dir} did not succeed, so nodev was not exercised:\n{text}"
                            )));
                        }
                    }
                }
            }
        }
    }
    assert_all(results);
    drop(disk);
    lab.assert_clean();
}

/// The escape suite's mknod case, on a disk of the test's own: the host's disk is refused
/// even to host root on some machines, which proved nothing about the container.
#[test]
fn mknod_and_mount_of_a_loop_disk_fail() {
    if !need_loop() {
        return;
    }
    let lab = Lab::new("mknod");
    let disk = LoopDevice::new(&lab.dir.path().join("disk.img"), 16, true);
    let (maj, min) = (disk.major.to_string(), disk.minor.to_string());
    let out = on_weak_host(&lab, &["mknod", &maj, &min]);
    let text = stdout(&out);
    assert!(
        text.contains("ESCAPED read the host disk") && text.contains("ESCAPED mount the host disk"),
        "the attack does not work even without nodev, it proves nothing:\n{text}\n{}",
        stderr(&out)
    );
    // As in the test above: rootful in a root only root can reach too, where nodev alone
    // blocks (the setuid guard's seccomp filter refuses mknod in a root others can reach).
    let private = lab.dir.path().join("private");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let private_root = busybox_root(&private).display().to_string();
    let mut runs: Vec<(Config, Option<&str>)> = configs().into_iter().map(|c| (c, None)).collect();
    runs.insert(0, (Config::Rootful, Some(&private_root)));
    let mut results = Vec::new();
    for (config, root) in runs {
        for cap_add in [true, false] {
            let mut args = vec!["--rootfs", root.unwrap_or(lab.root.to_str().unwrap())];
            if cap_add {
                args.extend(["--cap-add", "MKNOD"]);
            }
            let mut argv = config.links(None);
            argv.push("mntns".into());
            argv.extend(args.iter().map(|a| (*a).to_owned()));
            argv.extend(["--", "/nsattack", "mknod", &maj, &min].map(str::to_owned));
            let out = run(&mut lab.in_host("", config == Config::Rootless, &argv));
            let claim = format!(
                "claim: a disk can be neither opened nor mounted through mknod ({}{})",
                if root.is_some() {
                    "only root can reach the root"
                } else {
                    ""
                },
                if cap_add { ", --cap-add MKNOD" } else { "" }
            );
            results.push(check_blocked(&claim, config, &out));
            if root.is_some() && cap_add && !stdout(&out).contains("INFO mknod /tmp/nsattack-disk-")
            {
                results.push(Err(format!(
                    "[{claim}] mknod did not succeed, so nodev was not exercised:\n{}",
                    stdout(&out)
                )));
            }
        }
    }
    assert_all(results);
    drop(disk);
    lab.assert_clean();
}

#[test]
fn a_tmpfs_mounted_dev_is_refused_in_a_new_root() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("tmpfsdev");
    for spec in ["/t:dev", "/t:size=1m,dev", "/t:nodev,dev"] {
        let out = run(&mut lab.chain(Config::Rootful, "", &["--tmpfs", spec], &["/bin/true"]));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "--tmpfs {spec}: {err}");
        assert!(
            err.starts_with("mntns: fatal: invalid tmpfs") && err.contains("'dev' is not allowed"),
            "--tmpfs {spec}: {err}"
        );
        assert!(
            !lab.root.join("t").exists(),
            "--tmpfs {spec} made its mount point"
        );
    }
    lab.assert_clean();
}

/// What the container's /proc/self/mountinfo shows: every mount is nodev but the verified
/// nodes and devpts (whose nodes the kernel makes). With the lab's root, and with a root that
/// lacks /dev, /proc and /sys (mntns covers its top level with a skeleton).
#[test]
fn every_mount_of_a_new_root_is_nodev_but_the_verified_nodes() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("nodevall");
    let bare = lab.dir.path().join("bare");
    std::fs::create_dir_all(bare.join("bin")).unwrap();
    std::fs::set_permissions(&bare, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy_exe(
        std::path::Path::new("/bin/busybox"),
        &bare.join("bin/busybox"),
    );
    std::os::unix::fs::symlink("busybox", bare.join("bin/cat")).unwrap();
    let volume = lab.dir.path().join("vol");
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::set_permissions(&volume, std::fs::Permissions::from_mode(0o777)).unwrap();
    let vol = format!("{}:/vol", volume.display());
    let keep_dev = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/pts",
    ];
    let mut failures = Vec::new();
    for config in configs() {
        for root in [&lab.root, &bare] {
            let root = root.display().to_string();
            let mut argv = config.links(None);
            argv.extend(
                [
                    "mntns",
                    "--rootfs",
                    &root,
                    "-v",
                    &vol,
                    "--tmpfs",
                    "/tt",
                    "--",
                    "/bin/cat",
                    "/proc/self/mountinfo",
                ]
                .map(str::to_owned),
            );
            let out = run(&mut lab.in_host("", config == Config::Rootless, &argv));
            if !out.status.success() {
                failures.push(format!("{} {root}: {}", config.name(), stderr(&out)));
                continue;
            }
            for line in stdout(&out).lines() {
                let fields: Vec<&str> = line.split(' ').collect();
                let (source, point, options) = (fields[3], fields[4], fields[5]);
                let nodev = options.split(',').any(|o| o == "nodev");
                // The masks of /proc files are binds of the verified /dev/null (root /null).
                let verified = keep_dev
                    .iter()
                    .any(|k| k.strip_prefix("/dev") == Some(source));
                if !nodev && !keep_dev.contains(&point) && !verified {
                    failures.push(format!(
                        "{} {root}: {point} is not nodev ({options})",
                        config.name()
                    ));
                }
                if nodev && keep_dev[..6].contains(&point) {
                    failures.push(format!(
                        "{} {root}: {point} is nodev: the verified node is unusable",
                        config.name()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    lab.assert_clean();
}
