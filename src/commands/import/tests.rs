use super::*;
use crate::engine::authmap::lookup::lookup;
use crate::engine::authmap::read::read_data;
use crate::engine::plan::{PlanConfig, plan};
use k8s_openapi::api::core::v1::ConfigMap;

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// As EKS writes it for a managed node group and a Fargate profile.
const EKS_NODES: &str = "- groups:\n  - system:bootstrappers\n  - system:nodes\n  rolearn: arn:aws:iam::111122223333:role/eks-nodegroup-NodeInstanceRole-1ABC\n  username: system:node:{{EC2PrivateDNSName}}\n- groups:\n  - system:bootstrappers\n  - system:nodes\n  - system:node-proxier\n  rolearn: arn:aws:iam::111122223333:role/eks-fargate-profile\n  username: system:node:{{SessionName}}\n";
/// As eksctl's `create iamidentitymapping` appends it.
const EKSCTL_ROLES: &str = "- groups:\n  - system:masters\n  rolearn: arn:aws:iam::111122223333:role/Admin\n  username: admin\n- rolearn: arn:aws:iam::111122223333:role/ReadOnly\n  username: readonly:{{SessionName}}\n  groups:\n  - view\n";
/// As people write it by hand: flow lists, quotes, a duplicate, a dead path entry.
const HAND_USERS: &str = "- userarn: arn:aws:iam::111122223333:user/ops/alice\n  username: alice\n  groups: [system:masters]\n- userarn: \"arn:aws:iam::111122223333:user/bob\"\n  username: 'bob'\n- userarn: arn:aws:iam::111122223333:user/bob\n  username: bob2\n  groups: [\"dev\"]\n";
const HAND_ROLES_WITH_PATH: &str =
    "- rolearn: arn:aws:iam::111122223333:role/team/Deployer\n  username: deployer\n";

/// Every principal EKS could be asked about, with what it decides for each.
fn decisions(
    d: &BTreeMap<String, String>,
    principals: &[&str],
) -> Vec<Option<(String, Vec<String>)>> {
    let read = read_data(d);
    principals
        .iter()
        .map(|p| lookup(&read, p, "111122223333").map(|h| (h.mapping.username, h.mapping.groups)))
        .collect()
}

fn round_trip(d: BTreeMap<String, String>, include_nodes: bool, principals: &[&str]) {
    let imported = import(&d, include_nodes);
    let grants: Vec<IamAccessGrant> = imported.grants.iter().map(|(_, _, g)| g.clone()).collect();
    // Apply: what `kubectl apply` of the manifests gives, read back from their YAML.
    let grants: Vec<IamAccessGrant> = grants
        .iter()
        .map(|g| serde_yaml::from_str(&manifest(Section::MapRoles, 1, g)).unwrap())
        .collect();
    let cm = ConfigMap {
        data: Some(d.clone()),
        ..Default::default()
    };
    let config = PlanConfig {
        privileged_principals: vec!["*".into()],
        allowed_accounts: vec!["444455556666".into()],
        ..PlanConfig::default()
    };
    let p = plan(&grants, Some(&cm), &config).unwrap();
    assert!(p.all_applied(), "{:?}", p.verdicts);
    assert_eq!(decisions(&d, principals), decisions(&p.data, principals));
    // All imported grants are now owned; nothing else is.
    let owned: usize = p.ownership.len();
    assert_eq!(owned, grants.len());
}

#[test]
fn eks_node_roles_are_left_out_unless_asked() {
    let d = data(&[("mapRoles", EKS_NODES)]);
    let i = import(&d, false);
    assert!(i.grants.is_empty());
    assert_eq!(i.skipped.len(), 2);
    assert!(i.skipped[0].contains("EKS node role"));
    let i = import(&d, true);
    assert_eq!(i.grants.len(), 2);
    round_trip(
        d,
        true,
        &[
            "arn:aws:iam::111122223333:role/eks-nodegroup-NodeInstanceRole-1ABC",
            "arn:aws:iam::111122223333:role/eks-fargate-profile",
        ],
    );
}

#[test]
fn eksctl_map_round_trips() {
    let d = data(&[
        ("mapRoles", &format!("{EKS_NODES}{EKSCTL_ROLES}")),
        ("mapAccounts", "- \"444455556666\"\n"),
    ]);
    let i = import(&d, false);
    assert_eq!(i.grants.len(), 3);
    round_trip(
        d,
        false,
        &[
            "arn:aws:iam::111122223333:role/Admin",
            "arn:aws:iam::111122223333:role/ReadOnly",
            "arn:aws:iam::111122223333:role/eks-fargate-profile",
            "arn:aws:iam::444455556666:role/Anyone",
        ],
    );
}

#[test]
fn hand_written_map_round_trips_and_skips_what_cannot_be_a_grant() {
    let d = data(&[("mapUsers", HAND_USERS), ("mapRoles", HAND_ROLES_WITH_PATH)]);
    let i = import(&d, false);
    let names: Vec<_> = i
        .grants
        .iter()
        .map(|(_, _, g)| g.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        i.skipped.iter().any(|s| s.contains("role ARN has a path")),
        "{:?}",
        i.skipped
    );
    assert!(
        i.skipped.iter().any(|s| s.contains("appears again later")),
        "{:?}",
        i.skipped
    );
    round_trip(
        d,
        false,
        &[
            "arn:aws:iam::111122223333:user/ops/alice",
            "arn:aws:iam::111122223333:user/bob",
            "arn:aws:iam::111122223333:role/Deployer",
        ],
    );
}

#[test]
fn unreadable_keys_are_reported_not_guessed() {
    let d = data(&[
        (
            "mapRoles",
            "- rolearn: arn:aws:iam::111122223333:role/a\n\tusername: a\n",
        ),
        ("mapUsers", HAND_USERS),
    ]);
    let i = import(&d, false);
    assert!(!i.unreadable.is_empty());
    assert_eq!(i.unreadable[0].line, 2);
    assert!(i.grants.iter().all(|(s, _, _)| *s == Section::MapUsers));
}

#[test]
fn names_are_dns_safe_deterministic_and_distinct() {
    let a = grant_name(
        "user",
        "John.Doe@Example",
        "arn:aws:iam::111122223333:user/john.doe@example",
    );
    assert!(a.starts_with("user-john-doe-example-"), "{a}");
    assert!(
        a.len() <= 63
            && a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
    assert_eq!(
        a,
        grant_name(
            "user",
            "John.Doe@Example",
            "arn:aws:iam::111122223333:user/john.doe@example"
        )
    );
    assert_ne!(
        grant_name("user", "bob", "arn:aws:iam::111122223333:user/a/bob"),
        grant_name("user", "bob", "arn:aws:iam::111122223333:user/b/bob")
    );
}

fn observed(arn: &str, kind: EntryType, username: Option<&str>, groups: &[&str]) -> Observed {
    Observed {
        entry: AccessEntry {
            principal_arn: arn.into(),
            kind,
            username: username.map(String::from),
            kubernetes_groups: groups.iter().map(|g| g.to_string()).collect(),
            access_policies: Vec::new(),
        },
        tags: BTreeMap::new(),
    }
}

/// Imported access entries are adopted exactly as they are: planned over the same entries, the
/// grants change nothing.
#[test]
fn imported_access_entries_are_adopted_unchanged() {
    use crate::engine::access_entry::Association;
    use crate::engine::entries::{EntriesConfig, plan as plan_entries};
    let mut admin = observed(
        "arn:aws:iam::111122223333:role/team/Admin",
        EntryType::Standard,
        Some("admin:{{SessionName}}"),
        &[],
    );
    admin.entry.access_policies = vec![Association {
        policy_arn: format!("{POLICY_PREFIX}AmazonEKSClusterAdminPolicy"),
        namespaces: vec![],
    }];
    let mut managed = observed(
        "arn:aws:iam::111122223333:user/ops",
        EntryType::Standard,
        Some("ops"),
        &[],
    );
    managed
        .tags
        .insert(OPERATOR_TAG.into(), "another-operator".into());
    let entries = vec![
        admin,
        observed(
            "arn:aws:iam::111122223333:user/dev/alice",
            EntryType::Standard,
            Some("alice"),
            &["devs"],
        ),
        observed(
            "arn:aws:iam::111122223333:role/nodes",
            EntryType::Ec2Linux,
            Some("system:node:{{EC2PrivateDNSName}}"),
            &[],
        ),
        observed(
            "arn:aws:iam::111122223333:role/creator",
            EntryType::Standard,
            Some("creator"),
            &[],
        ),
        managed,
    ];
    let creators = vec![arn::principal_key("arn:aws:iam::111122223333:role/creator").unwrap()];
    let skipped = import_entries(&entries, &creators, false);
    assert_eq!(skipped.grants.len(), 2, "{:?}", skipped.skipped);
    assert_eq!(skipped.skipped.len(), 3, "{:?}", skipped.skipped);
    let imported = import_entries(&entries, &creators, true);
    let grants: Vec<IamAccessGrant> = imported
        .grants
        .into_iter()
        .map(|(_, line, mut g)| {
            assert_eq!(line, 0);
            g.metadata.uid = g.metadata.name.clone();
            g
        })
        .collect();
    assert_eq!(grants.len(), 3);
    assert!(grants.iter().all(|g| g.spec.adopt));
    let admin = grants
        .iter()
        .find(|g| g.spec.arn.as_deref() == Some("arn:aws:iam::111122223333:role/Admin"))
        .expect("the role without its path");
    assert_eq!(
        admin.spec.access_policies[0].policy,
        "AmazonEKSClusterAdminPolicy"
    );
    let config = PlanConfig {
        privileged_principals: vec!["*".into()],
        ..PlanConfig::default()
    };
    let p = plan_entries(
        &grants,
        &entries,
        &EntriesConfig {
            plan: &config,
            operator: "aws-auth-operator",
            cluster_account: Some("111122223333"),
            recently_removed: 0,
            confirmed: None,
            role_arns: &Default::default(),
        },
    );
    for (name, v) in &p.verdicts {
        assert_eq!(
            v.reason,
            crate::api::Reason::Applied,
            "{name}: {}",
            v.message
        );
    }
    // Adopting tags each entry; nothing else changes.
    for w in &p.work {
        assert!(
            w.calls
                .iter()
                .all(|c| matches!(c, crate::engine::entries::Call::Tag(_))),
            "{w:?}"
        );
    }
    assert_eq!(p.work.len(), 3);
}
