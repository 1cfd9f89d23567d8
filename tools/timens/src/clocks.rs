//! The kernel side of a time namespace: the caller's clocks, the offsets a new namespace
//! starts from (`/proc/self/timens_offsets`), writing them once, and entering the namespace.
//!
//! A time namespace is odd in two ways. `unshare(CLONE_NEWTIME)` leaves the caller in its old
//! namespace: only `time_for_children` is the new one, entered by a child at fork or by the
//! caller itself at execve (or setns). And its offsets can be written only until the first
//! process enters it; from then on they are frozen (EACCES).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use common::ns::{JoinTarget, Namespace, NsFile};
use common::{debug, Fatal};

use crate::offset::Offset;

/// The file that lists the offsets of `time_for_children` (what a new namespace inherits,
/// and what is written to set them).
const OFFSETS_FILE: &str = "/proc/self/timens_offsets";

/// A clock a time namespace can offset. The realtime clock (wall-clock time) cannot be: the
/// kernel offsets only these two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// CLOCK_MONOTONIC (and its _RAW and _COARSE variants).
    Monotonic,
    /// CLOCK_BOOTTIME: the monotonic clock plus suspended time; /proc/uptime reads it.
    Boottime,
}

impl Clock {
    /// Both clocks, in the order the kernel lists them.
    pub const ALL: [Clock; 2] = [Clock::Monotonic, Clock::Boottime];

    /// The kernel's name in `/proc/PID/timens_offsets`.
    pub fn name(self) -> &'static str {
        match self {
            Clock::Monotonic => "monotonic",
            Clock::Boottime => "boottime",
        }
    }

    /// The name in messages.
    pub fn described(self) -> &'static str {
        match self {
            Clock::Monotonic => "the monotonic clock",
            Clock::Boottime => "the boot-time clock (uptime)",
        }
    }

    fn id(self) -> libc::clockid_t {
        match self {
            Clock::Monotonic => libc::CLOCK_MONOTONIC,
            Clock::Boottime => libc::CLOCK_BOOTTIME,
        }
    }

    /// What this clock reads now, in this process's time namespace.
    pub fn now(self) -> Result<Offset, Fatal> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime only writes the timespec we own; the clock ids are valid.
        let rc = unsafe { libc::clock_gettime(self.id(), &mut ts) };
        if rc != 0 {
            return Err(Fatal::from(std::io::Error::last_os_error())
                .context(format!("unable to read {}", self.described())));
        }
        let nanos = i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec);
        Ok(Offset::from_nanos(nanos))
    }
}

/// The offsets of a time namespace, one per clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    /// The monotonic clock's offset from the host's.
    pub monotonic: Offset,
    /// The boot-time clock's offset from the host's.
    pub boottime: Offset,
}

impl Offsets {
    /// The offset of one clock.
    pub fn of(&self, clock: Clock) -> Offset {
        match clock {
            Clock::Monotonic => self.monotonic,
            Clock::Boottime => self.boottime,
        }
    }

    /// Parses the kernel's listing: `monotonic SECS NANOS` and `boottime SECS NANOS` lines.
    pub fn parse(text: &str) -> Result<Offsets, String> {
        let mut offsets = Offsets::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let [name, secs, nanos] = words[..] else {
                return Err(format!("unexpected line '{line}'"));
            };
            let secs: i128 = secs
                .parse()
                .map_err(|_| format!("bad seconds in '{line}'"))?;
            let nanos: i128 = nanos
                .parse()
                .map_err(|_| format!("bad nanoseconds in '{line}'"))?;
            let value = Offset::from_nanos(secs * 1_000_000_000 + nanos);
            match name {
                "monotonic" => offsets.monotonic = value,
                "boottime" => offsets.boottime = value,
                // A clock a later kernel may add: not ours to set.
                _ => {}
            }
        }
        Ok(offsets)
    }
}

/// Refuses a kernel without time namespaces (before Linux 5.6, or built without
/// CONFIG_TIME_NS), with a hint, before anything is changed.
pub fn check_supported() -> Result<(), Fatal> {
    check_supported_at(Path::new("/proc/self/ns/time"))
}

fn check_supported_at(ns_file: &Path) -> Result<(), Fatal> {
    if ns_file.exists() {
        return Ok(());
    }
    Err(Fatal::new(format!(
        "this kernel has no time namespaces ({} is missing)",
        ns_file.display()
    ))
    .with_hint(
        "time namespaces need Linux 5.6 or later built with CONFIG_TIME_NS; \
             without them, run the command without timens",
    ))
}

/// The offsets of the namespace this process's children are born into: a namespace unshared
/// now starts with these; after [`enter_own`] they are the ones it runs with.
pub fn read() -> Result<Offsets, Fatal> {
    let text = std::fs::read_to_string(OFFSETS_FILE)
        .with_context(|| format!("unable to read {OFFSETS_FILE}"))?;
    Offsets::parse(&text).map_err(|e| Fatal::new(format!("unable to read {OFFSETS_FILE}: {e}")))
}

/// The text written to set `settings`, one `CLOCK SECS NANOS` line each.
pub fn offsets_text(settings: &[(Clock, Offset)]) -> String {
    settings
        .iter()
        .map(|(clock, offset)| {
            let (secs, nanos) = offset.kernel_form();
            format!("{} {secs} {nanos}\n", clock.name())
        })
        .collect()
}

/// Sets the offsets of the new namespace (`time_for_children`), in one write: the kernel
/// takes several lines at once and applies all or none.
pub fn write(settings: &[(Clock, Offset)]) -> Result<(), Fatal> {
    if settings.is_empty() {
        return Ok(());
    }
    let text = offsets_text(settings);
    let shown = text.trim_end().replace('\n', ", ");
    debug::step(format_args!("write {OFFSETS_FILE}: {shown}"), || {
        let mut file = OpenOptions::new().write(true).open(OFFSETS_FILE)?;
        file.write_all(text.as_bytes())
    })
    .map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => Some(
                "setting the clocks needs CAP_SYS_TIME over the new namespace, in a process \
                 that is dumpable and the first to use it: rootless, put timens after userns \
                 (DESIGN.md §2, rule 1)",
            ),
            _ => None,
        };
        let fatal = Fatal::from(e).context(format!("unable to set the clock offsets ({shown})"));
        match hint {
            Some(hint) => fatal.with_hint(hint),
            None => fatal,
        }
    })
}

/// Moves this process into the namespace it unshared (`time_for_children`), as an execve
/// would: a link the next one runs in the same process (no execve) would otherwise run, and
/// read the clocks, in the old namespace. It also freezes the offsets: nothing can rewrite
/// them from here on.
pub fn enter_own() -> Result<(), Fatal> {
    let path = Namespace::Time.proc_path(None);
    let ns = NsFile::open(Namespace::Time, &JoinTarget::Path(path))?;
    ns.enter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_listing_is_parsed() {
        let text = "monotonic           0         0\nboottime         1000 500000000\n";
        let offsets = Offsets::parse(text).unwrap();
        assert_eq!(offsets.monotonic, Offset::from_nanos(0));
        assert_eq!(offsets.boottime, Offset::from_nanos(1_000_500_000_000));
        let negative = Offsets::parse("monotonic -2 500000000\nboottime 0 0\n").unwrap();
        assert_eq!(negative.monotonic, Offset::from_nanos(-1_500_000_000));
        assert!(Offsets::parse("monotonic 1\n").is_err());
        assert!(Offsets::parse("monotonic x 0\n").is_err());
    }

    #[test]
    fn settings_are_written_as_the_kernel_reads_them() {
        let text = offsets_text(&[
            (Clock::Boottime, Offset::from_nanos(1_000_000_000_000)),
            (Clock::Monotonic, Offset::from_nanos(-1_500_000_000)),
        ]);
        assert_eq!(text, "boottime 1000 0\nmonotonic -2 500000000\n");
    }

    #[test]
    fn a_kernel_without_time_namespaces_gets_a_hint() {
        assert!(check_supported().is_ok(), "this kernel has time namespaces");
        let fatal = check_supported_at(Path::new("/proc/self/ns/no-such-ns")).unwrap_err();
        assert!(fatal.message().contains("no time namespaces"));
        assert!(fatal.hint.unwrap().contains("CONFIG_TIME_NS"));
    }

    #[test]
    fn the_clocks_can_be_read() {
        for clock in Clock::ALL {
            assert!(clock.now().unwrap().nanos() > 0, "{clock:?}");
        }
    }
}
