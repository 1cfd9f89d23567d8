//! Blobs: streamed to `tmp/`, hashed on the way, published under `blobs/sha256/` only when
//! the content matches the digest it was announced with.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};

use anyhow::{bail, Context, Result};
use common::image::layout;
use sha2::{Digest, Sha256};

use super::Store;

/// A reader that hashes what passes through it.
#[derive(Debug)]
pub struct Verified<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> Verified<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Verified {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// The digest and size of everything read so far.
    pub fn finish(self) -> (String, u64) {
        (format!("sha256:{:x}", self.hasher.finalize()), self.size)
    }

    /// Reads the rest (so that the digest covers the whole stream), then checks it.
    pub fn check(mut self, expected: &str, what: &str) -> Result<u64> {
        io::copy(&mut self, &mut io::sink()).with_context(|| format!("unable to read {what}"))?;
        let (actual, size) = self.finish();
        if actual != expected {
            bail!(
                "{what} does not match its digest: expected {expected}, content hashes to {actual}"
            );
        }
        Ok(size)
    }
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Blob files are written in pieces of this size.
const WRITE_BUFFER: usize = 1 << 20;

/// A blob being written under `tmp/`, removed again unless published.
#[derive(Debug)]
pub struct BlobFile {
    tmp: std::path::PathBuf,
    out: Option<BufWriter<File>>,
}

impl BlobFile {
    /// A new temporary blob file in `store`.
    pub fn create(store: &Store) -> Result<Self> {
        let tmp = store.temp_path("blob")?;
        let file =
            File::create(&tmp).with_context(|| format!("unable to create {}", tmp.display()))?;
        Ok(BlobFile {
            tmp,
            out: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
        })
    }

    /// Renames the file into `blobs/sha256/` as `digest` (the caller has verified the
    /// content); `false` when the store had the blob already.
    pub fn publish(mut self, store: &Store, digest: &str) -> Result<bool> {
        let dest = store.layout.blob_path(digest)?;
        if let Some(mut out) = self.out.take() {
            out.flush().context("unable to write a blob")?;
        }
        if dest.is_file() {
            return Ok(false);
        }
        std::fs::rename(&self.tmp, &dest)
            .with_context(|| format!("unable to publish {}", dest.display()))?;
        Ok(true)
    }
}

impl Drop for BlobFile {
    fn drop(&mut self) {
        // Published (renamed away) or failed: either way nothing stays under tmp/.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// A reader that also writes what passes through it to a blob file (when there is one).
pub struct Tee<'a, R> {
    inner: R,
    copy: Option<&'a mut BlobFile>,
}

impl<'a, R> Tee<'a, R> {
    /// Wraps `inner`, copying into `copy`.
    pub fn new(inner: R, copy: Option<&'a mut BlobFile>) -> Self {
        Tee { inner, copy }
    }
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(out) = self.copy.as_mut().and_then(|c| c.out.as_mut()) {
            out.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

impl Store {
    /// Streams `reader` into the store as blob `expected` (`sha256:HEX`): to a temporary file,
    /// hashed on the way, renamed into `blobs/sha256/` only if the content matches. A blob
    /// already present is kept (the reader is not consumed). Returns the size written.
    pub fn put_blob_verified(&self, mut reader: impl Read, expected: &str) -> Result<u64> {
        let dest = self.layout.blob_path(expected)?;
        if dest.is_file() {
            return Ok(0);
        }
        let tmp = self.temp_path("blob")?;
        let result = (|| {
            let file = File::create(&tmp)
                .with_context(|| format!("unable to create {}", tmp.display()))?;
            let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
            let mut hashing = Verified::new(&mut reader);
            io::copy(&mut hashing, &mut out)
                .with_context(|| format!("unable to write blob {expected}"))?;
            out.flush().context("unable to write a blob")?;
            let (actual, size) = hashing.finish();
            if actual != expected {
                bail!("blob {expected} does not match its digest: its content hashes to {actual}");
            }
            std::fs::rename(&tmp, &dest)
                .with_context(|| format!("unable to publish {}", dest.display()))?;
            Ok(size)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Stores `bytes` (a manifest, config or index this tool made) and returns its digest.
    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<String> {
        let digest = layout::sha256_digest(bytes);
        self.put_blob_verified(bytes, &digest)?;
        Ok(digest)
    }

    /// Opens a blob for streaming (a layer); the caller checks the digest with [`Verified`].
    pub fn open_blob(&self, digest: &str) -> Result<File> {
        let path = self.layout.blob_path(digest)?;
        File::open(&path).with_context(|| format!("blob {digest} is missing from the store"))
    }
}
