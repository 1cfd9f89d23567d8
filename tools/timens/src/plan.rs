//! From what the user asked (`--boottime`, `--monotonic`, `--uptime`) to the offsets to write,
//! checked against the kernel's limits before anything is changed.
//!
//! The offsets are relative to the clocks the caller sees: `--boottime 1000` makes the
//! container's uptime the caller's + 1000 s, also when the caller already runs in a time
//! namespace with offsets of its own (the kernel's offsets are from the host's clocks, and a
//! new namespace starts with its parent's, so the flag's value is added to them). `unshare -T
//! --boottime` writes the kernel's value as given: the two agree on the host.

use common::Fatal;

use crate::clocks::{Clock, Offsets};
use crate::offset::{Offset, CLOCK_MAX_SECS};

/// What the user asked for. `--uptime` and `--boottime` exclude each other (clap says so).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `--boottime`: shift the boot-time clock by this much.
    pub boottime: Option<Offset>,
    /// `--monotonic`: shift the monotonic clock by this much.
    pub monotonic: Option<Offset>,
    /// `--uptime`: make the boot-time clock read this now.
    pub uptime: Option<Offset>,
}

impl Request {
    /// Whether any clock is to be set.
    pub fn any(&self) -> bool {
        self.boottime.is_some() || self.monotonic.is_some() || self.uptime.is_some()
    }

    /// The shift of each clock asked for, with the flag that asked, given what the clocks
    /// read now (`--uptime N` is a shift of N minus the current uptime).
    fn shifts(&self, now: &Offsets) -> Vec<(Clock, Offset, String)> {
        let mut shifts = Vec::new();
        if let Some(shift) = self.monotonic {
            shifts.push((Clock::Monotonic, shift, format!("--monotonic {shift}")));
        }
        if let Some(shift) = self.boottime {
            shifts.push((Clock::Boottime, shift, format!("--boottime {shift}")));
        }
        if let Some(uptime) = self.uptime {
            shifts.push((
                Clock::Boottime,
                uptime - now.boottime,
                format!("--uptime {uptime}"),
            ));
        }
        shifts
    }
}

/// The offsets to write to the new namespace: for each clock asked for, the offset it
/// inherits plus the shift. `now` is what the clocks read in the caller's namespace. A clock
/// that would read less than 0, or more than the kernel allows, is refused here, before the
/// unshare (the kernel would refuse it with ERANGE).
pub fn offsets(
    request: &Request,
    inherited: &Offsets,
    now: &Offsets,
) -> Result<Vec<(Clock, Offset)>, Fatal> {
    let mut settings = Vec::new();
    for (clock, shift, flag) in request.shifts(now) {
        let reads = now.of(clock) + shift;
        let seconds = |o: Offset| format!("{:.1} s", o.nanos() as f64 / 1e9);
        if reads.nanos() < 0 {
            return Err(Fatal::new(format!(
                "{flag} would set {} to {}: a clock cannot read less than 0",
                clock.described(),
                seconds(reads)
            ))
            .with_hint(format!(
                "{} reads {} here: a negative offset must be smaller than that",
                clock.described(),
                seconds(now.of(clock))
            )));
        }
        if reads.nanos() >= (i128::from(CLOCK_MAX_SECS) + 1) * 1_000_000_000 {
            return Err(Fatal::new(format!(
                "{flag} would set {} to {}: the kernel allows at most {CLOCK_MAX_SECS} s \
                 (146 years)",
                clock.described(),
                seconds(reads)
            )));
        }
        settings.push((clock, inherited.of(clock) + shift));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = 1_000_000_000;

    fn at(monotonic: i128, boottime: i128) -> Offsets {
        Offsets {
            monotonic: Offset::from_nanos(monotonic),
            boottime: Offset::from_nanos(boottime),
        }
    }

    fn secs(n: i128) -> Option<Offset> {
        Some(Offset::from_nanos(n * S))
    }

    #[test]
    fn shifts_add_to_the_inherited_offsets() {
        let request = Request {
            boottime: secs(1000),
            monotonic: secs(-5),
            uptime: None,
        };
        let got = offsets(&request, &at(0, 7 * S), &at(100 * S, 120 * S)).unwrap();
        assert_eq!(
            got,
            vec![
                (Clock::Monotonic, Offset::from_nanos(-5 * S)),
                (Clock::Boottime, Offset::from_nanos(1007 * S)),
            ]
        );
        assert!(offsets(&Request::default(), &at(0, 0), &at(S, S))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn an_uptime_sets_the_boot_time_clock_to_read_it() {
        let request = Request {
            uptime: secs(5),
            ..Request::default()
        };
        // The caller's boot-time clock reads 120 s, 20 of them from its own namespace's offset.
        let got = offsets(&request, &at(0, 20 * S), &at(100 * S, 120 * S)).unwrap();
        assert_eq!(got, vec![(Clock::Boottime, Offset::from_nanos(-95 * S))]);
    }

    #[test]
    fn a_clock_below_zero_or_beyond_the_kernel_limit_is_refused() {
        let now = at(100 * S, 120 * S);
        let under = Request {
            boottime: secs(-121),
            ..Request::default()
        };
        let fatal = offsets(&under, &at(0, 0), &now).unwrap_err();
        assert!(
            fatal.message().contains("cannot read less than 0"),
            "{}",
            fatal.message()
        );
        assert!(fatal.hint.is_some());
        let exact = Request {
            monotonic: secs(-100),
            ..Request::default()
        };
        assert!(offsets(&exact, &at(0, 0), &now).is_ok());
        let over = Request {
            monotonic: secs(i128::from(CLOCK_MAX_SECS)),
            ..Request::default()
        };
        let fatal = offsets(&over, &at(0, 0), &now).unwrap_err();
        assert!(fatal.message().contains("at most"), "{}", fatal.message());
    }
}
