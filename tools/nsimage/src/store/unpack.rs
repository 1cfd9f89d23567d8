//! Unpacking an image's layers once each, keyed by diffID, into `layers/HEX/diff`. The
//! compressed blob and the uncompressed stream are both hashed while the layer is applied
//! under `tmp/`; only a layer whose two digests match is published (by rename).

use std::io::{BufRead, BufReader, Read};

use anyhow::{bail, Context, Result};
use common::image::layout::digest_hex;
use common::report;
use oci_spec::image::{ImageConfiguration, ImageManifest};

use super::blob::{BlobFile, Tee};
use super::{apply, Store, Verified};

/// A reader of the uncompressed tar stream of a layer blob: the compression is told by the
/// first bytes (media types lie: Docker's and OCI's differ, and `+gzip` is sometimes missing);
/// gzip, zstd or none.
pub fn decompressed<'a>(reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::new(reader);
    let head = buffered.fill_buf().context("unable to read a layer")?;
    Ok(match head {
        [0x1f, 0x8b, ..] => Box::new(flate2::bufread::GzDecoder::new(buffered)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered).context("zstd")?)
        }
        _ => Box::new(buffered),
    })
}

impl Store {
    /// Unpacks every layer of `manifest` (diffIDs from `config`) that is not unpacked yet.
    pub fn unpack_layers(
        &self,
        manifest: &ImageManifest,
        config: &ImageConfiguration,
    ) -> Result<()> {
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            bail!(
                "the config lists {} layers, the manifest {}",
                diff_ids.len(),
                manifest.layers().len()
            );
        }
        for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
            self.unpack_layer(layer.digest().as_ref(), diff_id)?;
        }
        Ok(())
    }

    /// Unpacks blob `digest` (uncompressed digest `diff_id`) unless it is already unpacked.
    pub fn unpack_layer(&self, digest: &str, diff_id: &str) -> Result<()> {
        let blob = self.open_blob(digest)?;
        self.unpack_from(blob, digest, diff_id, false).map(drop)
    }

    /// Fetch and unpack in one pass: `body` (the blob's bytes as they arrive) is written to a
    /// blob file, hashed, decompressed, hashed again and applied as it streams; the blob and
    /// the layer are published only when both digests match. Returns whether the blob was
    /// new to the store (the layer is, or this is not called).
    pub fn fetch_and_unpack(&self, body: impl Read, digest: &str, diff_id: &str) -> Result<bool> {
        self.unpack_from(body, digest, diff_id, true)
    }

    /// Unpacks `reader` (blob `digest`) into `layers/`, also storing the blob when
    /// `keep_blob`; returns whether a blob was published.
    fn unpack_from(
        &self,
        reader: impl Read,
        digest: &str,
        diff_id: &str,
        keep_blob: bool,
    ) -> Result<bool> {
        let dest = self.root().join("layers").join(digest_hex(diff_id)?);
        if dest.join("diff").is_dir() {
            // Unpacked meanwhile by a concurrent writer: the blob may still be wanted.
            if !keep_blob || self.has_blob(digest) {
                return Ok(false);
            }
            self.put_blob_verified(reader, digest)?;
            return Ok(true);
        }
        let tmp = self.temp_path("layer")?;
        std::fs::create_dir(&tmp).with_context(|| format!("unable to create {}", tmp.display()))?;
        let mut blob = if keep_blob {
            Some(BlobFile::create(self)?)
        } else {
            None
        };
        let result = self.unpack_into(Tee::new(reader, blob.as_mut()), digest, diff_id, &tmp);
        let blob_published = match (result, blob) {
            (Ok(()), Some(blob)) => blob.publish(self, digest),
            (Ok(()), None) => Ok(false),
            (Err(e), blob) => {
                drop(blob);
                Err(e)
            }
        };
        let result = blob_published.and_then(|new_blob| match std::fs::rename(&tmp, &dest) {
            Ok(()) => Ok(new_blob),
            // Another writer published the same layer first: theirs is as good as ours.
            Err(_) if dest.join("diff").is_dir() => Ok(new_blob),
            Err(e) => {
                if new_blob {
                    let _ = std::fs::remove_file(self.layout.blob_path(digest)?);
                }
                Err(e).with_context(|| format!("unable to publish {}", dest.display()))
            }
        });
        if tmp.exists() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result.with_context(|| format!("layer {digest}"))
    }

    fn unpack_into(
        &self,
        reader: impl Read,
        digest: &str,
        diff_id: &str,
        tmp: &std::path::Path,
    ) -> Result<()> {
        let diff = tmp.join("diff");
        std::fs::create_dir(&diff)
            .with_context(|| format!("unable to create {}", diff.display()))?;
        let mut compressed = Verified::new(reader);
        let applied = (|| {
            let stream = decompressed(&mut compressed)?;
            let mut plain = Verified::new(stream);
            let notes = apply::apply(&mut plain, &diff, common::state::is_host_root())?;
            plain.check(diff_id, "the uncompressed layer")?;
            Ok::<_, anyhow::Error>(notes)
        })();
        // The blob's digest is checked even when applying failed: a tampered blob mostly
        // fails to decompress or parse before its end, and the mismatch is the cause to tell.
        let checked = compressed.check(digest, "the layer blob");
        let notes = match (applied, checked) {
            (_, Err(e)) | (Err(e), Ok(_)) => return Err(e),
            (Ok(notes), Ok(_)) => notes,
        };
        if !notes.skipped_devices.is_empty() {
            report::warning(format_args!(
                "layer {digest}: skipped device nodes this user may not make: {}",
                notes.skipped_devices.join(", ")
            ));
        }
        if notes.squashed {
            report::warning(format_args!("layer {digest}: file ownership squashed to the caller (no range of ids to keep it; see /etc/subuid)"));
        }
        if !notes.dropped_xattrs.is_empty() {
            let keys: Vec<&str> = notes.dropped_xattrs.iter().map(String::as_str).collect();
            report::warning(format_args!(
                "layer {digest}: extended attributes not kept: {}",
                keys.join(", ")
            ));
        }
        Ok(())
    }
}
