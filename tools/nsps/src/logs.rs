//! `nsps logs NAME [-f] [--tail N] [--timestamps]`: what a detached chain wrote, read back from
//! its log (`common::logfile`), stdout's lines to stdout and stderr's to stderr, like `docker
//! logs`. With `-f` it follows the log (across a rotation) until the chain has ended.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use common::logfile::{self, Stream};
use common::{chain, Fatal};

/// What to show.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub follow: bool,
    pub tail: Option<usize>,
    pub timestamps: bool,
}

/// Parses `--tail N`: a number of lines, or `all`.
pub fn parse_tail(text: &str) -> Result<usize, String> {
    match text {
        "all" => Ok(usize::MAX),
        _ => text
            .parse()
            .map_err(|_| format!("invalid line count '{text}': use a number or 'all'")),
    }
}

/// The lines read so far: each record's parts joined, per stream.
#[derive(Default)]
struct Lines {
    /// (stream, time of the first part, the line).
    done: Vec<(Stream, String, Vec<u8>)>,
    open: [Option<(String, Vec<u8>)>; 2],
    /// The unfinished last record of the text fed so far.
    rest: Vec<u8>,
}

impl Lines {
    fn feed(&mut self, bytes: &[u8]) {
        self.rest.extend_from_slice(bytes);
        let text = std::mem::take(&mut self.rest);
        let mut records = text.split(|&b| b == b'\n').collect::<Vec<_>>();
        let last = records.pop().unwrap_or_default();
        for record in records {
            let Some(r) = logfile::parse(record) else {
                continue;
            };
            let slot = &mut self.open[r.stream as usize];
            let (time, mut line) = slot
                .take()
                .unwrap_or_else(|| (r.time.to_owned(), Vec::new()));
            line.extend_from_slice(r.line);
            match r.full {
                true => self.done.push((r.stream, time, line)),
                false => *slot = Some((time, line)),
            }
        }
        self.rest = last.to_vec();
    }

    /// The chain has ended: lines still open are complete as they are.
    fn finish(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            if let Some((time, line)) = self.open[stream as usize].take() {
                self.done.push((stream, time, line));
            }
        }
    }

    fn print(&mut self, options: &Options, skip: usize) -> Result<(), Fatal> {
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        for (stream, time, line) in self.done.drain(..).skip(skip) {
            let sink: &mut dyn Write = match stream {
                Stream::Stdout => &mut out,
                Stream::Stderr => &mut err,
            };
            let mut text = Vec::with_capacity(line.len() + 40);
            if options.timestamps {
                text.extend_from_slice(time.as_bytes());
                text.push(b' ');
            }
            text.extend_from_slice(&line);
            text.push(b'\n');
            sink.write_all(&text).context("unable to write")?;
            sink.flush().context("unable to write")?;
        }
        Ok(())
    }
}

/// Reads `file` from its current offset to its end.
fn read_new(file: &mut File, lines: &mut Lines) -> Result<(), Fatal> {
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)
        .context("unable to read the log")?;
    lines.feed(&buf);
    Ok(())
}

/// `nsps logs NAME`.
pub fn show(name: &str, options: Options) -> Result<u8, Fatal> {
    let current = logfile::path_in(&chain::dir(name));
    let mut lines = Lines::default();
    let older = logfile::rotated(&current);
    if let Ok(mut file) = File::open(&older) {
        read_new(&mut file, &mut lines)?;
    }
    let mut file = match File::open(&current) {
        Ok(file) => file,
        Err(_) if chain::dir(name).is_dir() => {
            return Err(Fatal::new(format!("chain {name} keeps no log"))
                .with_hint("only a chain started with --detach (-d) has its output logged"));
        }
        Err(_) => {
            return Err(Fatal::new(format!("no chain named {name}"))
                .with_hint("nsps --all lists the chains"));
        }
    };
    // Whether the chain had ended before this read: then the log is complete.
    let mut ended = chain::has_ended(name);
    read_new(&mut file, &mut lines)?;
    if ended || !options.follow {
        lines.finish();
    }
    let skip = match options.tail {
        Some(n) => lines.done.len().saturating_sub(n),
        None => 0,
    };
    lines.print(&options, skip)?;
    while options.follow && !ended {
        std::thread::sleep(Duration::from_millis(100));
        ended = chain::has_ended(name);
        read_new(&mut file, &mut lines)?;
        if rotated_away(&file, &current) {
            // What the old file got before its rename, then the new one from its start.
            read_new(&mut file, &mut lines)?;
            if let Ok(new) = File::open(&current) {
                file = new;
                read_new(&mut file, &mut lines)?;
            }
        }
        if ended {
            lines.finish();
        }
        lines.print(&options, 0)?;
    }
    Ok(0)
}

/// Whether the log file at `path` is no longer the one open.
fn rotated_away(file: &File, path: &Path) -> bool {
    let open = file.metadata().map(|m| m.ino()).ok();
    let named = std::fs::metadata(path).map(|m| m.ino()).ok();
    named.is_some() && open != named
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_joined_and_streams_kept_apart() {
        let mut lines = Lines::default();
        lines.feed(b"t1 stdout P hel\nt2 stderr F oops\nt3 stdout F lo\nt4 std");
        lines.feed(b"out F next\nbroken line\n");
        let got: Vec<(Stream, &str, &[u8])> = lines
            .done
            .iter()
            .map(|(s, t, l)| (*s, t.as_str(), l.as_slice()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Stream::Stderr, "t2", &b"oops"[..]),
                (Stream::Stdout, "t1", &b"hello"[..]),
                (Stream::Stdout, "t4", &b"next"[..]),
            ]
        );
    }

    #[test]
    fn tail_takes_a_count_or_all() {
        assert_eq!(parse_tail("3"), Ok(3));
        assert_eq!(parse_tail("all"), Ok(usize::MAX));
        assert!(parse_tail("-1").is_err());
        assert!(parse_tail("x").is_err());
    }
}
