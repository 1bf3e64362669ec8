//! Grant status from a verdict: the Ready condition Argo CD, Flux (kstatus) and kubectl read.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{IamAccessGrant, IamAccessGrantStatus, READY, Reason};
use crate::engine::plan::Verdict;

/// The status a grant should have. `lastTransitionTime` moves only when the Ready status flips.
pub fn desired(
    grant: &IamAccessGrant,
    reason: Reason,
    message: &str,
    verdict: &Verdict,
    now: &Time,
) -> IamAccessGrantStatus {
    let generation = grant.metadata.generation;
    let status = if reason.is_ready() { "True" } else { "False" };
    let old = ready_condition(grant);
    let last_transition_time = match old {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now.clone(),
    };
    IamAccessGrantStatus {
        observed_generation: generation,
        canonical_arn: verdict.canonical_arn.as_deref().map(str::to_string),
        section: verdict.section.map(|s| s.key().to_string()),
        conditions: vec![Condition {
            type_: READY.to_string(),
            status: status.to_string(),
            reason: reason.as_str().to_string(),
            message: message.to_string(),
            observed_generation: generation,
            last_transition_time,
        }],
    }
}

pub fn ready_condition(grant: &IamAccessGrant) -> Option<&Condition> {
    grant
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY))
}

/// The reason the grant currently reports, if any.
pub fn current_reason(grant: &IamAccessGrant) -> Option<&str> {
    ready_condition(grant).map(|c| c.reason.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::IamAccessGrantSpec;
    use crate::engine::authmap::Section;
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
        let s = desired(&g, Reason::Invalid, "bad", &verdict(), &t0);
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.conditions[0].status, "False");
        g.status = Some(s.clone());
        // Another failure reason: still False, so the time stays.
        let s2 = desired(&g, Reason::Conflict, "taken", &verdict(), &t1);
        assert_eq!(s2.conditions[0].last_transition_time, t0);
        // Ready flips: the time moves.
        let s3 = desired(&g, Reason::Applied, "ok", &verdict(), &t1);
        assert_eq!(s3.conditions[0].last_transition_time, t1);
        assert_eq!(s3.section.as_deref(), Some("mapRoles"));
    }
}
