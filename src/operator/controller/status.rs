//! Grant status from a verdict: the Ready condition Argo CD, Flux (kstatus) and kubectl read.
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::cache::{self, Cached};
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

impl Decided {
    /// The fingerprint of [`Decided::status`], without building it (see [`cache::status_print`]).
    pub fn print(&self) -> u128 {
        let generation = self.generation;
        let ready = (
            READY,
            ready_status(self.reason),
            self.reason.as_str(),
            &*self.message,
            generation,
            self.last_transition_time.0.as_second(),
        );
        cache::print_parts(
            generation,
            self.canonical_arn.as_deref(),
            self.section.map(Section::key),
            &[ready],
        )
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

    /// A pass compares decided statuses with the cached ones by these prints, without building
    /// them: the print of the parts must be the print of the status they build, and tell apart
    /// statuses that differ in any field.
    #[test]
    fn a_decided_status_prints_as_the_status_it_builds() {
        let now = Time(Timestamp::from_second(1_700_000_000).unwrap());
        let mut g = IamAccessGrant::new("g", IamAccessGrantSpec::default());
        g.metadata.generation = Some(2);
        let cached = Cached::new(g.clone());
        let mut prints = Vec::new();
        for (reason, message) in [
            (Reason::Applied, "ok"),
            (Reason::Applied, "ok, other words"),
            (Reason::Invalid, "ok"),
        ] {
            let d = Decided::new(&cached, reason, message.into(), &verdict(), &now);
            assert_eq!(d.print(), cache::status_print(&d.status()));
            prints.push(d.print());
        }
        let mut v = verdict();
        v.section = None;
        let d = Decided::new(&cached, Reason::Applied, "ok".into(), &v, &now);
        assert_eq!(d.print(), cache::status_print(&d.status()));
        prints.push(d.print());
        // Once the API holds it (times to the second), the cached grant prints the same.
        g.status = Some(d.status());
        assert_eq!(Cached::new(g.clone()).status_print(), Some(d.print()));
        g.metadata.generation = Some(3);
        let d = Decided::new(&Cached::new(g), Reason::Applied, "ok".into(), &v, &now);
        prints.push(d.print());
        prints.sort();
        prints.dedup();
        assert_eq!(prints.len(), 5, "every difference shows in the print");
    }
}
