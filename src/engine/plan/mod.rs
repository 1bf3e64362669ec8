//! The plan: all grants + the current aws-auth ConfigMap -> the new aws-auth `data`, the ownership
//! record, a verdict per grant and a diff. Pure; the controller and `render` both call it.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;

use crate::api::Reason;
use crate::engine::authmap::arn;
use crate::engine::authmap::read::{AwsAuthRead, Finding, read_data_sharing};
use crate::engine::authmap::render::{
    RenderMismatch, TextProof, account_text, mapping_text, mapping_text_len, prove_texts,
    quoted_len, render_accounts,
};
use crate::engine::authmap::{Mapping, Section, excerpt, shown};
use crate::engine::validate::{Entry, ValidGrant, validate};
use crate::engine::{parallel, policy};

/// Annotation on aws-auth listing, per key, the principals this operator manages.
pub const OWNERSHIP_ANNOTATION: &str = "aws-auth.dev/managed";
/// Annotation on aws-auth describing removals the breaker holds, with their confirmation token.
pub const HELD_ANNOTATION: &str = "aws-auth.dev/removal-held";
/// Annotation a person sets on aws-auth (`confirm-removal TOKEN`) to let a held removal proceed.
pub const CONFIRM_ANNOTATION: &str = "aws-auth.dev/confirm-removal";
/// Who set the confirmation: the webhook admits a confirmation only with the requester's own
/// username here, and the RemovalConfirmed event names it.
pub const CONFIRMED_BY_ANNOTATION: &str = "aws-auth.dev/confirmed-by";

pub use crate::engine::policy::glob_match;

/// What the plan decided for one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub grant: Arc<str>,
    pub reason: Reason,
    /// Shared with the plan's per-grant parts, which thousands of verdicts repeat pass after pass.
    pub message: Arc<str>,
    pub section: Option<Section>,
    pub canonical_arn: Option<Arc<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The complete new `data` (keys other than the three are carried over untouched).
    pub data: BTreeMap<String, String>,
    pub ownership: Ownership,
    /// Whether aws-auth must be written (created, or its data or ownership changed).
    pub changed: bool,
    /// One per grant, ordered by grant name.
    pub verdicts: Vec<Verdict>,
    /// Entry-level changes.
    pub diff: Vec<Change>,
    /// Everything the reader found in the current aws-auth, plus ownership-record problems.
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
    /// Removals this plan keeps back (the breaker, or grants unavailable).
    pub held: Option<HeldRemoval>,
    /// A held removal that proceeds in this plan because a person confirmed its token.
    pub confirmed: Option<HeldRemoval>,
    /// Managed entries this plan removes (none of them held).
    pub removed: usize,
    /// Managed entries aws-auth held before this plan (the removal window's peak).
    pub managed_before: usize,
}

impl Plan {
    /// Whether this plan drops managed entries or holds their removal back: only such a plan
    /// depends on `grants_unavailable`.
    pub fn removes_managed(&self) -> bool {
        self.removed > 0 || self.held.is_some() || self.confirmed.is_some()
    }

    /// The aws-auth ConfigMap this plan stands for. `for_write` keeps the server's fields
    /// (resourceVersion is the write precondition); otherwise it is a clean manifest.
    pub fn configmap(
        &self,
        current: Option<&ConfigMap>,
        namespace: &str,
        name: &str,
        for_write: bool,
    ) -> ConfigMap {
        self.configmap_of(self.data.clone(), current, namespace, name, for_write)
    }

    /// [`Plan::configmap`] for the write, moving the plan's data into it: the plan keeps no
    /// second copy of up to 1 MiB of text while the write and the rest of the pass run (the
    /// pass needs the verdicts, the diff and the rails after the write, not the data).
    pub fn take_configmap_for_write(
        &mut self,
        current: Option<&ConfigMap>,
        namespace: &str,
        name: &str,
    ) -> ConfigMap {
        let data = std::mem::take(&mut self.data);
        self.configmap_of(data, current, namespace, name, true)
    }

    fn configmap_of(
        &self,
        data: BTreeMap<String, String>,
        current: Option<&ConfigMap>,
        namespace: &str,
        name: &str,
        for_write: bool,
    ) -> ConfigMap {
        let mut meta = current
            .map(|c| c.metadata.clone())
            .unwrap_or_else(|| ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                ..Default::default()
            });
        if !for_write {
            meta = ObjectMeta {
                name: meta.name,
                namespace: meta.namespace,
                labels: meta.labels,
                annotations: meta.annotations,
                ..Default::default()
            };
            if let Some(a) = meta.annotations.as_mut() {
                a.remove("kubectl.kubernetes.io/last-applied-configuration");
            }
        }
        let annotations = meta.annotations.get_or_insert_with(Default::default);
        annotations.insert(
            OWNERSHIP_ANNOTATION.to_string(),
            self.ownership.to_annotation(),
        );
        // A confirmation is used once: whatever it named has been decided by this plan.
        annotations.remove(CONFIRM_ANNOTATION);
        annotations.remove(CONFIRMED_BY_ANNOTATION);
        match &self.held {
            Some(h) => {
                annotations.insert(
                    HELD_ANNOTATION.to_string(),
                    serde_json::to_string(h).expect("a held removal serializes"),
                );
            }
            None => {
                annotations.remove(HELD_ANNOTATION);
            }
        }
        ConfigMap {
            metadata: meta,
            data: Some(data),
            binary_data: current.and_then(|c| c.binary_data.clone()),
            immutable: current.and_then(|c| c.immutable),
        }
    }

    pub fn verdict(&self, grant: &str) -> Option<&Verdict> {
        // Verdicts are sorted by grant name; a sync looks up every grant.
        self.verdicts
            .binary_search_by(|v| (*v.grant).cmp(grant))
            .ok()
            .map(|i| &self.verdicts[i])
    }

    pub fn all_applied(&self) -> bool {
        self.verdicts.iter().all(|v| v.reason == Reason::Applied)
    }
}

pub(crate) fn entry_key(entry: &Entry) -> String {
    match entry {
        Entry::Mapping(m) => arn::match_key(&m.arn),
        Entry::Account(a) => a.clone(),
    }
}

/// The length of an entry's rendered text (the size budget's unit).
fn entry_len(section: Section, entry: &Entry) -> usize {
    match entry {
        Entry::Mapping(m) => mapping_text_len(section, m),
        Entry::Account(a) => quoted_len(a) + 3,
    }
}

pub(crate) fn section_entries(read: &AwsAuthRead, section: Section) -> Vec<(usize, Entry)> {
    match section {
        Section::MapRoles => read
            .roles
            .entries
            .iter()
            .map(|e| (e.line, Entry::Mapping(Arc::new(e.value.clone()))))
            .collect(),
        Section::MapUsers => read
            .users
            .entries
            .iter()
            .map(|e| (e.line, Entry::Mapping(Arc::new(e.value.clone()))))
            .collect(),
        Section::MapAccounts => read
            .accounts
            .entries
            .iter()
            .map(|e| (e.line, Entry::Account(e.value.clone())))
            .collect(),
    }
}

fn describe(section: Section, entry: &Entry) -> String {
    match entry {
        // Joined, not formatted: a first plan describes every grant.
        Entry::Mapping(m) => [
            section.key(),
            " maps ",
            &shown(&m.arn),
            " to username \"",
            &shown(&m.username),
            "\" with groups [",
            &shown(&m.groups.join(", ")),
            "]",
        ]
        .concat(),
        Entry::Account(a) => format!("{section} admits every principal of account {a}"),
    }
}

/// Renders a key from its entries (a key only ever holds its own kind of entry).
pub(crate) fn render_entries(
    section: Section,
    entries: &[Entry],
) -> Result<String, RenderMismatch> {
    let entries: Vec<Managed> = entries
        .iter()
        .map(|entry| Managed {
            entry,
            grant: None,
            holder: None,
        })
        .collect();
    render_managed(section, &entries)
}

/// An entry the plan writes, with the grant it comes from (whose rendered text it reuses), if any.
#[derive(Clone, Copy)]
struct Managed<'a> {
    entry: &'a Entry,
    grant: Option<&'a Candidate>,
    holder: Option<Holder>,
}

/// Grants + current aws-auth -> the new aws-auth and a verdict per grant.
pub fn plan<G: GrantRef>(
    grants: &[G],
    current: Option<&ConfigMap>,
    config: &PlanConfig,
) -> Result<Arc<Plan>, RenderMismatch> {
    plan_in(&Memo::default(), grants, current, config)
}

/// [`plan`], keeping in `memo` what a later plan over mostly the same inputs reuses (the
/// controller's passes). The result is the same as [`plan`]'s for the same inputs.
pub fn plan_in<G: GrantRef>(
    memo: &Memo,
    grants: &[G],
    current: Option<&ConfigMap>,
    config: &PlanConfig,
) -> Result<Arc<Plan>, RenderMismatch> {
    let fp = memo.fingerprint(grants, current, config);
    if let Some(p) = memo.get(fp.plan) {
        return Ok(p);
    }
    let p = Arc::new(plan_anew(memo, grants, current, config, &fp)?);
    memo.put(fp.plan, p.clone());
    Ok(p)
}

/// A grant the checks that read nothing else accepted: its aws-auth key, principal and entry.
pub struct Alone {
    pub section: Section,
    pub canonical: Arc<str>,
    pub entry: Entry,
}

/// The checks a grant passes or fails on its own (validity, the cluster creator, the privileged
/// policy), for the access-entry backend, which shares them with aws-auth's plan.
pub fn decide_alone<G: GrantRef>(g: &G, config: &PlanConfig) -> Result<Alone, Verdict> {
    match decide(g, config, false) {
        Decision::Candidate(c) => Ok(Alone {
            section: c.section,
            canonical: c.canonical,
            entry: c.entry,
        }),
        Decision::Refused(r) => Err(Verdict {
            grant: g.name().into(),
            reason: r.reason,
            message: r.message,
            section: r.section,
            canonical_arn: r.canonical_arn,
        }),
    }
}

/// One pass over the phases: read aws-auth, order and decide the grants, fit them in the size
/// budget, hold mass removals, assemble each key. Each phase is a function of what the ones
/// before it made; only the memo is shared.
fn plan_anew<G: GrantRef>(
    memo: &Memo,
    grants: &[G],
    current: Option<&ConfigMap>,
    config: &PlanConfig,
    fp: &memo::Fingerprint,
) -> Result<Plan, RenderMismatch> {
    let (at, notes) = Inputs::read(memo, current, config, fp);
    let now = current::split(&at.prepared, &at.owned_before);
    let order = oldest_first(grants, fp);
    let owns = memo.own(&order, fp.rails, |g| decide_own(g, config));
    let claims = claims::claim(&at, &now, &order, &owns);
    let fitted = budget::fit(&at, &now, claims);
    assemble::finish(&at, &now, fitted, notes)
}

/// What every phase may read: aws-auth as it is, read, and the configuration.
struct Inputs<'a> {
    current: Option<&'a ConfigMap>,
    data: &'a BTreeMap<String, String>,
    prepared: Arc<Prepared>,
    owned_before: Arc<Ownership>,
    config: &'a PlanConfig,
}

/// `data` of an aws-auth that has none.
static NO_DATA: BTreeMap<String, String> = BTreeMap::new();

impl<'a> Inputs<'a> {
    /// aws-auth read (or the memo's reading of the same text) and its ownership record; an
    /// unreadable record is a note, and counts as empty.
    fn read(
        memo: &Memo,
        current: Option<&'a ConfigMap>,
        config: &'a PlanConfig,
        fp: &memo::Fingerprint,
    ) -> (Inputs<'a>, Vec<String>) {
        let data = current.and_then(|c| c.data.as_ref()).unwrap_or(&NO_DATA);
        let mut notes = Vec::new();
        let owned_before = memo.ownership(current).unwrap_or_else(|e| {
            notes.push(e);
            Arc::default()
        });
        let at = Inputs {
            current,
            data,
            prepared: memo.prepared(fp.data, || Prepared::new(data)),
            owned_before,
            config,
        };
        (at, notes)
    }
}

/// One entry-level change of a plan: shown `+ mapRoles: ARN username="..." groups=[...]` for an
/// entry added, `- ...` for one removed. Kept as the entry, not as text: a first plan adds
/// thousands of entries and only a few of the lines are ever shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Change {
    pub added: bool,
    pub section: Section,
    pub entry: Entry,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (sign, section) = (if self.added { '+' } else { '-' }, self.section);
        match &self.entry {
            Entry::Mapping(m) => write!(
                f,
                "{sign} {section}: {} username={:?} groups=[{}]",
                m.arn,
                m.username,
                m.groups.join(",")
            ),
            Entry::Account(a) => write!(f, "{sign} {section}: {a}"),
        }
    }
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.to_string(), f)
    }
}

impl PartialEq<&str> for Change {
    fn eq(&self, other: &&str) -> bool {
        self.to_string().as_str() == *other
    }
}

pub(crate) fn entry_diff<E: std::borrow::Borrow<Entry>>(
    section: Section,
    before: &[E],
    after: &[E],
) -> Vec<Change> {
    let line = |added: bool, e: &Entry| Change {
        added,
        section,
        entry: e.clone(),
    };
    // What both share at the start and at the end is unchanged; a single change among
    // thousands of entries leaves a few in between.
    let same = |a: &E, b: &E| a.borrow() == b.borrow();
    let head = before
        .iter()
        .zip(after)
        .take_while(|(a, b)| same(a, b))
        .count();
    let (before, after) = (&before[head..], &after[head..]);
    let tail = before
        .iter()
        .rev()
        .zip(after.iter().rev())
        .take_while(|(a, b)| same(a, b))
        .count();
    let (before, after) = (&before[..before.len() - tail], &after[..after.len() - tail]);
    // Nothing on one side (a first plan adds every entry): no matching to do.
    if before.is_empty() || after.is_empty() {
        let added = before.is_empty();
        let side = if added { after } else { before };
        return side.iter().map(|e| line(added, e.borrow())).collect();
    }
    // A multiset difference of the rest, linear in the number of entries.
    let mut remaining: HashMap<&Entry, usize> = HashMap::new();
    for e in after {
        *remaining.entry(e.borrow()).or_default() += 1;
    }
    let mut out = Vec::new();
    for e in before.iter().map(E::borrow) {
        match remaining.get_mut(e) {
            Some(n) if *n > 0 => *n -= 1,
            _ => out.push(line(false, e)),
        }
    }
    // Added entries in the order they appear.
    for e in after.iter().map(E::borrow) {
        if let Some(n) = remaining.get_mut(e)
            && *n > 0
        {
            *n -= 1;
            out.push(line(true, e));
        }
    }
    out
}

mod assemble;
mod budget;
mod claims;
mod config;
mod current;
mod decide;
mod input;
mod keys;
mod memo;
mod ownership;
mod rails;
mod window;
use assemble::*;
use budget::Fitted;
use claims::Claims;
pub use config::{
    ANNOTATIONS_LIMIT, ANNOTATIONS_MARGIN, DATA_LIMIT, DATA_MARGIN, PlanConfig, RailsArgs,
};
use current::*;
use decide::*;
pub use input::{GrantRef, Reported};
use keys::*;
pub use memo::Memo;
pub(crate) use memo::grant_inputs;
use ownership::*;
pub use ownership::{DEFLATE_ABOVE, Holder, Ownership};
use rails::*;
pub use rails::{HELD_LISTED, HeldRemoval};
pub use window::{RemovalWindow, WINDOW_ANNOTATION};
#[cfg(test)]
mod tests;
