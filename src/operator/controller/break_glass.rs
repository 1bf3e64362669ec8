//! BreakGlass events, from what the API server stored: the watches see an object newly carrying
//! the break-glass annotation (or a new reason in it) and the leader records it. The webhook only
//! logs, so a review posted to its port by anyone plants no event.
use std::collections::HashMap;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::ObjectMeta;
use kube::runtime::events::{Event, EventType};
use tokio::sync::mpsc;
use tracing::debug;

use super::events::Recorder;

use crate::engine::authmap::{excerpt, shown};
use crate::operator::webhook::review::BREAK_GLASS_ANNOTATION;

/// An event to record: about which object, and its note.
pub type Note = (ObjectReference, String);

/// Events wait here for the leader's recorder; a full queue drops (the log line stays).
pub const QUEUE: usize = 64;

/// The break-glass reasons last seen per object uid.
#[derive(Default)]
pub struct Seen {
    reasons: HashMap<String, String>,
}

impl Seen {
    /// Looks at one stored version of an object. Returns the note of a BreakGlass event when it
    /// newly carries a reason; `initial` (a relist) only remembers: what was set before this
    /// process watched was recorded then.
    pub fn observe(&mut self, kind: &str, meta: &ObjectMeta, initial: bool) -> Option<String> {
        let uid = meta.uid.clone()?;
        let why = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(BREAK_GLASS_ANNOTATION))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty());
        let Some(why) = why else {
            self.reasons.remove(&uid);
            return None;
        };
        if self.reasons.get(&uid).map(String::as_str) == Some(why) {
            return None;
        }
        self.reasons.insert(uid, why.to_string());
        if initial {
            return None;
        }
        // Who: the field manager of the newest change (the webhook logged the requester).
        let manager = meta
            .managed_fields
            .as_ref()
            .and_then(|m| m.iter().max_by_key(|f| f.time.as_ref().map(|t| t.0)))
            .and_then(|f| f.manager.as_deref())
            .unwrap_or("an unknown field manager");
        Some(
            excerpt(
                &format!(
                    "{kind} {} was changed with the break-glass annotation (field manager {}), skipping aws-auth-operator's admission checks: {}",
                    shown(meta.name.as_deref().unwrap_or_default()),
                    shown(manager),
                    shown(why)
                ),
                900,
            )
            .into_owned(),
        )
    }

    pub fn forget(&mut self, meta: &ObjectMeta) {
        if let Some(uid) = &meta.uid {
            self.reasons.remove(uid);
        }
    }
}

/// Queues a note; never blocks a watch.
pub fn queue(tx: &mpsc::Sender<Note>, r: ObjectReference, note: String) {
    tracing::warn!(object = ?r.name, note = %note, "break-glass edit stored");
    let _ = tx.try_send((r, note));
}

/// Records the queued BreakGlass events. The recorder is gated, so only the leader records them.
pub fn record(recorder: Recorder, mut notes: mpsc::Receiver<Note>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some((r, note)) = notes.recv().await {
            let ev = Event {
                type_: EventType::Warning,
                reason: "BreakGlass".into(),
                note: Some(note),
                action: "Admit".into(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&ev, &r).await {
                debug!(error = %e, "break-glass event not recorded");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: &str, why: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some("aws-auth".into()),
            uid: Some(uid.into()),
            annotations: why.map(|w| [(BREAK_GLASS_ANNOTATION.to_string(), w.to_string())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_reason_is_told_once_and_escaped() {
        let mut s = Seen::default();
        assert!(
            s.observe("ConfigMap", &meta("a", Some("old")), true)
                .is_none()
        );
        assert!(
            s.observe("ConfigMap", &meta("a", Some("old")), false)
                .is_none()
        );
        let n = s
            .observe("ConfigMap", &meta("a", Some("INC-1 \u{1b}[2J")), false)
            .unwrap();
        assert!(
            n.contains("INC-1 \\u{001B}[2J") && !n.contains('\u{1b}'),
            "{n}"
        );
        assert!(
            s.observe("ConfigMap", &meta("a", Some("INC-1 \u{1b}[2J")), false)
                .is_none()
        );
        assert!(s.observe("ConfigMap", &meta("a", None), false).is_none());
        assert!(
            s.observe("ConfigMap", &meta("a", Some("again")), false)
                .is_some()
        );
    }
}
