//! The helper outside: a child forked BEFORE the unshare, so that it keeps the caller's user
//! namespace and privileges, and does on request what the new user namespace's process can
//! no longer do itself:
//!
//! - write its uid/gid maps (and `setgroups`): directly to `/proc/PID/*` when the caller holds
//!   CAP_SETUID/CAP_SETGID, else through the setuid `newuidmap`/`newgidmap` (uidmap package),
//!   which check `/etc/subuid` and `/etc/subgid` — as util-linux `unshare --map-users` does;
//! - change the owner of a host directory to the host ids of the inner root (a named chain's
//!   registration directory, so that later links, now root inside, can register), or make
//!   such a directory (the range's data directory, where later links keep overlay layers);
//! - make an idmapped detached clone of a host tree for the new user namespace (`--idmap`):
//!   `open_tree(OPEN_TREE_CLONE)` then `mount_setattr(MOUNT_ATTR_IDMAP)`, both of which need
//!   CAP_SYS_ADMIN over the host's mounts; the tree's fd comes back with SCM_RIGHTS.
//!
//! Requests and replies are typed messages on a `common::channel` (descriptors ride with
//! SCM_RIGHTS, e.g. an idmapped mount made for the new namespace). The helper serves requests
//! until the channel closes: when the link is done, when it fails, or when it dies. It closes
//! every other inherited descriptor first.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context};
use common::channel::{self, Channel, Failure, RecvError};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};
use serde::{Deserialize, Serialize};

use common::sys::mount;
use common::{debug, Fatal, Hint};

/// How the maps are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// Write `/proc/PID/uid_map` and `gid_map` directly (CAP_SETUID/CAP_SETGID held).
    Direct,
    /// Run `newuidmap PID ...` and `newgidmap PID ...`.
    NewIdMap,
}

/// What the helper is asked to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Request {
    WriteMaps {
        method: Method,
        /// `INNER OUTER COUNT` lines.
        uid_map: Vec<[u32; 3]>,
        gid_map: Vec<[u32; 3]>,
        /// Written to `/proc/PID/setgroups` before the gid map, if set.
        setgroups: Option<String>,
    },
    Chown {
        /// The path's bytes (paths are not assumed UTF-8).
        path: Vec<u8>,
        uid: u32,
        gid: u32,
    },
    /// Creates the directory (mode 0700; its parents 0755) if missing and gives it to
    /// `uid`/`gid`; refuses a symlink or a non-directory.
    MakeDir { path: Vec<u8>, uid: u32, gid: u32 },
    /// Makes an idmapped detached clone of the tree at `path` for the target's user
    /// namespace; the reply carries its fd.
    Idmap { path: Vec<u8> },
}

/// The answer to one request: nothing on success, else the channel's typed failure and the
/// hint the helper chose for it (it saw the errno; the parent only reports).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Reply {
    failure: Option<Failure>,
    hint: Option<String>,
}

impl Reply {
    /// The reply to a failed request: the message chain, the errno it carries and its hint,
    /// for the parent to rebuild as its own [`Fatal`].
    fn failed(fatal: Fatal) -> Reply {
        let errno = fatal.error.chain().find_map(|cause| {
            cause
                .downcast_ref::<nix::errno::Errno>()
                .map(|e| *e as i32)
                .or_else(|| cause.downcast_ref::<std::io::Error>()?.raw_os_error())
        });
        Reply {
            failure: Some(Failure {
                errno,
                message: format!("{:#}", fatal.error),
            }),
            hint: fatal.hint,
        }
    }

    /// The parent's view of the reply: a failure becomes its [`Fatal`] with the hint.
    fn into_result(self) -> Result<(), Fatal> {
        match self.failure {
            None => Ok(()),
            Some(failure) => {
                let fatal = Fatal::new(failure.message);
                Err(match self.hint {
                    Some(hint) => fatal.with_hint(hint),
                    None => fatal,
                })
            }
        }
    }
}

/// The parent's handle on the helper.
#[derive(Debug)]
pub struct Helper {
    child: Pid,
    target: u32,
    channel: Option<Channel>,
}

impl Helper {
    /// Forks the helper for this process (call it before the unshare).
    pub fn spawn() -> Result<Helper, Fatal> {
        // The helper writes /proc/TARGET/{uid,gid}_map: the pid as /proc numbers it.
        let target = common::procfs::own_pid();
        let (parent_end, child_end) =
            channel::pair().context("unable to create a channel for the map helper")?;
        // SAFETY: the tools are single-threaded until exec, so the child may run ordinary code.
        let forked = unsafe { fork() }.context("unable to fork the map helper")?;
        match forked {
            ForkResult::Child => {
                drop(parent_end);
                serve(child_end, target)
            }
            ForkResult::Parent { child } => {
                drop(child_end);
                Ok(Helper {
                    child,
                    target,
                    channel: Some(parent_end),
                })
            }
        }
    }

    /// Has the helper write this process's maps (the user namespace exists now).
    pub fn write_maps(
        &mut self,
        method: Method,
        uid_map: &crate::idmap::IdMap,
        gid_map: &crate::idmap::IdMap,
        setgroups: Option<&str>,
    ) -> Result<(), Fatal> {
        let lines = |map: &crate::idmap::IdMap| {
            map.ranges
                .iter()
                .map(|r| [r.inner, r.outer, r.count])
                .collect()
        };
        let request = Request::WriteMaps {
            method,
            uid_map: lines(uid_map),
            gid_map: lines(gid_map),
            setgroups: setgroups.map(str::to_owned),
        };
        let target = self.target;
        debug::step(format_args!("write maps ({method:?})"), || {
            self.call(&request)
        })
        .map_err(|e| e.context(format!("unable to write the id maps of process {target}")))
    }

    /// Has the helper give `path` to the host ids `uid`/`gid`.
    pub fn chown(&mut self, path: &Path, uid: u32, gid: u32) -> Result<(), Fatal> {
        let request = Request::Chown {
            path: path.as_os_str().as_bytes().to_vec(),
            uid,
            gid,
        };
        debug::step(format_args!("chown {} {uid}:{gid}", path.display()), || {
            self.call(&request)
        })
    }

    /// Has the helper create (if missing) `path` for the host ids `uid`/`gid`.
    pub fn make_dir(&mut self, path: &Path, uid: u32, gid: u32) -> Result<(), Fatal> {
        let request = Request::MakeDir {
            path: path.as_os_str().as_bytes().to_vec(),
            uid,
            gid,
        };
        debug::step(
            format_args!("make {} for {uid}:{gid}", path.display()),
            || self.call(&request),
        )
    }

    /// Has the helper make an idmapped detached clone of `path` for this process's (new)
    /// user namespace, whose maps must be written already.
    pub fn idmap(&mut self, path: &Path) -> Result<OwnedFd, Fatal> {
        let request = Request::Idmap {
            path: path.as_os_str().as_bytes().to_vec(),
        };
        let mut fds = Vec::new();
        debug::step(format_args!("idmapped clone of {}", path.display()), || {
            self.call_with_fds(&request, Some(&mut fds))
        })
        .map_err(|e| {
            e.context(format!(
                "unable to make an idmapped tree of {}",
                path.display()
            ))
        })?;
        let mut fds = fds.into_iter();
        let tree = fds
            .next()
            .ok_or_else(|| Fatal::new("the map helper sent no file descriptor"))?;
        Ok(tree)
    }

    fn call(&mut self, request: &Request) -> Result<(), Fatal> {
        self.call_with_fds(request, None)
    }

    /// Sends one request and reads its reply; with `fds`, the descriptors passed with it
    /// (SCM_RIGHTS) are collected there.
    fn call_with_fds(
        &mut self,
        request: &Request,
        fds: Option<&mut Vec<OwnedFd>>,
    ) -> Result<(), Fatal> {
        let channel = self
            .channel
            .as_ref()
            .ok_or_else(|| anyhow!("the map helper is gone"))?;
        channel
            .send(request)
            .context("unable to talk to the map helper")?;
        let (reply, received) = channel
            .recv_with_fds::<Reply>()
            .context("unable to read the map helper's answer")?
            .ok_or_else(|| Fatal::new("the map helper exited without answering"))?;
        if let Some(fds) = fds {
            fds.extend(received);
        }
        reply.into_result()
    }

    /// Ends the helper and reaps it.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.channel.take().is_some() {
            // The helper reads EOF and exits at once.
            let _ = waitpid(self.child, None);
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The helper's side: serve requests until EOF, then exit without running the parent's
/// destructors.
fn serve(channel: Channel, target: u32) -> ! {
    close_other_fds(channel.as_fd().as_raw_fd());
    loop {
        let (reply, fd) = match channel.recv::<Request>() {
            Ok(Some(Request::Idmap { path })) => {
                let path = PathBuf::from(OsString::from_vec(path));
                match idmapped_tree(&path, target) {
                    Ok(fd) => (Reply::default(), Some(fd)),
                    Err(fatal) => (Reply::failed(fatal), None),
                }
            }
            Ok(Some(request)) => (handle(&request, target), None),
            Ok(None) | Err(RecvError::Io(_)) => break,
            Err(e @ RecvError::Malformed(_)) => (
                Reply {
                    failure: Some(Failure::other(format!(
                        "bad request to the map helper: {e}"
                    ))),
                    hint: None,
                },
                None,
            ),
        };
        let sent = match &fd {
            Some(fd) => channel.send_with_fds(&reply, &[fd.as_fd()]),
            None => channel.send(&reply),
        };
        drop(fd);
        if sent.is_err() {
            break;
        }
    }
    // SAFETY: _exit ends the helper without running destructors it shares with the parent.
    unsafe { libc::_exit(0) }
}

/// Closes every descriptor but 0-2 and `keep`: the helper must not hold the parent's lock
/// files, pipes or sockets open after the parent closed them.
fn close_other_fds(keep: i32) {
    let ranges = [(3, keep - 1), (keep + 1, i32::MAX)];
    for (first, last) in ranges {
        if first <= last && first >= 3 {
            // None of them is used by the helper.
            let _ = common::sys::fs::close_range(first as libc::c_uint, last as libc::c_uint, 0);
        }
    }
}

fn handle(request: &Request, target: u32) -> Reply {
    let result = match request {
        Request::WriteMaps {
            method,
            uid_map,
            gid_map,
            setgroups,
        } => write_maps(target, *method, uid_map, gid_map, setgroups.as_deref()),
        Request::Chown { path, uid, gid } => {
            let path = PathBuf::from(OsString::from_vec(path.clone()));
            nix::unistd::fchownat(
                None,
                &path,
                Some(nix::unistd::Uid::from_raw(*uid)),
                Some(nix::unistd::Gid::from_raw(*gid)),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .fatal_context(format!(
                "unable to give {} to host uid {uid}",
                path.display()
            ))
        }
        Request::MakeDir { path, uid, gid } => {
            let path = PathBuf::from(OsString::from_vec(path.clone()));
            make_dir(&path, *uid, *gid).map_err(Fatal::from)
        }
        Request::Idmap { .. } => Err(Fatal::new("an idmap request needs a descriptor")),
    };
    match result {
        Ok(()) => Reply::default(),
        Err(fatal) => Reply::failed(fatal),
    }
}

/// `mkdir -p` of the parents (0755), the directory itself 0700, then owned by `uid`/`gid`;
/// an existing entry must be a real directory (not a symlink).
fn make_dir(path: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(parent) = path.parent() {
        common::state::ensure_dir(parent, 0o711)?;
        // The range's root walks through the data directory to its own: it must be searchable.
        let mode = std::fs::metadata(parent)?.permissions().mode();
        if mode & 0o001 == 0 {
            bail!(
                "{} (mode {:04o}) cannot be entered by the namespace's root: chmod 711 it",
                parent.display(),
                mode & 0o7777
            );
        }
    }
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(anyhow!(e).context(format!("unable to create {}", path.display()))),
    }
    let dir = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDONLY
            | nix::fcntl::OFlag::O_DIRECTORY
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("{} is not a directory", path.display()))?;
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    let dir = unsafe { OwnedFd::from_raw_fd(dir) };
    nix::unistd::fchown(
        dir.as_raw_fd(),
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .with_context(|| format!("unable to give {} to host uid {uid}", path.display()))?;
    Ok(())
}

/// The hint when the kernel has no idmapped mounts (ENOSYS from open_tree or mount_setattr).
const NEED_IDMAP_KERNEL: &str = "idmapped mounts need Linux 5.12 or later";

/// `open_tree(path, OPEN_TREE_CLONE)` (not recursive: the submounts of a tree, such as /proc
/// or /sys under `/`, cannot all be idmapped, and they are not part of the tree asked for),
/// then `mount_setattr(MOUNT_ATTR_IDMAP)` with the target's user namespace.
fn idmapped_tree(path: &Path, target: u32) -> Result<OwnedFd, Fatal> {
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(Fatal::new(format!(
            "{} contains a NUL byte",
            path.display()
        )));
    }
    let tree = mount::clone_path(path).map_err(|e| {
        let fatal =
            Fatal::from(e).context(format!("unable to clone {} (open_tree)", path.display()));
        match e {
            nix::errno::Errno::ENOSYS => fatal.with_hint(NEED_IDMAP_KERNEL),
            _ => fatal,
        }
    })?;
    let userns = std::fs::File::open(format!("/proc/{target}/ns/user"))
        .fatal_context("unable to open the new user namespace")?;
    let attr = mount::MountAttr {
        attr_set: mount::MOUNT_ATTR_IDMAP,
        userns_fd: userns.as_raw_fd() as u64,
        ..mount::MountAttr::default()
    };
    mount::mount_setattr(tree.as_fd(), &attr, false).map_err(|e| {
        let fatal = Fatal::from(e).context(format!(
            "unable to idmap the clone of {} (mount_setattr)",
            path.display()
        ));
        match e {
            nix::errno::Errno::EINVAL => fatal.with_hint(format!(
                "the filesystem of {} cannot be idmapped (ext4, xfs, btrfs, tmpfs and overlayfs can, \
                 on Linux 5.12 to 6.3 depending on the filesystem), or it is already idmapped",
                path.display()
            )),
            nix::errno::Errno::ENOSYS => fatal.with_hint(NEED_IDMAP_KERNEL),
            nix::errno::Errno::EPERM => {
                fatal.with_hint("idmapped mounts need CAP_SYS_ADMIN in the host's user namespace")
            }
            _ => fatal,
        }
    })?;
    Ok(tree)
}

fn write_maps(
    target: u32,
    method: Method,
    uid_map: &[[u32; 3]],
    gid_map: &[[u32; 3]],
    setgroups: Option<&str>,
) -> Result<(), Fatal> {
    let proc = PathBuf::from(format!("/proc/{target}"));
    let direct_hint = "a user namespace's maps are written once, by a process holding CAP_SETUID \
                       and CAP_SETGID over its parent namespace, with outer ids mapped there; an \
                       LSM (AppArmor's restrict_unprivileged_userns, SELinux) may also refuse";
    match method {
        Method::Direct => {
            write_proc(&proc.join("uid_map"), &text(uid_map)).hint(direct_hint)?;
            if let Some(policy) = setgroups {
                write_proc(&proc.join("setgroups"), policy).hint(direct_hint)?;
            }
            write_proc(&proc.join("gid_map"), &text(gid_map)).hint(direct_hint)
        }
        Method::NewIdMap => {
            run_newidmap("newuidmap", target, uid_map)?;
            if let Some(policy) = setgroups {
                write_proc(&proc.join("setgroups"), policy)?;
            }
            run_newidmap("newgidmap", target, gid_map)
        }
    }
}

fn text(lines: &[[u32; 3]]) -> String {
    lines
        .iter()
        .map(|[i, o, c]| format!("{i} {o} {c}\n"))
        .collect()
}

/// One write(2) of the whole text, as the kernel requires for maps.
fn write_proc(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("unable to open {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("unable to write {}", path.display()))
}

fn run_newidmap(program: &str, target: u32, lines: &[[u32; 3]]) -> Result<(), Fatal> {
    let mut command = Command::new(program);
    command.arg(target.to_string());
    for [inner, outer, count] in lines {
        command.args([inner.to_string(), outer.to_string(), count.to_string()]);
    }
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(
                Fatal::new(format!("{program} is not installed")).with_hint(format!(
                    "install the uidmap package (it provides {program}), or run as root"
                )),
            )
        }
        Err(e) => return Err(Fatal::from(e).context(format!("unable to run {program}"))),
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("no message");
    let file = if program == "newuidmap" {
        crate::subid::SUBUID
    } else {
        crate::subid::SUBGID
    };
    Err(
        Fatal::new(format!("{program} failed ({}): {said}", output.status)).with_hint(format!(
            "{program} only maps host ids delegated to you in {file}, and must be setuid root"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_reply_keeps_the_chain_and_the_first_hint() {
        let fatal = Fatal::from(nix::errno::Errno::EPERM)
            .context("unable to write /proc/1/uid_map")
            .with_hint("specific")
            .with_hint("generic");
        let reply = Reply::failed(fatal);
        let failure = reply.failure.clone().unwrap();
        assert_eq!(failure.errno(), Some(nix::errno::Errno::EPERM));
        assert_eq!(
            failure.message,
            "unable to write /proc/1/uid_map: EPERM: Operation not permitted"
        );
        let fatal = reply.into_result().unwrap_err();
        assert_eq!(
            fatal.message(),
            "unable to write /proc/1/uid_map: Operation not permitted"
        );
        assert_eq!(fatal.hint.as_deref(), Some("specific"));
    }

    #[test]
    fn requests_round_trip_as_json() {
        let request = Request::Chown {
            path: b"/run/x\xff".to_vec(),
            uid: 1,
            gid: 2,
        };
        let line = serde_json::to_string(&request).unwrap();
        assert!(!line.contains('\n'));
        let back: Request = serde_json::from_str(&line).unwrap();
        assert!(matches!(back, Request::Chown { uid: 1, gid: 2, .. }));
        assert_eq!(
            text(&[[0, 1000, 1], [1, 100000, 65535]]),
            "0 1000 1\n1 100000 65535\n"
        );
    }
}
