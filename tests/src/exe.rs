//! Programs a test writes and a chain later executes.
//!
//! A test process runs tests on several threads, and every thread forks (`Command::spawn`).
//! A file the test process holds open for writing is, for a moment, also open in the child
//! another thread is forking (until that child's exec closes it): executing the file in that
//! moment fails with ETXTBSY ("Text file busy"). So the bytes are written by a short-lived
//! child process (`cp`, `sh`), and the test process never holds a writable descriptor of a
//! file it will execute.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Writes `text` to `path` with `mode`, through a child process.
pub fn write_exe(path: &Path, text: &str, mode: u32) {
    let mut child = Command::new("sh")
        .args(["-c", "cat >\"$1\"", "sh"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh to write an executable");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).expect("write to sh");
    drop(stdin);
    let status = child.wait().expect("wait for sh");
    assert!(status.success(), "writing {} failed", path.display());
    chmod(path, mode);
}

/// Copies `from` to `to` (mode 0755), through `cp`.
pub fn copy_exe(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg(from)
        .arg(to)
        .status()
        .expect("spawn cp");
    assert!(
        status.success(),
        "cp {} {} failed",
        from.display(),
        to.display()
    );
    chmod(to, 0o755);
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
