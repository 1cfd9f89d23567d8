//! Property tests: the shared parsers never panic, and accept exactly what they promise.

use common::chain::validate_name;
use common::ns::JoinTarget;
use common::report::plain_errno;
use proptest::prelude::*;

proptest! {
    #[test]
    fn join_targets_never_panic(text in ".{0,80}") {
        let _ = text.parse::<JoinTarget>();
    }

    #[test]
    fn a_target_with_a_slash_is_a_path(text in "[^\\x00]{0,20}/[^\\x00]{0,20}") {
        prop_assert_eq!(text.parse::<JoinTarget>(), Ok(JoinTarget::Path(text.clone().into())));
    }

    #[test]
    fn positive_numbers_are_pids(pid in 1u32..) {
        prop_assert_eq!(pid.to_string().parse::<JoinTarget>(), Ok(JoinTarget::Pid(pid)));
    }

    #[test]
    fn chain_names_never_panic_and_valid_ones_pass(text in ".{0,80}", good in "[A-Za-z0-9][A-Za-z0-9_.-]{0,62}") {
        let _ = validate_name(&text);
        prop_assert!(validate_name(&good).is_ok());
    }

    #[test]
    fn errno_rendering_never_panics(text in ".{0,120}") {
        let _ = plain_errno(&text);
    }
}
