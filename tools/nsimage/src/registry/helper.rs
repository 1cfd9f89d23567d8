//! Docker credential helpers (`credsStore` and `credHelpers` of an auth file): the program
//! `docker-credential-NAME` found in `PATH`, run as docker runs it: `get`, the server's
//! address on standard input, `{"ServerURL":...,"Username":...,"Secret":...}` back on
//! standard output; a helper that knows no credentials for the server says so and exits
//! non-zero ("credentials not found in native keychain").

use std::io::Write as _;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _, Result};

use super::auth::{is_docker_hub, Credentials};

/// What a helper answers to `get`.
#[derive(serde::Deserialize)]
struct Reply {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Asks helper `name` for the credentials of `registry` (an API host); `None` when it has
/// none. Nothing of what it prints is repeated in an error: it may hold a secret.
pub fn get(name: &str, registry: &str) -> Result<Option<Credentials>> {
    if name.is_empty() || name.contains('/') || name.contains('\0') {
        bail!("invalid credential helper name {name:?}");
    }
    let program = format!("docker-credential-{name}");
    // Docker Hub's entries are kept under its old index address, as `docker login` stores it.
    let server = if is_docker_hub(registry) {
        "https://index.docker.io/v1/"
    } else {
        registry
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("unable to run the credential helper {program}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading closes the pipe: its exit status tells.
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("unable to run the credential helper {program}"))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stdout).to_lowercase();
        if said.contains("credentials not found") {
            return Ok(None);
        }
        bail!(
            "the credential helper {program} failed ({}) for {server}",
            out.status
        );
    }
    let reply: Reply = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("the credential helper {program} answered no credentials JSON"))?;
    if reply.username == "<token>" {
        bail!("the credential helper {program} gave an identity token for {server}, which nsimage does not use; log in with a user name and password");
    }
    if reply.username.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        user: reply.username,
        password: reply.secret,
    }))
}
