//! A blob stream held to its descriptor's size: never more bytes than the manifest says (a
//! hostile registry cannot fill the disk), and exactly that many at the end. A mismatch is
//! an `InvalidData` error from a read, so whatever copies the stream into the store fails
//! before it publishes anything; the digest itself is checked by the store as it writes.

use std::io::{self, Read};

/// Wraps a blob stream; see the module doc.
#[derive(Debug)]
pub struct Sized<R> {
    inner: R,
    digest: String,
    size: u64,
    read: u64,
}

impl<R: Read> Sized<R> {
    /// Holds `inner` (blob `digest`) to `size` bytes.
    pub fn new(inner: R, digest: &str, size: u64) -> Self {
        Self {
            inner,
            digest: digest.to_owned(),
            size,
            read: 0,
        }
    }
}

impl<R: Read> Read for Sized<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // One byte past the size is enough to tell an overlong blob.
        let room = self.size.saturating_sub(self.read).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.read += n as u64;
        if self.read > self.size {
            return Err(invalid(format!(
                "blob {} is longer than the {} bytes its manifest says",
                self.digest, self.size
            )));
        }
        if n == 0 && self.read < self.size {
            return Err(invalid(format!(
                "blob {} ended after {} of the {} bytes its manifest says",
                self.digest, self.read, self.size
            )));
        }
        Ok(n)
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(data: &[u8], size: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Sized::new(data, "sha256:x", size).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn exact_short_and_long() {
        assert_eq!(copy(b"hello", 5).unwrap(), b"hello");
        let e = copy(b"hell", 5).unwrap_err().to_string();
        assert!(e.contains("ended after 4 of the 5 bytes"), "{e}");
        let e = copy(b"hello!", 5).unwrap_err().to_string();
        assert!(e.contains("longer than the 5 bytes"), "{e}");
        assert_eq!(copy(b"", 0).unwrap(), b"");
    }
}
