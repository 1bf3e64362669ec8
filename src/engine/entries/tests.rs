use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::api::{AccessPolicy, IamAccessGrant};

const ROLE: &str = "arn:aws:iam::111122223333:role/dev";
const ADMIN: &str = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy";

fn grant(name: &str, age: i64, spec: IamAccessGrantSpec) -> IamAccessGrant {
    let mut g = IamAccessGrant::new(name, spec);
    g.metadata.creation_timestamp =
        Some(Time(Timestamp::from_second(1_700_000_000 + age).unwrap()));
    g.metadata.uid = Some(format!("uid-{name}"));
    g
}

fn role(arn: &str, username: &str, groups: &[&str]) -> IamAccessGrantSpec {
    IamAccessGrantSpec::arn(arn, username, groups)
}

fn pcfg() -> PlanConfig {
    PlanConfig {
        privileged_principals: vec!["*".into()],
        cluster_creators: vec![
            arn::principal_key("arn:aws:iam::111122223333:role/creator").unwrap(),
        ],
        ..PlanConfig::default()
    }
}

fn run(grants: &[IamAccessGrant], observed: &[Observed], plan_cfg: &PlanConfig) -> EntriesPlan {
    plan(
        grants,
        observed,
        &EntriesConfig {
            plan: plan_cfg,
            operator: "op",
            cluster_account: Some("111122223333"),
            recently_removed: 0,
            confirmed: None,
            role_arns: &Default::default(),
        },
    )
}

fn entry(arn: &str, username: Option<&str>, groups: &[&str]) -> AccessEntry {
    AccessEntry {
        principal_arn: arn.into(),
        kind: EntryType::Standard,
        username: username.map(String::from),
        kubernetes_groups: groups.iter().map(|g| g.to_string()).collect(),
        access_policies: Vec::new(),
    }
}

fn ours(e: AccessEntry, uid: &str) -> Observed {
    Observed {
        entry: e,
        tags: BTreeMap::from([
            (OPERATOR_TAG.into(), "op".into()),
            (GRANT_TAG.into(), uid.into()),
        ]),
    }
}

fn foreign(e: AccessEntry) -> Observed {
    Observed {
        entry: e,
        tags: BTreeMap::new(),
    }
}

fn reason(p: &EntriesPlan, g: &str) -> Reason {
    p.verdicts[g].reason
}

#[test]
fn a_new_grant_is_created_tagged_and_its_policies_follow() {
    let mut spec = role(ROLE, "dev", &["devs"]);
    spec.access_policies = vec![AccessPolicy {
        policy: "AmazonEKSViewPolicy".into(),
        namespaces: vec!["team-b".into(), "team-a".into()],
    }];
    let p = run(&[grant("dev", 0, spec)], &[], &pcfg());
    assert_eq!(reason(&p, "dev"), Reason::Applied);
    let w = &p.work[0];
    assert_eq!(w.principal, ROLE);
    let Call::Create(e, tags) = &w.calls[0] else {
        panic!("{w:?}")
    };
    assert_eq!(e.username.as_deref(), Some("dev"));
    assert_eq!(tags[GRANT_TAG], "uid-dev");
    assert_eq!(
        w.calls[1],
        Call::Associate(Association {
            policy_arn: format!("{POLICY_PREFIX}AmazonEKSViewPolicy"),
            namespaces: vec!["team-a".into(), "team-b".into()],
        })
    );
}

#[test]
fn system_masters_becomes_the_cluster_admin_policy_and_is_said_so() {
    let p = run(
        &[grant(
            "a",
            0,
            role(ROLE, "admin", &["system:masters", "ops"]),
        )],
        &[],
        &pcfg(),
    );
    let w = &p.work[0];
    let Call::Create(e, _) = &w.calls[0] else {
        panic!()
    };
    assert_eq!(e.kubernetes_groups, ["ops"]);
    assert_eq!(
        w.calls[1],
        Call::Associate(Association {
            policy_arn: ADMIN.into(),
            namespaces: vec![]
        })
    );
    assert!(
        p.verdicts["a"]
            .message
            .contains("system:masters becomes the AmazonEKSClusterAdminPolicy"),
        "{}",
        p.verdicts["a"].message
    );
}

#[test]
fn admin_policies_follow_the_privileged_policy() {
    let mut spec = role(ROLE, "dev", &[]);
    spec.access_policies = vec![AccessPolicy {
        policy: ADMIN.into(),
        namespaces: vec![],
    }];
    let strict = PlanConfig {
        privileged_principals: vec![],
        ..pcfg()
    };
    let p = run(&[grant("dev", 0, spec.clone())], &[], &strict);
    assert_eq!(
        reason(&p, "dev"),
        Reason::Forbidden,
        "{}",
        p.verdicts["dev"].message
    );
    assert!(p.work.is_empty());
    // What reaches Secrets cluster-wide or in a kube- namespace, and what is not known, is
    // privileged; View anywhere and Edit or Admin in a team's namespace are not.
    for (policy, namespaces, expected) in [
        ("AmazonEKSEditPolicy", &[][..], Reason::Forbidden),
        (
            "AmazonEKSEditPolicy",
            &["team-a", "kube-system"][..],
            Reason::Forbidden,
        ),
        ("AmazonEKSAdminViewPolicy", &[][..], Reason::Forbidden),
        ("AmazonEKSComputePolicy", &["team-a"][..], Reason::Forbidden),
        ("AmazonEKSEditPolicy", &["team-a"][..], Reason::Applied),
        ("AmazonEKSAdminPolicy", &["team-a"][..], Reason::Applied),
        ("AmazonEKSViewPolicy", &[][..], Reason::Applied),
    ] {
        spec.access_policies[0] = AccessPolicy {
            policy: policy.into(),
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        };
        let p = run(&[grant("dev", 0, spec.clone())], &[], &strict);
        assert_eq!(
            reason(&p, "dev"),
            expected,
            "{policy} in {namespaces:?}: {}",
            p.verdicts["dev"].message
        );
    }
}

#[test]
fn a_foreign_entry_is_kept_unless_adopted() {
    let have = foreign(entry(ROLE, Some("someone"), &["x"]));
    let p = run(
        &[grant("dev", 0, role(ROLE, "dev", &["devs"]))],
        std::slice::from_ref(&have),
        &pcfg(),
    );
    assert_eq!(reason(&p, "dev"), Reason::Conflict);
    assert!(p.work.is_empty());
    let mut spec = role(ROLE, "dev", &["devs"]);
    spec.adopt = true;
    let p = run(&[grant("dev", 0, spec)], &[have], &pcfg());
    assert_eq!(reason(&p, "dev"), Reason::Applied);
    assert!(matches!(p.work[0].calls[0], Call::Tag(_)));
    assert_eq!(
        p.work[0].calls[1],
        Call::Update {
            username: Some("dev".into()),
            groups: vec!["devs".into()]
        }
    );
    // A foreign entry no grant asks for is never deleted.
    assert!(
        run(&[], &[foreign(entry(ROLE, Some("x"), &[]))], &pcfg())
            .work
            .is_empty()
    );
}

#[test]
fn an_entry_with_a_role_path_is_matched_and_its_path_kept() {
    let with_path = "arn:aws:iam::111122223333:role/team/dev";
    let p = run(
        &[grant("dev", 0, role(ROLE, "dev", &["devs"]))],
        &[ours(entry(with_path, Some("old"), &["devs"]), "uid-dev")],
        &pcfg(),
    );
    assert_eq!(p.work[0].principal, with_path);
    assert!(
        p.verdicts["dev"].message.contains("path kept"),
        "{}",
        p.verdicts["dev"].message
    );
}

#[test]
fn edits_become_updates_and_policy_changes() {
    let mut have = ours(entry(ROLE, Some("dev"), &["devs"]), "uid-dev");
    have.entry.access_policies = vec![Association {
        policy_arn: ADMIN.into(),
        namespaces: vec![],
    }];
    let mut spec = role(ROLE, "dev", &["devs", "more"]);
    spec.access_policies = vec![AccessPolicy {
        policy: "AmazonEKSViewPolicy".into(),
        namespaces: vec![],
    }];
    let p = run(&[grant("dev", 0, spec)], &[have], &pcfg());
    let ops: Vec<_> = p.work[0].calls.iter().map(Call::operation).collect();
    assert_eq!(
        ops,
        [
            "UpdateAccessEntry",
            "AssociateAccessPolicy",
            "DisassociateAccessPolicy"
        ]
    );
    // In place already: nothing to do.
    let have = ours(entry(ROLE, Some("dev"), &["devs"]), "uid-dev");
    assert!(
        run(
            &[grant("dev", 0, role(ROLE, "dev", &["devs"]))],
            &[have],
            &pcfg()
        )
        .work
        .is_empty()
    );
}

#[test]
fn deletions_spare_the_creator_and_invalid_grants_and_the_breaker_holds_many() {
    let creator = ours(
        entry("arn:aws:iam::111122223333:role/creator", None, &[]),
        "gone",
    );
    let p = run(&[], &[creator], &pcfg());
    assert!(p.work.is_empty(), "the creator's entry is never deleted");
    // A grant turned invalid keeps its entry.
    let mut broken = grant("dev", 0, role(ROLE, "dev", &[]));
    broken.spec.username = Some(String::new());
    let p = run(
        &[broken],
        &[ours(entry(ROLE, Some("dev"), &[]), "uid-dev")],
        &pcfg(),
    );
    assert_eq!(reason(&p, "dev"), Reason::Invalid);
    assert!(p.work.is_empty());
    // Ten of ten deleted at once: held, with a token that lets them proceed.
    let many: Vec<Observed> = (0..10)
        .map(|i| {
            ours(
                entry(
                    &format!("arn:aws:iam::111122223333:role/r{i}"),
                    Some("u"),
                    &[],
                ),
                "x",
            )
        })
        .collect();
    let p = run(&[], &many, &pcfg());
    let held = p.held.clone().expect("held");
    assert_eq!((held.principals.len(), p.work.len()), (10, 0));
    let plan_cfg = pcfg();
    let confirmed = plan(
        &Vec::<IamAccessGrant>::new(),
        &many,
        &EntriesConfig {
            plan: &plan_cfg,
            operator: "op",
            cluster_account: None,
            recently_removed: 0,
            confirmed: Some(&held.token),
            role_arns: &Default::default(),
        },
    );
    assert!(confirmed.confirmed);
    assert_eq!(confirmed.work.len(), 10);
    // Two of ten: under the breaker.
    assert_eq!(run(&[], &many[..2], &pcfg()).work.len(), 2);
}

#[test]
fn what_access_entries_cannot_hold_is_refused_with_the_field() {
    let p = run(
        &[grant(
            "acct",
            0,
            IamAccessGrantSpec::account("444455556666"),
        )],
        &[],
        &PlanConfig {
            allowed_accounts: vec!["444455556666".into()],
            ..pcfg()
        },
    );
    let v = &p.verdicts["acct"];
    assert!(
        v.unsupported && v.message.starts_with("spec.account"),
        "{v:?}"
    );
    let p = run(
        &[grant("n", 0, role(ROLE, "dev", &["system:nodes"]))],
        &[],
        &pcfg(),
    );
    assert!(
        p.verdicts["n"].message.contains("system:"),
        "{:?}",
        p.verdicts["n"]
    );
    let mut spec = role(ROLE, "dev", &[]);
    spec.entry_type = Some(AccessEntryType::Ec2Windows);
    assert!(
        run(&[grant("t", 0, spec)], &[], &pcfg()).verdicts["t"]
            .message
            .starts_with("spec.type")
    );
    let mut node = role(
        ROLE,
        "system:node:{{EC2PrivateDNSName}}",
        &["system:bootstrappers", "system:nodes"],
    );
    node.entry_type = Some(AccessEntryType::Ec2Windows);
    let p = run(&[grant("node", 0, node)], &[], &pcfg());
    let Call::Create(e, _) = &p.work[0].calls[0] else {
        panic!()
    };
    assert_eq!(
        (e.kind, e.username.as_deref()),
        (EntryType::Ec2Windows, None)
    );
    let mut bad = role(ROLE, "dev", &[]);
    bad.access_policies = vec![AccessPolicy {
        policy: "arn:aws:iam::aws:policy/Admin".into(),
        namespaces: vec![],
    }];
    assert!(
        run(&[grant("b", 0, bad)], &[], &pcfg()).verdicts["b"]
            .message
            .starts_with("spec.accessPolicies[0].policy")
    );
}

#[test]
fn the_oldest_grant_of_a_principal_holds_it() {
    let p = run(
        &[
            grant("young", 5, role(ROLE, "a", &[])),
            grant("old", 1, role(ROLE, "b", &[])),
        ],
        &[],
        &pcfg(),
    );
    assert_eq!(
        (reason(&p, "old"), reason(&p, "young")),
        (Reason::Applied, Reason::Conflict)
    );
}

#[test]
fn adopting_a_privileged_entry_is_as_privileged_as_granting_it() {
    let mut admin = foreign(entry(ROLE, Some("admin"), &[]));
    admin.entry.access_policies = vec![Association {
        policy_arn: ADMIN.into(),
        namespaces: vec![],
    }];
    let mut spec = role(ROLE, "dev", &["devs"]);
    spec.adopt = true;
    let strict = PlanConfig {
        privileged_principals: vec![],
        ..pcfg()
    };
    let p = run(
        &[grant("dev", 0, spec.clone())],
        std::slice::from_ref(&admin),
        &strict,
    );
    assert_eq!(
        reason(&p, "dev"),
        Reason::Forbidden,
        "{}",
        p.verdicts["dev"].message
    );
    assert!(p.work.is_empty(), "the admin entry is left as it is");
    let mut node = foreign(entry(ROLE, None, &[]));
    node.entry.kind = EntryType::Ec2Linux;
    let p = run(&[grant("dev", 0, spec.clone())], &[node], &strict);
    assert_eq!(reason(&p, "dev"), Reason::Forbidden);
    // Allowed principals may.
    let p = run(&[grant("dev", 0, spec)], &[admin], &pcfg());
    assert_eq!(reason(&p, "dev"), Reason::Applied);
}

#[test]
fn a_grant_without_username_gets_one_from_eks_and_none_from_aws_auth() {
    let mut spec = role(ROLE, "x", &["devs"]);
    spec.username = None;
    let p = run(&[grant("gen", 0, spec.clone())], &[], &pcfg());
    let Call::Create(e, _) = &p.work[0].calls[0] else {
        panic!("{:?}", p.work)
    };
    assert_eq!(
        (e.username.as_deref(), &e.kubernetes_groups[..]),
        (None, &["devs".to_string()][..])
    );
    assert!(
        p.verdicts["gen"]
            .message
            .contains("username generated by EKS")
    );
    // An entry EKS named is in place as it is.
    let have = ours(
        entry(
            ROLE,
            Some("arn:aws:sts::111122223333:assumed-role/dev/{{SessionName}}"),
            &["devs"],
        ),
        "uid-gen",
    );
    assert!(
        run(&[grant("gen", 0, spec.clone())], &[have], &pcfg())
            .work
            .is_empty()
    );
    // aws-auth cannot hold it.
    let aws = crate::engine::plan::plan(&[grant("gen", 0, spec)], None, &pcfg()).unwrap();
    assert_eq!(aws.verdicts[0].reason, Reason::Invalid);
    assert_eq!(
        &*aws.verdicts[0].message,
        crate::engine::rules::USERNAME_FOR_AWS_AUTH
    );
}

#[test]
fn an_entry_migrate_made_the_same_is_taken_without_adopt() {
    let mut migrated = foreign(entry(ROLE, Some("dev"), &["devs"]));
    migrated
        .tags
        .insert(access_entry::MIGRATED_TAG.into(), "aws-auth".into());
    let p = run(
        &[grant("dev", 0, role(ROLE, "dev", &["devs"]))],
        std::slice::from_ref(&migrated),
        &pcfg(),
    );
    assert_eq!(reason(&p, "dev"), Reason::Applied);
    assert!(
        matches!(p.work[0].calls[..], [Call::Tag(_)]),
        "{:?}",
        p.work
    );
    // Made differently: someone else's until adopted.
    let p = run(
        &[grant("dev", 0, role(ROLE, "dev", &["other"]))],
        &[migrated],
        &pcfg(),
    );
    assert_eq!(reason(&p, "dev"), Reason::Conflict);
}
