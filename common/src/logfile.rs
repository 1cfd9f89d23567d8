//! The log of a detached chain (`--detach`): what its processes write to stdout and stderr,
//! one line per record in the CRI format kubelet and containerd use,
//!
//! ```text
//! 2026-12-03T08:00:32.123456789Z stdout F the line, without its newline
//! ```
//!
//! (`F` a full line, `P` a part of a longer one, cut at [`MAX_LINE`] or at the end of the
//! stream). The log is capped: `container.log` grows up to its size limit, then becomes
//! `container.log.1` (replacing the older one) and a new file starts, so a chain that prints
//! forever holds at most two files of the limit (`NSCHAIN_LOG_MAX`, default 10 MiB).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The variable that sets the size limit of one log file (bytes, or with a K, M or G suffix).
pub const MAX_VAR: &str = "NSCHAIN_LOG_MAX";
/// The default size limit of one log file.
pub const DEFAULT_MAX: u64 = 10 << 20;
/// The smallest limit accepted: a few records of the longest line.
pub const MIN_MAX: u64 = 64 << 10;
/// The longest part of a line kept in one record.
pub const MAX_LINE: usize = 16 << 10;
/// The name of the current log file in a chain's directory.
pub const FILE: &str = "container.log";

/// Where a chain's log is written, in its registration directory.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The rotated (older) log file of `current`.
pub fn rotated(current: &Path) -> PathBuf {
    let mut name = current.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Parses a size: bytes, or a number with a `K`, `M` or `G` suffix (powers of 1024); at least
/// [`MIN_MAX`].
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid log size '{text}': expected bytes, or a number with K, M or G");
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 10),
        Some((i, 'M' | 'm')) => (&text[..i], 20),
        Some((i, 'G' | 'g')) => (&text[..i], 30),
        _ => (text, 0),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let size = n
        .checked_shl(shift)
        .filter(|s| s >> shift == n)
        .ok_or_else(bad)?;
    if size < MIN_MAX {
        return Err(format!("log size '{text}' is below the minimum of 64K"));
    }
    Ok(size)
}

/// The size limit the environment asks for ([`MAX_VAR`]), else the default.
pub fn max_from_env() -> Result<u64, String> {
    match std::env::var(MAX_VAR) {
        Ok(text) => parse_size(&text).map_err(|e| format!("{MAX_VAR}: {e}")),
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_MAX),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{MAX_VAR} is not valid text")),
    }
}

/// The two streams of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The stream's name in a record.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Writes the records of a chain's log, rotating it at its size limit.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
    /// The unfinished line of each stream.
    pending: [Vec<u8>; 2],
}

impl Writer {
    /// Creates (or truncates) the log at `path`, owner-only.
    pub fn create(path: &Path, max: u64) -> io::Result<Writer> {
        Ok(Writer {
            path: path.to_owned(),
            file: open_new(path)?,
            size: 0,
            max,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Logs what `stream` wrote: every finished line becomes a record, the rest waits for its
    /// end (a part longer than [`MAX_LINE`] is written as a partial record).
    pub fn write(&mut self, stream: Stream, mut bytes: &[u8]) -> io::Result<()> {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.pending[stream.index()]);
            line.extend_from_slice(&bytes[..end]);
            self.record(stream, true, &line)?;
            bytes = &bytes[end + 1..];
        }
        self.pending[stream.index()].extend_from_slice(bytes);
        while self.pending[stream.index()].len() >= MAX_LINE {
            let rest = self.pending[stream.index()].split_off(MAX_LINE);
            let part = std::mem::replace(&mut self.pending[stream.index()], rest);
            self.record(stream, false, &part)?;
        }
        Ok(())
    }

    /// The stream ended: its unfinished line is written as a partial record.
    pub fn close(&mut self, stream: Stream) -> io::Result<()> {
        let rest = std::mem::take(&mut self.pending[stream.index()]);
        match rest.is_empty() {
            true => Ok(()),
            false => self.record(stream, false, &rest),
        }
    }

    fn record(&mut self, stream: Stream, full: bool, line: &[u8]) -> io::Result<()> {
        let tag = if full { "F" } else { "P" };
        let mut record = format!("{} {} {tag} ", timestamp_now(), stream.name()).into_bytes();
        record.extend_from_slice(line);
        record.push(b'\n');
        if self.size > 0 && self.size + record.len() as u64 > self.max {
            self.rotate()?;
        }
        self.file.write_all(&record)?;
        self.size += record.len() as u64;
        Ok(())
    }

    /// The full file becomes the older one. The new file takes its name by an exchange, so
    /// that a reader never finds the log missing.
    fn rotate(&mut self) -> io::Result<()> {
        let mut fresh = self.path.as_os_str().to_owned();
        fresh.push(".new");
        let fresh = PathBuf::from(fresh);
        let file = open_new(&fresh)?;
        nix::fcntl::renameat2(
            None,
            &fresh,
            None,
            &self.path,
            nix::fcntl::RenameFlags::RENAME_EXCHANGE,
        )?;
        std::fs::rename(&fresh, rotated(&self.path))?;
        self.file = file;
        self.size = 0;
        Ok(())
    }
}

fn open_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// One record read back.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// When it was written (RFC 3339, UTC, nanoseconds).
    pub time: &'a str,
    /// Which stream wrote it.
    pub stream: Stream,
    /// Whether the line ends here (false: a part, continued by the next record).
    pub full: bool,
    /// The line (without its newline).
    pub line: &'a [u8],
}

/// Parses one record (without its newline); `None` for anything else.
pub fn parse(record: &[u8]) -> Option<Record<'_>> {
    let mut parts = record.splitn(4, |&b| b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some(Record {
        time,
        stream,
        full,
        line: parts.next().unwrap_or_default(),
    })
}

/// Now, as RFC 3339 in UTC with nanoseconds.
pub fn timestamp_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    timestamp(now.as_secs(), now.subsec_nanos())
}

/// `secs.nanos` since the epoch as RFC 3339 in UTC.
pub fn timestamp(secs: u64, nanos: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            timestamp(1_796_284_832, 5),
            "2026-12-03T08:00:32.000000005Z"
        );
        assert_eq!(timestamp(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn sizes_take_suffixes_and_refuse_the_rest() {
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        for bad in ["", "M", "-1", "10X", "1K", "99999999999999999999G", "1.5M"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_become_records_and_the_log_rotates_at_its_limit() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let path = path_in(dir.path());
        let mut log = Writer::create(&path, MIN_MAX).unwrap_or_else(|e| unreachable!("{e}"));
        let ok = |r: io::Result<()>| r.unwrap_or_else(|e| unreachable!("{e}"));
        ok(log.write(Stream::Stdout, b"one\ntw"));
        ok(log.write(Stream::Stderr, b"err\n"));
        ok(log.write(Stream::Stdout, b"o\nrest"));
        ok(log.close(Stream::Stdout));
        let text = std::fs::read(&path).unwrap_or_default();
        let records: Vec<Record> = text.split(|&b| b == b'\n').filter_map(parse).collect();
        let lines: Vec<(&[u8], Stream, bool)> =
            records.iter().map(|r| (r.line, r.stream, r.full)).collect();
        assert_eq!(
            lines,
            vec![
                (&b"one"[..], Stream::Stdout, true),
                (&b"err"[..], Stream::Stderr, true),
                (&b"two"[..], Stream::Stdout, true),
                (&b"rest"[..], Stream::Stdout, false),
            ]
        );
        for _ in 0..20_000 {
            ok(log.write(Stream::Stdout, b"y\n"));
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert!(size(&path) <= MIN_MAX && size(&rotated(&path)) <= MIN_MAX);
        assert!(size(&rotated(&path)) > MIN_MAX / 2);
    }
}
