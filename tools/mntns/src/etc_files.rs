//! `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` of a container, generated from the
//! namespaces it really has: the hostname of its UTS namespace, the addresses of its network
//! namespace, and the host's resolver configuration as that namespace can use it (dns).
//!
//! The files are written to a small staging tmpfs and bind-mounted over the root's files,
//! as Docker does, so the image (or the overlay's lower layers) is never modified; only an
//! empty mount point is created when the file is missing.

use std::ffi::{CStr, OsStr};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::Context;
use common::{debug, report, Fatal};
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::Mode;

use crate::resolve::{self, Create};
use crate::sys;

/// The generated files, computed before the root changes (the host's resolv.conf is read).
#[derive(Debug)]
pub struct EtcFiles {
    pub files: Vec<(&'static str, String)>,
}

impl EtcFiles {
    /// `net`: the network stack netns handed down (`NSCHAIN_NET`), if any.
    pub fn generate(net: Option<&str>) -> EtcFiles {
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into());
        let addresses = addresses();
        let mut files = vec![
            ("hostname", format!("{hostname}\n")),
            ("hosts", hosts(&hostname, &addresses)),
        ];
        if let Ok(resolv) = std::fs::read_to_string("/etc/resolv.conf") {
            let resolv = crate::dns::container_resolv(&resolv, net);
            files.push(("resolv.conf", resolv));
        }
        EtcFiles { files }
    }
}

/// `/etc/hosts`: loopback names, then the container's own addresses for its hostname.
pub fn hosts(hostname: &str, addresses: &[IpAddr]) -> String {
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if addresses.is_empty() {
        let _ = writeln!(text, "127.0.1.1\t{hostname}");
    }
    for address in addresses {
        let _ = writeln!(text, "{address}\t{hostname}");
    }
    text
}

/// The non-loopback addresses of this network namespace (getifaddrs).
fn addresses() -> Vec<IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr whose family says which struct it is.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        let address = match family {
            libc::AF_INET => {
                // SAFETY: family AF_INET: the sockaddr is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes())
            }
            libc::AF_INET6 => {
                // SAFETY: family AF_INET6: the sockaddr is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                IpAddr::from(sin6.sin6_addr.s6_addr)
            }
            _ => continue,
        };
        let link_local = matches!(address, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80);
        // SAFETY: ifa_name is a NUL-terminated string valid until freeifaddrs.
        let _name = unsafe { CStr::from_ptr(ifa.ifa_name) };
        if !address.is_loopback() && !link_local && !out.contains(&address) {
            out.push(address);
        }
    }
    // SAFETY: list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    out
}

/// Writes the files to a staging tmpfs mounted on the root's `/dev` (before the real /dev
/// tmpfs covers it) and binds each over `/etc/NAME` of the root.
pub fn install(root: BorrowedFd<'_>, files: &EtcFiles) -> Result<(), Fatal> {
    debug::step("generate /etc files", || stage(root, files)).map_err(|e| {
        Fatal::from(e).context("unable to set up /etc/hostname, /etc/hosts and /etc/resolv.conf")
    })
}

fn stage(root: BorrowedFd<'_>, files: &EtcFiles) -> anyhow::Result<()> {
    let staging_point = resolve::top_dir(root, "dev")?;
    sys::mount_fs(
        "tmpfs",
        staging_point.as_fd(),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755,size=1m"),
    )
    .context("unable to mount a staging tmpfs")?;
    let result = bind_all(root, files);
    // The binds keep the staging files alive; the staging mount itself goes.
    let staged = resolve::top_dir(root, "dev")?;
    nix::mount::umount2(&sys::fd_path(staged.as_fd()), MntFlags::MNT_DETACH)
        .context("unable to detach the staging tmpfs")?;
    result
}

fn bind_all(root: BorrowedFd<'_>, files: &EtcFiles) -> anyhow::Result<()> {
    let staged = resolve::top_dir(root, "dev")?;
    for (name, content) in &files.files {
        let fd = nix::fcntl::openat(
            Some(staged.as_raw_fd()),
            *name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .with_context(|| format!("unable to stage {name}"))?;
        // SAFETY: a fresh descriptor nothing else owns.
        let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        std::io::Write::write_all(&mut &file, content.as_bytes())
            .with_context(|| format!("unable to write {name}"))?;
        drop(file);
        let source = resolve::open_path(staged.as_fd(), OsStr::new(name))?;
        let target_path = Path::new("/etc").join(name);
        let target = match resolve::open_in_root(root, &target_path, Create::File) {
            Ok(fd) => fd,
            Err(e) => {
                // A read-only image without the file: the container does without it.
                report::warning(format_args!("{:#}; not generating it", e));
                continue;
            }
        };
        if resolve::file_type(target.as_fd())? != nix::sys::stat::SFlag::S_IFREG {
            report::warning(format_args!(
                "{} in the new root is not a regular file; not generating it",
                target_path.display()
            ));
            continue;
        }
        sys::bind(
            source.as_fd(),
            target.as_fd(),
            false,
            sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
        )
        .with_context(|| format!("unable to bind {}", target_path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_the_container() {
        let text = hosts("web1", &[]);
        assert!(text.contains("127.0.0.1\tlocalhost\n"));
        assert!(text.contains("127.0.1.1\tweb1\n"));
        let text = hosts(
            "web1",
            &["10.0.0.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))],
        );
        assert!(text.contains("10.0.0.2\tweb1\n"));
        assert!(!text.contains("127.0.1.1"));
    }
}
