//! aws-auth-operator: declarative, lockout-proof access to Amazon EKS through `kube-system/aws-auth`.
//!
//! Dependencies flow one way: `commands` and `operator` call into `engine` (pure: aws-auth's text
//! and grants in, new text and verdicts out); `api` holds the resource types all three share.
pub mod api;
pub mod commands;
pub mod eks;
pub mod engine;
pub mod operator;

use std::path::PathBuf;

/// Errors of the commands and the controller. Invalid grants are not errors: they are verdicts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("invalid argument {flag}: {message}")]
    Usage { flag: &'static str, message: String },
    #[error(transparent)]
    Render(#[from] engine::authmap::render::RenderMismatch),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("keeping aws-auth's history (nothing is written without it): {0}")]
    History(#[source] kube::Error),
    #[error("AWS {operation}: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
    /// Nothing is written by choice until a person acts.
    #[error("{0}")]
    Waiting(String),
}

impl Error {
    /// A short, stable category for metrics and events.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Manifest { .. } => "manifest",
            Error::Usage { .. } => "usage",
            Error::Render(_) => "render_mismatch",
            Error::Kube(_) => "kube",
            Error::History(_) => "history",
            Error::Waiting(_) => "waiting",
            Error::Aws { .. } => "aws",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A client from the in-cluster config or the kubeconfig (`KUBECONFIG`, `~/.kube/config`).
pub async fn client() -> Result<kube::Client> {
    install_tls_provider();
    Ok(kube::Client::try_default().await?)
}

/// kube and the AWS SDK link both ring and aws-lc-rs; rustls needs the process to pick one.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
