//! `nsimage pull REF`: resolve the reference on its registry (an index picks one platform),
//! stream the config and layers into the store (each blob held to its size and verified
//! against its digest by the store as it is written; blobs already there are skipped), unpack
//! the layers, store the manifest, and only then name the image in index.json. A failed pull
//! removes the blobs and layers it added once the other writers at work are done, keeping
//! what one of their images references (`gc::discard`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context as _, Result};
use common::image::{layout, Reference};
use common::Fatal;
use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};

use crate::progress::Progress;
use crate::registry::auth::Credentials;
use crate::registry::manifest::{self, Fetched, Platform};
use crate::registry::sized::Sized;
use crate::registry::{Client, Options, Refused};
use crate::store::Store;

/// How many blobs are fetched and unpacked at once.
const PARALLEL: usize = 3;

/// `nsimage pull`'s options.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Image reference (busybox, docker.io/library/nginx:1.25, host:5000/a/b@sha256:...)
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The platform to pick from a multi-platform image (default: this machine's)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = Platform::parse)]
    pub platform: Option<Platform>,
    /// Credentials for the registry (else from --authfile or the usual auth files)
    #[arg(long, value_name = "USER:PASSWORD")]
    pub creds: Option<String>,
    /// Auth file to read credentials from (podman's auth.json or docker's config.json)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Verify the registry's TLS certificate; false also allows a plain-HTTP registry
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_value = "true",
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Directory of CA certificates (*.crt) to trust for the registry
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// No progress display, even on a terminal
    #[arg(long, short)]
    pub quiet: bool,
}

/// Pulls `args.reference` into the store `open` opens once the arguments are known good;
/// prints the manifest digest on stdout.
pub fn run(args: &PullArgs, open: impl FnOnce() -> Result<Store, Fatal>) -> Result<(), Fatal> {
    let reference = Reference::parse(&args.reference)?;
    let creds = match &args.creds {
        Some(text) => Some(Credentials::parse(text).context("invalid --creds")?),
        None => None,
    };
    let opts = Options {
        creds,
        authfile: args.authfile.clone(),
        insecure: !args.tls_verify,
        cert_dir: args.cert_dir.clone(),
    };
    let platform = args.platform.clone().unwrap_or_else(Platform::host);
    let store = open()?;
    let digest = pull(&store, &reference, &opts, &platform, args.quiet)
        .map_err(|e| explain(e, &reference))?;
    println!("{digest}");
    Ok(())
}

/// The failure with the image's name in front, and a hint when credentials are the cause.
fn explain(error: anyhow::Error, reference: &Reference) -> Fatal {
    let hint = match error.downcast_ref::<Refused>() {
        Some(Refused::Unauthorized {
            had_creds: true, ..
        }) => Some("check the user name and password (--creds USER:PASSWORD, --authfile FILE)"),
        Some(Refused::Unauthorized { .. }) => {
            Some("give credentials with --creds USER:PASSWORD or --authfile FILE")
        }
        _ => None,
    };
    let fatal = Fatal::from(error.context(format!("unable to pull {reference}")));
    match hint {
        Some(hint) => fatal.with_hint(hint),
        None => fatal,
    }
}

/// The API host of a registry: Docker Hub's `docker.io` is served by `registry-1.docker.io`.
pub fn api_host(domain: &str) -> &str {
    if domain == "docker.io" {
        "registry-1.docker.io"
    } else {
        domain
    }
}

fn pull(
    store: &Store,
    reference: &Reference,
    opts: &Options,
    platform: &Platform,
    quiet: bool,
) -> Result<String> {
    let client = Client::connect(api_host(&reference.domain), &reference.path, opts)?;
    let resolved = resolve(&client, reference, platform)?;
    let progress = Progress::new(&reference.familiar(), !quiet);
    let lock = store.lock()?;
    let added = Added::default();
    let result = store_image(store, &client, &resolved, &progress, &added)
        .and_then(|()| store.add_image(reference, &resolved.digest));
    progress.finish();
    if result.is_err() {
        let (blobs, layers) = added.into_inner();
        crate::gc::discard(store, lock, &blobs, &layers);
    }
    result.map(|()| resolved.digest)
}

/// The image manifest a reference names, with its bytes and digest.
struct Resolved {
    digest: String,
    bytes: Vec<u8>,
    manifest: Box<ImageManifest>,
}

/// Fetches the manifest a tag or digest names; from an index, the one for `platform`. A
/// manifest fetched by digest must hash to it.
fn resolve(client: &Client, reference: &Reference, platform: &Platform) -> Result<Resolved> {
    let wanted = match (&reference.digest, &reference.tag) {
        (Some(digest), _) => digest.clone(),
        (None, Some(tag)) => tag.clone(),
        (None, None) => bail!("the reference names neither a tag nor a digest"),
    };
    let (bytes, content_type) = client.manifest(&wanted)?;
    let digest = checked(&bytes, reference.digest.as_deref())?;
    match manifest::parse(&bytes, content_type.as_deref())? {
        Fetched::Image(manifest) => Ok(Resolved {
            digest,
            bytes,
            manifest,
        }),
        Fetched::Index(index) => {
            let entry = manifest::choose(&index, platform)?;
            let entry_digest = entry.digest().to_string();
            let (bytes, content_type) = client.manifest(&entry_digest)?;
            let digest = checked(&bytes, Some(&entry_digest))?;
            match manifest::parse(&bytes, content_type.as_deref())? {
                Fetched::Image(manifest) => Ok(Resolved {
                    digest,
                    bytes,
                    manifest,
                }),
                Fetched::Index(_) => bail!("manifest {entry_digest} is an index inside an index"),
            }
        }
    }
}

/// The digest of a manifest's bytes, which must be `expected` when the manifest was asked for
/// by digest.
fn checked(bytes: &[u8], expected: Option<&str>) -> Result<String> {
    let digest = layout::sha256_digest(bytes);
    match expected {
        Some(want) if want != digest => {
            bail!("manifest {want} does not match its digest: its content hashes to {digest}")
        }
        _ => Ok(digest),
    }
}

/// Stores the config, the layers (fetched and unpacked, [`PARALLEL`] at a time) and the
/// manifest.
fn store_image(
    store: &Store,
    client: &Client,
    resolved: &Resolved,
    progress: &Progress,
    added: &Added,
) -> Result<()> {
    let manifest = &resolved.manifest;
    for layer in manifest.layers() {
        check_layer_type(layer)?;
        progress.add_blob(layer.size());
    }
    progress.add_blob(manifest.config().size());
    fetch_blob(store, client, manifest.config(), progress, added)?;
    let config_digest = manifest.config().digest().to_string();
    let config: ImageConfiguration =
        serde_json::from_slice(&store.layout.read_blob(&config_digest)?)
            .with_context(|| format!("config {config_digest} is not an image configuration"))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        bail!(
            "the config lists {} layers, the manifest {}",
            diff_ids.len(),
            manifest.layers().len()
        );
    }
    let jobs: Vec<(&Descriptor, &String)> = manifest.layers().iter().zip(diff_ids).collect();
    in_parallel(&jobs, |(layer, diff_id)| {
        layer_job(store, client, layer, diff_id, progress, added)
    })?;
    let digest = store.put_blob_bytes(&resolved.bytes)?;
    if digest != resolved.digest {
        bail!("the stored manifest is {digest}, not {}", resolved.digest);
    }
    Ok(())
}

/// Refuses layers the store cannot unpack: only tar, gzip and zstd tars, OCI or Docker names.
fn check_layer_type(layer: &Descriptor) -> Result<()> {
    let media_type = layer.media_type().to_string();
    const KNOWN: [&str; 5] = [
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar.zstd",
    ];
    if !KNOWN.contains(&media_type.as_str()) {
        bail!(
            "layer {} has an unsupported media type {media_type}",
            layer.digest()
        );
    }
    Ok(())
}

/// Streams one blob into the store unless it is there already.
fn fetch_blob(
    store: &Store,
    client: &Client,
    blob: &Descriptor,
    progress: &Progress,
    added: &Added,
) -> Result<()> {
    let digest = blob.digest().to_string();
    if store.has_blob(&digest) {
        progress.blob_done(blob.size());
        return Ok(());
    }
    let (_, body) = client.blob(&digest)?;
    let stream = progress.reader(Sized::new(body, &digest, blob.size()));
    store
        .put_blob_verified(stream, &digest)
        .with_context(|| format!("unable to fetch blob {digest}"))?;
    added.blob(&digest);
    progress.blob_done(0);
    Ok(())
}

/// Brings one layer into the store: what is missing of its blob and its unpacked form, both
/// in one pass over the download when both are.
fn layer_job(
    store: &Store,
    client: &Client,
    layer: &Descriptor,
    diff_id: &str,
    progress: &Progress,
    added: &Added,
) -> Result<()> {
    let digest = layer.digest().to_string();
    let diff = store.layout.layer_diff(diff_id)?;
    if diff.is_dir() {
        return fetch_blob(store, client, layer, progress, added);
    }
    if store.has_blob(&digest) {
        progress.blob_done(layer.size());
        store.unpack_layer(&digest, diff_id)?;
    } else {
        let (_, body) = client.blob(&digest)?;
        let stream = progress.reader(Sized::new(body, &digest, layer.size()));
        let new_blob = store
            .fetch_and_unpack(stream, &digest, diff_id)
            .with_context(|| format!("unable to fetch blob {digest}"))?;
        if new_blob {
            added.blob(&digest);
        }
        progress.blob_done(0);
    }
    added.layer(diff_id);
    Ok(())
}

/// Runs `job` on every item, [`PARALLEL`] at a time; the first error stops the others from
/// starting new items and is returned.
fn in_parallel<T: Sync>(items: &[T], job: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL.min(items.len()) {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    if let Err(e) = job(item) {
                        failed.store(true, Ordering::Relaxed);
                        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(e);
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The blobs (digests) and layers (diffIDs) this pull published, for `gc::discard`
/// if it fails.
#[derive(Default)]
struct Added(Mutex<(Vec<String>, Vec<String>)>);

impl Added {
    fn blob(&self, digest: &str) {
        let mut added = self.0.lock().unwrap_or_else(|p| p.into_inner());
        added.0.push(digest.to_owned());
    }

    fn layer(&self, diff_id: &str) {
        let mut added = self.0.lock().unwrap_or_else(|p| p.into_inner());
        added.1.push(diff_id.to_owned());
    }

    fn into_inner(self) -> (Vec<String>, Vec<String>) {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}
