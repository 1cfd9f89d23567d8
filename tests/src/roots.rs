//! Container roots the tests build from Debian's static busybox.

use std::path::{Path, PathBuf};

/// Puts `/bin/busybox` and a link per applet of `applets` in `root/bin`.
pub fn install_busybox(root: &Path, applets: &[&str]) {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    crate::copy_exe(Path::new("/bin/busybox"), &bin.join("busybox"));
    for applet in applets {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet link");
    }
}

/// A small root at `dir/root`: busybox with `applets`, the directories mntns mounts on
/// (proc, sys, dev) and empty /etc files it fills in (hostname, hosts, resolv.conf).
pub fn busybox_root(dir: &Path, applets: &[&str]) -> PathBuf {
    let root = dir.join("root");
    for d in ["etc", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    for f in ["hostname", "hosts", "resolv.conf"] {
        std::fs::write(root.join("etc").join(f), "").expect("write /etc file");
    }
    install_busybox(&root, applets);
    root
}
