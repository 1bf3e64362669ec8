//! What a planner keeps between plans. The plan is pure, so the same inputs give the same result:
//! a pass that sees what an earlier one saw (a resync, a watch restart, an event that changed
//! nothing the plan reads) gets that plan back, and a pass over mostly the same inputs reuses the
//! parts whose own inputs did not change instead of reading, validating and rendering thousands
//! of grants again.
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ConfigMap;

use super::input::GrantRef;
use super::{OWNERSHIP_ANNOTATION, Own, Ownership, Plan, PlanConfig, Prepared};
use crate::engine::fingerprint::{Fingerprints, hash128};

/// What the last passes worked out, each part keyed by a fingerprint of exactly what it was
/// computed from, so a part is reused only for the same inputs:
/// - the last plan, by everything the plan reads;
/// - the last aws-auth `data` read (the reader's result and each entry's principal key), by that
///   data: the pass after a write reads the text it wrote, and the single change after that
///   plans over the same text;
/// - the last ownership record parsed, by its text;
/// - what each grant decides on its own (validation, the cluster-creator and privileged-group
///   rails, its rendered entry and message), by the grant's inputs and those rails.
///
/// Bounded by one plan's size: the per-grant part is pruned to the grants of the last plan.
#[derive(Default)]
struct State {
    plan: Option<(u128, Arc<Plan>)>,
    read: Option<(u128, Arc<Prepared>)>,
    ownership: Option<(String, Arc<Ownership>)>,
    own: HashMap<(u128, u128), OwnEntry, Fingerprints>,
    /// Fingerprints of grants shared with the controller's cache, by the version of the object
    /// they are (a hash of its uid and resourceVersion: the API server gives every change of an
    /// object a new resourceVersion, so one version is one content).
    versions: HashMap<u128, Version, Fingerprints>,
    /// Counts calls; an entry marked with the current call was used by it (the rest is let go).
    calls: u64,
}

struct Version {
    fingerprint: GrantPrint,
    seen: u64,
}

/// A grant's decision, kept by the grant's inputs without its status; `full` is the fingerprint
/// with the status, which a decision that read the status must match too.
struct OwnEntry {
    own: Arc<Own>,
    full: u128,
    seen: u64,
}

/// A grant's fingerprints: of everything the plan reads of it, and of the same without its
/// status (all a valid grant's decision reads, so a status update does not make it anew).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct GrantPrint {
    pub full: u128,
    pub spec: u128,
}

/// The fingerprints of one plan's inputs.
pub(super) struct Fingerprint {
    /// Everything the plan reads.
    pub plan: u128,
    /// aws-auth's `data` (none and empty differ).
    pub data: u128,
    /// Each grant's inputs, in the order given.
    pub grants: Vec<GrantPrint>,
    /// The rails a grant is checked against on its own.
    pub rails: u128,
}

/// The bytes a value feeds a hasher, in order (what a streaming hasher would see).
struct Bytes(Vec<u8>);

impl Hasher for Bytes {
    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    fn finish(&self) -> u64 {
        // Never asked: the collected bytes are hashed by `hash128`.
        0
    }
}

/// What one planner keeps between its plans (the controller keeps one for its passes; a plan
/// made elsewhere, such as an admission review of one grant, must not replace what the passes
/// reuse).
#[derive(Default)]
pub struct Memo {
    state: Mutex<State>,
}

impl Memo {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state holds only finished values; one left by a panicking plan is still whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything `plan` reads, hashed. Grants are combined order-independently: a cache hands them
    /// over in any order, and the plan sorts them itself.
    pub(super) fn fingerprint<G: GrantRef>(
        &self,
        grants: &[G],
        current: Option<&ConfigMap>,
        config: &PlanConfig,
    ) -> Fingerprint {
        let data = data_print(current);
        let rails = hash128(|mut h| {
            (&config.cluster_creators, &config.privileged_groups).hash(&mut h);
            config.privileged_principals.hash(&mut h);
            config.allowed_accounts.hash(&mut h);
        });
        // A version fingerprinted before is looked up; the others (all of them in a first plan)
        // are fingerprinted without the lock, spread over the cores, then kept.
        let versions: Vec<Option<u128>> = grants.iter().map(GrantRef::version).collect();
        let mut st = self.state();
        st.calls += 1;
        let call = st.calls;
        let mut prints: Vec<Option<GrantPrint>> = versions
            .iter()
            .map(|v| {
                let e = st.versions.get_mut(v.as_ref()?)?;
                e.seen = call;
                Some(e.fingerprint)
            })
            .collect();
        drop(st);
        let missing: Vec<usize> = (0..grants.len()).filter(|&i| prints[i].is_none()).collect();
        let made = super::super::parallel::map(&missing, |&i| grant_print(&grants[i]));
        let mut st = self.state();
        // Grown once, not rehashed at each doubling (a first plan keeps thousands).
        st.versions.reserve(made.len());
        for (i, print) in missing.into_iter().zip(made) {
            prints[i] = Some(print);
            if let Some(v) = versions[i] {
                st.versions.insert(
                    v,
                    Version {
                        fingerprint: print,
                        seen: call,
                    },
                );
            }
        }
        let grants: Vec<GrantPrint> = prints.into_iter().flatten().collect();
        // Versions no longer in the cache are let go.
        if st.versions.len() > versions.iter().flatten().count() {
            st.versions.retain(|_, e| e.seen == call);
        }
        drop(st);
        let mut sum = hash128(|mut h| {
            config_hash(config, &mut h);
            data.hash(&mut h);
            current.map(|c| &c.metadata.annotations).hash(&mut h);
        });
        for g in &grants {
            sum = sum.wrapping_add(g.full);
        }
        // The count too, so that a grant added and another removed cannot cancel out by chance.
        Fingerprint {
            plan: sum ^ (grants.len() as u128),
            data,
            grants,
            rails,
        }
    }

    /// The last plan, if its inputs had this fingerprint.
    pub(super) fn get(&self, key: u128) -> Option<Arc<Plan>> {
        self.state()
            .plan
            .as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, p)| p.clone())
    }

    pub(super) fn put(&self, key: u128, plan: Arc<Plan>) {
        self.state().plan = Some((key, plan));
    }

    /// Lets go of the last plan: a plan that is written changes its own inputs, so it is not
    /// asked for again, and the write can then move its data instead of copying it.
    pub fn forget_plan(&self) {
        self.state().plan = None;
    }

    /// The read of aws-auth's `data` fingerprinted `key`: the last one, or `read` made now.
    pub(super) fn prepared(&self, key: u128, read: impl FnOnce() -> Prepared) -> Arc<Prepared> {
        {
            let mut st = self.state();
            if let Some((_, p)) = st.read.as_ref().filter(|(k, _)| *k == key) {
                return p.clone();
            }
            // The old read goes before the new one is made: the two are not held at once.
            st.read = None;
        }
        let p = Arc::new(read());
        self.state().read = Some((key, p.clone()));
        p
    }

    /// Reads aws-auth's `data` and ownership record now, for the next plan over them: the
    /// operator's own write, read once the write is out instead of in the next change's way.
    pub fn read_ahead(&self, current: &ConfigMap) {
        let empty = BTreeMap::new();
        let data = current.data.as_ref().unwrap_or(&empty);
        self.prepared(data_print(Some(current)), || Prepared::new(data));
        // Its ownership record too (a parse error is the next plan's note, found again there).
        let _ = self.ownership(Some(current));
    }

    /// The ownership record of `current`, parsed (the last one again when its text is the same).
    pub(super) fn ownership(&self, current: Option<&ConfigMap>) -> Result<Arc<Ownership>, String> {
        let text = current
            .and_then(|c| c.metadata.annotations.as_ref())
            .and_then(|a| a.get(OWNERSHIP_ANNOTATION));
        let Some(text) = text else {
            return Ok(Arc::default());
        };
        if let Some((_, o)) = self.state().ownership.as_ref().filter(|(t, _)| t == text) {
            return Ok(o.clone());
        }
        let o = Arc::new(Ownership::from_configmap(current)?);
        self.state().ownership = Some((text.clone(), o.clone()));
        Ok(o)
    }

    /// Drops everything kept, so a test can compare against a plan worked out from scratch.
    #[cfg(test)]
    pub(super) fn forget(&self) {
        *self.state() = State::default();
        super::super::authmap::memo::forget();
    }

    /// What each grant decides on its own, `decide` called for the grants not seen with these
    /// inputs and rails before (spread over the cores when there are thousands, as in a first
    /// plan). `grants` pairs each grant with its fingerprint.
    pub(super) fn own<'g, G: GrantRef>(
        &self,
        grants: &[(&'g G, GrantPrint)],
        rails: u128,
        decide: impl Fn(&'g G) -> Own + Sync,
    ) -> Vec<Arc<Own>> {
        let fresh = |e: &OwnEntry, print: &GrantPrint| !e.own.read_status || e.full == print.full;
        let missing: Vec<(&'g G, GrantPrint)> = {
            let st = self.state();
            grants
                .iter()
                .filter(|(_, print)| {
                    !st.own
                        .get(&(rails, print.spec))
                        .is_some_and(|e| fresh(e, print))
                })
                .copied()
                .collect()
        };
        // Decided without the lock: nothing else is kept meanwhile that they depend on.
        let made = super::super::parallel::map(&missing, |&(g, _)| Arc::new(decide(g)));
        let mut st = self.state();
        st.calls += 1;
        let call = st.calls;
        let any_made = !made.is_empty();
        st.own.reserve(made.len());
        for ((_, print), own) in missing.iter().zip(made) {
            st.own.insert(
                (rails, print.spec),
                OwnEntry {
                    own,
                    full: print.full,
                    seen: call,
                },
            );
        }
        let out: Vec<Arc<Own>> = grants
            .iter()
            .map(|(_, print)| {
                let e = st
                    .own
                    .get_mut(&(rails, print.spec))
                    .expect("every grant's decision was just kept");
                e.seen = call;
                e.own.clone()
            })
            .collect();
        // Decisions no grant of this plan has (deleted or edited grants, old rails) are let go.
        if any_made && st.own.len() > grants.len() {
            st.own.retain(|_, e| e.seen == call);
        }
        out
    }
}

/// A grant's fingerprints. Its inputs are gathered into one buffer and hashed in one pass per
/// key (a few long writes instead of dozens of short ones); the status is hashed with the spec's
/// fingerprint, not with the spec's bytes again.
fn grant_print(g: &impl GrantRef) -> GrantPrint {
    let mut bytes = Bytes(Vec::with_capacity(256));
    grant_inputs(g, false, &mut bytes);
    let spec = hash128(|h| h.write(&bytes.0));
    bytes.0.clear();
    bytes.0.extend_from_slice(&spec.to_le_bytes());
    g.reported().hash(&mut bytes);
    let full = hash128(|h| h.write(&bytes.0));
    GrantPrint { full, spec }
}

/// What the read of aws-auth's `data` is kept by (none and empty differ).
fn data_print(current: Option<&ConfigMap>) -> u128 {
    hash128(|mut h| current.map(|c| &c.data).hash(&mut h))
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
        allowed_accounts,
        grants_unavailable,
        history_unavailable,
        recently_removed,
        peak_managed,
    } = c;
    (cluster_creators, max_data_bytes, max_annotation_bytes).hash(h);
    (max_removals, max_removal_percent, privileged_groups).hash(h);
    (privileged_principals, allowed_accounts).hash(h);
    (grants_unavailable, history_unavailable).hash(h);
    (recently_removed, peak_managed).hash(h);
}

/// What the plan reads of a grant: its name, creation time, spec, and (`with_status`) the part of
/// its status that keeps an invalid grant's last applied entry. The plan reads that part only
/// while the spec is invalid; the controller's change filter leaves it out otherwise.
pub(crate) fn grant_inputs(g: &impl GrantRef, with_status: bool, h: &mut impl Hasher) {
    g.name().hash(h);
    g.created().map(|t| t.0.as_nanosecond()).hash(h);
    let s = g.spec();
    (&s.arn, &s.username, &s.groups, &s.account, s.adopt).hash(h);
    (s.entry_type, &s.access_policies).hash(h);
    if with_status {
        g.reported().hash(h);
    }
}
