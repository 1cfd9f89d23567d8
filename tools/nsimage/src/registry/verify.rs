//! A reader that checks a blob against its descriptor while it streams: never more bytes than
//! the descriptor's size, and at the end exactly that size and the digest's sha256. A mismatch
//! is an `InvalidData` error from the final read, so whatever copies the stream into the store
//! fails before it publishes anything.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

/// Wraps a blob stream; see the module doc.
#[derive(Debug)]
pub struct Verified<R> {
    inner: R,
    hasher: Sha256,
    expected: String,
    size: u64,
    read: u64,
    done: bool,
}

impl<R: Read> Verified<R> {
    /// Checks `inner` against `digest` (`sha256:HEX`) and `size`.
    pub fn new(inner: R, digest: &str, size: u64) -> io::Result<Self> {
        let Some(hex) = digest.strip_prefix("sha256:") else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unsupported digest algorithm in {digest}"),
            ));
        };
        Ok(Self {
            inner,
            hasher: Sha256::new(),
            expected: hex.to_owned(),
            size,
            read: 0,
            done: false,
        })
    }

    /// How many bytes went through so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    fn finish(&mut self) -> io::Result<()> {
        self.done = true;
        if self.read != self.size {
            return Err(invalid(format!(
                "blob sha256:{} is {} bytes, its manifest says {}",
                self.expected, self.read, self.size
            )));
        }
        let actual = hex(&std::mem::take(&mut self.hasher).finalize());
        if actual != self.expected {
            return Err(invalid(format!(
                "digest mismatch: expected sha256:{}, got sha256:{actual}",
                self.expected
            )));
        }
        Ok(())
    }
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        // One byte past the size is enough to tell an overlong blob.
        let room = (self.size - self.read.min(self.size)).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.finish()?;
            return Ok(0);
        }
        self.read += n as u64;
        if self.read > self.size {
            self.done = true;
            return Err(invalid(format!(
                "blob sha256:{} is longer than the {} bytes its manifest says",
                self.expected, self.size
            )));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `sha256:HEX` of some bytes (a manifest's digest).
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(data: &[u8], digest: &str, size: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Verified::new(data, digest, size)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn good_short_long_and_wrong() {
        let d = sha256_digest(b"hello");
        assert_eq!(check(b"hello", &d, 5).unwrap(), b"hello");
        let e = check(b"hell", &d, 5).unwrap_err().to_string();
        assert!(e.contains("is 4 bytes"), "{e}");
        let e = check(b"hello!", &d, 5).unwrap_err().to_string();
        assert!(e.contains("longer"), "{e}");
        let e = check(b"jello", &d, 5).unwrap_err().to_string();
        assert!(e.starts_with("digest mismatch"), "{e}");
        assert!(check(b"x", "sha512:00", 1).is_err());
    }
}
