//! The store: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/HEX`) so that
//! `skopeo copy ... oci:STORE:REF` works both ways, plus what nschain keeps beside it:
//! `layers/HEX/diff` (each layer unpacked once, keyed by its diffID, in overlayfs form),
//! `tmp/` (everything is written there first, then published by rename), `.lock` (shared by
//! writers, exclusive for removal) and `index.lock` (index.json updates).
//!
//! Every blob is checked against its digest when read ([`Layout::read_blob`]).

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest, Sha256};

use super::reference::{check_digest, Reference};
use crate::state;

/// The annotation an index entry's full reference is kept in.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The largest manifest, index or config the store reads into memory.
pub const MAX_METADATA: u64 = 4 << 20;
/// The file a container's writable layer records its image's layers in: layers named in one
/// are never removed (`DATA/overlay/ID/image-layers`).
pub const USAGE_FILE: &str = "image-layers";

/// The store's directory tree.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The layout's root.
    pub root: PathBuf,
}

/// An image resolved in the store, its manifest and config read and verified.
#[derive(Debug, Clone)]
pub struct Image {
    /// The index entry's full reference (or the digest it was found by).
    pub name: String,
    /// The manifest's descriptor in index.json.
    pub descriptor: Descriptor,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The config.
    pub config: ImageConfiguration,
}

impl Image {
    /// The layers' diffIDs, lowest first.
    pub fn diff_ids(&self) -> &[String] {
        self.config.rootfs().diff_ids()
    }
}

/// Takes a lock on `path` (created if missing): `exclusive` or shared, blocking. An existing
/// lock file is opened read-only (flock needs no more), so that a reader without write access
/// to the store (a `--map-auto` range) can take it shared.
pub fn lock_file(path: &Path, exclusive: bool) -> Result<File> {
    let file = File::open(path)
        .or_else(|_| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
        })
        .with_context(|| format!("unable to open {}", path.display()))?;
    let locked = if exclusive {
        crate::sys::fs::lock_exclusive(file.as_fd())
    } else {
        crate::sys::fs::lock_shared(file.as_fd())
    };
    locked.with_context(|| format!("unable to lock {}", path.display()))?;
    Ok(file)
}

/// The hex part of a `sha256:HEX` digest (checked).
pub fn digest_hex(digest: &str) -> Result<&str> {
    check_digest(digest)?;
    Ok(&digest["sha256:".len()..])
}

/// `sha256:HEX` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

impl Layout {
    /// The store of this user: `DATA_DIR/image` (`/var/lib/nschain/image`, rootless
    /// `$XDG_DATA_HOME/nschain/image`; `NSCHAIN_DATA_DIR` overrides). After `userns
    /// --map-auto` the data directory is the range's `DATA/userns-UID`; the store is still
    /// host root's `DATA/image` (read-only to the range, shared by every container).
    pub fn default_root() -> PathBuf {
        let data = state::data_dir();
        let in_range = data
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("userns-"));
        match data.parent() {
            Some(parent) if in_range => parent.join("image"),
            _ => data.join("image"),
        }
    }

    /// The layout at `root` (nothing is checked or created).
    pub fn at(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// Where a blob lives.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    /// The unpacked layer of `diff_id` (its `diff` directory, an overlayfs lower layer).
    pub fn layer_diff(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self
            .root
            .join("layers")
            .join(digest_hex(diff_id)?)
            .join("diff"))
    }

    /// Whether the layout exists here at all.
    pub fn exists(&self) -> bool {
        self.root.join("oci-layout").is_file()
    }

    /// index.json (an empty index when the store has none yet).
    pub fn read_index(&self) -> Result<ImageIndex> {
        let path = self.root.join("index.json");
        if !path.exists() {
            return Ok(empty_index());
        }
        let text = read_limited(&path)?;
        serde_json::from_slice(&text)
            .with_context(|| format!("{} is not an OCI image index", path.display()))
    }

    /// Reads a blob whole and checks it against its digest.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let bytes = read_limited(&path)
            .with_context(|| format!("blob {digest} is missing from the store"))?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            bail!("blob {digest} is corrupt: its content hashes to {actual}");
        }
        Ok(bytes)
    }

    /// The index entry `reference` names: by full reference in ref.name, or by manifest digest.
    pub fn find(&self, reference: &Reference) -> Result<Option<Descriptor>> {
        let index = self.read_index()?;
        let wanted = reference.to_string();
        let entries = index.manifests();
        // A digest pins the manifest whatever the tag says (as docker does), within the
        // reference's repository.
        if let Some(digest) = &reference.digest {
            let same = |d: &&Descriptor| d.digest().to_string() == *digest;
            let repository = format!("{}:", reference.repository());
            let found = entries
                .iter()
                .filter(same)
                .find(|d| ref_name(d).is_some_and(|n| n.starts_with(&repository) || n == wanted));
            return Ok(found.cloned());
        }
        Ok(entries
            .iter()
            .find(|d| ref_name(d).is_some_and(|n| n == wanted))
            .cloned())
    }

    /// Resolves `reference` to an image and reads its manifest and config (both verified).
    /// `Ok(None)` when the store does not have it.
    pub fn image(&self, reference: &Reference) -> Result<Option<Image>> {
        match self.find(reference)? {
            Some(descriptor) => {
                let name = ref_name(&descriptor).unwrap_or_else(|| reference.to_string());
                self.image_of(name, descriptor).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Reads the manifest and config an index entry points to.
    pub fn image_of(&self, name: String, descriptor: Descriptor) -> Result<Image> {
        let digest = descriptor.digest().to_string();
        let manifest: ImageManifest = serde_json::from_slice(&self.read_blob(&digest)?)
            .with_context(|| format!("manifest {digest} of {name} is not an image manifest"))?;
        let config_digest = manifest.config().digest().to_string();
        let config: ImageConfiguration = serde_json::from_slice(&self.read_blob(&config_digest)?)
            .with_context(|| {
            format!("config {config_digest} of {name} is not an image config")
        })?;
        if config.rootfs().diff_ids().len() != manifest.layers().len() {
            bail!(
                "image {name}: its config lists {} layers, its manifest {}",
                config.rootfs().diff_ids().len(),
                manifest.layers().len()
            );
        }
        Ok(Image {
            name,
            descriptor,
            manifest,
            config,
        })
    }

    /// The diffIDs named by the containers' writable layers under `data_dirs` (each
    /// `DIR/overlay/*/image-layers` and, for ranges, `DIR/userns-*/overlay/*/image-layers`).
    pub fn layers_in_use(data_dirs: &[PathBuf]) -> Vec<String> {
        let mut overlay_dirs = Vec::new();
        for data in data_dirs {
            overlay_dirs.push(data.join("overlay"));
            let ranges = std::fs::read_dir(data).into_iter().flatten().flatten();
            for entry in ranges {
                if entry.file_name().to_string_lossy().starts_with("userns-") {
                    overlay_dirs.push(entry.path().join("overlay"));
                }
            }
        }
        let mut used = Vec::new();
        for dir in overlay_dirs {
            for layer in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if let Ok(text) = std::fs::read_to_string(layer.path().join(USAGE_FILE)) {
                    used.extend(
                        text.lines()
                            .filter(|l| check_digest(l).is_ok())
                            .map(str::to_owned),
                    );
                }
            }
        }
        used.sort();
        used.dedup();
        used
    }
}

/// An index entry's full reference.
pub fn ref_name(descriptor: &Descriptor) -> Option<String> {
    descriptor
        .annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .cloned()
}

/// An index with no manifests.
pub fn empty_index() -> ImageIndex {
    // The builder only fails on missing required fields, and schema_version and manifests
    // are both given; fall back to the default (also empty) all the same.
    oci_spec::image::ImageIndexBuilder::default()
        .schema_version(2u32)
        .manifests(Vec::new())
        .build()
        .unwrap_or_default()
}

fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let file = File::open(path).with_context(|| format!("unable to open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_METADATA + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("unable to read {}", path.display()))?;
    if bytes.len() as u64 > MAX_METADATA {
        bail!("{} is larger than {MAX_METADATA} bytes", path.display());
    }
    Ok(bytes)
}
