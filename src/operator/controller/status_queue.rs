//! Status patches and their events, sent by one background worker. A pass hands over the
//! statuses it decided and goes on: with thousands of grants in a burst, the next pass's write of
//! aws-auth does not wait for the previous pass's patches. A newer decision for a grant replaces
//! one not sent yet, and a grant's updates go out in the order they were decided. Statuses go
//! before events: a status is what `kubectl wait`, Argo CD and Flux read, an event only tells the
//! story, so the events of a burst are sent once no status is waiting.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::cache::{Cached, grant_ref};
use super::events::Recorder;
use super::status;
use crate::api::{IamAccessGrant, Reason};
use crate::operator::leader::Gate;
use crate::operator::telemetry::Metrics;

/// One decided status: the grant as the pass saw it and what its status is made of.
pub struct Update {
    pub grant: Arc<Cached>,
    pub decided: status::Decided,
}

/// An event waiting for the statuses: the transition of one grant to `reason`. It holds the
/// grant's name and uid, not the cached grant (a status update replaces that in the cache).
struct Transition {
    name: Arc<str>,
    uid: Option<Box<str>>,
    reason: Reason,
    message: Arc<str>,
}

#[derive(Default)]
pub struct StatusQueue {
    pending: Mutex<HashMap<Arc<str>, Update>>,
    wake: Notify,
    /// aws-auth first: a pass holds this exclusively from its read to its write, and each patch
    /// shares it, so the API server is not busy with thousands of patches while aws-auth waits.
    pub aws_auth_first: tokio::sync::RwLock<()>,
}

impl StatusQueue {
    /// Hands updates to the worker, replacing any for the same grant not sent yet.
    pub fn push(&self, updates: impl IntoIterator<Item = Update>) {
        let mut pending = self.pending.lock().expect("status queue lock");
        for u in updates {
            pending.insert(u.grant.name.clone(), u);
        }
        drop(pending);
        self.wake.notify_one();
    }

    /// Sends what is pending ([`STATUSES_IN_FLIGHT`] patches at a time) until the task is dropped.
    /// Nothing is sent while the gate is closed (not the leader): those updates are dropped, and
    /// the next leader decides afresh.
    pub async fn run(
        self: Arc<Self>,
        grants: Api<IamAccessGrant>,
        recorder: Recorder,
        gate: Gate,
        metrics: Arc<Metrics>,
    ) {
        let mut transitions: VecDeque<Transition> = VecDeque::new();
        loop {
            if transitions.is_empty() {
                self.wake.notified().await;
            }
            loop {
                // Noted as on its way under the lock a pass decides under: a pass from now on
                // compares with these statuses, not with what the watch has not brought back yet.
                let batch: Vec<(Update, bool)> = {
                    let mut pending = self.pending.lock().expect("status queue lock");
                    (pending.drain())
                        .map(|(_, u)| {
                            let new_reason = u.decided.sending_for(&u.grant);
                            (u, new_reason)
                        })
                        .collect()
                };
                if batch.is_empty() {
                    break;
                }
                let (queue, grants, gate, metrics) = (&self, &grants, &gate, &metrics);
                let (count, started) = (batch.len(), std::time::Instant::now());
                let sent =
                    futures::stream::iter(batch.into_iter().map(|(u, new_reason)| async move {
                        let _shared = queue.aws_auth_first.read().await;
                        send(grants, gate, metrics, u, new_reason).await
                    }))
                    // The API server takes many small patches; this bounds requests in flight.
                    .buffer_unordered(STATUSES_IN_FLIGHT)
                    .filter_map(std::future::ready)
                    .collect::<Vec<Transition>>()
                    .await;
                let ms = started.elapsed().as_secs_f64() * 1e3;
                info!(
                    count,
                    ms,
                    waiting_events = transitions.len(),
                    "statuses sent"
                );
                transitions.extend(sent);
            }
            // One round of events, then statuses again if any came meanwhile: a round as large
            // as the events in flight, so a status waits for no more than one event each.
            let round = transitions.len().min(EVENTS_IN_FLIGHT);
            futures::stream::iter(transitions.drain(..round).map(|t| async {
                let _shared = self.aws_auth_first.read().await;
                record(&recorder, &metrics, t).await
            }))
            .buffer_unordered(EVENTS_IN_FLIGHT)
            .collect::<Vec<()>>()
            .await;
        }
    }
}

/// Status patches in flight at once. Each is small, but waits milliseconds on the API server
/// (decoding the stored grant, the update, etcd's write, the watch): more in flight keep its
/// cores busy. Measured at 5,000 grants, after a burst: 1.9 ms a status with 32
/// in flight, 1.1 ms with 64, 1.0 ms with 128; but each request holds a connection of its own
/// (HTTP/1.1), and 128 took the operator's peak to 43 MiB at 5,000 (and to 26-28 MiB at 1,000
/// in runs that shared the machine with a compile).
const STATUSES_IN_FLIGHT: usize = 64;

/// Events in flight at once: a round of events is sent only while no status waits, and a status
/// that comes meanwhile waits for the round.
const EVENTS_IN_FLIGHT: usize = 32;

/// Patches one status; the transition to record when the grant's reason changed.
async fn send(
    grants: &Api<IamAccessGrant>,
    gate: &Gate,
    metrics: &Metrics,
    u: Update,
    new_reason: bool,
) -> Option<Transition> {
    let Update { grant, decided } = u;
    let name = &grant.name;
    if !gate.is_open() {
        grant.not_sent(decided.print());
        return None;
    }
    let reason = decided.reason;
    let patch = serde_json::json!({ "status": decided.status() });
    match patch_status(grants, name, &patch).await {
        Ok(_) => {
            metrics.status_updates.inc();
        }
        Err(kube::Error::Api(s)) if s.is_not_found() => return None,
        // The API server checks the grant's own spec against the CRD's rules on a status write,
        // without ratcheting before 1.33: a grant admitted before those rules cannot be given its
        // status there. Its verdict still goes out as an Event.
        Err(kube::Error::Api(s)) if s.code == 422 => {
            grant.not_sent(decided.print());
            warn!(grant = %name, error = %s.message, "status refused by the CRD's rules; the verdict is recorded as an event");
        }
        Err(e) => {
            // The next pass decides it again (and records the event then).
            grant.not_sent(decided.print());
            warn!(grant = %name, error = %e, "status update failed");
            return None;
        }
    }
    new_reason.then(|| Transition {
        name: grant.name.clone(),
        uid: grant.uid().map(Box::from),
        reason,
        message: decided.message,
    })
}

/// A merge patch of the status, answered with metadata only: the grant comes back by the watch,
/// and a burst's thousands of answers are not encoded by the API server and decoded here too.
async fn patch_status(
    grants: &Api<IamAccessGrant>,
    name: &str,
    patch: &serde_json::Value,
) -> kube::Result<()> {
    let mut req = kube::core::Request::new(grants.resource_url())
        .patch_subresource(
            "status",
            name,
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .map_err(kube::Error::BuildRequest)?;
    super::answered_with_metadata(&mut req);
    req.extensions_mut().insert("patch_status");
    let client = grants.clone().into_client();
    client
        .request::<kube::core::PartialObjectMeta<IamAccessGrant>>(req)
        .await
        .map(drop)
}

/// Records a grant's transition as an Event (the recorder writes nothing while not leading).
async fn record(recorder: &Recorder, metrics: &Metrics, t: Transition) {
    let Transition {
        name,
        uid,
        reason,
        message,
    } = t;
    let ev = Event {
        type_: if reason.is_ready() {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: reason.as_str().into(),
        note: Some(message.to_string()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let regarding = grant_ref(&name, uid.map(String::from));
    match recorder.publish(&ev, &regarding).await {
        Ok(()) => {
            metrics.events.inc();
        }
        Err(e) => debug!(grant = %name, error = %e, "event not recorded"),
    }
}
