//! Manifests as a registry serves them: OCI and Docker v2 schema 2 image manifests, OCI image
//! indexes and Docker manifest lists, and the choice of one platform out of an index.

use anyhow::{bail, Context as _, Result};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker v2 schema 2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The `Accept` header of a manifest request: every kind this client reads, never schema 1
/// (a registry then converts or refuses instead of sending a format we cannot verify).
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A manifest fetched from a registry, parsed.
#[derive(Debug)]
pub enum Fetched {
    /// An image index or manifest list: one manifest per platform.
    Index(Box<ImageIndex>),
    /// One image: its config and layers.
    Image(Box<ImageManifest>),
}

/// Parses a manifest body. The kind comes from the body's own `mediaType` when present, else
/// from the `Content-Type` the registry sent, else from its shape (`manifests` or `layers`).
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Fetched> {
    let json: serde_json::Value =
        serde_json::from_slice(body).context("the manifest is not JSON")?;
    if json.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
        bail!("the image has a schema 1 manifest, which is not supported (re-push it with a current tool)");
    }
    let declared = json.get("mediaType").and_then(|m| m.as_str());
    let content_type = content_type.map(|c| c.split(';').next().unwrap_or(c).trim());
    let kind = match declared.or(content_type) {
        Some(OCI_INDEX | DOCKER_LIST) => Kind::Index,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => Kind::Image,
        _ if json.get("manifests").is_some() => Kind::Index,
        _ if json.get("layers").is_some() => Kind::Image,
        Some(other) => bail!("unsupported manifest type {other}"),
        None => bail!("the registry sent a manifest of unknown type"),
    };
    Ok(match kind {
        Kind::Index => Fetched::Index(serde_json::from_value(json).context("invalid image index")?),
        Kind::Image => {
            Fetched::Image(serde_json::from_value(json).context("invalid image manifest")?)
        }
    })
}

enum Kind {
    Index,
    Image,
}

/// A platform as `--platform` names it: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, ...
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub arch: String,
    /// `v7`, `v8`, ... when given.
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(text: &str) -> Result<Self> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid) {
            bail!("expected OS/ARCH[/VARIANT], e.g. linux/arm64");
        }
        Ok(Self {
            os: parts[0].to_owned(),
            arch: parts[1].to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
        })
    }

    /// The platform this program runs on, in OCI's names (docker's default choice).
    pub fn host() -> Self {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Self {
            os: "linux".into(),
            arch: arch.into(),
            variant: variant.map(Into::into),
        }
    }

    /// Whether an index entry's platform is this one. A variant is compared only when asked
    /// for; `arm64` without a variant also matches an entry marked `v8` (its only variant).
    fn matches(&self, d: &Descriptor) -> bool {
        let Some(p) = d.platform() else {
            return false;
        };
        if p.os().to_string() != self.os || p.architecture().to_string() != self.arch {
            return false;
        }
        match (&self.variant, p.variant()) {
            (None, _) => true,
            (Some(want), Some(have)) => want == have,
            (Some(want), None) => self.arch == "arm64" && want == "v8",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Picks the manifest for `platform` out of an index. Attestation manifests (buildkit's
/// `unknown/unknown` entries) never match since their platform is not a real one.
pub fn choose<'a>(index: &'a ImageIndex, platform: &Platform) -> Result<&'a Descriptor> {
    if let Some(found) = index.manifests().iter().find(|d| platform.matches(d)) {
        return Ok(found);
    }
    let available: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .filter(|s| !s.starts_with("unknown/"))
        .collect();
    bail!(
        "no image for platform {platform} (available: {})",
        if available.is_empty() {
            "none".to_owned()
        } else {
            available.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
      {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1,"platform":{"os":"linux","architecture":"amd64"}},
      {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":1,"platform":{"os":"linux","architecture":"arm","variant":"v7"}},
      {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":1,"platform":{"os":"unknown","architecture":"unknown"}}]}"#;

    fn index() -> ImageIndex {
        match parse(INDEX.as_bytes(), None).unwrap() {
            Fetched::Index(i) => *i,
            Fetched::Image(_) => panic!("parsed an index as an image"),
        }
    }

    #[test]
    fn platform_choice() {
        let i = index();
        let pick =
            |p: &str| choose(&i, &Platform::parse(p).unwrap()).map(|d| d.digest().to_string());
        assert!(pick("linux/amd64").unwrap().contains("1111"));
        assert!(pick("linux/arm").unwrap().contains("2222"));
        assert!(pick("linux/arm/v7").unwrap().contains("2222"));
        let err = pick("linux/arm/v6").unwrap_err().to_string();
        assert_eq!(
            err,
            "no image for platform linux/arm/v6 (available: linux/amd64, linux/arm/v7)"
        );
    }

    #[test]
    fn platform_syntax() {
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux/").is_err());
        assert!(Platform::parse("linux/arm/v7/x").is_err());
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
    }

    #[test]
    fn kinds() {
        let docker = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
          "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:4444444444444444444444444444444444444444444444444444444444444444"},
          "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":3,"digest":"sha256:5555555555555555555555555555555555555555555555555555555555555555"}]}"#;
        assert!(matches!(
            parse(docker.as_bytes(), None).unwrap(),
            Fetched::Image(_)
        ));
        let bare = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            parse(bare.as_bytes(), None).unwrap(),
            Fetched::Index(_)
        ));
        let v1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert!(parse(v1.as_bytes(), None)
            .unwrap_err()
            .to_string()
            .contains("schema 1"));
        let bad_digest = docker.replace("sha256:5555", "sha256:../5");
        assert!(parse(bad_digest.as_bytes(), None).is_err());
    }
}
