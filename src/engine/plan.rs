//! The plan: all grants + the current aws-auth ConfigMap -> the new aws-auth `data`, the ownership
//! record, a verdict per grant and a diff. Pure; the controller and `render` both call it.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::ObjectMeta;

use crate::api::{IamAccessGrant, Reason};
use crate::engine::authmap::arn;
use crate::engine::authmap::read::{AwsAuthRead, Finding, read_data};
use crate::engine::authmap::render::{
    RenderMismatch, mapping_text_len, quoted_len, render_accounts, render_mappings,
};
use crate::engine::authmap::{Mapping, Section, excerpt, shown};
use crate::engine::validate::{Entry, ValidGrant, validate};

/// Annotation on aws-auth listing, per key, the principals this operator manages.
pub const OWNERSHIP_ANNOTATION: &str = "aws-auth.dev/managed";
/// Annotation on aws-auth describing removals the breaker holds, with their confirmation token.
pub const HELD_ANNOTATION: &str = "aws-auth.dev/removal-held";
/// Annotation a person sets on aws-auth (`confirm-removal TOKEN`) to let a held removal proceed.
pub const CONFIRM_ANNOTATION: &str = "aws-auth.dev/confirm-removal";

/// A ConfigMap's `data` holds at most 1 MiB; the budget keeps a margin for other writers' keys
/// that arrive between a plan and its write.
pub const DATA_LIMIT: usize = 1024 * 1024;
pub const DATA_MARGIN: usize = 32 * 1024;
/// An object's annotations hold at most 256 KiB together.
pub const ANNOTATIONS_LIMIT: usize = 256 * 1024;
pub const ANNOTATIONS_MARGIN: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// Principal keys of the cluster creator(s) (see [`arn::principal_key`]).
    pub cluster_creators: Vec<String>,
    /// Budget for the size of `data` (keys and values, as the API server counts them).
    pub max_data_bytes: usize,
    /// Budget for all annotations of aws-auth; the ownership record gets what the others leave.
    pub max_annotation_bytes: usize,
    /// A pass that would remove more than this many managed entries *and* more than
    /// `max_removal_percent` of them removes none until a person confirms.
    pub max_removals: usize,
    pub max_removal_percent: u32,
    /// Groups that only principals matching `privileged_principals` (ARN globs) may be granted.
    pub privileged_groups: Vec<String>,
    pub privileged_principals: Vec<String>,
    /// Set for one pass when the grant list cannot be trusted to be complete (the CRD is missing
    /// or being deleted): no managed entry is removed, whatever the count or confirmation.
    pub grants_unavailable: Option<String>,
    /// Managed entries the operator removed in its recent passes (its removal window). They count
    /// toward the breaker with this pass's, so a deletion spread over many passes is held as a
    /// mass deletion in one would be.
    pub recently_removed: usize,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            cluster_creators: Vec::new(),
            max_data_bytes: DATA_LIMIT - DATA_MARGIN,
            max_annotation_bytes: ANNOTATIONS_LIMIT - ANNOTATIONS_MARGIN,
            max_removals: 5,
            max_removal_percent: 30,
            privileged_groups: vec!["system:masters".to_string()],
            privileged_principals: Vec::new(),
            grants_unavailable: None,
            recently_removed: 0,
        }
    }
}

/// The lockout rails, as `run` and `render` take them (so a pull-request check agrees with the
/// cluster).
#[derive(Debug, Clone, clap::Args)]
pub struct RailsArgs {
    /// A group that only principals matching --privileged-principal may be granted (repeatable,
    /// comma-separated in the environment).
    #[arg(
        long = "privileged-group",
        env = "AWS_AUTH_PRIVILEGED_GROUP",
        value_delimiter = ',',
        default_value = "system:masters"
    )]
    pub privileged_groups: Vec<String>,
    /// An ARN glob (`*`, `?`; case-insensitive) of principals that may hold a privileged group,
    /// e.g. `arn:aws:iam::111122223333:role/platform-*` (repeatable). None: nobody may.
    #[arg(
        long = "privileged-principal",
        env = "AWS_AUTH_PRIVILEGED_PRINCIPAL",
        value_delimiter = ','
    )]
    pub privileged_principals: Vec<String>,
    /// A pass that would remove more than this many managed entries...
    #[arg(long, env = "AWS_AUTH_MAX_REMOVALS", default_value_t = 5)]
    pub max_removals: usize,
    /// ...and more than this percentage of them removes none until confirmed (`confirm-removal`).
    #[arg(long, env = "AWS_AUTH_MAX_REMOVAL_PERCENT", default_value_t = 30)]
    pub max_removal_percent: u32,
}

impl PlanConfig {
    /// The configuration `run` and `render` build from their flags.
    pub fn from_args<S: AsRef<str>>(creators: &[S], rails: &RailsArgs) -> crate::Result<Self> {
        let mut c = Self::for_cluster_creators(creators)?;
        c.privileged_groups = rails.privileged_groups.clone();
        c.privileged_principals = rails.privileged_principals.clone();
        c.max_removals = rails.max_removals;
        c.max_removal_percent = rails.max_removal_percent;
        if c.max_removal_percent > 100 {
            return Err(crate::Error::Usage {
                flag: "--max-removal-percent",
                message: format!("{} is not a percentage (0-100)", c.max_removal_percent),
            });
        }
        Ok(c)
    }

    /// The default budgets with the cluster creators given on the command line.
    pub fn for_cluster_creators<S: AsRef<str>>(arns: &[S]) -> crate::Result<Self> {
        Self::default()
            .with_cluster_creators(arns)
            .map_err(|e| crate::Error::Usage {
                flag: "--cluster-creator-arn",
                message: e.to_string(),
            })
    }

    /// Configures the cluster creator ARNs (any form: role, path-carrying role, session ARN).
    pub fn with_cluster_creators<S: AsRef<str>>(
        mut self,
        arns: &[S],
    ) -> Result<Self, arn::ArnError> {
        self.cluster_creators = arns
            .iter()
            .map(|a| arn::principal_key(a.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }
}

/// Managed entries a pass would remove but keeps, and why; `token` names exactly this set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeldRemoval {
    pub token: String,
    pub count: usize,
    /// The principals whose entries are kept (ARNs or account ids), sorted; the first
    /// [`HELD_LISTED`] of them: the annotation must fit aws-auth's 256 KiB of annotations when
    /// thousands are held. `count` and `token` always stand for the whole set.
    pub principals: Vec<String>,
    pub reason: String,
    /// The step that lets this removal proceed (absent while grants are unavailable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
}

impl HeldRemoval {
    /// The held removal recorded on aws-auth, if any.
    pub fn from_configmap(cm: Option<&ConfigMap>) -> Option<HeldRemoval> {
        let value = cm?.metadata.annotations.as_ref()?.get(HELD_ANNOTATION)?;
        serde_json::from_str(value).ok()
    }

    /// Principals for a message: the first few, and how many more.
    pub fn summary(&self) -> String {
        const SHOWN: usize = 10;
        let mut s: Vec<String> = self
            .principals
            .iter()
            .take(SHOWN)
            .map(|p| shown(p).into_owned())
            .collect();
        if self.count > SHOWN {
            s.push(format!("and {} more", self.count - SHOWN));
        }
        s.join(", ")
    }
}

/// The confirmation token of a removal set: FNV-1a over the sorted entries, so the same set
/// always gets the same token and a different set a different one.
fn removal_token(removed: &[(Section, String)]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (section, key) in removed {
        for b in section
            .key()
            .bytes()
            .chain([b'/'])
            .chain(key.bytes())
            .chain([b'\n'])
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// `*` matches any run of characters, `?` one; compared under case folding.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    crate::engine::glob::matches(&arn::fold_case(pattern), &arn::fold_case(text))
}

/// The privileged group a grant's groups could put its principal in: a literal match, or a
/// templated group (`system:{{SessionName}}`) that some session name could expand to one.
pub(crate) fn privileged_group<'c>(groups: &[String], config: &'c PlanConfig) -> Option<&'c str> {
    config
        .privileged_groups
        .iter()
        .map(String::as_str)
        .find(|p| {
            groups.iter().any(|g| {
                if g.contains("{{") {
                    let as_glob = crate::engine::authmap::template::TOKENS
                        .iter()
                        .fold(g.replace(['*', '?'], ""), |acc, t| acc.replace(t, "*"));
                    glob_match(&as_glob, p)
                } else if g.is_ascii() && p.is_ascii() {
                    g.eq_ignore_ascii_case(p)
                } else {
                    arn::fold_case(g) == arn::fold_case(p)
                }
            })
        })
}

/// The principals the operator wrote, per key. Lower-cased principal keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership(pub BTreeMap<Section, BTreeSet<String>>);

impl Ownership {
    pub fn from_configmap(cm: Option<&ConfigMap>) -> Result<Self, String> {
        let Some(value) = cm
            .and_then(|c| c.metadata.annotations.as_ref())
            .and_then(|a| a.get(OWNERSHIP_ANNOTATION))
        else {
            return Ok(Self::default());
        };
        let invalid = |e: &dyn std::fmt::Display| {
            format!(
                "annotation {OWNERSHIP_ANNOTATION} is not valid: {e}; every entry is treated as not managed"
            )
        };
        let json: serde_json::Value = serde_json::from_str(value).map_err(|e| invalid(&e))?;
        // Version 2 groups the principals by what precedes their last `/`; the first version
        // (a plain list per key) is still read, and rewritten as version 2 at the next write.
        let raw: BTreeMap<String, BTreeSet<String>> = if json.get("v").is_some() {
            let grouped: BTreeMap<String, serde_json::Value> =
                serde_json::from_value(json).map_err(|e| invalid(&e))?;
            let mut out = BTreeMap::new();
            for (k, v) in grouped.into_iter().filter(|(k, _)| k != "v") {
                let groups: BTreeMap<String, Vec<String>> =
                    serde_json::from_value(v).map_err(|e| invalid(&e))?;
                let keys: BTreeSet<String> = groups
                    .into_iter()
                    .flat_map(|(prefix, names)| {
                        names.into_iter().map(move |n| format!("{prefix}{n}"))
                    })
                    .collect();
                out.insert(k, keys);
            }
            out
        } else {
            serde_json::from_value(json).map_err(|e| invalid(&e))?
        };
        let mut out = BTreeMap::new();
        for (k, v) in raw {
            let section = Section::from_key(&k).ok_or_else(|| {
                format!("annotation {OWNERSHIP_ANNOTATION} names unknown key `{k}`")
            })?;
            out.insert(section, v);
        }
        Ok(Ownership(out))
    }

    pub fn owns(&self, section: Section, key: &str) -> bool {
        self.0.get(&section).is_some_and(|s| s.contains(key))
    }

    /// Version 2: `{"v":2,"mapRoles":{"arn:aws:iam::111122223333:role/":["a","b"]}}`, the common
    /// part of each principal written once.
    pub fn to_annotation(&self) -> String {
        let mut out = serde_json::Map::new();
        out.insert("v".into(), 2.into());
        for (section, keys) in self.0.iter().filter(|(_, v)| !v.is_empty()) {
            let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for k in keys {
                let (prefix, name) = split_key(k);
                groups.entry(prefix).or_default().push(name);
            }
            out.insert(
                section.key().into(),
                serde_json::to_value(groups).expect("string lists serialize"),
            );
        }
        serde_json::Value::Object(out).to_string()
    }

    fn normalized(&self) -> BTreeMap<Section, BTreeSet<String>> {
        self.0
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }
}

/// A principal key split after its last `/` (the part the ownership record shares).
fn split_key(k: &str) -> (&str, &str) {
    match k.rfind('/') {
        Some(i) => k.split_at(i + 1),
        None => ("", k),
    }
}

/// Bytes the ownership record grows by when `key` is added (its prefix is counted the first time).
fn record_cost(key: &str, prefixes: &mut HashSet<String>) -> usize {
    let (prefix, name) = split_key(key);
    let mut cost = name.len() + 3;
    if prefixes.insert(prefix.to_string()) {
        cost += prefix.len() + 8;
    }
    cost
}

/// What the plan decided for one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub grant: String,
    pub reason: Reason,
    pub message: String,
    pub section: Option<Section>,
    pub canonical_arn: Option<String>,
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
    /// Entry-level changes, `+ ` added, `- ` removed.
    pub diff: Vec<String>,
    /// Everything the reader found in the current aws-auth, plus ownership-record problems.
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
    /// Removals this plan keeps back (the breaker, or grants unavailable).
    pub held: Option<HeldRemoval>,
    /// A held removal that proceeds in this plan because a person confirmed its token.
    pub confirmed: Option<HeldRemoval>,
    /// Managed entries this plan removes (none of them held).
    pub removed: usize,
}

impl Plan {
    /// The aws-auth ConfigMap this plan stands for. `for_write` keeps the server's fields
    /// (resourceVersion is the write precondition); otherwise it is a clean manifest.
    pub fn configmap(
        &self,
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
            data: Some(self.data.clone()),
            binary_data: current.and_then(|c| c.binary_data.clone()),
            immutable: current.and_then(|c| c.immutable),
        }
    }

    pub fn verdict(&self, grant: &str) -> Option<&Verdict> {
        // Verdicts are sorted by grant name; a sync looks up every grant.
        self.verdicts
            .binary_search_by(|v| v.grant.as_str().cmp(grant))
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
            .map(|e| (e.line, Entry::Mapping(e.value.clone())))
            .collect(),
        Section::MapUsers => read
            .users
            .entries
            .iter()
            .map(|e| (e.line, Entry::Mapping(e.value.clone())))
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
        Entry::Mapping(m) => format!(
            "{section} maps {} to username \"{}\" with groups [{}]",
            shown(&m.arn),
            shown(&m.username),
            shown(&m.groups.join(", "))
        ),
        Entry::Account(a) => format!("{section} admits every principal of account {a}"),
    }
}

/// Renders a key from its entries (a key only ever holds its own kind of entry).
pub(crate) fn render_entries(
    section: Section,
    entries: &[Entry],
) -> Result<String, RenderMismatch> {
    if section == Section::MapAccounts {
        let accounts: Vec<String> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Account(a) => Some(a.clone()),
                Entry::Mapping(_) => None,
            })
            .collect();
        return render_accounts(&accounts);
    }
    let mappings: Vec<Mapping> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Mapping(m) => Some(m.clone()),
            Entry::Account(_) => None,
        })
        .collect();
    render_mappings(section, &mappings)
}

/// An unowned entry the plan found, by principal key.
struct Unowned {
    section: Section,
    line: usize,
}

/// Grants + current aws-auth -> the new aws-auth and a verdict per grant.
pub fn plan<G: std::borrow::Borrow<IamAccessGrant>>(
    grants: &[G],
    current: Option<&ConfigMap>,
    config: &PlanConfig,
) -> Result<Plan, RenderMismatch> {
    let key = memo::fingerprint(grants, current, config);
    if let Some(p) = memo::get(key) {
        return Ok(p);
    }
    let p = plan_anew(grants, current, config)?;
    memo::put(key, &p);
    Ok(p)
}

fn plan_anew<G: std::borrow::Borrow<IamAccessGrant>>(
    grants: &[G],
    current: Option<&ConfigMap>,
    config: &PlanConfig,
) -> Result<Plan, RenderMismatch> {
    let empty = BTreeMap::new();
    let cur_data = current.and_then(|c| c.data.as_ref()).unwrap_or(&empty);
    let read = read_data(cur_data);
    let mut notes = Vec::new();
    let owned_before = Ownership::from_configmap(current).unwrap_or_else(|e| {
        notes.push(e);
        Ownership::default()
    });

    // Current entries: unowned ones are kept; managed ones are rebuilt from the grants.
    // Each readable key's entries with their principal keys, worked out once.
    let mut current_entries: BTreeMap<Section, Vec<(usize, Entry, String)>> = Section::ALL
        .into_iter()
        .filter(|&s| read.readable(s))
        .map(|s| {
            let entries = section_entries(&read, s)
                .into_iter()
                .map(|(line, e)| {
                    let key = entry_key(&e);
                    (line, e, key)
                })
                .collect();
            (s, entries)
        })
        .collect();
    let mut unowned: HashMap<String, Unowned> = HashMap::new();
    let mut managed_now: HashMap<(Section, String), &Entry> = HashMap::new();
    for (&section, entries) in &current_entries {
        for (line, entry, key) in entries {
            if owned_before.owns(section, key) {
                managed_now.insert((section, key.clone()), entry);
            } else {
                unowned.entry(key.clone()).or_insert(Unowned {
                    section,
                    line: *line,
                });
            }
        }
    }

    // Oldest first: the oldest grant wins a principal.
    let mut order: Vec<&IamAccessGrant> = grants.iter().map(|g| g.borrow()).collect();
    order.sort_by(|a, b| {
        let ta = a.metadata.creation_timestamp.as_ref();
        let tb = b.metadata.creation_timestamp.as_ref();
        let (na, nb) = (a.metadata.name.as_deref(), b.metadata.name.as_deref());
        (ta.is_none(), ta, na).cmp(&(tb.is_none(), tb, nb))
    });

    let mut verdicts: Vec<Verdict> = Vec::new();
    let mut claimed: HashMap<String, String> = HashMap::new();
    let mut accepted: Vec<(String, ValidGrant)> = Vec::new();
    let mut last_applied_of_invalid: Vec<(Section, String)> = Vec::new();
    // Grants that wait on an unreadable key keep the entry they have, whatever it is.
    let mut held: Vec<(Section, String)> = Vec::new();
    for g in order {
        let name = g.name_any();
        let mut refuse = |reason, message: String, v: Option<&ValidGrant>| {
            verdicts.push(Verdict {
                grant: name.clone(),
                reason,
                message,
                section: v.map(|v| v.section),
                canonical_arn: v.map(|v| v.canonical.clone()),
            })
        };
        // The creator in any form (a session ARN, a path) is named as such before anything
        // else, so no message ever suggests the ARN that would be refused next.
        if let Some(raw) = g.spec.arn.as_deref()
            && arn::principal_key(raw.trim()).is_ok_and(|k| config.cluster_creators.contains(&k))
        {
            refuse(
                Reason::ClusterCreator,
                cluster_creator_message(raw.trim()),
                None,
            );
            continue;
        }
        let v = match validate(&g.spec) {
            Ok(v) => v,
            Err(invalid) => {
                let kept = remember_last_applied(g, &mut last_applied_of_invalid);
                let suffix = if kept.is_some() {
                    "; the entry it last applied stays in aws-auth until the grant is fixed or deleted"
                } else {
                    ""
                };
                // The kept entry's key and principal go into the status, so that the next pass
                // (after the status says Invalid) still knows what to keep.
                verdicts.push(Verdict {
                    grant: name.clone(),
                    reason: Reason::Invalid,
                    message: format!("{invalid}{suffix}"),
                    section: kept.as_ref().map(|k| k.0),
                    canonical_arn: kept.map(|k| k.1),
                });
                continue;
            }
        };
        if v.section != Section::MapAccounts && config.cluster_creators.contains(&v.key) {
            refuse(
                Reason::ClusterCreator,
                cluster_creator_message(&v.canonical),
                Some(&v),
            );
            continue;
        }
        if let Entry::Mapping(m) = &v.entry
            && let Some(group) = privileged_group(&m.groups, config)
            && !config
                .privileged_principals
                .iter()
                .any(|p| glob_match(p, &v.canonical))
        {
            let allowed = if config.privileged_principals.is_empty() {
                "no principal may be granted it (none is configured)".to_string()
            } else {
                format!(
                    "only principals matching {} may be granted it",
                    config.privileged_principals.join(", ")
                )
            };
            refuse(
                Reason::Forbidden,
                format!(
                    "group {group} is privileged (--privileged-group) and {allowed}; {} does not match: remove {group} from groups and grant a group bound to narrower RBAC, or ask a cluster administrator to add a --privileged-principal pattern",
                    v.canonical
                ),
                Some(&v),
            );
            continue;
        }
        if let Some(winner) = claimed.get(&v.key) {
            refuse(
                Reason::Conflict,
                format!(
                    "{} is already granted by IamAccessGrant {winner}, which is older; delete one of the two",
                    v.canonical
                ),
                Some(&v),
            );
            continue;
        }
        claimed.insert(v.key.clone(), name.clone());
        if let Some(f) = read.first_blocking(v.section) {
            refuse(
                Reason::AwsAuthUnreadable,
                format!("aws-auth {f}. This key is left untouched until it is fixed by hand"),
                Some(&v),
            );
            continue;
        }
        let in_aws_auth = managed_now.contains_key(&(v.section, v.key.clone()));
        if let Some((other, f)) = unreadable_holder(&read, cur_data, &v, in_aws_auth) {
            refuse(
                Reason::AwsAuthUnreadable,
                format!(
                    "aws-auth {other} cannot be read exactly and may map {} (EKS looks in mapRoles, then mapUsers, whatever the entry's field): {f}. Nothing changes for this grant until that key is fixed by hand",
                    v.canonical
                ),
                Some(&v),
            );
            if in_aws_auth {
                held.push((v.section, v.key.clone()));
            }
            continue;
        }
        if let Some(u) = unowned.get(&v.key)
            && !g.spec.adopt
        {
            refuse(
                Reason::Conflict,
                format!(
                    "aws-auth {} line {} already maps {} and is not managed by aws-auth-operator (written by EKS, eksctl or by hand); set spec.adopt: true to take it over, or remove that entry",
                    u.section, u.line, v.canonical
                ),
                Some(&v),
            );
            continue;
        }
        accepted.push((name, v));
    }

    // Size budget, oldest grant first: whatever does not fit is refused, deterministically.
    let mut adopted: HashSet<String> = HashSet::new();
    let mut managed: BTreeMap<Section, BTreeMap<String, Entry>> = BTreeMap::new();
    let fixed_bytes: usize = cur_data
        .iter()
        .filter(|(k, _)| Section::from_key(k).is_none())
        .map(|(k, v)| k.len() + v.len())
        .sum::<usize>()
        + Section::ALL
            .iter()
            .map(|&s| {
                if let Some(entries) = current_entries.get(&s) {
                    entries
                        .iter()
                        .filter(|(_, _, k)| unowned.contains_key(k))
                        .map(|(_, e, _)| entry_len(s, e))
                        .sum()
                } else {
                    cur_data.get(s.key()).map_or(0, String::len)
                }
            })
            .sum::<usize>();
    let mut data_bytes = fixed_bytes;
    // The record shares the annotation limit with whatever else aws-auth carries.
    let ours = [OWNERSHIP_ANNOTATION, HELD_ANNOTATION, CONFIRM_ANNOTATION];
    let other_annotations: usize = current
        .and_then(|c| c.metadata.annotations.as_ref())
        .map(|a| {
            a.iter()
                .filter(|(k, _)| !ours.contains(&k.as_str()))
                .map(|(k, v)| k.len() + v.len())
                .sum()
        })
        .unwrap_or(0);
    let annotation_budget = config
        .max_annotation_bytes
        .saturating_sub(other_annotations);
    let mut prefixes = HashSet::new();
    let mut annotation_bytes = OWNERSHIP_ANNOTATION.len() + 16;
    let invalid_kept = last_applied_of_invalid
        .into_iter()
        .filter(|(_, key)| !claimed.contains_key(key));
    for (section, key) in invalid_kept.chain(held) {
        if let Some(e) = managed_now.get(&(section, key.clone())) {
            data_bytes += entry_len(section, e);
            annotation_bytes += record_cost(&key, &mut prefixes);
            managed
                .entry(section)
                .or_default()
                .insert(key, (*e).clone());
        }
    }
    for (name, v) in accepted {
        let adopting = unowned.contains_key(&v.key);
        // An adopted entry replaces one already counted in `fixed_bytes`.
        let size = if adopting {
            0
        } else {
            entry_len(v.section, &v.entry)
        };
        let mut trial = prefixes.clone();
        let ann = record_cost(&v.key, &mut trial);
        let too_large = if data_bytes + size > config.max_data_bytes {
            Some(format!(
                "adding {} ({size} bytes) would take aws-auth's data to {} bytes, past its budget of {} (a ConfigMap holds 1 MiB; the budget keeps a {} KiB margin); {} bytes are left",
                v.canonical,
                data_bytes + size,
                config.max_data_bytes,
                DATA_MARGIN / 1024,
                config.max_data_bytes.saturating_sub(data_bytes)
            ))
        } else if annotation_bytes + ann > annotation_budget {
            Some(format!(
                "adding {} would take the ownership record ({OWNERSHIP_ANNOTATION}) to {} bytes, past the {} bytes the other annotations leave of their 256 KiB limit; {} bytes are left",
                v.canonical,
                annotation_bytes + ann,
                annotation_budget,
                annotation_budget.saturating_sub(annotation_bytes)
            ))
        } else {
            None
        };
        if let Some(why) = too_large {
            verdicts.push(Verdict {
                grant: name,
                reason: Reason::TooLarge,
                message: format!(
                    "{why}: remove unused grants, or grant roles that many people assume"
                ),
                section: Some(v.section),
                canonical_arn: Some(v.canonical),
            });
            continue;
        }
        data_bytes += size;
        annotation_bytes += ann;
        prefixes = trial;
        if adopting {
            adopted.insert(v.key.clone());
        }
        verdicts.push(Verdict {
            grant: name,
            reason: Reason::Applied,
            message: describe(v.section, &v.entry),
            section: Some(v.section),
            canonical_arn: Some(v.canonical.clone()),
        });
        managed.entry(v.section).or_default().insert(v.key, v.entry);
    }

    let (held, confirmed, removed) = hold_removals(current, config, &managed_now, &mut managed);

    // Assemble each key: unowned entries in their order, then managed entries by principal.
    let mut data = cur_data.clone();
    let mut ownership = Ownership::default();
    let mut diff = Vec::new();
    for section in Section::ALL {
        if !read.readable(section) {
            if let Some(keys) = owned_before.0.get(&section) {
                ownership.0.insert(section, keys.clone());
            }
            continue;
        }
        let current = current_entries.remove(&section).unwrap_or_default();
        let mine = managed.remove(&section).unwrap_or_default();
        let mut after: Vec<Entry> = current
            .iter()
            .filter(|(_, _, k)| !owned_before.owns(section, k) && !adopted.contains(k))
            .map(|(_, e, _)| e.clone())
            .collect();
        let before: Vec<Entry> = current.into_iter().map(|(_, e, _)| e).collect();
        ownership.0.insert(section, mine.keys().cloned().collect());
        after.extend(mine.into_values());
        if after == before {
            continue;
        }
        diff.extend(entry_diff(section, &before, &after));
        if after.is_empty() {
            data.remove(section.key());
            continue;
        }
        let text = render_entries(section, &after)?;
        data.insert(section.key().to_string(), text);
    }

    let annotations = current.and_then(|c| c.metadata.annotations.as_ref());
    let rails_changed = annotations.is_some_and(|a| a.contains_key(CONFIRM_ANNOTATION))
        || HeldRemoval::from_configmap(current) != held;
    let changed = match current {
        None => !data.is_empty() || held.is_some(),
        Some(_) => {
            &data != cur_data
                || ownership.normalized() != owned_before.normalized()
                // A record in the first format is rewritten in the compact one.
                || annotations
                    .and_then(|a| a.get(OWNERSHIP_ANNOTATION))
                    .is_some_and(|a| *a != ownership.to_annotation())
                || rails_changed
        }
    };
    verdicts.sort_by(|a, b| a.grant.cmp(&b.grant));
    for v in &mut verdicts {
        if let std::borrow::Cow::Owned(short) = excerpt(&v.message, MAX_MESSAGE_CHARS) {
            v.message = short;
        }
    }
    Ok(Plan {
        data,
        ownership,
        changed,
        verdicts,
        diff,
        findings: read.findings().cloned().collect(),
        notes,
        held,
        confirmed,
        removed,
    })
}

/// The removal breaker. Managed entries present now and absent from the new plan are removals;
/// while the grants cannot be trusted, or when there are more than `max_removals` and more than
/// `max_removal_percent` of the managed entries, they are all put back (kept exactly as they are)
/// unless a person confirmed this very set's token. Returns the held removal, the confirmed one,
/// and how many managed entries the plan removes.
fn hold_removals(
    current: Option<&ConfigMap>,
    config: &PlanConfig,
    managed_now: &HashMap<(Section, String), &Entry>,
    managed: &mut BTreeMap<Section, BTreeMap<String, Entry>>,
) -> (Option<HeldRemoval>, Option<HeldRemoval>, usize) {
    let mut removed: Vec<(Section, String)> = managed_now
        .keys()
        .filter(|(s, k)| !managed.get(s).is_some_and(|m| m.contains_key(k)))
        .cloned()
        .collect();
    if removed.is_empty() {
        return (None, None, 0);
    }
    removed.sort();
    let token = removal_token(&removed);
    let count = removed.len();
    let mut principals: Vec<String> = removed
        .iter()
        .map(|k| match managed_now[k] {
            Entry::Mapping(m) => m.arn.clone(),
            Entry::Account(a) => a.clone(),
        })
        .collect();
    principals.sort();
    principals.truncate(HELD_LISTED);
    // Earlier passes' removals count as part of this one, against the entries there were before.
    let recent = config.recently_removed;
    let total = count + recent;
    let base = managed_now.len() + recent;
    let percent = total * 100 / base.max(1);
    let held = |reason: String, confirm: Option<String>| HeldRemoval {
        token: token.clone(),
        count,
        principals: principals.clone(),
        reason,
        confirm,
    };
    let hold = if let Some(why) = &config.grants_unavailable {
        held(
            format!("{why}: no managed entry is removed until the grants are back"),
            None,
        )
    } else if total > config.max_removals
        && total * 100 > base * config.max_removal_percent as usize
    {
        let earlier = if recent > 0 {
            format!(" (with {recent} removed in the last passes)")
        } else {
            String::new()
        };
        let removal = held(
            format!(
                "this would remove {total} of {base} managed entries{earlier} ({percent}%), more than --max-removals {} and --max-removal-percent {}",
                config.max_removals, config.max_removal_percent
            ),
            Some(format!("aws-auth-operator confirm-removal {token}")),
        );
        let confirmed = current
            .and_then(|c| c.metadata.annotations.as_ref())
            .and_then(|a| a.get(CONFIRM_ANNOTATION))
            .is_some_and(|t| t.trim() == token);
        if confirmed {
            return (None, Some(removal), count);
        }
        removal
    } else {
        return (None, None, count);
    };
    for key in removed {
        let entry = managed_now[&key].clone();
        managed.entry(key.0).or_default().insert(key.1, entry);
    }
    (Some(hold), None, 0)
}

/// Principals a held removal lists by name.
pub const HELD_LISTED: usize = 100;

/// Statuses, events and CLI lines stay readable whatever a grant holds.
const MAX_MESSAGE_CHARS: usize = 1024;

fn cluster_creator_message(arn: &str) -> String {
    format!(
        "{} is the cluster creator, which EKS already maps to system:masters outside aws-auth; an aws-auth entry for it can lock it out: delete this grant",
        shown(arn)
    )
}

/// An unreadable mapping key, other than the grant's own, where EKS may find the grant's
/// principal: mapRoles decides before mapUsers, and either key can hold either kind of ARN. A
/// role already written to mapRoles is decided there already; a new one would silently override
/// whatever mapUsers holds for it.
fn unreadable_holder<'r>(
    read: &'r AwsAuthRead,
    data: &BTreeMap<String, String>,
    v: &ValidGrant,
    in_aws_auth: bool,
) -> Option<(Section, &'r Finding)> {
    let other = match v.section {
        Section::MapRoles if !in_aws_auth => Section::MapUsers,
        Section::MapUsers => Section::MapRoles,
        _ => return None,
    };
    let f = read.first_blocking(other)?;
    let text = data.get(other.key())?;
    could_hold(text, &v.canonical).then_some((other, f))
}

/// Whether text that cannot be read exactly might still name `canonical` to EKS: `/NAME` appears
/// under Unicode case folding as a whole name, or an escape could spell anything.
fn could_hold(text: &str, canonical: &str) -> bool {
    if text.contains('\\') {
        return true;
    }
    let name = canonical.rsplit('/').next().unwrap_or(canonical);
    let needle = format!("/{}", arn::fold_case(name));
    let hay = arn::fold_case(text);
    hay.match_indices(&needle).any(|(i, _)| {
        hay[i + needle.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || "+=,.@_-".contains(c)))
    })
}

/// An invalid grant whose status says it was applied keeps its entry, so an edit that breaks a
/// grant does not lock its users out: its status then says Invalid with the kept entry's key and
/// principal, which keeps it in the passes after. Returns that key and principal.
fn remember_last_applied(
    g: &IamAccessGrant,
    keep: &mut Vec<(Section, String)>,
) -> Option<(Section, String)> {
    let status = g.status.as_ref()?;
    let holds = status.conditions.iter().any(|c| {
        c.type_ == crate::api::READY
            && (c.reason == Reason::Applied.as_str() || c.reason == Reason::Invalid.as_str())
    });
    let section = status.section.as_deref().and_then(Section::from_key)?;
    let arn = status.canonical_arn.as_ref()?;
    if !holds {
        return None;
    }
    let key = match section {
        Section::MapAccounts => arn.clone(),
        _ => arn::match_key(arn),
    };
    keep.push((section, key));
    Some((section, arn.clone()))
}

pub(crate) fn entry_diff(section: Section, before: &[Entry], after: &[Entry]) -> Vec<String> {
    let line = |sign: char, e: &Entry| match e {
        Entry::Mapping(m) => format!(
            "{sign} {section}: {} username={:?} groups=[{}]",
            m.arn,
            m.username,
            m.groups.join(",")
        ),
        Entry::Account(a) => format!("{sign} {section}: {a}"),
    };
    // A multiset difference, linear in the number of entries.
    let mut remaining: HashMap<&Entry, usize> = HashMap::new();
    for e in after {
        *remaining.entry(e).or_default() += 1;
    }
    let mut out = Vec::new();
    for e in before {
        match remaining.get_mut(e) {
            Some(n) if *n > 0 => *n -= 1,
            _ => out.push(line('-', e)),
        }
    }
    // Added entries in the order they appear.
    for e in after {
        if let Some(n) = remaining.get_mut(e)
            && *n > 0
        {
            *n -= 1;
            out.push(line('+', e));
        }
    }
    out
}

mod memo;
pub(crate) use memo::grant_inputs;
#[cfg(test)]
mod tests;
