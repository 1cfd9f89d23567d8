//! Pulling from registries that speak the OCI distribution API: the client ([`client`]),
//! credentials and auth challenges ([`auth`]), docker credential helpers ([`helper`]), manifest kinds and platform choice
//! ([`manifest`]), and the size every blob is held to while it streams ([`sized`]).

pub mod auth;
pub mod client;
pub mod helper;
pub mod manifest;
pub mod sized;

pub use client::{Client, Options};

/// What a registry refused, for the caller to word with the image's name and a hint.
#[derive(Debug)]
pub enum Refused {
    /// 401/403 after authenticating as asked (or with nothing to authenticate with).
    Unauthorized {
        /// The registry's API host.
        registry: String,
        /// The repository asked for.
        repository: String,
        /// Whether credentials were sent.
        had_creds: bool,
    },
    /// 404: the manifest, blob or repository is unknown.
    NotFound {
        /// The registry's API host.
        registry: String,
        /// The repository asked for.
        repository: String,
        /// `manifest TAG`, `blob DIGEST`.
        what: String,
        /// The registry's error code (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`, `BLOB_UNKNOWN`).
        code: Option<String>,
    },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Unauthorized {
                registry,
                repository,
                had_creds: true,
            } => write!(f, "unauthorized: {registry} refused the credentials for {repository}"),
            Refused::Unauthorized {
                registry,
                repository,
                had_creds: false,
            } => write!(
                f,
                "unauthorized: {registry} requires authentication for {repository} (or it does not exist)"
            ),
            Refused::NotFound {
                registry,
                repository,
                what,
                code,
            } => match code.as_deref() {
                Some("NAME_UNKNOWN") => {
                    write!(f, "repository {repository} not found on {registry}")
                }
                Some(code) => write!(
                    f,
                    "{what} not found in {registry}/{repository} ({})",
                    code.to_lowercase().replace('_', " ")
                ),
                None => write!(f, "{what} not found in {registry}/{repository}"),
            },
        }
    }
}

impl std::error::Error for Refused {}
