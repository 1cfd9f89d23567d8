//! The write side of the store (the read side, shared with `mntns --image`, is
//! `common::image::Layout`). Blobs and layers are written under `tmp/`, verified, then
//! published by rename, so a reader never sees half a file and concurrent writers of the
//! same digest are harmless. Writers hold `.lock` shared for as long as they work; `rmi` and
//! `prune` hold it exclusive, so they never delete what a writer is about to reference.
//! index.json is rewritten (tmp + rename) under `index.lock`.

mod apply;
mod at;
mod blob;
mod dirs;
mod index;
pub mod unpack;

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use common::image::{layout, Image, Layout, Reference};

pub use blob::Verified;

/// The `oci-layout` file's content.
const OCI_LAYOUT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";

/// An open store.
#[derive(Debug)]
pub struct Store {
    /// Its layout (paths and the read side).
    pub layout: Layout,
}

/// A held store lock; released when dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl Store {
    /// Opens the store at `dir`, creating the layout's files if they are missing.
    pub fn open(dir: &Path) -> Result<Store> {
        common::state::ensure_dir(dir, 0o755)?;
        // The unpacked layers hold the images' setuid programs: no other host user may
        // reach them (as /var/lib/docker is 0710). A range reads them through `userns --idmap`.
        for sub in ["blobs", "blobs/sha256", "layers", "tmp"] {
            let mode = if sub == "tmp" || sub == "layers" {
                0o700
            } else {
                0o755
            };
            common::state::ensure_dir(&dir.join(sub), mode)?;
        }
        let store = Store {
            layout: Layout::at(dir),
        };
        if !dir.join("oci-layout").exists() {
            store.write_atomic(&dir.join("oci-layout"), OCI_LAYOUT.as_bytes())?;
        }
        Ok(store)
    }

    /// Opens this user's store (`common::image::Layout::default_root`).
    pub fn open_default() -> Result<Store> {
        Store::open(&Layout::default_root())
    }

    /// The store's root.
    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    /// Takes the store lock shared: hold it while writing blobs and layers that an index
    /// entry will reference (a pull, a load), so that `prune` waits.
    pub fn lock(&self) -> Result<StoreLock> {
        self.lock_mode(false)
    }

    /// Takes the store lock exclusive (`rmi`, `prune`): no writer is at work meanwhile.
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        self.lock_mode(true)
    }

    fn lock_mode(&self, exclusive: bool) -> Result<StoreLock> {
        let file = layout::lock_file(&self.root().join(".lock"), exclusive)?;
        Ok(StoreLock { _file: file })
    }

    /// Whether the store holds the blob `digest` (present; it is verified when read).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.layout.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// A fresh path under `tmp/` for something about to be published by rename.
    pub fn temp_path(&self, what: &str) -> Result<PathBuf> {
        Ok(self
            .root()
            .join("tmp")
            .join(format!("{what}-{}-{}", std::process::id(), random_hex()?)))
    }

    /// Writes `bytes` to `path` through a temporary file and a rename.
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.temp_path("file")?;
        std::fs::write(&tmp, bytes)
            .with_context(|| format!("unable to write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("unable to publish {}", path.display()))?;
        Ok(())
    }

    /// Resolves `reference` in the store (manifest and config verified).
    pub fn image(&self, reference: &Reference) -> Result<Option<Image>> {
        self.layout.image(reference)
    }
}

/// 16 random hex digits.
pub fn random_hex() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("unable to read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
