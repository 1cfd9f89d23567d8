//! Attacks on nschain's own state and id maps (issue 13, items 8, 9 and 10): another
//! container's layer read through a root that shows the host's files, state directories a
//! chain cannot use or another user controls, and the host's root group reached through a
//! map that only named users. Each attack first runs where it must succeed.

mod escape_common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use escape_common::*;
use nschain_tests::*;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// Item 8: a rootful chain whose root shows the host's files (`--overlay /`)
/// reads nothing of the data and run directories: not the layer of a `--map-auto`
/// container (its 0700 /root included), not a rootful container's layer, not the chains'
/// registrations.
#[test]
fn another_containers_layer_and_the_run_directory_are_hidden() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("layers");
    let root = lab.root.display().to_string();
    // Two victims, each leaving its layer behind: one in a range, one rootful.
    let plant = "mkdir -p /root && chmod 700 /root && echo victim-secret > /root/secret";
    for (config, name) in [
        (Config::RootfulUserns, "victim-ru"),
        (Config::Rootful, "victim-r"),
    ] {
        let victim = lab.chain_argv(
            config,
            Some(name),
            &["--overlay", &root],
            &["sh", "-c", plant],
        );
        let out = run(&mut lab.in_host("", false, &victim));
        assert!(out.status.success(), "victim {name}: {}", stderr(&out));
    }
    let data = lab.state.join("data");
    let ranges = lab.range_data_dirs();
    assert_eq!(ranges.len(), 1, "one range data directory: {ranges:?}");
    let range_layer = ranges[0].join("overlay/victim-ru/diff/root/secret");
    let rootful_layer = data.join("overlay/victim-r/diff/root/secret");
    let registration = lab.state.join("run/probe");
    std::fs::write(&registration, "run-dir-secret").unwrap();
    chmod(&registration, 0o644);
    let targets: Vec<String> = [&range_layer, &rootful_layer, &registration]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let nsattack = lab.root.join("nsattack").display().to_string();
    let mut attack = vec![nsattack.as_str(), "read"];
    attack.extend(targets.iter().map(String::as_str));

    // On the host the very same reads succeed: the paths are right and the files readable.
    let mut on_host = argv(&attack);
    on_host.insert(0, "--".to_owned());
    on_host.insert(0, "pidns".to_owned());
    let out = run(&mut lab.in_host("", false, &on_host));
    let seen = stdout(&out);
    assert_eq!(
        seen.lines().filter(|l| l.starts_with("ESCAPED")).count(),
        3,
        "on the host every file must be readable (the attack must be able to succeed):\n{seen}\n{}",
        stderr(&out)
    );

    let chain = lab.chain_argv(Config::Rootful, None, &["--overlay", "/", "--rm"], &attack);
    let out = run(&mut lab.in_host("", false, &chain));
    let text = stdout(&out);
    assert_blocked(
        "claim: the data and run directories are hidden from a root that shows the host",
        Config::Rootful,
        &out,
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("BLOCKED")).count(),
        3,
        "{text}"
    );
    std::fs::remove_file(&registration).unwrap();
    let kept: Vec<&Path> = vec![ranges[0].as_path(), Path::new(&data)];
    lab.assert_clean_keeping(&kept);
}

/// Item 9: a rootful `--overlay` start makes the data directory; a `--map-auto` chain
/// after it still reaches its range's own directory through it. Made 0700 (as before), the
/// range's root could not: the chain fails, with a hint that names the fix.
#[test]
fn a_rootful_start_leaves_the_data_directory_usable_by_map_auto_chains() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("datamode");
    let root = lab.root.display().to_string();
    let data = lab.state.join("data");
    assert!(!data.exists());
    let rootful = lab.chain_argv(
        Config::Rootful,
        None,
        &["--overlay", &root, "--rm"],
        &["true"],
    );
    let out = run(&mut lab.in_host("", false, &rootful));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        mode_of(&data),
        0o711,
        "the data directory: searchable, not listable"
    );
    assert_eq!(mode_of(&data.join("overlay")), 0o700);
    let ranged = lab.chain_argv(
        Config::RootfulUserns,
        None,
        &["--overlay", &root, "--rm"],
        &["sh", "-c", "echo in-range"],
    );

    // The defence off: the data directory as the old rootful start left it.
    chmod(&data, 0o700);
    let out = run(&mut lab.in_host("", false, &ranged));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be entered by the namespace's root: chmod 711 it"),
        "{}",
        stderr(&out)
    );

    chmod(&data, 0o711);
    let out = run(&mut lab.in_host("", false, &ranged));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "in-range");
    let ranges = lab.range_data_dirs();
    let mut kept: Vec<&Path> = ranges.iter().map(PathBuf::as_path).collect();
    kept.push(&data);
    lab.assert_clean_keeping(&kept);
}

/// Item 9: a run directory another user made (as `/tmp/nschain-UID` can be, by anyone) is
/// refused, not used: its owner could rename the victim's registrations.
#[test]
fn a_run_directory_another_user_controls_is_refused() {
    if !need_root() || !need_rootless() {
        return;
    }
    let lab = Lab::new("rundir");
    let planted = lab.dir.path().join("planted");
    std::fs::create_dir(&planted).unwrap();
    chmod(&planted, 0o777);
    std::os::unix::fs::chown(&planted, Some(65533), Some(65533)).unwrap();
    let planted_s = planted.display().to_string();
    let chain = |run_dir: &str| {
        format!(
            "NSCHAIN_RUN_DIR={run_dir} exec userns --name victim -- utsns -- sh -c 'echo started'"
        )
    };

    // What the planter can do to a registration made in its directory: move it away.
    let victim_dir = lab.dir.path().join("victims-own");
    std::fs::create_dir(&victim_dir).unwrap();
    std::os::unix::fs::chown(&victim_dir, Some(65534), Some(65534)).unwrap();
    let out = run(&mut lab.in_host(
        "",
        true,
        &argv(&["sh", "-c", &chain(&victim_dir.display().to_string())]),
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let moved = run(as_user(65533, "sh").args([
        "-c",
        &format!(
            "mkdir {planted_s}/chains && mv {planted_s}/chains {planted_s}/stolen && echo moved"
        ),
    ]));
    assert_eq!(
        stdout(&moved),
        "moved",
        "the planter rules its directory: {}",
        stderr(&moved)
    );
    std::fs::remove_dir(planted.join("stolen")).unwrap();

    // The defence: the victim refuses the planted directory and makes nothing in it.
    let out = run(&mut lab.in_host("", true, &argv(&["sh", "-c", &chain(&planted_s)])));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{planted_s} belongs to uid"))
            && err.contains("another user made it"),
        "{err}"
    );
    assert!(!stdout(&out).contains("started"));
    assert_eq!(std::fs::read_dir(&planted).unwrap().count(), 0);

    // Nor one that is the victim's own but open to everyone.
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    let out = run(&mut lab.in_host("", true, &argv(&["sh", "-c", &chain(&planted_s)])));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is writable by other users (mode 0777): chmod go-w it"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(&planted).unwrap().count(), 0);
    lab.assert_clean_keeping(&[&victim_dir]);
}

/// Item 10: `userns --map-users` alone does not hand the host's gid 0 to the container:
/// the gid map follows the uid map (said on stderr), so the container's root cannot write a
/// host file that is `0660 root:root`. Mapped by hand (`--map-groups 0:0:1`, the old
/// default), it could.
#[test]
fn map_users_alone_does_not_map_the_host_root_group() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("gid0");
    let file = lab.dir.path().join("root-group-file");
    std::fs::write(&file, "host\n").unwrap();
    chmod(&file, 0o660);
    let f = file.display().to_string();
    let write = format!(
        "if echo pwned >> {f}; then echo ESCAPED; else echo BLOCKED; fi; cat /proc/self/gid_map"
    );
    let with = |maps: &[&str]| {
        let mut v = vec!["userns"];
        v.extend_from_slice(maps);
        v.extend_from_slice(&["--", "sh", "-c", &write]);
        run(&mut lab.in_host("", false, &argv(&v)))
    };

    let weakened = with(&["--map-users", "0:100000:65536", "--map-groups", "0:0:1"]);
    assert!(
        stdout(&weakened).starts_with("ESCAPED"),
        "with gid 0 mapped the write must succeed: {}\n{}",
        stdout(&weakened),
        stderr(&weakened)
    );
    std::fs::write(&file, "host\n").unwrap();

    let out = with(&["--map-users", "0:100000:65536"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("BLOCKED"), "{text}");
    assert!(
        text.split_whitespace()
            .eq(["BLOCKED", "0", "100000", "65536"]),
        "the gid map follows the uid map: {text}"
    );
    assert!(
        stderr(&out).contains(
            "userns: note: the gid map follows --map-users (0:100000:65536); give --map-groups to choose another"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "host\n");
    lab.assert_clean();
}

/// Two chains that keep their state in different run directories never run in the same host
/// range: the second sees the first's processes, not only its own lease files. (Before, both
/// got the pool's first free range.)
#[test]
fn chains_of_different_run_directories_get_different_ranges() {
    if !need_root() {
        return;
    }
    let first = Lab::new("range-a");
    let second = Lab::new("range-b");
    let holder = argv(&[
        "userns",
        "--map-auto",
        "--",
        "sh",
        "-c",
        "cat /proc/self/uid_map; exec sleep 30",
    ]);
    let mut running = first
        .in_host("", false, &holder)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(running.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let out = run(&mut second.in_host(
        "",
        false,
        &argv(&["userns", "--map-auto", "--", "cat", "/proc/self/uid_map"]),
    ));
    first.kill_all_and_wait();
    let _ = running.wait();
    assert!(out.status.success(), "{}", stderr(&out));
    let first_range: Vec<&str> = line.split_whitespace().collect();
    let text = stdout(&out);
    let second_range: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(first_range.len(), 3, "{line}");
    assert_eq!(second_range.len(), 3, "{text}");
    assert_ne!(
        first_range[1], second_range[1],
        "two run directories, one host range: {first_range:?} {second_range:?}"
    );
    first.assert_clean();
    second.assert_clean();
}
