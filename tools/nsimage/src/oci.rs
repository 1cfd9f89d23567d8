//! The images an OCI layout (a directory from `skopeo copy ... oci:DIR:TAG`, an oci-archive,
//! Docker ≥ 25's `docker save`) holds: index.json's entries, image indexes resolved to this
//! machine's platform, each with the name the archive gives it.

use anyhow::{bail, Context, Result};
use common::image::layout::{sha256_digest, REF_NAME};
use oci_spec::image::{Descriptor, ImageIndex, MediaType};

use crate::copy::blob_member;
use crate::source::Source;

/// Where Docker ≥ 25 and containerd keep the full name (ref.name then holds only the tag).
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// One image of a layout.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Manifest digest.
    pub digest: String,
    /// The full name the archive gives it, if any.
    pub name: Option<String>,
    /// ref.name as written (`latest`, `bb`, `localhost/bb:1`).
    pub ref_name: Option<String>,
}

/// This machine's architecture as OCI spells it.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// The images in `source`'s index.json.
pub fn entries(source: &Source) -> Result<Vec<Entry>> {
    let index: ImageIndex = serde_json::from_slice(&source.read_small("index.json")?)
        .context("index.json is not an OCI image index")?;
    let mut found = Vec::new();
    for descriptor in index.manifests() {
        let annotations = descriptor.annotations().clone().unwrap_or_default();
        let ref_name = annotations.get(REF_NAME).cloned();
        // A ref.name is a full name only with a '/' in it (podman: localhost/bb:1); skopeo and
        // Docker write a bare tag there.
        let name = annotations
            .get(CONTAINERD_NAME)
            .cloned()
            .or_else(|| ref_name.clone().filter(|n| n.contains('/')));
        let digest = resolve(source, descriptor, 0)?;
        found.push(Entry {
            digest,
            name,
            ref_name,
        });
    }
    Ok(found)
}

/// The manifest digest a descriptor leads to: itself, or for an image index the manifest of
/// this platform.
fn resolve(source: &Source, descriptor: &Descriptor, depth: u32) -> Result<String> {
    let digest = descriptor.digest().to_string();
    if *descriptor.media_type() != MediaType::ImageIndex {
        return Ok(digest);
    }
    if depth > 2 {
        bail!("image indexes nested too deeply");
    }
    let bytes = source.read_small(&blob_member(&digest)?)?;
    if sha256_digest(&bytes) != digest {
        bail!("index {digest} in the archive does not match its digest");
    }
    let index: ImageIndex = serde_json::from_slice(&bytes).context("not an image index")?;
    let fits = |d: &&Descriptor| match d.platform() {
        Some(p) => p.os().to_string() == "linux" && p.architecture().to_string() == arch(),
        None => !is_attestation(d),
    };
    match index.manifests().iter().find(fits) {
        Some(child) => resolve(source, child, depth + 1),
        None => bail!("the image index {digest} has no image for linux/{}", arch()),
    }
}

fn is_attestation(descriptor: &Descriptor) -> bool {
    descriptor.annotations().as_ref().is_some_and(|a| {
        a.get("vnd.docker.reference.type")
            .is_some_and(|t| t == "attestation-manifest")
    })
}
