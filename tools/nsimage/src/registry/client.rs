//! A blocking client of the OCI distribution API for one repository: the `/v2/` ping that
//! chooses the scheme and learns the auth challenge, manifests, and blob streams. Every
//! request that gets a 401 is authenticated as the challenge asks and retried once.

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use ureq::http::{Response, StatusCode};
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::{Agent, Body};

use super::auth::{self, Challenge, Credentials};
use super::Refused;

/// The largest manifest or token response read (a manifest is a few KiB; this bounds what a
/// hostile registry can make us hold in memory).
const SMALL_BODY_LIMIT: u64 = 4 << 20;

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--creds USER:PASS`.
    pub creds: Option<Credentials>,
    /// `--authfile FILE`.
    pub authfile: Option<std::path::PathBuf>,
    /// `--tls-verify=false`: accept any certificate, and plain HTTP.
    pub insecure: bool,
    /// `--cert-dir DIR`: extra CA certificates (`*.crt`) trusted for this registry.
    pub cert_dir: Option<std::path::PathBuf>,
}

/// One repository on one registry, authenticated on demand. Shared between the threads that
/// fetch layers (the token is shared too).
#[derive(Debug, Clone)]
pub struct Client {
    agent: Agent,
    base: String,
    /// The registry's API host (`registry-1.docker.io`, `127.0.0.1:5000`), for messages.
    pub registry: String,
    /// The repository (`library/busybox`).
    pub repository: String,
    creds: Option<Credentials>,
    authorization: Arc<Mutex<Option<String>>>,
}

impl Client {
    /// Pings `registry`'s `/v2/` over HTTPS (or, with `insecure`, HTTPS without verification
    /// and then plain HTTP) and authenticates for pulling `repository` if it asks.
    pub fn connect(registry: &str, repository: &str, opts: &Options) -> Result<Self> {
        let creds = match &opts.creds {
            Some(c) => Some(c.clone()),
            None => auth::lookup(opts.authfile.as_deref(), registry, repository)?,
        };
        let agent = agent(opts)?;
        let mut client = Self {
            agent,
            base: format!("https://{registry}"),
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            creds,
            authorization: Arc::default(),
        };
        let ping = match client.send("/v2/", None) {
            Err(e) if opts.insecure && is_transport(&e) => {
                client.base = format!("http://{registry}");
                client.send("/v2/", None)
            }
            other => other,
        };
        let ping = ping.map_err(|e| client.unreachable(&e))?;
        if ping.status() == StatusCode::UNAUTHORIZED {
            // Without credentials a Basic challenge cannot be answered yet; the repository may
            // still be readable anonymously, so its own requests decide.
            match client.authenticate(&ping) {
                Err(e) if e.downcast_ref::<Refused>().is_some() => {}
                other => other?,
            }
        }
        Ok(client)
    }

    /// Fetches a manifest by tag or digest: its bytes and `Content-Type`.
    pub fn manifest(&self, reference: &str) -> Result<(Vec<u8>, Option<String>)> {
        let path = format!("/v2/{}/manifests/{reference}", self.repository);
        let mut response = self.get(&path, Some(super::manifest::ACCEPT))?;
        let what = if reference.contains(':') {
            format!("manifest {reference}")
        } else {
            format!("tag {reference}")
        };
        self.expect_ok(&mut response, &what)?;
        let content_type = header(&response, "content-type");
        let body = response
            .body_mut()
            .with_config()
            .limit(SMALL_BODY_LIMIT)
            .read_to_vec()
            .with_context(|| {
                format!("unable to read manifest {reference} from {}", self.registry)
            })?;
        Ok((body, content_type))
    }

    /// Opens a blob's byte stream, and its length when the registry says it.
    pub fn blob(&self, digest: &str) -> Result<(Option<u64>, impl Read + Send + 'static)> {
        let path = format!("/v2/{}/blobs/{digest}", self.repository);
        let mut response = self.get(&path, None)?;
        self.expect_ok(&mut response, &format!("blob {digest}"))?;
        let length = response.body().content_length();
        Ok((length, response.into_body().into_reader()))
    }

    /// GET with the current authorization; a 401 authenticates as challenged and retries.
    fn get(&self, path: &str, accept: Option<&str>) -> Result<Response<Body>> {
        let first = self.send(path, accept).map_err(|e| self.unreachable(&e))?;
        if first.status() != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        self.authenticate(&first)?;
        let second = self.send(path, accept).map_err(|e| self.unreachable(&e))?;
        if second.status() == StatusCode::UNAUTHORIZED {
            return Err(self.unauthorized().into());
        }
        Ok(second)
    }

    fn send(&self, path: &str, accept: Option<&str>) -> Result<Response<Body>, ureq::Error> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        let authorization = lock(&self.authorization).clone();
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        request.call()
    }

    /// Answers a 401's `WWW-Authenticate`: Basic takes the credentials as they are, Bearer a
    /// token fetched from its realm.
    fn authenticate(&self, response: &Response<Body>) -> Result<()> {
        let Some(header) = header(response, "www-authenticate") else {
            return Err(self.unauthorized().into());
        };
        let challenge = auth::parse_challenge(&header)
            .with_context(|| format!("registry {} asks for authentication", self.registry))?;
        let value = match challenge {
            Challenge::Basic => match &self.creds {
                Some(creds) => creds.basic_header(),
                None => return Err(self.unauthorized().into()),
            },
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let scope = scope.unwrap_or_else(|| format!("repository:{}:pull", self.repository));
                format!("Bearer {}", self.token(&realm, service.as_deref(), &scope)?)
            }
        };
        *lock(&self.authorization) = Some(value);
        Ok(())
    }

    /// Fetches a bearer token (docker's token protocol: GET REALM?service=...&scope=...).
    fn token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String> {
        let mut request = self.agent.get(realm).query("scope", scope);
        if let Some(service) = service {
            request = request.query("service", service);
        }
        if let Some(creds) = &self.creds {
            request = request.header("Authorization", creds.basic_header());
        }
        let mut response = request
            .call()
            .map_err(|e| anyhow!("unable to reach the token server {realm}: {}", describe(&e)))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized().into());
        }
        if !status.is_success() {
            return Err(anyhow!("the token server {realm} answered {status}"));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(SMALL_BODY_LIMIT)
            .read_to_vec()
            .with_context(|| format!("unable to read the token server {realm}'s answer"))?;
        let json: serde_json::Value = serde_json::from_slice(&body)
            .with_context(|| format!("the token server {realm} sent no JSON"))?;
        json.get("token")
            .or_else(|| json.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the token server {realm} sent no token"))
    }

    /// Turns a non-2xx answer into its error: 404 with the registry's error code, 401/403 as
    /// unauthorized, anything else with its status.
    fn expect_ok(&self, response: &mut Response<Body>, what: &str) -> Result<()> {
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized().into());
        }
        let code = error_code(response);
        if status == StatusCode::NOT_FOUND {
            return Err(Refused::NotFound {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
                what: what.to_owned(),
                code,
            }
            .into());
        }
        Err(anyhow!(
            "registry {} answered {status} for {what}{}",
            self.registry,
            code.map(|c| format!(" ({c})")).unwrap_or_default()
        ))
    }

    fn unauthorized(&self) -> Refused {
        Refused::Unauthorized {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            had_creds: self.creds.is_some(),
        }
    }

    fn unreachable(&self, e: &ureq::Error) -> anyhow::Error {
        let advice = if self.base.starts_with("https:") && !is_unreachable(e) {
            " (a plain-HTTP registry needs --tls-verify=false; a private CA, --cert-dir)"
        } else {
            ""
        };
        anyhow!(
            "unable to reach registry {}: {}{advice}",
            self.registry,
            describe(e)
        )
    }
}

/// The agent: no transparent decompression (a blob's bytes must be the digested ones), no
/// status-as-error (401 and 404 are answers we read), bounded connect and read waits.
fn agent(opts: &Options) -> Result<Agent> {
    let mut tls = TlsConfig::builder().disable_verification(opts.insecure);
    if let Some(dir) = &opts.cert_dir {
        tls = tls.root_certs(RootCerts::new_with_certs(&certs_in(dir)?));
    }
    let config = Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(concat!("nsimage/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .tls_config(tls.build())
        .build();
    Ok(config.new_agent())
}

/// The `*.crt` files of a `--cert-dir`, as docker's and podman's certs.d directories hold them.
fn certs_in(dir: &Path) -> Result<Vec<Certificate<'static>>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("unable to read --cert-dir {}", dir.display()))?;
    let mut certs = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "crt") {
            let pem = std::fs::read(&path)
                .with_context(|| format!("unable to read {}", path.display()))?;
            let parsed = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c.to_owned())),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("invalid certificate file {}", path.display()))?;
            certs.extend(parsed);
        }
    }
    if certs.is_empty() {
        anyhow::bail!("no certificate (*.crt) in --cert-dir {}", dir.display());
    }
    Ok(certs)
}

/// Whether a failure happened below HTTP (connect, TLS), where a plain-HTTP retry may help.
fn is_transport(e: &ureq::Error) -> bool {
    !matches!(
        e,
        ureq::Error::StatusCode(_) | ureq::Error::BodyExceedsLimit(_)
    )
}

/// Whether nothing answered at all (so TLS is not the problem).
fn is_unreachable(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut
        ),
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_) => true,
        _ => false,
    }
}

/// A transport error in words: errno as plain text, TLS failures with their reason.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::TimedOut => "connection timed out".into(),
            _ => io.to_string(),
        },
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        other => other.to_string(),
    }
}

/// The first error code of a registry's JSON error body (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`).
fn error_code(response: &mut Response<Body>) -> Option<String> {
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_vec()
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&body).ok()?;
    json.get("errors")?
        .get(0)?
        .get("code")?
        .as_str()
        .map(str::to_owned)
}

fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
