//! Removing what no image references: blobs, unpacked layers, leftovers in `tmp/`. A layer a
//! container's writable layer names (`common::image::Layout::layers_in_use`) is never
//! removed, whether the container runs or was kept.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result};
use common::image::layout::{self, digest_hex};
use common::report;

use crate::store::{Store, StoreLock};

/// What the store still needs: blobs and layers (hex) of every named image, and the layers
/// containers use.
struct Referenced {
    blobs: HashSet<String>,
    layers: HashSet<String>,
}

fn referenced(store: &Store) -> Result<Referenced> {
    let mut keep = Referenced {
        blobs: HashSet::new(),
        layers: HashSet::new(),
    };
    for descriptor in store.layout.read_index()?.manifests() {
        let digest = descriptor.digest().to_string();
        keep.blobs.insert(digest_hex(&digest)?.to_owned());
        // An image whose manifest cannot be read keeps at least its manifest; its other
        // blobs are not known, so they go.
        let name = layout::ref_name(descriptor).unwrap_or_else(|| digest.clone());
        if let Ok(image) = store.layout.image_of(name, descriptor.clone()) {
            keep.blobs
                .insert(digest_hex(image.manifest.config().digest().as_ref())?.to_owned());
            for layer in image.manifest.layers() {
                keep.blobs
                    .insert(digest_hex(layer.digest().as_ref())?.to_owned());
            }
            for diff_id in image.diff_ids() {
                keep.layers.insert(digest_hex(diff_id)?.to_owned());
            }
        }
    }
    for diff_id in layout::Layout::layers_in_use(&[common::state::data_dir()]) {
        keep.layers.insert(digest_hex(&diff_id)?.to_owned());
    }
    Ok(keep)
}

/// Removes every unreferenced blob and layer and everything in `tmp/` (under the exclusive
/// lock: no writer is at work). Returns how many blobs and layers went.
pub fn collect(store: &Store) -> Result<(usize, usize)> {
    let _lock = store.lock_exclusive()?;
    let keep = referenced(store)?;
    let mut removed = (0, 0);
    for entry in std::fs::read_dir(store.root().join("blobs/sha256"))
        .context("unable to list the blobs")?
        .flatten()
    {
        if !keep.blobs.contains(&*entry.file_name().to_string_lossy()) {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("unable to remove {}", entry.path().display()))?;
            removed.0 += 1;
        }
    }
    for entry in std::fs::read_dir(store.root().join("layers"))
        .context("unable to list the layers")?
        .flatten()
    {
        if !keep.layers.contains(&*entry.file_name().to_string_lossy()) {
            remove_tree(store, &entry.path())?;
            removed.1 += 1;
        }
    }
    for entry in std::fs::read_dir(store.root().join("tmp"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = remove_tree(store, &entry.path());
    }
    Ok(removed)
}

/// After a failed pull or load: lets go of the writer's shared lock `held`, waits for the
/// store lock exclusive (every other writer at work has named its image or failed by then),
/// and removes the blobs and layers this writer added that no image references. A
/// concurrent writer that found one of them in the store and skipped fetching it has named
/// its image meanwhile, so what it relies on stays.
pub fn discard(store: &Store, held: StoreLock, blobs: &[String], layers: &[String]) {
    drop(held);
    // Without the lock nothing is removed: garbage is safer than a broken image.
    let Ok(_lock) = store.lock_exclusive() else {
        return;
    };
    let Ok(keep) = referenced(store) else { return };
    for digest in blobs {
        if let (Ok(hex), Ok(path)) = (digest_hex(digest), store.layout.blob_path(digest)) {
            if !keep.blobs.contains(hex) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
    for diff_id in layers {
        if let Ok(hex) = digest_hex(diff_id) {
            if !keep.layers.contains(hex) {
                let _ = remove_tree(store, &store.root().join("layers").join(hex));
            }
        }
    }
}

/// Removes a directory tree: first renamed into `tmp/` (a half-removed layer is never seen
/// under `layers/`), directories made writable on the way (layers hold read-only ones).
pub fn remove_tree(store: &Store, path: &Path) -> Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    let trash = store.temp_path("trash")?;
    let target = match std::fs::rename(path, &trash) {
        Ok(()) => trash,
        Err(_) => path.to_owned(),
    };
    if std::fs::remove_dir_all(&target).is_ok() {
        return Ok(());
    }
    make_writable(&target);
    std::fs::remove_dir_all(&target).with_context(|| {
        report::warning(format_args!(
            "unable to remove {} entirely",
            target.display()
        ));
        format!("unable to remove {}", target.display())
    })
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        make_writable(&entry.path());
    }
}
