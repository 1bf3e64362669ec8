//! aws-auth-operator: declarative, lockout-proof access to Amazon EKS through `kube-system/aws-auth`.
pub mod api;
pub mod authmap;
pub mod controller;
pub mod doctor;
pub mod glob;
pub mod history;
pub mod import;
pub mod manifests;
pub mod plan;
pub mod render_cmd;
pub mod telemetry;
pub mod validate;
pub mod webhook;
pub mod whoami;

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
    Render(#[from] authmap::render::RenderMismatch),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("keeping aws-auth's history (nothing is written without it): {0}")]
    History(#[source] kube::Error),
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
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// kube and the AWS SDK link both ring and aws-lc-rs; rustls needs the process to pick one.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
