//! What the image suites share: a scratch state directory (its own image store), images built
//! from real parts (a busybox rootfs, `podman import`/`podman save`, layouts written by
//! Python's tarfile for what podman cannot make), and a view of the store's files to check
//! that a refused input left nothing behind.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nschain_tests::*;

pub const APPLETS: &[&str] = &[
    "sh", "cat", "ls", "echo", "id", "env", "pwd", "uname", "test", "sleep", "touch", "stat",
    "readlink", "httpd", "wget", "true", "mkdir",
];

const LAYOUT_PY: &str = include_str!("layout.py");

/// A test's world: scratch dir, state (run + data, so its own store at data/image).
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
}

impl Lab {
    pub fn new() -> Lab {
        let dir = scratch();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        Lab { dir, state }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn tool(&self, name: &str) -> Command {
        tool(name, &self.state)
    }

    pub fn nsimage(&self, args: &[&str]) -> Command {
        let mut cmd = self.tool("nsimage");
        cmd.args(args);
        cmd
    }

    /// `pidns -- mntns --image REF --rm ARGS...`
    pub fn run_image(&self, image: &str, args: &[&str]) -> Command {
        let mut cmd = self.tool("pidns");
        cmd.args(["--", "mntns", "--image", image, "--rm"])
            .args(args);
        cmd
    }

    pub fn store(&self) -> PathBuf {
        self.state.join("data/image")
    }

    /// Files under the store's blobs/sha256, layers and tmp, and its index entries' names.
    pub fn store_contents(&self) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>) {
        let list = |sub: &str| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(self.store().join(sub))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        (
            list("blobs/sha256"),
            list("layers"),
            list("tmp"),
            self.image_names(),
        )
    }

    pub fn image_names(&self) -> Vec<String> {
        let Ok(text) = std::fs::read_to_string(self.store().join("index.json")) else {
            return Vec::new();
        };
        let index: Value = serde_json::from_str(&text).unwrap();
        let mut names: Vec<String> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| {
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        names.sort();
        names
    }

    /// `nsimage inspect REF` as JSON.
    pub fn inspect(&self, reference: &str) -> Value {
        serde_json::from_str(&ok(&mut self.nsimage(&["inspect", reference]))).unwrap()
    }
}

/// A busybox root filesystem tarball (uid 0 files, /etc/passwd with root and www, /tmp
/// 1777, /var/www of mtime 1000000000), as `tar -C rootfs -cf` makes it.
pub fn busybox_rootfs_tar(dir: &Path) -> PathBuf {
    let root = nschain_tests::roots::busybox_root(&dir.join("bb"), APPLETS);
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nwww:x:33:\n").unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    // www's home, with an old mtime set after its file was written: what the container must see.
    std::fs::create_dir_all(root.join("var/www")).unwrap();
    std::fs::write(root.join("var/www/index.html"), "hello\n").unwrap();
    ok(Command::new("touch")
        .args(["-d", "@1000000000"])
        .arg(root.join("var/www")));
    let tar = dir.join("busybox-rootfs.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    tar
}

/// Whether podman (and skopeo) are there to build and copy images.
pub fn need_podman() -> bool {
    require(is_root(), "root")
        && require(
            have("podman") && have("skopeo"),
            "podman and skopeo (Debian packages podman skopeo)",
        )
}

/// The CMD the busybox image runs: proves WorkingDir and Env reached it.
pub const BB_CMD: &str = r#"CMD ["/bin/sh","-c","echo hello from $(uname -s) in $(pwd) FOO=$FOO"]"#;

/// `podman import` of the busybox rootfs as localhost/bb:1 (CMD, ENV FOO=bar, WORKDIR /tmp,
/// EXPOSE 80), saved as oci-archive and docker-archive. Returns (oci, docker) archive paths.
pub fn podman_busybox(dir: &Path) -> (PathBuf, PathBuf) {
    let tar = busybox_rootfs_tar(dir);
    let podman = |args: &[&str]| {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(dir.join("podman/root"))
            .arg("--runroot")
            .arg(dir.join("podman/run"));
        cmd.args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ]);
        cmd.args(args);
        ok(&mut cmd)
    };
    let tar_s = tar.to_str().unwrap();
    podman(&[
        "import",
        "--change",
        BB_CMD,
        "--change",
        "ENV FOO=bar",
        "--change",
        "WORKDIR /tmp",
        "--change",
        "EXPOSE 80",
        tar_s,
        "localhost/bb:1",
    ]);
    let oci = dir.join("bb-oci.tar");
    let docker = dir.join("bb-docker.tar");
    podman(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        oci.to_str().unwrap(),
        "localhost/bb:1",
    ]);
    podman(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        docker.to_str().unwrap(),
        "localhost/bb:1",
    ]);
    (oci, docker)
}

/// Writes an OCI layout from a spec (see layout.py); returns what it wrote (digests).
pub fn layout(spec: &Value) -> Value {
    let mut child = Command::new("python3")
        .args(["-c", LAYOUT_PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    serde_json::from_str(&ok_out(&out, "layout.py")).unwrap()
}

/// Whether python3 is there to write layouts.
pub fn need_python() -> bool {
    require(have("python3"), "python3")
}

/// A three-layer image: the second deletes /etc/secret (whiteout) and replaces /olddir
/// (opaque); the third (gzip) adds a hard link, a symlink and a file with an xattr.
pub fn whiteout_layout(lab: &Lab, base: &Path) -> (PathBuf, Value) {
    let dir = lab.path().join("wh-layout");
    let spec = serde_json::json!({
        "dir": dir, "tag": "wh",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "layers": [
            {"tarball": base},
            {"entries": [
                {"path": "etc/secret", "data": "s3cret"},
                {"path": "olddir", "type": "dir"},
                {"path": "olddir/a", "data": "a"},
                {"path": "olddir/b", "data": "b"},
            ]},
            {"gzip": true, "entries": [
                {"path": "etc/.wh.secret"},
                {"path": "olddir", "type": "dir"},
                {"path": "olddir/.wh..wh..opq"},
                {"path": "olddir/new", "data": "new"},
                {"path": "data", "type": "dir", "mode": 0o1777},
                {"path": "data/file", "data": "linked", "uid": 1000, "gid": 1000, "xattrs": {"user.note": "kept"}},
                {"path": "data/hardlink", "type": "hardlink", "link": "data/file"},
                {"path": "data/symlink", "type": "symlink", "link": "/etc/passwd"},
            ]},
        ]
    });
    let written = layout(&spec);
    (dir, written)
}
