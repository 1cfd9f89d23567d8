//! Registry credentials and the challenges a registry answers 401 with.
//!
//! Credentials are looked up as podman and docker do: `--creds USER:PASS`, then `--authfile`
//! (or `$REGISTRY_AUTH_FILE`), then `$XDG_RUNTIME_DIR/containers/auth.json`, then
//! `~/.docker/config.json`. In each file the registry's `credHelpers` entry comes first,
//! then its `auths` entry, then the file's `credsStore` (the helpers: [`super::helper`]). A challenge is either `Basic` (send the credentials) or `Bearer`
//! (fetch a token from the realm it names, with the credentials if there are any).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    // Never print a password, not even in a debug trace.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}:***)", self.user)
    }
}

impl Credentials {
    /// Parses `USER:PASS` as given to `--creds` (the password may contain colons). The error
    /// never repeats the text: it holds a password.
    pub fn parse(creds: &str) -> Result<Self> {
        match creds.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Self {
                user: user.to_owned(),
                password: password.to_owned(),
            }),
            _ => bail!("expected USER:PASSWORD"),
        }
    }

    /// The value of an `Authorization: Basic` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// Decodes the `auth` field of an auth file entry (base64 of `USER:PASS`).
    fn from_auth_field(auth: &str) -> Result<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .context("the auth field is not base64")?;
        let text = String::from_utf8(bytes).context("the auth field is not UTF-8")?;
        Self::parse(&text).context("the auth field is not USER:PASSWORD")
    }
}

/// The auth files to look in, most specific first. `authfile` is `--authfile`.
pub fn auth_files(authfile: Option<&Path>) -> Vec<PathBuf> {
    if let Some(file) = authfile {
        return vec![file.to_path_buf()];
    }
    let mut files = Vec::new();
    if let Some(file) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        files.push(PathBuf::from(file));
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        files.push(Path::new(&dir).join("containers/auth.json"));
    }
    let docker_config = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty());
    if let Some(dir) = docker_config {
        files.push(Path::new(&dir).join("config.json"));
    } else if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        files.push(Path::new(&home).join(".docker/config.json"));
    }
    files
}

/// Finds credentials for `registry`/`repository` in the auth files. A missing file is
/// skipped; an unreadable or malformed one given with `--authfile` is an error, the others
/// are skipped with a warning (a broken docker config must not block an anonymous pull).
pub fn lookup(
    authfile: Option<&Path>,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>> {
    for file in auth_files(authfile) {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && authfile.is_none() => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("unable to read {}", file.display()));
            }
        };
        match find_in(&text, registry, repository) {
            Ok(Some(creds)) => return Ok(Some(creds)),
            Ok(None) => {}
            Err(e) if authfile.is_some() => {
                return Err(e.context(format!("invalid auth file {}", file.display())));
            }
            Err(e) => {
                common::report::warning(format!("ignoring auth file {}: {e:#}", file.display()))
            }
        }
    }
    Ok(None)
}

/// The credentials one auth file gives `registry`: from its `credHelpers` helper for the
/// registry, else its `auths` entry, else its `credsStore` helper (docker keeps only empty
/// markers in `auths` when a store holds the credentials).
fn find_in(text: &str, registry: &str, repository: &str) -> Result<Option<Credentials>> {
    let json: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    let helpers = json.get("credHelpers").and_then(|h| h.as_object());
    let helper = helpers.and_then(|helpers| {
        helpers.iter().find_map(|(key, name)| {
            let key = normalize_key(key);
            let hit = key == registry || (is_docker_hub(registry) && is_docker_hub(&key));
            hit.then_some(name)
        })
    });
    if let Some(name) = helper {
        let name = name
            .as_str()
            .context("a credHelpers entry is not a string")?;
        return super::helper::get(name, registry);
    }
    if let Some(creds) = from_auths(&json, registry, repository)? {
        return Ok(Some(creds));
    }
    match json.get("credsStore") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(store) => match store.as_str() {
            Some("") => Ok(None),
            Some(name) => super::helper::get(name, registry),
            None => bail!("credsStore is not a string"),
        },
    }
}

/// The `auths` entry that matches best: the longest key among `registry` and
/// `registry/namespace...` prefixes of `repository` (podman's rule), keys compared without
/// scheme. Docker Hub's entry may be spelled `https://index.docker.io/v1/`.
fn from_auths(
    json: &serde_json::Value,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>> {
    let Some(auths) = json.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let full = format!("{registry}/{repository}");
    let mut best: Option<(usize, &serde_json::Value)> = None;
    for (key, entry) in auths {
        let key = normalize_key(key);
        let hit = key == registry
            || (is_docker_hub(registry) && is_docker_hub(&key))
            || (full.starts_with(&key) && full.as_bytes().get(key.len()) == Some(&b'/'))
            || full == key;
        if hit && best.is_none_or(|(len, _)| key.len() > len) {
            best = Some((key.len(), entry));
        }
    }
    let Some((_, entry)) = best else {
        return Ok(None);
    };
    match entry.get("auth").and_then(|a| a.as_str()) {
        Some(auth) if !auth.is_empty() => Credentials::from_auth_field(auth).map(Some),
        _ => Ok(None),
    }
}

/// An auth file key without scheme, trailing slash or Docker Hub's `/v1/` path.
fn normalize_key(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let key = key.trim_end_matches('/');
    let key = key.strip_suffix("/v1").unwrap_or(key);
    key.to_owned()
}

/// Docker Hub goes by several names in auth files.
pub fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    )
}

/// What a registry asked for in its `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Send `Authorization: Basic` with the credentials.
    Basic,
    /// Get a token from `realm` for `service` and `scope`, then send it as a bearer token.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to pass on, if the registry named one.
        service: Option<String>,
        /// The `scope` the registry asked for, if any.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header (`Bearer realm="...",service="...",scope="..."`).
pub fn parse_challenge(header: &str) -> Result<Challenge> {
    let header = header.trim();
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Ok(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        bail!("unsupported authentication scheme {scheme:?}");
    }
    let params = parse_params(params);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let Some(realm) = get("realm") else {
        bail!("the registry's bearer challenge names no realm");
    };
    Ok(Challenge::Bearer {
        realm,
        service: get("service"),
        scope: get("scope"),
    })
}

/// Splits `k="v",k2=v2` into pairs; quoted values may hold commas and `\"`.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        out.push((key.trim().to_owned(), value.trim().to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_quoted_commas() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#).unwrap(),
            Challenge::Basic
        );
        assert!(parse_challenge("Negotiate abc").is_err());
        assert!(parse_challenge("Bearer service=x").is_err());
    }

    #[test]
    fn creds_need_a_user_and_a_colon() {
        let c = Credentials::parse("me:pa:ss").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("me", "pa:ss"));
        assert!(Credentials::parse("nocolon").is_err());
        assert!(Credentials::parse(":pass").is_err());
        assert!(!format!("{c:?}").contains("pa:ss"));
    }

    #[test]
    fn auth_file_longest_key_wins_and_hub_aliases_match() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let text = format!(
            r#"{{"auths":{{"reg.example:5000":{{"auth":"{}"}},"reg.example:5000/team":{{"auth":"{}"}},"https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#,
            enc("all:1"),
            enc("team:2"),
            enc("hub:3")
        );
        let user = |reg: &str, repo: &str| find_in(&text, reg, repo).unwrap().map(|c| c.user);
        assert_eq!(
            user("reg.example:5000", "team/app").as_deref(),
            Some("team")
        );
        assert_eq!(
            user("reg.example:5000", "teamx/app").as_deref(),
            Some("all")
        );
        assert_eq!(
            user("registry-1.docker.io", "library/busybox").as_deref(),
            Some("hub")
        );
        assert_eq!(user("other.example", "x"), None);
        assert!(find_in(r#"{"auths":{"a":{"auth":"!!"}}}"#, "a", "x").is_err());
    }
}
