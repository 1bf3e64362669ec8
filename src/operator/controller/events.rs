//! Kubernetes Events (`events.k8s.io/v1`), one per transition, written as they happen. The
//! operator's events are rare per object (a grant's Ready flips, a removal is held), so they need
//! no series de-duplication; kube-runtime's recorder keeps every event of the last minutes in a
//! cache it scans on each publish, which with thousands of grants applied at once costs memory
//! and time for nothing.
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

use crate::operator::leader::Gate;

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    /// Events are written only while this gate is open (the reconciler's: only the leader).
    gate: Option<Gate>,
}

impl Recorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Recorder {
            client,
            reporter,
            gate: None,
        }
    }

    /// A recorder that writes nothing while `gate` is closed.
    pub fn gated(self, gate: Gate) -> Self {
        Recorder {
            gate: Some(gate),
            ..self
        }
    }

    /// Creates the event about `reference` (cluster-scoped objects' events go to `kube-system`).
    pub async fn publish(
        &self,
        ev: &Event,
        reference: &ObjectReference,
    ) -> Result<(), kube::Error> {
        if self.gate.as_ref().is_some_and(|g| !g.is_open()) {
            return Ok(());
        }
        let event = to_k8s(ev, reference, &self.reporter, Timestamp::now());
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await
            .map(|_| ())
    }
}

fn to_k8s(
    ev: &Event,
    reference: &ObjectReference,
    reporter: &Reporter,
    now: Timestamp,
) -> K8sEvent {
    let object = reference.name.as_deref().unwrap_or(&reporter.controller);
    K8sEvent {
        metadata: ObjectMeta {
            name: Some(format!("{object}.{:x}", now.as_nanosecond())),
            // An event with an eventTime about a cluster-scoped object (a grant) is accepted in
            // kube-system by every API server; `default` only from v1.22 (older ones answer 422).
            namespace: Some(
                reference
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "kube-system".into()),
            ),
            ..Default::default()
        },
        action: Some(ev.action.clone()),
        reason: Some(ev.reason.clone()),
        note: ev.note.clone(),
        event_time: Some(MicroTime(now)),
        regarding: Some(reference.clone()),
        related: ev.secondary.clone(),
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(
            reporter
                .instance
                .clone()
                .unwrap_or_else(|| reporter.controller.clone()),
        ),
        type_: Some(
            match ev.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .into(),
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_object_reporter_and_reason() {
        let ev = Event {
            type_: EventType::Warning,
            reason: "RemovalHeld".into(),
            note: Some("kept 18".into()),
            action: "Remove".into(),
            secondary: None,
        };
        let r = ObjectReference {
            name: Some("aws-auth".into()),
            namespace: Some("kube-system".into()),
            ..Default::default()
        };
        let reporter = Reporter {
            controller: "aws-auth-operator".into(),
            instance: None,
        };
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let e = to_k8s(&ev, &r, &reporter, now);
        assert_eq!(e.metadata.namespace.as_deref(), Some("kube-system"));
        assert!(e.metadata.name.unwrap().starts_with("aws-auth."));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.reporting_instance.as_deref(), Some("aws-auth-operator"));
        let cluster_scoped = ObjectReference {
            name: Some("g".into()),
            ..Default::default()
        };
        let e = to_k8s(&ev, &cluster_scoped, &reporter, now);
        assert_eq!(e.metadata.namespace.as_deref(), Some("kube-system"));
    }
}
