//! The grant validator: a spec in, the exact aws-auth entry it stands for (or which field is wrong,
//! why, and the fix) out.
use std::fmt;

use crate::api::IamAccessGrantSpec;
use crate::engine::authmap::arn::{self, ArnError, PrincipalType};
use crate::engine::authmap::read::is_account_id;
use crate::engine::authmap::template::{self, EC2_PRIVATE_DNS_NAME};
use crate::engine::authmap::{Mapping, Section, shown};

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
        (Some(_), Some(_)) => Err(invalid(
            "spec",
            "set either arn (an IAM user or role) or account, not both",
        )),
        (None, None) => Err(invalid(
            "spec",
            "set arn (an IAM user or role ARN) with username, or account (a 12-digit AWS account id)",
        )),
        (None, Some(account)) => validate_account(spec, account),
        (Some(a), None) => validate_arn_grant(spec, a),
    }
}

fn validate_account(spec: &IamAccessGrantSpec, account: &str) -> Result<ValidGrant, Invalid> {
    let shown_account = shown(account);
    if !is_account_id(account) {
        return Err(invalid(
            "spec.account",
            format!(
                "`{shown_account}` is not a 12-digit AWS account id; write it in quotes, e.g. account: \"111122223333\""
            ),
        ));
    }
    if spec.username.is_some() || !spec.groups.is_empty() {
        return Err(invalid(
            "spec.account",
            "an account grant maps every principal of the account to its own ARN with no groups; remove username and groups, or grant a role or user with arn instead",
        ));
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
    let username = spec.username.as_deref().unwrap_or_default();
    if username.is_empty() {
        return Err(invalid(
            "spec.username",
            "is required: the Kubernetes username this principal gets, e.g. username: alice or username: \"admin:{{SessionName}}\"",
        ));
    }
    let node_role = section == Section::MapRoles && spec.groups.iter().any(|g| g == "system:nodes");
    check_text("spec.username", username, node_role)?;
    for g in &spec.groups {
        check_text("spec.groups", g, node_role)?;
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

/// [`validate_arn`] without its shortcut.
fn validate_arn_in_full(raw: &str) -> Result<(Section, String), Invalid> {
    const F: &str = "spec.arn";
    let shown_raw = shown(raw);
    if raw.chars().any(char::is_whitespace) {
        return Err(invalid(
            F,
            format!(
                "`{shown_raw}` contains whitespace, which EKS keeps verbatim so it never matches; remove it"
            ),
        ));
    }
    let c = arn::canonicalize(raw).map_err(|e| match e {
        ArnError::Unsupported { .. } if raw.contains(":group/") => invalid(
            F,
            format!("{e}; IAM groups cannot be mapped: grant each user, or a role the group's members assume"),
        ),
        e => invalid(F, e.to_string()),
    })?;
    let parsed = arn::Arn::parse(raw).expect("canonicalized ARNs parse");
    if !is_account_id(parsed.account) {
        return Err(invalid(
            F,
            format!(
                "account `{}` in `{shown_raw}` is not a 12-digit AWS account id",
                parsed.account
            ),
        ));
    }
    if !parsed.region.is_empty() && parsed.service == "iam" {
        return Err(invalid(
            F,
            format!(
                "IAM ARNs have no region; use arn:{}:iam::{}:{}",
                parsed.partition, parsed.account, parsed.resource
            ),
        ));
    }
    match c.kind {
        PrincipalType::Role if parsed.service == "sts" => Err(invalid(
            F,
            format!(
                "`{shown_raw}` is an STS assumed-role session ARN, which changes every session; grant the role: use {}",
                shown(&arn::strip_role_path(&c.arn))
            ),
        )),
        PrincipalType::Role => {
            if let Some((_, name)) = arn::role_path(raw) {
                let fixed = arn::strip_role_path(raw);
                let fixed = shown(&fixed);
                check_iam_name(name, raw)?;
                return Err(invalid(
                    F,
                    format!("role ARN has a path; EKS matches roles without it: use {fixed}"),
                ));
            }
            check_iam_name(raw.rsplit('/').next().unwrap_or_default(), raw)?;
            Ok((Section::MapRoles, c.arn))
        }
        PrincipalType::User => {
            let rest = parsed.resource.trim_start_matches("user/");
            let (path, name) = rest.rsplit_once('/').unwrap_or(("", rest));
            check_iam_name(name, raw)?;
            if path
                .split('/')
                .any(|seg| seg.is_empty() && !path.is_empty())
                || !path.chars().all(|ch| ('\u{21}'..='\u{7e}').contains(&ch))
            {
                return Err(invalid(
                    F,
                    format!("user path in `{shown_raw}` is not a valid IAM path"),
                ));
            }
            Ok((Section::MapUsers, c.arn))
        }
        PrincipalType::Root => Err(invalid(
            F,
            format!(
                "`{shown_raw}` is the account root user; to admit every principal of the account use account: \"{}\" instead of arn",
                parsed.account
            ),
        )),
        PrincipalType::FederatedUser => Err(invalid(
            F,
            format!(
                "`{shown_raw}` is an STS federated-user session; grant the IAM user or role that calls GetFederationToken"
            ),
        )),
    }
}

/// IAM user and role names: 1-64 of `[A-Za-z0-9+=,.@_-]`.
/// IAM's rule for user and role names: 1-64 letters, digits and `+=,.@_-`.
pub fn is_iam_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'+' | b'=' | b',' | b'.' | b'@' | b'_' | b'-')
        })
}

fn check_iam_name(name: &str, raw: &str) -> Result<(), Invalid> {
    let (shown_name, shown_raw) = (shown(name), shown(raw));
    if is_iam_name(name) {
        Ok(())
    } else {
        Err(invalid(
            "spec.arn",
            format!(
                "`{shown_name}` in `{shown_raw}` is not a valid IAM name (1-64 characters of letters, digits and +=,.@_-)"
            ),
        ))
    }
}

fn check_text(field: &'static str, value: &str, node_role: bool) -> Result<(), Invalid> {
    if is_plain_text(value) {
        return Ok(());
    }
    check_text_in_full(field, value, node_role)
}

/// Printable ASCII without spaces or braces (most names and groups): passes every check of
/// [`check_text_in_full`], with no template token to look for.
fn is_plain_text(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| matches!(b, 0x21..=0x7e) && b != b'{')
}

fn check_text_in_full(field: &'static str, value: &str, node_role: bool) -> Result<(), Invalid> {
    let shown_value = shown(value);
    if value.is_empty() {
        return Err(invalid(
            field,
            "must not contain empty strings; remove the empty item",
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|&c| crate::engine::authmap::needs_escape(c))
    {
        return Err(invalid(
            field,
            format!(
                "`{shown_value}` contains the control or format character U+{:04X}; Kubernetes names in aws-auth must not: remove it",
                c as u32
            ),
        ));
    }
    if value.chars().any(char::is_whitespace) {
        return Err(invalid(
            field,
            format!("`{shown_value}` contains whitespace; Kubernetes names in aws-auth must not"),
        ));
    }
    if let Some(bad) = template::unknown_tokens(value).first() {
        return Err(invalid(
            field,
            format!(
                "`{bad}` in `{shown_value}` is not a template token EKS knows, so it would stay literal text; use one of {}",
                template::TOKENS.join(", ")
            ),
        ));
    }
    if value.contains(EC2_PRIVATE_DNS_NAME) && !node_role {
        return Err(invalid(
            field,
            "{{EC2PrivateDNSName}} works only for EC2 node roles (a role grant whose groups include system:nodes); for anything else authentication fails; use {{SessionName}}",
        ));
    }
    Ok(())
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
    fn control_characters_are_named_not_called_whitespace() {
        let e = validate(&role(
            "arn:aws:iam::111122223333:role/a",
            "a\u{1b}[31mb",
            &[],
        ))
        .unwrap_err();
        assert!(
            e.message.contains("control or format character U+001B"),
            "{e}"
        );
        assert!(e.message.contains("a\\u{001B}[31mb"), "{e}");
        assert!(!e.message.contains('\u{1b}'));
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
                    prop_assert_eq!(check_text_in_full("f", &value, node_role), Ok(()));
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
