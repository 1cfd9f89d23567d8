//! A container starts with a new, empty session keyring, as runc and crun give it: the keys
//! of the caller's session (`keyctl add ... @s`: tokens, passwords, Kerberos tickets) are
//! found through the session keyring a process inherits, and kernel keys have no namespace.
//!
//! The keyring is anonymous (`_ses`): a named one could be joined by name by another
//! process of the same user. Keys outside it that grant no permission to others (the
//! default for `user` keys) stay unreadable even by id: only the possessor may read them.

use nix::errno::Errno;

/// What [`join_new_session`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyring {
    /// Joined a new session keyring with this serial number.
    Joined(i32),
    /// Keys are not available here (kernel without keys, or keyctl refused by a seccomp
    /// filter that COMMAND inherits too): there is nothing to reach.
    Unavailable,
}

/// Replaces this process's session keyring with a new, empty, anonymous one (inherited by
/// COMMAND across exec).
pub fn join_new_session() -> Result<Keyring, Errno> {
    match crate::sys::keyring::join_new_session_keyring() {
        Ok(serial) => Ok(Keyring::Joined(serial)),
        Err(Errno::ENOSYS) => Ok(Keyring::Unavailable),
        // Refused (an outer container's seccomp, crun#402): fine only if no keyctl works.
        Err(e @ (Errno::EPERM | Errno::EACCES)) => match session_keyring() {
            Err(Errno::EPERM | Errno::EACCES | Errno::ENOSYS) => Ok(Keyring::Unavailable),
            _ => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// The serial number of this process's session keyring (without creating one).
pub fn session_keyring() -> Result<i32, Errno> {
    crate::sys::keyring::session_keyring()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_session_keyring_replaces_the_inherited_one() {
        // In a child: the keyring belongs to the calling thread's credentials.
        // SAFETY: the child makes two system calls and _exits.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let before = session_keyring();
            let ok = match join_new_session() {
                Ok(Keyring::Joined(serial)) => {
                    before != Ok(serial) && session_keyring() == Ok(serial)
                }
                Ok(Keyring::Unavailable) => before.is_err(),
                Err(_) => false,
            };
            // SAFETY: ends the forked child at once.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        assert!(child > 0);
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a local.
        unsafe { libc::waitpid(child, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
