//! The access-entry backend's plan: grants + the access entries EKS holds -> the EKS calls that
//! make EKS hold the grants' entries, and a verdict per grant. Pure, like aws-auth's plan, and
//! with the same rails: the operator changes only entries it tagged as its own (or a grant
//! adopts), never the cluster creator's, and a mass deletion waits for a person.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::api::{AccessEntryType, IamAccessGrantSpec, Reason};
use crate::engine::access_entry::{self, AccessEntry, Association, EntryType, POLICY_PREFIX};
use crate::engine::authmap::{Section, arn, shown};
use crate::engine::fingerprint::hash128;
use crate::engine::plan::{GrantRef, PlanConfig, decide_alone};
use crate::engine::policy;
use crate::engine::validate::Entry;

/// Tag naming the operator (its `--operator-name`) on every access entry it created or adopted.
pub const OPERATOR_TAG: &str = "aws-auth.dev/managed-by";
/// Tag naming the uid of the grant an access entry is for.
pub const GRANT_TAG: &str = "aws-auth.dev/grant-uid";

/// Said of an entry whose role ARN carries a path (found in IAM, or on the entry already).
const PATH_NOTE: &str = "the role's path kept in the entry's ARN (from IAM or the entry: access entries match it, aws-auth matches roles without it)";

/// Policies that can reach Secrets (and so service-account tokens) wherever they apply: privileged
/// cluster-wide and in the `kube-` namespaces, where a token of a system component is a way to
/// cluster admin ("Review access policy permissions": Admin and Edit write Secrets, AdminView
/// reads them).
const SECRET_POLICIES: [&str; 3] = [
    "AmazonEKSAdminPolicy",
    "AmazonEKSEditPolicy",
    "AmazonEKSAdminViewPolicy",
];

/// An access entry as EKS holds it, with its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub entry: AccessEntry,
    pub tags: BTreeMap<String, String>,
}

/// What the plan needs besides grants and entries.
pub struct EntriesConfig<'a> {
    pub plan: &'a PlanConfig,
    /// The `aws-auth.dev/managed-by` value of this operator's entries.
    pub operator: &'a str,
    /// The cluster's account (node types need roles of it).
    pub cluster_account: Option<&'a str>,
    /// Entries this operator deleted within the removal window (they count toward the breaker).
    pub recently_removed: usize,
    /// The token a person confirmed a held deletion with.
    pub confirmed: Option<&'a str>,
    /// Roles' full ARNs from IAM, by principal key: a new entry is made under the role's path.
    pub role_arns: &'a HashMap<String, String>,
}

/// One EKS call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Create(AccessEntry, BTreeMap<String, String>),
    /// UpdateAccessEntry: username and groups.
    Update {
        username: Option<String>,
        groups: Vec<String>,
    },
    Tag(BTreeMap<String, String>),
    Associate(Association),
    Disassociate(String),
    Delete,
}

impl Call {
    pub fn operation(&self) -> &'static str {
        match self {
            Call::Create(..) => "CreateAccessEntry",
            Call::Update { .. } => "UpdateAccessEntry",
            Call::Tag(_) => "TagResource",
            Call::Associate(_) => "AssociateAccessPolicy",
            Call::Disassociate(_) => "DisassociateAccessPolicy",
            Call::Delete => "DeleteAccessEntry",
        }
    }
}

/// The calls for one principal, made in order (an entry is created before its policies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// The grant they are for (none: a deletion).
    pub grant: Option<Arc<str>>,
    pub principal: String,
    pub calls: Vec<Call>,
}

/// What the plan decided for one grant under access entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryVerdict {
    pub reason: Reason,
    pub message: String,
    pub section: Option<Section>,
    pub canonical_arn: Option<Arc<str>>,
    /// Whether no access entry can ever express the grant (an account), as opposed to a refusal.
    pub unsupported: bool,
}

/// Deletions the breaker keeps back until a person confirms `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldDeletion {
    pub principals: Vec<String>,
    pub token: String,
    pub owned: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntriesPlan {
    pub work: Vec<Work>,
    /// By grant name.
    pub verdicts: BTreeMap<Arc<str>, EntryVerdict>,
    pub held: Option<HeldDeletion>,
    /// Whether the held deletion proceeds in this plan because its token was confirmed.
    pub confirmed: bool,
    /// The operator's entries before this plan's calls (what the history keeps).
    pub owned_before: Vec<AccessEntry>,
}

/// Grants + the entries EKS holds -> the calls and a verdict per grant.
pub fn plan<G: GrantRef>(grants: &[G], observed: &[Observed], cfg: &EntriesConfig) -> EntriesPlan {
    let mut out = EntriesPlan::default();
    let by_key: HashMap<String, &Observed> = observed
        .iter()
        .filter_map(|o| Some((arn::principal_key(&o.entry.principal_arn).ok()?, o)))
        .collect();
    let owned = |o: &Observed| o.tags.get(OPERATOR_TAG).map(String::as_str) == Some(cfg.operator);
    out.owned_before = observed
        .iter()
        .filter(|o| owned(o))
        .map(|o| o.entry.clone())
        .collect();
    // Oldest first: the oldest grant of a principal holds it, as in aws-auth.
    let mut order: Vec<&G> = grants.iter().collect();
    order.sort_by(|a, b| {
        let at = |g: &G| g.created().map(|t| t.0);
        at(a).cmp(&at(b)).then_with(|| a.name().cmp(b.name()))
    });
    let mut holders: HashMap<String, Arc<str>> = HashMap::new();
    // Entries kept as they are for a grant that became invalid (a typo never revokes).
    let mut kept_for_invalid: BTreeSet<String> = BTreeSet::new();
    let uids: HashMap<&str, &G> = grants.iter().filter_map(|g| Some((g.uid()?, g))).collect();
    for g in order {
        let name: Arc<str> = g.name().into();
        let verdict = match decide(g, cfg) {
            Err(v) => {
                if v.reason == Reason::Invalid
                    && let Some(uid) = g.uid()
                {
                    kept_for_invalid.insert(uid.to_string());
                }
                v
            }
            Ok((key, want, notes)) => match holders.get(&key) {
                Some(holder) => refused(
                    Reason::Conflict,
                    format!(
                        "grant {holder} holds the access entry of {} (the oldest grant of a principal holds it): delete one of the two grants",
                        shown(&want.principal_arn)
                    ),
                    &want,
                ),
                None => {
                    holders.insert(key.clone(), name.clone());
                    let have = by_key.get(&key).copied();
                    place(g, &name, (want, notes), have, owned, cfg, &mut out)
                }
            },
        };
        out.verdicts.insert(name, verdict);
    }
    // The operator's entries no grant holds any more.
    let mut deletions: Vec<Work> = observed
        .iter()
        .filter(|o| owned(o))
        .filter(|o| {
            let key = arn::principal_key(&o.entry.principal_arn).unwrap_or_default();
            !holders.contains_key(&key)
                && !cfg.plan.cluster_creators.contains(&key)
                && !o
                    .tags
                    .get(GRANT_TAG)
                    .is_some_and(|u| kept_for_invalid.contains(u))
        })
        .map(|o| Work {
            grant: o
                .tags
                .get(GRANT_TAG)
                .and_then(|u| uids.get(u.as_str()))
                .map(|g| g.name().into()),
            principal: o.entry.principal_arn.clone(),
            calls: vec![Call::Delete],
        })
        .collect();
    if let Some(held) = breaker(&deletions, out.owned_before.len(), cfg) {
        if cfg.confirmed == Some(held.token.as_str()) {
            out.confirmed = true;
        } else {
            deletions.clear();
            out.held = Some(held);
        }
    }
    out.work.extend(deletions);
    out
}

/// A refused grant's verdict.
fn refused(reason: Reason, message: String, want: &AccessEntry) -> EntryVerdict {
    EntryVerdict {
        reason,
        message,
        section: None,
        canonical_arn: Some(want.principal_arn.as_str().into()),
        unsupported: false,
    }
}

/// The grant's own checks and its access entry: (principal key, entry), or its verdict.
fn decide<G: GrantRef>(g: &G, cfg: &EntriesConfig) -> Result<Decided, EntryVerdict> {
    let alone = decide_alone(g, cfg.plan).map_err(|v| EntryVerdict {
        reason: v.reason,
        message: v.message.to_string(),
        section: v.section,
        canonical_arn: v.canonical_arn,
        unsupported: false,
    })?;
    let invalid = |message: String| EntryVerdict {
        reason: Reason::Invalid,
        message,
        section: Some(alone.section),
        canonical_arn: Some(alone.canonical.clone()),
        unsupported: false,
    };
    let m = match &alone.entry {
        Entry::Account(a) => {
            return Err(EntryVerdict {
                unsupported: true,
                ..invalid(format!(
                    "spec.account: an access entry names one IAM principal, so account {a} cannot be one: grant the account's roles or users one by one"
                ))
            });
        }
        Entry::Mapping(m) => m,
    };
    let translated = match m.username.is_empty() {
        true => access_entry::with_generated_username(alone.section, m),
        false => access_entry::from_mapping(alone.section, m, cfg.cluster_account),
    }
    .map_err(|e| invalid(format!("as an access entry: {e}")))?;
    let (mut want, mut notes) = (translated.entry, translated.notes);
    let spec = g.spec();
    want.kind = entry_type(spec, want.kind).map_err(invalid)?;
    if want.kind.is_node() {
        // EKS sets a node's username and groups itself.
        want.username = None;
        want.kubernetes_groups.clear();
        want.access_policies.clear();
    }
    for a in policies(spec, want.kind).map_err(invalid)? {
        if !want.access_policies.contains(&a) {
            want.access_policies.push(a);
        }
    }
    if let Some(message) = forbidden_policy(&want.access_policies, &alone.canonical, cfg.plan) {
        return Err(EntryVerdict {
            reason: Reason::Forbidden,
            ..invalid(message)
        });
    }
    let key = arn::principal_key(&alone.canonical).unwrap_or_default();
    if let Some(full) = cfg
        .role_arns
        .get(&key)
        .filter(|f| **f != want.principal_arn)
    {
        want.principal_arn = full.clone();
        notes.push(PATH_NOTE.into());
    }
    Ok((key, want, notes))
}

/// A grant's principal key, its access entry, and the translation's notes.
type Decided = (String, AccessEntry, Vec<String>);

/// The admin policy among `spec.accessPolicies`, privileged as `system:masters` is, with why
/// (what the webhook asks before letting someone who is not a privileged granter request it).
pub fn admin_policy(spec: &IamAccessGrantSpec, config: &PlanConfig) -> Option<String> {
    let asked = policies(spec, EntryType::Standard).ok()?;
    let (admin, how) = asked.iter().find_map(|a| Some((a, privileged(a)?)))?;
    let why = policy::group_privilege(&["system:masters".to_string()], config)?;
    Some(format!(
        "access policy {} ({how}) is as privileged as {why}",
        admin.label()
    ))
}

/// The Forbidden message for `canonical` holding these policies, when an admin policy is among
/// them and the policy does not allow the principal a privileged identity.
pub fn forbidden_policy(
    policies: &[Association],
    canonical: &str,
    config: &PlanConfig,
) -> Option<String> {
    let (admin, how) = policies.iter().find_map(|a| Some((a, privileged(a)?)))?;
    if policy::principal_allowed(canonical, config) {
        return None;
    }
    let why = policy::group_privilege(&["system:masters".to_string()], config)?;
    Some(format!(
        "access policy {} ({how}) is as privileged as {why}: {}",
        admin.label(),
        policy::forbidden_message(&why, canonical, config)
    ))
}

/// Adopting someone else's entry that holds an admin policy or a node type decides what a
/// privileged identity gets (or takes it away): as privileged as granting it, so only for the
/// principals the policy allows.
fn adopting_privilege(o: &Observed, want: &AccessEntry, config: &PlanConfig) -> Option<String> {
    if policy::principal_allowed(&want.principal_arn, config) {
        return None;
    }
    let (held, group) = match o
        .entry
        .access_policies
        .iter()
        .find(|a| privileged(a).is_some())
    {
        Some(a) => (format!("access policy {}", a.label()), "system:masters"),
        None if o.entry.kind.is_node() => {
            (format!("type {}", o.entry.kind.as_str()), "system:nodes")
        }
        None => return None,
    };
    let why = policy::group_privilege(&[group.to_string()], config)?;
    Some(format!(
        "adopting the access entry of {}, which holds {held} (as privileged as {why}), is as privileged as granting it: {}",
        shown(&o.entry.principal_arn),
        policy::forbidden_message(&why, &want.principal_arn, config)
    ))
}

/// Why an association is privileged, if it is: cluster admin; a policy that reaches Secrets,
/// cluster-wide or in a `kube-` namespace; or a policy this operator does not know (its
/// permissions were never reviewed here: fail closed). Only AmazonEKSViewPolicy is never.
fn privileged(a: &Association) -> Option<&'static str> {
    let name = a.policy_arn.rsplit('/').next().unwrap_or_default();
    match name {
        "AmazonEKSViewPolicy" => None,
        "AmazonEKSClusterAdminPolicy" => Some("cluster admin"),
        n if SECRET_POLICIES.contains(&n) && a.namespaces.is_empty() => {
            Some("Secrets of every namespace")
        }
        n if SECRET_POLICIES.contains(&n) => a
            .namespaces
            .iter()
            .any(|ns| ns.starts_with("kube-"))
            .then_some("Secrets of a kube- namespace"),
        _ => Some("a policy whose permissions this operator does not review"),
    }
}

/// `spec.type` over the type the grant's shape gives.
fn entry_type(spec: &IamAccessGrantSpec, shaped: EntryType) -> Result<EntryType, String> {
    let Some(t) = spec.entry_type else {
        return Ok(shaped);
    };
    let asked = match t {
        AccessEntryType::Standard => EntryType::Standard,
        AccessEntryType::Ec2Linux => EntryType::Ec2Linux,
        AccessEntryType::Ec2Windows => EntryType::Ec2Windows,
        AccessEntryType::FargateLinux => EntryType::FargateLinux,
        AccessEntryType::HybridLinux => EntryType::HybridLinux,
    };
    match (asked.is_node(), shaped.is_node()) {
        (false, true) => Err(format!(
            "spec.type: STANDARD cannot hold the node shape (its groups are system: groups, which access entries refuse): remove type, or set {}",
            shaped.as_str()
        )),
        (true, false) => Err(format!(
            "spec.type: {} is for node roles: give the node shape (username system:node:{{{{EC2PrivateDNSName}}}}, groups [system:bootstrappers, system:nodes]), or remove type",
            asked.as_str()
        )),
        _ => Ok(asked),
    }
}

/// `spec.accessPolicies` as associations.
fn policies(spec: &IamAccessGrantSpec, kind: EntryType) -> Result<Vec<Association>, String> {
    if kind.is_node() && !spec.access_policies.is_empty() {
        return Err(format!(
            "spec.accessPolicies: a {} entry takes no access policies (EKS gives nodes their permissions): remove them",
            kind.as_str()
        ));
    }
    spec.access_policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let at = format!("spec.accessPolicies[{i}].policy");
            let name = match p.policy.strip_prefix("arn:") {
                Some(_) => policy_name(&p.policy).ok_or_else(|| {
                    format!(
                        "{at}: {} is not an EKS access policy ARN: use arn:aws:eks::aws:cluster-access-policy/NAME, or the name alone",
                        shown(&p.policy)
                    )
                })?,
                None => p.policy.as_str(),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(format!(
                    "{at}: {} is not an access policy name (letters and digits, e.g. AmazonEKSViewPolicy)",
                    shown(&p.policy)
                ));
            }
            if let Some(ns) = p.namespaces.iter().find(|n| !is_dns_label(n)) {
                return Err(format!(
                    "spec.accessPolicies[{i}].namespaces: {} is not a namespace name (lower-case letters, digits and -)",
                    shown(ns)
                ));
            }
            let mut namespaces = p.namespaces.clone();
            namespaces.sort();
            namespaces.dedup();
            Ok(Association {
                policy_arn: format!("{POLICY_PREFIX}{name}"),
                namespaces,
            })
        })
        .collect()
}

/// The name in `arn:PARTITION:eks::aws:cluster-access-policy/NAME`.
fn policy_name(a: &str) -> Option<&str> {
    let p = arn::Arn::parse(a).ok()?;
    (arn::PARTITIONS.contains(&p.partition)
        && p.service == "eks"
        && p.region.is_empty()
        && p.account == "aws")
        .then_some(())?;
    p.resource.strip_prefix("cluster-access-policy/")
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The calls that make `have` (if any) into `want` for grant `g`, and the grant's verdict.
fn place<G: GrantRef>(
    g: &G,
    name: &Arc<str>,
    (want, notes): (AccessEntry, Vec<String>),
    have: Option<&Observed>,
    owned: impl Fn(&Observed) -> bool,
    cfg: &EntriesConfig,
    out: &mut EntriesPlan,
) -> EntryVerdict {
    let tags = BTreeMap::from([
        (OPERATOR_TAG.to_string(), cfg.operator.to_string()),
        (
            GRANT_TAG.to_string(),
            g.uid().unwrap_or_default().to_string(),
        ),
    ]);
    let mut calls = Vec::new();
    let principal = match have {
        None => {
            calls.extend(create(&want, tags));
            want.principal_arn.clone()
        }
        // An entry `migrate` made from aws-auth that authenticates the principal exactly as the
        // grant says is the grant's own entry moved: taking it changes nothing.
        Some(o) if !(owned(o) || g.spec().adopt || moved(o, &want)) => {
            return refused(
                Reason::Conflict,
                format!(
                    "an access entry for {} exists that this operator did not create: set adopt: true to take it over, or delete it",
                    shown(&o.entry.principal_arn)
                ),
                &want,
            );
        }
        Some(o)
            if !owned(o)
                && let Some(message) = adopting_privilege(o, &want, cfg.plan) =>
        {
            return refused(Reason::Forbidden, message, &want);
        }
        Some(o) => {
            if o.tags.get(OPERATOR_TAG) != tags.get(OPERATOR_TAG)
                || o.tags.get(GRANT_TAG) != tags.get(GRANT_TAG)
            {
                calls.push(Call::Tag(tags.clone()));
            }
            let have = &o.entry;
            let want = AccessEntry {
                principal_arn: have.principal_arn.clone(),
                ..want.clone()
            };
            if have.kind != want.kind {
                // EKS cannot change an entry's type: it is made again.
                calls.push(Call::Delete);
                calls.extend(create(&want, tags));
            } else {
                let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
                let username_differs = want.username.is_some() && want.username != have.username;
                if !want.kind.is_node()
                    && (username_differs
                        || set(&want.kubernetes_groups) != set(&have.kubernetes_groups))
                {
                    calls.push(Call::Update {
                        username: want.username.clone(),
                        groups: want.kubernetes_groups.clone(),
                    });
                }
                for a in &want.access_policies {
                    if !have.access_policies.contains(a) {
                        calls.push(Call::Associate(a.clone()));
                    }
                }
                for a in &have.access_policies {
                    if !want
                        .access_policies
                        .iter()
                        .any(|w| w.policy_arn == a.policy_arn)
                    {
                        calls.push(Call::Disassociate(a.policy_arn.clone()));
                    }
                }
            }
            have.principal_arn.clone()
        }
    };
    let message = describe(&want, &principal, have.is_some_and(|o| !owned(o)), &notes);
    if !calls.is_empty() {
        out.work.push(Work {
            grant: Some(name.clone()),
            principal,
            calls,
        });
    }
    EntryVerdict {
        reason: Reason::Applied,
        message,
        section: None,
        canonical_arn: Some(want.principal_arn.as_str().into()),
        unsupported: false,
    }
}

/// Creating `want`: the entry, then its policies.
fn create(want: &AccessEntry, tags: BTreeMap<String, String>) -> Vec<Call> {
    let entry = AccessEntry {
        access_policies: Vec::new(),
        ..want.clone()
    };
    std::iter::once(Call::Create(entry, tags))
        .chain(want.access_policies.iter().cloned().map(Call::Associate))
        .collect()
}

/// Whether `o` is an entry `migrate` made from aws-auth that authenticates the principal exactly
/// as `want` does.
fn moved(o: &Observed, want: &AccessEntry) -> bool {
    o.tags.contains_key(access_entry::MIGRATED_TAG)
        && access_entry::differences(want, &o.entry).is_empty()
}

/// The Applied message: what the access entry holds.
fn describe(want: &AccessEntry, principal: &str, adopted: bool, notes: &[String]) -> String {
    let mut s = format!("access entry {} ({}", shown(principal), want.kind.as_str());
    if let Some(u) = &want.username {
        s.push_str(&format!(", username {}", shown(u)));
    }
    if !want.kubernetes_groups.is_empty() {
        s.push_str(&format!(", groups [{}]", want.kubernetes_groups.join(", ")));
    }
    if !want.access_policies.is_empty() {
        let labels: Vec<String> = want
            .access_policies
            .iter()
            .map(Association::label)
            .collect();
        s.push_str(&format!(", policies [{}]", labels.join("; ")));
    }
    s.push(')');
    if principal != want.principal_arn {
        s.push_str("; ");
        s.push_str(PATH_NOTE);
    }
    for n in notes {
        s.push_str("; ");
        s.push_str(n);
    }
    if adopted {
        s.push_str("; adopted");
    }
    s
}

/// The breaker: deletions held when they are many and a large share of the operator's entries.
fn breaker(deletions: &[Work], owned: usize, cfg: &EntriesConfig) -> Option<HeldDeletion> {
    let n = deletions.len();
    let counted = n + cfg.recently_removed;
    let base = owned.max(cfg.plan.peak_managed).max(1);
    let over = n > 0
        && counted > cfg.plan.max_removals
        && counted * 100 > base * cfg.plan.max_removal_percent as usize;
    if !over {
        return None;
    }
    let mut principals: Vec<String> = deletions.iter().map(|w| w.principal.clone()).collect();
    principals.sort();
    let token = format!("{:016x}", hash128(|mut h| principals.hash(&mut h)) as u64);
    Some(HeldDeletion {
        principals,
        token,
        owned,
    })
}

use std::hash::Hash;

#[cfg(test)]
mod tests;
