//! index.json edits: read, change, write back through a rename, under `index.lock`.

use std::collections::HashMap;

use anyhow::{Context, Result};
use common::image::layout::{self, REF_NAME};
use common::image::Reference;
use oci_spec::image::{Descriptor, DescriptorBuilder, ImageIndex, ImageManifest, MediaType};

use super::Store;

impl Store {
    /// Records `reference` → manifest `manifest_digest` in index.json (ref.name holds the full
    /// reference; an entry already named so is replaced). The manifest blob must be in the
    /// store already: its media type and size come from it.
    pub fn add_image(&self, reference: &Reference, manifest_digest: &str) -> Result<()> {
        let bytes = self.layout.read_blob(manifest_digest)?;
        let manifest: ImageManifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("blob {manifest_digest} is not an image manifest"))?;
        let media_type = manifest
            .media_type()
            .clone()
            .unwrap_or(MediaType::ImageManifest);
        let name = reference.to_string();
        let descriptor = DescriptorBuilder::default()
            .media_type(media_type)
            .digest(
                manifest_digest
                    .parse::<oci_spec::image::Digest>()
                    .context("bad digest")?,
            )
            .size(bytes.len() as u64)
            .annotations(HashMap::from([(REF_NAME.to_owned(), name.clone())]))
            .build()
            .context("unable to describe the manifest")?;
        self.edit_index(|entries| {
            entries.retain(|d| layout::ref_name(d).as_deref() != Some(name.as_str()));
            entries.push(descriptor);
        })
    }

    /// Removes the entry named `name` (a full reference); whether there was one.
    pub fn remove_name(&self, name: &str) -> Result<bool> {
        let mut found = false;
        self.edit_index(|entries| {
            let before = entries.len();
            entries.retain(|d| layout::ref_name(d).as_deref() != Some(name));
            found = entries.len() != before;
        })?;
        Ok(found)
    }

    /// Applies `change` to index.json's entries under `index.lock`.
    pub fn edit_index(&self, change: impl FnOnce(&mut Vec<Descriptor>)) -> Result<()> {
        let _guard = layout::lock_file(&self.root().join("index.lock"), true)?;
        let mut index: ImageIndex = self.layout.read_index()?;
        let mut entries = index.manifests().clone();
        change(&mut entries);
        index.set_manifests(entries);
        let text = serde_json::to_vec(&index).context("unable to encode index.json")?;
        self.write_atomic(&self.root().join("index.json"), &text)
    }
}
