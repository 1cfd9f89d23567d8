//! Rootless networking (no CAP_NET_ADMIN on the host): user-mode stacks attached to the new
//! namespace from a helper forked *before* the unshare (so it stays in the host network
//! namespace, which a rootless process can never re-enter).
//!
//! - `--slirp4netns`: `slirp4netns --configure --exit-fd --ready-fd [--api-socket] PID tap0`;
//!   published ports through its API socket (`add_hostfwd`); the write end of the exit pipe is
//!   inherited by the container, so slirp4netns exits when the container's last process does.
//! - `--pasta`: passt's `pasta`, only when it is recent enough (2024-02 or later: it attaches
//!   from inside a user namespace and exits when the namespace goes).
//!
//! slirp4netns talks on stderr at every start (`sent tapfd=7 for tap0`): its stderr goes to
//! an anonymous file, shown in the error when it fails (and left alone under NSCHAIN_DEBUG).

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use common::{debug, Fatal};
use nix::unistd::{fork, pipe2, ForkResult};

use crate::publish::Publish;

/// The address slirp4netns gives the container with `--configure`.
pub const SLIRP_GUEST: &str = "10.0.2.100";
pub const SLIRP_GATEWAY: &str = "10.0.2.2";

/// Which user-mode stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    Slirp4netns,
    Pasta,
}

impl Stack {
    pub fn program(self) -> &'static str {
        match self {
            Stack::Slirp4netns => "slirp4netns",
            Stack::Pasta => "pasta",
        }
    }
}

/// A user-mode stack helper forked before the unshare, waiting for the go-ahead.
#[derive(Debug)]
pub struct Helper {
    stack: Stack,
    go: File,
    ready: File,
    exit: Option<OwnedFd>,
    api: Option<PathBuf>,
    /// slirp4netns's stderr (None: it writes to ours).
    log: Option<File>,
}

/// The first date of a passt release that attaches from inside a user namespace and exits
/// with its namespace.
const PASTA_MIN: (u32, u32, u32) = (2024, 2, 0);

/// Checks that pasta is installed and recent enough.
pub fn check_pasta() -> Result<(), Fatal> {
    let out = Command::new("pasta")
        .arg("--version")
        .output()
        .map_err(|e| {
            Fatal::from(e)
                .context("unable to run pasta")
                .with_hint("install passt, or use --slirp4netns")
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or("").trim().to_owned();
    match pasta_date(&first) {
        Some(date) if date >= PASTA_MIN => Ok(()),
        _ => Err(Fatal::new(format!(
            "pasta is too old: '{first}' (--pasta needs passt 2024_02 or later)"
        ))
        .with_hint("use --slirp4netns, or install a newer passt")),
    }
}

/// The release date in `pasta 2024_02_20.1d6142f` (None for `pasta unknown version`).
pub fn pasta_date(version: &str) -> Option<(u32, u32, u32)> {
    let word = version.split_whitespace().nth(1)?;
    let date = word.split('.').next()?;
    let mut parts = date.split('_').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// Forks the helper (before the unshare). It waits for the go-ahead, then execs the stack
/// aimed at this process's (then new) network namespace.
pub fn spawn(
    stack: Stack,
    mtu: Option<u32>,
    publish: &[Publish],
    api_dir: &Path,
) -> Result<Helper, Fatal> {
    debug::step(format_args!("spawn {}", stack.program()), || {
        spawn_inner(stack, mtu, publish, api_dir)
    })
    .map_err(|e| Fatal::from(e.context(format!("unable to start {}", stack.program()))))
}

fn spawn_inner(
    stack: Stack,
    mtu: Option<u32>,
    publish: &[Publish],
    api_dir: &Path,
) -> anyhow::Result<Helper> {
    let pid = common::procfs::own_pid();
    let api = match (stack, publish.is_empty()) {
        (Stack::Slirp4netns, false) => {
            common::state::ensure_dir(api_dir, 0o700)?;
            let path = api_dir.join(format!("slirp4netns-{pid}.sock"));
            let _ = std::fs::remove_file(&path);
            Some(path)
        }
        _ => None,
    };
    let words = match stack {
        Stack::Slirp4netns => slirp4netns_words(mtu, api.as_deref(), pid),
        Stack::Pasta => pasta_words(mtu, publish, pid),
    };
    let program = HelperProgram::new(stack, words)?;
    let keep_exit = stack == Stack::Slirp4netns;
    let log = if keep_exit && !debug::enabled() {
        Some(stderr_file()?)
    } else {
        None
    };
    let pipes = Pipes::new()?;
    // SAFETY: single-threaded; the children only call async-signal-safe functions before exec.
    match unsafe { fork() }.context("unable to fork")? {
        ForkResult::Child => {
            // SAFETY: as above; the grandchild is re-parented away from the container.
            if let Ok(ForkResult::Child) = unsafe { fork() } {
                let log_fd = log.as_ref().map_or(-1, |f| f.as_raw_fd());
                pipes.exec_helper(&program, log_fd, keep_exit);
            }
            // SAFETY: the intermediate child ends at once.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            let _ = nix::sys::wait::waitpid(child, None);
            let Pipes {
                go_write,
                ready_read,
                exit_write,
                ..
            } = pipes;
            Ok(Helper {
                stack,
                go: File::from(go_write),
                ready: File::from(ready_read),
                exit: Some(exit_write),
                api,
                log,
            })
        }
    }
}

/// slirp4netns's argv: descriptors 3 (exit) and 4 (ready) in the helper after the shuffle.
fn slirp4netns_words(mtu: Option<u32>, api: Option<&Path>, pid: u32) -> Vec<String> {
    let mut w = vec![
        "slirp4netns".to_owned(),
        "--configure".to_owned(),
        format!("--mtu={}", mtu.unwrap_or(65520).min(65520)),
        "--disable-host-loopback".to_owned(),
        "--exit-fd=3".to_owned(),
        "--ready-fd=4".to_owned(),
    ];
    if let Some(api) = api {
        w.push(format!("--api-socket={}", api.display()));
    }
    w.push(pid.to_string());
    w.push("tap0".to_owned());
    w
}

/// pasta's argv: the published ports forwarded, nothing else.
fn pasta_words(mtu: Option<u32>, publish: &[Publish], pid: u32) -> Vec<String> {
    let mut w = vec![
        "pasta".to_owned(),
        "--config-net".to_owned(),
        "--quiet".to_owned(),
        "--foreground".to_owned(),
    ];
    if let Some(mtu) = mtu {
        w.push(format!("--mtu={mtu}"));
    }
    for (flag, proto) in [
        ("-t", crate::publish::Proto::Tcp),
        ("-u", crate::publish::Proto::Udp),
    ] {
        let list: Vec<String> = publish
            .iter()
            .filter(|p| p.proto == proto)
            .map(pasta_forward)
            .collect();
        w.push(flag.to_owned());
        w.push(if list.is_empty() {
            "none".to_owned()
        } else {
            list.join(",")
        });
    }
    w.extend(["-T", "none", "-U", "none", "--netns"].map(str::to_owned));
    w.push(format!("/proc/{pid}/ns/net"));
    w
}

/// What the helper execs, made before the fork (the child may not allocate).
struct HelperProgram {
    program: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    devnull: CString,
}

impl HelperProgram {
    fn new(stack: Stack, mut words: Vec<String>) -> anyhow::Result<HelperProgram> {
        let program = CString::new(std::mem::take(&mut words[0]))?;
        words[0] = stack.program().to_owned();
        let argv: Vec<CString> = words
            .into_iter()
            .map(CString::new)
            .collect::<Result<_, _>>()?;
        let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        Ok(HelperProgram {
            program,
            _argv: argv,
            argv_ptrs,
            devnull: CString::new("/dev/null")?,
        })
    }
}

/// The three pipes between netns and its helper: go (start), ready, exit.
struct Pipes {
    go_read: OwnedFd,
    go_write: OwnedFd,
    ready_read: OwnedFd,
    ready_write: OwnedFd,
    exit_read: OwnedFd,
    exit_write: OwnedFd,
}

impl Pipes {
    fn new() -> anyhow::Result<Pipes> {
        let flags = nix::fcntl::OFlag::O_CLOEXEC;
        let (go_read, go_write) = pipe2(flags)?;
        let (ready_read, ready_write) = pipe2(flags)?;
        let (exit_read, exit_write) = pipe2(flags)?;
        Ok(Pipes {
            go_read,
            go_write,
            ready_read,
            ready_write,
            exit_read,
            exit_write,
        })
    }

    /// The helper's life in the grandchild: wait for go, then exec with stdin and stdout on
    /// /dev/null, stderr on `log_fd` (if any), exit at 3 (`keep_exit`) and ready at 4.
    fn exec_helper(&self, program: &HelperProgram, log_fd: RawFd, keep_exit: bool) -> ! {
        // The parent's ends: a helper that kept them would never see the parent go (a failed
        // start left it blocked on the go pipe forever).
        let parent_ends = [
            self.go_write.as_raw_fd(),
            self.ready_read.as_raw_fd(),
            self.exit_write.as_raw_fd(),
        ];
        // SAFETY: raw descriptor juggling, a blocking read and exec, all async-signal-safe.
        unsafe {
            for fd in parent_ends {
                libc::close(fd);
            }
            libc::setsid();
            let mut byte = 0u8;
            let n = libc::read(self.go_read.as_raw_fd(), (&mut byte as *mut u8).cast(), 1);
            if n != 1 {
                libc::_exit(0);
            }
            let null = libc::open(program.devnull.as_ptr(), libc::O_RDWR);
            if null >= 0 {
                libc::dup2(null, 0);
                libc::dup2(null, 1);
            }
            if log_fd >= 0 {
                libc::dup2(log_fd, 2);
            }
            let exit_fd = libc::fcntl(self.exit_read.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10);
            let ready_fd = libc::fcntl(self.ready_write.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10);
            if exit_fd >= 0 && ready_fd >= 0 {
                if keep_exit {
                    libc::dup2(exit_fd, 3);
                }
                libc::dup2(ready_fd, 4);
                let _ = common::sys::fs::close_range(5, u32::MAX, 0);
                if !keep_exit {
                    libc::close(3);
                }
                libc::execvp(program.program.as_ptr(), program.argv_ptrs.as_ptr());
            }
            libc::_exit(127)
        }
    }
}

/// An anonymous file for slirp4netns's stderr.
fn stderr_file() -> anyhow::Result<File> {
    // SAFETY: memfd_create takes a name and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(c"slirp4netns-stderr".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("unable to create a memfd");
    }
    // SAFETY: a new descriptor that nothing else owns.
    Ok(File::from(unsafe {
        <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
    }))
}

fn pasta_forward(p: &Publish) -> String {
    match p.host_ip {
        Some(ip) => format!("{ip}/{}:{}", p.host_port, p.port),
        None => format!("{}:{}", p.host_port, p.port),
    }
}

impl Helper {
    /// Tells the helper the namespace exists, waits until the stack is up, and publishes the
    /// ports. Returns the descriptor the container must inherit (the exit pipe).
    pub fn start(mut self, publish: &[Publish]) -> Result<Option<OwnedFd>, Fatal> {
        let program = self.stack.program();
        let started = debug::step(format_args!("start {program}"), || -> anyhow::Result<()> {
            self.go.write_all(b"g")?;
            if self.stack == Stack::Slirp4netns {
                let mut answer = Vec::new();
                let _ = self.ready.read_to_end(&mut answer);
                if answer.first() != Some(&b'1') {
                    let said = self.said();
                    if said.is_empty() {
                        bail!("{program} exited before the network was ready (is it installed, and can it open /dev/net/tun?)");
                    }
                    bail!("{program} exited before the network was ready: {said}");
                }
            }
            Ok(())
        });
        if let Err(e) = started {
            self.cleanup_api();
            return Err(Fatal::from(e.context(format!("unable to start {program}"))));
        }
        if let Some(api) = self.api.clone() {
            for p in publish {
                let result = debug::step(format_args!("publish {p}"), || add_hostfwd(&api, p));
                if let Err(e) = result {
                    self.cleanup_api();
                    let said = self.said();
                    let e = if said.is_empty() { e } else { e.context(said) };
                    let fatal = Fatal::from(e.context(format!("unable to publish {p}")));
                    return Err(if p.host_port < 1024 {
                        fatal.with_hint("rootless, ports below net.ipv4.ip_unprivileged_port_start (usually 1024) cannot be published")
                    } else {
                        fatal
                    });
                }
            }
            self.cleanup_api();
        }
        Ok(self
            .exit
            .take()
            .filter(|_| self.stack == Stack::Slirp4netns))
    }

    /// What slirp4netns wrote on stderr so far, on one line (its start-up chatter left out).
    fn said(&self) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let mut text = vec![0u8; 4096];
        let n = std::os::unix::fs::FileExt::read_at(log, &mut text, 0).unwrap_or(0);
        String::from_utf8_lossy(&text[..n])
            .lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty() && !l.starts_with("sent tapfd") && !l.starts_with("received tapfd")
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn cleanup_api(&mut self) {
        if let Some(api) = self.api.take() {
            let _ = std::fs::remove_file(api);
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.cleanup_api();
    }
}

/// One `add_hostfwd` request on slirp4netns's API socket.
fn add_hostfwd(api: &Path, p: &Publish) -> anyhow::Result<()> {
    let mut stream = UnixStream::connect(api)
        .with_context(|| format!("unable to connect to {}", api.display()))?;
    let request = serde_json::json!({
        "execute": "add_hostfwd",
        "arguments": {
            "proto": p.proto.as_str(),
            "host_addr": p.host_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
            "host_port": p.host_port,
            "guest_addr": SLIRP_GUEST,
            "guest_port": p.port,
        }
    });
    stream.write_all(request.to_string().as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let value: serde_json::Value = serde_json::from_str(reply.trim())
        .with_context(|| format!("unexpected reply '{}'", reply.trim()))?;
    if let Some(error) = value.get("error") {
        let desc = error
            .get("desc")
            .and_then(|d| d.as_str())
            .unwrap_or("unknown error")
            .to_owned();
        bail!("slirp4netns: {desc}");
    }
    Ok(())
}

/// Lets the exit pipe's write end pass into COMMAND (slirp4netns exits when the last holder
/// of it does).
pub fn inherit(fd: &OwnedFd) -> Result<RawFd, Fatal> {
    let raw = fd.as_raw_fd();
    nix::fcntl::fcntl(
        raw,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .map_err(|e| Fatal::from(e).context("unable to pass the slirp4netns exit pipe on"))?;
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasta_versions() {
        assert_eq!(pasta_date("pasta 2024_02_20.1d6142f"), Some((2024, 2, 20)));
        assert_eq!(pasta_date("pasta 0.0~git20230309"), None);
        assert_eq!(pasta_date("pasta unknown version"), None);
        assert!(pasta_date("pasta 2023_03_09.abc").unwrap() < PASTA_MIN);
    }
}
