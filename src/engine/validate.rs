//! The grant validator: a spec in, the exact aws-auth entry it stands for (or which field is wrong,
//! why, and the fix) out.
use std::fmt;

use crate::api::IamAccessGrantSpec;
use crate::engine::authmap::arn::{self, ArnError, PrincipalType};
use crate::engine::authmap::read::is_account_id;
use crate::engine::authmap::template::{self, EC2_PRIVATE_DNS_NAME};
use crate::engine::authmap::{Mapping, Section, needs_escape};
use crate::engine::rules;

/// A grant reduced to what it writes into aws-auth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidGrant {
    pub section: Section,
    /// The comparison key of the principal (see [`arn::principal_key`]); the account id for accounts.
    pub key: String,
    /// The ARN as EKS matches it (roles without path), or the account id.
    pub canonical: String,
    pub entry: Entry,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Entry {
    /// Shared: a grant's decision, the renderer's memo and the read of aws-auth hold one mapping.
    Mapping(std::sync::Arc<Mapping>),
    Account(String),
}

/// Which field of the spec is wrong, why, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
    }
}

/// Bounds on a grant, also in the CRD's schema (so the API server refuses past them first): an
/// IAM ARN is at most 2048 characters by IAM's rules, but one EKS can match (a role without path,
/// a user with a path of up to 512) fits 1024; Kubernetes names and groups fit 256.
pub const MAX_ARN_CHARS: usize = 1024;
pub const MAX_NAME_CHARS: usize = 256;
pub const MAX_GROUPS: usize = 32;
/// Access policies per grant (EKS associates few; the bound keeps CEL's cost low).
pub const MAX_POLICIES: usize = 16;

/// The bounds, checked before anything else so that no check ever works on a huge value.
fn check_bounds(spec: &IamAccessGrantSpec) -> Result<(), Invalid> {
    let too_long = |field, value: &str, max: usize| {
        // Never fewer bytes than characters: nearly every value is settled without counting.
        if value.len() <= max {
            return None;
        }
        let n = value.chars().count();
        (n > max).then(|| {
            invalid(
                field,
                format!("is {n} characters long, more than the {max} allowed; shorten it"),
            )
        })
    };
    let over = [
        spec.arn
            .as_deref()
            .and_then(|a| too_long("spec.arn", a, MAX_ARN_CHARS)),
        spec.account
            .as_deref()
            .and_then(|a| too_long("spec.account", a, MAX_NAME_CHARS)),
        spec.username
            .as_deref()
            .and_then(|u| too_long("spec.username", u, MAX_NAME_CHARS)),
    ];
    if let Some(e) = over.into_iter().flatten().next() {
        return Err(e);
    }
    if spec.groups.len() > MAX_GROUPS {
        return Err(invalid(
            "spec.groups",
            format!(
                "has {} groups, more than the {MAX_GROUPS} allowed; bind one group to the RBAC the principal needs instead",
                spec.groups.len()
            ),
        ));
    }
    match spec
        .groups
        .iter()
        .find_map(|g| too_long("spec.groups", g, MAX_NAME_CHARS))
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub fn validate(spec: &IamAccessGrantSpec) -> Result<ValidGrant, Invalid> {
    check_bounds(spec)?;
    match (&spec.arn, &spec.account) {
        (Some(_), Some(_)) => Err(invalid("spec", rules::BOTH)),
        (None, None) => Err(invalid("spec", rules::NEITHER)),
        (None, Some(account)) => validate_account(spec, account),
        (Some(a), None) => validate_arn_grant(spec, a),
    }
}

fn validate_account(spec: &IamAccessGrantSpec, account: &str) -> Result<ValidGrant, Invalid> {
    if !is_account_id(account) {
        return Err(invalid("spec.account", rules::ACCOUNT_DIGITS));
    }
    if spec.username.is_some() || !spec.groups.is_empty() {
        return Err(invalid("spec.account", rules::ACCOUNT_ONLY));
    }
    Ok(ValidGrant {
        section: Section::MapAccounts,
        key: account.to_string(),
        canonical: account.to_string(),
        entry: Entry::Account(account.to_string()),
    })
}

fn validate_arn_grant(spec: &IamAccessGrantSpec, raw: &str) -> Result<ValidGrant, Invalid> {
    let (section, canonical, key) = validate_arn(raw)?;
    // None: EKS access entries generate one (aws-auth's plan refuses it, see
    // `rules::USERNAME_FOR_AWS_AUTH`); the entry then holds an empty username.
    let username = match spec.username.as_deref() {
        Some("") => return Err(invalid("spec.username", rules::USERNAME_EMPTY)),
        u => u.unwrap_or_default(),
    };
    let node_role = section == Section::MapRoles && spec.groups.iter().any(|g| g == "system:nodes");
    if let Some(rule) = (!username.is_empty())
        .then(|| broken_text_rule(username, node_role))
        .flatten()
    {
        return Err(invalid("spec.username", text_message(rule)));
    }
    // Rule by rule across the groups, as the CRD's rules report them.
    if let Some(rule) = spec
        .groups
        .iter()
        .filter_map(|g| broken_text_rule(g, node_role))
        .min()
    {
        return Err(invalid("spec.groups", text_message(rule)));
    }
    Ok(ValidGrant {
        section,
        key,
        canonical: canonical.clone(),
        entry: Entry::Mapping(std::sync::Arc::new(Mapping {
            arn: canonical,
            username: username.to_string(),
            groups: spec.groups.clone(),
        })),
    })
}

/// Accepts exactly the ARNs EKS can match: `arn:P:iam::ACCOUNT:role/NAME` and
/// `arn:P:iam::ACCOUNT:user/[PATH/]NAME`. Everything else is refused with the form to use.
/// Gives its section, the canonical ARN and its principal key.
pub fn validate_arn(raw: &str) -> Result<(Section, String, String), Invalid> {
    if let Some(plain) = plain_iam_arn(raw) {
        return Ok(plain);
    }
    let (section, canonical) = validate_arn_in_full(raw)?;
    let key = arn::principal_key(&canonical).expect("validated ARN canonicalizes");
    Ok((section, canonical, key))
}

/// The ARN nearly every grant has, `arn:P:iam::ACCOUNT:role/NAME` or `arn:P:iam::ACCOUNT:user/NAME`
/// with a valid name, recognised in one pass: valid and its own canonical form, its principal key
/// the ARN in lower case (no path to drop, an ASCII name). `None` for anything else, which
/// [`validate_arn_in_full`] accepts or explains (a test checks that the two agree wherever this
/// answers, and that the key is [`arn::principal_key`]'s).
fn plain_iam_arn(raw: &str) -> Option<(Section, String, String)> {
    let (partition, rest) = raw.strip_prefix("arn:")?.split_once(':')?;
    let (account, resource) = rest.strip_prefix("iam::")?.split_once(':')?;
    if !arn::PARTITIONS.contains(&partition) || !is_account_id(account) {
        return None;
    }
    let (section, name) = match resource.split_once('/')? {
        ("role", name) => (Section::MapRoles, name),
        ("user", name) => (Section::MapUsers, name),
        _ => return None,
    };
    is_iam_name(name).then(|| (section, raw.to_string(), raw.to_ascii_lowercase()))
}

/// [`validate_arn`] without its shortcut: the ARN rules of [`rules`], in their order.
fn validate_arn_in_full(raw: &str) -> Result<(Section, String), Invalid> {
    let refuse = |message: String| Err(invalid("spec.arn", message));
    if raw.chars().any(needs_escape) {
        return refuse(rules::ARN_CONTROL.into());
    }
    if raw.chars().any(char::is_whitespace) {
        return refuse(rules::ARN_WHITESPACE.into());
    }
    let c = match arn::canonicalize(raw) {
        Ok(c) => c,
        Err(ArnError::NotAnArn(_)) => return refuse(rules::NOT_AN_ARN.into()),
        Err(ArnError::Partition { .. }) => return refuse(rules::unknown_partition()),
        Err(ArnError::Unsupported { .. }) if raw.contains(":group/") => {
            return refuse(rules::IAM_GROUP.into());
        }
        Err(ArnError::Unsupported { .. }) => return refuse(rules::NOT_A_PRINCIPAL.into()),
        Err(ArnError::NoSession(_)) => return refuse(rules::NO_SESSION.into()),
    };
    let parsed = arn::Arn::parse(raw).expect("canonicalized ARNs parse");
    if !is_account_id(parsed.account) {
        return refuse(rules::ARN_ACCOUNT.into());
    }
    if !parsed.region.is_empty() && parsed.service == "iam" {
        return refuse(rules::ARN_REGION.into());
    }
    let role = |name: &str| {
        format!(
            "arn:{}:iam::{}:role/{name}",
            parsed.partition, parsed.account
        )
    };
    // (path, name); the path is `None` without a slash (`user//bob` has an empty one).
    let name_and_path = |kind: &str| {
        let rest = parsed.resource.strip_prefix(kind)?;
        Some(match rest.rsplit_once('/') {
            Some((path, name)) => (Some(path), name),
            None => (None, rest),
        })
    };
    match c.kind {
        PrincipalType::Role if parsed.service == "sts" => {
            // assumed-role/ROLE[/...]/SESSION: the role's name stands before the session.
            let segments: Vec<&str> = parsed.resource.split('/').collect();
            let name = segments[segments.len() - 2];
            check_iam_name(name)?;
            refuse(format!("{}{}", rules::ASSUMED_ROLE, role(name)))
        }
        PrincipalType::Role => {
            let (path, name) = name_and_path("role/").unwrap_or((None, ""));
            check_iam_name(name)?;
            if path.is_some() {
                return refuse(format!("{}{}", rules::ROLE_PATH, role(name)));
            }
            Ok((Section::MapRoles, c.arn))
        }
        PrincipalType::User => {
            let (path, name) = name_and_path("user/").unwrap_or((None, ""));
            check_iam_name(name)?;
            let segment_ok =
                |seg: &str| !seg.is_empty() && seg.bytes().all(|b| (0x21..=0x7e).contains(&b));
            if path.is_some_and(|p| !p.split('/').all(segment_ok)) {
                return refuse(rules::USER_PATH.into());
            }
            Ok((Section::MapUsers, c.arn))
        }
        PrincipalType::Root => refuse(format!(
            "{}{}{}",
            rules::ROOT_USER,
            parsed.account,
            rules::ROOT_USER_END
        )),
        PrincipalType::FederatedUser => refuse(rules::FEDERATED_USER.into()),
    }
}

/// IAM's rule for user and role names: 1-64 letters, digits and `+=,.@_-`.
pub fn is_iam_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'+' | b'=' | b',' | b'.' | b'@' | b'_' | b'-')
        })
}

fn check_iam_name(name: &str) -> Result<(), Invalid> {
    if is_iam_name(name) {
        Ok(())
    } else {
        Err(invalid("spec.arn", rules::IAM_NAME))
    }
}

/// The text rules a username or group must keep, in order (the CRD's rules check them in the same
/// order): not empty, no control or format character, no whitespace, only known template tokens,
/// `{{EC2PrivateDNSName}}` only for node roles. Gives the first one `value` breaks.
fn broken_text_rule(value: &str, node_role: bool) -> Option<u8> {
    if is_plain_text(value) {
        return None;
    }
    if value.is_empty() {
        Some(0)
    } else if value.chars().any(needs_escape) {
        Some(1)
    } else if value.chars().any(char::is_whitespace) {
        Some(2)
    } else if !template::unknown_tokens(value).is_empty() {
        Some(3)
    } else if value.contains(EC2_PRIVATE_DNS_NAME) && !node_role {
        Some(4)
    } else {
        None
    }
}

fn text_message(rule: u8) -> String {
    match rule {
        0 => rules::EMPTY_ITEM.into(),
        1 => rules::TEXT_CONTROL.into(),
        2 => rules::TEXT_WHITESPACE.into(),
        3 => rules::unknown_token(),
        _ => rules::EC2_ONLY_FOR_NODES.into(),
    }
}

/// Printable ASCII without spaces or braces (most names and groups): keeps every text rule, with
/// no template token to look for.
fn is_plain_text(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| matches!(b, 0x21..=0x7e) && b != b'{')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_refused_with_the_limit_named() {
        let arn = "arn:aws:iam::111122223333:role/a";
        let long = "a".repeat(200_000);
        let e = validate(&role(arn, &long, &[])).unwrap_err();
        assert_eq!(e.field, "spec.username");
        assert!(e.message.contains("more than the 256 allowed"), "{e}");
        let many: Vec<String> = (0..5000).map(|i| format!("g{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = validate(&role(arn, "u", &refs)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("spec.groups: has 5000 groups, more than the 32"),
            "{e}"
        );
        let e = validate(&role(arn, "u", &[&"g".repeat(257)])).unwrap_err();
        assert_eq!(e.field, "spec.groups");
        let e = validate(&role(&format!("{arn}{}", "x".repeat(1024)), "u", &[])).unwrap_err();
        assert_eq!(e.field, "spec.arn");
        assert!(validate(&role(arn, &"a".repeat(256), &refs[..32])).is_ok());
    }

    #[test]
    fn control_characters_are_named_not_called_whitespace_and_never_echoed() {
        let e = validate(&role(
            "arn:aws:iam::111122223333:role/a",
            "a\u{1b}[31mb",
            &[],
        ))
        .unwrap_err();
        assert_eq!(e.message, rules::TEXT_CONTROL);
        let e = validate(&role("arn:aws:iam::111122223333:role/a\u{1b}", "a", &[])).unwrap_err();
        assert_eq!(e.message, rules::ARN_CONTROL);
    }

    #[test]
    fn groups_are_checked_rule_by_rule() {
        // The empty item is named before the whitespace in an earlier group, as the CRD does.
        let e = validate(&role("arn:aws:iam::111122223333:role/a", "a", &["a b", ""])).unwrap_err();
        assert_eq!(e.message, rules::EMPTY_ITEM);
    }

    fn role(arn: &str, username: &str, groups: &[&str]) -> IamAccessGrantSpec {
        IamAccessGrantSpec::arn(arn, username, groups)
    }

    fn err(spec: IamAccessGrantSpec) -> Invalid {
        validate(&spec).expect_err("should be invalid")
    }

    #[test]
    fn valid_role_user_and_account_grants() {
        let g = validate(&role(
            "arn:aws:iam::111122223333:role/Admins",
            "admin:{{SessionName}}",
            &["system:masters"],
        ))
        .unwrap();
        assert_eq!(g.section, Section::MapRoles);
        assert_eq!(g.key, "arn:aws:iam::111122223333:role/admins");
        let g = validate(&role("arn:aws:iam::111122223333:user/ops/Bob", "bob", &[])).unwrap();
        assert_eq!(g.section, Section::MapUsers);
        assert_eq!(g.canonical, "arn:aws:iam::111122223333:user/ops/Bob");
        let a = IamAccessGrantSpec {
            account: Some("111122223333".into()),
            ..Default::default()
        };
        assert_eq!(
            validate(&a).unwrap().entry,
            Entry::Account("111122223333".into())
        );
    }

    #[test]
    fn role_path_names_the_fix() {
        let e = err(role("arn:aws:iam::111122223333:role/team/admins", "a", &[]));
        assert_eq!(e.field, "spec.arn");
        assert_eq!(
            e.message,
            "role ARN has a path; EKS matches roles without it: use arn:aws:iam::111122223333:role/admins"
        );
    }

    #[test]
    fn session_arns_root_groups_and_bad_partitions_are_refused_with_the_fix() {
        let e = err(role(
            "arn:aws:sts::111122223333:assumed-role/Admin/alice",
            "a",
            &[],
        ));
        assert!(
            e.message
                .contains("use arn:aws:iam::111122223333:role/Admin"),
            "{e}"
        );
        let e = err(role("arn:aws:iam::111122223333:root", "a", &[]));
        assert!(e.message.contains("account: \"111122223333\""), "{e}");
        let e = err(role("arn:aws:iam::111122223333:group/devs", "a", &[]));
        assert!(e.message.contains("IAM groups cannot be mapped"), "{e}");
        let e = err(role("arn:aws-foo:iam::111122223333:role/a", "a", &[]));
        assert!(e.message.contains("aws-us-gov"), "{e}");
        let e = err(role("arn:aws:iam::1111:role/a", "a", &[]));
        assert!(e.message.contains("12-digit"), "{e}");
    }

    #[test]
    fn username_and_groups_rules() {
        assert_eq!(
            err(role("arn:aws:iam::111122223333:role/a", "", &[])).field,
            "spec.username"
        );
        let e = err(role("arn:aws:iam::111122223333:role/a", "a b", &[]));
        assert!(e.message.contains("whitespace"));
        let e = err(role("arn:aws:iam::111122223333:role/a", "a", &[""]));
        assert_eq!(e.field, "spec.groups");
        let e = err(role("arn:aws:iam::111122223333:role/a", "{{Session}}", &[]));
        assert!(e.message.contains("{{SessionName}}"), "{e}");
        let e = err(role(
            "arn:aws:iam::111122223333:user/a",
            "system:node:{{EC2PrivateDNSName}}",
            &["system:nodes"],
        ));
        assert!(e.message.contains("node roles"));
        validate(&role(
            "arn:aws:iam::111122223333:role/n",
            "system:node:{{EC2PrivateDNSName}}",
            &["system:bootstrappers", "system:nodes"],
        ))
        .unwrap();
    }

    #[test]
    fn arn_xor_account() {
        let mut both = role("arn:aws:iam::111122223333:role/a", "a", &[]);
        both.account = Some("111122223333".into());
        assert_eq!(err(both).field, "spec");
        assert_eq!(err(IamAccessGrantSpec::default()).field, "spec");
        let a = IamAccessGrantSpec {
            account: Some("11112222333".into()),
            ..Default::default()
        };
        assert_eq!(err(a).field, "spec.account");
        let a = IamAccessGrantSpec {
            account: Some("111122223333".into()),
            username: Some("x".into()),
            ..Default::default()
        };
        assert!(err(a).message.contains("remove username"));
    }

    mod shortcuts {
        use proptest::prelude::*;

        use super::super::*;

        /// One part of an ARN: mostly a right one, sometimes a wrong one.
        fn piece(right: &[&'static str], wrong: &[&'static str]) -> impl Strategy<Value = String> {
            prop_oneof![
                2 => prop::sample::select(right.to_vec()),
                1 => prop::sample::select(wrong.to_vec()),
            ]
            .prop_map(String::from)
        }

        /// ARNs near the plain form: each part right, wrong, or in another case.
        fn near_plain_arn() -> impl Strategy<Value = String> {
            (
                piece(&["arn:"], &["arn", "ARN:", ""]),
                piece(
                    &["aws", "aws-cn", "aws-us-gov", "aws-eusc"],
                    &["AWS", "aw", ""],
                ),
                piece(
                    &[":iam::"],
                    &[":iam:us-east-1:", ":sts::", ":IAM::", "::", ":iam:"],
                ),
                piece(
                    &["111122223333"],
                    &["11112222333", "1111222233334", "11112222333x", ""],
                ),
                piece(
                    &[":role/", ":user/"],
                    &[
                        ":group/",
                        ":Role/",
                        ":assumed-role/",
                        ":root",
                        ":federated-user/",
                        ":role",
                        ":user/ops/",
                        "/",
                    ],
                ),
                prop_oneof![
                    3 => "[A-Za-z0-9+=,.@_-]{1,64}",
                    1 => "[A-Za-z0-9+=,.@_/* \\\\-é]{0,70}",
                ],
            )
                .prop_map(|(a, p, s, acct, kind, name)| format!("{a}{p}{s}{acct}{kind}{name}"))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn the_plain_arn_shortcut_answers_as_the_full_checks(raw in near_plain_arn()) {
                if let Some((section, canonical, key)) = plain_iam_arn(&raw) {
                    prop_assert_eq!(Ok(key), arn::principal_key(&canonical));
                    prop_assert_eq!(Ok((section, canonical)), validate_arn_in_full(&raw));
                }
            }

            #[test]
            fn plain_text_passes_the_full_checks(
                value in "[ -~\\t\\u{85}é]{0,12}",
                node_role in any::<bool>(),
            ) {
                if is_plain_text(&value) {
                    prop_assert_eq!(broken_text_rule(&value, node_role), None);
                }
            }
        }

        #[test]
        fn the_common_forms_take_the_shortcut() {
            for raw in [
                "arn:aws:iam::111122223333:role/Admins",
                "arn:aws-cn:iam::111122223333:user/bob@example.com",
            ] {
                assert!(plain_iam_arn(raw).is_some(), "{raw}");
                assert_eq!(
                    plain_iam_arn(raw).map(|(s, c, _)| Ok((s, c))),
                    Some(validate_arn_in_full(raw))
                );
            }
            for raw in [
                "arn:aws:iam::111122223333:user/ops/bob",
                "arn:aws:iam::111122223333:role/team/admins",
                "arn:aws:sts::111122223333:assumed-role/Admins/alice",
            ] {
                assert!(plain_iam_arn(raw).is_none(), "{raw}");
            }
        }
    }
}
