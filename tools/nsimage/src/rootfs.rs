//! `nsimage import TAR REF` of a plain root filesystem tarball (as `podman import` and
//! `docker import`): one layer, a config made from `--change` instructions.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use common::image::Reference;
use oci_spec::image::{
    ConfigBuilder, HistoryBuilder, ImageConfigurationBuilder, MediaType, RootFsBuilder,
};

use crate::copy::Added;
use crate::docker::{descriptor, store_image};
use crate::store::{Store, Verified};

/// What `--change` instructions set (Dockerfile syntax).
#[derive(Debug, Default)]
pub struct Changes {
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub exposed: Vec<String>,
    pub labels: HashMap<String, String>,
}

/// Parses one `--change` (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL).
pub fn parse_change(changes: &mut Changes, text: &str) -> Result<()> {
    let text = text.trim();
    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let rest = rest.trim();
    if rest.is_empty() {
        bail!("--change {text:?}: an instruction needs an argument");
    }
    match word.to_ascii_uppercase().as_str() {
        "CMD" => changes.cmd = Some(command_form(rest)?),
        "ENTRYPOINT" => changes.entrypoint = Some(command_form(rest)?),
        "ENV" => changes.env.extend(key_values(rest, "ENV")?),
        "WORKDIR" => changes.workdir = Some(rest.to_owned()),
        "USER" => changes.user = Some(rest.to_owned()),
        "EXPOSE" => changes.exposed.extend(rest.split_whitespace().map(|p| if p.contains('/') { p.to_owned() } else { format!("{p}/tcp") })),
        "LABEL" => {
            for kv in key_values(rest, "LABEL")? {
                let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
                changes.labels.insert(k.to_owned(), v.to_owned());
            }
        }
        other => bail!("--change {text:?}: unsupported instruction {other:?} (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL)"),
    }
    Ok(())
}

/// `["a","b"]` (exec form) or `a b` (shell form, run by /bin/sh -c).
fn command_form(text: &str) -> Result<Vec<String>> {
    if text.starts_with('[') {
        return serde_json::from_str(text)
            .with_context(|| format!("{text:?} is not a JSON array of strings"));
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), text.to_owned()])
}

/// `K=V K2=V2`, or the old `K V` form.
fn key_values(text: &str, what: &str) -> Result<Vec<String>> {
    if !text.contains('=') {
        let (k, v) = text
            .split_once(char::is_whitespace)
            .with_context(|| format!("{what} {text:?}: expected KEY=VALUE"))?;
        return Ok(vec![format!("{k}={}", v.trim())]);
    }
    let pairs: Vec<String> = text
        .split_whitespace()
        .map(|kv| kv.replace('"', ""))
        .collect();
    if let Some(bad) = pairs
        .iter()
        .find(|kv| !kv.contains('=') || kv.starts_with('='))
    {
        bail!("{what} {bad:?}: expected KEY=VALUE");
    }
    Ok(pairs)
}

/// Imports the rootfs tarball `tar` as `name`.
pub fn import(
    store: &Store,
    tar: &Path,
    changes: &Changes,
    name: &Reference,
    added: &mut Added,
) -> Result<()> {
    let file =
        std::fs::File::open(tar).with_context(|| format!("unable to open {}", tar.display()))?;
    let (layer_digest, size) = store_unnamed(store, file, added)?;
    let diff_id = uncompressed_digest(store, &layer_digest)?;
    let config = ImageConfigurationBuilder::default()
        .architecture(crate::oci::arch())
        .os("linux")
        .created(now_rfc3339())
        .config(config_of(changes)?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![diff_id])
                .build()?,
        )
        .history(vec![HistoryBuilder::default()
            .created(now_rfc3339())
            .created_by("nsimage import")
            .build()?])
        .build()
        .context("unable to build the image config")?;
    let config_bytes = serde_json::to_vec(&config)?;
    let config_digest = added.bytes(store, &config_bytes)?;
    let layers = vec![descriptor(MediaType::ImageLayer, &layer_digest, size)?];
    let config_len = config_bytes.len() as u64;
    let digest = store_image(store, added, &config, &config_digest, config_len, layers)?;
    store.add_image(name, &digest)
}

fn config_of(changes: &Changes) -> Result<oci_spec::image::Config> {
    let mut env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()];
    env.retain(|e| !changes.env.iter().any(|c| c.starts_with("PATH=")) || !e.starts_with("PATH="));
    env.extend(changes.env.iter().cloned());
    let mut builder = ConfigBuilder::default();
    builder = builder.env(env);
    if let Some(cmd) = &changes.cmd {
        builder = builder.cmd(cmd.clone());
    }
    if let Some(entrypoint) = &changes.entrypoint {
        builder = builder.entrypoint(entrypoint.clone());
    }
    if let Some(workdir) = &changes.workdir {
        builder = builder.working_dir(workdir.clone());
    }
    if let Some(user) = &changes.user {
        builder = builder.user(user.clone());
    }
    if !changes.exposed.is_empty() {
        builder = builder.exposed_ports(changes.exposed.clone());
    }
    if !changes.labels.is_empty() {
        builder = builder.labels(changes.labels.clone());
    }
    builder.build().context("unable to build the image config")
}

/// Stores a blob whose digest is not known in advance: hashed while written to tmp, then
/// stored under the digest it turned out to have.
fn store_unnamed(store: &Store, reader: impl Read, added: &mut Added) -> Result<(String, u64)> {
    let tmp = store.temp_path("import")?;
    let result = (|| {
        let mut out = std::fs::File::create(&tmp)
            .with_context(|| format!("unable to create {}", tmp.display()))?;
        let mut hashing = Verified::new(reader);
        std::io::copy(&mut hashing, &mut out).context("unable to copy the tarball")?;
        let (digest, size) = hashing.finish();
        if !store.has_blob(&digest) {
            store.put_blob_verified(std::fs::File::open(&tmp)?, &digest)?;
            added.blobs.push(digest.clone());
        }
        Ok((digest, size))
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// The digest of a stored blob once decompressed (its diffID).
fn uncompressed_digest(store: &Store, digest: &str) -> Result<String> {
    let stream = crate::store::unpack::decompressed(store.open_blob(digest)?)?;
    let mut hashing = Verified::new(stream);
    std::io::copy(&mut hashing, &mut std::io::sink())
        .context("the tarball is not readable (gzip, zstd or plain tar)")?;
    Ok(hashing.finish().0)
}

/// The current time, RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_parse_as_dockerfile_instructions() {
        let mut c = Changes::default();
        for text in [
            "CMD [\"/bin/sh\",\"-c\",\"x\"]",
            "ENTRYPOINT /start",
            "ENV A=1 B=2",
            "ENV C 3",
            "WORKDIR /w",
            "USER www",
            "EXPOSE 80 53/udp",
            "LABEL k=v",
        ] {
            parse_change(&mut c, text).unwrap();
        }
        assert_eq!(c.cmd.unwrap(), ["/bin/sh", "-c", "x"]);
        assert_eq!(c.entrypoint.unwrap(), ["/bin/sh", "-c", "/start"]);
        assert_eq!(c.env, ["A=1", "B=2", "C=3"]);
        assert_eq!(
            (c.workdir.as_deref(), c.user.as_deref()),
            (Some("/w"), Some("www"))
        );
        assert_eq!(c.exposed, ["80/tcp", "53/udp"]);
        assert_eq!(c.labels.get("k").map(String::as_str), Some("v"));
        for bad in ["FROM x", "CMD", "CMD [\"x\"", "ENV =x", "ENV A"] {
            assert!(parse_change(&mut Changes::default(), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_date_is_rfc3339() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
    }
}
