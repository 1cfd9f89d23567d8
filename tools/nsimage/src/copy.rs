//! Copies one image (manifest, config, layers) from a [`Source`] into the store, unpacks its
//! layers and names it. What a failed copy added is removed again, so a broken archive leaves
//! nothing behind.

use anyhow::{bail, Context, Result};
use common::image::layout::sha256_digest;
use common::image::Reference;
use oci_spec::image::{ImageConfiguration, ImageManifest};

use crate::source::Source;
use crate::store::Store;

/// Blobs and layers one operation added (what a failure removes).
#[derive(Debug, Default)]
pub struct Added {
    pub blobs: Vec<String>,
    pub layers: Vec<String>,
}

impl Added {
    /// Stores a blob from `source` at `member`, remembering it if it is new.
    pub fn blob(
        &mut self,
        store: &Store,
        source: &Source,
        member: &str,
        digest: &str,
    ) -> Result<()> {
        if store.has_blob(digest) {
            return Ok(());
        }
        let reader = source.open_member(member)?;
        store.put_blob_verified(reader, digest)?;
        self.blobs.push(digest.to_owned());
        Ok(())
    }

    /// Stores bytes made here, remembering the blob if it is new.
    pub fn bytes(&mut self, store: &Store, bytes: &[u8]) -> Result<String> {
        let digest = sha256_digest(bytes);
        if !store.has_blob(&digest) {
            store.put_blob_bytes(bytes)?;
            self.blobs.push(digest.clone());
        }
        Ok(digest)
    }

    /// Unpacks the image's layers, remembering the new ones.
    pub fn unpack(
        &mut self,
        store: &Store,
        manifest: &ImageManifest,
        config: &ImageConfiguration,
    ) -> Result<()> {
        for diff_id in config.rootfs().diff_ids() {
            if !store.layout.layer_diff(diff_id)?.is_dir() {
                self.layers.push(diff_id.clone());
            }
        }
        store.unpack_layers(manifest, config)
    }
}

/// Runs `work` (which adds an image) and, if it fails, removes what it added that no image
/// references.
pub fn atomically<T>(store: &Store, work: impl FnOnce(&mut Added) -> Result<T>) -> Result<T> {
    let lock = store.lock()?;
    let mut added = Added::default();
    let result = work(&mut added);
    if result.is_err() {
        crate::gc::discard(store, lock, &added.blobs, &added.layers);
    }
    result
}

/// Copies the manifest `digest` (its blob at `blobs/sha256/HEX` in `source`) with its config
/// and layers, unpacks it and names it `name`.
pub fn oci_image(
    store: &Store,
    source: &Source,
    digest: &str,
    name: &Reference,
    added: &mut Added,
) -> Result<()> {
    let member = blob_member(digest)?;
    let bytes = source.read_small(&member)?;
    if sha256_digest(&bytes) != digest {
        bail!("manifest {digest} in the archive does not match its digest");
    }
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).context("the manifest is not an image manifest")?;
    let config_digest = manifest.config().digest().to_string();
    added.blob(store, source, &blob_member(&config_digest)?, &config_digest)?;
    let config: ImageConfiguration =
        serde_json::from_slice(&store.layout.read_blob(&config_digest)?)
            .context("the image config is not an OCI image config")?;
    for layer in manifest.layers() {
        let layer_digest = layer.digest().to_string();
        added.blob(store, source, &blob_member(&layer_digest)?, &layer_digest)?;
    }
    added.bytes(store, &bytes)?;
    added.unpack(store, &manifest, &config)?;
    store.add_image(name, digest)
}

/// `blobs/sha256/HEX` of a digest.
pub fn blob_member(digest: &str) -> Result<String> {
    Ok(format!(
        "blobs/sha256/{}",
        common::image::layout::digest_hex(digest)?
    ))
}
