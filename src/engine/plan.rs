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
    /// Group globs that only principals matching `privileged_principals` (ARN globs) may be
    /// granted (see [`policy`]: reserved usernames and whole accounts are privileged too).
    pub privileged_groups: Vec<String>,
    pub privileged_principals: Vec<String>,
    /// Accounts an `account:` grant may map (every principal of the account).
    pub allowed_accounts: Vec<String>,
    /// Set for one pass when the grant list cannot be trusted to be complete (the CRD is missing
    /// or being deleted): no managed entry is removed, whatever the count or confirmation.
    pub grants_unavailable: Option<String>,
    /// Set for one pass when the history of aws-auth cannot be kept: removals of managed entries
    /// still apply (a revocation must not wait on a broken history), additions and changes wait
    /// (`Pending`, with this reason) and the entries they would change stay as they are.
    pub history_unavailable: Option<String>,
    /// Managed entries the operator removed in its recent passes (its removal window). They count
    /// toward the breaker with this pass's, so a deletion spread over many passes is held as a
    /// mass deletion in one would be.
    pub recently_removed: usize,
    /// The most managed entries aws-auth held within the removal window (see
    /// [`RemovalWindow`]): the breaker's percentage is taken of at least this many.
    pub peak_managed: usize,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            cluster_creators: Vec::new(),
            max_data_bytes: DATA_LIMIT - DATA_MARGIN,
            max_annotation_bytes: ANNOTATIONS_LIMIT - ANNOTATIONS_MARGIN,
            max_removals: 5,
            max_removal_percent: 30,
            privileged_groups: policy::DEFAULT_PRIVILEGED_GROUPS
                .iter()
                .map(|g| g.to_string())
                .collect(),
            privileged_principals: Vec::new(),
            allowed_accounts: Vec::new(),
            grants_unavailable: None,
            history_unavailable: None,
            recently_removed: 0,
            peak_managed: 0,
        }
    }
}

/// The lockout rails, as `run` and `render` take them (so a pull-request check agrees with the
/// cluster).
#[derive(Debug, Clone, clap::Args)]
pub struct RailsArgs {
    /// A group glob that only principals matching --privileged-principal may be granted
    /// (repeatable, comma-separated in the environment).
    #[arg(
        long = "privileged-group",
        env = "AWS_AUTH_PRIVILEGED_GROUP",
        value_delimiter = ',',
        default_values = policy::DEFAULT_PRIVILEGED_GROUPS
    )]
    pub privileged_groups: Vec<String>,
    /// An ARN glob (`*`, `?`; case-insensitive) of principals that may hold a privileged identity
    /// (a privileged group, a reserved username, an adopted privileged entry), e.g.
    /// `arn:aws:iam::111122223333:role/platform-*` (repeatable). None: nobody may.
    #[arg(
        long = "privileged-principal",
        env = "AWS_AUTH_PRIVILEGED_PRINCIPAL",
        value_delimiter = ','
    )]
    pub privileged_principals: Vec<String>,
    /// A 12-digit account an `account:` grant may map (repeatable). None: no account grant.
    #[arg(
        long = "allowed-account",
        env = "AWS_AUTH_ALLOWED_ACCOUNT",
        value_delimiter = ','
    )]
    pub allowed_accounts: Vec<String>,
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
        c.allowed_accounts = rails.allowed_accounts.clone();
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
fn removal_token(removed: &[(Section, &str)]) -> String {
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

pub use crate::engine::policy::glob_match;

/// The principals the operator wrote, per key (lower-cased principal keys), each with the
/// [`Holder`] of the grant that holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    pub keys: BTreeMap<Section, BTreeMap<String, Option<Holder>>>,
    /// Read from a record written before holders were recorded (version 1 or 2): an invalid
    /// grant's status is then trusted for the entry it keeps, until the record is rewritten.
    pub legacy: bool,
}

/// Which grant holds an entry: a digest of the grant's uid (a manifest not created yet: its
/// name). The API server picks uids, so a grant cannot be made to hold another's entry; an
/// invalid grant keeps the entry it last applied only when the record names it as the holder
/// (its status, which whoever may patch it could forge, only says which entry that is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Holder(pub u32);

impl Holder {
    pub fn of<G: GrantRef + ?Sized>(g: &G) -> Self {
        // FNV-1a: stable across processes and versions, unlike the keyed fingerprints.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in g.uid().unwrap_or(g.name()).bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        Holder((h ^ (h >> 32)) as u32)
    }
}

/// `#` and eight hex digits after a principal's name in the record (no IAM name holds a `#`).
const HOLDER_BYTES: usize = 9;

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
        let mut json: serde_json::Value = serde_json::from_str(value).map_err(|e| invalid(&e))?;
        if json.get("v") == Some(&3.into()) {
            json = inflate_record(&json).map_err(|e| invalid(&e))?;
        }
        // Versions 2 and 4 group the principals by what precedes their last `/`, and version 4
        // follows each name with its holder; the first version (a plain list per key) is still
        // read. Older versions are rewritten as version 4 at the next write.
        let version = json.get("v").and_then(serde_json::Value::as_u64);
        let legacy = version != Some(4);
        let raw: BTreeMap<String, BTreeSet<String>> = if version.is_some() {
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
        let mut keys = BTreeMap::new();
        for (k, v) in raw {
            let section = Section::from_key(&k).ok_or_else(|| {
                format!("annotation {OWNERSHIP_ANNOTATION} names unknown key `{k}`")
            })?;
            let mut held = BTreeMap::new();
            for name in v {
                let (name, holder) = match name.rsplit_once('#').filter(|_| !legacy) {
                    Some((n, h)) => {
                        let h = u32::from_str_radix(h, 16)
                            .ok()
                            .filter(|_| h.len() == 8)
                            .ok_or_else(|| invalid(&format!("`{n}#{h}` has no valid holder")))?;
                        (n.to_string(), Some(Holder(h)))
                    }
                    None => (name, None),
                };
                held.insert(name, holder);
            }
            keys.insert(section, held);
        }
        Ok(Ownership { keys, legacy })
    }

    pub fn owns(&self, section: Section, key: &str) -> bool {
        self.keys.get(&section).is_some_and(|s| s.contains_key(key))
    }

    pub fn holder(&self, section: Section, key: &str) -> Option<Holder> {
        self.keys.get(&section)?.get(key).copied().flatten()
    }

    /// Whether the entry at `key` may be kept for the grant `holder` whose status says it holds
    /// it (an invalid grant's last applied entry).
    fn may_keep(&self, section: Section, key: &str, holder: Holder) -> bool {
        self.owns(section, key) && (self.legacy || self.holder(section, key) == Some(holder))
    }

    /// The number of managed entries.
    pub fn len(&self) -> usize {
        self.keys.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Version 4: `{"v":4,"mapRoles":{"arn:aws:iam::111122223333:role/":["a#0badf00d"]}}`, the
    /// common part of each principal written once, each name followed by its holder. Past
    /// [`DEFLATE_ABOVE`] bytes, version 3: `{"v":3,"deflate":"<base64>"}`, the version 4 text
    /// deflated (a third of it or less at thousands of grants).
    pub fn to_annotation(&self) -> String {
        let text = self.to_record();
        if text.len() <= DEFLATE_ABOVE {
            return text;
        }
        use std::io::Write;
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(text.as_bytes()).expect("deflating into memory");
        let deflated = z.finish().expect("deflating into memory");
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, deflated);
        format!(r#"{{"deflate":"{b64}","v":3}}"#)
    }

    /// Whether `text`, a record of these principals, is in the format [`Self::to_annotation`]
    /// writes them in (the deflated text is not compared: the principals are the same already).
    pub fn is_written_as(&self, text: &str) -> bool {
        let v4 = self.to_record();
        if v4.len() <= DEFLATE_ABOVE {
            text == v4
        } else {
            !self.legacy && text.starts_with(r#"{"deflate":""#)
        }
    }

    fn to_record(&self) -> String {
        let mut out = serde_json::Map::new();
        out.insert("v".into(), 4.into());
        for (section, keys) in self.keys.iter().filter(|(_, v)| !v.is_empty()) {
            let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (k, holder) in keys {
                let (prefix, name) = split_key(k);
                groups.entry(prefix).or_default().push(match holder {
                    Some(Holder(h)) => format!("{name}#{h:08x}"),
                    None => name.to_string(),
                });
            }
            out.insert(
                section.key().into(),
                serde_json::to_value(groups).expect("string lists serialize"),
            );
        }
        serde_json::Value::Object(out).to_string()
    }

    /// The same principals and holders per key (a key with none is the same as no key).
    fn same_keys(&self, other: &Ownership) -> bool {
        type Held = BTreeMap<String, Option<Holder>>;
        fn non_empty(o: &Ownership) -> impl Iterator<Item = (&Section, &Held)> {
            o.keys.iter().filter(|(_, v)| !v.is_empty())
        }
        self.legacy == other.legacy && non_empty(self).eq(non_empty(other))
    }
}

/// Ownership records longer than this are written deflated (version 3); shorter ones stay as
/// readable JSON.
pub const DEFLATE_ABOVE: usize = 8 * 1024;

/// The version 4 (or 2) record inside a version 3 one. Inflating stops past the largest record
/// the annotation limit allows, so a record made by hand cannot make the operator allocate more.
fn inflate_record(json: &serde_json::Value) -> Result<serde_json::Value, String> {
    use std::io::Read;
    let b64 = json
        .get("deflate")
        .and_then(|d| d.as_str())
        .ok_or("version 3 has no `deflate` text")?;
    let deflated = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
        .map_err(|e| format!("`deflate` is not base64: {e}"))?;
    let mut text = Vec::new();
    let read = flate2::read::DeflateDecoder::new(&deflated[..])
        .take(MAX_INFLATED as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("`deflate` does not inflate: {e}"))?;
    if read > MAX_INFLATED {
        return Err(format!("`deflate` inflates past {MAX_INFLATED} bytes"));
    }
    let inner: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("the inflated record: {e}"))?;
    if inner.get("v") != Some(&2.into()) && inner.get("v") != Some(&4.into()) {
        return Err("the inflated record is not version 2 or 4".into());
    }
    Ok(inner)
}

/// The plan counts the record at its version 4 size against the 256 KiB annotation limit, so no
/// record it writes inflates past that.
const MAX_INFLATED: usize = 256 * 1024;

/// A principal key split after its last `/` (the part the ownership record shares).
fn split_key(k: &str) -> (&str, &str) {
    match k.rfind('/') {
        Some(i) => k.split_at(i + 1),
        None => ("", k),
    }
}

/// Bytes the ownership record grows by when `key` is added (its prefix is counted the first
/// time), and the prefix to note when it is. `prefix` is the prefix's length and [`Keyed`] hash
/// when known.
fn record_cost<'k>(
    key: &'k str,
    prefix: Option<(usize, u64)>,
    prefixes: &KeyMap<Keyed<'k>, ()>,
) -> (usize, Option<Keyed<'k>>) {
    let (prefix, name) = match prefix {
        Some((len, hash)) => (
            Keyed {
                hash,
                key: &key[..len],
            },
            &key[len..],
        ),
        None => {
            let (p, n) = split_key(key);
            (Keyed::lookup(p), n)
        }
    };
    let name = name.len() + 3 + HOLDER_BYTES;
    if prefixes.contains_key(&prefix) {
        (name, None)
    } else {
        (name + prefix.key.len() + 8, Some(prefix))
    }
}

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

/// An unowned entry the plan found, by principal key.
struct Unowned<'a> {
    section: Section,
    line: usize,
    entry: &'a Entry,
}

/// A principal key with its hash, worked out once where the key is made (a grant's decision,
/// an entry read from aws-auth), so the plan's maps over thousands of principals hash nothing.
#[derive(Debug, Clone)]
pub(super) struct OwnedKey {
    hash: u64,
    key: String,
}

/// A borrowed [`OwnedKey`]: what the plan's maps are keyed by.
#[derive(Debug, Clone, Copy)]
struct Keyed<'a> {
    hash: u64,
    key: &'a str,
}

static KEY_HASH: std::sync::LazyLock<std::hash::RandomState> =
    std::sync::LazyLock::new(std::hash::RandomState::new);

impl OwnedKey {
    fn new(key: String) -> Self {
        OwnedKey {
            hash: Keyed::lookup(&key).hash,
            key,
        }
    }

    fn borrowed(&self) -> Keyed<'_> {
        Keyed {
            hash: self.hash,
            key: &self.key,
        }
    }
}

impl<'a> Keyed<'a> {
    /// A key looked up by its text alone (hashed now).
    fn lookup(key: &'a str) -> Self {
        use std::hash::BuildHasher;
        Keyed {
            hash: KEY_HASH.hash_one(key),
            key,
        }
    }

    fn as_str(&self) -> &'a str {
        self.key
    }
}

impl PartialEq for Keyed<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl Eq for Keyed<'_> {}

impl std::hash::Hash for Keyed<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Maps keyed by [`Keyed`] (and its section) use the hash it carries.
#[derive(Default, Clone, Copy)]
struct Prehashed;

impl std::hash::BuildHasher for Prehashed {
    type Hasher = PrehashedHasher;
    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher(0)
    }
}

struct PrehashedHasher(u64);

impl std::hash::Hasher for PrehashedHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only sections' discriminants come this way; mixed in so each key's sections differ.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type KeyMap<K, V> = HashMap<K, V, Prehashed>;

/// aws-auth's `data` as the plan reads it: the reader's result, and each readable key's entries
/// with their lines and principal keys. Worked out once per text (see [`memo`]).
pub(super) struct Prepared {
    read: AwsAuthRead,
    entries: BTreeMap<Section, Vec<(usize, Entry, OwnedKey)>>,
}

impl Prepared {
    fn new(data: &BTreeMap<String, String>) -> Self {
        // A key made only of entry texts the renderer has proven (the operator's own output)
        // shares their mappings with the renderer's memo and the grants' decisions: one mapping
        // per entry, not three.
        let (mut read, [known_roles, known_users]) = read_data_sharing(data);
        let mut known = [known_roles, known_users];
        let readable: Vec<Section> = Section::ALL
            .into_iter()
            .filter(|&s| read.readable(s))
            .collect();
        // The entries move out of the reader's result; the plan asks it only about findings.
        let mut take = |s: Section| -> Vec<(usize, Entry)> {
            let (mappings, shared) = match s {
                Section::MapRoles => (&mut read.roles.entries, &mut known[0]),
                Section::MapUsers => (&mut read.users.entries, &mut known[1]),
                Section::MapAccounts => {
                    return std::mem::take(&mut read.accounts.entries)
                        .into_iter()
                        .map(|e| (e.line, Entry::Account(e.value)))
                        .collect();
                }
            };
            match shared.take() {
                Some(shared) => shared
                    .into_iter()
                    .map(|(line, m)| (line, Entry::Mapping(m)))
                    .collect(),
                None => std::mem::take(mappings)
                    .into_iter()
                    .map(|e| (e.line, Entry::Mapping(Arc::new(e.value))))
                    .collect(),
            }
        };
        let entries = readable
            .into_iter()
            .map(|s| {
                // Each entry's principal key, on the cores when there are thousands.
                let taken = take(s);
                let keys = parallel::map(&taken, |(_, e)| OwnedKey::new(entry_key(e)));
                let entries = taken
                    .into_iter()
                    .zip(keys)
                    .map(|((line, e), key)| (line, e, key))
                    .collect();
                (s, entries)
            })
            .collect();
        Prepared { read, entries }
    }
}

/// What a grant decides on its own (its spec, its status, the configured rails), before other
/// grants and aws-auth are looked at. Kept per grant between plans (see [`memo`]).
pub(super) struct Own {
    /// The grant's name (part of what the decision is kept by).
    name: Arc<str>,
    decision: Decision,
    /// Whether the decision read the grant's status (an invalid grant's last applied entry).
    read_status: bool,
}

pub(super) enum Decision {
    Refused(Refusal),
    Candidate(Candidate),
}

pub(super) struct Refusal {
    reason: Reason,
    message: Arc<str>,
    section: Option<Section>,
    canonical_arn: Option<Arc<str>>,
    /// An invalid grant's last applied entry (key, principal key, principal), which stays
    /// when the ownership record names the grant its holder.
    keep: Option<(Section, OwnedKey, Arc<str>)>,
}

pub(super) struct Candidate {
    section: Section,
    /// The principal's key with its hash (the plan's maps are keyed by it).
    key: OwnedKey,
    entry: Entry,
    /// The key's part the ownership record shares (see [`split_key`]): its length and hash.
    prefix: (usize, u64),
    canonical: Arc<str>,
    /// The entry as the renderer writes it (its length is the size budget's unit).
    text: String,
    /// What proving `text` reads back as the entry needs (`None` for an account).
    proof: Option<TextProof>,
    /// Set once `text` has been proven to read back as the entry (see [`render_managed`]).
    proven: std::sync::atomic::AtomicBool,
    /// The Applied verdict's message.
    applied: Arc<str>,
}

/// The checks that read nothing but the grant and the configuration, in the order the plan
/// makes them.
fn decide_own(g: &impl GrantRef, config: &PlanConfig) -> Own {
    let decision = decide(g, config);
    Own {
        name: g.name().into(),
        read_status: matches!(&decision, Decision::Refused(r) if r.reason == Reason::Invalid),
        decision,
    }
}

fn decide(g: &impl GrantRef, config: &PlanConfig) -> Decision {
    let refused = |reason, message: String, v: Option<&ValidGrant>| {
        Decision::Refused(Refusal {
            reason,
            message: excerpt(&message, MAX_MESSAGE_CHARS).into(),
            section: v.map(|v| v.section),
            canonical_arn: v.map(|v| v.canonical.as_str().into()),
            keep: None,
        })
    };
    let validated = validate(g.spec());
    // The creator in any form (a session ARN, a path) is named as such before anything else, so
    // no message ever suggests the ARN that would be refused next. An ARN that validated as
    // written has the principal key validation worked out.
    if let Some(raw) = g.spec().arn.as_deref().map(str::trim)
        && !config.cluster_creators.is_empty()
        && match &validated {
            Ok(v) if v.canonical == raw => config.cluster_creators.contains(&v.key),
            _ => arn::principal_key(raw).is_ok_and(|k| config.cluster_creators.contains(&k)),
        }
    {
        return refused(Reason::ClusterCreator, cluster_creator_message(raw), None);
    }
    let v = match validated {
        Ok(v) => v,
        Err(invalid) => {
            // The kept entry's key and principal go into the status, so that the next pass
            // (after the status says Invalid) still knows which entry it is; the plan keeps it
            // only where the ownership record names this grant its holder.
            return Decision::Refused(Refusal {
                reason: Reason::Invalid,
                message: excerpt(&invalid.to_string(), MAX_MESSAGE_CHARS - KEPT.len()).into(),
                section: None,
                canonical_arn: None,
                keep: last_applied(g.reported())
                    .map(|(s, key, arn)| (s, OwnedKey::new(key), Arc::from(arn))),
            });
        }
    };
    if v.section != Section::MapAccounts && config.cluster_creators.contains(&v.key) {
        return refused(
            Reason::ClusterCreator,
            cluster_creator_message(&v.canonical),
            Some(&v),
        );
    }
    if let Some(message) = policy::forbidden(&v.entry, &v.canonical, config) {
        return refused(Reason::Forbidden, message, Some(&v));
    }
    let ValidGrant {
        section,
        key,
        canonical,
        entry,
    } = v;
    let (text, proof) = match &entry {
        Entry::Mapping(m) => {
            let text = mapping_text(section, m);
            let proof = TextProof::new(section, &text, m);
            (text, Some(proof))
        }
        Entry::Account(a) => (account_text(a), None),
    };
    debug_assert_eq!(text.len(), entry_len(section, &entry));
    let prefix = split_key(&key).0;
    Decision::Candidate(Candidate {
        applied: excerpt(&describe(section, &entry), MAX_MESSAGE_CHARS).into(),
        prefix: (prefix.len(), Keyed::lookup(prefix).hash),
        key: OwnedKey::new(key),
        canonical: canonical.into(),
        text,
        proof,
        proven: Default::default(),
        section,
        entry,
    })
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

fn plan_anew<G: GrantRef>(
    memo: &Memo,
    grants: &[G],
    current: Option<&ConfigMap>,
    config: &PlanConfig,
    fp: &memo::Fingerprint,
) -> Result<Plan, RenderMismatch> {
    let empty = BTreeMap::new();
    let cur_data = current.and_then(|c| c.data.as_ref()).unwrap_or(&empty);
    let prepared = memo.prepared(fp.data, || Prepared::new(cur_data));
    let read = &prepared.read;
    let mut notes = Vec::new();
    let owned_before = memo.ownership(current).unwrap_or_else(|e| {
        notes.push(e);
        Arc::default()
    });

    // Current entries: unowned ones are kept; managed ones are rebuilt from the grants.
    let mut unowned: KeyMap<Keyed, Unowned> = KeyMap::default();
    let mut managed_now: KeyMap<(Section, Keyed), &Entry> = KeyMap::default();
    // Per key, whether each current entry is managed (the assembly below asks again).
    let mut is_managed: BTreeMap<Section, Vec<bool>> = BTreeMap::new();
    for (&section, entries) in &prepared.entries {
        let flags = is_managed.entry(section).or_default();
        for (line, entry, key) in entries {
            let owned = owned_before.owns(section, &key.key);
            flags.push(owned);
            if owned {
                managed_now.insert((section, key.borrowed()), entry);
            } else {
                unowned.entry(key.borrowed()).or_insert(Unowned {
                    section,
                    line: *line,
                    entry,
                });
            }
        }
    }

    // Oldest first: the oldest grant wins a principal.
    let mut order: Vec<(&G, memo::GrantPrint)> =
        grants.iter().zip(fp.grants.iter().copied()).collect();
    // Each grant's sort key is looked up once, not at every comparison.
    order.sort_by_cached_key(|&(g, _)| {
        let t = g.created();
        (t.is_none(), t, g.name())
    });
    let owns = memo.own(&order, fp.rails, |g| decide_own(g, config));

    let mut verdicts: Vec<Verdict> = Vec::with_capacity(order.len());
    let mut claimed: KeyMap<Keyed, &Arc<str>> =
        KeyMap::with_capacity_and_hasher(order.len(), Prehashed);
    let mut accepted: Vec<(&Arc<str>, &Candidate, bool, Holder)> = Vec::with_capacity(order.len());
    let mut last_applied_of_invalid: Vec<(Section, Keyed, Holder)> = Vec::new();
    // Grants that wait on an unreadable key keep the entry they have, whatever it is.
    let mut held: Vec<(Section, Keyed)> = Vec::new();
    for ((g, _), own) in order.iter().zip(&owns) {
        let name = &own.name;
        let c = match &own.decision {
            Decision::Refused(r) => {
                let holder = Holder::of(*g);
                let kept = r
                    .keep
                    .as_ref()
                    .filter(|(section, key, _)| owned_before.may_keep(*section, &key.key, holder));
                verdicts.push(match kept {
                    Some((section, key, arn)) => {
                        last_applied_of_invalid.push((*section, key.borrowed(), holder));
                        Verdict {
                            grant: name.clone(),
                            reason: r.reason,
                            message: format!("{}{KEPT}", r.message).into(),
                            section: Some(*section),
                            canonical_arn: Some(arn.clone()),
                        }
                    }
                    None => Verdict {
                        grant: name.clone(),
                        reason: r.reason,
                        message: r.message.clone(),
                        section: r.section,
                        canonical_arn: r.canonical_arn.clone(),
                    },
                });
                continue;
            }
            Decision::Candidate(c) => c,
        };
        let key = c.key.borrowed();
        let mut refuse = |reason, message: String| {
            verdicts.push(Verdict {
                grant: name.clone(),
                reason,
                message: excerpt(&message, MAX_MESSAGE_CHARS).into(),
                section: Some(c.section),
                canonical_arn: Some(c.canonical.clone()),
            })
        };
        if let Some(winner) = claimed.get(&key) {
            refuse(
                Reason::Conflict,
                format!(
                    "{} is already granted by IamAccessGrant {winner}, which is older; delete one of the two",
                    c.canonical
                ),
            );
            continue;
        }
        claimed.insert(key, name);
        if let Some(f) = read.first_blocking(c.section) {
            refuse(
                Reason::AwsAuthUnreadable,
                format!("aws-auth {f}. This key is left untouched until it is fixed by hand"),
            );
            continue;
        }
        let section_key = (c.section, key);
        let in_aws_auth = managed_now.contains_key(&section_key);
        if let Some((other, f)) = unreadable_holder(read, cur_data, c, in_aws_auth) {
            refuse(
                Reason::AwsAuthUnreadable,
                format!(
                    "aws-auth {other} cannot be read exactly and may map {} (EKS looks in mapRoles, then mapUsers, whatever the entry's field): {f}. Nothing changes for this grant until that key is fixed by hand",
                    c.canonical
                ),
            );
            if in_aws_auth {
                held.push(section_key);
            }
            continue;
        }
        if let Some(u) = unowned.get(&key)
            && !g.spec().adopt
        {
            refuse(
                Reason::Conflict,
                format!(
                    "aws-auth {} line {} already maps {} and is not managed by aws-auth-operator (written by EKS, eksctl or by hand); set spec.adopt: true to take it over, or remove that entry",
                    u.section, u.line, c.canonical
                ),
            );
            continue;
        }
        // Adopting an entry takes over what it grants: the EKS node role's system:nodes, say.
        if let Some(u) = unowned.get(&key)
            && let Some(why) = policy::forbidden(u.entry, &c.canonical, config)
        {
            refuse(
                Reason::Forbidden,
                format!(
                    "adopt: true would take over aws-auth {} line {}, a privileged entry: {why}",
                    u.section, u.line
                ),
            );
            continue;
        }
        if let Some(why) = &config.history_unavailable
            && managed_now.get(&section_key) != Some(&&c.entry)
        {
            refuse(
                Reason::Pending,
                format!(
                    "{why}: additions and changes wait until the history can be kept (removals proceed)"
                ),
            );
            if in_aws_auth {
                held.push(section_key);
            }
            continue;
        }
        accepted.push((name, c, in_aws_auth, Holder::of(*g)));
    }

    // Size budget, oldest grant first: whatever does not fit is refused, deterministically.
    let mut adopted: KeyMap<Keyed, ()> = KeyMap::default();
    let mut managed: BTreeMap<Section, Vec<(&str, Managed)>> = BTreeMap::new();
    let fixed_bytes: usize = cur_data
        .iter()
        .filter(|(k, _)| Section::from_key(k).is_none())
        .map(|(k, v)| k.len() + v.len())
        .sum::<usize>()
        + Section::ALL
            .iter()
            .map(|&s| {
                if let Some(entries) = prepared.entries.get(&s) {
                    entries
                        .iter()
                        .filter(|(_, _, k)| unowned.contains_key(&k.borrowed()))
                        .map(|(_, e, _)| entry_len(s, e))
                        .sum()
                } else {
                    cur_data.get(s.key()).map_or(0, String::len)
                }
            })
            .sum::<usize>();
    let mut data_bytes = fixed_bytes;
    // The record shares the annotation limit with whatever else aws-auth carries.
    let ours = [
        OWNERSHIP_ANNOTATION,
        HELD_ANNOTATION,
        CONFIRM_ANNOTATION,
        CONFIRMED_BY_ANNOTATION,
        WINDOW_ANNOTATION,
    ];
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
    let mut prefixes: KeyMap<Keyed, ()> = KeyMap::default();
    let mut annotation_bytes = OWNERSHIP_ANNOTATION.len() + 16;
    // Managed entries of now that the plan keeps, each counted once: when that is all of them,
    // nothing is removed and the breaker has nothing to look at.
    let mut kept_now = 0;
    let invalid_kept = last_applied_of_invalid
        .into_iter()
        .filter(|(_, key, _)| !claimed.contains_key(key))
        .map(|(section, key, holder)| (section, key, Some(holder)));
    // A grant waiting on an unreadable key keeps its entry's holder as recorded.
    let held = held
        .into_iter()
        .map(|(section, key)| (section, key, owned_before.holder(section, key.as_str())));
    // Two invalid grants can keep the same entry.
    let mut kept: KeyMap<(Section, Keyed), ()> = KeyMap::default();
    for (section, key, holder) in invalid_kept.chain(held) {
        if let Some((&(_, key), &entry)) = managed_now.get_key_value(&(section, key))
            && kept.insert((section, key), ()).is_none()
        {
            data_bytes += entry_len(section, entry);
            let (cost, prefix) = record_cost(key.as_str(), None, &prefixes);
            annotation_bytes += cost;
            prefixes.extend(prefix.map(|p| (p, ())));
            managed.entry(section).or_default().push((
                key.as_str(),
                Managed {
                    entry,
                    grant: None,
                    holder,
                },
            ));
            kept_now += 1;
        }
    }
    for (name, c, in_aws_auth, holder) in accepted {
        let adopting = unowned.contains_key(&c.key.borrowed());
        // An adopted entry replaces one already counted in `fixed_bytes`.
        let size = if adopting { 0 } else { c.text.len() };
        let (ann, prefix) = record_cost(&c.key.key, Some(c.prefix), &prefixes);
        let too_large = if data_bytes + size > config.max_data_bytes {
            Some(format!(
                "adding {} ({size} bytes) would take aws-auth's data to {} bytes, past its budget of {} (a ConfigMap holds 1 MiB; the budget keeps a {} KiB margin); {} bytes are left",
                c.canonical,
                data_bytes + size,
                config.max_data_bytes,
                DATA_MARGIN / 1024,
                config.max_data_bytes.saturating_sub(data_bytes)
            ))
        } else if annotation_bytes + ann > annotation_budget {
            Some(format!(
                "adding {} would take the ownership record ({OWNERSHIP_ANNOTATION}) to {} bytes, past the {} bytes the other annotations leave of their 256 KiB limit; {} bytes are left",
                c.canonical,
                annotation_bytes + ann,
                annotation_budget,
                annotation_budget.saturating_sub(annotation_bytes)
            ))
        } else {
            None
        };
        if let Some(why) = too_large {
            verdicts.push(Verdict {
                grant: name.clone(),
                reason: Reason::TooLarge,
                message: excerpt(
                    &format!("{why}: remove unused grants, or grant roles that many people assume"),
                    MAX_MESSAGE_CHARS,
                )
                .into(),
                section: Some(c.section),
                canonical_arn: Some(c.canonical.clone()),
            });
            continue;
        }
        data_bytes += size;
        annotation_bytes += ann;
        prefixes.extend(prefix.map(|p| (p, ())));
        if adopting {
            adopted.insert(c.key.borrowed(), ());
        }
        verdicts.push(Verdict {
            grant: name.clone(),
            reason: Reason::Applied,
            message: c.applied.clone(),
            section: Some(c.section),
            canonical_arn: Some(c.canonical.clone()),
        });
        managed.entry(c.section).or_default().push((
            &c.key.key,
            Managed {
                entry: &c.entry,
                grant: Some(c),
                holder: Some(holder),
            },
        ));
        kept_now += usize::from(in_aws_auth);
    }
    by_principal(&mut managed);

    let (held, confirmed, removed) = if kept_now == managed_now.len() {
        (None, None, 0)
    } else {
        hold_removals(current, config, &owned_before, &managed_now, &mut managed)
    };

    // Assemble each key: unowned entries in their order, then managed entries by principal. The
    // other keys are carried over; a key is copied only where it stays as it is (a copy of all of
    // data up front would hold a second ~700 KB text at the pass's peak).
    let mut data: BTreeMap<String, String> = cur_data
        .iter()
        .filter(|(k, _)| Section::from_key(k).is_none())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let keep = |data: &mut BTreeMap<String, String>, section: Section| {
        if let Some(v) = cur_data.get(section.key()) {
            data.insert(section.key().to_string(), v.clone());
        }
    };
    let mut ownership = Ownership::default();
    let mut diff = Vec::new();
    let mut to_render: Vec<(Section, Vec<Managed>)> = Vec::new();
    for section in Section::ALL {
        if !read.readable(section) {
            if let Some(keys) = owned_before.keys.get(&section) {
                ownership.keys.insert(section, keys.clone());
            }
            keep(&mut data, section);
            continue;
        }
        let current = prepared
            .entries
            .get(&section)
            .map_or(&[][..], Vec::as_slice);
        let owned = is_managed.get(&section).map_or(&[][..], Vec::as_slice);
        let mine = managed.remove(&section).unwrap_or_default();
        let mut after: Vec<Managed> = current
            .iter()
            .zip(owned)
            .filter(|((_, _, k), owned)| !**owned && !adopted.contains_key(&k.borrowed()))
            .map(|((_, entry, _), _)| Managed {
                entry,
                grant: None,
                holder: None,
            })
            .collect();
        ownership.keys.insert(
            section,
            mine.iter()
                .map(|(k, m)| (k.to_string(), m.holder))
                .collect(),
        );
        after.extend(mine.into_iter().map(|(_, m)| m));
        let same = after.len() == current.len()
            && after.iter().zip(current).all(|(a, (_, e, _))| a.entry == e);
        if same {
            keep(&mut data, section);
            continue;
        }
        let before: Vec<&Entry> = current.iter().map(|(_, e, _)| e).collect();
        let after_entries: Vec<&Entry> = after.iter().map(|m| m.entry).collect();
        diff.extend(entry_diff(section, &before, &after_entries));
        if after.is_empty() {
            continue;
        }
        to_render.push((section, after));
    }
    // mapRoles and mapUsers each on a thread of their own when both are big (a first plan).
    let texts = parallel::each(&to_render, |(_, a)| a.len(), |(s, a)| render_managed(*s, a));
    for ((section, _), text) in to_render.iter().zip(texts) {
        data.insert(section.key().to_string(), text?);
    }

    let annotations = current.and_then(|c| c.metadata.annotations.as_ref());
    let rails_changed = annotations.is_some_and(|a| a.contains_key(CONFIRM_ANNOTATION))
        || HeldRemoval::from_configmap(current) != held;
    let changed = match current {
        None => !data.is_empty() || held.is_some(),
        Some(_) => {
            &data != cur_data
                || !ownership.same_keys(&owned_before)
                // A record in an older format is rewritten in the current one.
                || annotations
                    .and_then(|a| a.get(OWNERSHIP_ANNOTATION))
                    .is_some_and(|a| !ownership.is_written_as(a))
                || rails_changed
        }
    };
    // Every message was cut to MAX_MESSAGE_CHARS where it was made. Stable: two manifests of one
    // name (a render over files) keep the order the plan decided them in.
    verdicts.sort_by(|a, b| a.grant.cmp(&b.grant));
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
        managed_before: managed_now.len(),
    })
}

/// Renders a key from its entries (a key only ever holds its own kind of entry), reusing the
/// texts the grants' decisions rendered.
fn render_managed(section: Section, entries: &[Managed]) -> Result<String, RenderMismatch> {
    if section == Section::MapAccounts {
        let accounts: Vec<String> = entries
            .iter()
            .filter_map(|m| match m.entry {
                Entry::Account(a) => Some(a.clone()),
                Entry::Mapping(_) => None,
            })
            .collect();
        return render_accounts(&accounts);
    }
    use std::sync::atomic::Ordering;
    // A grant's entry comes with its text and proof; an unowned entry kept is rendered here.
    let texts: Vec<Rendered> = entries
        .iter()
        .filter_map(|m| match m.entry {
            Entry::Mapping(mapping) => Some(match m.grant {
                Some(
                    c @ Candidate {
                        proof: Some(proof), ..
                    },
                ) => (c.text.as_str().into(), *proof, mapping, Some(c)),
                _ => {
                    let text = mapping_text(section, mapping);
                    let proof = TextProof::new(section, &text, mapping);
                    (text.into(), proof, mapping, None)
                }
            }),
            Entry::Account(_) => None,
        })
        .collect();
    // A grant's text proven in an earlier pass needs no look-up in the renderer's memo.
    let unproven: Vec<(TextProof, &str, &Arc<Mapping>)> = texts
        .iter()
        .filter(|(_, _, _, c)| !c.is_some_and(|c| c.proven.load(Ordering::Relaxed)))
        .map(|(t, p, m, _)| (*p, t.as_ref(), *m))
        .collect();
    prove_texts(section, &unproven)?;
    for (_, _, _, c) in &texts {
        if let Some(c) = c {
            c.proven.store(true, Ordering::Relaxed);
        }
    }
    // Sized exactly: at 5,000 grants the text is ~700 KB, and growing it by doubling would
    // leave up to as much again allocated (and copied) at the pass's peak.
    let mut out = String::with_capacity(texts.iter().map(|(t, _, _, _)| t.len()).sum());
    for (t, _, _, _) in &texts {
        out.push_str(t);
    }
    Ok(out)
}

/// An entry's text as [`render_managed`] writes it: the text, its proof, its mapping, and the
/// grant it comes from, if any.
type Rendered<'a> = (
    std::borrow::Cow<'a, str>,
    TextProof,
    &'a Arc<Mapping>,
    Option<&'a Candidate>,
);

/// The removal breaker. Managed entries present now and absent from the new plan are removals;
/// while the grants cannot be trusted, or when there are more than `max_removals` and more than
/// `max_removal_percent` of the managed entries, they are all put back (kept exactly as they are)
/// unless a person confirmed this very set's token. Returns the held removal, the confirmed one,
/// and how many managed entries the plan removes.
fn hold_removals<'a>(
    current: Option<&ConfigMap>,
    config: &PlanConfig,
    owned_before: &Ownership,
    managed_now: &KeyMap<(Section, Keyed<'a>), &'a Entry>,
    managed: &mut BTreeMap<Section, Vec<(&'a str, Managed<'a>)>>,
) -> (Option<HeldRemoval>, Option<HeldRemoval>, usize) {
    let has = |s: &Section, k: &str| {
        managed
            .get(s)
            .is_some_and(|m| m.binary_search_by(|(x, _)| (*x).cmp(k)).is_ok())
    };
    let mut removed: Vec<(Section, &str)> = managed_now
        .keys()
        .filter(|(s, k)| !has(s, k.as_str()))
        .map(|(s, k)| (*s, k.as_str()))
        .collect();
    if removed.is_empty() {
        return (None, None, 0);
    }
    removed.sort();
    let token = removal_token(&removed);
    let count = removed.len();
    let mut principals: Vec<String> = removed
        .iter()
        .map(|&(s, k)| match managed_now[&(s, Keyed::lookup(k))] {
            Entry::Mapping(m) => m.arn.clone(),
            Entry::Account(a) => a.clone(),
        })
        .collect();
    principals.sort();
    principals.truncate(HELD_LISTED);
    // Earlier passes' removals count as part of this one, against the most entries there were
    // within the window (entries added to dilute the share count, but never shrink it).
    let recent = config.recently_removed;
    let total = count + recent;
    let base = (managed_now.len() + recent).max(config.peak_managed);
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
        // One removal alone is never a share: deleting the last of three grants proceeds.
        || (total > 1 && total * 100 > base * config.max_removal_percent as usize)
    {
        let earlier = if recent > 0 {
            format!(" (with {recent} removed in the last passes)")
        } else {
            String::new()
        };
        let removal = held(
            format!(
                "this would remove {total} of {base} managed entries{earlier} ({percent}%), more than {}",
                if total > config.max_removals {
                    format!("--max-removals {}", config.max_removals)
                } else {
                    format!("--max-removal-percent {}", config.max_removal_percent)
                }
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
        let entry = managed_now[&(key.0, Keyed::lookup(key.1))];
        let holder = owned_before.holder(key.0, key.1);
        managed.entry(key.0).or_default().push((
            key.1,
            Managed {
                entry,
                grant: None,
                holder,
            },
        ));
    }
    by_principal(managed);
    (Some(hold), None, 0)
}

/// Managed entries go by principal key. Each key is in a key once (claims are unique; kept
/// entries are neither claimed nor repeated), so the order is total.
fn by_principal(managed: &mut BTreeMap<Section, Vec<(&str, Managed)>>) {
    for entries in managed.values_mut() {
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
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
    c: &Candidate,
    in_aws_auth: bool,
) -> Option<(Section, &'r Finding)> {
    let other = match c.section {
        Section::MapRoles if !in_aws_auth => Section::MapUsers,
        Section::MapUsers => Section::MapRoles,
        _ => return None,
    };
    let f = read.first_blocking(other)?;
    let text = data.get(other.key())?;
    could_hold(text, &c.canonical).then_some((other, f))
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

/// What an invalid grant's message says when it keeps its last applied entry.
const KEPT: &str =
    "; the entry it last applied stays in aws-auth until the grant is fixed or deleted";

/// An invalid grant whose status says it was applied keeps its entry, so an edit that breaks a
/// grant does not lock its users out: its status then says Invalid with the kept entry's key and
/// principal, which finds it in the passes after (the ownership record decides whether this grant
/// holds it). Returns that key, the principal's key and the principal.
fn last_applied(r: Reported) -> Option<(Section, String, String)> {
    let section = r.section.and_then(Section::from_key)?;
    let arn = r.canonical_arn?;
    if !r.holds {
        return None;
    }
    let key = match section {
        Section::MapAccounts => arn.to_string(),
        _ => arn::match_key(arn),
    };
    Some((section, key, arn.to_string()))
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

mod input;
mod memo;
mod window;
pub use input::{GrantRef, Reported};
pub use memo::Memo;
pub(crate) use memo::grant_inputs;
pub use window::{RemovalWindow, WINDOW_ANNOTATION};
#[cfg(test)]
mod tests;
