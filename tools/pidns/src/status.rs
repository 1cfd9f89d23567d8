//! `--status-fd N`: JSON lines for whoever started the container. First
//! `{"pid": P, "ns": {...}}` (P is the host pid of the container's PID 1, `ns` the inodes of
//! its namespaces), then `{"exit-code": n}` — only if COMMAND was really executed, so a reader
//! can tell a setup failure from a command that exits 125, 126 or 127 itself.

use std::io;
use std::os::fd::RawFd;

use common::ns::{self, Namespace};
use serde_json::{json, Map, Value};

/// Parses `--status-fd`: a number naming an open descriptor.
pub fn parse_fd(text: &str) -> Result<RawFd, String> {
    common::info::parse_fd(text)
}

/// The inodes of the container's namespaces, as this (monitoring) process sees them: its own,
/// except the pid namespace, which is the one its children are born into.
pub fn namespaces() -> Map<String, Value> {
    Namespace::ALL
        .into_iter()
        .filter_map(|kind| {
            let inode = ns::current_inode(kind).ok()?;
            Some((kind.proc_name().to_owned(), json!(inode)))
        })
        .collect()
}

/// The first line.
pub fn started(pid: u32) -> Value {
    json!({ "pid": pid, "ns": namespaces() })
}

/// The last line.
pub fn exited(code: u8) -> Value {
    json!({ "exit-code": code })
}

/// Writes one JSON line to `fd` (which stays open).
pub fn write_line(fd: RawFd, value: &Value) -> io::Result<()> {
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    let mut rest = &line[..];
    while !rest.is_empty() {
        // SAFETY: `rest` is valid for reads of its length.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        rest = &rest[n as usize..];
    }
    Ok(())
}
