//! Id maps: the `INNER:OUTER:COUNT` ranges of `--map-users`/`--map-groups`, single ids of
//! `--map-user`/`--map-group`, and the checks the kernel would otherwise answer with a bare
//! `EINVAL` (overlaps, ids past 2^32-2, more than 340 lines).

use std::fmt;
use std::str::FromStr;

/// The largest usable id: `(uid_t)-1` is the "no id" value and cannot be mapped.
pub const MAX_ID: u64 = u32::MAX as u64 - 1;

/// The kernel's limit of lines per map (since Linux 4.15).
pub const MAX_LINES: usize = 340;

/// One line of `/proc/PID/uid_map` or `gid_map`: ids `inner..inner+count` inside are
/// `outer..outer+count` in the parent user namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub inner: u32,
    pub outer: u32,
    pub count: u32,
}

impl Range {
    /// The last inner id (inclusive).
    pub fn inner_last(&self) -> u64 {
        u64::from(self.inner) + u64::from(self.count) - 1
    }

    /// The last outer id (inclusive).
    pub fn outer_last(&self) -> u64 {
        u64::from(self.outer) + u64::from(self.count) - 1
    }

    /// The outer id that `inner` maps to, if this range covers it.
    pub fn outer_of(&self, inner: u32) -> Option<u32> {
        let offset = inner.checked_sub(self.inner)?;
        (offset < self.count).then(|| self.outer + offset)
    }

    /// The line as the kernel and `newuidmap` take it.
    pub fn line(&self) -> String {
        format!("{} {} {}", self.inner, self.outer, self.count)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.inner, self.outer, self.count)
    }
}

impl FromStr for Range {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fields: Vec<&str> = text.split(':').collect();
        let [inner, outer, count] = fields[..] else {
            return Err(format!(
                "'{text}' is not INNER:OUTER:COUNT (three numbers separated by colons)"
            ));
        };
        let inner = parse_id(inner, "INNER")?;
        let outer = parse_id(outer, "OUTER")?;
        let count = parse_number(count, "COUNT")?;
        if count == 0 {
            return Err(format!("'{text}': COUNT must be at least 1"));
        }
        for (what, start) in [("INNER", inner), ("OUTER", outer)] {
            let last = u64::from(start) + count - 1;
            if last > MAX_ID {
                return Err(format!(
                    "'{text}': {what} range ends at {last}, past the largest id {MAX_ID} (2^32-2)"
                ));
            }
        }
        let count = u32::try_from(count).map_err(|_| format!("'{text}': COUNT is too large"))?;
        Ok(Range {
            inner,
            outer,
            count,
        })
    }
}

fn parse_number(text: &str, what: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} '{text}' is not a number"));
    }
    text.parse::<u64>()
        .map_err(|_| format!("{what} '{text}' is too large (the largest id is {MAX_ID})"))
}

fn parse_id(text: &str, what: &str) -> Result<u32, String> {
    let value = parse_number(text, what)?;
    if value > MAX_ID {
        return Err(format!(
            "{what} {value} is too large: ids go up to {MAX_ID} (2^32-2)"
        ));
    }
    u32::try_from(value).map_err(|_| format!("{what} {value} is too large"))
}

/// Value parser for `--map-user`/`--map-group`: one id, 0..=2^32-2.
pub fn parse_single(text: &str) -> Result<u32, String> {
    parse_id(text, "the id")
}

/// Value parser for `--map-user`: a uid, or a user name of this root's /etc/passwd
/// (read as a file, common::accounts: the binaries are static, without NSS).
pub fn parse_user(text: &str) -> Result<u32, String> {
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return parse_single(text);
    }
    common::accounts::uid_of(text)
}

/// Value parser for `--map-group`: a gid, or a group name of this root's /etc/group.
pub fn parse_group(text: &str) -> Result<u32, String> {
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return parse_single(text);
    }
    common::accounts::gid_of(text)
}

/// Value parser for `--map-users`/`--map-groups`.
pub fn parse_range(text: &str) -> Result<Range, String> {
    text.parse()
}

/// A whole uid or gid map, checked the way the kernel checks it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdMap {
    pub ranges: Vec<Range>,
}

impl IdMap {
    /// Checks that no two lines overlap, inside or outside, and that there are not too many.
    /// `what` names the map in messages ("uid", "gid").
    pub fn check(&self, what: &str) -> Result<(), String> {
        if self.ranges.is_empty() {
            return Err(format!("the {what} map is empty"));
        }
        if self.ranges.len() > MAX_LINES {
            return Err(format!(
                "the {what} map has {} lines, the kernel takes at most {MAX_LINES}",
                self.ranges.len()
            ));
        }
        for (i, a) in self.ranges.iter().enumerate() {
            for b in &self.ranges[i + 1..] {
                let inner =
                    u64::from(a.inner) <= b.inner_last() && u64::from(b.inner) <= a.inner_last();
                let outer =
                    u64::from(a.outer) <= b.outer_last() && u64::from(b.outer) <= a.outer_last();
                if inner {
                    return Err(format!(
                        "the {what} ranges {a} and {b} overlap inside (INNER ids)"
                    ));
                }
                if outer {
                    return Err(format!(
                        "the {what} ranges {a} and {b} overlap outside (OUTER ids)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The outer id that an inner id maps to.
    pub fn outer_of(&self, inner: u32) -> Option<u32> {
        self.ranges.iter().find_map(|r| r.outer_of(inner))
    }

    /// The map as the kernel takes it: one `INNER OUTER COUNT` line per range.
    pub fn text(&self) -> String {
        self.ranges
            .iter()
            .map(|r| r.line() + "\n")
            .collect::<String>()
    }

    /// Whether the map is a single line mapping one id to `outer`.
    pub fn is_single_of(&self, outer: u32) -> bool {
        matches!(self.ranges[..], [Range { outer: o, count: 1, .. }] if o == outer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(inner: u32, outer: u32, count: u32) -> Range {
        Range {
            inner,
            outer,
            count,
        }
    }

    #[test]
    fn ranges_parse_and_print() {
        assert_eq!(parse_range("0:100000:65536"), Ok(range(0, 100000, 65536)));
        assert_eq!(range(0, 100000, 65536).to_string(), "0:100000:65536");
        assert_eq!(range(0, 100000, 65536).line(), "0 100000 65536");
        assert_eq!(parse_range("4294967294:0:1"), Ok(range(4294967294, 0, 1)));
        assert_eq!(parse_range("0:0:4294967295"), Ok(range(0, 0, 4294967295)));
    }

    #[test]
    fn bad_ranges_are_refused_with_a_reason() {
        let cases = [
            ("", "INNER:OUTER:COUNT"),
            ("1:2", "INNER:OUTER:COUNT"),
            ("1:2:3:4", "INNER:OUTER:COUNT"),
            ("a:2:3", "INNER 'a' is not a number"),
            ("1:b:3", "OUTER 'b' is not a number"),
            ("1:2:c", "COUNT 'c' is not a number"),
            ("-1:2:3", "is not a number"),
            ("1:+2:3", "is not a number"),
            (" 1:2:3", "is not a number"),
            ("1:2:0", "COUNT must be at least 1"),
            ("4294967295:0:1", "too large"),
            ("0:4294967295:1", "too large"),
            ("4294967294:0:2", "past the largest id"),
            ("0:4294967290:10", "OUTER range ends"),
            ("0:0:4294967296", "past the largest id"),
            ("0:0:99999999999999999999999", "too large"),
        ];
        for (text, why) in cases {
            let err = parse_range(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn single_ids() {
        assert_eq!(parse_single("0"), Ok(0));
        assert_eq!(parse_single("4294967294"), Ok(4294967294));
        assert!(parse_single("4294967295").is_err());
        assert!(parse_single("root").is_err());
        assert!(parse_single("").is_err());
    }

    #[test]
    fn overlaps_are_refused() {
        let ok = IdMap {
            ranges: vec![range(0, 1000, 1), range(1, 100000, 65535)],
        };
        assert!(ok.check("uid").is_ok());
        assert_eq!(ok.outer_of(0), Some(1000));
        assert_eq!(ok.outer_of(2), Some(100001));
        assert_eq!(ok.outer_of(65536), None);
        assert_eq!(ok.text(), "0 1000 1\n1 100000 65535\n");
        let inner = IdMap {
            ranges: vec![range(0, 1000, 1), range(0, 100000, 10)],
        };
        assert!(inner.check("uid").unwrap_err().contains("inside"));
        let outer = IdMap {
            ranges: vec![range(0, 100000, 10), range(100, 100009, 10)],
        };
        assert!(outer.check("gid").unwrap_err().contains("outside"));
        assert!(IdMap::default().check("uid").is_err());
        let many = IdMap {
            ranges: (0..341).map(|i| range(i, i, 1)).collect(),
        };
        assert!(many.check("uid").unwrap_err().contains("340"));
    }
}
