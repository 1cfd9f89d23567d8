//! Clock offsets as users write them (`SECS[.NS]`: seconds, optionally signed, with up to nine
//! decimals) and as the kernel takes them (`SECS NANOSECS`, the nanoseconds always positive).
//! Pure arithmetic: nothing here touches the kernel.

use std::fmt;

/// Nanoseconds in a second.
const NANOS: i128 = 1_000_000_000;

/// The highest value a clock of a time namespace may read: the kernel refuses an offset that
/// makes a clock exceed `KTIME_SEC_MAX / 2` seconds (about 146 years), or go below 0.
pub const CLOCK_MAX_SECS: i64 = 4_611_686_018;

/// A signed span of time, exact to the nanosecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Offset {
    nanos: i128,
}

impl Offset {
    /// The span of `nanos` nanoseconds.
    pub fn from_nanos(nanos: i128) -> Offset {
        Offset { nanos }
    }

    /// The span in nanoseconds.
    pub fn nanos(self) -> i128 {
        self.nanos
    }

    /// The kernel's form: whole seconds (rounded down) and the nanoseconds above them, in
    /// `0..1e9` (-1.5 s is `-2 500000000`).
    pub fn kernel_form(self) -> (i128, i128) {
        (self.nanos.div_euclid(NANOS), self.nanos.rem_euclid(NANOS))
    }

    /// Parses `SECS[.NS]`: an optional sign, decimal seconds, and optionally a point and one
    /// to nine decimals. Nothing else (no spaces, exponents or units).
    pub fn parse(text: &str) -> Result<Offset, String> {
        let shape = || {
            format!(
                "'{text}' is not a number of seconds: expected SECS or SECS.FRACTION \
                 (at most 9 decimals), e.g. 1000, -60 or 0.5"
            )
        };
        let (negative, unsigned) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (unsigned, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
            return Err(shape());
        }
        let fraction = fraction.unwrap_or("");
        if fraction.len() > 9 {
            return Err(format!(
                "'{text}' has more than 9 decimals: the clocks count nanoseconds"
            ));
        }
        // More digits than any clock's range cannot be parsed into a number, but are no less
        // out of range: say so, rather than "not a number".
        let too_far = || {
            format!(
                "'{text}' is out of range: a clock of a time namespace reads at most \
                 {CLOCK_MAX_SECS} s (146 years)"
            )
        };
        let whole = whole.trim_start_matches('0');
        if whole.len() > 12 {
            return Err(too_far());
        }
        let secs: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| shape())?
        };
        if secs > i128::from(CLOCK_MAX_SECS) {
            return Err(too_far());
        }
        let padded = format!("{fraction:0<9}");
        let sub: i128 = padded.parse().map_err(|_| shape())?;
        let magnitude = secs * NANOS + sub;
        Ok(Offset {
            nanos: if negative { -magnitude } else { magnitude },
        })
    }

    /// [`Offset::parse`], refusing a negative value (an uptime).
    pub fn parse_non_negative(text: &str) -> Result<Offset, String> {
        let offset = Offset::parse(text)?;
        if offset.nanos < 0 {
            return Err(format!(
                "'{text}' is negative: a clock cannot read less than 0"
            ));
        }
        Ok(offset)
    }
}

impl std::ops::Add for Offset {
    type Output = Offset;
    fn add(self, other: Offset) -> Offset {
        Offset {
            nanos: self.nanos + other.nanos,
        }
    }
}

impl std::ops::Sub for Offset {
    type Output = Offset;
    fn sub(self, other: Offset) -> Offset {
        Offset {
            nanos: self.nanos - other.nanos,
        }
    }
}

/// `SECS[.NS]` again, the shortest exact form: `1000`, `-1.5`, `0.000000001`.
impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.nanos < 0 { "-" } else { "" };
        let magnitude = self.nanos.unsigned_abs();
        let secs = magnitude / NANOS.unsigned_abs();
        let sub = magnitude % NANOS.unsigned_abs();
        if sub == 0 {
            write!(f, "{sign}{secs}")
        } else {
            let decimals = format!("{sub:09}");
            write!(f, "{sign}{secs}.{}", decimals.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> i128 {
        Offset::parse(text).map(Offset::nanos).unwrap()
    }

    #[test]
    fn seconds_with_up_to_nine_decimals_are_parsed() {
        assert_eq!(parsed("1000"), 1_000_000_000_000);
        assert_eq!(parsed("+5"), 5_000_000_000);
        assert_eq!(parsed("0"), 0);
        assert_eq!(parsed("-0"), 0);
        assert_eq!(parsed("1.5"), 1_500_000_000);
        assert_eq!(parsed("-1.5"), -1_500_000_000);
        assert_eq!(parsed("0.000000001"), 1);
        assert_eq!(parsed("1.999999999"), 1_999_999_999);
        assert_eq!(parsed("007"), 7_000_000_000);
        assert_eq!(parsed("4611686018"), 4_611_686_018_000_000_000);
    }

    #[test]
    fn malformed_and_out_of_range_values_are_refused() {
        for bad in [
            "",
            "-",
            "+",
            "abc",
            "1.2.3",
            "1.",
            ".5",
            "1.9999999999",
            "1e3",
            "0x10",
            " 1",
            "1 ",
            "1,5",
            "--1",
            "+-1",
            "1s",
            "٣",
            "4611686019",
            "-4611686019",
            "99999999999999999999999999999999999999999",
        ] {
            assert!(Offset::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Offset::parse("1.9999999999")
            .unwrap_err()
            .contains("more than 9 decimals"));
        assert!(Offset::parse("99999999999999999999")
            .unwrap_err()
            .contains("out of range"));
    }

    #[test]
    fn an_uptime_is_never_negative() {
        assert!(Offset::parse_non_negative("5").is_ok());
        assert!(Offset::parse_non_negative("0").is_ok());
        assert!(Offset::parse_non_negative("-0.5").is_err());
    }

    #[test]
    fn the_kernel_form_keeps_nanoseconds_positive() {
        assert_eq!(
            Offset::from_nanos(-1_500_000_000).kernel_form(),
            (-2, 500_000_000)
        );
        assert_eq!(
            Offset::from_nanos(1_500_000_000).kernel_form(),
            (1, 500_000_000)
        );
        assert_eq!(Offset::from_nanos(-1).kernel_form(), (-1, 999_999_999));
        assert_eq!(Offset::from_nanos(0).kernel_form(), (0, 0));
    }

    #[test]
    fn display_round_trips() {
        for text in ["1000", "-1.5", "0.000000001", "0", "-0.25", "4611686018"] {
            assert_eq!(Offset::parse(text).unwrap().to_string(), text);
        }
    }
}
