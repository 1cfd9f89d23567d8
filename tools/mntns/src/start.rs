//! The start gate (`--ready-fd`, `--start-fifo`): a supervisor (nsoci, as runc's exec.fifo)
//! learns that the container is set up, and COMMAND runs only when it says so.
//!
//! Everything but the exec is done first (root, mounts, user, capabilities, filters): then
//! mntns writes `ready` to the ready fd and opens the FIFO for writing, which blocks until
//! someone opens it for reading (`nsoci start`), and writes one byte to it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};

use common::{debug, Fatal};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// The two descriptors of the gate, owned by mntns from its start.
#[derive(Debug, Default)]
pub struct Gate {
    ready: Option<File>,
    fifo: Option<RawFd>,
}

impl Gate {
    /// Takes the descriptors: close-on-exec at once, so that none reaches COMMAND.
    pub fn take(ready: Option<RawFd>, fifo: Option<RawFd>) -> Result<Gate, Fatal> {
        for fd in [ready, fifo].into_iter().flatten() {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|e| {
                Fatal::from(e).context(format!("unable to use file descriptor {fd}"))
            })?;
        }
        if let Some(fd) = fifo {
            let stat = nix::sys::stat::fstat(fd)
                .map_err(|e| Fatal::from(e).context("unable to inspect --start-fifo"))?;
            if stat.st_mode & libc::S_IFMT != libc::S_IFIFO {
                return Err(Fatal::new(format!(
                    "--start-fifo {fd} is not a FIFO (make one with mkfifo)"
                )));
            }
        }
        // SAFETY: the caller handed this descriptor to mntns for this one line (checked open
        // by the parser); owning it closes it after the write.
        let ready = ready.map(|fd| unsafe { File::from_raw_fd(fd) });
        Ok(Gate { ready, fifo })
    }

    /// Says `ready`, then waits for the go-ahead (a reader of the FIFO).
    pub fn pass(self) -> Result<(), Fatal> {
        if let Some(mut ready) = self.ready {
            // The reader may be gone (a supervisor that gave up): the FIFO decides.
            let _ = ready.write_all(b"ready\n");
        }
        let Some(fd) = self.fifo else {
            return Ok(());
        };
        debug::step(
            "wait for the start (--start-fifo)",
            || -> anyhow::Result<()> {
                // A new open of the same FIFO (the fd may be O_PATH): blocks until a reader comes.
                let mut fifo = OpenOptions::new()
                    .write(true)
                    .open(format!("/proc/self/fd/{fd}"))?;
                fifo.write_all(b"0")?;
                Ok(())
            },
        )
        .map_err(|e| Fatal::from(e).context("unable to wait on --start-fifo"))?;
        let _ = nix::unistd::close(fd);
        Ok(())
    }
}
