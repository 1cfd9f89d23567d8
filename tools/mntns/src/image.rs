//! `--image REF`: a container of an image in the store (`common::image`, written by
//! `nsimage`). The image's unpacked layers become the overlay's lower layers (topmost
//! first) and the rest is `--overlay`; its config is applied as Docker does: COMMAND defaults
//! to Entrypoint + Cmd (`--entrypoint` replaces Entrypoint and drops the image's Cmd, a given
//! COMMAND replaces Cmd), WorkingDir unless `-w`, User unless `--user` (resolved in the
//! image's /etc/passwd later, an unknown name an error), Env before `--env-file` and `-e`.
//! The caller's environment is not passed on, as in Docker.
//!
//! The store's lock is held shared while the image is resolved, and again while the writable
//! layer records the image's layers (`image-layers`) and they are checked to be still there:
//! `nsimage rmi`/`prune` (exclusive) either ran before (the check fails) or see the record.
//! It is not held in between: the layer's cleaner or waiter forks there and must not keep it.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

use common::image::{layout, Layout, Reference};
use common::Fatal;

use crate::{env, Args};

/// What `--image` resolved to, for the rest of the run.
#[derive(Debug)]
pub struct ImageUse {
    /// The image's full name.
    pub name: String,
    /// Its layers' diffIDs, lowest first.
    pub diff_ids: Vec<String>,
    /// The image's Env, applied before `--env-file` and `-e`.
    pub env: Vec<(String, OsString)>,
    /// The store's root.
    store: PathBuf,
    /// The unpacked layers, topmost first.
    lowers: Vec<PathBuf>,
    /// The store comes handed down as an idmapped tree (the layers may be out of reach here).
    through_tree: bool,
}

impl ImageUse {
    /// Records the image's layers in the container's writable layer (`dir`) under the store's
    /// lock, and checks they are still there.
    pub fn record(&self, dir: &Path) -> Result<(), Fatal> {
        let _lock = lock(&self.store)?;
        let text: String = self.diff_ids.iter().map(|d| format!("{d}\n")).collect();
        std::fs::write(dir.join(layout::USAGE_FILE), text).map_err(|e| {
            Fatal::from(e).context(format!(
                "unable to record the image's layers in {}",
                dir.display()
            ))
        })?;
        for (lower, diff_id) in self.lowers.iter().zip(self.diff_ids.iter().rev()) {
            check_layer(lower, diff_id, &self.name, &self.name, self.through_tree)?;
        }
        Ok(())
    }
}

/// The store's lock, shared (none when there is no store).
fn lock(store: &Path) -> Result<Option<File>, Fatal> {
    if !store.join("oci-layout").exists() {
        return Ok(None);
    }
    layout::lock_file(&store.join(".lock"), false)
        .map(Some)
        .map_err(|e| Fatal::from(e).context("unable to lock the image store"))
}

/// Adds the image's name to the link's registration (`--info-fd`, `nsps`).
pub fn describe(image: Option<&ImageUse>, extra: &mut serde_json::Map<String, serde_json::Value>) {
    if let Some(image) = image {
        extra.insert("image".into(), serde_json::json!(image.name));
    }
}

/// Resolves `--image` and rewrites `args` as the equivalent `--overlay` run with the image's
/// config applied.
pub fn apply(args: &mut Args, handed: &[String]) -> Result<Option<ImageUse>, Fatal> {
    let Some(text) = args.image.clone() else {
        return Ok(None);
    };
    let reference =
        Reference::parse(&text).map_err(|e| Fatal::from(e).context("invalid --image"))?;
    let store = Layout::at(Layout::default_root());
    let _lock = lock(&store.root)?;
    let image = store
        .image(&reference)
        .map_err(|e| Fatal::from(e).context(format!("image {reference}")))?
        .ok_or_else(|| {
            Fatal::new(format!(
                "no image {reference} in the store {}",
                store.root.display()
            ))
            .with_hint(format!(
                "nsimage pull {text} (or nsimage load / import it) first"
            ))
        })?;
    let through_tree = handed.iter().any(|tree| store.root.starts_with(tree));
    let mut lowers = Vec::new();
    for diff_id in image.diff_ids().iter().rev() {
        let dir = store.layer_diff(diff_id).map_err(Fatal::from)?;
        check_layer(&dir, diff_id, &image.name, &text, through_tree)?;
        lowers.push(dir.into_os_string());
    }
    if lowers.is_empty() {
        return Err(Fatal::new(format!("image {} has no layers", image.name)));
    }
    args.overlay = Some(lowers.join(std::ffi::OsStr::new(":")));
    let config = image.config.config().clone().unwrap_or_default();
    args.command.command = command(
        args,
        config.entrypoint().as_deref(),
        config.cmd().as_deref(),
    )
    .ok_or_else(|| {
        Fatal::new(format!(
            "image {}: no command given and the image has neither Entrypoint nor Cmd",
            image.name
        ))
    })?;
    if args.workdir.is_none() {
        args.workdir = config
            .working_dir()
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(Into::into);
    }
    if args.user.is_none() {
        if let Some(user) = config.user().as_deref().filter(|u| !u.is_empty()) {
            args.user = Some(user.parse().map_err(|e: String| {
                Fatal::new(format!("image {}: User {user:?}: {e}", image.name))
            })?);
        }
    }
    args.clearenv = true;
    let env = config
        .env()
        .iter()
        .flatten()
        .filter_map(|kv| env::parse_env(kv).ok())
        .filter_map(|spec| spec.value.map(|v| (spec.key, v)))
        .collect();
    Ok(Some(ImageUse {
        name: image.name.clone(),
        diff_ids: image.diff_ids().to_vec(),
        env,
        lowers: std::env::split_paths(args.overlay.as_deref().unwrap_or_default()).collect(),
        store: store.root,
        through_tree,
    }))
}

/// An unpacked layer is there (or, behind a handed-down tree of the store, not reachable
/// here but there: the tree shows it).
fn check_layer(
    dir: &Path,
    diff_id: &str,
    name: &str,
    text: &str,
    through_tree: bool,
) -> Result<(), Fatal> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && through_tree => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(Fatal::new(format!(
            "image {name}: its layers in {} are not reachable from this user namespace",
            dir.parent().and_then(Path::parent).map_or(dir, |p| p).display()
        ))
        .with_hint("hand the store down idmapped: userns --map-auto --idmap STORE (the store is DATA_DIR/image)")),
        _ => Err(Fatal::new(format!("image {name}: layer {diff_id} is not unpacked in the store"))
            .with_hint(format!("nsimage rmi {text}, then pull or load it again"))),
    }
}

/// Entrypoint + Cmd as Docker combines them with `--entrypoint` and a given COMMAND.
fn command(
    args: &Args,
    entrypoint: Option<&[String]>,
    cmd: Option<&[String]>,
) -> Option<Vec<OsString>> {
    let given = &args.command.command;
    let entry: Vec<OsString> = match &args.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => entrypoint
            .unwrap_or_default()
            .iter()
            .map(OsString::from)
            .collect(),
    };
    let rest: Vec<OsString> = if !given.is_empty() {
        given.clone()
    } else if args.entrypoint.is_some() {
        // Docker: --entrypoint resets the image's Cmd.
        Vec::new()
    } else {
        cmd.unwrap_or_default().iter().map(OsString::from).collect()
    };
    let argv: Vec<OsString> = entry.into_iter().chain(rest).collect();
    (!argv.is_empty()).then_some(argv)
}
