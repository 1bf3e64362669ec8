use super::*;
use crate::engine::access_entry::{Association, CLUSTER_ADMIN_POLICY, EntryType};

const ACCOUNT: &str = "111122223333";

fn aws_auth(roles: &str, users: &str, accounts: &str) -> AwsAuthRead {
    let mut data = BTreeMap::new();
    for (k, v) in [
        ("mapRoles", roles),
        ("mapUsers", users),
        ("mapAccounts", accounts),
    ] {
        if !v.is_empty() {
            data.insert(k.to_string(), v.to_string());
        }
    }
    read_data(&data)
}

const ROLES: &str = "- rolearn: \"arn:aws:iam::111122223333:role/admins\"\n  username: \"admin:{{SessionName}}\"\n  groups:\n  - \"system:masters\"\n- rolearn: \"arn:aws:iam::111122223333:role/nodes\"\n  username: \"system:node:{{EC2PrivateDNSName}}\"\n  groups:\n  - \"system:bootstrappers\"\n  - \"system:nodes\"\n- rolearn: \"arn:aws:iam::111122223333:role/acct\"\n  username: \"x-{{AccountID}}\"\n";

fn admins() -> AccessEntry {
    AccessEntry {
        principal_arn: "arn:aws:iam::111122223333:role/admins".into(),
        kind: EntryType::Standard,
        username: Some("admin:{{SessionName}}".into()),
        kubernetes_groups: vec![],
        access_policies: vec![Association {
            policy_arn: CLUSTER_ADMIN_POLICY.into(),
            namespaces: vec![],
        }],
    }
}

fn observed(
    mode: &str,
    existing: BTreeMap<String, Option<AccessEntry>>,
    all: &[String],
) -> Observed {
    Observed {
        cluster: "c".into(),
        mode: mode.into(),
        account: ACCOUNT.into(),
        existing,
        all_entries: all.to_vec(),
        roles: BTreeMap::new(),
    }
}

/// A plan with no access entries yet and no creator given.
fn fresh(mode: &str, read: &AwsAuthRead) -> Migration {
    plan(read, &observed(mode, BTreeMap::new(), &[]), &[])
}

fn actions(m: &Migration) -> Vec<(&str, &str)> {
    m.items
        .iter()
        .map(|i| {
            let verb = match i.action {
                Action::Create { .. } => "create",
                Action::Agrees { .. } => "agrees",
                Action::Differs { .. } => "differs",
                Action::Cannot { .. } => "cannot",
                Action::Skipped { .. } => "skipped",
            };
            (i.principal.as_str(), verb)
        })
        .collect()
}

#[test]
fn each_entry_is_created_agreed_or_refused_and_the_switch_waits() {
    let read = aws_auth(ROLES, "", "- \"111122223333\"\n");
    let m = fresh("API_AND_CONFIG_MAP", &read);
    assert_eq!(
        actions(&m),
        [
            ("arn:aws:iam::111122223333:role/admins", "create"),
            ("arn:aws:iam::111122223333:role/nodes", "create"),
            ("arn:aws:iam::111122223333:role/acct", "cannot"),
            ("111122223333", "cannot"),
        ]
    );
    assert!(!m.complete);
    assert!(
        m.next_steps
            .iter()
            .any(|s| s.contains("do not switch to API"))
    );
    let text = render_text(&m);
    assert!(
        text.contains("note: group system:masters becomes the AmazonEKSClusterAdminPolicy"),
        "{text}"
    );
    assert!(
        text.contains("2 to create, 0 agree, 0 differ, 2 cannot"),
        "{text}"
    );
}

#[test]
fn existing_entries_agree_or_differ_and_all_agreeing_is_complete() {
    let roles = &ROLES[..ROLES
        .find("- rolearn: \"arn:aws:iam::111122223333:role/acct\"")
        .unwrap()];
    let read = aws_auth(roles, "", "");
    let nodes = AccessEntry {
        principal_arn: "arn:aws:iam::111122223333:role/nodes".into(),
        kind: EntryType::Ec2Linux,
        username: Some("system:node:{{EC2PrivateDNSName}}".into()),
        kubernetes_groups: vec![],
        access_policies: vec![],
    };
    let mut existing = BTreeMap::from([
        (admins().principal_arn, Some(admins())),
        (nodes.principal_arn.clone(), Some(nodes)),
    ]);
    let all: Vec<String> = existing
        .keys()
        .cloned()
        .chain(["arn:aws:iam::111122223333:role/other".to_string()])
        .collect();
    let m = plan(
        &read,
        &observed("API_AND_CONFIG_MAP", existing.clone(), &all),
        &[],
    );
    assert!(m.complete, "{}", render_text(&m));
    assert_eq!(
        m.only_in_access_entries,
        ["arn:aws:iam::111122223333:role/other"]
    );
    assert!(
        m.next_steps
            .last()
            .unwrap()
            .contains("authenticationMode=API "),
        "{:?}",
        m.next_steps
    );
    // An entry that grants less (no admin policy) differs, and blocks the switch.
    let mut weaker = admins();
    weaker.access_policies.clear();
    existing.insert(weaker.principal_arn.clone(), Some(weaker));
    let m = plan(
        &read,
        &observed("API_AND_CONFIG_MAP", existing.clone(), &all),
        &[],
    );
    assert_eq!(actions(&m)[0].1, "differs");
    assert!(!m.complete);
}

#[test]
fn duplicates_unreadable_keys_and_the_creator() {
    let dup = "- rolearn: \"arn:aws:iam::111122223333:role/a\"\n  username: \"first\"\n- rolearn: \"arn:aws:iam::111122223333:role/A\"\n  username: \"second\"\n";
    let read = aws_auth(dup, "- userarn: x\n\tusername: bad\n", "");
    let creator = "arn:aws:sts::111122223333:assumed-role/creator/session".to_string();
    let m = plan(
        &read,
        &observed("API", BTreeMap::new(), &[]),
        std::slice::from_ref(&creator),
    );
    let got = actions(&m);
    assert_eq!(got[0], ("arn:aws:iam::111122223333:role/a", "skipped"));
    assert_eq!(got[1], ("arn:aws:iam::111122223333:role/A", "create"));
    assert_eq!(got[2], ("(the whole key)", "cannot"));
    assert_eq!(got[3], (creator.as_str(), "cannot"));
    // With an entry for the creator's role, the creator is fine.
    let all = ["arn:aws:iam::111122223333:role/creator".to_string()];
    let m = plan(&read, &observed("API", BTreeMap::new(), &all), &[creator]);
    assert_eq!(actions(&m)[3].1, "skipped");
}

#[test]
fn config_map_mode_starts_with_the_mode_switch() {
    let read = aws_auth(ROLES, "", "");
    let m = fresh("CONFIG_MAP", &read);
    assert!(m.next_steps[0].contains("authenticationMode=API_AND_CONFIG_MAP"));
}

#[test]
fn roles_get_their_full_arn_from_iam_and_match_entries_whatever_their_path() {
    let roles = "- rolearn: \"arn:aws:iam::111122223333:role/deploy\"\n  username: \"deploy\"\n- rolearn: \"arn:aws:iam::111122223333:role/gone\"\n  username: \"gone\"\n- rolearn: \"arn:aws:iam::111122223333:role/unasked\"\n  username: \"unasked\"\n";
    let read = aws_auth(roles, "", "");
    let mut seen = observed("API_AND_CONFIG_MAP", BTreeMap::new(), &[]);
    seen.roles = BTreeMap::from([
        (
            "arn:aws:iam::111122223333:role/deploy".to_string(),
            RoleLookup::Found("arn:aws:iam::111122223333:role/ci/deploy".into()),
        ),
        (
            "arn:aws:iam::111122223333:role/gone".to_string(),
            RoleLookup::Missing,
        ),
        (
            "arn:aws:iam::111122223333:role/unasked".to_string(),
            RoleLookup::Unknown("iam:GetRole failed: AccessDenied".into()),
        ),
    ]);
    let m = plan(&read, &seen, &[]);
    match &m.items[0].action {
        Action::Create { entry, notes } => {
            assert_eq!(
                entry.principal_arn,
                "arn:aws:iam::111122223333:role/ci/deploy"
            );
            assert!(notes[0].contains("full ARN from IAM"), "{notes:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&m.items[1].action, Action::Cannot { reason } if reason.contains("no role of this name"))
    );
    assert!(
        matches!(&m.items[2].action, Action::Create { notes, .. } if notes[0].contains("AccessDenied"))
    );
    // An existing entry under the full ARN is the same principal: it agrees.
    let mut have = match &m.items[0].action {
        Action::Create { entry, .. } => entry.clone(),
        _ => unreachable!(),
    };
    have.username = Some("deploy".into());
    seen.existing = BTreeMap::from([(have.principal_arn.clone(), Some(have))]);
    let m = plan(&read, &seen, &[]);
    assert!(
        matches!(m.items[0].action, Action::Agrees { .. }),
        "{:?}",
        m.items[0]
    );
}
