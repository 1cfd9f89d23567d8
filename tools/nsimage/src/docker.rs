//! docker-archive (`docker save`, `podman save --format docker-archive`): `manifest.json`
//! lists each image's config file, RepoTags and layer tars (uncompressed). It becomes an OCI
//! image: the config as is (its digest is the image id), the layer tars as blobs, a new OCI
//! manifest.

use anyhow::{bail, Context, Result};
use common::image::layout::{sha256_digest, MAX_METADATA};
use common::image::Reference;
use oci_spec::image::{DescriptorBuilder, ImageConfiguration, ImageManifestBuilder, MediaType};
use serde::Deserialize;

use crate::copy::Added;
use crate::source::Source;
use crate::store::Store;

/// One image of manifest.json.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Item {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

/// The images manifest.json lists.
pub fn items(source: &Source) -> Result<Vec<Item>> {
    serde_json::from_slice(&source.read_small("manifest.json")?)
        .context("manifest.json is not a docker-archive manifest")
}

/// Copies one docker-archive image into the store under `names`.
pub fn load(
    store: &Store,
    source: &Source,
    item: &Item,
    names: &[Reference],
    added: &mut Added,
) -> Result<()> {
    let config_bytes = source.read_small(&item.config)?;
    let config: ImageConfiguration =
        serde_json::from_slice(&config_bytes).context("the image config is not valid")?;
    if config.rootfs().diff_ids().len() != item.layers.len() {
        bail!(
            "{}: the config lists {} layers, manifest.json {}",
            item.config,
            config.rootfs().diff_ids().len(),
            item.layers.len()
        );
    }
    let config_digest = added.bytes(store, &config_bytes)?;
    let mut layers = Vec::new();
    for (member, diff_id) in item.layers.iter().zip(config.rootfs().diff_ids()) {
        // The layer tars are uncompressed, so each blob's digest is its diffID.
        if !store.has_blob(diff_id) {
            store
                .put_blob_verified(source.open_member(member)?, diff_id)
                .with_context(|| format!("layer {member}"))?;
            added.blobs.push(diff_id.clone());
        }
        let size = std::fs::metadata(store.layout.blob_path(diff_id)?)?.len();
        layers.push(descriptor(MediaType::ImageLayer, diff_id, size)?);
    }
    let config_len = config_bytes.len() as u64;
    let digest = store_image(store, added, &config, &config_digest, config_len, layers)?;
    for name in names {
        store.add_image(name, &digest)?;
    }
    Ok(())
}

/// Stores an image made here (loaded or imported): a new OCI manifest of `config` (already
/// stored as `config_digest`, `config_len` bytes) and `layers`, its layers unpacked. Returns
/// the manifest's digest, for the names to point at.
pub fn store_image(
    store: &Store,
    added: &mut Added,
    config: &ImageConfiguration,
    config_digest: &str,
    config_len: u64,
    layers: Vec<oci_spec::image::Descriptor>,
) -> Result<String> {
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            config_digest,
            config_len,
        )?)
        .layers(layers)
        .build()
        .context("unable to build the manifest")?;
    let manifest_bytes = serde_json::to_vec(&manifest).context("unable to encode the manifest")?;
    if manifest_bytes.len() as u64 > MAX_METADATA {
        bail!("the manifest is too large");
    }
    let digest = added.bytes(store, &manifest_bytes)?;
    debug_assert_eq!(digest, sha256_digest(&manifest_bytes));
    added.unpack(store, &manifest, config)?;
    Ok(digest)
}

/// A descriptor of a blob.
pub fn descriptor(
    media_type: MediaType,
    digest: &str,
    size: u64,
) -> Result<oci_spec::image::Descriptor> {
    DescriptorBuilder::default()
        .media_type(media_type)
        .digest(
            digest
                .parse::<oci_spec::image::Digest>()
                .context("bad digest")?,
        )
        .size(size)
        .build()
        .context("unable to describe a blob")
}
