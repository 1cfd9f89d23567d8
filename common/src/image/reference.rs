//! Image references as docker spells them: `nginx` is `docker.io/library/nginx:latest`,
//! `host:5000/a/b:tag`, `name@sha256:HEX`.

use std::fmt;

use anyhow::{bail, Result};

/// The registry a name without a domain belongs to.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The tag a reference without tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (with port), e.g. `docker.io`, `127.0.0.1:5000`, `localhost`.
    pub domain: String,
    /// Repository path, e.g. `library/nginx`.
    pub path: String,
    /// Tag; `None` only when a digest pins the reference.
    pub tag: Option<String>,
    /// `sha256:HEX` when the reference pins a manifest digest.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises `text` the way docker does (short names go to
    /// `docker.io/library/`, no tag means `latest` unless a digest is given).
    pub fn parse(text: &str) -> Result<Reference> {
        if text.is_empty() {
            bail!("empty image reference");
        }
        if text.len() > 255 + 64 + 8 {
            bail!("image reference {text:?} is too long");
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest)
                    .map_err(|e| anyhow::anyhow!("image reference {text:?}: {e}"))?;
                (rest, Some(digest.to_owned()))
            }
            None => (text, None),
        };
        // A tag follows the last ':' that comes after the last '/' (a ':' before it is a port).
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_owned())),
            None => (rest, None),
        };
        if let Some(tag) = &tag {
            if !valid_tag(tag) {
                bail!("image reference {text:?}: invalid tag {tag:?} (letters, digits, '_', '.', '-'; at most 128)");
            }
        }
        let (domain, path) = split_domain(name);
        if !valid_domain(&domain) {
            bail!("image reference {text:?}: invalid registry {domain:?}");
        }
        if path.is_empty() || !path.split('/').all(valid_component) {
            bail!("image reference {text:?}: invalid repository name {path:?} (lower-case letters, digits and separators '.', '_', '__', '-', '/')");
        }
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (tag, _) => tag,
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path`, the repository without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// Docker's familiar short form (`nginx:latest`, `localhost/bb:1`), for display.
    pub fn familiar(&self) -> String {
        let full = self.to_string();
        let short = full.strip_prefix("docker.io/").unwrap_or(&full);
        short.strip_prefix("library/").unwrap_or(short).to_owned()
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Splits the registry off as docker does: the first component is a domain when it holds a
/// '.' or ':' or is `localhost`; `index.docker.io` is `docker.io`; docker.io names without a
/// '/' live in `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
    };
    let domain = if domain == "index.docker.io" {
        DEFAULT_DOMAIN.to_owned()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    (domain, path)
}

/// Checks a `sha256:HEX` digest (the only algorithm the store keeps).
pub fn check_digest(digest: &str) -> Result<()> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(())
        }
        _ => bail!("invalid digest {digest:?} (expected sha256: and 64 lower-case hex digits)"),
    }
}

fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    first_ok && tag.len() <= 128 && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// One path component: `[a-z0-9]+` runs joined by `.`, `_`, `__` or `-`s.
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(text: &str) -> String {
        Reference::parse(text)
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn short_names_resolve_as_docker_does() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            norm("index.docker.io/nginx"),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(norm("localhost/bb:1"), "localhost/bb:1");
        assert_eq!(norm("127.0.0.1:5000/bb"), "127.0.0.1:5000/bb:latest");
        assert_eq!(norm("quay.io/a/b/c:v1.0-rc"), "quay.io/a/b/c:v1.0-rc");
    }

    #[test]
    fn digests_pin_without_a_default_tag() {
        let hex = "a".repeat(64);
        assert_eq!(
            norm(&format!("nginx@sha256:{hex}")),
            format!("docker.io/library/nginx@sha256:{hex}")
        );
        assert_eq!(
            norm(&format!("nginx:1@sha256:{hex}")),
            format!("docker.io/library/nginx:1@sha256:{hex}")
        );
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            "Nginx",
            "nginx:",
            "nginx:-x",
            "a//b",
            "nginx@sha256:abc",
            "nginx@md5:aa",
            "-a",
            "a b",
            "host:port/x",
            ":tag",
            "a/",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn familiar_form_drops_docker_defaults() {
        assert_eq!(
            Reference::parse("nginx").map(|r| r.familiar()).ok(),
            Some("nginx:latest".into())
        );
        assert_eq!(
            Reference::parse("localhost/bb:1")
                .map(|r| r.familiar())
                .ok(),
            Some("localhost/bb:1".into())
        );
    }
}
