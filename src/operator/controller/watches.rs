//! The watches a run keeps (grants; aws-auth's metadata; with access entries, their record's) and what they feed: the grant
//! cache, aws-auth's last seen resourceVersion, BreakGlass notes, and the change signal that
//! starts a pass.
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use tokio::sync::mpsc;
use tracing::warn;

use super::debounce::Changes;
use super::{Context, RunArgs, break_glass, cache};
use crate::operator::telemetry::{Metrics, WatchLabel};

/// What a watch says: `Ok(true)` a removal (it waits for the burst to settle), `Ok(false)` any
/// other change.
type Signals = BoxStream<'static, Result<bool, watcher::Error>>;

/// Starts both watches; the task turns their events into change signals.
pub(super) fn spawn(
    ctx: &Context,
    args: &RunArgs,
    client: Client,
    changes: Arc<Changes>,
    glass: mpsc::Sender<break_glass::Note>,
) -> tokio::task::JoinHandle<()> {
    let grants = grant_events(ctx, args, glass.clone());
    let aws_auth = aws_auth_events(ctx, args, client.clone(), glass);
    // The access-entry record carries a person's confirmation of a held deletion.
    let record = match &ctx.backend.eks {
        Some(_) => record_events(args, client),
        None => futures::stream::empty().boxed(),
    };
    let metrics = ctx.metrics.clone();
    tokio::spawn(async move {
        let mut all = futures::stream::select_all([grants, aws_auth, record]);
        while let Some(ev) = all.next().await {
            match ev {
                Ok(false) => changes.note(),
                Ok(true) => changes.note_removal(),
                Err(e) => {
                    // Not ready while the API server cannot be reached (until a relist completes).
                    metrics.ready.store(false, Ordering::Relaxed);
                    warn!(error = %e, "watch error; retrying with backoff")
                }
            }
        }
    })
}

/// The grants (those `--grant-selector` selects), kept in the cache with only what the plan,
/// the statuses and their events read (see cache.rs).
fn grant_events(ctx: &Context, args: &RunArgs, glass: mpsc::Sender<break_glass::Note>) -> Signals {
    let mut config = watcher::Config::default();
    if let Some(sel) = &args.grant_selector {
        config = config.labels(sel);
    }
    let mut writer = cache::Writer::new(ctx.grant_cache.clone());
    let mut seen = break_glass::Seen::default();
    watcher(ctx.grants.clone(), config)
        .backoff(WatchBackoff::default())
        .inspect_ok(relists(ctx.metrics.clone(), "grants"))
        .inspect_ok(move |ev| match ev {
            watcher::Event::Apply(g) | watcher::Event::InitApply(g) => {
                let initial = matches!(ev, watcher::Event::InitApply(_));
                if let Some(note) = seen.observe("IamAccessGrant", &g.metadata, initial) {
                    break_glass::queue(&glass, g.object_ref(&()), note);
                }
            }
            watcher::Event::Delete(g) => seen.forget(&g.metadata),
            _ => {}
        })
        .try_filter_map(move |ev| {
            // A deletion is a removal: it waits for the burst to settle (see Debounce::settle).
            let removal = matches!(ev, watcher::Event::Delete(_));
            futures::future::ready(Ok(writer.apply(ev).then_some(removal)))
        })
        .boxed()
}

/// aws-auth's metadata only: a change signal is all a pass needs (it GETs aws-auth itself), so
/// an aws-auth of 700 KB is not sent and decoded once more for every write.
fn aws_auth_events(
    ctx: &Context,
    args: &RunArgs,
    client: Client,
    glass: mpsc::Sender<break_glass::Note>,
) -> Signals {
    let config =
        watcher::Config::default().fields(&format!("metadata.name={}", args.aws_auth_name));
    let meta: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client, &args.aws_auth_namespace);
    let mut glass_seen = break_glass::Seen::default();
    let seen = ctx.aws_auth_seen.clone();
    let own = ctx.last_written.clone();
    watcher(meta, config)
        .backoff(WatchBackoff::default())
        .inspect_ok(relists(ctx.metrics.clone(), "aws-auth"))
        .inspect_ok(move |ev| {
            if let watcher::Event::Apply(o) | watcher::Event::InitApply(o) = ev {
                let initial = matches!(ev, watcher::Event::InitApply(_));
                if let Some(note) = glass_seen.observe("ConfigMap", &o.metadata, initial) {
                    let mut r = o.object_ref(&());
                    r.api_version = Some("v1".into());
                    r.kind = Some("ConfigMap".into());
                    break_glass::queue(&glass, r, note);
                }
            }
        })
        .inspect_ok(move |ev| {
            // A relist starts from not knowing: a deletion missed in a watch gap shows up as no
            // object at all.
            let rv = match ev {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                    o.metadata.resource_version.clone()
                }
                watcher::Event::Delete(_) | watcher::Event::Init => None,
                watcher::Event::InitDone => return,
            };
            *seen.lock().expect("aws-auth seen lock") = rv;
        })
        .touched_objects()
        // The operator's own write needs no pass: the pass that wrote it planned it, and planning
        // again on a plan's own output changes nothing. (Seen before the write's answer, it
        // still starts one, which then finds nothing to do.)
        .try_filter(move |o| {
            let ours = own
                .lock()
                .expect("last written lock")
                .as_ref()
                .is_some_and(|w| {
                    w.metadata.resource_version.is_some()
                        && w.metadata.resource_version == o.metadata.resource_version
                });
            futures::future::ready(!ours)
        })
        .map_ok(|_| false)
        .boxed()
}

/// The access-entry record's metadata (see [`super::entries::Record`]): its annotations hold a
/// person's confirmation of a held deletion, which starts a pass.
fn record_events(args: &RunArgs, client: Client) -> Signals {
    let name = super::entries::record_name(&args.aws_auth_name);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let meta: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client, &args.aws_auth_namespace);
    watcher(meta, config)
        .backoff(WatchBackoff::default())
        .touched_objects()
        .map_ok(|_| false)
        .boxed()
}

/// Back-off between a watch's attempts to reconnect: doubling from 250 ms up to 5 s (kube's
/// default goes to 30 s), so that once the API server is back after an outage the watches, and
/// the passes they start, follow within seconds. One client per watch: no jitter is needed.
#[derive(Debug, Clone, Copy)]
struct WatchBackoff(Duration);

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff(Duration::from_millis(250))
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        Some(now)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        *self = WatchBackoff::default();
    }
}

/// Counts a watch's lists after its first: each one is a restart after an error or expiry.
fn relists<K>(metrics: Arc<Metrics>, watch: &'static str) -> impl FnMut(&watcher::Event<K>) {
    // The series exists from the start, at 0, so that rate() and alerts see it.
    metrics
        .watch_restarts
        .get_or_create(&WatchLabel { watch })
        .inc_by(0);
    let mut lists = 0u64;
    move |ev| match ev {
        watcher::Event::Init => {
            lists += 1;
            if lists > 1 {
                metrics
                    .watch_restarts
                    .get_or_create(&WatchLabel { watch })
                    .inc();
            }
        }
        // A relist after an error completed: the API server answers again.
        watcher::Event::InitDone if lists > 1 => metrics.ready.store(true, Ordering::Relaxed),
        _ => {}
    }
}
