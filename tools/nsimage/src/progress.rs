//! The pull's progress line on a terminal: layers done, bytes fetched of the total, rate.
//! Drawn on stderr, at most ten times a second, only when stderr is a terminal; otherwise
//! silent, so scripts and logs get only the result.

use std::io::{IsTerminal as _, Read, Write as _};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counters shared by the threads that fetch blobs.
#[derive(Debug)]
pub struct Progress {
    label: String,
    draw: bool,
    start: Instant,
    total_bytes: AtomicU64,
    fetched: AtomicU64,
    layers: AtomicUsize,
    layers_done: AtomicUsize,
    last_draw: Mutex<Option<Instant>>,
}

impl Progress {
    /// A display for pulling `label`, drawn only if `wanted` (not `--quiet`) and stderr is a
    /// terminal.
    pub fn new(label: &str, wanted: bool) -> Self {
        Self::with_drawing(label, wanted && std::io::stderr().is_terminal())
    }

    fn with_drawing(label: &str, draw: bool) -> Self {
        Self {
            label: label.to_owned(),
            draw,
            start: Instant::now(),
            total_bytes: AtomicU64::new(0),
            fetched: AtomicU64::new(0),
            layers: AtomicUsize::new(0),
            layers_done: AtomicUsize::new(0),
            last_draw: Mutex::new(None),
        }
    }

    /// Counts a blob to fetch: its size joins the total.
    pub fn add_blob(&self, size: u64) {
        self.layers.fetch_add(1, Ordering::Relaxed);
        self.total_bytes.fetch_add(size, Ordering::Relaxed);
    }

    /// Marks a blob done (fetched, or found in the store: then its bytes count as fetched).
    pub fn blob_done(&self, skipped_bytes: u64) {
        self.fetched.fetch_add(skipped_bytes, Ordering::Relaxed);
        self.layers_done.fetch_add(1, Ordering::Relaxed);
        self.redraw(true);
    }

    /// Wraps a blob stream so that its bytes count as they arrive.
    pub fn reader<'a, R: Read>(&'a self, inner: R) -> Counting<'a, R> {
        Counting {
            inner,
            progress: self,
        }
    }

    /// Bytes fetched so far.
    pub fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// Clears the line (the caller then prints its result).
    pub fn finish(&self) {
        if self.draw {
            eprint!("\r\x1b[K");
        }
    }

    fn redraw(&self, force: bool) {
        if !self.draw {
            return;
        }
        let mut last = self
            .last_draw
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if !force && last.is_some_and(|t| now - t < Duration::from_millis(100)) {
            return;
        }
        *last = Some(now);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{}", self.line(now - self.start));
        let _ = err.flush();
    }

    /// `pulling REF: 2/3 blobs, 1.5 MiB/4.0 MiB, 3.1 MiB/s`.
    fn line(&self, elapsed: Duration) -> String {
        let fetched = self.fetched();
        let secs = elapsed.as_secs_f64().max(0.001);
        format!(
            "pulling {}: {}/{} blobs, {}/{}, {}/s",
            self.label,
            self.layers_done.load(Ordering::Relaxed),
            self.layers.load(Ordering::Relaxed),
            human(fetched),
            human(self.total_bytes.load(Ordering::Relaxed)),
            human((fetched as f64 / secs) as u64),
        )
    }
}

/// A stream whose bytes count toward a [`Progress`].
#[derive(Debug)]
pub struct Counting<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.fetched.fetch_add(n as u64, Ordering::Relaxed);
        self.progress.redraw(false);
        Ok(n)
    }
}

/// Bytes in binary units, one decimal (`1.5 MiB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_counts_blobs_bytes_and_rate() {
        let p = Progress::with_drawing("test/busybox:1", false);
        p.add_blob(2 << 20);
        p.add_blob(2 << 20);
        let mut r = p.reader(&[0u8; 1024][..]);
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        p.blob_done(0);
        p.blob_done(2 << 20);
        assert_eq!(
            p.line(Duration::from_secs(2)),
            "pulling test/busybox:1: 2/2 blobs, 2.0 MiB/4.0 MiB, 1.0 MiB/s"
        );
        assert_eq!(human(1023), "1023 B");
    }
}
