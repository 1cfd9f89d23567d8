//! `mntns --image`: containers of images in the store. The image's command, Env and
//! WorkingDir apply as in docker run; its layers are the overlay's lower layers, shared by
//! every container, each with its own writable layer; rmi and prune keep what a container
//! uses; rootful --map-auto (the store idmapped) and rootless runs.

mod image_common;

use std::process::Command;

use image_common::*;
use nschain_tests::*;

/// A lab with the busybox image imported as localhost/bb:1 (CMD printing where it runs, ENV
/// FOO=bar, WORKDIR /tmp), made as `podman import` would, by `nsimage import`.
fn busybox_lab() -> Lab {
    let lab = Lab::new();
    let tar = busybox_rootfs_tar(lab.path());
    ok(&mut lab.nsimage(&[
        "import",
        tar.to_str().unwrap(),
        "localhost/bb:1",
        "--change",
        BB_CMD,
        "--change",
        "ENV FOO=bar",
        "--change",
        "WORKDIR /tmp",
    ]));
    lab
}

#[test]
fn an_image_runs_its_command_with_its_env_and_workdir() {
    if !need::root() || !need::busybox() {
        return;
    }
    let lab = busybox_lab();
    assert_eq!(
        ok(&mut lab.run_image("localhost/bb:1", &[])),
        "hello from Linux in /tmp FOO=bar"
    );
    // A given COMMAND replaces Cmd; -e overrides the image's Env; -w its WorkingDir.
    let out = ok(&mut lab.run_image(
        "localhost/bb:1",
        &[
            "-e",
            "FOO=mine",
            "-w",
            "/etc",
            "--",
            "sh",
            "-c",
            "echo $FOO $(pwd)",
        ],
    ));
    assert_eq!(out, "mine /etc");
    // A directory has the tar's mtime, though its file was unpacked after it.
    assert_eq!(
        ok(&mut lab.run_image("localhost/bb:1", &["--", "stat", "-c", "%Y", "/var/www"])),
        "1000000000"
    );
    // The caller's environment is not the container's (docker run does not pass it).
    let mut cmd = lab.run_image("localhost/bb:1", &["--", "sh", "-c", "echo ${LEAK:-none}"]);
    cmd.env("LEAK", "leaked");
    assert_eq!(ok(&mut cmd), "none");
    // --entrypoint replaces the image's and drops its Cmd.
    assert_eq!(
        ok(&mut lab.run_image(
            "localhost/bb:1",
            &["--entrypoint", "/bin/echo", "--", "from", "entrypoint"]
        )),
        "from entrypoint"
    );
    assert_eq!(
        ok(&mut lab.run_image("localhost/bb:1", &["--entrypoint", "/bin/pwd"])),
        "/tmp"
    );
    // USER: a name from the image's /etc/passwd; an unknown one is an error.
    assert_eq!(
        ok(&mut lab.run_image("localhost/bb:1", &["--user", "www", "--", "id", "-u"])),
        "33"
    );
    let out = run(&mut lab.run_image("localhost/bb:1", &["--user", "nosuchuser", "--", "id"]));
    assert_fatal(&out, "mntns");
}

#[test]
fn an_image_user_from_its_config_is_resolved_in_its_passwd() {
    if !need::root() || !need::busybox() {
        return;
    }
    let lab = Lab::new();
    let tar = busybox_rootfs_tar(lab.path());
    let tar = tar.to_str().unwrap();
    ok(&mut lab.nsimage(&[
        "import",
        tar,
        "localhost/www:1",
        "--change",
        "USER www",
        "--change",
        "CMD [\"id\",\"-u\"]",
    ]));
    assert_eq!(ok(&mut lab.run_image("localhost/www:1", &[])), "33");
    ok(&mut lab.nsimage(&[
        "import",
        tar,
        "localhost/ghost:1",
        "--change",
        "USER ghost",
        "--change",
        "CMD [\"id\"]",
    ]));
    let out = run(&mut lab.run_image("localhost/ghost:1", &[]));
    assert_fatal(&out, "mntns");
    assert!(stderr(&out).contains("ghost"), "{}", stderr(&out));
}

#[test]
fn deleted_files_are_gone_and_a_replaced_directory_holds_only_the_new_files() {
    if !need::root() || !need::busybox() || !need_python() {
        return;
    }
    let lab = Lab::new();
    let base = busybox_rootfs_tar(lab.path());
    let (dir, _) = whiteout_layout(&lab, &base);
    ok(&mut lab.nsimage(&["import", dir.to_str().unwrap(), "localhost/wh:1"]));
    let script = "test -e /etc/secret && echo secret-visible; ls /olddir; cat /data/hardlink; echo; readlink /data/symlink";
    let out = ok(&mut lab.run_image("localhost/wh:1", &["--", "sh", "-c", script]));
    assert_eq!(out, "new\nlinked\n/etc/passwd");
    // The same in a user namespace, where overlayfs reads user.overlay.* (userxattr) through
    // the idmapped store.
    let mut cmd = lab.tool("userns");
    cmd.args(["--map-auto", "--idmap"]).arg(lab.store());
    cmd.args([
        "--",
        "pidns",
        "--",
        "mntns",
        "--image",
        "localhost/wh:1",
        "--rm",
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(ok(&mut cmd), "new\nlinked\n/etc/passwd");
}

#[test]
fn a_missing_image_or_bad_reference_is_refused_with_the_pull_hint() {
    if !need::root() {
        return;
    }
    let lab = Lab::new();
    let out = run(&mut lab.run_image("nginx", &[]));
    assert_fatal(&out, "mntns");
    assert!(
        stderr(&out).contains("nsimage pull nginx"),
        "{}",
        stderr(&out)
    );
    for bad in ["Bad:Ref", "a//b", "x@sha256:00", ""] {
        let out = run(&mut lab.run_image(bad, &[]));
        assert_fatal(&out, "mntns");
    }
    assert!(
        !lab.state.join("data/overlay").exists()
            || std::fs::read_dir(lab.state.join("data/overlay"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn three_containers_share_the_layers_with_their_own_diff_and_rmi_prune_keep_them() {
    if !need::root() || !need::busybox() {
        return;
    }
    let lab = busybox_lab();
    let layers = lab.store_contents().1;
    assert_eq!(layers.len(), 1);
    for name in ["c1", "c2", "c3"] {
        let mut cmd = lab.tool("pidns");
        cmd.args([
            "--",
            "mntns",
            "--name",
            name,
            "--image",
            "localhost/bb:1",
            "--",
            "sh",
            "-c",
        ]);
        cmd.arg(format!(
            "echo {name} > /tmp/who; cat /proc/self/mountinfo | grep ' / / '"
        ));
        let mountinfo = ok(&mut cmd);
        assert!(
            mountinfo.contains(&format!(
                "lowerdir={}",
                lab.store()
                    .join("layers")
                    .join(&layers[0])
                    .join("diff")
                    .display()
            )),
            "{mountinfo}"
        );
    }
    for name in ["c1", "c2", "c3"] {
        let diff = lab.state.join("data/overlay").join(name).join("diff");
        assert_eq!(
            std::fs::read_to_string(diff.join("tmp/who"))
                .unwrap()
                .trim(),
            name
        );
        let used = std::fs::read_to_string(
            lab.state
                .join("data/overlay")
                .join(name)
                .join("image-layers"),
        )
        .unwrap();
        assert_eq!(used.trim(), format!("sha256:{}", layers[0]));
    }
    // The image's layer was unpacked once and is in no container's diff.
    assert_eq!(lab.store_contents().1, layers);
    // rmi removes the name; the layer stays while kept containers use it, prune too.
    ok(&mut lab.nsimage(&["rmi", "localhost/bb:1"]));
    ok(&mut lab.nsimage(&["prune"]));
    let (_, left, _, names) = lab.store_contents();
    assert!(names.is_empty());
    assert_eq!(left, layers, "a layer containers use must stay");
    for name in ["c1", "c2", "c3"] {
        ok(lab.tool("nsps").args(["rm", name]));
    }
    ok(&mut lab.nsimage(&["prune"]));
    let (blobs, left, tmp, _) = lab.store_contents();
    assert!(
        blobs.is_empty() && left.is_empty() && tmp.is_empty(),
        "{blobs:?} {left:?} {tmp:?}"
    );
}

#[test]
fn rootful_map_auto_runs_an_image_with_the_store_idmapped() {
    if !need::root() || !need::busybox() {
        return;
    }
    let lab = busybox_lab();
    let store = lab.store();
    let mut cmd = lab.tool("userns");
    cmd.args(["--map-auto", "--idmap"]).arg(&store).args([
        "--",
        "pidns",
        "--",
        "mntns",
        "--image",
        "localhost/bb:1",
        "--rm",
        "--",
        "sh",
        "-c",
    ]);
    cmd.arg("stat -c '%u %a' /bin/busybox /tmp; echo hi > /etc/new && cat /etc/new; echo $FOO");
    let out = ok(&mut cmd);
    assert_eq!(
        out, "0 755\n0 1777\nhi\nbar",
        "host root's layer files read as root inside"
    );
    // Without the idmapped store a range cannot reach the layers (no other host user can:
    // they hold the images' setuid programs); the error says what to do.
    let mut cmd = lab.tool("userns");
    cmd.args([
        "--map-auto",
        "--",
        "pidns",
        "--",
        "mntns",
        "--image",
        "localhost/bb:1",
        "--rm",
        "--",
        "true",
    ]);
    let out = run(&mut cmd);
    assert_fatal(&out, "mntns");
    assert!(stderr(&out).contains("--idmap"), "{}", stderr(&out));
    let layers = lab.store().join("layers");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&layers).unwrap().permissions())
            & 0o777,
        0o700
    );
    // The layer itself was not chowned: it stays host root's, shared by every range.
    let layer = lab
        .store()
        .join("layers")
        .join(&lab.store_contents().1[0])
        .join("diff/bin/busybox");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(layer).unwrap()),
        0
    );
}

#[test]
fn rootless_loads_and_runs_an_image() {
    if !need::rootless() || !need::busybox() {
        return;
    }
    let lab = Lab::new();
    let tar = busybox_rootfs_tar(lab.path());
    std::fs::set_permissions(&tar, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let import = lab.nsimage(&[
        "import",
        tar.to_str().unwrap(),
        "localhost/bb:1",
        "--change",
        BB_CMD,
        "--change",
        "ENV FOO=bar",
        "--change",
        "WORKDIR /tmp",
    ]);
    ok(&mut as_nobody(&import));
    let diff = lab
        .store()
        .join("layers")
        .join(&lab.store_contents().1[0])
        .join("diff");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(diff.join("bin/busybox")).unwrap()),
        NOBODY,
        "the caller's layer"
    );
    let mut cmd = lab.tool("userns");
    cmd.args([
        "--map-root",
        "--",
        "pidns",
        "--",
        "mntns",
        "--image",
        "localhost/bb:1",
        "--rm",
    ]);
    assert_eq!(ok(&mut as_nobody(&cmd)), "hello from Linux in /tmp FOO=bar");
    // Whiteouts and opaque directories, unpacked rootless (char 0:0 made in nsimage's own
    // user namespace, user.overlay.opaque) and honoured by a rootless overlay (userxattr).
    if need_python() {
        let (dir, _) = whiteout_layout(&lab, &tar);
        ok(Command::new("chmod").args(["-R", "a+rX"]).arg(&dir));
        ok(&mut as_nobody(&lab.nsimage(&[
            "import",
            dir.to_str().unwrap(),
            "localhost/wh:1",
        ])));
        let mut cmd = lab.tool("userns");
        cmd.args([
            "--map-root",
            "--",
            "pidns",
            "--",
            "mntns",
            "--image",
            "localhost/wh:1",
            "--rm",
            "--",
            "sh",
            "-c",
            "test -e /etc/secret && echo visible; ls /olddir",
        ]);
        assert_eq!(ok(&mut as_nobody(&cmd)), "new");
        ok(&mut as_nobody(&lab.nsimage(&["rmi", "localhost/wh:1"])));
    }
    // Layers of other owners are squashed, with a warning, when there is no subuid range.
    let owned = lab.path().join("owned.tar");
    ok(Command::new("tar")
        .args(["--owner=1000", "--group=1000", "-C"])
        .arg(lab.path())
        .arg("-cf")
        .arg(&owned)
        .arg("bb"));
    std::fs::set_permissions(&owned, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mut import = lab.nsimage(&["import", owned.to_str().unwrap(), "localhost/owned:1"]);
    let out = run(&mut as_nobody(&import));
    ok_out(&out, "rootless import");
    if !std::fs::read_to_string("/etc/subuid")
        .unwrap_or_default()
        .contains("nobody:")
    {
        assert!(
            stderr(&out).contains("ownership squashed"),
            "{}",
            stderr(&out)
        );
    }
    import = lab.nsimage(&["rmi", "localhost/owned:1", "localhost/bb:1"]);
    ok(&mut as_nobody(&import));
    let (blobs, layers, _, _) = lab.store_contents();
    assert!(
        blobs.is_empty() && layers.is_empty(),
        "{blobs:?} {layers:?}"
    );
}

/// The seed with images: three containers of one busybox-httpd image published on 80, 81 and
/// 82, each in its own `--map-auto` range, each serving a page it wrote into its own writable
/// layer, all on one copy of the image's layers (the store handed down idmapped); rmi and
/// prune keep those layers until the containers' layers are removed.
#[test]
fn three_web_containers_of_one_image_on_80_81_82() {
    if !need::network() || !need::busybox() || !need_python() || !require(have("curl"), "curl") {
        return;
    }
    let lab = Lab::new();
    let base = busybox_rootfs_tar(lab.path());
    let dir = lab.path().join("web-layout");
    layout(&serde_json::json!({
        "dir": dir, "tag": "web",
        "config": {"Cmd": ["httpd", "-f", "-p", "80", "-h", "/www"], "Env": ["PATH=/bin"]},
        "layers": [{"tarball": base}, {"gzip": true, "entries": [
            {"path": "www", "type": "dir"}, {"path": "www/index.html", "data": "image page\n"}]}],
    }));
    ok(&mut lab.nsimage(&["import", dir.to_str().unwrap(), "localhost/web:1"]));
    // The canonical chain: each container in its own range, the store shared idmapped.
    let script = format!(
        r#"
        for i in 0 1 2; do
            netns --bridge --name web$i -p 8$i:80 -- userns --map-auto --idmap {store} -- pidns -- \
                mntns --image localhost/web:1 --entrypoint /bin/sh -- \
                -c "echo web$i > /www/index.html; exec httpd -f -p 80 -h /www" &
        done
        for i in 0 1 2; do wait_for curl -sf 127.0.0.1:8$i; done
        for i in 0 1 2; do echo "port 8$i: $(curl -s -m 3 127.0.0.1:8$i)"; done
        kill $(jobs -p); wait || true
    "#,
        store = lab.store().display()
    );
    let out = in_throwaway_host(&lab.state, 90, &script);
    let text = ok_out(&out, "three web containers");
    let layers = lab.store_contents().1;
    assert_eq!(
        layers.len(),
        2,
        "one copy of the image's two layers: {layers:?}"
    );
    // While the kept containers exist, prune keeps the image's layers even without a name.
    ok(&mut lab.nsimage(&["rmi", "localhost/web:1"]));
    assert_eq!(lab.store_contents().1, layers, "layers in use must stay");
    let data = lab.state.join("data");
    for i in 0..3 {
        assert!(text.contains(&format!("port 8{i}: web{i}")), "{text}");
        // Each container's own layer, in its range's data directory.
        let found: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .flatten()
            .map(|e| e.path().join("overlay").join(format!("web{i}")))
            .filter(|p| p.exists())
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            std::fs::read_to_string(found[0].join("diff/www/index.html")).unwrap(),
            format!("web{i}\n")
        );
        ok(lab.tool("nsps").args(["rm", &format!("web{i}")]));
    }
    ok(&mut lab.nsimage(&["prune"]));
    assert!(lab.store_contents().1.is_empty());
}

/// A running container holds no store lock (its cleaner and waiter must not keep one):
/// prune runs while it runs and keeps the layers its writable layer names.
#[test]
fn prune_while_a_container_runs_keeps_its_layers_and_does_not_wait_for_it() {
    if !need::root() || !need::busybox() {
        return;
    }
    let lab = busybox_lab();
    for chain in [&["mntns"][..], &["pidns", "--", "mntns"][..]] {
        let image = lab.inspect("localhost/bb:1");
        let used = image["layers"][0]["diffId"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_owned();
        let mut cmd = lab.tool(chain[0]);
        cmd.args(&chain[1..]).args([
            "--image",
            "localhost/bb:1",
            "--rm",
            "--",
            "sh",
            "-c",
            "touch /tmp/up; sleep 60",
        ]);
        let mut child = cmd.stdin(std::process::Stdio::null()).spawn().unwrap();
        let overlay = lab.state.join("data/overlay");
        let mut up = false;
        for _ in 0..400 {
            up = std::fs::read_dir(&overlay)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.path().join("diff/tmp/up").exists());
            if up {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(up, "the container did not start");
        ok(&mut lab.nsimage(&["rmi", "localhost/bb:1"]));
        // `timeout` only catches a hang (a prune waiting for the container's end).
        let mut prune = Command::new("timeout");
        prune.arg("30").arg(bin("nsimage")).arg("prune");
        with_env(&mut prune, &lab.state);
        ok(&mut prune);
        let left = lab.store_contents().1;
        assert!(
            left.contains(&used),
            "{chain:?}: a running container's layer must stay: {left:?}"
        );
        // SIGTERM, forwarded to the container (SIGKILL of the waiter could leave its sleep).
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap();
        // Put the name back for the next chain (the same tarball: the same layer).
        let tar = lab.path().join("busybox-rootfs.tar");
        ok(&mut lab.nsimage(&["import", tar.to_str().unwrap(), "localhost/bb:1"]));
    }
}
