//! `nsimage load` (docker-archive, oci-archive, Docker ≥ 25's combined form) and
//! `nsimage import` (an OCI layout directory or archive, or a plain rootfs tarball).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use common::image::Reference;

use crate::copy::{self, Added};
use crate::rootfs::{self, Changes};
use crate::source::Source;
use crate::store::Store;
use crate::{docker, oci};

/// The archive `file` ("-": standard input, first copied into the store's `tmp/`), and the
/// copy to delete afterwards.
fn archive_path(store: &Store, file: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    if file != Path::new("-") {
        return Ok((file.to_owned(), None));
    }
    let tmp = store.temp_path("stdin")?;
    let mut out = std::fs::File::create(&tmp)
        .with_context(|| format!("unable to create {}", tmp.display()))?;
    if let Err(e) = std::io::copy(&mut std::io::stdin().lock(), &mut out) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).context("unable to read the archive from standard input");
    }
    Ok((tmp.clone(), Some(tmp)))
}

fn is_layout(source: &Source) -> bool {
    source.has("oci-layout") && source.has("index.json")
}

/// Loads every image of an archive; returns their names.
pub fn load(store: &Store, file: &Path) -> Result<Vec<String>> {
    let (path, stdin_copy) = archive_path(store, file)?;
    let result = Source::open(&path).and_then(|source| load_from(store, &source));
    if let Some(tmp) = stdin_copy {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

fn load_from(store: &Store, source: &Source) -> Result<Vec<String>> {
    let mut loaded = Vec::new();
    if is_layout(source) {
        let entries = oci::entries(source)?;
        if entries.iter().all(|e| e.name.is_some()) || !source.has("manifest.json") {
            for entry in entries {
                let Some(name) = entry.name else {
                    bail!("the archive names no image (ref.name {:?}): use nsimage import ARCHIVE REF", entry.ref_name.unwrap_or_default());
                };
                let reference = Reference::parse(&name)?;
                copy::atomically(store, |added| {
                    copy::oci_image(store, source, &entry.digest, &reference, added)
                })?;
                loaded.push(reference.to_string());
            }
            return Ok(loaded);
        }
    }
    if !source.has("manifest.json") {
        bail!("not an image archive: it has neither manifest.json (docker-archive) nor oci-layout and index.json (oci-archive)");
    }
    for item in docker::items(source)? {
        let names = item.repo_tags.clone().unwrap_or_default();
        if names.is_empty() {
            bail!("the archive names no image (no RepoTags): use nsimage import ARCHIVE REF");
        }
        let references = names
            .iter()
            .map(|n| Reference::parse(n))
            .collect::<Result<Vec<_>>>()?;
        copy::atomically(store, |added| {
            docker::load(store, source, &item, &references, added)
        })?;
        loaded.extend(references.iter().map(ToString::to_string));
    }
    Ok(loaded)
}

/// Imports `path` as `name`: an OCI layout (directory or archive) or a rootfs tarball.
pub fn import(
    store: &Store,
    path: &Path,
    name: &Reference,
    changes: &Changes,
    any_change: bool,
) -> Result<()> {
    let (archive, stdin_copy) = archive_path(store, path)?;
    let result = (|| {
        let layout = Source::open(&archive).ok().filter(is_layout);
        match layout {
            Some(source) => {
                if any_change {
                    bail!("--change applies to a root filesystem tarball, not to an OCI layout");
                }
                let entry = pick(&oci::entries(&source)?, name)?;
                copy::atomically(store, |added| {
                    copy::oci_image(store, &source, &entry.digest, name, added)
                })
            }
            None if archive.is_dir() => bail!(
                "{} is not an OCI layout (no oci-layout and index.json)",
                archive.display()
            ),
            None => copy::atomically(store, |added: &mut Added| {
                rootfs::import(store, &archive, changes, name, added)
            }),
        }
    })();
    if let Some(tmp) = stdin_copy {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// The layout's only image, or the one whose ref.name is `name`'s tag or full name.
fn pick(entries: &[oci::Entry], name: &Reference) -> Result<oci::Entry> {
    if let [only] = entries {
        return Ok(only.clone());
    }
    let full = name.to_string();
    let found = entries.iter().find(|e| {
        let r = e.ref_name.as_deref();
        r == name.tag.as_deref()
            || r == Some(full.as_str())
            || e.name.as_deref() == Some(full.as_str())
    });
    match found {
        Some(entry) => Ok(entry.clone()),
        None => {
            let names: Vec<String> = entries.iter().filter_map(|e| e.ref_name.clone()).collect();
            bail!(
                "the layout holds {} images ({}); name the one to import by its tag in REF",
                entries.len(),
                names.join(", ")
            )
        }
    }
}
