//! The controller's cache of grants. It keeps of each grant only what the plan, the status worker
//! and its events read (name, uid, version, generation, creation time, spec, and of the status
//! its Ready condition's gist and a fingerprint), not the API object: at thousands of grants the
//! objects' metadata structs, condition messages and per-object keys were most of the memory.
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::runtime::watcher;

use crate::api::{IamAccessGrant, IamAccessGrantSpec, IamAccessGrantStatus, READY, Reason};
use crate::engine::fingerprint::hash128;
use crate::engine::plan::{GrantRef, Reported};

/// One grant as cached.
#[derive(Debug)]
pub struct Cached {
    pub name: Arc<str>,
    uid: Option<String>,
    version: Option<u128>,
    pub generation: Option<i64>,
    created: Option<Time>,
    spec: IamAccessGrantSpec,
    status: Option<Status>,
    /// A digest of what the plan reads of it (see [`plan_inputs`]).
    inputs: u64,
    /// The status last handed to the status worker for this version, until the watch brings the
    /// version that holds it: a pass in between compares its decision with this one, not with
    /// the status the version was read with (that sent thousands of statuses and events twice).
    sending: Mutex<Option<Box<Sending>>>,
}

/// The gist of a status on its way to the API server.
#[derive(Debug)]
struct Sending {
    print: u128,
    reason: Reason,
    ready: bool,
    since: Time,
}

/// What the operator reads of a grant's status.
#[derive(Debug)]
struct Status {
    /// The first Ready condition: whether it is True, its reason, when it last flipped.
    ready: Option<(bool, Box<str>, Time)>,
    /// Some Ready condition says Applied or Invalid (see [`Reported::holds`]).
    holds: bool,
    section: Option<Box<str>>,
    canonical_arn: Option<Box<str>>,
    /// The whole status's fingerprint: a decided status with the same one needs no patch.
    print: u128,
}

/// The fingerprint of a status as the API holds it: every field, times to the second (as the
/// API keeps them). [`crate::operator::controller::status::Decided`] hashes its parts the same
/// way without building the status, so a pass over thousands of unchanged grants builds none.
pub fn status_print(s: &IamAccessGrantStatus) -> u128 {
    let conditions: Vec<ConditionParts> = s
        .conditions
        .iter()
        .map(|c| {
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_str(),
                c.message.as_str(),
                c.observed_generation,
                c.last_transition_time.0.as_second(),
            )
        })
        .collect();
    print_parts(
        s.observed_generation,
        s.canonical_arn.as_deref(),
        s.section.as_deref(),
        &s.backends.iter().map(String::as_str).collect::<Vec<_>>(),
        &conditions,
    )
}

/// A condition's fields: type, status, reason, message, observedGeneration, lastTransitionTime.
pub type ConditionParts<'a> = (&'a str, &'a str, &'a str, &'a str, Option<i64>, i64);

/// [`status_print`] of a status made of these parts.
pub fn print_parts(
    observed_generation: Option<i64>,
    canonical_arn: Option<&str>,
    section: Option<&str>,
    backends: &[&str],
    conditions: &[ConditionParts],
) -> u128 {
    hash128(|mut h| {
        (
            observed_generation,
            canonical_arn,
            section,
            backends,
            conditions,
        )
            .hash(&mut h)
    })
}

impl Cached {
    pub fn new(g: IamAccessGrant) -> Self {
        let inputs = plan_inputs(&g);
        let (name, version) = (GrantRef::name(&g).into(), g.version());
        let IamAccessGrant {
            metadata: m,
            spec,
            status,
        } = g;
        let status = status.map(|s| {
            let reported = Reported::of(Some(&s));
            Status {
                ready: s.conditions.iter().find(|c| c.type_ == READY).map(|c| {
                    (
                        c.status == "True",
                        c.reason.as_str().into(),
                        c.last_transition_time.clone(),
                    )
                }),
                holds: reported.holds,
                print: status_print(&s),
                section: s.section.map(String::into_boxed_str),
                canonical_arn: s.canonical_arn.map(String::into_boxed_str),
            }
        });
        Cached {
            name,
            uid: m.uid,
            version,
            generation: m.generation,
            created: m.creation_timestamp,
            spec,
            status,
            inputs,
            sending: Mutex::new(None),
        }
    }

    fn sending(&self) -> std::sync::MutexGuard<'_, Option<Box<Sending>>> {
        self.sending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the Ready condition's reason is `reason`: the status on its way, else the one read.
    pub fn reports(&self, reason: Reason) -> bool {
        if let Some(s) = &*self.sending() {
            return s.reason == reason;
        }
        let read = self.status.as_ref().and_then(|s| s.ready.as_ref());
        read.is_some_and(|(_, r, _)| **r == *reason.as_str())
    }

    /// Whether the Ready condition is True, and since when: the status on its way, else the one
    /// read.
    pub fn ready(&self) -> Option<(bool, Time)> {
        if let Some(s) = &*self.sending() {
            return Some((s.ready, s.since.clone()));
        }
        let read = self.status.as_ref()?.ready.as_ref();
        read.map(|(t, _, at)| (*t, at.clone()))
    }

    /// The fingerprint of the status the grant has (see [`status_print`]), or of the one on its
    /// way.
    pub fn status_print(&self) -> Option<u128> {
        if let Some(s) = &*self.sending() {
            return Some(s.print);
        }
        self.status.as_ref().map(|s| s.print)
    }

    /// Notes a status handed to the API server; whether its reason is new (an event is due).
    pub fn send(&self, print: u128, reason: Reason, ready: bool, since: Time) -> bool {
        let new_reason = !self.reports(reason);
        *self.sending() = Some(Box::new(Sending {
            print,
            reason,
            ready,
            since,
        }));
        new_reason
    }

    /// Forgets a status the API server did not take, unless a later one is on its way already:
    /// the next pass decides against the status the grant has.
    pub fn not_sent(&self, print: u128) {
        let mut sending = self.sending();
        if sending.as_ref().is_some_and(|s| s.print == print) {
            *sending = None;
        }
    }

    pub fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }
}

/// A reference to the grant with this name and uid (what an event is about).
pub fn grant_ref(name: &str, uid: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some(IamAccessGrant::api_version(&()).into_owned()),
        kind: Some(IamAccessGrant::kind(&()).into_owned()),
        name: Some(name.to_string()),
        uid,
        ..Default::default()
    }
}

impl GrantRef for Cached {
    fn name(&self) -> &str {
        &self.name
    }
    fn created(&self) -> Option<&Time> {
        self.created.as_ref()
    }
    fn spec(&self) -> &IamAccessGrantSpec {
        &self.spec
    }
    fn reported(&self) -> Reported<'_> {
        let s = self.status.as_ref();
        Reported {
            holds: s.is_some_and(|s| s.holds),
            section: s.and_then(|s| s.section.as_deref()),
            canonical_arn: s.and_then(|s| s.canonical_arn.as_deref()),
        }
    }
    fn version(&self) -> Option<u128> {
        self.version
    }
    fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }
}

/// A digest of what the plan reads of a grant; its status counts only while the spec is invalid
/// (when it keeps the last applied entry).
fn plan_inputs(g: &IamAccessGrant) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    // Refused by aws-auth's plan, which then reads the status (the entry it last applied).
    let invalid = crate::engine::validate::validate(&g.spec).map_or(
        true,
        |v| matches!(&v.entry, crate::engine::validate::Entry::Mapping(m) if m.username.is_empty()),
    );
    crate::engine::plan::grant_inputs(g, invalid, &mut h);
    h.finish()
}

/// The grants, shared with the passes that read them.
/// By name, so that a pass gets the grants in the order the plan's verdicts are in.
type Grants = BTreeMap<Arc<str>, Arc<Cached>>;

#[derive(Default)]
pub struct Cache {
    grants: RwLock<Grants>,
    ready: std::sync::OnceLock<()>,
    listed: tokio::sync::Notify,
}

impl Cache {
    /// Every grant, shared (not copied), in name order.
    pub fn state(&self) -> Vec<Arc<Cached>> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    // The map holds only whole entries; one left by a panicking writer is still whole.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Grants> {
        self.grants.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Grants> {
        self.grants.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns once the first complete list is in.
    pub async fn listed(&self) {
        loop {
            let notified = self.listed.notified();
            if self.ready.get().is_some() {
                return;
            }
            notified.await;
        }
    }
}

/// Applies the watch's events to a [`Cache`]. A relist builds the new map aside and swaps it in
/// when complete, so a pass never sees half a list (an incomplete list would remove entries).
pub struct Writer {
    cache: Arc<Cache>,
    relist: Option<Grants>,
}

impl Writer {
    pub fn new(cache: Arc<Cache>) -> Self {
        Writer {
            cache,
            relist: None,
        }
    }

    /// Applies one event; returns whether it can change the plan: new grants, deletions,
    /// relists, and updates of what the plan reads. The status worker's own patches (thousands in
    /// a burst) are not changes: were they, a burst would never fall quiet and every pass would
    /// wait for the maximum.
    pub fn apply(&mut self, ev: watcher::Event<IamAccessGrant>) -> bool {
        match ev {
            watcher::Event::Apply(g) => {
                let g = Arc::new(Cached::new(g));
                let old = self.cache.write().insert(g.name.clone(), g.clone());
                old.is_none_or(|o| o.inputs != g.inputs)
            }
            watcher::Event::Delete(g) => {
                self.cache.write().remove(GrantRef::name(&g));
                true
            }
            watcher::Event::Init => {
                self.relist = Some(BTreeMap::new());
                false
            }
            watcher::Event::InitApply(g) => {
                let g = Arc::new(Cached::new(g));
                self.relist
                    .get_or_insert_default()
                    .insert(g.name.clone(), g);
                true
            }
            watcher::Event::InitDone => {
                if let Some(all) = self.relist.take() {
                    *self.cache.write() = all;
                }
                let _ = self.cache.ready.set(());
                self.cache.listed.notify_waiters();
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IamAccessGrantSpec, IamAccessGrantStatus};

    #[test]
    fn status_patches_of_valid_grants_are_not_plan_changes() {
        let cache = Arc::new(Cache::default());
        let mut w = Writer::new(cache.clone());
        let spec = IamAccessGrantSpec::arn("arn:aws:iam::111122223333:role/a", "a", &["dev"]);
        let g = IamAccessGrant::new("a", spec);
        assert!(w.apply(watcher::Event::Apply(g.clone())));
        let mut patched = g.clone();
        patched.status = Some(IamAccessGrantStatus {
            section: Some("mapRoles".into()),
            ..Default::default()
        });
        assert!(!w.apply(watcher::Event::Apply(patched.clone())));
        let mut edited = patched.clone();
        edited.spec.groups.push("ops".into());
        assert!(w.apply(watcher::Event::Apply(edited.clone())));
        // While the spec is invalid, the status decides what is kept: it counts.
        let mut broken = edited.clone();
        broken.spec.username = None;
        assert!(w.apply(watcher::Event::Apply(broken.clone())));
        broken.status = None;
        assert!(w.apply(watcher::Event::Apply(broken.clone())));
        assert!(w.apply(watcher::Event::Delete(broken)));
        assert!(cache.state().is_empty());
        assert!(!w.apply(watcher::Event::Init));
        assert!(w.apply(watcher::Event::InitApply(g)));
        assert!(w.apply(watcher::Event::InitDone));
    }

    #[test]
    fn a_relist_is_seen_whole_and_replaces_what_went_before() {
        let cache = Arc::new(Cache::default());
        let mut w = Writer::new(cache.clone());
        let g = |n: &str| {
            let spec = IamAccessGrantSpec::arn(&format!("arn:aws:iam::1:role/{n}"), n, &[]);
            IamAccessGrant::new(n, spec)
        };
        w.apply(watcher::Event::Init);
        w.apply(watcher::Event::InitApply(g("a")));
        w.apply(watcher::Event::InitDone);
        assert!(futures::FutureExt::now_or_never(cache.listed()).is_some());
        w.apply(watcher::Event::Init);
        w.apply(watcher::Event::InitApply(g("b")));
        // Until the relist is complete, passes see the last complete list.
        let names = |c: &Cache| {
            let mut n: Vec<String> = c.state().iter().map(|g| g.name.to_string()).collect();
            n.sort();
            n
        };
        assert_eq!(names(&cache), ["a"]);
        w.apply(watcher::Event::InitApply(g("c")));
        w.apply(watcher::Event::InitDone);
        assert_eq!(names(&cache), ["b", "c"]);
    }

    #[test]
    fn the_status_gist_and_print_follow_the_object() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
        let spec = IamAccessGrantSpec::arn("arn:aws:iam::111122223333:role/a", "a", &["dev"]);
        let mut g = IamAccessGrant::new("a", spec);
        g.metadata.uid = Some("u".into());
        g.metadata.resource_version = Some("7".into());
        let at = Time(k8s_openapi::jiff::Timestamp::from_second(5).unwrap());
        let status = IamAccessGrantStatus {
            section: Some("mapRoles".into()),
            canonical_arn: Some("arn:aws:iam::111122223333:role/a".into()),
            conditions: vec![Condition {
                type_: READY.into(),
                status: "True".into(),
                reason: "Applied".into(),
                message: "m".into(),
                observed_generation: None,
                last_transition_time: at.clone(),
            }],
            ..Default::default()
        };
        g.status = Some(status.clone());
        let c = Cached::new(g.clone());
        assert!(c.reports(Reason::Applied));
        assert_eq!(c.ready(), Some((true, at.clone())));
        assert_eq!(c.status_print(), Some(status_print(&status)));
        assert_eq!(c.reported(), g.reported());
        assert_eq!(c.version(), g.version());
        let mut other = status.clone();
        other.conditions[0].message = "n".into();
        assert_ne!(c.status_print(), Some(status_print(&other)));
        let regarding = grant_ref(&c.name, c.uid().map(String::from));
        assert_eq!(regarding.uid.as_deref(), Some("u"));
    }
}
