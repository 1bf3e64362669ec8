//! Grant status from a verdict: the Ready condition Argo CD, Flux (kstatus) and kubectl read.
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::cache::Cached;
use crate::api::{IamAccessGrantStatus, READY, Reason};
use crate::engine::authmap::Section;
use crate::engine::plan::Verdict;

/// What a grant's status is made of, as decided by a pass. It shares the plan's strings: a burst
/// leaves thousands of these waiting for the API server, and a built status is several times
/// larger.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub reason: Reason,
    pub message: Arc<str>,
    section: Option<Section>,
    canonical_arn: Option<Arc<str>>,
    generation: Option<i64>,
    last_transition_time: Time,
}

impl Decided {
    /// `lastTransitionTime` moves only when the Ready status flips.
    pub fn new(
        grant: &Cached,
        reason: Reason,
        message: Arc<str>,
        verdict: &Verdict,
        now: &Time,
    ) -> Self {
        let last_transition_time = match grant.ready() {
            Some((ready, at)) if ready == reason.is_ready() => at.clone(),
            _ => now.clone(),
        };
        Decided {
            reason,
            message,
            section: verdict.section,
            canonical_arn: verdict.canonical_arn.clone(),
            generation: grant.generation,
            last_transition_time,
        }
    }

    /// The status to write.
    pub fn status(&self) -> IamAccessGrantStatus {
        IamAccessGrantStatus {
            observed_generation: self.generation,
            canonical_arn: self.canonical_arn.as_deref().map(str::to_string),
            section: self.section.map(|s| s.key().to_string()),
            conditions: vec![Condition {
                type_: READY.to_string(),
                status: ready_status(self.reason).to_string(),
                reason: self.reason.as_str().to_string(),
                message: self.message.to_string(),
                observed_generation: self.generation,
                last_transition_time: self.last_transition_time.clone(),
            }],
        }
    }
}

fn ready_status(reason: Reason) -> &'static str {
    if reason.is_ready() { "True" } else { "False" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IamAccessGrant, IamAccessGrantSpec};
    use k8s_openapi::jiff::Timestamp;

    fn verdict() -> Verdict {
        Verdict {
            grant: "g".into(),
            reason: Reason::Applied,
            message: "m".into(),
            section: Some(Section::MapRoles),
            canonical_arn: Some("arn:aws:iam::111122223333:role/a".into()),
        }
    }

    #[test]
    fn transition_time_moves_only_when_ready_flips() {
        let t0 = Time(Timestamp::from_second(1).unwrap());
        let t1 = Time(Timestamp::from_second(2).unwrap());
        let mut g = IamAccessGrant::new("g", IamAccessGrantSpec::default());
        g.metadata.generation = Some(3);
        let decide = |g: &IamAccessGrant, reason, message: &str, at: &Time| {
            Decided::new(
                &Cached::new(g.clone()),
                reason,
                message.into(),
                &verdict(),
                at,
            )
            .status()
        };
        let s = decide(&g, Reason::Invalid, "bad", &t0);
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.conditions[0].status, "False");
        g.status = Some(s.clone());
        // Another failure reason: still False, so the time stays.
        let s2 = decide(&g, Reason::Conflict, "taken", &t1);
        assert_eq!(s2.conditions[0].last_transition_time, t0);
        // Ready flips: the time moves.
        let s3 = decide(&g, Reason::Applied, "ok", &t1);
        assert_eq!(s3.conditions[0].last_transition_time, t1);
        assert_eq!(s3.section.as_deref(), Some("mapRoles"));
    }
}
