//! Logging, metrics and the health endpoints: `/livez`, `/readyz`, `/metrics` on one port.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{debug, warn};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// The operator's counters and gauges, rendered in the Prometheus text format.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Set once the caches are complete and a sync pass has succeeded.
    pub ready: AtomicBool,
    pub syncs: AtomicU64,
    pub writes: AtomicU64,
    pub conflicts: AtomicU64,
    pub failures: Mutex<BTreeMap<&'static str, u64>>,
    pub grants: Mutex<BTreeMap<&'static str, u64>>,
    /// Managed entries whose removal the breaker holds back now.
    pub removals_held: AtomicU64,
}

impl Metrics {
    pub fn failed(&self, category: &'static str) {
        *self
            .failures
            .lock()
            .expect("metrics lock")
            .entry(category)
            .or_default() += 1;
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let counter = |s: &mut String, name: &str, help: &str, v: u64| {
            s.push_str(&format!("# HELP aws_auth_operator_{name} {help}\n# TYPE aws_auth_operator_{name} counter\naws_auth_operator_{name} {v}\n"));
        };
        counter(
            &mut s,
            "syncs_total",
            "Sync passes completed.",
            self.syncs.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "writes_total",
            "Writes of aws-auth.",
            self.writes.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "conflicts_total",
            "Writes refused because aws-auth changed since it was read (409).",
            self.conflicts.load(Ordering::Relaxed),
        );
        s.push_str("# HELP aws_auth_operator_failures_total Failed sync passes by category.\n# TYPE aws_auth_operator_failures_total counter\n");
        for (k, v) in self.failures.lock().expect("metrics lock").iter() {
            s.push_str(&format!(
                "aws_auth_operator_failures_total{{category=\"{k}\"}} {v}\n"
            ));
        }
        s.push_str(&format!(
            "# HELP aws_auth_operator_removals_held Managed entries whose removal is held until confirmed or until the grants are back.\n# TYPE aws_auth_operator_removals_held gauge\naws_auth_operator_removals_held {}\n",
            self.removals_held.load(Ordering::Relaxed)
        ));
        s.push_str("# HELP aws_auth_operator_grants Grants by Ready reason after the last sync.\n# TYPE aws_auth_operator_grants gauge\n");
        for (k, v) in self.grants.lock().expect("metrics lock").iter() {
            s.push_str(&format!("aws_auth_operator_grants{{reason=\"{k}\"}} {v}\n"));
        }
        s
    }
}

/// Serves the health endpoints until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: std::sync::Arc<Metrics>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            // Read the whole request head: closing with unread bytes would reset the connection.
            let mut buf = Vec::with_capacity(512);
            let mut chunk = [0u8; 512];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                match conn.read(&mut chunk).await {
                    Ok(0) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) => return debug!(error = %e, "health connection"),
                }
            }
            let request = String::from_utf8_lossy(&buf);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/livez" => ("200 OK", "ok\n".to_string()),
                "/readyz" if metrics.ready.load(Ordering::Relaxed) => {
                    ("200 OK", "ok\n".to_string())
                }
                "/readyz" => ("503 Service Unavailable", "not synced yet\n".to_string()),
                "/metrics" => ("200 OK", metrics.render()),
                _ => ("404 Not Found", "not found\n".to_string()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Err(e) = conn.write_all(response.as_bytes()).await {
                warn!(error = %e, "health response");
            }
        });
    }
}

/// Binds the health port; fails with the address in the message.
pub async fn bind(addr: SocketAddr) -> crate::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| crate::Error::Usage {
            flag: "--health-addr",
            message: format!("cannot listen on {addr}: {e}"),
        })
}
