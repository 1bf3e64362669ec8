//! What the admission webhook decides, pure: an edit of aws-auth or of a grant in, allowed or
//! denied with the same findings and messages `render` and the statuses give.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use crate::api::{IamAccessGrant, Reason};
use crate::engine::authmap::read::{AwsAuthRead, Finding, read_data};
use crate::engine::authmap::{Section, shown};
use crate::engine::plan::{
    CONFIRM_ANNOTATION, CONFIRMED_BY_ANNOTATION, HELD_ANNOTATION, HeldRemoval,
    OWNERSHIP_ANNOTATION, Ownership, PlanConfig, WINDOW_ANNOTATION, entry_key, plan,
    section_entries,
};

/// The annotation that lets one denied edit through in an emergency; its value says why. It
/// counts only on the request that sets or changes it (and on the object a DELETE removes).
pub const BREAK_GLASS_ANNOTATION: &str = "aws-auth.dev/break-glass";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
    Other,
}

/// The webhook's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub message: String,
    /// Shown by kubectl as `Warning: ...` on an allowed request.
    pub warnings: Vec<String>,
    /// Set when the escape hatch let the request through: the reason given.
    pub break_glass: Option<String>,
}

impl Decision {
    fn allow() -> Self {
        Decision {
            allowed: true,
            ..Default::default()
        }
    }

    fn deny(message: String) -> Self {
        Decision {
            allowed: false,
            message,
            ..Default::default()
        }
    }
}

/// Who the request comes from, as the API server tells the webhook.
#[derive(Debug, Clone, Default)]
pub struct Requester {
    pub username: String,
    pub groups: Vec<String>,
}

/// The ConfigMap the webhook guards and whose edits are the operator's own.
#[derive(Debug, Clone)]
pub struct AwsAuthTarget {
    pub namespace: String,
    pub name: String,
    /// The history ConfigMap beside it, which only the operator writes.
    pub history_name: String,
    pub operator_username: String,
}

fn annotation<'a>(cm: Option<&'a ConfigMap>, key: &str) -> Option<&'a str> {
    cm?.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// The escape hatch's reason, when this request uses it.
fn break_glass(
    op: &Op,
    old: Option<&BTreeMap<String, String>>,
    new: Option<&BTreeMap<String, String>>,
) -> Option<String> {
    let get = |a: Option<&BTreeMap<String, String>>| {
        a.and_then(|a| a.get(BREAK_GLASS_ANNOTATION))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    match op {
        Op::Delete => get(old),
        _ => get(new).filter(|n| get(old).as_ref() != Some(n)),
    }
}

const HATCH: &str = "in an emergency, set the annotation aws-auth.dev/break-glass=\"<why>\" in the same edit (it is recorded in a Warning Event)";

/// An edit of aws-auth: denied if it introduces text EKS would read differently (a key dropped,
/// an entry dropped, a field blanked or coerced, text ignored, a construct not read exactly, a
/// wrong-case key), changes or removes an entry the operator manages, or deletes aws-auth.
/// Findings already present in the old text of a key do not count, so fixing one key of an
/// already broken map is allowed.
pub fn review_aws_auth(
    op: &Op,
    user: &Requester,
    old: Option<&ConfigMap>,
    new: Option<&ConfigMap>,
    target: &AwsAuthTarget,
) -> Decision {
    let obj = new.or(old);
    let named = |name: &str| {
        obj.is_some_and(|c| {
            c.metadata.name.as_deref() == Some(name)
                && c.metadata.namespace.as_deref().unwrap_or(&target.namespace) == target.namespace
        })
    };
    let history = named(&target.history_name);
    if !(named(&target.name) || history) || user.username == target.operator_username {
        return Decision::allow();
    }
    let annotations = |c: Option<&ConfigMap>| c.and_then(|c| c.metadata.annotations.clone());
    if let Some(why) = break_glass(op, annotations(old).as_ref(), annotations(new).as_ref()) {
        let recorded = if history {
            "logged by the operator"
        } else {
            "recorded in a Warning Event"
        };
        return Decision {
            allowed: true,
            warnings: vec![format!(
                "aws-auth-operator's checks were skipped (break-glass: {}); this is {recorded}",
                shown(&why)
            )],
            break_glass: Some(why),
            ..Default::default()
        };
    }
    if history {
        return review_history(op, target);
    }
    let place = format!("{}/{}", target.namespace, target.name);
    match op {
        Op::Delete => {
            return Decision::deny(format!(
                "deleting {place} unmaps every IAM user and role it maps, EKS node roles included (nodes go NotReady, people are locked out); nothing was deleted. Remove grants through IamAccessGrants; {HATCH}"
            ));
        }
        Op::Create | Op::Update => {}
        Op::Other => return Decision::allow(),
    }
    let empty = BTreeMap::new();
    let data = |c: Option<&ConfigMap>| c.and_then(|c| c.data.as_ref()).unwrap_or(&empty).clone();
    let (old_data, new_data) = (data(old), data(new));
    let (old_read, new_read) = (read_data(&old_data), read_data(&new_data));

    let mut problems: Vec<String> = introduced(&old_data, &new_data, &old_read, &new_read)
        .into_iter()
        .map(|f| format!("aws-auth {f}"))
        .collect();
    problems.extend(managed_changes(old, &old_read, &new_read));
    problems.extend(records_changed(old, new));
    problems.extend(confirmation_problems(user, old, new));
    if problems.is_empty() {
        let warnings = new_read
            .findings()
            .filter(|f| !f.effect.blocks_rewrite() && !already(f, &old_data, &new_data, &old_read))
            .map(|f| format!("aws-auth {f}"))
            .collect();
        return Decision {
            allowed: true,
            warnings,
            ..Default::default()
        };
    }
    let n = problems.len();
    Decision::deny(format!(
        "aws-auth-operator denied this edit of {place} ({n} problem{}; nothing was written): {}. Fix the text and apply again; {HATCH}",
        if n == 1 { "" } else { "s" },
        problems.join("; ")
    ))
}

/// The history is the operator's record of what aws-auth held, which `restore` writes back:
/// only the operator writes it, so nobody can plant an entry there for a restore to bring in.
fn review_history(op: &Op, target: &AwsAuthTarget) -> Decision {
    if matches!(op, Op::Other) {
        return Decision::allow();
    }
    let verb = match op {
        Op::Create => "creating",
        Op::Delete => "deleting",
        _ => "changing",
    };
    Decision::deny(format!(
        "{verb} {}/{} is denied: it is aws-auth-operator's history of aws-auth (what `aws-auth-operator restore` writes back), which only the operator ({}) writes; nothing was written. {HATCH}",
        target.namespace,
        target.history_name,
        shown(&target.operator_username)
    ))
}

/// The operator's own records on aws-auth (the entries it manages, the held removal, the removal
/// window), which only it may change.
fn records_changed(old: Option<&ConfigMap>, new: Option<&ConfigMap>) -> Vec<String> {
    if old.is_none() {
        return Vec::new();
    }
    [
        (OWNERSHIP_ANNOTATION, "the entries it manages"),
        (HELD_ANNOTATION, "the removal breaker"),
        (WINDOW_ANNOTATION, "the removal breaker"),
    ]
    .into_iter()
    .filter(|(k, _)| annotation(old, k) != annotation(new, k))
    .map(|(k, what)| {
        format!("the annotation {k} is aws-auth-operator's record of {what}; leave it as it is")
    })
    .collect()
}

/// A confirmation must name the removal held now and the requester.
fn confirmation_problems(
    user: &Requester,
    old: Option<&ConfigMap>,
    new: Option<&ConfigMap>,
) -> Vec<String> {
    let changed = |k: &str| annotation(old, k) != annotation(new, k);
    let mut out = Vec::new();
    let confirm = annotation(new, CONFIRM_ANNOTATION).map(str::trim);
    if !changed(CONFIRM_ANNOTATION) && !changed(CONFIRMED_BY_ANNOTATION) {
        return out;
    }
    let Some(token) = confirm.filter(|t| !t.is_empty()) else {
        return out;
    };
    match HeldRemoval::from_configmap(old) {
        Some(h) if h.token == token && h.confirm.is_some() => {}
        Some(h) => out.push(format!(
            "{CONFIRM_ANNOTATION}: {} is not the token of the removal held now ({}, {} entries)",
            shown(token),
            h.token,
            h.count
        )),
        None => out.push(format!(
            "{CONFIRM_ANNOTATION}: no removal is held, so there is nothing to confirm"
        )),
    }
    if annotation(new, CONFIRMED_BY_ANNOTATION) != Some(user.username.as_str()) {
        out.push(format!(
            "a confirmation records who gave it: set {CONFIRMED_BY_ANNOTATION}: \"{}\" (your username) in the same edit, as `aws-auth-operator confirm-removal` does",
            shown(&user.username)
        ));
    }
    out
}

/// Whether a finding was already there before this edit: its key's text did not change, or the
/// old text of that key had the same finding.
fn already(
    f: &Finding,
    old_data: &BTreeMap<String, String>,
    new_data: &BTreeMap<String, String>,
    old_read: &AwsAuthRead,
) -> bool {
    old_data.get(&f.key) == new_data.get(&f.key)
        || old_read
            .findings()
            .any(|o| o.key == f.key && o.effect == f.effect && o.message == f.message)
}

/// Findings of the new text that make EKS read it differently from how it looks, and that this
/// edit introduced. Wrong-case keys (`MapRoles`) count: they map nobody.
fn introduced<'r>(
    old_data: &BTreeMap<String, String>,
    new_data: &BTreeMap<String, String>,
    old_read: &AwsAuthRead,
    new_read: &'r AwsAuthRead,
) -> Vec<&'r Finding> {
    let wrong_case = |f: &Finding| f.line == 0 && Section::from_key(&f.key).is_none();
    new_read
        .findings()
        .filter(|f| f.effect.blocks_rewrite() || wrong_case(f))
        .filter(|f| !already(f, old_data, new_data, old_read))
        .collect()
}

/// Managed entries this edit changes or removes (they change through grants).
fn managed_changes(
    old: Option<&ConfigMap>,
    old_read: &AwsAuthRead,
    new_read: &AwsAuthRead,
) -> Vec<String> {
    let owned = Ownership::from_configmap(old).unwrap_or_default();
    let mut out = Vec::new();
    for section in Section::ALL {
        let Some(keys) = owned.keys.get(&section) else {
            continue;
        };
        if !old_read.readable(section) || !new_read.readable(section) {
            continue;
        }
        let before = section_entries(old_read, section);
        let after = section_entries(new_read, section);
        for (_, entry) in before
            .iter()
            .filter(|(_, e)| keys.contains_key(&entry_key(e)))
        {
            let key = entry_key(entry);
            let now = after.iter().find(|(_, e)| entry_key(e) == key);
            let what = match now {
                None => "removes",
                Some((_, e)) if e != entry => "changes",
                Some(_) => continue,
            };
            let principal = match entry {
                crate::engine::validate::Entry::Mapping(m) => m.arn.clone(),
                crate::engine::validate::Entry::Account(a) => a.clone(),
            };
            out.push(format!(
                "this edit {what} the {section} entry for {}, which aws-auth-operator manages: change or delete its IamAccessGrant instead",
                shown(&principal)
            ));
        }
    }
    out
}

/// An edit of a grant: denied for what the controller would refuse outright (an invalid spec,
/// the cluster creator, a privileged group for a principal outside the policy), and for a
/// privileged group requested by someone not among the privileged granters.
pub fn review_grant(
    op: &Op,
    user: &Requester,
    old: Option<&IamAccessGrant>,
    new: Option<&IamAccessGrant>,
    config: &PlanConfig,
    privileged_granters: &[String],
) -> Decision {
    if !matches!(op, Op::Create | Op::Update) {
        return Decision::allow();
    }
    let Some(g) = new else {
        return Decision::allow();
    };
    let name = g.metadata.name.clone().unwrap_or_default();
    // Who may grant is the webhook's check alone (the controller never sees the requester), so
    // the break-glass annotation never skips it.
    if !privileged_granters.is_empty()
        && !is_granter(user, privileged_granters)
        && let Ok(v) = crate::engine::validate::validate(&g.spec)
        && let Some(why) = crate::engine::policy::privilege(&v.entry, config)
            .map(|p| p.to_string())
            .or_else(|| crate::engine::entries::admin_policy(&g.spec, config))
    {
        return Decision::deny(format!(
            "IamAccessGrant {name}: Forbidden: {why}; only the privileged granters ({}) may request a privileged grant, and {} is not one of them (the break-glass annotation does not change who may grant)",
            privileged_granters.join(", "),
            shown(&user.username)
        ));
    }
    let annotations = |g: Option<&IamAccessGrant>| g.and_then(|g| g.metadata.annotations.clone());
    if let Some(why) = break_glass(op, annotations(old).as_ref(), annotations(new).as_ref()) {
        return Decision {
            allowed: true,
            warnings: vec![format!(
                "aws-auth-operator's admission checks were skipped (break-glass: {}); the operator still refuses what it must",
                shown(&why)
            )],
            break_glass: Some(why),
            ..Default::default()
        };
    }
    let p = match plan(std::slice::from_ref(g), None, config) {
        Ok(p) => p,
        Err(e) => return Decision::deny(format!("IamAccessGrant {name}: {e}")),
    };
    // No username is for access entries only: whether aws-auth is written here the operator
    // knows (its status says), so it is let through with a warning.
    let mut warnings = Vec::new();
    if let Some(v) = p.verdicts.first()
        && v.reason == Reason::Invalid
        && &*v.message == crate::engine::rules::USERNAME_FOR_AWS_AUTH
    {
        warnings.push(format!(
            "IamAccessGrant {name}: no username: EKS access entries generate one, and aws-auth cannot hold the grant"
        ));
    } else if let Some(v) = p.verdicts.first()
        && matches!(
            v.reason,
            Reason::Invalid | Reason::ClusterCreator | Reason::Forbidden
        )
    {
        return Decision::deny(format!(
            "IamAccessGrant {name}: {}: {}",
            v.reason, v.message
        ));
    }
    // An admin access policy is held to the privileged policy whichever backend runs.
    let entries = crate::engine::entries::plan(
        std::slice::from_ref(g),
        &[],
        &crate::engine::entries::EntriesConfig {
            plan: config,
            operator: "",
            cluster_account: None,
            recently_removed: 0,
            confirmed: None,
            role_arns: &Default::default(),
        },
    );
    if let Some(v) = entries.verdicts.values().next()
        && v.reason == Reason::Forbidden
    {
        return Decision::deny(format!("IamAccessGrant {name}: Forbidden: {}", v.message));
    }
    Decision {
        warnings,
        ..Decision::allow()
    }
}

/// `--privileged-granter` entries: a username, or `group:NAME`.
fn is_granter(user: &Requester, granters: &[String]) -> bool {
    granters.iter().any(|g| match g.strip_prefix("group:") {
        Some(group) => user.groups.iter().any(|x| x == group),
        None => *g == user.username,
    })
}

#[cfg(test)]
mod tests;
