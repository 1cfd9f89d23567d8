//! Property tests for `--sysctl KEY=VALUE`: no panic, only errors; valid settings round-trip.

use ipcns::IpcSysctl;
use proptest::prelude::*;

proptest! {
    #[test]
    fn parsing_never_panics(text in ".{0,80}") {
        let _ = IpcSysctl::parse(&text);
    }

    #[test]
    fn numeric_settings_are_accepted(value in any::<u64>()) {
        let parsed = IpcSysctl::parse(&format!("kernel.shmmax={value}"));
        prop_assert_eq!(parsed.map(|s| s.value), Ok(value.to_string()));
    }

    #[test]
    fn other_keys_are_refused(key in "[a-z]{1,10}\\.[a-z_]{1,12}") {
        let parsed = IpcSysctl::parse(&format!("{key}=1"));
        prop_assert_eq!(parsed.is_ok(), key.starts_with("kernel.") && ["kernel.shmmax","kernel.shmall","kernel.shmmni","kernel.msgmax","kernel.msgmnb","kernel.msgmni"].contains(&key.as_str()));
    }
}
