//! `--hook-fd`: the point an OCI runtime's createRuntime and createContainer hooks run at
//! (runtime-spec config.md#posix-platform-hooks): the container's namespaces exist and its
//! mounts are made, but pivot_root has not happened yet. mntns writes `pivot` to the socket
//! and waits for one byte back; anything else (the runtime's hook failed, it died) ends mntns.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};

use common::{debug, Fatal};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// The socket to the runtime, owned by mntns from its start.
#[derive(Debug, Default)]
pub struct HookPoint(Option<File>);

impl HookPoint {
    /// Takes the descriptor: close-on-exec at once, so that it never reaches COMMAND.
    pub fn take(fd: Option<RawFd>) -> Result<HookPoint, Fatal> {
        let Some(fd) = fd else {
            return Ok(HookPoint(None));
        };
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
            .map_err(|e| Fatal::from(e).context(format!("unable to use --hook-fd {fd}")))?;
        // SAFETY: the caller handed this descriptor to mntns for this exchange (checked open
        // by the parser); owning it closes it once done.
        Ok(HookPoint(Some(unsafe { File::from_raw_fd(fd) })))
    }

    /// Says `pivot` and waits for the runtime's go-ahead.
    pub fn pass(&mut self) -> Result<(), Fatal> {
        let Some(mut socket) = self.0.take() else {
            return Ok(());
        };
        debug::step("wait for the runtime's hooks (--hook-fd)", || {
            socket.write_all(b"pivot\n")?;
            let mut byte = [0u8; 1];
            socket.read_exact(&mut byte)
        })
        .map_err(|e| {
            Fatal::from(e).context(
                "the runtime did not let the container go on before pivot_root (a hook failed?)",
            )
        })
    }
}
