//! Property tests for every parser a tool exposes: arbitrary text (and text shaped like the
//! real syntax) never panics, only returns an error; known good values are accepted and
//! known bad ones refused. Parsers: id maps (userns), CIDRs and publish specs (netns),
//! volume, tmpfs, size, propagation, user and capability specs (mntns), hostnames and
//! domain names (utsns), IPC sysctls (ipcns), chain names and fds (common), subid files.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::str::FromStr;

use proptest::prelude::*;

/// Text shaped like the tools' syntax: digits, separators, letters, the odd unicode.
fn shaped() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[0-9a-zA-Z:/.,=_%+@ \\-]{0,48}|.{0,24}").unwrap()
}

fn all_text(s: &str) {
    let _ = userns::idmap::parse_single(s);
    let _ = userns::idmap::parse_range(s);
    let _ = userns::idmap::Range::from_str(s);
    let _ = netns::Cidr::from_str(s);
    let _ = netns::Publish::from_str(s);
    let _ = mntns::volume::parse_volume(OsStr::new(s));
    let _ = mntns::volume::parse_tmpfs(OsStr::new(s));
    let _ = mntns::volume::parse_size(s);
    let _ = mntns::volume::parse_target(s.as_bytes());
    let _ = mntns::volume::Propagation::from_str(s);
    let _ = mntns::volume::User::from_str(s);
    let _ = mntns::CapSpec::from_str(s);
    let _ = utsns::validate_hostname(s.as_bytes());
    let _ = utsns::validate_domainname(s.as_bytes());
    let _ = ipcns::IpcSysctl::parse(s);
    let _ = common::chain::parse_name(s);
    let _ = common::info::parse_fd(s);
    let _ = userns::subid::SubIds::parse(Path::new("/etc/subuid"), s);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_parser_panics_on_any_text(s in any::<String>()) {
        all_text(&s);
    }

    #[test]
    fn no_parser_panics_on_syntax_shaped_text(s in shaped()) {
        all_text(&s);
    }

    #[test]
    fn no_parser_panics_on_any_bytes(b in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = mntns::volume::parse_volume(OsStr::from_bytes(&b));
        let _ = mntns::volume::parse_tmpfs(OsStr::from_bytes(&b));
        let _ = mntns::volume::parse_target(&b);
        let _ = utsns::validate_hostname(&b);
        let _ = utsns::validate_domainname(&b);
    }

    #[test]
    fn id_ranges_with_numbers_never_panic_and_overflow_is_an_error(
        inner in any::<u64>(), outer in any::<u64>(), count in any::<u64>()
    ) {
        let spec = format!("{inner}:{outer}:{count}");
        if let Ok(range) = userns::idmap::parse_range(&spec) {
            // An accepted range fits in 32-bit ids and is not empty.
            prop_assert!(count > 0);
            prop_assert!(inner.checked_add(count).is_some_and(|e| e <= 1 << 32), "{range:?}");
            prop_assert!(outer.checked_add(count).is_some_and(|e| e <= 1 << 32), "{range:?}");
        }
    }

    #[test]
    fn cidrs_with_numbers_never_panic_and_prefixes_above_32_are_errors(
        a in any::<u8>(), b in any::<u8>(), c in any::<u8>(), d in any::<u8>(), p in 0u32..100
    ) {
        let r = netns::Cidr::from_str(&format!("{a}.{b}.{c}.{d}/{p}"));
        if p > 32 {
            prop_assert!(r.is_err());
        }
    }

    #[test]
    fn publish_specs_with_numbers_never_panic_and_big_ports_are_errors(
        h in any::<u32>(), c in any::<u32>(), proto in "tcp|udp|sctp|"
    ) {
        let spec = if proto.is_empty() { format!("{h}:{c}") } else { format!("{h}:{c}/{proto}") };
        let r = netns::Publish::from_str(&spec);
        if h > 65535 || c > 65535 || h == 0 || c == 0 || proto == "sctp" {
            prop_assert!(r.is_err(), "{spec} accepted");
        }
    }
}

#[test]
fn known_good_values_are_accepted() {
    assert!(userns::idmap::parse_range("0:100000:65536").is_ok());
    assert!(userns::idmap::parse_single("1000").is_ok());
    assert!(netns::Cidr::from_str("10.200.0.0/16").is_ok());
    assert!(netns::Publish::from_str("8080:80").is_ok());
    assert!(netns::Publish::from_str("127.0.0.1:8080:80/udp").is_ok());
    assert!(mntns::volume::parse_volume(OsStr::new("/srv:/data:ro")).is_ok());
    assert!(mntns::volume::parse_tmpfs(OsStr::new("/tmp:size=64m,mode=1777")).is_ok());
    assert!(mntns::volume::Propagation::from_str("slave").is_ok());
    assert!(mntns::volume::User::from_str("1000:1000").is_ok());
    assert!(mntns::CapSpec::from_str("net_admin").is_ok());
    assert!(mntns::CapSpec::from_str("CAP_SYS_ADMIN").is_ok());
    assert!(utsns::validate_hostname(b"web1").is_ok());
    assert!(ipcns::IpcSysctl::parse("kernel.shmmax=67108864").is_ok());
    assert!(common::chain::parse_name("web1").is_ok());
    assert!(common::info::parse_fd("2").is_ok());
}

#[test]
fn known_bad_values_are_refused() {
    for bad in [
        "",
        "x",
        "0:1",
        "0:1:0",
        "-1:0:1",
        "0:4294967295:2",
        "1:2:3:4",
    ] {
        assert!(userns::idmap::parse_range(bad).is_err(), "{bad}");
    }
    for bad in ["", "10.0.0.0/33", "10.0.0/8", "abc", "300.0.0.0/8"] {
        assert!(netns::Cidr::from_str(bad).is_err(), "{bad}");
    }
    for bad in ["", "80", "0:80", "70000:80", "80:80/sctp", "1.2.3:80:80"] {
        assert!(netns::Publish::from_str(bad).is_err(), "{bad}");
    }
    for bad in ["", "nocolon", ":/x", "/a:rel", "/a:/x:rx", "/a:/"] {
        assert!(
            mntns::volume::parse_volume(OsStr::new(bad)).is_err(),
            "{bad}"
        );
    }
    for bad in ["", "CAP_NOPE", "nope", "ALLL"] {
        assert!(mntns::CapSpec::from_str(bad).is_err(), "{bad}");
    }
    for bad in [&b""[..], b"-a", b"a_b", b"a..b", &[b'a'; 65]] {
        assert!(utsns::validate_hostname(bad).is_err(), "{bad:?}");
    }
    for bad in ["kernel.hostname=x", "kernel.shmmax", "kernel.shmmax=-1"] {
        assert!(ipcns::IpcSysctl::parse(bad).is_err(), "{bad}");
    }
    for bad in ["", "a/b", "..", "a b"] {
        assert!(common::chain::parse_name(bad).is_err(), "{bad}");
    }
}
