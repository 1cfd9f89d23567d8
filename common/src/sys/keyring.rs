//! `keyctl(2)`, which neither nix nor rustix has: the two operations the session keyring
//! needs (see [`crate::keyring`]).

use super::Errno;

const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`: joins a new, anonymous session keyring;
/// its serial number.
pub fn join_new_session_keyring() -> Result<i32, Errno> {
    // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL) takes no memory from us.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    Errno::result(rc).map(|serial| serial as i32)
}

/// `keyctl(KEYCTL_GET_KEYRING_ID, @s, 0)`: the serial number of this process's session
/// keyring, without creating one.
pub fn session_keyring() -> Result<i32, Errno> {
    // SAFETY: keyctl(KEYCTL_GET_KEYRING_ID, @s, 0) takes no memory from us.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_SESSION_KEYRING,
            0 as libc::c_long,
        )
    };
    Errno::result(rc).map(|serial| serial as i32)
}
