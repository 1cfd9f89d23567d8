//! Setuid planting (issue 13, item 7): a container whose root is host root writes, into a
//! directory of the host, a way to root for the host's other users — a setuid-root or
//! setgid-root binary (by chmod, fchmod, or open with the mode), a binary with a file
//! capability, an image's setuid file overwritten with its own code, a block node open to all.
//! A host user (uid 65534) then runs or opens it through the host's path, where no mount flag
//! of the container applies.
//!
//! Each case first succeeds with the defence off (the same chain on a root and volume only
//! root can reach, which the test then opens: the guard is not engaged, everything planted
//! escalates), then must give the host user nothing: a rootful root, volume and overlay layer
//! others can reach, an idmapped root (`userns --idmap`), and the user-namespace chains
//! (whose files are not host root's).

mod escape_common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use escape_common::*;
use nschain_tests::*;

const WARNING: &str = "mntns: warning: other users of the host can reach";

/// What `plant` makes, and the image's setuid file `overwrite` rewrites.
const PLANTED: [&str; 6] = [
    "p-chmod",
    "p-fchmod",
    "p-open",
    "p-sgid",
    "p-fcap",
    "suid-image",
];

fn mkdir(path: &Path, mode: u32) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory to plant in (every chain's root may write it), holding the image's own
/// setuid-root program (a copy of `true`).
fn plant_dir(path: &Path) {
    mkdir(path, 0o777);
    let image = path.join("suid-image");
    copy_exe(Path::new("/bin/true"), &image);
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o4755)).unwrap();
}

fn as_nobody(program: &Path, args: &[&str]) -> Output {
    run(as_user(NOBODY, program).args(args))
}

/// Runs, as uid 65534 on the host, what was planted in `dir`: the ways to root it gave.
fn escalations(dir: &Path, attacker: &Path, disk: &LoopDevice, marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for name in PLANTED {
        let file = dir.join(name);
        if !file.exists() {
            continue;
        }
        let out = as_nobody(&file, &["euid"]);
        let text = stdout(&out);
        if text.contains("euid=0 ") || text.contains("egid=0") {
            found.push(format!("{}: {}", file.display(), text.trim()));
        }
    }
    let node = dir.join("p-node");
    if node.exists() {
        let node = node.display().to_string();
        as_nobody(attacker, &["devwrite", &node, marker]);
        if disk.holds(marker) {
            found.push(format!("{node}: the host user wrote the loop device"));
        }
    }
    found
}

fn cleanup(dir: &Path) {
    for name in PLANTED.iter().chain(&["p-node"]) {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

fn attack(dir: &str, disk: &LoopDevice) -> Vec<String> {
    let (maj, min) = (disk.major.to_string(), disk.minor.to_string());
    let script =
        format!("/nsattack plant {dir} {maj} {min} && /nsattack overwrite {dir}/suid-image");
    vec!["/bin/sh".into(), "-c".into(), script]
}

/// The argv of `config`'s chain with `mntns MNTNS_ARGS -- COMMAND`.
fn chain(
    config: Config,
    links: Option<Vec<String>>,
    mntns_args: &[String],
    command: &[String],
) -> Vec<String> {
    let mut argv = links.unwrap_or_else(|| config.links(None));
    argv.push("mntns".into());
    argv.extend(mntns_args.iter().cloned());
    argv.push("--".into());
    argv.extend(command.iter().cloned());
    argv
}

fn need() -> bool {
    need_root() && require(have("losetup"), "losetup (util-linux)")
}

#[test]
fn a_setuid_binary_planted_by_a_rootful_container_gives_other_users_nothing() {
    if !need() {
        return;
    }
    let lab = Lab::new("setuid");
    let disk = LoopDevice::new(&lab.dir.path().join("loop.img"), 1, false);
    let attacker = lab.root.join("nsattack");
    let rootfs = |p: &Path| vec!["--rootfs".to_owned(), p.display().to_string()];
    let mknod = ["--cap-add".to_owned(), "MKNOD".to_owned()];

    // The defence off: root and volume under a directory only root can enter, opened once
    // the container is gone.
    let private = lab.dir.path().join("private");
    mkdir(&private, 0o700);
    let private_root = busybox_root(&private);
    plant_dir(&private_root.join("plant"));
    let private_vol = private.join("vol");
    plant_dir(&private_vol);
    let mut args = rootfs(&private_root);
    args.extend(["-v".into(), format!("{}:/vol", private_vol.display())]);
    args.extend(mknod.clone());
    let mut command = attack("/plant", &disk);
    command[2].push_str(" && /nsattack plant /vol 0 0");
    let out = run(&mut lab.in_host("", false, &chain(Config::Rootful, None, &args, &command)));
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(!stderr(&out).contains(WARNING), "{}", stderr(&out));
    mkdir(&private, 0o755);
    let found = escalations(&private_root.join("plant"), &attacker, &disk, "PROOF-ROOT");
    assert_eq!(
        found.len(),
        PLANTED.len() + 1,
        "not every planted way escalates with the defence off, the test proves less than it says:\n{found:#?}\n{}",
        stdout(&out)
    );
    let found = escalations(&private_vol, &attacker, &disk, "PROOF-VOL");
    assert!(found.len() >= 5, "the volume: {found:#?}\n{}", stdout(&out));
    mkdir(&private, 0o700);

    // The defence on.
    let shared_vol = lab.dir.path().join("vol");
    plant_dir(&shared_vol);
    let upper = lab.dir.path().join("upper");
    mkdir(&upper, 0o755);
    plant_dir(&lab.root.join("plant"));
    let root = lab.root.display().to_string();
    let idmap_links: Vec<String> =
        format!("netns -- userns --map-auto --idmap {root} -- ipcns -- utsns -- pidns --")
            .split(' ')
            .map(str::to_owned)
            .collect();
    struct Case {
        what: &'static str,
        config: Config,
        links: Option<Vec<String>>,
        args: Vec<String>,
        plant: &'static str,
        /// Where the planted files are on the host.
        host_dir: PathBuf,
        guarded: bool,
    }
    let mut cases = vec![
        Case {
            what: "a rootful --rootfs others can reach",
            config: Config::Rootful,
            links: None,
            args: rootfs(&lab.root),
            plant: "/plant",
            host_dir: lab.root.join("plant"),
            guarded: true,
        },
        Case {
            what: "a rootful --rootfs others can reach, --cap-add FSETID --cap-add SETFCAP",
            config: Config::Rootful,
            links: None,
            args: [
                rootfs(&lab.root),
                ["--cap-add", "FSETID", "--cap-add", "SETFCAP"]
                    .map(str::to_owned)
                    .to_vec(),
            ]
            .concat(),
            plant: "/plant",
            host_dir: lab.root.join("plant"),
            guarded: true,
        },
        Case {
            what: "a rootful --rootfs others can reach, --read-only (nothing to guard)",
            config: Config::Rootful,
            links: None,
            args: [rootfs(&lab.root), vec!["--read-only".into()]].concat(),
            plant: "/plant",
            host_dir: lab.root.join("plant"),
            guarded: false,
        },
        Case {
            what: "a rootful volume others can reach (the root is private)",
            config: Config::Rootful,
            links: None,
            args: [
                rootfs(&private_root),
                vec!["-v".into(), format!("{}:/vol", shared_vol.display())],
            ]
            .concat(),
            plant: "/vol",
            host_dir: shared_vol.clone(),
            guarded: true,
        },
        Case {
            what: "a rootful --overlay whose --upper others can reach",
            config: Config::Rootful,
            links: None,
            args: vec![
                "--overlay".into(),
                root.clone(),
                "--upper".into(),
                upper.display().to_string(),
            ],
            plant: "/plant",
            host_dir: upper.join("diff/plant"),
            guarded: true,
        },
        Case {
            what: "an idmapped --rootfs (userns --map-auto --idmap)",
            config: Config::RootfulUserns,
            links: Some(idmap_links),
            args: rootfs(&lab.root),
            plant: "/plant",
            host_dir: lab.root.join("plant"),
            guarded: true,
        },
        Case {
            what: "a --rootfs under userns --map-auto",
            config: Config::RootfulUserns,
            links: None,
            args: rootfs(&lab.root),
            plant: "/plant",
            host_dir: lab.root.join("plant"),
            guarded: false,
        },
    ];
    if need_rootless() {
        cases.push(Case {
            what: "a rootless --rootfs",
            config: Config::Rootless,
            links: None,
            args: rootfs(&lab.root),
            plant: "/plant",
            host_dir: lab.root.join("plant"),
            guarded: false,
        });
    }
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let args = [case.args.clone(), mknod.to_vec()].concat();
        let argv = chain(
            case.config,
            case.links.clone(),
            &args,
            &attack(case.plant, &disk),
        );
        let out = run(&mut lab.in_host("", case.config == Config::Rootless, &argv));
        let err = stderr(&out);
        let text = stdout(&out);
        if !out.status.success() || !text.contains("BLOCKED") && case.guarded {
            failures.push(format!(
                "[{}] the attack did not run: {}\n{text}\n{err}",
                case.what, out.status
            ));
        }
        if err.matches(WARNING).count() != usize::from(case.guarded) {
            failures.push(format!(
                "[{}] the warning is not said once: {err}",
                case.what
            ));
        }
        let found = escalations(&case.host_dir, &attacker, &disk, &format!("CASE-{i}"));
        if !found.is_empty() {
            failures.push(format!(
                "HOLE [claim: a container cannot plant a way to root for other host users: {}]:\n{}\n--- attacker:\n{text}",
                case.what,
                found.join("\n")
            ));
        }
        // The next case plants in the same directory: start it afresh.
        cleanup(&case.host_dir);
        plant_dir(&case.host_dir);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    drop(disk);
    lab.assert_clean();
}

/// Starts a named rootful container sleeping on `root`; returns once it is registered.
fn named_sleeper(lab: &Lab, name: &str, root: &Path) -> std::process::Child {
    let mut argv = Config::Rootful.links(Some(name));
    argv.extend(["mntns", "--rootfs"].map(str::to_owned));
    argv.push(root.display().to_string());
    argv.extend(["--", "/bin/sleep", "30"].map(str::to_owned));
    let child = lab
        .in_host("", false, &argv)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    lab.wait_registered(name);
    child
}

/// `nsps exec` (mntns --join) into a container: the joined process plants as the container
/// would. It gets the container's guard (recorded in its registration; a container nothing
/// registered counts as guarded for host root).
#[test]
fn a_process_joined_with_nsps_exec_cannot_plant_either() {
    if !need() {
        return;
    }
    let lab = Lab::new("setuid-join");
    let disk = LoopDevice::new(&lab.dir.path().join("loop.img"), 1, false);
    let attacker = lab.root.join("nsattack");
    let private = lab.dir.path().join("private");
    mkdir(&private, 0o700);
    let private_root = busybox_root(&private);
    plant_dir(&private_root.join("plant"));
    plant_dir(&lab.root.join("plant"));
    // The chain `nsps exec NAME` runs (mount last), with mntns's own flags; or nsps exec.
    let exec = |name: &str, mntns_args: Option<&[&str]>| {
        let mut argv = Vec::new();
        match mntns_args {
            Some(args) => {
                for link in ["netns", "ipcns", "utsns", "pidns", "mntns"] {
                    argv.extend([link, "--join", name].map(str::to_owned));
                    if link == "mntns" {
                        argv.extend(args.iter().map(|a| (*a).to_owned()));
                    }
                    argv.push("--".into());
                }
            }
            None => argv.extend(["nsps", "exec", name, "--"].map(str::to_owned)),
        }
        argv.extend(attack("/plant", &disk));
        run(&mut lab.in_host("", false, &argv))
    };
    let pid = std::process::id();

    // The defence off: a container on a root only root can reach, joined, then opened.
    let name = format!("sjpriv{pid}");
    let child = named_sleeper(&lab, &name, &private_root);
    let out = exec(&name, Some(&["--cap-add", "MKNOD"]));
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    lab.kill_all_and_wait();
    drop(child);
    mkdir(&private, 0o755);
    let found = escalations(&private_root.join("plant"), &attacker, &disk, "JOIN-PROOF");
    assert_eq!(
        found.len(),
        PLANTED.len() + 1,
        "a joined process cannot plant even unguarded, the test proves nothing:\n{found:#?}\n{}",
        stdout(&out)
    );
    mkdir(&private, 0o700);

    // The defence on: a root others can reach.
    let name = format!("sjpub{pid}");
    let child = named_sleeper(&lab, &name, &lab.root);
    let mut failures = Vec::new();
    for (i, args) in [
        Some(&["--cap-add", "MKNOD", "--cap-add", "FSETID"][..]),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let out = exec(&name, args);
        if !out.status.success() {
            failures.push(format!("{args:?}: {}\n{}", stdout(&out), stderr(&out)));
        }
        let plant = lab.root.join("plant");
        let found = escalations(&plant, &attacker, &disk, &format!("JOIN-GUARDED-{i}"));
        if !found.is_empty() {
            failures.push(format!(
                "HOLE [claim: a process joined with nsps exec cannot plant a way to root for other host users ({args:?})]:\n{}\n--- attacker:\n{}",
                found.join("\n"),
                stdout(&out)
            ));
        }
        cleanup(&plant);
        plant_dir(&plant);
    }
    lab.kill_all_and_wait();
    drop(child);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    drop(disk);
    lab.assert_clean();
}
