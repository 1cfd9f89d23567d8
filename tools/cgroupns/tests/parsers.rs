//! Property tests for the limit parsers: no panic on any text, sizes written back in docker's
//! units parse to themselves, and a CPU list names exactly the CPUs it spans.

use cgroupns::{cpus_of, parse_cpus, parse_cpuset, parse_pids, parse_weight, Size, Swap};
use proptest::prelude::*;

proptest! {
    #[test]
    fn parsing_never_panics(text in any::<String>()) {
        let _ = Size::parse(&text);
        let _ = Size::parse_memory(&text);
        let _ = Swap::parse(&text);
        let _ = parse_pids(&text);
        let _ = parse_cpus(&text);
        let _ = parse_weight(&text);
        let _ = parse_cpuset(&text);
        let _ = cpus_of(&text);
    }

    #[test]
    fn size_shaped_text_never_panics(text in "-?[0-9]{0,25}(\\.[0-9]{0,10})? ?[kKmMgGtTpPqQ]?[iI]?[bB]?") {
        let _ = Size::parse(&text);
    }

    #[test]
    fn sizes_round_trip_through_their_text(bytes in 0u64..(1 << 50)) {
        let size = Size(bytes);
        prop_assert_eq!(Size::parse(&size.to_string()), Ok(size));
    }

    #[test]
    fn a_cpu_range_spans_its_cpus(lo in 0u32..512, len in 0u32..64) {
        let list = format!("{lo}-{}", lo + len);
        prop_assert_eq!(parse_cpuset(&list), Ok(list.clone()));
        prop_assert_eq!(cpus_of(&list), (lo..=lo + len).collect::<Vec<_>>());
    }
}
