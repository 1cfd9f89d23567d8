//! Property tests for hostname and domainname validation: no panic, only errors.

use proptest::prelude::*;
use utsns::{validate_domainname, validate_hostname};

proptest! {
    #[test]
    fn validation_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        let _ = validate_hostname(&bytes);
        let _ = validate_domainname(&bytes);
    }

    #[test]
    fn rfc_1123_names_are_accepted(name in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,2}") {
        prop_assert!(validate_hostname(name.as_bytes()).is_ok(), "{}", name);
    }

    #[test]
    fn names_over_64_bytes_are_refused(name in "[a-z]{65,100}") {
        prop_assert!(validate_hostname(name.as_bytes()).is_err());
        prop_assert!(validate_domainname(name.as_bytes()).is_err());
    }
}
