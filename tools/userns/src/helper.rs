//! The helper outside: a child forked BEFORE the unshare, so that it keeps the caller's user
//! namespace and privileges, and does on request what the new user namespace's process can
//! no longer do itself:
//!
//! - write its uid/gid maps (and `setgroups`): directly to `/proc/PID/*` when the caller holds
//!   CAP_SETUID/CAP_SETGID, else through the setuid `newuidmap`/`newgidmap` (uidmap package),
//!   which check `/etc/subuid` and `/etc/subgid` — as util-linux `unshare --map-users` does;
//! - change the owner of a host directory to the host ids of the inner root (a named chain's
//!   registration directory, so that later links, now root inside, can register).
//!
//! Requests and replies are JSON lines over a socketpair (a socket, not a pipe, so that a
//! later request can hand a file descriptor back with SCM_RIGHTS, e.g. an idmapped mount made
//! for the new namespace). The helper serves requests until the socket closes: when the link
//! is done, when it fails, or when it dies. It closes every other inherited descriptor first.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, Context};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};
use serde::{Deserialize, Serialize};

use common::{debug, Fatal};

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
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Reply {
    error: Option<String>,
    hint: Option<String>,
}

/// The parent's handle on the helper.
#[derive(Debug)]
pub struct Helper {
    child: Pid,
    target: u32,
    socket: Option<BufReader<UnixStream>>,
}

impl Helper {
    /// Forks the helper for this process (call it before the unshare).
    pub fn spawn() -> Result<Helper, Fatal> {
        let target = std::process::id();
        let (parent_end, child_end) =
            UnixStream::pair().context("unable to create a socket pair for the map helper")?;
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
                    socket: Some(BufReader::new(parent_end)),
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

    fn call(&mut self, request: &Request) -> Result<(), Fatal> {
        let socket = self
            .socket
            .as_mut()
            .ok_or_else(|| anyhow!("the map helper is gone"))?;
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        socket
            .get_mut()
            .write_all(&line)
            .context("unable to talk to the map helper")?;
        let mut answer = String::new();
        socket
            .read_line(&mut answer)
            .context("unable to read the map helper's answer")?;
        if answer.is_empty() {
            return Err(Fatal::new("the map helper exited without answering"));
        }
        let reply: Reply =
            serde_json::from_str(&answer).context("bad answer from the map helper")?;
        match reply.error {
            None => Ok(()),
            Some(error) => {
                let fatal = Fatal::new(error);
                Err(match reply.hint {
                    Some(hint) => fatal.with_hint(hint),
                    None => fatal,
                })
            }
        }
    }

    /// Ends the helper and reaps it.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.socket.take().is_some() {
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
fn serve(socket: UnixStream, target: u32) -> ! {
    close_other_fds(socket.as_raw_fd());
    let mut reader = BufReader::new(socket);
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(request) => handle(&request, target),
            Err(e) => Reply {
                error: Some(format!("bad request to the map helper: {e}")),
                hint: None,
            },
        };
        let mut out = serde_json::to_vec(&reply).unwrap_or_default();
        out.push(b'\n');
        if reader.get_mut().write_all(&out).is_err() {
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
            // SAFETY: close_range only closes descriptors; none of them is used by the helper.
            unsafe {
                libc::syscall(
                    libc::SYS_close_range,
                    first as libc::c_uint,
                    last as libc::c_uint,
                    0,
                );
            }
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
            .with_context(|| format!("unable to give {} to host uid {uid}", path.display()))
            .map_err(|e| (e, None))
        }
    };
    match result {
        Ok(()) => Reply::default(),
        Err((error, hint)) => Reply {
            error: Some(format!("{error:#}")),
            hint,
        },
    }
}

type Failure = (anyhow::Error, Option<String>);

fn write_maps(
    target: u32,
    method: Method,
    uid_map: &[[u32; 3]],
    gid_map: &[[u32; 3]],
    setgroups: Option<&str>,
) -> Result<(), Failure> {
    let proc = PathBuf::from(format!("/proc/{target}"));
    let direct_hint = || {
        Some(
            "a user namespace's maps are written once, by a process holding CAP_SETUID and \
             CAP_SETGID over its parent namespace, with outer ids mapped there; an LSM (AppArmor's \
             restrict_unprivileged_userns, SELinux) may also refuse"
                .to_owned(),
        )
    };
    match method {
        Method::Direct => {
            write_proc(&proc.join("uid_map"), &text(uid_map)).map_err(|e| (e, direct_hint()))?;
            if let Some(policy) = setgroups {
                write_proc(&proc.join("setgroups"), policy).map_err(|e| (e, direct_hint()))?;
            }
            write_proc(&proc.join("gid_map"), &text(gid_map)).map_err(|e| (e, direct_hint()))
        }
        Method::NewIdMap => {
            run_newidmap("newuidmap", target, uid_map)?;
            if let Some(policy) = setgroups {
                write_proc(&proc.join("setgroups"), policy).map_err(|e| (e, None))?;
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

fn run_newidmap(program: &str, target: u32, lines: &[[u32; 3]]) -> Result<(), Failure> {
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
            return Err((
                anyhow!("{program} is not installed"),
                Some(format!(
                    "install the uidmap package (it provides {program}), or run as root"
                )),
            ))
        }
        Err(e) => return Err((anyhow!(e).context(format!("unable to run {program}")), None)),
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
    Err((
        anyhow!("{program} failed ({}): {said}", output.status),
        Some(format!(
            "{program} only maps host ids delegated to you in {file}, and must be setuid root"
        )),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_json_lines() {
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
