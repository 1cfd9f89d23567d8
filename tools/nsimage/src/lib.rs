//! `nsimage`: the image store manager. Loads, imports, lists, inspects, tags and removes
//! OCI images in nschain's store (an OCI image layout, `common::image`).

mod copy;
mod docker;
mod gc;
mod list;
mod load;
mod oci;
pub mod progress;
pub mod pull;
pub mod registry;
mod rootfs;
mod rootless;
mod source;
pub mod store;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use common::cli::Status;
use common::image::Reference;
use common::{Context, Fatal, Next};

use crate::store::Store;

/// Manage nschain's image store (an OCI image layout under the data directory).
#[derive(Parser, Debug)]
#[command(
    version,
    subcommand_value_name = "SUBCOMMAND",
    subcommand_help_heading = "Subcommands",
    disable_help_subcommand = true,
    after_help = "Examples:\n  nsimage load -i bb.tar               load a docker-archive or oci-archive\n  nsimage import rootfs.tar bb:1 --change 'CMD [\"/bin/sh\"]'\n  nsimage images                       list images (like docker images)\n  pidns -- mntns --image bb:1 --rm     run one"
)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Pull an image from a registry
    Pull(pull::PullArgs),
    /// Load images from a docker-archive or oci-archive (docker save, podman save; - for stdin)
    Load {
        /// The archive (`-` or none: standard input)
        #[arg(value_name = "FILE", conflicts_with = "input")]
        file: Option<PathBuf>,
        /// The archive, as `docker load -i` takes it
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Import an OCI layout (directory or archive) or a root filesystem tarball as REF
    Import {
        /// OCI layout directory, oci-archive, or rootfs tarball (`-`: standard input)
        #[arg(value_name = "DIR|TAR")]
        path: PathBuf,
        /// The name to give it
        #[arg(value_name = "REF")]
        reference: String,
        /// Dockerfile instruction for a rootfs tarball's config (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL)
        #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
        change: Vec<String>,
    },
    /// List images
    Images {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show an image's config, layers and sizes (JSON)
    Inspect {
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// Give an image another name
    Tag {
        #[arg(value_name = "SOURCE")]
        source: String,
        #[arg(value_name = "TARGET")]
        target: String,
    },
    /// Remove image names; blobs and layers nothing else uses go too
    Rmi {
        #[arg(value_name = "REF", required = true)]
        references: Vec<String>,
    },
    /// Remove every blob and unpacked layer no image or container uses
    Prune,
}

pub fn run(args: Args, _cx: &mut Context) -> Result<Next, Fatal> {
    run_action(args).map(Next::Exit)
}

fn parse_ref(text: &str) -> Result<Reference, Fatal> {
    Reference::parse(text).map_err(Fatal::from)
}

/// The store, after entering a user namespace when rootless (layers are written there).
fn open_store() -> Result<Store, Fatal> {
    rootless::enter_if_needed()?;
    Store::open_default().map_err(|e| Fatal::from(e).context("unable to open the image store"))
}

fn find(store: &Store, text: &str) -> Result<common::image::Image, Fatal> {
    let reference = parse_ref(text)?;
    store.image(&reference)?.ok_or_else(|| {
        Fatal::new(format!("no image {reference} in the store"))
            .with_hint(format!("nsimage pull {text}, or nsimage load / import it"))
    })
}

fn run_action(args: Args) -> Result<Status, Fatal> {
    match args.action {
        Action::Pull(args) => {
            pull::run(&args, open_store)?;
            Ok(0)
        }
        Action::Load { file, input } => {
            let input = file.or(input).unwrap_or_else(|| PathBuf::from("-"));
            let store = open_store()?;
            for name in load::load(&store, &input).map_err(|e| Fatal::from(e).context("load"))? {
                println!("Loaded image: {name}");
            }
            Ok(0)
        }
        Action::Import {
            path,
            reference,
            change,
        } => {
            let name = parse_ref(&reference)?;
            let mut changes = rootfs::Changes::default();
            for text in &change {
                rootfs::parse_change(&mut changes, text)?;
            }
            let store = open_store()?;
            load::import(&store, &path, &name, &changes, !change.is_empty())
                .map_err(|e| Fatal::from(e).context("import"))?;
            println!("Imported image: {name}");
            Ok(0)
        }
        Action::Images { json } => {
            let store = open_store()?;
            list::images(&store, json)?;
            Ok(0)
        }
        Action::Inspect { reference } => {
            let store = open_store()?;
            list::inspect(&find(&store, &reference)?)?;
            Ok(0)
        }
        Action::Tag { source, target } => {
            let target = parse_ref(&target)?;
            let store = open_store()?;
            let image = find(&store, &source)?;
            store.add_image(&target, image.descriptor.digest().as_ref())?;
            Ok(0)
        }
        Action::Rmi { references } => rmi(&references),
        Action::Prune => {
            let store = open_store()?;
            let (blobs, layers) = gc::collect(&store)?;
            println!("Removed {blobs} blobs and {layers} layers");
            Ok(0)
        }
    }
}

fn rmi(references: &[String]) -> Result<Status, Fatal> {
    let parsed = references
        .iter()
        .map(|r| parse_ref(r))
        .collect::<Result<Vec<_>, _>>()?;
    let store = open_store()?;
    for (text, reference) in references.iter().zip(&parsed) {
        find(&store, text)?;
        store.remove_name(&reference.to_string())?;
        println!("Untagged: {reference}");
    }
    gc::collect(&store)?;
    Ok(0)
}
