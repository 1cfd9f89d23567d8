//! `--pin PATH`: keep a new namespace alive by bind-mounting its nsfs file at PATH, as
//! `unshare --net=PATH` does. The bind must land in the caller's mount namespace and be made
//! with the caller's privileges, which the link itself may have lost after its unshare (a new
//! user or mount namespace), so a helper forked *before* the unshare makes it when told to.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::mount::{mount, MsFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};
use serde::{Deserialize, Serialize};

use crate::channel::{self, Channel, Failure};
use crate::ns::Namespace;
use crate::{debug, Fatal};

/// A forked helper waiting for the go-ahead to pin this process's new namespace.
#[derive(Debug)]
pub struct PinHelper {
    child: Pid,
    channel: Channel,
    path: PathBuf,
    created: bool,
}

impl PinHelper {
    /// Prepares PATH (creating an empty file if missing) and forks the helper.
    pub fn spawn(path: &Path, kind: Namespace) -> Result<PinHelper, Fatal> {
        let created = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(path)
        {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                return Err(
                    Fatal::from(e).context(format!("unable to create pin file {}", path.display()))
                )
            }
        };
        let spawned = spawn_helper(path, kind);
        match spawned {
            Ok((child, channel)) => Ok(PinHelper {
                child,
                channel,
                path: path.to_owned(),
                created,
            }),
            Err(e) => {
                if created {
                    let _ = std::fs::remove_file(path);
                }
                Err(e.into())
            }
        }
    }

    /// Tells the helper to bind the namespace (now created) and waits for it.
    pub fn pin(self) -> Result<(), Fatal> {
        let outcome = debug::step(format_args!("pin at {}", self.path.display()), || {
            self.channel
                .call::<_, Result<(), Failure>>(&PinRequest::Bind, "the pin helper")
        });
        let _ = waitpid(self.child, None);
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(failure)) => Err(self.fail(std::io::Error::from(failure).into())),
            Err(e) => Err(self.fail(e.into())),
        }
    }

    fn fail(&self, error: anyhow::Error) -> Fatal {
        if self.created {
            let _ = std::fs::remove_file(&self.path);
        }
        Fatal::from(error)
            .context(format!("unable to pin the namespace at {}", self.path.display()))
            .with_hint("pinning bind-mounts the namespace file: it needs CAP_SYS_ADMIN in the caller's mount namespace")
    }
}

impl Drop for PinHelper {
    fn drop(&mut self) {
        // Not told to go (setup failed): the helper reads EOF and exits without binding.
        let _ = nix::sys::signal::kill(self.child, None)
            .ok()
            .map(|()| waitpid(self.child, Some(nix::sys::wait::WaitPidFlag::WNOHANG)));
    }
}

/// What the link asks of its pin helper.
#[derive(Debug, Serialize, Deserialize)]
enum PinRequest {
    /// The namespace exists now: bind it at the path.
    Bind,
}

fn spawn_helper(path: &Path, kind: Namespace) -> anyhow::Result<(Pid, Channel)> {
    let (ours, theirs) = channel::pair().context("unable to create the pin helper's channel")?;
    let source = kind.proc_path(Some(crate::procfs::own_pid()));
    // SAFETY: the tools are single-threaded until exec, so the child may run ordinary code.
    match unsafe { fork() }.context("unable to fork the pin helper")? {
        ForkResult::Child => {
            drop(ours);
            // Not told to bind (the link failed, or exec'd without pinning): nothing to do.
            if let Ok(Some(PinRequest::Bind)) = theirs.recv::<PinRequest>() {
                let outcome = mount(
                    Some(&source),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| Failure::from_io(&e.into(), "bind the namespace file"));
                let _ = theirs.send(&outcome);
            }
            // SAFETY: _exit ends the helper without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(theirs);
            Ok((child, ours))
        }
    }
}
