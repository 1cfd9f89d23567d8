//! The process a joiner copies: the chain's payload. Its /proc directory, root and working
//! directory are opened on the host, before any namespace changes, while this /proc still
//! shows it; its credentials are read once this process is in the container's user namespace,
//! so that the kernel gives the ids as the container sees them.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::Context;
use common::{debug, Fatal};

use common::creds::Creds;

#[derive(Debug)]
pub struct Target {
    pid: u32,
    /// `/proc/PID`: it names this process for as long as it lives, whatever pid reuse does.
    proc: OwnedFd,
    root: OwnedFd,
    cwd: OwnedFd,
}

impl Target {
    /// Opens the payload `pid`, checking that it is still in the chain's mount namespace
    /// (`mnt`: its inode, when the chain made one).
    pub fn open(pid: u32, mnt: Option<u64>) -> Result<Target, Fatal> {
        let dir = |what: &str| -> anyhow::Result<OwnedFd> {
            let path = format!("/proc/{pid}{what}");
            let file = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(&path)
                .with_context(|| format!("unable to open {path}"))?;
            Ok(file.into())
        };
        let open = || -> anyhow::Result<Target> {
            let target = Target {
                pid,
                proc: dir("")?,
                root: dir("/root")?,
                cwd: dir("/cwd")?,
            };
            if let Some(inode) = mnt {
                let ns = nix::sys::stat::fstatat(
                    Some(target.proc.as_raw_fd()),
                    "ns/mnt",
                    nix::fcntl::AtFlags::empty(),
                )?;
                anyhow::ensure!(
                    ns.st_ino == inode,
                    "process {pid} is no longer in the container"
                );
            }
            Ok(target)
        };
        open().map_err(|e| Fatal::from(e).context("unable to open the container's payload"))
    }

    /// Enters the payload's root, then its working directory, checked to be inside the root.
    pub fn enter_root(&self) -> Result<(), Fatal> {
        debug::step("enter the container's root", || -> anyhow::Result<()> {
            nix::unistd::fchdir(self.root.as_raw_fd()).context("unable to enter the root")?;
            nix::unistd::chroot(".").context("unable to chroot into the container's root")?;
            nix::unistd::fchdir(self.cwd.as_raw_fd())
                .context("unable to enter the container's working directory")?;
            // CVE-2024-21626: a working directory outside the root reads "(unreachable)".
            let cwd = nix::unistd::getcwd().context("unable to read the working directory")?;
            anyhow::ensure!(
                cwd.is_absolute(),
                "the working directory {} is outside the root",
                cwd.display()
            );
            Ok(())
        })
        .map_err(|e| Fatal::from(e).context("unable to enter the container's root"))
    }

    /// The payload's credentials, as this process's user namespace sees them.
    pub fn creds(&self) -> Result<Creds, Fatal> {
        let read = || -> anyhow::Result<Creds> {
            let fd = nix::fcntl::openat(
                Some(self.proc.as_raw_fd()),
                "status",
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )?;
            // SAFETY: openat returned a fresh descriptor that nothing else owns.
            let mut file = unsafe { File::from_raw_fd(fd) };
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            Creds::parse(&text)
        };
        read().map_err(|e| {
            Fatal::from(e).context(format!(
                "unable to read the credentials of the container's process {}",
                self.pid
            ))
        })
    }
}
