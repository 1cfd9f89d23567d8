//! `--sysctl net.KEY=VALUE`: the network namespace's own sysctls (/proc/sys/net shows the
//! namespace of the process that opens it), written right after the unshare. Keys outside
//! `net.` are refused: they would change the host.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use common::Fatal;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// One `net.KEY=VALUE` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetSysctl {
    pub key: String,
    pub value: String,
}

impl NetSysctl {
    /// Parses `net.KEY=VALUE` (dots or slashes); each part of KEY is a plain name.
    pub fn parse(text: &str) -> Result<NetSysctl, String> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| format!("'{text}' is not KEY=VALUE"))?;
        let key = key.trim().replace('/', ".");
        let plain = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !key.starts_with("net.") || !key.split('.').all(plain) {
            return Err(format!(
                "'{key}' is not a network namespace sysctl (net.*, e.g. net.ipv4.ping_group_range)"
            ));
        }
        if value.contains('\n') {
            return Err(format!("{key}: the value holds a newline"));
        }
        Ok(NetSysctl {
            key,
            value: value.to_owned(),
        })
    }

    /// Writes the value under /proc/sys/net, the current network namespace's view.
    pub fn apply(&self) -> Result<(), Fatal> {
        common::sysctl::write(&self.key, &self.value)
    }
}

/// A directory under /proc/sys/net of the current network namespace, held open so that each
/// write below it looks up only what is left of its path. Each component of a /proc/sys/net
/// path that a namespace opens for the first time is looked up among the cached entries of
/// every other namespace (one per namespace that opened it: O(N) per component, about 60 us
/// each with 1000 containers).
pub struct NetDir(OwnedFd);

impl NetDir {
    /// /proc/sys/net of the namespace this process is in (the view stays that namespace's).
    pub fn open() -> std::io::Result<NetDir> {
        open_dir(None, "/proc/sys/net")
    }

    /// The directory `rel` below this one, e.g. `ipv6/conf/default`.
    pub fn sub(&self, rel: &str) -> std::io::Result<NetDir> {
        open_dir(Some(self.0.as_raw_fd()), rel)
    }

    /// Writes `value` to the file `rel` below this directory.
    pub fn write(&self, rel: &str, value: &str) -> std::io::Result<()> {
        let fd = nix::fcntl::openat(
            Some(self.0.as_raw_fd()),
            rel,
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // SAFETY: openat returned a new descriptor that nothing else owns.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        file.write_all(value.as_bytes())
    }
}

fn open_dir(at: Option<RawFd>, path: &str) -> std::io::Result<NetDir> {
    let fd = nix::fcntl::openat(
        at,
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(NetDir(unsafe { OwnedFd::from_raw_fd(fd) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_sysctls_are_parsed_and_others_refused() {
        assert_eq!(
            NetSysctl::parse("net.ipv4.ping_group_range=0 0"),
            Ok(NetSysctl {
                key: "net.ipv4.ping_group_range".into(),
                value: "0 0".into()
            })
        );
        assert_eq!(
            NetSysctl::parse("net/ipv4/ip_forward=1").map(|s| s.key),
            Ok("net.ipv4.ip_forward".into())
        );
        for bad in [
            "kernel.hostname=x",
            "net..x=1",
            "net.ipv4.x",
            "net.ipv4/../../kernel/x=1",
            "net.a=1\n2",
        ] {
            assert!(NetSysctl::parse(bad).is_err(), "{bad}");
        }
    }
}
