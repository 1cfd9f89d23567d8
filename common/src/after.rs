//! Work for after the container: `NSCHAIN_AFTER_FD`.
//!
//! When a pid namespace's PID 1 exits, the kernel kills every process left in it, so a link
//! inside the container cannot reliably clean up after it (`mntns --rm` deleting its layer).
//! The link that waits outside (`pidns`'s monitor, or the chain's supervisor, crate::sup)
//! offers a socket; a later link asks it, with
//! one message, to remove a directory once the container has ended. Like every hand-down of the
//! chain (DESIGN.md §1), the producer exports the variable and the consumer takes it and
//! unexports it: COMMAND never receives the socket.
//!
//! Only a directory that carries [`REMOVABLE_MARK`] is ever removed, so a request cannot turn
//! the waiting link against anything but a layer that asked to be deleted.
//!
//! The same socket carries `mntns --tty`'s pty master (crate::pty) to the waiting link, which
//! proxies the caller's terminal to it from outside the container ([`Listener::read_message`]).

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::channel::{self, Channel, RecvError};
use crate::handdown::Slot;
use crate::{debug, report};

/// The variable that names the handed-down socket (its fd number).
pub const VAR: &str = "NSCHAIN_AFTER_FD";
/// A directory may be removed only if it holds a regular file of this name.
pub const REMOVABLE_MARK: &str = ".rm";
const TRASH_PREFIX: &str = ".trash-";

/// What a later link asks of the waiting side.
#[derive(Debug, Serialize, Deserialize)]
enum AfterRequest {
    /// Remove this directory (marked with [`REMOVABLE_MARK`]) once the container has ended.
    /// It may come with the lock of its mark: the waiting side holds it until the removal,
    /// so that no other start collects the layer while it is in use, and no process of the
    /// requester's has to stay behind to hold it.
    Remove(PathBuf),
    /// Proxy this pty master (attached) to the caller's terminal (`mntns --tty`).
    Terminal,
    /// pidns under the chain's supervisor (crate::sup): the container's first process is
    /// `pid` (host numbering), a child of the sender, which exits next; the supervisor
    /// (its subreaper) waits for it instead of a monitor of pidns's own.
    Adopt(Adoption),
    /// Remove the cgroup `RUN/cgroupns/NAME.json` records once the container has ended
    /// (cgroupns with limits under the chain's supervisor; `limit`: `--memory` as shown in
    /// the OOM warning).
    RemoveCgroup {
        /// The record's name (`nschain-CHAIN`).
        name: String,
        /// `--memory` as given and in bytes, for the warning.
        limit: Option<String>,
    },
}

/// What pidns hands the chain's supervisor with the container's first process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Adoption {
    /// Host pid of the container's first process (its init, or COMMAND with `--no-init`).
    pub pid: u32,
    /// The chain's name, if it has one, and whether it was generated.
    pub name: Option<(String, bool)>,
}

/// The waiting side's offer, made before its fork.
#[derive(Debug)]
pub struct Offer {
    ours: Channel,
    theirs: Channel,
}

impl Offer {
    /// A channel: one end stays with the waiting side, the other is handed down.
    pub fn new() -> io::Result<Offer> {
        let (ours, theirs) = channel::pair()?;
        Ok(Offer { ours, theirs })
    }

    /// In the child, before its exec: the next links inherit the socket, named in `VAR`.
    pub fn hand_down(self) -> io::Result<()> {
        drop(self.ours);
        let fd = self.theirs.into_inheritable()?;
        crate::handdown::export(VAR, fd.to_string());
        Ok(())
    }

    /// Both ends: the waiting side's listener and the end to hand down (crate::sup keeps the
    /// latter in the link's hand-down instead of a variable).
    pub fn split(self) -> (Listener, OwnedFd) {
        (
            Listener {
                ours: self.ours,
                pending: Vec::new(),
                cgroups: Vec::new(),
            },
            self.theirs.into_fd(),
        )
    }

    /// In the parent, after the fork: keeps its end only.
    pub fn keep(self) -> Listener {
        Listener {
            ours: self.ours,
            pending: Vec::new(),
            cgroups: Vec::new(),
        }
    }
}

/// The waiting side, once the child has its end.
#[derive(Debug)]
pub struct Listener {
    ours: Channel,
    /// Removal requests read while the container ran (with the mark's lock, if sent),
    /// carried out at its end.
    pending: Vec<(PathBuf, Vec<OwnedFd>)>,
    /// Cgroups to remove at the end (name, limit).
    cgroups: Vec<(String, Option<String>)>,
}

/// What [`Listener::read_message`] read.
#[derive(Debug)]
pub enum Message {
    /// A pty master sent by `mntns --tty` (checked to be one).
    Terminal(OwnedFd),
    /// The container's first process, handed over by pidns (crate::sup).
    Adopt(Adoption),
    /// A removal request, kept for [`Listener::run_requests`], or a malformed message.
    Other,
    /// Nothing to read now (a non-blocking socket).
    Nothing,
    /// Every holder of the other end is gone (the links have executed COMMAND).
    Closed,
}

impl Listener {
    /// The socket, to poll while the container runs.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.ours.as_fd()
    }

    /// Reads one message (call it once the socket is readable).
    pub fn read_message(&mut self) -> Message {
        match self.ours.recv_with_fds::<AfterRequest>() {
            Ok(Some((AfterRequest::Terminal, fds))) => match crate::pty::check_master(fds) {
                Ok(master) => Message::Terminal(master),
                Err(e) => {
                    report::warning(format_args!("ignored a terminal of a later link: {e}"));
                    Message::Other
                }
            },
            Ok(Some((AfterRequest::Remove(dir), lock))) => {
                self.pending.push((dir, lock));
                Message::Other
            }
            Ok(Some((AfterRequest::Adopt(adoption), _))) => Message::Adopt(adoption),
            Ok(Some((AfterRequest::RemoveCgroup { name, limit }, _))) => {
                self.cgroups.push((name, limit));
                Message::Other
            }
            Ok(None) => Message::Closed,
            Err(RecvError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Message::Nothing,
            Err(RecvError::Io(_)) => Message::Closed,
            Err(e) => {
                report::warning(format_args!("ignored a request of a later link: {e}"));
                Message::Other
            }
        }
    }

    /// Makes reads non-blocking (to drain what is queued).
    pub fn set_nonblocking(&self) -> io::Result<()> {
        self.ours.set_nonblocking()
    }

    /// Tells the link that sent a pty master that its terminal is set up.
    pub fn terminal_ready(&self) -> io::Result<()> {
        crate::pty::send_ready(&self.ours)
    }

    /// Once the container has ended: carries out every request it made (those queued; the
    /// senders are gone or about to be).
    pub fn run_requests(mut self) {
        if let Err(e) = self.ours.set_nonblocking() {
            report::warning(format_args!(
                "unable to read the requests of later links: {e}"
            ));
            return;
        }
        let mut requests = std::mem::take(&mut self.pending).into_iter();
        loop {
            let queued = requests
                .next()
                .map(|(dir, lock)| Ok(Some((AfterRequest::Remove(dir), lock))));
            let next = queued.unwrap_or_else(|| self.ours.recv_with_fds::<AfterRequest>());
            let (dir, lock) = match next {
                Ok(Some((AfterRequest::Remove(dir), lock))) => (dir, lock),
                Ok(Some((AfterRequest::RemoveCgroup { name, limit }, _))) => {
                    self.cgroups.push((name, limit));
                    continue;
                }
                Ok(Some((AfterRequest::Terminal | AfterRequest::Adopt(_), _))) => continue,
                Ok(None) => break,
                Err(RecvError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    report::warning(format_args!("ignored a request of a later link: {e}"));
                    break;
                }
            };
            remove_requested(&dir);
            // Released only once the layer is gone.
            drop(lock);
        }
        for (name, limit) in &self.cgroups {
            crate::cgroupfs::collect_recorded(name, limit.as_deref());
        }
    }
}

/// Carries out one removal request, if the directory is marked for removal.
fn remove_requested(dir: &Path) {
    if !removable(dir) {
        report::warning(format_args!(
            "ignored a request to remove {}: not a directory marked for removal",
            dir.display()
        ));
        return;
    }
    if let Err(e) = debug::step(format_args!("remove {}", dir.display()), || {
        remove_tree(dir)
    }) {
        report::warning(format_args!("unable to remove {}: {e}", dir.display()));
    }
}

/// The consuming side: takes the channel a waiting link offered, if any (made by a link of
/// this process, or inherited as `NSCHAIN_AFTER_FD`).
pub fn take(slot: Slot<OwnedFd>) -> Option<Channel> {
    let fd = match slot {
        Slot::Empty => return None,
        Slot::Made(fd) => fd,
        Slot::Inherited(value) => {
            let fd: RawFd = value.to_str()?.parse().ok().filter(|fd| *fd > 2)?;
            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).ok()?;
            // SAFETY: the fd was handed down to this link by name and is open; from here on
            // this link owns it (Channel::adopt checks that it is a socket, else it is closed).
            unsafe { OwnedFd::from_raw_fd(fd) }
        }
    };
    Channel::adopt(fd).ok()
}

/// Hands the waiting link `mntns --tty`'s pty master, to proxy until the container ends; it
/// answers [`crate::pty::TtyMessage::Ready`].
pub fn send_terminal(after: &Channel, master: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    after.send_with_fds(&AfterRequest::Terminal, &[master])
}

/// Hands the chain's supervisor the container's first process (pidns, before it exits).
pub fn send_adoption(after: &Channel, adoption: &Adoption) -> io::Result<()> {
    after.send(&AfterRequest::Adopt(adoption.clone()))
}

/// Asks the chain's supervisor to remove a chain's cgroup (recorded as `name` in
/// `RUN/cgroupns`) once the container has ended.
pub fn request_cgroup_removal(after: &Channel, name: &str, limit: Option<&str>) -> io::Result<()> {
    after.send(&AfterRequest::RemoveCgroup {
        name: name.to_owned(),
        limit: limit.map(str::to_owned),
    })
}

/// Asks the waiting link to remove `dir` (marked with [`REMOVABLE_MARK`]) once the container
/// has ended.
pub fn request_removal(after: &Channel, dir: &Path) -> io::Result<()> {
    after.send(&AfterRequest::Remove(dir.to_owned()))
}

/// Asks the waiting link to remove `dir` once the container has ended, and hands it the
/// lock of the directory's mark (held by the waiting side from now on, released after the
/// removal): the requester keeps no process behind for it.
pub fn request_removal_locked(
    after: &Channel,
    dir: &Path,
    lock: std::os::fd::BorrowedFd<'_>,
) -> io::Result<()> {
    after.send_with_fds(&AfterRequest::Remove(dir.to_owned()), &[lock])
}

/// Removes the layers under `parent` that were marked for removal but whose holder is gone
/// (their mark is not locked: the remover was killed, or died with its pid namespace), and
/// half-deleted trash. The next start of any chain that can reach `parent` calls this.
pub fn collect_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry
            .file_name()
            .as_bytes()
            .starts_with(TRASH_PREFIX.as_bytes())
        {
            let _ = fs::remove_dir_all(&path);
            continue;
        }
        let Ok(mark) = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path.join(REMOVABLE_MARK))
        else {
            continue;
        };
        // Released when `mark` is closed.
        if crate::sys::fs::try_lock_exclusive(mark.as_fd()) == Ok(true) {
            debug::note(format_args!("removing the stale layer {}", path.display()));
            let _ = remove_tree(&path);
        }
    }
}

fn removable(dir: &Path) -> bool {
    dir.is_absolute()
        && fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
        && fs::symlink_metadata(dir.join(REMOVABLE_MARK)).is_ok_and(|m| m.is_file())
}

/// Removes a directory tree so that it is gone at once: renamed to `.trash-NAME-PID` beside
/// it, then deleted; half-deleted trash of the same directory (a remover killed midway) goes
/// too. A missing directory is not an error.
pub fn remove_tree(dir: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no parent directory",
        ));
    };
    let mut prefix = TRASH_PREFIX.as_bytes().to_vec();
    prefix.extend_from_slice(name.as_bytes());
    prefix.push(b'-');
    let mut trash = prefix.clone();
    trash.extend_from_slice(std::process::id().to_string().as_bytes());
    match fs::rename(dir, parent.join(OsStr::from_bytes(&trash))) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    for entry in fs::read_dir(parent)?.flatten() {
        if entry.file_name().as_bytes().starts_with(&prefix) {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_marked_directories_are_removed() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let layer = dir.path().join("web1");
        fs::create_dir_all(layer.join("diff/opt"))?;
        fs::write(layer.join("diff/opt/test1"), "x")?;
        let offer = Offer::new()?;
        request_removal(&offer.theirs, &layer)?;
        request_removal(&offer.theirs, dir.path())?;
        let listener = offer.keep();
        // A remover killed midway left trash of the same layer.
        fs::create_dir_all(dir.path().join(".trash-web1-1/x"))?;
        fs::write(layer.join(REMOVABLE_MARK), "")?;
        listener.run_requests();
        assert!(!layer.exists());
        assert!(
            !dir.path().join(".trash-web1-1").exists(),
            "half-deleted trash goes too"
        );
        assert!(
            dir.path().exists(),
            "an unmarked directory is never removed"
        );
        Ok(())
    }
}
