//! nsimage: the store as an OCI image layout, filled from real archives (podman save in both
//! forms, skopeo layouts, a rootfs tarball), multi-layer images with whiteouts in overlayfs
//! form, hostile layers (each attack first shown to work on a naive extraction), tampered
//! blobs, and bad input that must leave the store as it was.

mod image_common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use image_common::*;
use nschain_tests::*;

fn id_and_layers(image: &Value) -> (String, Vec<String>) {
    let layers = image["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["diffId"].as_str().unwrap().to_owned())
        .collect();
    (image["id"].as_str().unwrap().to_owned(), layers)
}

#[test]
fn podman_save_in_both_forms_loads_the_same_image() {
    if !need_podman() {
        return;
    }
    let lab = Lab::new();
    let (oci, docker) = podman_busybox(lab.path());
    let out = ok(&mut lab.nsimage(&["load", oci.to_str().unwrap()]));
    assert_eq!(out.trim(), "Loaded image: localhost/bb:1");
    let from_oci = lab.inspect("localhost/bb:1");
    let other = Lab::new();
    let out = ok(&mut other.nsimage(&["load", "-i", docker.to_str().unwrap()]));
    assert_eq!(out.trim(), "Loaded image: localhost/bb:1");
    let from_docker = other.inspect("localhost/bb:1");
    assert_eq!(id_and_layers(&from_oci), id_and_layers(&from_docker));
    for image in [&from_oci, &from_docker] {
        let config = &image["config"];
        assert_eq!(config["WorkingDir"], "/tmp", "{image}");
        assert!(
            config["Env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "FOO=bar"),
            "{image}"
        );
        assert_eq!(config["Cmd"][0], "/bin/sh", "{image}");
        assert!(config["ExposedPorts"]["80/tcp"].is_object(), "{image}");
    }
    // Standard input works too, and loading again changes nothing.
    let before = lab.store_contents();
    let again = lab
        .nsimage(&["load"])
        .stdin(std::fs::File::open(&oci).unwrap())
        .output()
        .unwrap();
    assert_eq!(
        ok_out(&again, "nsimage load < archive").trim(),
        "Loaded image: localhost/bb:1"
    );
    assert_eq!(lab.store_contents(), before);
    // The store is an OCI layout other tools read: skopeo sees the same config.
    let seen = ok(Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:localhost/bb:1", lab.store().display())));
    assert!(seen.contains("FOO=bar"), "{seen}");
}

#[test]
fn skopeo_copies_out_of_the_store_and_back() {
    if !need_podman() {
        return;
    }
    let lab = Lab::new();
    let (oci, _) = podman_busybox(lab.path());
    ok(&mut lab.nsimage(&["load", oci.to_str().unwrap()]));
    let out_layout = lab.path().join("out");
    let store = lab.store();
    ok(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:localhost/bb:1", store.display()))
        .arg(format!("oci:{}:bb", out_layout.display())));
    // skopeo writes into the store as into any layout; nsimage lists what it wrote.
    ok(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:bb", out_layout.display()))
        .arg(format!("oci:{}:localhost/bb:back", store.display())));
    let listed: Value = serde_json::from_str(&ok(&mut lab.nsimage(&["images", "--json"]))).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"localhost/bb:1") && names.contains(&"localhost/bb:back"),
        "{listed}"
    );
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one image, two names: {listed}"
    );
    // And `nsimage import DIR` of skopeo's layout gives the same image again.
    ok(&mut lab.nsimage(&[
        "import",
        out_layout.to_str().unwrap(),
        "localhost/bb:imported",
    ]));
    assert_eq!(
        lab.inspect("localhost/bb:imported")["id"],
        lab.inspect("localhost/bb:1")["id"]
    );
}

#[test]
fn a_rootfs_tarball_is_imported_with_its_changes() {
    let lab = Lab::new();
    if !need::busybox() {
        return;
    }
    let tar = busybox_rootfs_tar(lab.path());
    let out = ok(&mut lab.nsimage(&[
        "import",
        tar.to_str().unwrap(),
        "bb:2",
        "--change",
        "CMD [\"/bin/sh\",\"-c\",\"echo imported\"]",
        "--change",
        "ENV A=1 B=2",
        "--change",
        "WORKDIR /tmp",
        "--change",
        "USER www",
    ]));
    assert_eq!(out.trim(), "Imported image: docker.io/library/bb:2");
    let image = lab.inspect("bb:2");
    assert_eq!(image["config"]["Cmd"][2], "echo imported");
    let env = image["config"]["Env"].to_string();
    assert!(
        env.contains("A=1") && env.contains("B=2") && env.contains("PATH="),
        "{env}"
    );
    assert_eq!(image["config"]["User"], "www");
    // The short name, as docker shows it, finds the same image; so does its digest, within
    // its repository only.
    assert_eq!(lab.inspect("docker.io/library/bb:2")["id"], image["id"]);
    let digest = image["digest"].as_str().unwrap();
    assert_eq!(lab.inspect(&format!("bb@{digest}"))["id"], image["id"]);
    assert_eq!(
        lab.inspect(&format!("bb:other@{digest}"))["id"],
        image["id"]
    );
    assert_fatal(
        &run(&mut lab.nsimage(&["inspect", &format!("elsewhere@{digest}")])),
        "nsimage",
    );
    // tag gives it another name; rmi of one name keeps the image for the other.
    ok(&mut lab.nsimage(&["tag", "bb:2", "localhost/copy:1"]));
    ok(&mut lab.nsimage(&["rmi", "bb:2"]));
    assert_eq!(lab.inspect("localhost/copy:1")["id"], image["id"]);
    assert_eq!(lab.store_contents().1.len(), 1);
    let table = ok(&mut lab.nsimage(&["images"]));
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["localhost/copy", "1"])),
        "{table}"
    );
}

#[test]
fn whiteouts_and_opaque_directories_are_unpacked_in_overlayfs_form() {
    if !need::root() || !need::busybox() || !need_python() {
        return;
    }
    let lab = Lab::new();
    let base = busybox_rootfs_tar(lab.path());
    let (dir, written) = whiteout_layout(&lab, &base);
    ok(&mut lab.nsimage(&["import", dir.to_str().unwrap(), "localhost/wh:1"]));
    let diff = |i: usize| {
        lab.store()
            .join("layers")
            .join(
                written["diff_ids"][i]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:"),
            )
            .join("diff")
    };
    let top = diff(2);
    let whiteout = std::fs::symlink_metadata(top.join("etc/secret")).unwrap();
    assert!(
        whiteout.file_type().is_char_device() && whiteout.rdev() == 0,
        "etc/secret must be a char 0:0 whiteout"
    );
    for attr in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        assert_eq!(xattr(&top.join("olddir"), attr), "y", "{attr}");
    }
    let file = std::fs::metadata(top.join("data/file")).unwrap();
    assert_eq!(
        (file.uid(), file.gid(), file.nlink()),
        (1000, 1000, 2),
        "ownership and the hard link kept"
    );
    assert_eq!(
        std::fs::metadata(top.join("data/hardlink")).unwrap().ino(),
        file.ino()
    );
    assert_eq!(
        std::fs::read_link(top.join("data/symlink")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(xattr(&top.join("data/file"), "user.note"), "kept");
    assert_eq!(
        std::fs::metadata(top.join("data")).unwrap().mode() & 0o7777,
        0o1777
    );
    // The lower layer is untouched: its files are still there.
    assert!(diff(1).join("olddir/a").is_file() && diff(1).join("etc/secret").is_file());
}

/// An extended attribute's value (Python's os.getxattr: getfattr is not always installed).
fn xattr(path: &Path, name: &str) -> String {
    ok(Command::new("python3").args(["-c", "import os,sys; print(os.getxattr(sys.argv[1], sys.argv[2], follow_symlinks=False).decode())"]).arg(path).arg(name))
}

/// What an attack looks like: one layer of entries, plus a file outside the layer that the
/// attack aims at.
struct Attack {
    name: &'static str,
    entries: Value,
    /// Where the naive extraction writes outside its directory.
    escaped: &'static str,
}

fn attacks(outside: &Path) -> Vec<Attack> {
    let target = outside.join("target");
    vec![
        Attack {
            name: "dotdot",
            entries: serde_json::json!([{"path": "../../outside/target", "data": "pwned"}]),
            escaped: "target",
        },
        Attack {
            name: "symlink-then-write",
            entries: serde_json::json!([
                {"path": "link", "type": "symlink", "link": outside},
                {"path": "link/target", "data": "pwned"},
            ]),
            escaped: "target",
        },
        Attack {
            name: "hardlink-to-outside",
            entries: serde_json::json!([
                {"path": "hl", "type": "hardlink", "link": target},
                {"path": "hl", "data": "pwned"},
            ]),
            escaped: "target",
        },
    ]
}

#[test]
fn hostile_layers_escape_a_naive_extraction_but_not_nsimage() {
    if !need::root() || !need_python() {
        return;
    }
    for kind in 0..3 {
        let lab = Lab::new();
        // The attack aims at scratch/outside/target; the layer is unpacked two levels below
        // scratch (scratch/x/naive), so `../../outside` reaches it.
        let outside = lab.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let target = outside.join("target");
        std::fs::write(&target, "original").unwrap();
        let attack = attacks(&outside).remove(kind);
        // Proof: Python's trusting extractall writes through the attack.
        let naive = lab.path().join("x/naive");
        std::fs::create_dir_all(&naive).unwrap();
        layout(
            &serde_json::json!({"dir": lab.path().join("proof"), "tag": "t", "layers": [{"entries": attack.entries, "naive": naive}]}),
        );
        assert_eq!(
            std::fs::read_to_string(outside.join(attack.escaped)).unwrap(),
            "pwned",
            "{}: the naive extraction must escape",
            attack.name
        );
        std::fs::write(&target, "original").unwrap();
        // nsimage refuses the layer, and nothing is written outside or left in the store.
        let dir = lab.path().join("evil");
        layout(
            &serde_json::json!({"dir": dir, "tag": "t", "layers": [{"entries": attack.entries}]}),
        );
        let out = run(&mut lab.nsimage(&["import", dir.to_str().unwrap(), "localhost/evil:1"]));
        assert_fatal(&out, "nsimage");
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "original",
            "{}",
            attack.name
        );
        let (blobs, layers, tmp, names) = lab.store_contents();
        assert!(
            blobs.is_empty() && layers.is_empty() && tmp.is_empty() && names.is_empty(),
            "{}: left {blobs:?} {layers:?} {tmp:?} {names:?}",
            attack.name
        );
        let message = stderr(&out);
        let explained = ["escapes the layer", "symbolic link", "hard link"];
        assert!(
            explained.iter().any(|e| message.contains(e)),
            "{}: {message}",
            attack.name
        );
    }
}

#[test]
fn a_tampered_blob_is_refused() {
    if !need::busybox() || !need_python() {
        return;
    }
    let lab = Lab::new();
    let base = busybox_rootfs_tar(lab.path());
    let dir = lab.path().join("layout");
    let written = layout(
        &serde_json::json!({"dir": dir, "tag": "t", "config": {"Cmd": ["/bin/true"]}, "layers": [{"tarball": base}]}),
    );
    let layer = written["layers"][0]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let blob = dir.join("blobs/sha256").join(layer);
    let mut bytes = std::fs::read(&blob).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x55;
    std::fs::write(&blob, &bytes).unwrap();
    let out = run(&mut lab.nsimage(&["import", dir.to_str().unwrap(), "localhost/tampered:1"]));
    assert_fatal(&out, "nsimage");
    assert!(
        stderr(&out).contains("does not match its digest"),
        "{}",
        stderr(&out)
    );
    let (blobs, layers, tmp, names) = lab.store_contents();
    assert!(
        blobs.is_empty() && layers.is_empty() && tmp.is_empty() && names.is_empty(),
        "left {blobs:?} {layers:?} {tmp:?} {names:?}"
    );

    // A blob changed inside the store is refused when read.
    let fresh = lab.path().join("fresh");
    let written = layout(
        &serde_json::json!({"dir": fresh, "tag": "t", "config": {"Cmd": ["/bin/true"]}, "layers": [{"tarball": base}]}),
    );
    ok(&mut lab.nsimage(&["import", fresh.to_str().unwrap(), "localhost/ok:1"]));
    let config = lab.store().join("blobs/sha256").join(
        written["config"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("/bin/true", "/bin/evil");
    std::fs::write(&config, text).unwrap();
    let out = run(&mut lab.nsimage(&["inspect", "localhost/ok:1"]));
    assert_fatal(&out, "nsimage");
    assert!(stderr(&out).contains("is corrupt"), "{}", stderr(&out));
    let out = run(&mut lab.run_image("localhost/ok:1", &[]));
    assert_fatal(&out, "mntns");
    assert!(stderr(&out).contains("is corrupt"), "{}", stderr(&out));
}

#[test]
fn concurrent_loads_of_one_archive_both_succeed_and_store_it_once() {
    if !need_podman() {
        return;
    }
    let lab = Lab::new();
    let (oci, _) = podman_busybox(lab.path());
    let children: Vec<_> = (0..2)
        .map(|_| {
            lab.nsimage(&["load", oci.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        ok_out(&child.wait_with_output().unwrap(), "concurrent load");
    }
    let (blobs, layers, tmp, names) = lab.store_contents();
    assert_eq!(names, ["localhost/bb:1"]);
    assert_eq!(layers.len(), 1, "{layers:?}");
    assert_eq!(blobs.len(), 3, "manifest, config, layer: {blobs:?}");
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[test]
fn bad_references_missing_images_and_broken_archives_exit_125_and_leave_nothing() {
    if !need::busybox() {
        return;
    }
    let lab = Lab::new();
    let dir = lab.path();
    let tar = busybox_rootfs_tar(dir);
    std::fs::write(dir.join("garbage"), "not a tar at all\n".repeat(100)).unwrap();
    let bytes = std::fs::read(&tar).unwrap();
    std::fs::write(dir.join("truncated.tar"), &bytes[..bytes.len() / 3]).unwrap();
    // A docker-archive whose manifest.json names a layer it lacks.
    let broken = dir.join("broken-docker");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("manifest.json"),
        r#"[{"Config":"c.json","RepoTags":["x/y:1"],"Layers":["missing.tar"]}]"#,
    )
    .unwrap();
    std::fs::write(broken.join("c.json"), r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#).unwrap();
    ok(Command::new("tar")
        .arg("-C")
        .arg(&broken)
        .arg("-cf")
        .arg(dir.join("broken-docker.tar"))
        .arg("."));
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (garbage, truncated, broken_tar, tar_s) = (
        p("garbage"),
        p("truncated.tar"),
        p("broken-docker.tar"),
        tar.to_string_lossy().into_owned(),
    );
    let cases: Vec<Vec<&str>> = vec![
        vec!["inspect", "Upper:case"],
        vec!["inspect", "bb@sha256:1234"],
        vec!["inspect", "no-such-image"],
        vec!["tag", "no-such-image", "x:1"],
        vec!["tag", "no-such-image", "bad//name"],
        vec!["rmi", "no-such-image"],
        vec!["rmi", "-bad"],
        vec!["load", &garbage],
        vec!["load", &truncated],
        vec!["load", &broken_tar],
        vec!["load", "/no/such/file"],
        vec!["load", "-i", &tar_s],
        vec!["import", &tar_s, "Bad:Ref"],
        vec!["import", &tar_s, "ok:1", "--change", "FROM scratch"],
        vec!["import", &tar_s, "ok:1", "--change", "CMD [\"unterminated"],
        vec!["import", &tar_s, "ok:1", "--change", "ENV"],
        vec!["import", &garbage, "ok:1"],
        vec!["import", "/no/such/dir", "ok:1"],
        vec!["pull", "Bad:Ref"],
    ];
    for args in cases {
        let out = run(&mut lab.nsimage(&args));
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stderr(&out));
        assert_fatal(&out, "nsimage");
        let (blobs, layers, tmp, names) = lab.store_contents();
        assert!(
            blobs.is_empty() && layers.is_empty() && tmp.is_empty() && names.is_empty(),
            "{args:?} left {blobs:?} {layers:?} {tmp:?} {names:?}"
        );
    }
    let out = run(&mut lab.nsimage(&["inspect", "no-such-image"]));
    assert!(
        stderr(&out).contains("nsimage pull no-such-image"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rootless_unpacking_keeps_ownership_with_a_subuid_range_else_squashes_it() {
    if !need::rootless() || !need_python() {
        return;
    }
    let lab = Lab::new();
    let dir = lab.path().join("owned");
    layout(
        &serde_json::json!({"dir": dir, "tag": "t", "layers": [{"entries": [
            {"path": "mine", "data": "x", "uid": 1000, "gid": 1000},
            {"path": "gone", "type": "dir"},
        ]}]}),
    );
    ok(Command::new("chmod").args(["-R", "a+rX"]).arg(&dir));
    let subids = lab.path().join("subids");
    std::fs::write(&subids, "nobody:300000:65536\n").unwrap();
    let import = lab.nsimage(&["import", dir.to_str().unwrap(), "localhost/owned:1"]);
    // As nobody with a private /etc/subuid and /etc/subgid delegating 300000-365535.
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", "mount --bind \"$1\" /etc/subuid && mount --bind \"$1\" /etc/subgid && shift && exec setpriv --reuid 65534 --regid 65534 --clear-groups -- \"$@\"", "sh"]);
    cmd.arg(&subids)
        .arg(import.get_program())
        .args(import.get_args());
    for (k, v) in import.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let out = run(&mut cmd);
    ok_out(&out, "rootless import with a range");
    assert!(!stderr(&out).contains("squashed"), "{}", stderr(&out));
    let layer = lab
        .store()
        .join("layers")
        .join(&lab.store_contents().1[0])
        .join("diff");
    let meta = std::fs::metadata(layer.join("mine")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (300999, 300999),
        "uid 1000 of the image is the range's 1000th id"
    );
    assert_eq!(std::fs::metadata(&layer).unwrap().uid(), NOBODY);
    // Removal works from the same namespace.
    ok(&mut as_nobody(&lab.nsimage(&["rmi", "localhost/owned:1"])));
    assert!(lab.store_contents().1.is_empty());
}

#[test]
fn docker_25_combined_archives_load_by_either_name() {
    if !need::busybox() || !need_python() {
        return;
    }
    let lab = Lab::new();
    let base = busybox_rootfs_tar(lab.path());
    for (named, name) in [
        (true, "docker.io/library/bb:25"),
        (false, "docker.io/library/bb:25b"),
    ] {
        let dir = lab.path().join(format!("d25-{named}"));
        layout(&serde_json::json!({
            "dir": dir, "tag": "25", "config": {"Cmd": ["/bin/true"]},
            "layers": [{"tarball": base}],
            "docker25": {"named": named, "name": name},
        }));
        let archive = lab.path().join(format!("d25-{named}.tar"));
        ok(Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("-cf")
            .arg(&archive)
            .arg("."));
        let out = ok(&mut lab.nsimage(&["load", archive.to_str().unwrap()]));
        // With io.containerd.image.name the OCI side names it; without, manifest.json's RepoTags.
        assert_eq!(out.trim(), format!("Loaded image: {name}"));
    }
    assert_eq!(
        lab.inspect("bb:25")["id"],
        lab.inspect("bb:25b")["id"],
        "the same image either way"
    );
}

#[test]
fn device_nodes_are_made_as_root_and_skipped_with_a_warning_rootless() {
    if !need::rootless() || !need_python() {
        return;
    }
    let lab = Lab::new();
    let dir = lab.path().join("devices");
    layout(
        &serde_json::json!({"dir": dir, "tag": "t", "layers": [{"entries": [
            {"path": "dev", "type": "dir"},
            {"path": "dev/null2", "type": "char", "major": 1, "minor": 3, "mode": 0o666},
            {"path": "dev/fifo", "type": "fifo"},
        ]}]}),
    );
    ok(Command::new("chmod").args(["-R", "a+rX"]).arg(&dir));
    // As root the node is made as the layer says (not an empty file, as tar's unpack_in does).
    ok(&mut lab.nsimage(&["import", dir.to_str().unwrap(), "localhost/dev:1"]));
    let layer = |lab: &Lab| {
        lab.store()
            .join("layers")
            .join(&lab.store_contents().1[0])
            .join("diff")
    };
    let node = std::fs::symlink_metadata(layer(&lab).join("dev/null2")).unwrap();
    assert!(node.file_type().is_char_device() && node.rdev() == libc::makedev(1, 3));
    // Rootless the kernel refuses it: skipped, said once; the fifo is made.
    let rootless = Lab::new();
    let out = run(&mut as_nobody(&rootless.nsimage(&[
        "import",
        dir.to_str().unwrap(),
        "localhost/dev:1",
    ])));
    ok_out(&out, "rootless import of a device node");
    assert!(
        stderr(&out).contains("skipped device nodes") && stderr(&out).contains("dev/null2 (1:3)"),
        "{}",
        stderr(&out)
    );
    assert!(!layer(&rootless).join("dev/null2").exists());
    assert!(std::fs::symlink_metadata(layer(&rootless).join("dev/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
}
