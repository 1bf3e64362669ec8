//! EKS access entries, the second way to say who may use a cluster: what an aws-auth entry
//! becomes as an access entry that authenticates the same principal the same way, or why none
//! can. Every rule names the EKS User Guide page it comes from (see ARCHITECTURE.md); where the
//! two could disagree the entry is not translated: never guessed.
use serde::Serialize;

use crate::engine::authmap::arn;
use crate::engine::authmap::{Mapping, Section, shown};

/// The tag each entry `migrate apply` creates carries, so that it can be told from the others.
pub const MIGRATED_TAG: &str = "aws-auth.dev/migrated-from";
/// Where EKS's access policies live; a policy is named by what follows.
pub const POLICY_PREFIX: &str = "arn:aws:eks::aws:cluster-access-policy/";
/// What `system:masters` becomes: access entries refuse `system:` groups ("Create access
/// entries"), and this policy is the one EKS documents as its equal ("Review access policy
/// permissions": AmazonEKSClusterAdminPolicy, "equivalent to system:masters").
pub const CLUSTER_ADMIN_POLICY: &str =
    "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy";
/// Usernames an access entry may not start with ("Set a custom username").
pub const RESERVED_USERNAME_PREFIXES: [&str; 5] = ["system:", "eks:", "aws:", "amazon:", "iam:"];
/// Template tokens an access entry's username expands ("Set a custom username"); a colon must
/// come before them.
pub const USERNAME_TOKENS: [&str; 2] = ["{{SessionName}}", "{{SessionNameRaw}}"];

const NODE_USERNAME: &str = "system:node:{{EC2PrivateDNSName}}";
const SESSION_NODE_USERNAME: &str = "system:node:{{SessionName}}";

/// An access entry's type ("Create access entries": node types are for roles EKS grants the
/// node permissions to itself, with no username or groups of their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntryType {
    Standard,
    Ec2Linux,
    Ec2Windows,
    FargateLinux,
    HybridLinux,
}

impl EntryType {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Standard => "STANDARD",
            EntryType::Ec2Linux => "EC2_LINUX",
            EntryType::Ec2Windows => "EC2_WINDOWS",
            EntryType::FargateLinux => "FARGATE_LINUX",
            EntryType::HybridLinux => "HYBRID_LINUX",
        }
    }

    pub fn parse(s: &str) -> Option<EntryType> {
        [
            EntryType::Standard,
            EntryType::Ec2Linux,
            EntryType::Ec2Windows,
            EntryType::FargateLinux,
            EntryType::HybridLinux,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }

    pub fn is_node(self) -> bool {
        self != EntryType::Standard
    }
}

/// An access policy associated with an entry: cluster-wide when `namespaces` is empty.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Association {
    pub policy_arn: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

impl Association {
    /// `NAME` (cluster-wide) or `NAME in ns1,ns2`, the policy named without its prefix.
    pub fn label(&self) -> String {
        let name = self.policy_arn.trim_start_matches(POLICY_PREFIX);
        if self.namespaces.is_empty() {
            name.to_string()
        } else {
            format!("{name} in {}", self.namespaces.join(","))
        }
    }
}

/// An access entry as this operator writes or reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessEntry {
    pub principal_arn: String,
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// `None`: EKS generates it (and for node types, EKS sets it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kubernetes_groups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_policies: Vec<Association>,
}

/// An aws-auth entry translated: the access entry and what changed in the translation's form
/// (not in its meaning), for the person to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Translated {
    pub entry: AccessEntry,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The node shapes EKS writes into aws-auth, and the entry types that replace them ("Migrating
/// existing aws-auth ConfigMap entries to access entries"; "Create access entries").
fn node_type(m: &Mapping) -> Option<EntryType> {
    let has = |g: &str| m.groups.iter().any(|x| x == g);
    let only = |allowed: &[&str]| m.groups.iter().all(|g| allowed.contains(&g.as_str()));
    let node = has("system:bootstrappers") && has("system:nodes");
    match m.username.as_str() {
        NODE_USERNAME if node && has("eks:kube-proxy-windows") => only(&[
            "system:bootstrappers",
            "system:nodes",
            "eks:kube-proxy-windows",
        ])
        .then_some(EntryType::Ec2Windows),
        NODE_USERNAME if node => {
            only(&["system:bootstrappers", "system:nodes"]).then_some(EntryType::Ec2Linux)
        }
        SESSION_NODE_USERNAME if node && has("system:node-proxier") => only(&[
            "system:bootstrappers",
            "system:nodes",
            "system:node-proxier",
        ])
        .then_some(EntryType::FargateLinux),
        SESSION_NODE_USERNAME if node => {
            only(&["system:bootstrappers", "system:nodes"]).then_some(EntryType::HybridLinux)
        }
        _ => None,
    }
}

/// The access entry that authenticates `m`'s principal as aws-auth does (same username, same
/// groups or the policy EKS documents as their equal), or why there is none, with the fix.
/// `cluster_account` is the account of the cluster (node types need roles of that account).
pub fn from_mapping(
    section: Section,
    m: &Mapping,
    cluster_account: Option<&str>,
) -> Result<Translated, String> {
    let principal = principal(section, &m.arn)?;
    if let Some(kind) = node_type(m) {
        if section != Section::MapRoles {
            return Err(format!(
                "a node identity on an IAM user: {} entries are for roles; map the node role instead",
                kind.as_str()
            ));
        }
        if let Some(account) = cluster_account
            && arn::Arn::parse(&principal).map(|a| a.account) != Ok(account)
        {
            return Err(format!(
                "a {} entry needs a role of the cluster's account {account}: keep this node role in aws-auth, or use a role of that account",
                kind.as_str()
            ));
        }
        return Ok(Translated {
            entry: AccessEntry {
                principal_arn: principal,
                kind,
                username: None,
                kubernetes_groups: Vec::new(),
                access_policies: Vec::new(),
            },
            notes: vec![format!(
                "node role: type {} (EKS sets the username and the node groups)",
                kind.as_str()
            )],
        });
    }
    let username = username(&m.username)?;
    let (kubernetes_groups, access_policies, notes) = groups(&m.groups)?;
    Ok(Translated {
        entry: AccessEntry {
            principal_arn: principal,
            kind: EntryType::Standard,
            username: Some(username),
            kubernetes_groups,
            access_policies,
        },
        notes,
    })
}

/// [`from_mapping`] for a grant that leaves the username out: a STANDARD entry whose username
/// EKS generates ("Set a custom username": without one, EKS generates it from the principal).
pub fn with_generated_username(section: Section, m: &Mapping) -> Result<Translated, String> {
    let principal = principal(section, &m.arn)?;
    let (kubernetes_groups, access_policies, mut notes) = groups(&m.groups)?;
    notes.push("username generated by EKS".into());
    Ok(Translated {
        entry: AccessEntry {
            principal_arn: principal,
            kind: EntryType::Standard,
            username: None,
            kubernetes_groups,
            access_policies,
        },
        notes,
    })
}

/// The principal ARN an entry names, as access entries take it: IAM role and user ARNs only
/// ("Create access entries": no STS session ARNs).
fn principal(section: Section, a: &str) -> Result<String, String> {
    let parsed = arn::Arn::parse(a).map_err(|e| format!("{e}: nothing to migrate"))?;
    let wanted = match section {
        Section::MapRoles => "role/",
        _ => "user/",
    };
    if parsed.service != "iam" || !parsed.resource.starts_with(wanted) {
        return Err(format!(
            "{} is not an IAM {} ARN, which aws-auth never matches here and access entries refuse: nothing to migrate; remove it",
            shown(a),
            wanted.trim_end_matches('/')
        ));
    }
    if section == Section::MapRoles && arn::role_path(a).is_some() {
        return Err(format!(
            "the role ARN has a path, which aws-auth never matches: nothing to migrate (an access entry for {} would grant access that aws-auth does not)",
            shown(a)
        ));
    }
    Ok(a.to_string())
}

/// An aws-auth username as an access entry's ("Set a custom username").
fn username(u: &str) -> Result<String, String> {
    if u.is_empty() {
        return Err(
            "aws-auth gives this entry no username: set the username the principal should have, then migrate"
                .into(),
        );
    }
    if let Some(p) = RESERVED_USERNAME_PREFIXES
        .iter()
        .find(|p| u.starts_with(*p))
    {
        return Err(format!(
            "username {} starts with `{p}`, which access entries refuse: keep this entry in aws-auth, or choose a username without it",
            shown(u)
        ));
    }
    let mut rest = u;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i..];
        let Some(token) = USERNAME_TOKENS.iter().find(|t| after.starts_with(*t)) else {
            let end = after.find("}}").map_or(after.len(), |e| e + 2);
            return Err(format!(
                "username template `{}` is not one access entries expand (they expand {{{{SessionName}}}} and {{{{SessionNameRaw}}}}): keep this entry in aws-auth, or choose a username without it",
                shown(&after[..end])
            ));
        };
        if !u[..u.len() - rest.len() + i].contains(':') {
            return Err(format!(
                "username {} has {token} with no colon before it, which access entries refuse: choose a username with a colon before it (e.g. `name:{token}`), then migrate",
                shown(u)
            ));
        }
        rest = &after[token.len()..];
    }
    Ok(u.to_string())
}

type Groups = (Vec<String>, Vec<Association>, Vec<String>);

/// aws-auth groups as access-entry groups, and `system:masters` as the cluster-admin policy.
fn groups(gs: &[String]) -> Result<Groups, String> {
    let mut groups: Vec<String> = Vec::new();
    let mut policies = Vec::new();
    let mut notes = Vec::new();
    for g in gs {
        if g == "system:masters" {
            if policies.is_empty() {
                policies.push(Association {
                    policy_arn: CLUSTER_ADMIN_POLICY.into(),
                    namespaces: Vec::new(),
                });
                notes.push(
                    "group system:masters becomes the AmazonEKSClusterAdminPolicy association, cluster-wide (access entries refuse system: groups)"
                        .into(),
                );
            }
            continue;
        }
        if g.starts_with("system:") {
            return Err(format!(
                "group {} is a system: group, which access entries refuse, and no access policy is its documented equal: keep this entry in aws-auth, or bind the permissions to a group of your own",
                shown(g)
            ));
        }
        if g.contains("{{") {
            return Err(format!(
                "group {} holds a template, which access entries do not expand: keep this entry in aws-auth",
                shown(g)
            ));
        }
        if !groups.contains(g) {
            groups.push(g.clone());
        }
    }
    Ok((groups, policies, notes))
}

/// How an existing access entry differs from the one wanted (empty: it authenticates the
/// principal the same way). An entry that grants more (an extra group or policy) differs too.
pub fn differences(want: &AccessEntry, have: &AccessEntry) -> Vec<String> {
    let mut out = Vec::new();
    if want.kind != have.kind {
        out.push(format!(
            "type is {}, not {}",
            have.kind.as_str(),
            want.kind.as_str()
        ));
    }
    if let Some(u) = &want.username
        && have.username.as_deref() != Some(u.as_str())
    {
        out.push(format!(
            "username is {}, not {}",
            shown(have.username.as_deref().unwrap_or("(generated)")),
            shown(u)
        ));
    }
    let set = |v: &[String]| -> std::collections::BTreeSet<String> { v.iter().cloned().collect() };
    if set(&want.kubernetes_groups) != set(&have.kubernetes_groups) {
        out.push(format!(
            "groups are [{}], not [{}]",
            have.kubernetes_groups.join(", "),
            want.kubernetes_groups.join(", ")
        ));
    }
    let policies = |v: &[Association]| -> std::collections::BTreeSet<Association> {
        v.iter()
            .map(|a| {
                let mut a = a.clone();
                a.namespaces.sort();
                a
            })
            .collect()
    };
    if policies(&want.access_policies) != policies(&have.access_policies) {
        let list = |v: &[Association]| {
            v.iter()
                .map(Association::label)
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!(
            "policies are [{}], not [{}]",
            list(&have.access_policies),
            list(&want.access_policies)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(username: &str, groups: &[&str]) -> Mapping {
        Mapping {
            arn: "arn:aws:iam::111122223333:role/dev".into(),
            username: username.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn ok(m: &Mapping) -> Translated {
        from_mapping(Section::MapRoles, m, Some("111122223333")).expect("translates")
    }

    fn refused(section: Section, m: &Mapping) -> String {
        from_mapping(section, m, Some("111122223333")).expect_err("refused")
    }

    #[test]
    fn a_plain_role_keeps_username_and_groups() {
        let t = ok(&role("dev:{{SessionName}}", &["devs", "viewers", "devs"]));
        assert_eq!(t.entry.kind, EntryType::Standard);
        assert_eq!(t.entry.username.as_deref(), Some("dev:{{SessionName}}"));
        assert_eq!(t.entry.kubernetes_groups, ["devs", "viewers"]);
        assert!(t.entry.access_policies.is_empty() && t.notes.is_empty());
    }

    #[test]
    fn system_masters_becomes_the_cluster_admin_policy() {
        let t = ok(&role("admin", &["system:masters", "ops"]));
        assert_eq!(t.entry.kubernetes_groups, ["ops"]);
        assert_eq!(
            t.entry.access_policies,
            [Association {
                policy_arn: CLUSTER_ADMIN_POLICY.into(),
                namespaces: vec![]
            }]
        );
        assert!(t.notes[0].contains("AmazonEKSClusterAdminPolicy"));
    }

    #[test]
    fn node_shapes_become_node_types() {
        let node = |u: &str, g: &[&str]| ok(&role(u, g)).entry;
        let linux = node(NODE_USERNAME, &["system:bootstrappers", "system:nodes"]);
        assert_eq!((linux.kind, linux.username), (EntryType::Ec2Linux, None));
        assert!(linux.kubernetes_groups.is_empty());
        let windows = node(
            NODE_USERNAME,
            &[
                "system:bootstrappers",
                "system:nodes",
                "eks:kube-proxy-windows",
            ],
        );
        assert_eq!(windows.kind, EntryType::Ec2Windows);
        let fargate = node(
            SESSION_NODE_USERNAME,
            &[
                "system:bootstrappers",
                "system:nodes",
                "system:node-proxier",
            ],
        );
        assert_eq!(fargate.kind, EntryType::FargateLinux);
        let hybrid = node(
            SESSION_NODE_USERNAME,
            &["system:bootstrappers", "system:nodes"],
        );
        assert_eq!(hybrid.kind, EntryType::HybridLinux);
        // A node shape with one more group is not EKS's shape: not guessed.
        let extra = refused(
            Section::MapRoles,
            &role(
                NODE_USERNAME,
                &["system:bootstrappers", "system:nodes", "ops"],
            ),
        );
        assert!(extra.contains("starts with `system:`"), "{extra}");
        // Node types need a role of the cluster's account.
        let mut other = role(NODE_USERNAME, &["system:bootstrappers", "system:nodes"]);
        other.arn = "arn:aws:iam::999999999999:role/nodes".into();
        assert!(refused(Section::MapRoles, &other).contains("111122223333"));
    }

    #[test]
    fn what_access_entries_cannot_say_is_refused_with_the_reason() {
        let cases = [
            (role("", &[]), "no username"),
            (role("system:admin", &[]), "starts with `system:`"),
            (role("eks:x", &[]), "starts with `eks:`"),
            (role("amazon:x", &[]), "starts with `amazon:`"),
            (role("x-{{AccountID}}", &[]), "`{{AccountID}}` is not one"),
            (
                role("x:{{AccessKeyID}}", &[]),
                "`{{AccessKeyID}}` is not one",
            ),
            (role("dev{{SessionName}}", &[]), "no colon before it"),
            (role("dev", &["system:nodes"]), "system: group"),
            (role("dev", &["team-{{SessionName}}"]), "template"),
        ];
        for (m, why) in cases {
            let got = refused(Section::MapRoles, &m);
            assert!(got.contains(why), "{m:?}: {got}");
        }
        let mut path = role("dev", &[]);
        path.arn = "arn:aws:iam::111122223333:role/team/dev".into();
        assert!(refused(Section::MapRoles, &path).contains("never matches"));
        let mut session = role("dev", &[]);
        session.arn = "arn:aws:sts::111122223333:assumed-role/dev/s".into();
        assert!(refused(Section::MapRoles, &session).contains("not an IAM role ARN"));
        let mut user = role("alice", &["devs"]);
        user.arn = "arn:aws:iam::111122223333:user/people/alice".into();
        let t = from_mapping(Section::MapUsers, &user, None).unwrap();
        assert_eq!(
            t.entry.principal_arn,
            "arn:aws:iam::111122223333:user/people/alice"
        );
    }

    #[test]
    fn raw_session_names_and_colons_anywhere_before_the_token() {
        for u in [
            "a:b{{SessionNameRaw}}",
            ":{{SessionName}}",
            "arn:aws:sts::1:x/{{SessionName}}",
        ] {
            assert_eq!(ok(&role(u, &[])).entry.username.as_deref(), Some(u));
        }
    }

    #[test]
    fn differences_name_each_field_and_extra_grants() {
        let want = ok(&role("admin", &["system:masters", "ops"])).entry;
        assert!(differences(&want, &want).is_empty());
        let mut have = want.clone();
        have.kubernetes_groups = vec!["ops".into(), "more".into()];
        have.username = Some("other".into());
        have.access_policies.push(Association {
            policy_arn: format!("{POLICY_PREFIX}AmazonEKSViewPolicy"),
            namespaces: vec!["a".into()],
        });
        let d = differences(&want, &have);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d[2].contains("AmazonEKSViewPolicy in a"), "{d:?}");
    }
}
