//! What a link made, as one JSON object: written to `--info-fd N` and kept in the chain's
//! registration (`nsps` reads the same records).

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ns::Namespace;

/// One link's record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// The tool that made (or joined) the namespace.
    pub tool: String,
    /// The host-side pid of the process that holds the namespace.
    pub pid: u32,
    /// The namespace.
    pub ns: NsId,
    /// Whether the namespace was made by this link (false: joined).
    #[serde(default)]
    pub created: bool,
    /// Tool-specific facts (hostname, addresses, ports, layer directory, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What mntns records under `"seccomp"` when its container got [`crate::seccomp`]'s filter,
/// so that `nsps exec` gives a joined process the same one (a filter cannot be read back).
pub const SECCOMP_CONTAINER: &str = "container";

/// A namespace's identity.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NsId {
    /// Its type as /proc names it (`net`, `mnt`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its inode (what `readlink /proc/PID/ns/TYPE` shows).
    pub inode: u64,
}

impl Record {
    /// The namespace's type, when it is one we know.
    pub fn kind(&self) -> Option<Namespace> {
        Namespace::ALL
            .into_iter()
            .find(|ns| ns.proc_name() == self.ns.kind)
    }
}

/// Parses and checks the value of `--info-fd`: a number naming an open descriptor.
pub fn parse_fd(text: &str) -> Result<RawFd, String> {
    let fd: RawFd = text
        .parse()
        .ok()
        .filter(|fd| *fd >= 0)
        .ok_or_else(|| format!("'{text}' is not a file descriptor number"))?;
    // F_GETFD only reads the flags of the descriptor: it checks the fd is open.
    if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
        return Err(format!("file descriptor {fd} is not open"));
    }
    Ok(fd)
}

/// Writes one JSON line to `fd` and closes it.
pub fn write_line(fd: RawFd, value: &impl Serialize) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    // SAFETY: the user handed us this descriptor (checked open by `parse_fd`) for this one
    // line; taking ownership closes it after the write, as the protocol says.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(&line)
        .with_context(|| format!("unable to write to info fd {fd}"))
}
