//! The last plan, by a fingerprint of everything the plan reads. The plan is pure, so the same
//! grants, aws-auth and configuration give the same plan: a pass that sees what an earlier one
//! saw (a resync, a watch restart, an event that changed nothing the plan reads) gets that plan
//! back instead of reading, validating and merging thousands of grants again.
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{LazyLock, Mutex};

use k8s_openapi::api::core::v1::ConfigMap;

use super::{Plan, PlanConfig};
use crate::api::{IamAccessGrant, READY};

/// Two independent keyed SipHash states: a 128-bit fingerprint, with keys chosen at start so
/// no input can be crafted to collide.
static KEYS: LazyLock<(RandomState, RandomState)> =
    LazyLock::new(|| (RandomState::new(), RandomState::new()));

/// One entry: the controller's passes. Bounded by one plan's size.
static LAST: Mutex<Option<(u128, Plan)>> = Mutex::new(None);

/// Everything `plan` reads, hashed. Grants are combined order-independently: a cache hands them
/// over in any order, and the plan sorts them itself.
pub(super) fn fingerprint<G: std::borrow::Borrow<IamAccessGrant>>(
    grants: &[G],
    current: Option<&ConfigMap>,
    config: &PlanConfig,
) -> u128 {
    let one = |f: &dyn Fn(&mut dyn Hasher)| {
        let (a, b) = &*KEYS;
        let (mut x, mut y) = (a.build_hasher(), b.build_hasher());
        f(&mut x);
        f(&mut y);
        (u128::from(x.finish()) << 64) | u128::from(y.finish())
    };
    let mut sum = one(&|mut h| {
        config_hash(config, &mut h);
        let cm = current.map(|c| (&c.data, &c.metadata.annotations));
        cm.hash(&mut h);
    });
    for g in grants {
        sum = sum.wrapping_add(one(&|mut h| grant_inputs(g.borrow(), true, &mut h)));
    }
    // The count too, so that a grant added and another removed cannot cancel out by chance.
    sum ^ (grants.len() as u128)
}

fn config_hash(c: &PlanConfig, h: &mut impl Hasher) {
    let PlanConfig {
        cluster_creators,
        max_data_bytes,
        max_annotation_bytes,
        max_removals,
        max_removal_percent,
        privileged_groups,
        privileged_principals,
        grants_unavailable,
        recently_removed,
    } = c;
    (cluster_creators, max_data_bytes, max_annotation_bytes).hash(h);
    (max_removals, max_removal_percent, privileged_groups).hash(h);
    (privileged_principals, grants_unavailable, recently_removed).hash(h);
}

/// What the plan reads of a grant: its name, creation time, spec, and (`with_status`) the part of
/// its status that keeps an invalid grant's last applied entry. The plan reads that part only
/// while the spec is invalid; the controller's change filter leaves it out otherwise.
pub(crate) fn grant_inputs(g: &IamAccessGrant, with_status: bool, h: &mut impl Hasher) {
    (&g.metadata.name, &g.metadata.generate_name).hash(h);
    g.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_nanosecond())
        .hash(h);
    let s = &g.spec;
    (&s.arn, &s.username, &s.groups, &s.account, s.adopt).hash(h);
    if !with_status {
        return;
    }
    let st = g.status.as_ref();
    let ready: Vec<&str> = st
        .iter()
        .flat_map(|s| &s.conditions)
        .filter(|c| c.type_ == READY)
        .map(|c| c.reason.as_str())
        .collect();
    (
        ready,
        st.and_then(|s| s.section.as_ref()),
        st.and_then(|s| s.canonical_arn.as_ref()),
    )
        .hash(h);
}

pub(super) fn get(key: u128) -> Option<Plan> {
    let last = LAST.lock().expect("plan memo lock");
    last.as_ref()
        .filter(|(k, _)| *k == key)
        .map(|(_, p)| p.clone())
}

pub(super) fn put(key: u128, plan: &Plan) {
    *LAST.lock().expect("plan memo lock") = Some((key, plan.clone()));
}
