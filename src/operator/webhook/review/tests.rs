use std::collections::BTreeMap;

use kube::api::ObjectMeta;

use super::*;
use crate::api::IamAccessGrantSpec;

const NODE: &str = "- rolearn: arn:aws:iam::111122223333:role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n";

fn target() -> AwsAuthTarget {
    AwsAuthTarget {
        namespace: "kube-system".into(),
        name: "aws-auth".into(),
        history_name: "aws-auth-history".into(),
        operator_username: "system:serviceaccount:aws-auth-system:aws-auth-operator".into(),
    }
}

fn alice() -> Requester {
    Requester {
        username: "alice".into(),
        groups: vec!["system:masters".into()],
    }
}

fn cm(data: &[(&str, &str)], annotations: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some("aws-auth".into()),
            namespace: Some("kube-system".into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn edit(old: &ConfigMap, new: &ConfigMap) -> Decision {
    review_aws_auth(&Op::Update, &alice(), Some(old), Some(new), &target())
}

#[test]
fn introduced_problems_are_denied_with_line_and_fix() {
    let old = cm(&[("mapRoles", NODE)], &[]);
    for (text, key, expect) in [
        (
            format!("{NODE}- rolearn: arn:aws:iam::111122223333:role/a\n\tusername: a\n"),
            "mapRoles",
            "mapRoles line 7, column 1: key dropped: tab character",
        ),
        (
            format!(
                "{NODE}- rolearn: arn:aws:iam::111122223333:role/a\n  username: {{{{SessionName}}}}\n"
            ),
            "mapRoles",
            "mapRoles line 7",
        ),
        (
            format!(
                "{NODE}- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n  groups: system:masters\n"
            ),
            "mapRoles",
            "write `groups: [\"system:masters\"]`",
        ),
        (
            format!("{NODE}...\n- rolearn: arn:aws:iam::111122223333:role/a\n"),
            "mapRoles",
            "document end marker",
        ),
        (NODE.to_string(), "MapRoles", "rename it to `mapRoles`"),
    ] {
        let new = cm(&[("mapRoles", NODE), (key, &text)], &[]);
        let new = if key == "mapRoles" {
            cm(&[("mapRoles", &text)], &[])
        } else {
            new
        };
        let d = edit(&old, &new);
        assert!(!d.allowed, "{text:?}");
        assert!(d.message.contains(expect), "{}", d.message);
        assert!(d.message.contains("break-glass"), "{}", d.message);
    }
}

#[test]
fn valid_edits_and_fixes_of_broken_keys_pass() {
    let old = cm(&[("mapRoles", NODE)], &[]);
    let new_node = format!(
        "{NODE}- rolearn: arn:aws:iam::111122223333:role/eks-node-2\n  username: system:node:{{{{EC2PrivateDNSName}}}}\n  groups: [system:bootstrappers, system:nodes]\n"
    );
    assert!(edit(&old, &cm(&[("mapRoles", &new_node)], &[])).allowed);

    // Two broken keys; fixing one of them passes though the other stays broken.
    let bad_roles = format!("{NODE}- rolearn: x\n\tusername: y\n");
    let bad_users = "- userarn: arn:aws:iam::111122223333:user/a\n  groups: [on]\n";
    let broken = cm(&[("mapRoles", &bad_roles), ("mapUsers", bad_users)], &[]);
    let fixed_users = "- userarn: arn:aws:iam::111122223333:user/a\n  groups: [\"on\"]\n";
    let d = edit(
        &broken,
        &cm(&[("mapRoles", &bad_roles), ("mapUsers", fixed_users)], &[]),
    );
    assert!(d.allowed, "{}", d.message);

    // A warning (a role path) passes with a warning.
    let pathy = format!("{NODE}- rolearn: arn:aws:iam::111122223333:role/team/x\n  username: x\n");
    let d = edit(&old, &cm(&[("mapRoles", &pathy)], &[]));
    assert!(d.allowed && d.warnings[0].contains("path"), "{d:?}");
}

#[test]
fn managed_entries_change_through_grants_only() {
    let managed = "- rolearn: \"arn:aws:iam::111122223333:role/dev\"\n  username: \"dev\"\n  groups:\n    - \"developers\"\n";
    let ann = [(
        OWNERSHIP_ANNOTATION,
        r#"{"mapRoles":["arn:aws:iam::111122223333:role/dev"]}"#,
    )];
    let old = cm(&[("mapRoles", &format!("{NODE}{managed}"))], &ann);
    let changed = managed.replace("developers", "system:masters");
    let d = edit(
        &old,
        &cm(&[("mapRoles", &format!("{NODE}{changed}"))], &ann),
    );
    assert!(!d.allowed);
    assert!(
        d.message
            .contains("changes the mapRoles entry for arn:aws:iam::111122223333:role/dev"),
        "{}",
        d.message
    );
    let d = edit(&old, &cm(&[("mapRoles", NODE)], &ann));
    assert!(
        d.message.contains("removes the mapRoles entry"),
        "{}",
        d.message
    );
    let d = edit(&old, &cm(&[("mapRoles", &format!("{NODE}{managed}"))], &[]));
    assert!(
        d.message.contains("record of the entries it manages"),
        "{}",
        d.message
    );
    // The operator's own writes pass.
    let op = Requester {
        username: target().operator_username,
        groups: vec![],
    };
    let d = review_aws_auth(
        &Op::Update,
        &op,
        Some(&old),
        Some(&cm(&[("mapRoles", NODE)], &[])),
        &target(),
    );
    assert!(d.allowed);
}

#[test]
fn deleting_aws_auth_is_denied_unless_the_hatch_is_open() {
    let old = cm(&[("mapRoles", NODE)], &[]);
    let d = review_aws_auth(&Op::Delete, &alice(), Some(&old), None, &target());
    assert!(
        !d.allowed && d.message.contains("unmaps every IAM user and role"),
        "{}",
        d.message
    );
    let open = cm(
        &[("mapRoles", NODE)],
        &[(BREAK_GLASS_ANNOTATION, "INC-42 rebuild")],
    );
    let d = review_aws_auth(&Op::Delete, &alice(), Some(&open), None, &target());
    assert!(d.allowed);
    assert_eq!(d.break_glass.as_deref(), Some("INC-42 rebuild"));
    // The hatch counts on the edit that sets it, not on later ones.
    let tab = format!("{NODE}\tx\n");
    let d = edit(
        &old,
        &cm(&[("mapRoles", &tab)], &[(BREAK_GLASS_ANNOTATION, "INC-42")]),
    );
    assert!(d.allowed && d.break_glass.is_some());
    let d = edit(
        &cm(&[("mapRoles", NODE)], &[(BREAK_GLASS_ANNOTATION, "INC-42")]),
        &cm(&[("mapRoles", &tab)], &[(BREAK_GLASS_ANNOTATION, "INC-42")]),
    );
    assert!(!d.allowed);
}

#[test]
fn other_configmaps_are_not_judged() {
    let mut other = cm(&[("mapRoles", "\t")], &[]);
    other.metadata.name = Some("something-else".into());
    let d = review_aws_auth(&Op::Delete, &alice(), Some(&other), None, &target());
    assert!(d.allowed);
}

#[test]
fn grants_are_judged_as_the_controller_would() {
    let config = PlanConfig::default()
        .with_cluster_creators(&["arn:aws:iam::111122223333:role/creator"])
        .unwrap();
    let config = PlanConfig {
        privileged_principals: vec!["arn:aws:iam::111122223333:role/platform-*".into()],
        ..config
    };
    let g = |arn: &str, groups: &[&str]| {
        IamAccessGrant::new("g", IamAccessGrantSpec::arn(arn, "u", groups))
    };
    let review = |grant: &IamAccessGrant, user: &Requester, granters: &[String]| {
        review_grant(&Op::Create, user, None, Some(grant), &config, granters)
    };
    let d = review(
        &g("arn:aws:iam::111122223333:role/team/x", &[]),
        &alice(),
        &[],
    );
    assert!(
        !d.allowed && d.message.contains("Invalid: spec.arn: role ARN has a path"),
        "{}",
        d.message
    );
    let d = review(
        &g("arn:aws:sts::111122223333:assumed-role/creator/s", &[]),
        &alice(),
        &[],
    );
    assert!(
        !d.allowed && d.message.contains("ClusterCreator"),
        "{}",
        d.message
    );
    let d = review(
        &g(
            "arn:aws:iam::111122223333:user/mallory",
            &["system:masters"],
        ),
        &alice(),
        &[],
    );
    assert!(
        !d.allowed
            && d.message
                .contains("Forbidden: group system:masters is privileged"),
        "{}",
        d.message
    );
    let admin = g(
        "arn:aws:iam::111122223333:role/platform-admins",
        &["system:masters"],
    );
    assert!(review(&admin, &alice(), &[]).allowed);
    let granters = vec!["group:platform".to_string(), "bob".to_string()];
    let d = review(&admin, &alice(), &granters);
    assert!(
        !d.allowed
            && d.message
                .contains("only the privileged granters (group:platform, bob)"),
        "{}",
        d.message
    );
    let platform = Requester {
        username: "carol".into(),
        groups: vec!["platform".into()],
    };
    assert!(review(&admin, &platform, &granters).allowed);
    // The break-glass annotation skips what the controller repeats, never who may grant.
    let mut glass = admin.clone();
    glass.metadata.annotations =
        Some([(BREAK_GLASS_ANNOTATION.to_string(), "INC-1".to_string())].into());
    let d = review(&glass, &alice(), &granters);
    assert!(
        !d.allowed
            && d.break_glass.is_none()
            && d.message.contains("break-glass annotation does not change"),
        "{}",
        d.message
    );
    let d = review(&glass, &platform, &granters);
    assert!(d.allowed && d.break_glass.is_some());
    // A reserved username is as privileged as a privileged group.
    let kcm = IamAccessGrant::new(
        "g",
        IamAccessGrantSpec::arn(
            "arn:aws:iam::111122223333:role/platform-x",
            "system:kube-controller-manager",
            &[],
        ),
    );
    let d = review(&kcm, &alice(), &granters);
    assert!(
        !d.allowed && d.message.contains("reserved prefix system:"),
        "{}",
        d.message
    );
    assert!(
        review(
            &g("arn:aws:iam::111122223333:role/dev", &["dev"]),
            &alice(),
            &granters
        )
        .allowed
    );
}

#[test]
fn a_confirmation_names_the_held_removal_and_who_gives_it() {
    let held = serde_json::json!({"token": "abc", "count": 7, "principals": [], "reason": "r",
        "confirm": "aws-auth-operator confirm-removal abc"})
    .to_string();
    let old = cm(&[("mapRoles", NODE)], &[(HELD_ANNOTATION, &held)]);
    let with = |a: &[(&str, &str)]| {
        let mut all = vec![(HELD_ANNOTATION, held.as_str())];
        all.extend_from_slice(a);
        cm(&[("mapRoles", NODE)], &all)
    };
    assert!(
        edit(
            &old,
            &with(&[
                (CONFIRM_ANNOTATION, "abc"),
                (CONFIRMED_BY_ANNOTATION, "alice")
            ])
        )
        .allowed
    );
    let d = edit(
        &old,
        &with(&[
            (CONFIRM_ANNOTATION, "abc"),
            (CONFIRMED_BY_ANNOTATION, "bob"),
        ]),
    );
    assert!(
        !d.allowed
            && d.message
                .contains("set aws-auth.dev/confirmed-by: \"alice\""),
        "{}",
        d.message
    );
    let d = edit(&old, &with(&[(CONFIRM_ANNOTATION, "abc")]));
    assert!(!d.allowed, "{}", d.message);
    let d = edit(
        &old,
        &with(&[
            (CONFIRM_ANNOTATION, "zzz"),
            (CONFIRMED_BY_ANNOTATION, "alice"),
        ]),
    );
    assert!(
        !d.allowed
            && d.message
                .contains("not the token of the removal held now (abc"),
        "{}",
        d.message
    );
    let nothing = cm(&[("mapRoles", NODE)], &[]);
    let d = edit(
        &nothing,
        &cm(
            &[("mapRoles", NODE)],
            &[
                (CONFIRM_ANNOTATION, "abc"),
                (CONFIRMED_BY_ANNOTATION, "alice"),
            ],
        ),
    );
    assert!(
        !d.allowed && d.message.contains("no removal is held"),
        "{}",
        d.message
    );
    // The breaker's own records are the operator's.
    let d = edit(&old, &cm(&[("mapRoles", NODE)], &[]));
    assert!(
        !d.allowed && d.message.contains(HELD_ANNOTATION),
        "{}",
        d.message
    );
    let d = edit(&old, &with(&[(WINDOW_ANNOTATION, "{}")]));
    assert!(
        !d.allowed && d.message.contains(WINDOW_ANNOTATION),
        "{}",
        d.message
    );
}

/// The history ConfigMap is the operator's alone: anyone else's create, update or delete is
/// denied (break-glass lets it through), the operator's own writes pass, other ConfigMaps are
/// not looked at.
#[test]
fn only_the_operator_writes_the_history() {
    let named = |name: &str, annotations: &[(&str, &str)]| {
        let mut c = cm(&[("1", "{}")], annotations);
        c.metadata.name = Some(name.into());
        c
    };
    let old = named("aws-auth-history", &[]);
    let new = named("aws-auth-history", &[]);
    for (op, old, new, verb) in [
        (Op::Create, None, Some(&new), "creating"),
        (Op::Update, Some(&old), Some(&new), "changing"),
        (Op::Delete, Some(&old), None, "deleting"),
    ] {
        let d = review_aws_auth(&op, &alice(), old, new, &target());
        assert!(!d.allowed, "{op:?}");
        assert!(
            d.message
                .contains(&format!("{verb} kube-system/aws-auth-history is denied"))
                && d.message.contains("break-glass"),
            "{}",
            d.message
        );
        let operator = Requester {
            username: target().operator_username,
            groups: vec![],
        };
        assert!(review_aws_auth(&op, &operator, old, new, &target()).allowed);
    }
    let glass = named("aws-auth-history", &[(BREAK_GLASS_ANNOTATION, "INC-9")]);
    let d = review_aws_auth(&Op::Update, &alice(), Some(&old), Some(&glass), &target());
    assert!(
        d.allowed && d.break_glass.as_deref() == Some("INC-9"),
        "{d:?}"
    );
    let other = named("coredns", &[]);
    assert!(review_aws_auth(&Op::Delete, &alice(), Some(&other), None, &target()).allowed);
}

/// An admin access policy is as privileged as `system:masters`: only for the privileged
/// principals, and requested only by the privileged granters.
#[test]
fn admin_access_policies_are_privileged_at_the_door() {
    use crate::api::AccessPolicy;
    let config = PlanConfig {
        privileged_principals: vec!["arn:aws:iam::111122223333:role/platform-*".into()],
        ..PlanConfig::default()
    };
    let g = |arn: &str, policy: &str, namespaces: &[&str]| {
        let mut spec = IamAccessGrantSpec::arn(arn, "u", &[]);
        spec.access_policies = vec![AccessPolicy {
            policy: policy.into(),
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        }];
        IamAccessGrant::new("g", spec)
    };
    let review = |grant: &IamAccessGrant, granters: &[String]| {
        review_grant(&Op::Create, &alice(), None, Some(grant), &config, granters)
    };
    let mallory = g(
        "arn:aws:iam::111122223333:user/mallory",
        "AmazonEKSClusterAdminPolicy",
        &[],
    );
    let d = review(&mallory, &[]);
    assert!(
        !d.allowed
            && d.message.contains(
                "Forbidden: access policy AmazonEKSClusterAdminPolicy (cluster admin) is as privileged as group system:masters"
            ),
        "{}",
        d.message
    );
    let admin = g(
        "arn:aws:iam::111122223333:role/platform-a",
        "AmazonEKSAdminPolicy",
        &[],
    );
    assert!(review(&admin, &[]).allowed);
    let d = review(&admin, &["bob".to_string()]);
    assert!(
        !d.allowed && d.message.contains("only the privileged granters (bob)"),
        "{}",
        d.message
    );
    // Namespaced admin, or a view policy, is not privileged.
    let ns = g(
        "arn:aws:iam::111122223333:user/mallory",
        "AmazonEKSAdminPolicy",
        &["team-a"],
    );
    assert!(review(&ns, &["bob".to_string()]).allowed);
    let view = g(
        "arn:aws:iam::111122223333:user/mallory",
        "AmazonEKSViewPolicy",
        &[],
    );
    assert!(review(&view, &["bob".to_string()]).allowed);
}

/// A grant without a username is for access entries: let through, with a warning (the operator's
/// status says whether aws-auth is written here).
#[test]
fn a_grant_without_username_passes_with_a_warning() {
    let mut spec = IamAccessGrantSpec::arn("arn:aws:iam::111122223333:role/dev", "x", &["devs"]);
    spec.username = None;
    let g = IamAccessGrant::new("g", spec);
    let d = review_grant(
        &Op::Create,
        &alice(),
        None,
        Some(&g),
        &PlanConfig::default(),
        &[],
    );
    assert!(d.allowed, "{}", d.message);
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("EKS access entries generate one")),
        "{:?}",
        d.warnings
    );
}
