//! The removal breaker's window, kept on aws-auth itself (an annotation written with the same
//! write), so that a restart or a new leader does not start it empty: a deletion spread over
//! passes, processes and leaders still adds up.
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// Annotation on aws-auth holding the window.
pub const WINDOW_ANNOTATION: &str = "aws-auth.dev/removal-window";

/// Managed entries removed within the window, and the most managed entries seen in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalWindow {
    /// When (RFC 3339) how many managed entries were removed, oldest first.
    #[serde(default)]
    pub removed: Vec<(Timestamp, usize)>,
    /// The largest number of managed entries aws-auth held while the window had removals: a
    /// percentage is taken of it, so entries added and removed again do not dilute the base.
    #[serde(default)]
    pub peak: usize,
}

impl RemovalWindow {
    /// The window recorded on aws-auth, without removals older than `span` at `now`. An
    /// unreadable record counts as empty (the webhook lets only the operator change it).
    pub fn from_configmap(cm: Option<&ConfigMap>, now: Timestamp, span: SignedDuration) -> Self {
        let mut w: RemovalWindow = cm
            .and_then(|c| c.metadata.annotations.as_ref())
            .and_then(|a| a.get(WINDOW_ANNOTATION))
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        // A clock that went backwards keeps a removal, never drops it early.
        w.removed.retain(|(t, _)| now.duration_since(*t) <= span);
        if w.removed.is_empty() {
            w.peak = 0;
        }
        w
    }

    /// Managed entries removed within the window.
    pub fn recent(&self) -> usize {
        self.removed.iter().map(|(_, n)| n).sum()
    }

    /// The window after a write that removed `removed` of the `managed_before` entries there
    /// were, leaving `managed_after`. A confirmed removal starts it afresh: a person has looked
    /// at what went before.
    pub fn after_write(
        mut self,
        now: Timestamp,
        removed: usize,
        confirmed: bool,
        managed_before: usize,
        managed_after: usize,
    ) -> Self {
        if confirmed {
            return RemovalWindow::default();
        }
        if removed > 0 {
            self.removed.push((now, removed));
        }
        if self.removed.is_empty() {
            return RemovalWindow::default();
        }
        self.peak = self.peak.max(managed_before).max(managed_after);
        self
    }

    /// The annotation's value; `None` when the window is empty (the annotation is removed).
    pub fn to_annotation(&self) -> Option<String> {
        (!self.removed.is_empty())
            .then(|| serde_json::to_string(self).expect("a removal window serializes"))
    }

    /// Sets (or removes) the annotation on the ConfigMap about to be written.
    pub fn apply_to(&self, cm: &mut ConfigMap) {
        let a = cm.metadata.annotations.get_or_insert_with(Default::default);
        match self.to_annotation() {
            Some(v) => a.insert(WINDOW_ANNOTATION.to_string(), v),
            None => a.remove(WINDOW_ANNOTATION),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn the_window_is_kept_on_aws_auth_and_expires() {
        let span = SignedDuration::from_secs(600);
        let w = RemovalWindow::default().after_write(at(0), 3, false, 40, 37);
        assert_eq!((w.recent(), w.peak), (3, 40));
        let w = w.after_write(at(100), 2, false, 37, 35);
        let mut cm = ConfigMap::default();
        w.apply_to(&mut cm);
        let read = RemovalWindow::from_configmap(Some(&cm), at(200), span);
        assert_eq!(read, w);
        assert_eq!(read.recent(), 5);
        let later = RemovalWindow::from_configmap(Some(&cm), at(650), span);
        assert_eq!((later.recent(), later.peak), (2, 40));
        let gone = RemovalWindow::from_configmap(Some(&cm), at(800), span);
        assert_eq!(gone, RemovalWindow::default());
        let confirmed = read.after_write(at(300), 10, true, 35, 25);
        confirmed.apply_to(&mut cm);
        assert!(cm.metadata.annotations.unwrap().is_empty());
        let mut junk = ConfigMap::default();
        junk.metadata.annotations = Some([(WINDOW_ANNOTATION.to_string(), "{".into())].into());
        assert_eq!(
            RemovalWindow::from_configmap(Some(&junk), at(0), span),
            RemovalWindow::default()
        );
    }
}
