//! `nsimage images` and `nsimage inspect`.

use anyhow::{Context, Result};
use common::image::{layout, Image, Reference};
use serde_json::{json, Value};

use crate::store::Store;

/// One row of `images`.
fn row(image: &Image) -> Value {
    let reference = Reference::parse(&image.name).ok();
    let size: u64 = image.manifest.layers().iter().map(|l| l.size()).sum();
    json!({
        "name": image.name,
        "repository": reference.as_ref().map(|r| r.repository()),
        "tag": reference.as_ref().and_then(|r| r.tag.clone()),
        "id": image.manifest.config().digest().to_string(),
        "digest": image.descriptor.digest().to_string(),
        "created": image.config.created(),
        "size": size,
    })
}

/// Every named image of the store (entries that cannot be read are reported, not fatal).
pub fn all(store: &Store) -> Result<Vec<Image>> {
    let mut images = Vec::new();
    for descriptor in store.layout.read_index()?.manifests() {
        let name = layout::ref_name(descriptor).unwrap_or_else(|| descriptor.digest().to_string());
        match store.layout.image_of(name.clone(), descriptor.clone()) {
            Ok(image) => images.push(image),
            Err(e) => common::report::warning(format_args!("{name}: {e:#}")),
        }
    }
    Ok(images)
}

/// Prints the images as a table or JSON.
pub fn images(store: &Store, as_json: bool) -> Result<()> {
    let rows: Vec<Value> = all(store)?.iter().map(row).collect();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows).context("json")?);
        return Ok(());
    }
    println!(
        "{:<40} {:<12} {:<12} {:>10}",
        "REPOSITORY", "TAG", "IMAGE ID", "SIZE"
    );
    for r in &rows {
        let id = r["id"].as_str().unwrap_or("").trim_start_matches("sha256:");
        println!(
            "{:<40} {:<12} {:<12} {:>10}",
            r["repository"].as_str().unwrap_or("<none>"),
            r["tag"].as_str().unwrap_or("<none>"),
            &id[..id.len().min(12)],
            human(r["size"].as_u64().unwrap_or(0))
        );
    }
    Ok(())
}

/// Prints one image in full: config, layers with sizes and diffIDs.
pub fn inspect(image: &Image) -> Result<()> {
    let layers: Vec<Value> = image
        .manifest
        .layers()
        .iter()
        .zip(image.diff_ids())
        .map(|(l, diff_id)| json!({"digest": l.digest().to_string(), "mediaType": l.media_type().to_string(), "size": l.size(), "diffId": diff_id}))
        .collect();
    let mut out = row(image);
    out["architecture"] = json!(image.config.architecture().to_string());
    out["os"] = json!(image.config.os().to_string());
    out["config"] = serde_json::to_value(image.config.config()).context("json")?;
    out["layers"] = json!(layers);
    println!("{}", serde_json::to_string_pretty(&out).context("json")?);
    Ok(())
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1}GB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1}MB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1}kB", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}
