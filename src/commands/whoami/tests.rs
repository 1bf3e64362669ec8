use super::*;
use crate::api::IamAccessGrant;
use crate::engine::access_entry::POLICY_PREFIX;
use crate::engine::validate::validate;

fn caller(arn: &str) -> Caller {
    Caller {
        account: "111122223333".into(),
        arn: arn.into(),
        user_id: "AROAEXAMPLE:alice@example.com".into(),
        access_key_id: "ASIAEXAMPLE".into(),
    }
}

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const SESSION: &str = "arn:aws:sts::111122223333:assumed-role/Admins/alice@example.com";

#[test]
fn assumed_role_is_mapped_with_templates_expanded() {
    let d = data(&[(
        "mapRoles",
        "- rolearn: arn:aws:iam::111122223333:role/admins\n  username: \"admin:{{SessionName}}\"\n  groups: [\"team-{{AccountID}}\", \"{{SessionNameRaw}}\"]\n",
    )]);
    let r = explain(&caller(SESSION), &d, "test").unwrap();
    assert!(r.authenticated);
    assert_eq!(r.canonical_arn, "arn:aws:iam::111122223333:role/Admins");
    assert_eq!(r.session_name.as_deref(), Some("alice@example.com"));
    let m = r.mapped.unwrap();
    assert_eq!(m.username, "admin:alice-example.com");
    assert_eq!(m.groups, ["team-111122223333", "alice@example.com"]);
    assert_eq!((m.section.as_str(), m.line), ("mapRoles", 1));
}

#[test]
fn a_role_written_with_a_path_is_explained() {
    let d = data(&[(
        "mapRoles",
        "- rolearn: arn:aws:iam::111122223333:role/platform/Admins\n  username: a\n",
    )]);
    let r = explain(&caller(SESSION), &d, "test").unwrap();
    assert!(!r.authenticated);
    assert!(
        r.causes[0].contains("written with a path"),
        "{:?}",
        r.causes
    );
    assert!(r.causes[0].contains("use arn:aws:iam::111122223333:role/Admins"));
}

#[test]
fn a_pasted_session_arn_is_explained() {
    let d = data(&[(
        "mapRoles",
        "- rolearn: arn:aws:sts::111122223333:assumed-role/Admins/bob\n  username: a\n",
    )]);
    let r = explain(&caller(SESSION), &d, "test").unwrap();
    assert!(
        r.causes[0].contains("session ARN was pasted"),
        "{:?}",
        r.causes
    );
}

#[test]
fn a_dropped_key_is_explained() {
    let d = data(&[(
        "mapRoles",
        "- rolearn: arn:aws:iam::111122223333:role/Admins\n\tusername: a\n",
    )]);
    let r = explain(&caller(SESSION), &d, "test").unwrap();
    assert!(!r.authenticated);
    assert!(
        r.causes[0].starts_with("EKS drops the whole mapRoles"),
        "{:?}",
        r.causes
    );
    assert!(r.causes[0].contains("line 2"));
}

#[test]
fn case_variant_user_entries_are_flagged_as_random() {
    let d = data(&[(
        "mapUsers",
        "- userarn: arn:aws:iam::111122223333:user/Alice\n  username: a\n- userarn: arn:aws:iam::111122223333:user/alice\n  username: b\n",
    )]);
    let r = explain(&caller("arn:aws:iam::111122223333:user/alice"), &d, "test").unwrap();
    assert!(r.authenticated);
    assert!(r.mapped.unwrap().ambiguous.unwrap().contains("random"));
}

#[test]
fn wrong_case_top_level_key_is_explained() {
    let d = data(&[(
        "MapRoles",
        "- rolearn: arn:aws:iam::111122223333:role/Admins\n  username: a\n",
    )]);
    let r = explain(&caller(SESSION), &d, "test").unwrap();
    assert!(
        r.causes
            .iter()
            .any(|c| c.contains("rename it to `mapRoles`")),
        "{:?}",
        r.causes
    );
}

#[test]
fn no_entry_suggests_a_valid_grant() {
    let r = explain(&caller(SESSION), &BTreeMap::new(), "test").unwrap();
    assert!(!r.authenticated);
    assert!(r.causes[0].contains("no entry for arn:aws:iam::111122223333:role/Admins"));
    let g: IamAccessGrant = serde_yaml::from_str(r.suggested_grant.as_ref().unwrap()).unwrap();
    assert_eq!(g.spec.username.as_deref(), Some("admins:{{SessionName}}"));
    validate(&g.spec).unwrap();
    assert!(render_text(&r).contains("NOT MAPPED"));
}

#[test]
fn account_mapping_uses_the_arn_as_username() {
    let d = data(&[("mapAccounts", "- \"111122223333\"\n")]);
    let r = explain(&caller(SESSION), &d, "test").unwrap();
    let m = r.mapped.unwrap();
    assert_eq!(m.username, "arn:aws:iam::111122223333:role/Admins");
    assert!(m.groups.is_empty());
}

#[test]
fn node_template_with_a_non_instance_session_fails() {
    let d = data(&[(
        "mapRoles",
        "- rolearn: arn:aws:iam::111122223333:role/Admins\n  username: system:node:{{EC2PrivateDNSName}}\n",
    )]);
    let r = explain(&caller(SESSION), &d, "test").unwrap();
    assert!(!r.authenticated);
    assert!(r.causes[0].contains("instance id"), "{:?}", r.causes);
}

#[test]
fn spaces_around_an_arn_are_explained() {
    let d = data(&[(
        "mapRoles",
        "- rolearn: \" arn:aws:iam::111122223333:role/Admins\"\n  username: a\n",
    )]);
    let r = explain(&caller(SESSION), &d, "test").unwrap();
    assert!(!r.authenticated);
    assert!(r.causes[0].contains("spaces around it"), "{:?}", r.causes);
}

#[test]
fn a_case_mismatch_in_map_users_is_pointed_out() {
    let d = data(&[(
        "mapUsers",
        "- userarn: arn:aws:iam::111122223333:user/Alice\n  username: a\n",
    )]);
    let r = explain(&caller("arn:aws:iam::111122223333:user/alice"), &d, "test").unwrap();
    assert!(r.authenticated);
    assert!(
        r.causes[0].contains("matches only ignoring case"),
        "{:?}",
        r.causes
    );
    assert!(r.causes[0].contains("write arn:aws:iam::111122223333:user/alice"));
}

fn entry(principal: &str, username: Option<&str>) -> AccessEntry {
    AccessEntry {
        principal_arn: principal.into(),
        kind: crate::engine::access_entry::EntryType::Standard,
        username: username.map(str::to_string),
        kubernetes_groups: vec!["devs".into()],
        access_policies: vec![crate::engine::access_entry::Association {
            policy_arn: format!("{POLICY_PREFIX}AmazonEKSViewPolicy"),
            namespaces: vec!["shop".into()],
        }],
    }
}

#[test]
fn access_entries_decide_first_and_alone_in_api_mode() {
    let mapped = data(&[(
        "mapRoles",
        "- rolearn: arn:aws:iam::111122223333:role/Admins\n  username: \"from-aws-auth\"\n",
    )]);
    // The entry names the role with a path; EKS matches the role itself.
    let e = entry("arn:aws:iam::111122223333:role/team/Admins", None);
    for mode in ["API_AND_CONFIG_MAP", "API"] {
        let mut r = explain(&caller(SESSION), &mapped, "test").unwrap();
        through_access_entries(&mut r, &caller(SESSION), mode, Some(&e));
        assert!(r.authenticated);
        let a = r.access_entries.clone().unwrap();
        assert_eq!(a.decided_by, "access entry");
        let m = a.entry.unwrap();
        // EKS's generated username: the session ARN of the role, without its path.
        assert_eq!(
            m.username,
            "arn:aws:sts::111122223333:assumed-role/Admins/alice-example.com"
        );
        assert_eq!(m.policies, ["AmazonEKSViewPolicy in shop"]);
        let text = render_text(&r);
        assert!(
            text.contains(
                "ACCESS ENTRY arn:aws:iam::111122223333:role/team/Admins (STANDARD) decides"
            ),
            "{text}"
        );
    }
    // API_AND_CONFIG_MAP with no entry: aws-auth decides; API with no entry: nobody does.
    let mut r = explain(&caller(SESSION), &mapped, "test").unwrap();
    through_access_entries(&mut r, &caller(SESSION), "API_AND_CONFIG_MAP", None);
    assert!(r.authenticated);
    assert_eq!(r.access_entries.unwrap().decided_by, "aws-auth");
    let mut r = explain(&caller(SESSION), &mapped, "test").unwrap();
    through_access_entries(&mut r, &caller(SESSION), "API", None);
    assert!(!r.authenticated);
    assert_eq!(r.access_entries.clone().unwrap().decided_by, "none");
    assert!(
        r.causes[0].contains("mode is API: aws-auth is not read"),
        "{:?}",
        r.causes
    );
    // A custom username expands the session name.
    let custom = entry(
        "arn:aws:iam::111122223333:role/Admins",
        Some("dev:{{SessionName}}"),
    );
    let mut r = explain(&caller(SESSION), &data(&[]), "test").unwrap();
    through_access_entries(
        &mut r,
        &caller(SESSION),
        "API_AND_CONFIG_MAP",
        Some(&custom),
    );
    assert!(r.authenticated && r.suggested_grant.is_none());
    assert_eq!(
        r.access_entries.unwrap().entry.unwrap().username,
        "dev:alice-example.com"
    );
}
