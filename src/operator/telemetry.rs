//! Logging and the operator's metrics (prometheus-client, OpenMetrics text at `/metrics`).
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReviewLabel {
    /// `aws-auth` or `grants`.
    pub webhook: &'static str,
    pub allowed: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabel {
    pub category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabel {
    pub watch: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecreatedLabel {
    /// `restored` or `managed`.
    pub with: &'static str,
}

/// Sync outcomes, the `result` label of `syncs_total` and of the duration histogram.
pub const SYNC_OK: &str = "success";
pub const SYNC_CONFLICT: &str = "conflict";
pub const SYNC_ERROR: &str = "error";

/// Everything `/metrics` shows, and readiness.
#[derive(Debug)]
pub struct Metrics {
    /// Set once the caches are complete (followers) or a sync pass has succeeded (the leader).
    pub ready: AtomicBool,
    pub sync_duration: Family<ResultLabel, Histogram>,
    pub syncs: Family<ResultLabel, Counter>,
    pub writes: Counter,
    pub status_updates: Counter,
    pub events: Counter,
    pub conflicts: Counter,
    pub failures: Family<CategoryLabel, Counter>,
    pub grants: Family<ReasonLabel, Gauge>,
    pub removals_held: Gauge,
    /// aws-auth found deleted and recreated, by what it was recreated with.
    pub recreated: Family<RecreatedLabel, Counter>,
    pub leader: Gauge,
    pub last_success: Gauge<f64, AtomicU64>,
    pub watch_restarts: Family<WatchLabel, Counter>,
    pub reviews: Family<ReviewLabel, Counter>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            ready: AtomicBool::new(false),
            // 5 ms to about 20 s: a pass over a few grants up to one held up by a slow API server.
            sync_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 13))
            }),
            syncs: Family::default(),
            writes: Counter::default(),
            status_updates: Counter::default(),
            events: Counter::default(),
            conflicts: Counter::default(),
            failures: Family::default(),
            grants: Family::default(),
            removals_held: Gauge::default(),
            recreated: Family::default(),
            leader: Gauge::default(),
            last_success: Gauge::default(),
            watch_restarts: Family::default(),
            reviews: Family::default(),
            registry: Registry::with_prefix("aws_auth_operator"),
        };
        let r = &mut m.registry;
        r.register(
            "sync_duration_seconds",
            "Duration of sync passes (read, plan, write, statuses) by result",
            m.sync_duration.clone(),
        );
        r.register("syncs", "Sync passes by result", m.syncs.clone());
        r.register("writes", "Writes of aws-auth", m.writes.clone());
        r.register(
            "webhook_reviews",
            "Admission reviews the webhook answered, by webhook and whether allowed (the API server sends only what the match conditions select)",
            m.reviews.clone(),
        );
        r.register(
            "status_updates",
            "Grant statuses written",
            m.status_updates.clone(),
        );
        r.register("events", "Events recorded about grants", m.events.clone());
        r.register(
            "conflicts",
            "Writes refused because aws-auth changed since it was read (409)",
            m.conflicts.clone(),
        );
        r.register(
            "failures",
            "Failed sync passes by category",
            m.failures.clone(),
        );
        r.register(
            "grants",
            "Grants by Ready reason after the last sync",
            m.grants.clone(),
        );
        r.register(
            "removals_held",
            "Managed entries whose removal is held until confirmed or until the grants are back",
            m.removals_held.clone(),
        );
        r.register(
            "aws_auth_recreated",
            "aws-auth found deleted and recreated: restored (its last known version) or managed (no version known, or --on-aws-auth-deleted recreate-managed)",
            m.recreated.clone(),
        );
        r.register(
            "leader",
            "1 while this instance holds the leader Lease and may write, else 0",
            m.leader.clone(),
        );
        r.register(
            "last_successful_sync_timestamp_seconds",
            "Unix time of the last sync pass that succeeded",
            m.last_success.clone(),
        );
        r.register(
            "watch_restarts",
            "Watches started again (relisted) after an error or expiry, by watch",
            m.watch_restarts.clone(),
        );
        m
    }
}

impl Metrics {
    pub fn failed(&self, category: &'static str) {
        self.failures
            .get_or_create(&CategoryLabel { category })
            .inc();
    }

    /// One finished sync pass: its duration and result; success also stamps the time.
    pub fn synced(&self, result: &'static str, took: Duration) {
        let l = ResultLabel { result };
        self.syncs.get_or_create(&l).inc();
        self.sync_duration
            .get_or_create(&l)
            .observe(took.as_secs_f64());
        if result == SYNC_OK {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
        }
    }

    /// Replaces the grants-by-reason gauges, so reasons no grant has any more disappear.
    pub fn set_grants(&self, reasons: impl IntoIterator<Item = (&'static str, i64)>) {
        self.grants.clear();
        for (reason, n) in reasons {
            self.grants.get_or_create(&ReasonLabel { reason }).set(n);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry)
            .expect("writing to a String cannot fail");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_metric_with_its_type() {
        let m = Metrics::default();
        m.synced(SYNC_OK, Duration::from_millis(12));
        m.synced(SYNC_CONFLICT, Duration::from_millis(3));
        m.failed("kube");
        m.set_grants([("Applied", 3), ("Invalid", 1)]);
        m.set_grants([("Applied", 4)]);
        m.writes.inc();
        m.status_updates.inc();
        m.leader.set(1);
        let text = m.render();
        for line in [
            "# TYPE aws_auth_operator_sync_duration_seconds histogram",
            "aws_auth_operator_sync_duration_seconds_bucket{le=\"0.02\",result=\"success\"} 1",
            "aws_auth_operator_syncs_total{result=\"conflict\"} 1",
            "aws_auth_operator_failures_total{category=\"kube\"} 1",
            "aws_auth_operator_grants{reason=\"Applied\"} 4",
            "aws_auth_operator_writes_total 1",
            "aws_auth_operator_status_updates_total 1",
            "aws_auth_operator_events_total 0",
            "aws_auth_operator_leader 1",
            "# TYPE aws_auth_operator_last_successful_sync_timestamp_seconds gauge",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(
            !text.contains("reason=\"Invalid\""),
            "stale reason kept:\n{text}"
        );
    }
}
