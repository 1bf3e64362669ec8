use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::api::{IamAccessGrant, IamAccessGrantSpec, IamAccessGrantStatus};
use crate::engine::authmap::read::read_data;

const NODE_ROLES: &str = "- rolearn: arn:aws:iam::111122223333:role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n";

fn aws_auth(pairs: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some("aws-auth".into()),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        data: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn grant(name: &str, age_secs: i64, spec: IamAccessGrantSpec) -> IamAccessGrant {
    let mut g = IamAccessGrant::new(name, spec);
    g.metadata.creation_timestamp = Some(Time(
        Timestamp::from_second(1_700_000_000 + age_secs).unwrap(),
    ));
    g
}

fn role(arn: &str, username: &str, groups: &[&str]) -> IamAccessGrantSpec {
    IamAccessGrantSpec::arn(arn, username, groups)
}

/// The default budgets and breaker; any principal may hold a privileged group (the policy has
/// its own tests).
fn cfg() -> PlanConfig {
    PlanConfig {
        privileged_principals: vec!["*".into()],
        allowed_accounts: vec!["444455556666".into()],
        ..PlanConfig::default()
    }
}

/// Applies a plan the way the controller does and returns the new ConfigMap.
fn apply(p: &Plan, current: Option<&ConfigMap>) -> ConfigMap {
    p.configmap(current, "kube-system", "aws-auth", false)
}

fn reasons(p: &Plan) -> Vec<(&str, Reason)> {
    p.verdicts.iter().map(|v| (&*v.grant, v.reason)).collect()
}

#[test]
fn grant_is_added_after_the_node_role_which_is_kept_verbatim() {
    let cm = aws_auth(&[("mapRoles", NODE_ROLES)]);
    let grants = [grant(
        "admins",
        0,
        role(
            "arn:aws:iam::111122223333:role/Admins",
            "admin:{{SessionName}}",
            &["system:masters"],
        ),
    )];
    let p = plan(&grants, Some(&cm), &cfg()).unwrap();
    assert!(p.changed);
    assert_eq!(reasons(&p), [("admins", Reason::Applied)]);
    let text = &p.data["mapRoles"];
    assert!(
        text.starts_with("- rolearn: \"arn:aws:iam::111122223333:role/eks-node\""),
        "{text}"
    );
    let roles = read_data(&p.data).roles.values();
    assert_eq!(roles.len(), 2);
    assert_eq!(roles[0].username, "system:node:{{EC2PrivateDNSName}}");
    assert_eq!(roles[1].arn, "arn:aws:iam::111122223333:role/Admins");
    assert_eq!(
        p.ownership.to_annotation(),
        format!(
            r#"{{"mapRoles":{{"arn:aws:iam::111122223333:role/":["admins#{:08x}"]}},"v":4}}"#,
            Holder::of(&grants[0]).0
        )
    );
    assert_eq!(
        p.diff,
        [
            "+ mapRoles: arn:aws:iam::111122223333:role/Admins username=\"admin:{{SessionName}}\" groups=[system:masters]"
        ]
    );
}

#[test]
fn planning_again_on_the_output_changes_nothing() {
    let cm = aws_auth(&[("mapRoles", NODE_ROLES), ("other", "kept")]);
    let grants = [
        grant(
            "a",
            0,
            role("arn:aws:iam::111122223333:role/A", "a", &["g"]),
        ),
        grant("u", 1, role("arn:aws:iam::111122223333:user/u", "u", &[])),
        grant(
            "acct",
            2,
            IamAccessGrantSpec {
                account: Some("444455556666".into()),
                ..Default::default()
            },
        ),
    ];
    let p1 = plan(&grants, Some(&cm), &cfg()).unwrap();
    let cm2 = apply(&p1, Some(&cm));
    let p2 = plan(&grants, Some(&cm2), &cfg()).unwrap();
    assert!(!p2.changed, "{:?}", p2.diff);
    assert_eq!(p1.verdicts, p2.verdicts);
    assert_eq!(p2.data["other"], "kept");
    assert!(p2.diff.is_empty());
}

#[test]
fn the_configmap_for_the_write_moves_the_data_and_is_the_same_configmap() {
    let mut cm = aws_auth(&[("mapRoles", NODE_ROLES), ("other", "kept")]);
    cm.metadata.resource_version = Some("7".into());
    let grants = [grant(
        "a",
        0,
        role("arn:aws:iam::111122223333:role/A", "a", &["g"]),
    )];
    let mut p = Arc::unwrap_or_clone(plan(&grants, Some(&cm), &cfg()).unwrap());
    let copied = p.configmap(Some(&cm), "kube-system", "aws-auth", true);
    let moved = p.take_configmap_for_write(Some(&cm), "kube-system", "aws-auth");
    assert_eq!(moved, copied);
    assert_eq!(moved.metadata.resource_version.as_deref(), Some("7"));
    assert!(moved.data.unwrap()["mapRoles"].contains("role/A"));
    assert!(p.data.is_empty(), "the plan keeps no copy");
}

#[test]
fn a_key_whose_meaning_does_not_change_is_not_rewritten() {
    let cm = aws_auth(&[("mapRoles", NODE_ROLES)]);
    let grants = [grant(
        "u",
        0,
        role("arn:aws:iam::111122223333:user/u", "u", &[]),
    )];
    let p = plan(&grants, Some(&cm), &cfg()).unwrap();
    assert_eq!(p.data["mapRoles"], NODE_ROLES);
}

#[test]
fn deleting_a_grant_removes_only_its_entry() {
    let cm = aws_auth(&[("mapRoles", NODE_ROLES)]);
    let grants = [grant(
        "a",
        0,
        role("arn:aws:iam::111122223333:role/A", "a", &[]),
    )];
    let with = apply(&plan(&grants, Some(&cm), &cfg()).unwrap(), Some(&cm));
    let p = plan::<IamAccessGrant>(&[], Some(&with), &cfg()).unwrap();
    assert!(p.changed);
    assert_eq!(
        read_data(&p.data).auth_map(),
        read_data(cm.data.as_ref().unwrap()).auth_map()
    );
    assert_eq!(
        p.diff,
        ["- mapRoles: arn:aws:iam::111122223333:role/A username=\"a\" groups=[]"]
    );
    // A key left empty by the operator is removed rather than written as an empty list.
    let only = apply(
        &plan(
            &[grant(
                "u",
                0,
                role("arn:aws:iam::111122223333:user/u", "u", &[]),
            )],
            Some(&cm),
            &cfg(),
        )
        .unwrap(),
        Some(&cm),
    );
    let p = plan::<IamAccessGrant>(&[], Some(&only), &cfg()).unwrap();
    assert!(!p.data.contains_key("mapUsers"));
}

#[test]
fn unowned_entry_conflicts_unless_adopted() {
    let cm = aws_auth(&[("mapRoles", NODE_ROLES)]);
    let spec = role(
        "arn:aws:iam::111122223333:role/eks-node",
        "system:node:{{EC2PrivateDNSName}}",
        &["system:nodes"],
    );
    let p = plan(&[grant("node", 0, spec.clone())], Some(&cm), &cfg()).unwrap();
    assert_eq!(reasons(&p), [("node", Reason::Conflict)]);
    assert!(
        p.verdicts[0].message.contains("mapRoles line 1"),
        "{}",
        p.verdicts[0].message
    );
    assert!(p.verdicts[0].message.contains("adopt: true"));
    assert!(!p.changed);

    let adopting = IamAccessGrantSpec {
        adopt: true,
        ..spec
    };
    let node = grant("node", 0, adopting);
    let p = plan(std::slice::from_ref(&node), Some(&cm), &cfg()).unwrap();
    assert_eq!(reasons(&p), [("node", Reason::Applied)]);
    assert_eq!(read_data(&p.data).roles.values().len(), 1);
    assert_eq!(
        p.ownership.to_annotation(),
        format!(
            r#"{{"mapRoles":{{"arn:aws:iam::111122223333:role/":["eks-node#{:08x}"]}},"v":4}}"#,
            Holder::of(&node).0
        )
    );
    // Adopted means owned: deleting the grant now removes the entry.
    let adopted = apply(&p, Some(&cm));
    let p = plan::<IamAccessGrant>(&[], Some(&adopted), &cfg()).unwrap();
    assert!(!p.data.contains_key("mapRoles"));
}

#[test]
fn role_written_into_map_users_by_hand_still_conflicts() {
    let cm = aws_auth(&[(
        "mapUsers",
        "- userarn: arn:aws:iam::111122223333:role/A\n  username: a\n",
    )]);
    let p = plan(
        &[grant(
            "a",
            0,
            role("arn:aws:iam::111122223333:role/A", "a", &[]),
        )],
        Some(&cm),
        &cfg(),
    )
    .unwrap();
    assert_eq!(reasons(&p), [("a", Reason::Conflict)]);
    assert!(p.verdicts[0].message.contains("mapUsers line 1"));
}

#[test]
fn oldest_grant_wins_a_principal() {
    let grants = [
        grant(
            "young",
            10,
            role("arn:aws:iam::111122223333:role/A", "young", &[]),
        ),
        grant(
            "old",
            0,
            role("arn:aws:iam::111122223333:role/a", "old", &[]),
        ),
    ];
    let p = plan(&grants, None, &cfg()).unwrap();
    assert_eq!(
        reasons(&p),
        [("old", Reason::Applied), ("young", Reason::Conflict)]
    );
    assert!(p.verdicts[1].message.contains("IamAccessGrant old"));
    // Same age: the name decides.
    let grants = [
        grant("b", 0, role("arn:aws:iam::111122223333:role/A", "b", &[])),
        grant("a", 0, role("arn:aws:iam::111122223333:role/A", "a", &[])),
    ];
    let p = plan(&grants, None, &cfg()).unwrap();
    assert_eq!(
        reasons(&p),
        [("a", Reason::Applied), ("b", Reason::Conflict)]
    );
}

#[test]
fn cluster_creator_is_refused_in_any_spelling() {
    let c = cfg()
        .with_cluster_creators(&["arn:aws:sts::111122223333:assumed-role/Creator/alice"])
        .unwrap();
    for arn in [
        "arn:aws:iam::111122223333:role/Creator",
        "arn:aws:iam::111122223333:role/creator",
    ] {
        let p = plan(
            &[grant("c", 0, role(arn, "c", &["system:masters"]))],
            None,
            &c,
        )
        .unwrap();
        assert_eq!(reasons(&p), [("c", Reason::ClusterCreator)], "{arn}");
        assert!(!p.changed);
    }
    let c = cfg()
        .with_cluster_creators(&["arn:aws:iam::111122223333:role/team/Creator"])
        .unwrap();
    let p = plan(
        &[grant(
            "c",
            0,
            role("arn:aws:iam::111122223333:role/Creator", "c", &[]),
        )],
        None,
        &c,
    )
    .unwrap();
    assert_eq!(reasons(&p), [("c", Reason::ClusterCreator)]);
}

#[test]
fn an_unreadable_key_blocks_only_its_own_grants() {
    let bad = format!("{NODE_ROLES}- rolearn: arn:aws:iam::111122223333:role/x\n\tusername: x\n");
    let cm = aws_auth(&[("mapRoles", &bad)]);
    let grants = [
        grant("r", 0, role("arn:aws:iam::111122223333:role/A", "a", &[])),
        grant("u", 0, role("arn:aws:iam::111122223333:user/u", "u", &[])),
    ];
    let p = plan(&grants, Some(&cm), &cfg()).unwrap();
    assert_eq!(
        reasons(&p),
        [("r", Reason::AwsAuthUnreadable), ("u", Reason::Applied)]
    );
    assert!(
        p.verdicts[0].message.contains("mapRoles line 7"),
        "{}",
        p.verdicts[0].message
    );
    assert_eq!(
        p.data["mapRoles"], bad,
        "an unreadable key is never rewritten"
    );
}

#[test]
fn size_budget_refuses_the_youngest_grants_deterministically() {
    let c = PlanConfig {
        max_data_bytes: 300,
        ..cfg()
    };
    let grants: Vec<_> = (0..5)
        .map(|i| {
            grant(
                &format!("g{i}"),
                i,
                role(
                    &format!("arn:aws:iam::111122223333:role/r{i}"),
                    "someone",
                    &["group"],
                ),
            )
        })
        .collect();
    let p = plan(&grants, None, &c).unwrap();
    let applied = p
        .verdicts
        .iter()
        .filter(|v| v.reason == Reason::Applied)
        .count();
    assert!((1..5).contains(&applied), "{applied}");
    assert!(p.data.values().map(String::len).sum::<usize>() <= 300);
    assert_eq!(p.verdicts[4].reason, Reason::TooLarge);
    assert_eq!(p, plan(&grants, None, &c).unwrap());
}

/// The status of a grant applied to mapRoles at generation 1.
fn applied_status(canonical_arn: &str) -> IamAccessGrantStatus {
    IamAccessGrantStatus {
        canonical_arn: Some(canonical_arn.into()),
        section: Some("mapRoles".into()),
        backends: Vec::new(),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Applied".into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }],
        observed_generation: Some(1),
    }
}

#[test]
fn invalid_edit_of_an_applied_grant_keeps_its_entry() {
    let good = grant("a", 0, role("arn:aws:iam::111122223333:role/A", "a", &[]));
    let cm = apply(
        &plan(std::slice::from_ref(&good), None, &cfg()).unwrap(),
        None,
    );
    let mut broken = grant(
        "a",
        0,
        role("arn:aws:iam::111122223333:role/team/A", "a", &[]),
    );
    broken.status = Some(applied_status("arn:aws:iam::111122223333:role/A"));
    let p = plan(std::slice::from_ref(&broken), Some(&cm), &cfg()).unwrap();
    assert_eq!(reasons(&p), [("a", Reason::Invalid)]);
    assert!(p.verdicts[0].message.contains("stays in aws-auth"));
    assert!(!p.changed);
    // The pass after the status says Invalid keeps it too: the status names the kept entry.
    let v = &p.verdicts[0];
    assert_eq!(v.section, Some(Section::MapRoles));
    let status = broken.status.as_mut().unwrap();
    status.conditions[0].status = "False".into();
    status.conditions[0].reason = "Invalid".into();
    status.canonical_arn = v.canonical_arn.as_deref().map(str::to_string);
    status.section = v.section.map(|s| s.key().to_string());
    let again = plan(std::slice::from_ref(&broken), Some(&cm), &cfg()).unwrap();
    assert!(!again.changed, "{:?}", again.diff);
    assert!(again.verdicts[0].message.contains("stays in aws-auth"));
    // An invalid grant that never applied anything keeps nothing.
    let never = grant(
        "b",
        0,
        role("arn:aws:iam::111122223333:role/team/B", "b", &[]),
    );
    let p = plan(&[never], Some(&cm), &cfg()).unwrap();
    assert_eq!((p.verdicts[0].section, p.changed), (None, true));
}

/// Whoever may patch a grant's status cannot keep an entry with it: an invalid grant keeps only
/// the entry the ownership record names it the holder of (by its uid). A revoked principal stays
/// revoked, and a grant re-created under the same name is another holder.
#[test]
fn a_forged_status_keeps_no_entry() {
    let with_uid = |mut g: IamAccessGrant, uid: &str| {
        g.metadata.uid = Some(uid.into());
        g
    };
    let admin = with_uid(
        grant(
            "admin",
            0,
            role(
                "arn:aws:iam::111122223333:role/Admin",
                "a",
                &["system:masters"],
            ),
        ),
        "uid-admin",
    );
    let cm = apply(
        &plan(std::slice::from_ref(&admin), None, &cfg()).unwrap(),
        None,
    );
    // The admin grant is deleted; a tenant's invalid grant claims its entry in a forged status.
    let mut forger = with_uid(
        grant(
            "tenant",
            1,
            role("arn:aws:iam::111122223333:role/team/x", "t", &[]),
        ),
        "uid-tenant",
    );
    forger.status = Some(applied_status("arn:aws:iam::111122223333:role/Admin"));
    let p = plan(std::slice::from_ref(&forger), Some(&cm), &cfg()).unwrap();
    assert_eq!(reasons(&p), [("tenant", Reason::Invalid)]);
    assert!(!p.verdicts[0].message.contains("stays in aws-auth"));
    assert!(p.changed && read_data(&p.data).roles.values().is_empty());
    // Nor under the revoked grant's own name, once it is a new object.
    let mut reborn = with_uid(
        grant(
            "admin",
            2,
            role("arn:aws:iam::111122223333:role/team/Admin", "a", &[]),
        ),
        "uid-admin-2",
    );
    reborn.status = Some(applied_status("arn:aws:iam::111122223333:role/Admin"));
    let p = plan(std::slice::from_ref(&reborn), Some(&cm), &cfg()).unwrap();
    assert!(p.changed && read_data(&p.data).roles.values().is_empty());
    // The holder itself, broken by an edit, keeps it.
    let mut broken = with_uid(
        grant(
            "admin",
            0,
            role("arn:aws:iam::111122223333:role/team/Admin", "a", &[]),
        ),
        "uid-admin",
    );
    broken.status = Some(applied_status("arn:aws:iam::111122223333:role/Admin"));
    let p = plan(std::slice::from_ref(&broken), Some(&cm), &cfg()).unwrap();
    assert!(!p.changed && p.verdicts[0].message.contains("stays in aws-auth"));
    // And so does a grant broken right after an upgrade, whose record has no holders yet.
    let mut legacy = cm.clone();
    legacy.metadata.annotations.as_mut().unwrap().insert(
        OWNERSHIP_ANNOTATION.into(),
        r#"{"mapRoles":{"arn:aws:iam::111122223333:role/":["admin"]},"v":2}"#.into(),
    );
    let p = plan(std::slice::from_ref(&broken), Some(&legacy), &cfg()).unwrap();
    assert!(p.verdicts[0].message.contains("stays in aws-auth"));
    let rewritten = apply(&p, Some(&legacy));
    let p = plan(std::slice::from_ref(&broken), Some(&rewritten), &cfg()).unwrap();
    assert!(!p.changed && p.verdicts[0].message.contains("stays in aws-auth"));
}

#[test]
fn nothing_to_write_creates_nothing() {
    assert!(!plan::<IamAccessGrant>(&[], None, &cfg()).unwrap().changed);
    let p = plan(
        &[grant(
            "u",
            0,
            role("arn:aws:iam::111122223333:user/u", "u", &[]),
        )],
        None,
        &cfg(),
    )
    .unwrap();
    assert!(p.changed);
    let cm = apply(&p, None);
    assert_eq!(cm.metadata.name.as_deref(), Some("aws-auth"));
    assert!(
        cm.metadata
            .annotations
            .unwrap()
            .contains_key(OWNERSHIP_ANNOTATION)
    );
}

#[test]
fn existing_configmap_without_annotation_and_grants_is_left_alone() {
    let cm = aws_auth(&[("mapRoles", NODE_ROLES)]);
    assert!(
        !plan::<IamAccessGrant>(&[], Some(&cm), &cfg())
            .unwrap()
            .changed
    );
}

#[test]
fn broken_ownership_record_treats_everything_as_unowned() {
    let mut cm = aws_auth(&[("mapRoles", NODE_ROLES)]);
    cm.metadata.annotations = Some(BTreeMap::from([(
        OWNERSHIP_ANNOTATION.to_string(),
        "{not json".to_string(),
    )]));
    let p = plan::<IamAccessGrant>(&[], Some(&cm), &cfg()).unwrap();
    assert_eq!(p.notes.len(), 1);
    assert_eq!(read_data(&p.data).roles.values().len(), 1);
}

#[test]
fn unreadable_keys_hold_grants_whose_principal_they_may_map() {
    // An unowned role ARN under `userarn:` in a mapUsers that `on` makes unreadable: EKS still
    // maps role/Admin there, so a new mapRoles entry would silently replace it.
    let users = "- userarn: arn:aws:iam::111122223333:role/Admin\n  username: admin\n  groups: [system:masters, on]\n";
    let cm = aws_auth(&[("mapRoles", NODE_ROLES), ("mapUsers", users)]);
    let grants = [
        grant(
            "admin",
            0,
            role("arn:aws:iam::111122223333:role/admin", "a", &[]),
        ),
        grant(
            "other",
            0,
            role("arn:aws:iam::111122223333:role/Adminx", "o", &[]),
        ),
    ];
    let p = plan(&grants, Some(&cm), &cfg()).unwrap();
    assert_eq!(
        reasons(&p),
        [
            ("admin", Reason::AwsAuthUnreadable),
            ("other", Reason::Applied)
        ]
    );
    assert!(
        p.verdicts[0].message.contains("mapUsers line 3"),
        "{}",
        p.verdicts[0].message
    );
    assert!(
        !read_data(&p.data)
            .roles
            .values()
            .iter()
            .any(|m| m.arn.ends_with("role/admin"))
    );

    // A user grant while an unreadable mapRoles (a tab) holds that user: mapRoles decides first.
    let roles =
        format!("{NODE_ROLES}- rolearn: arn:aws:iam::111122223333:user/bob\n\tusername: x\n");
    let cm = aws_auth(&[("mapRoles", &roles)]);
    let p = plan(
        &[grant(
            "bob",
            0,
            role("arn:aws:iam::111122223333:user/Bob", "bob", &[]),
        )],
        Some(&cm),
        &cfg(),
    )
    .unwrap();
    assert_eq!(reasons(&p), [("bob", Reason::AwsAuthUnreadable)]);
    assert!(!p.data.contains_key("mapUsers"));
}

#[test]
fn a_held_grant_keeps_the_entry_it_has() {
    let g = grant(
        "bob",
        0,
        role("arn:aws:iam::111122223333:user/bob", "bob", &["dev"]),
    );
    let first = plan(std::slice::from_ref(&g), None, &cfg()).unwrap();
    let mut cm = apply(&first, None);
    // Someone breaks mapRoles by hand with an entry naming bob behind an escape.
    cm.data.as_mut().unwrap().insert(
        "mapRoles".into(),
        "- rolearn: \"arn:aws:iam::111122223333:user/\\x62ob\"\n  username: [x]\n".into(),
    );
    let changed = grant(
        "bob",
        0,
        role("arn:aws:iam::111122223333:user/bob", "bob", &["ops"]),
    );
    let p = plan(&[changed], Some(&cm), &cfg()).unwrap();
    assert_eq!(reasons(&p), [("bob", Reason::AwsAuthUnreadable)]);
    assert!(!p.changed, "{:?}", p.diff);
}

#[test]
fn unowned_entries_conflict_under_unicode_case_folding() {
    let roles = "- rolearn: \"arn:aws:iam::111122223333:role/\\u212Aube-admin\"\n  username: kelvin\n  groups: [\"system:masters\"]\n";
    let users = "- userarn: \"arn:aws:iam::111122223333:user/\\u017Fam\"\n  username: long-s\n  groups: [\"system:masters\"]\n";
    let cm = aws_auth(&[("mapRoles", roles), ("mapUsers", users)]);
    let grants = [
        grant(
            "k",
            0,
            role("arn:aws:iam::111122223333:role/kube-admin", "k", &[]),
        ),
        grant("s", 0, role("arn:aws:iam::111122223333:user/sam", "s", &[])),
    ];
    let p = plan(&grants, Some(&cm), &cfg()).unwrap();
    assert_eq!(
        reasons(&p),
        [("k", Reason::Conflict), ("s", Reason::Conflict)]
    );
    assert!(!p.changed);
}

#[test]
fn the_creators_session_arn_is_refused_as_the_creator() {
    let c = cfg()
        .with_cluster_creators(&["arn:aws:iam::111122223333:role/cluster_creator"])
        .unwrap();
    let p = plan(
        &[grant(
            "s",
            0,
            role(
                "arn:aws:sts::111122223333:assumed-role/cluster_creator/alice",
                "c",
                &[],
            ),
        )],
        None,
        &c,
    )
    .unwrap();
    assert_eq!(reasons(&p), [("s", Reason::ClusterCreator)]);
    assert!(
        !p.verdicts[0].message.contains("use arn:"),
        "{}",
        p.verdicts[0].message
    );
}

#[test]
fn echoed_values_are_capped() {
    let long = "u".repeat(250);
    let p = plan(
        &[grant(
            "l",
            0,
            role("arn:aws:iam::111122223333:user/l", &long, &[&long]),
        )],
        None,
        &cfg(),
    )
    .unwrap();
    assert!(
        p.verdicts[0].message.len() < 600,
        "{}",
        p.verdicts[0].message.len()
    );
    assert!(p.verdicts[0].message.contains("more characters"));
    let long = "u".repeat(10_000);
    let bad = format!("arn:aws:iam::111122223333:role/{long}");
    let p = plan(&[grant("b", 0, role(&bad, "b", &[]))], None, &cfg()).unwrap();
    assert_eq!(p.verdicts[0].reason, Reason::Invalid);
    assert!(
        p.verdicts[0].message.len() < 600,
        "{}",
        p.verdicts[0].message.len()
    );
}

fn users(n: usize) -> Vec<IamAccessGrant> {
    (0..n)
        .map(|i| {
            grant(
                &format!("u{i:02}"),
                0,
                role(
                    &format!("arn:aws:iam::111122223333:user/u{i:02}"),
                    "u",
                    &["dev"],
                ),
            )
        })
        .collect()
}

fn managed_users(cm: &ConfigMap) -> usize {
    read_data(cm.data.as_ref().unwrap()).users.entries.len()
}

#[test]
fn small_removals_proceed_and_mass_removals_are_held_with_a_token() {
    let all = users(20);
    let cm = apply(&plan(&all, None, &cfg()).unwrap(), None);
    assert_eq!(managed_users(&cm), 20);

    // Two of twenty: at once.
    let p = plan(&all[2..], Some(&cm), &cfg()).unwrap();
    assert!(p.held.is_none());
    assert_eq!(managed_users(&apply(&p, Some(&cm))), 18);

    // Five of twenty (25%): neither more than 5 nor more than 30%, so it proceeds.
    let p = plan(&all[5..], Some(&cm), &cfg()).unwrap();
    assert!(p.held.is_none());

    // Either bound holds: six of twenty is more than 5 (30% is not more than 30%)...
    let p = plan(&all[6..], Some(&cm), &cfg()).unwrap();
    let h = p.held.clone().expect("held by the count");
    assert!(
        h.reason.contains("more than --max-removals 5"),
        "{}",
        h.reason
    );
    // ...and three of eight is more than 30% (3 is not more than 5).
    let eight = apply(&plan(&all[..8], None, &cfg()).unwrap(), None);
    let p = plan(&all[3..8], Some(&eight), &cfg()).unwrap();
    let h = p.held.clone().expect("held by the share");
    assert!(
        h.reason.contains("more than --max-removal-percent 30"),
        "{}",
        h.reason
    );
    // One removal alone is never a share: the last of three goes.
    let three = apply(&plan(&all[..3], None, &cfg()).unwrap(), None);
    assert!(
        plan(&all[1..3], Some(&three), &cfg())
            .unwrap()
            .held
            .is_none()
    );
    // Padding does not dilute: 10 real grants beside 30 junk ones, the 10 deleted, is held.
    let many = users(40);
    let forty = apply(&plan(&many, None, &cfg()).unwrap(), None);
    assert_eq!(
        plan(&many[10..], Some(&forty), &cfg())
            .unwrap()
            .held
            .as_ref()
            .map(|h| h.count),
        Some(10)
    );
    // The share is of the most entries seen in the window: junk added and removed again
    // leaves the base where it was, never smaller.
    let mut c = cfg();
    c.peak_managed = 40;
    c.recently_removed = 2;
    let p = plan(&all[2..], Some(&cm), &c).unwrap();
    assert!(p.held.is_none(), "4 of 40 (10%)");
    assert_eq!(p.managed_before, 20);

    // Seven of twenty (35%): held, the entries stay exactly as they were.
    let p = plan(&all[7..], Some(&cm), &cfg()).unwrap();
    let held = p.held.clone().expect("held");
    assert_eq!(held.count, 7);
    assert_eq!(held.principals[0], "arn:aws:iam::111122223333:user/u00");
    assert!(held.reason.contains("7 of 20"), "{}", held.reason);
    assert_eq!(
        held.confirm.as_deref(),
        Some(format!("aws-auth-operator confirm-removal {}", held.token).as_str())
    );
    assert_eq!(p.data, *cm.data.as_ref().unwrap());
    let written = apply(&p, Some(&cm));
    assert_eq!(
        HeldRemoval::from_configmap(Some(&written)),
        Some(held.clone())
    );
    // Planning again holds the same set with the same token and changes nothing.
    let again = plan(&all[7..], Some(&written), &cfg()).unwrap();
    assert_eq!(again.held.as_ref().map(|h| &h.token), Some(&held.token));
    assert!(!again.changed);

    // A stale or wrong token approves nothing; the right one lets exactly this set go.
    let confirm = |token: &str| {
        let mut c = written.clone();
        c.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(CONFIRM_ANNOTATION.into(), token.into());
        c
    };
    let p = plan(&all[8..], Some(&confirm(&held.token)), &cfg()).unwrap();
    assert!(
        p.held.is_some() && p.confirmed.is_none(),
        "a different set needs its own token"
    );
    assert_ne!(p.held.clone().unwrap().token, held.token);
    let c = confirm(&held.token);
    let p = plan(&all[7..], Some(&c), &cfg()).unwrap();
    assert_eq!(p.confirmed.as_ref().map(|h| h.count), Some(7));
    assert!(p.held.is_none());
    let done = apply(&p, Some(&c));
    assert_eq!(managed_users(&done), 13);
    let ann = done.metadata.annotations.unwrap();
    assert!(!ann.contains_key(HELD_ANNOTATION) && !ann.contains_key(CONFIRM_ANNOTATION));
}

#[test]
fn removals_of_earlier_passes_count_toward_the_breaker() {
    let all = users(20);
    let cm = apply(&plan(&all, None, &cfg()).unwrap(), None);
    // Two removals alone proceed, and the plan says how many it removes.
    let p = plan(&all[2..], Some(&cm), &cfg()).unwrap();
    assert!(p.held.is_none());
    assert_eq!(p.removed, 2);
    let cm = apply(&p, Some(&cm));
    // The same deletion going on: 5 more after 2 already removed is 7 of the 20 there were.
    let mut c = cfg();
    c.recently_removed = 2;
    let p = plan(&all[7..], Some(&cm), &c).unwrap();
    let held = p.held.clone().expect("held across passes");
    assert_eq!(
        held.count, 5,
        "only this pass's entries are held (and named by the token)"
    );
    assert!(
        held.reason.contains("7 of 20") && held.reason.contains("2 removed in the last passes"),
        "{}",
        held.reason
    );
    assert_eq!(p.removed, 0);
    assert_eq!(p.data, *cm.data.as_ref().unwrap());
    // Without that history the same pass would have gone through.
    let p = plan(&all[7..], Some(&cm), &cfg()).unwrap();
    assert!(p.held.is_none());
    assert_eq!(p.removed, 5);
}

#[test]
fn nothing_is_removed_while_grants_are_unavailable() {
    let all = users(3);
    let cm = apply(&plan(&all, None, &cfg()).unwrap(), None);
    let c = PlanConfig {
        grants_unavailable: Some("the IamAccessGrant CRD is being deleted".into()),
        ..cfg()
    };
    let p = plan::<IamAccessGrant>(&[], Some(&cm), &c).unwrap();
    let held = p.held.clone().expect("held whatever the count");
    assert_eq!(held.count, 3);
    assert!(held.confirm.is_none());
    assert!(
        held.reason
            .starts_with("the IamAccessGrant CRD is being deleted"),
        "{}",
        held.reason
    );
    assert_eq!(p.data, *cm.data.as_ref().unwrap());
    // Grants back: nothing changes in data, and the held state clears.
    let written = apply(
        &plan::<IamAccessGrant>(&[], Some(&cm), &c).unwrap(),
        Some(&cm),
    );
    let p = plan(&all, Some(&written), &cfg()).unwrap();
    assert!(p.held.is_none() && p.changed && p.diff.is_empty());
    assert_eq!(p.data, *written.data.as_ref().unwrap());
}

#[test]
fn privileged_groups_only_for_allowed_principals() {
    let c = PlanConfig {
        privileged_principals: vec!["arn:aws:iam::111122223333:role/platform-*".into()],
        ..PlanConfig::default()
    };
    let grants = [
        grant(
            "ok",
            0,
            role(
                "arn:aws:iam::111122223333:role/Platform-Admins",
                "a",
                &["system:masters"],
            ),
        ),
        grant(
            "no",
            0,
            role(
                "arn:aws:iam::111122223333:user/mallory",
                "m",
                &["system:masters"],
            ),
        ),
        grant(
            "tpl",
            0,
            role(
                "arn:aws:iam::111122223333:role/dev",
                "d",
                &["system:{{SessionName}}"],
            ),
        ),
        grant(
            "dev",
            0,
            role("arn:aws:iam::111122223333:role/dev2", "d", &["developers"]),
        ),
    ];
    let p = plan(&grants, None, &c).unwrap();
    assert_eq!(
        reasons(&p),
        [
            ("dev", Reason::Applied),
            ("no", Reason::Forbidden),
            ("ok", Reason::Applied),
            ("tpl", Reason::Forbidden),
        ]
    );
    let m = &p.verdict("no").unwrap().message;
    assert!(
        m.contains("group system:masters is privileged") && m.contains("role/platform-*"),
        "{m}"
    );
    let written = format!("{:?}", p.data);
    assert!(
        !written.contains("mallory") && !written.contains("role/dev\""),
        "{written}"
    );
    // The default policy: nobody may be granted system:masters.
    let p = plan(&grants[..1], None, &PlanConfig::default()).unwrap();
    assert_eq!(reasons(&p), [("ok", Reason::Forbidden)]);
    assert!(
        p.verdicts[0]
            .message
            .contains("no --privileged-principal is configured")
    );
}

/// Usernames Kubernetes and EKS reserve, whole accounts and adopted privileged entries are as
/// privileged as system:masters: RBAC treats such a principal as that component.
#[test]
fn privileged_identities_beyond_groups() {
    let c = PlanConfig {
        privileged_principals: vec!["arn:aws:iam::111122223333:role/platform-*".into()],
        allowed_accounts: vec!["444455556666".into()],
        ..PlanConfig::default()
    };
    let cm = aws_auth(&[("mapRoles", NODE_ROLES)]);
    let r = |name: &str, arn: &str, user: &str, groups: &[&str]| {
        grant(name, 0, role(arn, user, groups))
    };
    let mut adopt = r(
        "adopt",
        "arn:aws:iam::111122223333:role/eks-node",
        "dev",
        &["dev"],
    );
    adopt.spec.adopt = true;
    let mut account = r("acct", "", "", &[]);
    account.spec = IamAccessGrantSpec::account("777788889999");
    let mut allowed = r("acct-ok", "", "", &[]);
    allowed.spec = IamAccessGrantSpec::account("444455556666");
    let grants = [
        r(
            "sa",
            "arn:aws:iam::111122223333:role/t1",
            "system:serviceaccount:kube-system:clusterrole-aggregation-controller",
            &[],
        ),
        r(
            "kcm",
            "arn:aws:iam::111122223333:role/t2",
            "system:kube-controller-manager",
            &["dev"],
        ),
        r(
            "node",
            "arn:aws:iam::111122223333:role/t3",
            "system:node:ip-10-0-0-1.ec2.internal",
            &["system:nodes"],
        ),
        r(
            "eks",
            "arn:aws:iam::111122223333:role/t4",
            "eks:cluster-admin",
            &[],
        ),
        r(
            "metrics",
            "arn:aws:iam::111122223333:role/t5",
            "m",
            &["eks:k8s-metrics"],
        ),
        r(
            "tpl",
            "arn:aws:iam::111122223333:role/t6",
            "{{SessionName}}:x",
            &[],
        ),
        r(
            "fine",
            "arn:aws:iam::111122223333:role/t7",
            "{{SessionName}}",
            &["dev"],
        ),
        r(
            "platform",
            "arn:aws:iam::111122223333:role/platform-nodes",
            "system:node:{{EC2PrivateDNSName}}",
            &["system:bootstrappers", "system:nodes"],
        ),
        adopt,
        account,
        allowed,
    ];
    let p = plan(&grants, Some(&cm), &c).unwrap();
    assert_eq!(
        reasons(&p),
        [
            ("acct", Reason::Forbidden),
            ("acct-ok", Reason::Applied),
            ("adopt", Reason::Forbidden),
            ("eks", Reason::Forbidden),
            ("fine", Reason::Applied),
            ("kcm", Reason::Forbidden),
            ("metrics", Reason::Forbidden),
            ("node", Reason::Forbidden),
            ("platform", Reason::Applied),
            ("sa", Reason::Forbidden),
            ("tpl", Reason::Forbidden),
        ]
    );
    let m = |n: &str| p.verdict(n).unwrap().message.to_string();
    assert!(m("kcm").contains("reserved prefix system:"), "{}", m("kcm"));
    assert!(
        m("adopt").contains("adopt: true would take over aws-auth mapRoles line 1"),
        "{}",
        m("adopt")
    );
    assert!(m("adopt").contains("system:"), "{}", m("adopt"));
    assert!(
        m("acct").contains("--allowed-account 777788889999"),
        "{}",
        m("acct")
    );
    // The node role is untouched: still EKS's entry, with its groups.
    let roles = &p.data["mapRoles"];
    let node = &read_data(&p.data).auth_map().roles[0];
    assert_eq!(node.arn, "arn:aws:iam::111122223333:role/eks-node");
    assert_eq!(
        node.groups,
        ["system:bootstrappers", "system:nodes"],
        "{roles}"
    );
    assert_eq!(p.ownership.len(), 3, "{:?}", p.ownership);
}

#[test]
fn globs() {
    assert!(glob_match(
        "arn:aws:iam::*:role/admin-?",
        "arn:aws:iam::111122223333:role/Admin-1"
    ));
    assert!(glob_match("*", "x"));
    assert!(!glob_match(
        "arn:aws:iam::1:role/a*",
        "arn:aws:iam::1:user/a"
    ));
    assert!(glob_match("a*b*c", "aXXbYYc"));
    assert!(!glob_match("a*b*c", "aXXbYY"));
}

#[test]
fn the_first_ownership_format_is_read_and_rewritten_compactly() {
    let g = grant("a", 0, role("arn:aws:iam::111122223333:role/a", "a", &[]));
    let written = apply(&plan(std::slice::from_ref(&g), None, &cfg()).unwrap(), None);
    let mut old = written.clone();
    old.metadata.annotations.as_mut().unwrap().insert(
        OWNERSHIP_ANNOTATION.into(),
        r#"{"mapRoles":["arn:aws:iam::111122223333:role/a"]}"#.into(),
    );
    let owned = Ownership::from_configmap(Some(&old)).unwrap();
    assert!(owned.owns(Section::MapRoles, "arn:aws:iam::111122223333:role/a"));
    assert!(
        owned.legacy
            && owned
                .holder(Section::MapRoles, "arn:aws:iam::111122223333:role/a")
                .is_none()
    );
    // Same data, new record format with the holder: written once, then steady.
    let p = plan(std::slice::from_ref(&g), Some(&old), &cfg()).unwrap();
    assert!(p.changed && p.diff.is_empty());
    let rewritten = apply(&p, Some(&old));
    let now = Ownership::from_configmap(Some(&rewritten)).unwrap();
    assert!(!now.legacy);
    assert_eq!(
        now.holder(Section::MapRoles, "arn:aws:iam::111122223333:role/a"),
        Some(Holder::of(&g))
    );
    assert!(
        !plan(std::slice::from_ref(&g), Some(&rewritten), &cfg())
            .unwrap()
            .changed
    );
}

/// A record of thousands of principals is written deflated; it reads back as the same
/// principals, a record in the readable format is rewritten deflated once, and a version 3 record
/// that is not what the operator writes is refused (every entry then counts as not managed).
#[test]
fn a_large_ownership_record_is_deflated_and_reads_back_the_same() {
    let grants: Vec<_> = (0..2000)
        .map(|i| {
            let arn = format!("arn:aws:iam::111122223333:role/team-{i}");
            grant(&format!("g{i:04}"), i, role(&arn, "t", &["dev"]))
        })
        .collect();
    let p = plan(&grants, None, &cfg()).unwrap();
    let cm = apply(&p, None);
    let text = &cm.metadata.annotations.as_ref().unwrap()[OWNERSHIP_ANNOTATION];
    assert!(text.starts_with(r#"{"deflate":""#) && text.ends_with(r#"","v":3}"#));
    let v4 = p.ownership.to_record();
    assert!(
        v4.len() > DEFLATE_ABOVE && text.len() * 2 < v4.len(),
        "{} {}",
        text.len(),
        v4.len()
    );
    assert!(
        Ownership::from_configmap(Some(&cm))
            .unwrap()
            .same_keys(&p.ownership)
    );
    assert!(p.ownership.is_written_as(text) && !p.ownership.is_written_as(&v4));
    // Steady over its own output.
    assert!(!plan(&grants, Some(&cm), &cfg()).unwrap().changed);
    // The readable format of the same principals: the same ownership, rewritten once.
    let mut readable = cm.clone();
    let notes = readable.metadata.annotations.as_mut().unwrap();
    notes.insert(OWNERSHIP_ANNOTATION.into(), v4.clone());
    assert!(
        Ownership::from_configmap(Some(&readable))
            .unwrap()
            .same_keys(&p.ownership)
    );
    let again = plan(&grants, Some(&readable), &cfg()).unwrap();
    assert!(again.changed && again.diff.is_empty());
    assert_eq!(
        &apply(&again, Some(&readable)).metadata.annotations.unwrap()[OWNERSHIP_ANNOTATION],
        text
    );
    // Small records stay readable.
    let one = plan(&grants[..1], None, &cfg()).unwrap();
    assert!(one.ownership.to_annotation().contains(r#""v":4"#));

    let b64 =
        |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
    let deflate = |text: &[u8]| {
        use std::io::Write;
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(text).unwrap();
        z.finish().unwrap()
    };
    let bomb = [b' '; 300 * 1024];
    for (bad, why) in [
        (r#"{"v":3}"#.to_string(), "no `deflate`"),
        (
            r#"{"v":3,"deflate":"not base64!"}"#.to_string(),
            "not base64",
        ),
        (
            format!(r#"{{"v":3,"deflate":"{}"}}"#, b64(b"plain")),
            "does not inflate",
        ),
        (
            format!(
                r#"{{"v":3,"deflate":"{}"}}"#,
                b64(&deflate(text.as_bytes()))
            ),
            "not version 2",
        ),
        (
            format!(r#"{{"v":3,"deflate":"{}"}}"#, b64(&deflate(&bomb))),
            "inflates past",
        ),
    ] {
        let mut broken = cm.clone();
        let notes = broken.metadata.annotations.as_mut().unwrap();
        notes.insert(OWNERSHIP_ANNOTATION.into(), bad);
        let e = Ownership::from_configmap(Some(&broken)).unwrap_err();
        assert!(
            e.contains(why) && e.contains("treated as not managed"),
            "{e}"
        );
    }
}

#[test]
fn five_thousand_grants_fit_and_too_large_says_what_is_left() {
    let grants: Vec<_> = (0..5000)
        .map(|i| {
            grant(
                &format!("g{i:04}"),
                i,
                role(
                    &format!("arn:aws:iam::111122223333:role/team-{i}"),
                    &format!("team-{i}:{{{{SessionName}}}}"),
                    &["developers"],
                ),
            )
        })
        .collect();
    let p = plan(&grants, None, &cfg()).unwrap();
    assert!(p.all_applied());
    let cm = apply(&p, None);
    let data: usize = p.data.iter().map(|(k, v)| k.len() + v.len()).sum();
    let ann = cm.metadata.annotations.as_ref().unwrap()[OWNERSHIP_ANNOTATION].len();
    // The holders (four random bytes each) are most of the deflated record.
    assert!(
        data < DATA_LIMIT - DATA_MARGIN && ann < 48 * 1024,
        "{data} {ann}"
    );
    let small = PlanConfig {
        max_data_bytes: data - 1000,
        ..cfg()
    };
    let p = plan(&grants, None, &small).unwrap();
    let refused = p
        .verdicts
        .iter()
        .find(|v| v.reason == Reason::TooLarge)
        .unwrap();
    assert!(
        refused.message.contains("bytes are left"),
        "{}",
        refused.message
    );
}

#[test]
fn the_plan_memo_tells_apart_every_input_the_plan_reads() {
    let memo = Memo::default();
    let cm = aws_auth(&[("mapRoles", NODE_ROLES)]);
    let gs = vec![
        grant(
            "a",
            1,
            role("arn:aws:iam::111122223333:role/a", "a", &["dev"]),
        ),
        grant(
            "b",
            2,
            role("arn:aws:iam::111122223333:role/b", "b", &["dev"]),
        ),
    ];
    let fingerprint = |g: &[IamAccessGrant], c: Option<&ConfigMap>, k: &PlanConfig| {
        memo.fingerprint(g, c, k).plan
    };
    let base = fingerprint(&gs, Some(&cm), &cfg());
    // The same inputs in another order are the same inputs.
    let reversed: Vec<_> = gs.iter().rev().cloned().collect();
    assert_eq!(fingerprint(&reversed, Some(&cm), &cfg()), base);
    // A status update the plan does not read (a message, observedGeneration) changes nothing.
    let mut touched = gs.clone();
    touched[0].status = Some(IamAccessGrantStatus {
        observed_generation: Some(7),
        ..Default::default()
    });
    assert_eq!(fingerprint(&touched, Some(&cm), &cfg()), base);

    let mut variants: Vec<u128> = Vec::new();
    let mut with = |f: &dyn Fn(&mut Vec<IamAccessGrant>, &mut ConfigMap, &mut PlanConfig)| {
        let (mut g, mut c, mut k) = (gs.clone(), cm.clone(), cfg());
        f(&mut g, &mut c, &mut k);
        variants.push(fingerprint(&g, Some(&c), &k));
    };
    with(&|g, _, _| g[0].spec.groups.push("ops".into()));
    with(&|g, _, _| g[0].spec.adopt = true);
    with(&|g, _, _| g[1].spec.username = Some("bee".into()));
    with(&|g, _, _| g[1].metadata.creation_timestamp = None);
    with(&|g, _, _| g[1].metadata.name = Some("c".into()));
    with(&|g, _, _| {
        g.pop();
    });
    with(&|g, _, _| g[0].status = Some(applied_status("arn:aws:iam::111122223333:role/a")));
    with(&|_, c, _| {
        c.data
            .as_mut()
            .unwrap()
            .insert("mapUsers".into(), String::new());
    });
    with(&|_, c, _| {
        c.metadata.annotations = Some([(CONFIRM_ANNOTATION.to_string(), "abc".to_string())].into())
    });
    with(&|_, _, k| k.recently_removed = 3);
    with(&|_, _, k| k.grants_unavailable = Some("gone".into()));
    with(&|_, _, k| k.history_unavailable = Some("broken".into()));
    with(&|_, _, k| k.max_removals = 9);
    with(&|_, _, k| k.cluster_creators.push("x".into()));
    variants.push(fingerprint(&gs, None, &cfg()));
    let distinct: std::collections::HashSet<_> = variants.iter().chain([&base]).collect();
    assert_eq!(distinct.len(), variants.len() + 1);

    // Grants shared with a cache are fingerprinted as the same grants owned, and a new version
    // of one (a new resourceVersion) is told apart from the version seen before.
    let shared: Vec<std::sync::Arc<IamAccessGrant>> = gs
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut g = g.clone();
            g.metadata.uid = Some(format!("uid-{i}"));
            g.metadata.resource_version = Some("1".into());
            std::sync::Arc::new(g)
        })
        .collect();
    assert_eq!(memo.fingerprint(&shared, Some(&cm), &cfg()).plan, base);
    let mut edited = shared.clone();
    let mut g = (*edited[0]).clone();
    g.spec.groups.push("ops".into());
    g.metadata.resource_version = Some("2".into());
    edited[0] = std::sync::Arc::new(g);
    assert_eq!(
        memo.fingerprint(&edited, Some(&cm), &cfg()).plan,
        variants[0]
    );
    assert_eq!(memo.fingerprint(&shared, Some(&cm), &cfg()).plan, base);

    // A plan served from the memo is the plan worked out anew.
    let first = plan_in(&memo, &gs, Some(&cm), &cfg()).unwrap();
    assert_eq!(plan_in(&memo, &gs, Some(&cm), &cfg()).unwrap(), first);
    let fp = memo.fingerprint(&gs, Some(&cm), &cfg());
    assert_eq!(
        plan_anew(&Memo::default(), &gs, Some(&cm), &cfg(), &fp).unwrap(),
        *first
    );
}

/// Each part a plan reuses (the read of aws-auth, the ownership record, each grant's own
/// decision) gives the plan worked out with nothing kept, through a run of passes that each
/// change one thing: a grant added, edited, broken, conflicting, the rails changed.
#[test]
fn reused_parts_give_the_plan_worked_out_from_scratch() {
    let mut gs = users(40);
    gs.extend([
        grant(
            "r1",
            50,
            role("arn:aws:iam::111122223333:role/r1", "r1", &["dev"]),
        ),
        grant(
            "r2",
            51,
            role("arn:aws:iam::111122223333:role/r2", "r2", &["dev"]),
        ),
    ]);
    let mut cm = aws_auth(&[("mapRoles", NODE_ROLES)]);
    let mut config = cfg();
    let memo = Memo::default();
    let check = |gs: &[IamAccessGrant], cm: &ConfigMap, config: &PlanConfig| {
        let fp = memo.fingerprint(gs, Some(cm), config);
        let warm = plan_anew(&memo, gs, Some(cm), config, &fp).unwrap();
        memo.forget();
        let cold = plan_anew(&memo, gs, Some(cm), config, &fp).unwrap();
        assert_eq!(warm, cold);
        // Warm again for the next step.
        let again = plan_anew(&memo, gs, Some(cm), config, &fp).unwrap();
        assert_eq!(again, cold);
        cold
    };
    type Step = Box<dyn Fn(&mut Vec<IamAccessGrant>, &mut PlanConfig)>;
    let add = |name: &'static str, age: i64, role_name: &'static str| -> Step {
        Box::new(move |g, _| {
            let arn = format!("arn:aws:iam::111122223333:role/{role_name}");
            g.push(grant(name, age, role(&arn, name, &["dev"])))
        })
    };
    let steps: Vec<Step> = vec![
        Box::new(|_, _| {}),
        add("r3", 60, "r3"),
        Box::new(|g, _| g[0].spec.groups.push("ops".into())),
        // An applied grant broken by an edit: its status names the entry it keeps.
        Box::new(|g, _| {
            g[1].status = Some(applied_status(g[1].spec.arn.as_deref().unwrap()));
            g[1].spec.arn = Some("not an arn".into());
        }),
        // Only its status changes (it no longer names an entry to keep): its decision follows.
        Box::new(|g, _| {
            g[1].status.as_mut().unwrap().conditions[0].reason = "Conflict".into();
        }),
        // A second grant of r1's role, younger: a conflict.
        add("dup", 70, "r1"),
        Box::new(|g, _| g[2].spec.groups.push("system:masters".into())),
        Box::new(|_, k| {
            k.privileged_principals
                .push("arn:aws:iam::111122223333:user/*".into())
        }),
        Box::new(|_, k| {
            *k = k
                .clone()
                .with_cluster_creators(&["arn:aws:iam::111122223333:role/r2"])
                .unwrap()
        }),
        Box::new(|g, _| {
            g.truncate(10);
        }),
    ];
    for step in steps {
        step(&mut gs, &mut config);
        let p = check(&gs, &cm, &config);
        cm = apply(&p, Some(&cm));
        check(&gs, &cm, &config);
    }
}

#[test]
fn a_mass_removal_of_thousands_is_held_within_the_annotation_limit() {
    let all = users(5000);
    let cm = apply(&plan(&all, None, &cfg()).unwrap(), None);
    assert_eq!(managed_users(&cm), 5000);
    let p = plan(&all[..0], Some(&cm), &cfg()).unwrap();
    let held = p.held.clone().expect("held");
    assert_eq!((held.count, held.principals.len()), (5000, HELD_LISTED));
    assert!(
        held.summary().ends_with("and 4990 more"),
        "{}",
        held.summary()
    );
    let written = apply(&p, Some(&cm));
    let annotations: usize = written
        .metadata
        .annotations
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    assert!(annotations < ANNOTATIONS_LIMIT, "{annotations} bytes");
    assert_eq!(p.data, *cm.data.as_ref().unwrap());
}

/// With the history unavailable, a revocation still applies; an addition and a change wait
/// (Pending, the entry as it was), and an unchanged grant stays Applied.
#[test]
fn a_broken_history_holds_additions_not_revocations() {
    let arn = |n: &str| format!("arn:aws:iam::111122223333:role/{n}");
    let before = [
        grant("a", 0, role(&arn("a"), "a", &["dev"])),
        grant("b", 1, role(&arn("b"), "b", &["dev"])),
        grant("d", 2, role(&arn("d"), "d", &["dev"])),
    ];
    let cm = apply(
        &plan(
            &before,
            Some(&aws_auth(&[("mapRoles", NODE_ROLES)])),
            &cfg(),
        )
        .unwrap(),
        None,
    );
    let broken = PlanConfig {
        history_unavailable: Some("the history ConfigMap cannot be written".into()),
        ..cfg()
    };
    let after = [
        before[0].clone(),
        grant("c", 3, role(&arn("c"), "c", &["dev"])),
        grant("d", 2, role(&arn("d"), "d", &["system:masters"])),
    ];
    let p = plan(&after, Some(&cm), &broken).unwrap();
    assert_eq!(
        reasons(&p),
        [
            ("a", Reason::Applied),
            ("c", Reason::Pending),
            ("d", Reason::Pending)
        ]
    );
    assert!(
        p.verdicts[1].message.contains("removals proceed"),
        "{}",
        p.verdicts[1].message
    );
    assert_eq!(
        p.diff,
        ["- mapRoles: arn:aws:iam::111122223333:role/b username=\"b\" groups=[dev]"]
    );
    let roles = read_data(&p.data).roles.values();
    let d = roles.iter().find(|m| m.arn == arn("d")).unwrap();
    assert_eq!(d.groups, ["dev"]);
    assert!(roles.iter().any(|m| m.arn.contains("eks-node")));
    // Back to normal, the rest applies.
    let p = plan(&after, Some(&apply(&p, Some(&cm))), &cfg()).unwrap();
    assert!(p.all_applied());
}
