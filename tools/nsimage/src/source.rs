//! Where `load` and `import` read an image from: a directory (an OCI layout) or a tar
//! archive (oci-archive, docker-archive), addressed by member path. A tar is indexed once
//! (member → offset and size) and read in place: nothing from it is extracted.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use common::image::layout::MAX_METADATA;

/// An archive or directory holding an image.
#[derive(Debug)]
pub enum Source {
    /// A directory (an OCI layout).
    Dir(PathBuf),
    /// A tar file and its regular members.
    Tar {
        file: PathBuf,
        members: HashMap<String, (u64, u64)>,
    },
}

/// A member path without `./`, leading `/` or `..`.
fn normalize(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(p) => parts.push(p.to_str()?.to_owned()),
            Component::CurDir | Component::RootDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

impl Source {
    /// Opens `path`: a directory as is, a file as a tar archive.
    pub fn open(path: &Path) -> Result<Source> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("unable to open {}", path.display()))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_owned()));
        }
        Source::index_tar(path)
    }

    fn index_tar(path: &Path) -> Result<Source> {
        let file =
            File::open(path).with_context(|| format!("unable to open {}", path.display()))?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let mut links = Vec::new();
        // tar's own messages quote the bytes it choked on: not for a one-line error.
        let not_tar =
            || anyhow::anyhow!("{} is not a tar archive (or a damaged one)", path.display());
        let entries = archive.entries().map_err(|_| not_tar())?;
        for entry in entries {
            let entry = entry.map_err(|_| not_tar())?;
            let Some(name) = entry.path().ok().and_then(|p| normalize(&p)) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    members.insert(name, (entry.raw_file_position(), entry.size()));
                }
                // docker save links repeated layers to the first copy.
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Ok(Some(target)) = entry.link_name() {
                        links.push((name, entry.header().entry_type(), target.into_owned()));
                    }
                }
                _ => {}
            }
        }
        for (name, kind, target) in links {
            let base = match kind {
                tar::EntryType::Symlink => Path::new(&name)
                    .parent()
                    .unwrap_or(Path::new(""))
                    .join(&target),
                _ => target,
            };
            let resolved = normalize(&lexical(&base)).and_then(|t| members.get(&t).copied());
            if let Some(found) = resolved {
                members.insert(name, found);
            }
        }
        if members.is_empty() {
            bail!("{} is not a tar archive (or an empty one)", path.display());
        }
        Ok(Source::Tar {
            file: path.to_owned(),
            members,
        })
    }

    /// Whether the member `name` exists.
    pub fn has(&self, name: &str) -> bool {
        match self {
            Source::Dir(dir) => dir.join(name).is_file(),
            Source::Tar { members, .. } => members.contains_key(name),
        }
    }

    /// Opens the member `name` for reading.
    pub fn open_member(&self, name: &str) -> Result<Box<dyn Read>> {
        let Some(clean) = normalize(Path::new(name)) else {
            bail!("bad member name {name:?}")
        };
        match self {
            Source::Dir(dir) => {
                let path = dir.join(&clean);
                let file =
                    File::open(&path).with_context(|| format!("{} is missing", path.display()))?;
                Ok(Box::new(file))
            }
            Source::Tar { file, members } => {
                let Some(&(offset, size)) = members.get(&clean) else {
                    bail!("the archive has no {clean}")
                };
                let mut file = File::open(file)
                    .with_context(|| format!("unable to open {}", file.display()))?;
                file.seek(SeekFrom::Start(offset))
                    .context("unable to read the archive")?;
                Ok(Box::new(file.take(size)))
            }
        }
    }

    /// Reads a small member (JSON) whole.
    pub fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open_member(name)?
            .take(MAX_METADATA + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_METADATA {
            bail!("{name} is larger than {MAX_METADATA} bytes");
        }
        Ok(bytes)
    }
}

/// Resolves `a/../b` lexically (symlink targets inside an archive).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(p) => out.push(p),
            _ => {}
        }
    }
    out
}
