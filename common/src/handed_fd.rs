//! Descriptors handed down the chain (DESIGN.md §1, "Handed-down fds"): a link makes an fd a later
//! link cannot make itself and names it in a variable.
//!
//! The producer keeps the fd close-on-exec until right before its exec ([`inherit`]); every
//! other link passes it through untouched; the consumer reads the variable, unexports it and
//! owns the fd again close-on-exec ([`adopt`]), so that none reaches COMMAND. Users:
//! `NSCHAIN_IDMAP` (userns → mntns), `NSCHAIN_SYSFS_FD` ([`crate::sysfs`], netns → mntns).

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// A handed-down fd number: decimal, above 2 (stdio is never a hand-down).
pub fn parse_fd(text: &str) -> Option<RawFd> {
    text.parse().ok().filter(|fd: &RawFd| *fd > 2)
}

/// Producer, right before its exec: the next program inherits `fd`.
pub fn inherit(fd: BorrowedFd<'_>) -> io::Result<()> {
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty()))?;
    Ok(())
}

/// Consumer: owns the open fd `fd` (close-on-exec from now on). Check what it is first: this
/// closes it when the result is dropped.
pub fn adopt(fd: RawFd) -> io::Result<OwnedFd> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    // SAFETY: the descriptor was handed down to this process by an earlier link, is open
    // (checked above), and the caller takes it over from the variable that named it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether a word of COMMAND runs `tool` (its file name), so that a consumer follows: a
/// producer makes nothing that no link would take (what it hands down is shed before COMMAND
/// anyway, [`crate::handdown`]). A consumer behind a shell (`sh -c 'mntns ...'`) is not seen.
pub fn consumer_follows(command: &[OsString], tool: &str) -> bool {
    command.iter().any(|word| {
        Path::new(word)
            .file_name()
            .is_some_and(|name| name.as_bytes() == tool.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_numbers_above_stdio_only() {
        assert_eq!(parse_fd("7"), Some(7));
        for bad in ["", "0", "2", "-4", "x", "7 ", "3\n"] {
            assert_eq!(parse_fd(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_consumer_is_a_word_of_the_command() {
        let words = |w: &[&str]| w.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(consumer_follows(
            &words(&["userns", "--", "/usr/bin/mntns", "--", "sh"]),
            "mntns"
        ));
        assert!(!consumer_follows(
            &words(&["sh", "-c", "mntns -- true"]),
            "mntns"
        ));
        assert!(!consumer_follows(&words(&["mntns2"]), "mntns"));
    }
}
