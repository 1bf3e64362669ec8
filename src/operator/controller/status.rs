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
    backends: Backends,
}

/// Where a grant is in effect: what `status.backends` lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backends {
    pub aws_auth: bool,
    pub access_entries: bool,
}

impl Backends {
    pub const AWS_AUTH: &str = "aws-auth";
    pub const ACCESS_ENTRIES: &str = "access-entries";

    pub fn names(self) -> Vec<&'static str> {
        [
            (self.aws_auth, Self::AWS_AUTH),
            (self.access_entries, Self::ACCESS_ENTRIES),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
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
            Some((ready, at)) if ready == reason.is_ready() => at,
            _ => now.clone(),
        };
        Decided {
            reason,
            message,
            section: verdict.section,
            canonical_arn: verdict.canonical_arn.clone(),
            generation: grant.generation,
            last_transition_time,
            backends: Backends::default(),
        }
    }

    /// The same decision, naming where the grant is in effect.
    pub fn on(mut self, backends: Backends) -> Self {
        self.backends = backends;
        self
    }

    /// The status to write.
    pub fn status(&self) -> IamAccessGrantStatus {
        IamAccessGrantStatus {
            observed_generation: self.generation,
            canonical_arn: self.canonical_arn.as_deref().map(str::to_string),
            section: self.section.map(|s| s.key().to_string()),
            backends: self
                .backends
                .names()
                .into_iter()
                .map(String::from)
                .collect(),
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
            &self.backends.names(),
            &[ready],
        )
    }
}

impl Decided {
    /// Notes on the grant that this status is on its way (see [`Cached::send`]); whether its
    /// reason is new.
    pub fn sending_for(&self, grant: &Cached) -> bool {
        let ready = self.reason.is_ready();
        grant.send(
            self.print(),
            self.reason,
            ready,
            self.last_transition_time.clone(),
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

    /// Until the watch brings back the version a status was written to, a pass sees the grant
    /// as read: it must compare with the status on its way, or it sends the same status (and its
    /// event) again, with a later transition time.
    #[test]
    fn a_status_on_its_way_is_what_the_next_pass_compares_with() {
        let t0 = Time(Timestamp::from_second(1_700_000_000).unwrap());
        let t1 = Time(Timestamp::from_second(1_700_000_002).unwrap());
        let g = Cached::new(IamAccessGrant::new("g", IamAccessGrantSpec::default()));
        let first = Decided::new(&g, Reason::Invalid, "bad".into(), &verdict(), &t0);
        assert_ne!(g.status_print(), Some(first.print()));
        assert!(first.sending_for(&g), "a new reason: an event is due");
        let again = Decided::new(&g, Reason::Invalid, "bad".into(), &verdict(), &t1);
        assert_eq!(g.status_print(), Some(again.print()), "nothing to send");
        assert!(g.reports(Reason::Invalid));
        // Another reason on the same side of Ready keeps the time; its event is due.
        let other = Decided::new(&g, Reason::Conflict, "taken".into(), &verdict(), &t1);
        assert_eq!(other.status().conditions[0].last_transition_time, t0);
        assert!(other.sending_for(&g));
        assert!(!other.sending_for(&g), "the same reason again: no event");
        // Refused: an older status failing leaves the later one; the later one failing is
        // forgotten, and the grant is compared with what was read again.
        g.not_sent(first.print());
        assert!(g.reports(Reason::Conflict));
        g.not_sent(other.print());
        assert_eq!(g.status_print(), None);
        assert!(!g.reports(Reason::Conflict));
    }
}
