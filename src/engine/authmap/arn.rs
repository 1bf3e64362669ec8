//! IAM ARNs: parsing, the authenticator's canonical form, and the key aws-auth entries match on.
use std::fmt;

use super::shown;

/// Partitions the authenticator accepts (pkg/arn `checkPartition`).
pub const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error("`{}` is not an ARN: expected arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE", shown(.0))]
    NotAnArn(String),
    #[error("`{}` has partition `{}`; EKS knows only {}", shown(arn), shown(partition), PARTITIONS.join(", "))]
    Partition { arn: String, partition: String },
    #[error("`{}` is an assumed-role ARN without a session name", shown(.0))]
    NoSession(String),
    #[error(
        "`{}` names a {}; aws-auth maps only IAM users, IAM roles and accounts",
        shown(arn),
        shown(what)
    )]
    Unsupported { arn: String, what: String },
}

/// What kind of principal a canonical ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PrincipalType {
    Role,
    User,
    Root,
    FederatedUser,
}

/// An ARN split into its six fields, as aws-sdk-go's `arn.Parse` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(s: &'a str) -> Result<Self, ArnError> {
        let rest = s
            .strip_prefix("arn:")
            .ok_or_else(|| ArnError::NotAnArn(s.to_string()))?;
        let mut parts = rest.splitn(5, ':');
        let mut next = || {
            parts
                .next()
                .ok_or_else(|| ArnError::NotAnArn(s.to_string()))
        };
        Ok(Arn {
            partition: next()?,
            service: next()?,
            region: next()?,
            account: next()?,
            resource: next()?,
        })
    }
}

/// A principal in the authenticator's canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    pub kind: PrincipalType,
    pub partition: String,
    pub account: String,
    /// The canonical ARN exactly as upstream `Canonicalize` returns it.
    pub arn: String,
}

impl fmt::Display for Canonical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

/// Upstream `arn.Canonicalize`: assumed-role session ARNs become role ARNs; IAM users, roles,
/// root and STS federated users pass through; anything else is an error.
pub fn canonicalize(s: &str) -> Result<Canonical, ArnError> {
    let arn = Arn::parse(s)?;
    if !PARTITIONS.contains(&arn.partition) {
        return Err(ArnError::Partition {
            arn: s.to_string(),
            partition: arn.partition.to_string(),
        });
    }
    let resource: Vec<&str> = arn.resource.split('/').collect();
    let done = |kind, canonical: String| {
        Ok(Canonical {
            kind,
            partition: arn.partition.to_string(),
            account: arn.account.to_string(),
            arn: canonical,
        })
    };
    let unsupported = |what: &str| {
        Err(ArnError::Unsupported {
            arn: s.to_string(),
            what: what.to_string(),
        })
    };
    match (arn.service, resource[0]) {
        ("sts", "federated-user") => done(PrincipalType::FederatedUser, s.to_string()),
        ("sts", "assumed-role") => {
            if resource.len() < 3 {
                return Err(ArnError::NoSession(s.to_string()));
            }
            let role = resource[1..resource.len() - 1].join("/");
            done(
                PrincipalType::Role,
                format!("arn:{}:iam::{}:role/{role}", arn.partition, arn.account),
            )
        }
        ("iam", "role") => done(PrincipalType::Role, s.to_string()),
        ("iam", "user") => done(PrincipalType::User, s.to_string()),
        ("iam", "root") => done(PrincipalType::Root, s.to_string()),
        ("iam", other) | ("sts", other) => unsupported(&format!("`{other}` resource")),
        (service, _) => unsupported(&format!("resource of service `{service}`")),
    }
}

/// The string two principals are compared by: the canonical ARN with any role path removed
/// (STS session ARNs carry none, and role names are unique per account), lower-cased because the
/// authenticator compares case-insensitively.
pub fn principal_key(s: &str) -> Result<String, ArnError> {
    if let Some(key) = iam_principal_key(s) {
        return Ok(key);
    }
    let c = canonicalize(s)?;
    let key = match c.kind {
        PrincipalType::Role => {
            let name = c.arn.rsplit('/').next().unwrap_or_default();
            format!("arn:{}:iam::{}:role/{name}", c.partition, c.account)
        }
        _ => c.arn,
    };
    Ok(fold_case(&key))
}

/// [`principal_key`] for the ARNs nearly every entry holds (ASCII `iam` role and user ARNs),
/// without the general parse: the same key, fewer allocations (a sync computes thousands).
fn iam_principal_key(s: &str) -> Option<String> {
    if !s.is_ascii() {
        return None;
    }
    let mut parts = s.strip_prefix("arn:")?.splitn(5, ':');
    let (partition, service, _region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if service != "iam" || !PARTITIONS.contains(&partition) {
        return None;
    }
    if let Some(rest) = resource.strip_prefix("role/") {
        let name = rest.rsplit('/').next().unwrap_or_default();
        let mut key = format!("arn:{partition}:iam::{account}:role/{name}");
        key.make_ascii_lowercase();
        return Some(key);
    }
    resource
        .starts_with("user/")
        .then(|| s.to_ascii_lowercase())
}

/// [`principal_key`], or the case-folded text when it is no usable ARN (such an entry never
/// matches, but it still needs a key to be compared and kept by).
pub fn match_key(s: &str) -> String {
    principal_key(s).unwrap_or_else(|_| fold_case(s))
}

/// Go's `unicode.ToLower` for one character: the simple mapping (U+0130 becomes `i`, where
/// Rust's full mapping gives two characters).
fn go_lower(c: char) -> char {
    if c == '\u{130}' {
        return 'i';
    }
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

fn simple_upper(c: char) -> char {
    let mut u = c.to_uppercase();
    match (u.next(), u.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// Go's `strings.ToLower`, which the authenticator applies to mapRoles keys and callers.
pub fn go_to_lower(s: &str) -> String {
    s.chars().map(go_lower).collect()
}

/// A key that two strings share whenever Go's `strings.ToLower` or `strings.EqualFold` (the
/// authenticator's comparisons) call them equal: `K` (KELVIN SIGN) and `k`, `ſ` and `s`. It may
/// also join a few pairs Go keeps apart (such as `ı` and `i`): for finding conflicts, erring
/// toward "the same principal" is the safe side. ASCII text is simply lower-cased.
pub fn fold_case(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.chars()
        .map(|c| go_lower(simple_upper(go_lower(c))))
        .collect()
}

/// Whether a role ARN carries a path (`role/PATH/NAME`), which EKS never matches.
pub fn role_path(arn: &str) -> Option<(&str, &str)> {
    let (head, rest) = arn.split_once(":role/")?;
    let (path, name) = rest.rsplit_once('/')?;
    let _ = head;
    Some((path, name))
}

/// The role ARN EKS can match, with any path removed.
pub fn strip_role_path(arn: &str) -> String {
    match (role_path(arn), arn.split_once(":role/")) {
        (Some((_, name)), Some((head, _))) => format!("{head}:role/{name}"),
        _ => arn.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_canonicalize_vectors() {
        let data = include_str!("../../../tests/fixtures/canonicalize.tsv");
        let mut n = 0;
        for line in data
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (input, expected) = line.split_once('\t').expect("two columns");
            let got = canonicalize(input).map(|c| c.arn);
            if expected == "ERROR" {
                assert!(got.is_err(), "{input} should fail, got {got:?}");
            } else {
                assert_eq!(got.as_deref(), Ok(expected), "{input}");
            }
            n += 1;
        }
        assert_eq!(n, 13);
    }

    #[test]
    fn every_partition_is_accepted() {
        for p in PARTITIONS {
            let arn = format!("arn:{p}:iam::111122223333:user/a");
            assert_eq!(canonicalize(&arn).unwrap().arn, arn);
        }
    }

    #[test]
    fn principal_key_strips_role_path_and_case_but_keeps_user_path() {
        assert_eq!(
            principal_key("arn:aws:iam::111122223333:role/team/Admins").unwrap(),
            "arn:aws:iam::111122223333:role/admins"
        );
        assert_eq!(
            principal_key("arn:aws:sts::111122223333:assumed-role/Admins/alice@example.com")
                .unwrap(),
            "arn:aws:iam::111122223333:role/admins"
        );
        assert_eq!(
            principal_key("arn:aws:iam::111122223333:user/ops/Bob").unwrap(),
            "arn:aws:iam::111122223333:user/ops/bob"
        );
    }

    #[test]
    fn case_folds_like_go() {
        assert_eq!(go_to_lower("role/\u{212A}ube"), "role/kube");
        assert_eq!(go_to_lower("\u{17F}"), "\u{17F}");
        assert_eq!(go_to_lower("\u{130}"), "i");
        for (a, b) in [
            ("\u{212A}ube-Admin", "kube-admin"),
            ("\u{17F}am", "SAM"),
            ("ß", "ẞ"),
            ("Σς", "σσ"),
        ] {
            assert_eq!(fold_case(a), fold_case(b), "{a} {b}");
        }
        assert_ne!(fold_case("kube"), fold_case("kubé"));
        assert_eq!(
            principal_key("arn:aws:iam::111122223333:role/\u{212A}ube-admin").unwrap(),
            principal_key("arn:aws:iam::111122223333:role/kube-admin").unwrap()
        );
    }

    #[test]
    fn the_fast_key_is_the_general_key() {
        for a in [
            "arn:aws:iam::111122223333:role/Admin",
            "arn:aws:iam::111122223333:role/team/Admin",
            "arn:aws:iam:us-east-1:111122223333:role/Admin",
            "arn:aws-cn:iam::111122223333:user/ops/Bob",
            "arn:aws:iam::111122223333:role/",
        ] {
            let c = canonicalize(a).unwrap();
            let general = match c.kind {
                PrincipalType::Role => format!(
                    "arn:{}:iam::{}:role/{}",
                    c.partition,
                    c.account,
                    c.arn.rsplit('/').next().unwrap()
                ),
                _ => c.arn.clone(),
            };
            assert_eq!(iam_principal_key(a), Some(fold_case(&general)), "{a}");
        }
        assert_eq!(iam_principal_key("arn:aws:iam::111122223333:root"), None);
        assert_eq!(iam_principal_key("arn:nope:iam::111122223333:role/a"), None);
    }

    #[test]
    fn role_path_is_detected_and_stripped() {
        let a = "arn:aws:iam::111122223333:role/a/b/Admin";
        assert_eq!(role_path(a), Some(("a/b", "Admin")));
        assert_eq!(strip_role_path(a), "arn:aws:iam::111122223333:role/Admin");
        assert_eq!(role_path("arn:aws:iam::111122223333:role/Admin"), None);
    }
}
