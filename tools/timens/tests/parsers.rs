//! Property tests for the offset parser: no panic on any text, and every offset in range
//! written back as `SECS[.NS]` parses to itself.

use proptest::prelude::*;
use timens::{Offset, CLOCK_MAX_SECS};

const MAX_NANOS: i128 = CLOCK_MAX_SECS as i128 * 1_000_000_000;

proptest! {
    #[test]
    fn parsing_never_panics(text in any::<String>()) {
        let _ = Offset::parse(&text);
        let _ = Offset::parse_non_negative(&text);
    }

    #[test]
    fn number_shaped_text_never_panics(text in "[-+]?[0-9]{0,30}(\\.[0-9]{0,12})?") {
        let _ = Offset::parse(&text);
    }

    #[test]
    fn offsets_round_trip_through_their_text(nanos in -MAX_NANOS..=MAX_NANOS) {
        let offset = Offset::from_nanos(nanos);
        prop_assert_eq!(Offset::parse(&offset.to_string()), Ok(offset));
        let (secs, sub) = offset.kernel_form();
        prop_assert!((0..1_000_000_000).contains(&sub));
        prop_assert_eq!(secs * 1_000_000_000 + sub, nanos);
    }
}
