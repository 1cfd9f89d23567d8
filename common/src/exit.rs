//! Exit statuses of the chain contract (DESIGN.md §1).

use std::os::unix::process::ExitStatusExt;

/// The tool itself failed: a usage error or a setup step.
pub const FAILURE: u8 = 125;
/// COMMAND was found but could not be executed.
pub const CANNOT_EXECUTE: u8 = 126;
/// COMMAND was not found.
pub const NOT_FOUND: u8 = 127;

/// The shell encoding of a wait status: `n` for an exit, `128 + s` for death by signal `s`.
pub fn shell_status(status: std::process::ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => 128u8.wrapping_add(signal as u8),
        (None, None) => FAILURE,
    }
}

/// The shell encoding of a raw `waitpid` status.
pub fn from_wait_status(raw: i32) -> u8 {
    shell_status(std::process::ExitStatus::from_raw(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_signals_use_the_shell_encoding() {
        assert_eq!(from_wait_status(3 << 8), 3);
        assert_eq!(from_wait_status(255 << 8), 255);
        assert_eq!(from_wait_status(libc::SIGKILL), 137);
        assert_eq!(from_wait_status(libc::SIGSEGV | 0x80), 139);
    }
}
