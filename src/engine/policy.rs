//! Who may hold a privileged identity. One rule, read by `render`, the controller and the webhook
//! alike: privileged groups, reserved usernames, whole accounts, and adopted entries that carry
//! one of these.
use std::fmt;

use crate::engine::authmap::template::TOKENS;
use crate::engine::authmap::{Mapping, arn, shown};
use crate::engine::plan::PlanConfig;
use crate::engine::validate::Entry;

/// Groups privileged by default: the prefixes EKS access entries refuse as groups. They cover
/// `system:masters`, `system:nodes`, `system:bootstrappers`, `system:node-proxier` and EKS's own.
pub const DEFAULT_PRIVILEGED_GROUPS: [&str; 2] = ["system:*", "eks:*"];

/// Username prefixes that EKS reserves (access entries refuse them): Kubernetes components,
/// service accounts and nodes (`system:`) and the platform's own identities. RBAC treats a
/// principal mapped to such a name as that component.
pub const RESERVED_USERNAME_PREFIXES: [&str; 5] = ["system:", "eks:", "aws:", "amazon:", "iam:"];

/// Why a grant (or the entry it adopts) is privileged: the rule that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privilege {
    /// A group matches a `--privileged-group` pattern (or a templated group could expand to one).
    Group { group: String, pattern: String },
    /// The username starts (or could, once templates are expanded) with a reserved prefix.
    Username {
        username: String,
        prefix: &'static str,
    },
    /// A whole AWS account not listed in `--allowed-account`.
    Account(String),
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Privilege::Group { group, pattern } if group.contains("{{") => write!(
                f,
                "group {} could expand to a privileged group ({pattern}, --privileged-group)",
                shown(group)
            ),
            Privilege::Group { group, pattern } => write!(
                f,
                "group {} is privileged (matches {pattern}, --privileged-group)",
                shown(group)
            ),
            Privilege::Username { username, prefix } => write!(
                f,
                "username {} {} the reserved prefix {prefix} (Kubernetes and EKS identities: RBAC would treat the principal as that component)",
                shown(username),
                if username.contains("{{") {
                    "could expand to a name with"
                } else {
                    "has"
                }
            ),
            Privilege::Account(a) => write!(
                f,
                "account {a} maps every principal of that AWS account, and it is not listed in --allowed-account"
            ),
        }
    }
}

/// The privileged identity an entry would give its principal, if any.
pub fn privilege(entry: &Entry, config: &PlanConfig) -> Option<Privilege> {
    match entry {
        Entry::Mapping(m) => mapping_privilege(m, config),
        Entry::Account(a) => (!config.allowed_accounts.iter().any(|x| x.trim() == a))
            .then(|| Privilege::Account(a.clone())),
    }
}

/// The privileged identity a mapping gives: its username first, then its groups.
pub fn mapping_privilege(m: &Mapping, config: &PlanConfig) -> Option<Privilege> {
    username_privilege(&m.username).or_else(|| group_privilege(&m.groups, config))
}

/// A username that is, or could expand to, a reserved name. A token expands to text without a
/// colon (session names, account ids, access key ids and DNS names cannot hold one), so
/// `{{SessionName}}` alone is never reserved but `{{SessionName}}:x` could be `system:x`.
pub fn username_privilege(username: &str) -> Option<Privilege> {
    RESERVED_USERNAME_PREFIXES
        .iter()
        .find(|p| may_expand_to(username, &format!("{p}*")))
        .map(|&prefix| Privilege::Username {
            username: username.to_string(),
            prefix,
        })
}

/// The first group that is, or could expand to, a privileged one.
pub fn group_privilege(groups: &[String], config: &PlanConfig) -> Option<Privilege> {
    config.privileged_groups.iter().find_map(|pattern| {
        groups
            .iter()
            .find(|g| may_expand_to(g, pattern))
            .map(|g| Privilege::Group {
                group: g.clone(),
                pattern: pattern.clone(),
            })
    })
}

/// Whether a principal may hold a privileged identity (`--privileged-principal` globs). Account
/// grants are allowed by `--allowed-account` alone (see [`privilege`]).
pub fn principal_allowed(canonical: &str, config: &PlanConfig) -> bool {
    config
        .privileged_principals
        .iter()
        .any(|p| glob_match(p, canonical))
}

/// The `Forbidden` message for `canonical` holding `entry` (its own, or one it adopts), when
/// the policy does not allow it: a privileged identity outside `--privileged-principal`, or an
/// account outside `--allowed-account` (which no principal glob opens).
pub fn forbidden(entry: &Entry, canonical: &str, config: &PlanConfig) -> Option<String> {
    let why = privilege(entry, config)?;
    (matches!(why, Privilege::Account(_)) || !principal_allowed(canonical, config))
        .then(|| forbidden_message(&why, canonical, config))
}

/// `*` matches any run of characters, `?` one; compared under case folding.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    crate::engine::glob::matches(&arn::fold_case(pattern), &arn::fold_case(text))
}

/// Why a privileged grant is refused, and the fix: the message of `Forbidden`.
pub fn forbidden_message(why: &Privilege, canonical: &str, config: &PlanConfig) -> String {
    if let Privilege::Account(a) = why {
        return format!(
            "{why}: grant the roles or users of account {a} one by one, or ask a cluster administrator to add --allowed-account {a}"
        );
    }
    let allowed = if config.privileged_principals.is_empty() {
        "no principal may hold it through a grant (no --privileged-principal is configured)"
            .to_string()
    } else {
        format!(
            "only principals matching {} may hold it",
            config.privileged_principals.join(", ")
        )
    };
    format!(
        "{why}, and {allowed}; {} does not match: grant an ordinary username and a group bound to narrower RBAC, or ask a cluster administrator to add a --privileged-principal pattern",
        shown(canonical)
    )
}

/// One element of a template or a pattern, case-folded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Piece {
    Char(char),
    /// A template token: any run of the characters a token can expand to.
    Token,
    /// A pattern's `?`.
    One,
    /// A pattern's `*`.
    Any,
}

/// Characters a template token can expand to: session names (`[\w+=,.@-]`, `@` made `-` or
/// kept), account ids, access key ids, EC2 private DNS names. Never a colon or whitespace.
fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

fn template_pieces(template: &str) -> Vec<Piece> {
    let mut out = Vec::with_capacity(template.len());
    let mut rest = template;
    while !rest.is_empty() {
        let next = TOKENS
            .iter()
            .filter_map(|t| rest.find(t).map(|i| (i, t.len())))
            .min();
        let (lit, after) = match next {
            Some((i, len)) => (&rest[..i], Some(&rest[i + len..])),
            None => (rest, None),
        };
        out.extend(arn::fold_case(lit).chars().map(Piece::Char));
        match after {
            Some(a) => {
                out.push(Piece::Token);
                rest = a;
            }
            None => break,
        }
    }
    out
}

fn pattern_pieces(pattern: &str) -> Vec<Piece> {
    arn::fold_case(pattern)
        .chars()
        .map(|c| match c {
            '*' => Piece::Any,
            '?' => Piece::One,
            c => Piece::Char(c),
        })
        .collect()
}

/// Whether some expansion of `template` (its tokens replaced by what they can expand to) matches
/// the glob `pattern`, under case folding. A walk over pairs of positions, so it is exact for
/// these two kinds of pattern and linear in the product of their lengths.
pub fn may_expand_to(template: &str, pattern: &str) -> bool {
    let a = template_pieces(template);
    let b = pattern_pieces(pattern);
    let width = b.len() + 1;
    let mut seen = vec![false; (a.len() + 1) * width];
    let mut todo = vec![(0usize, 0usize)];
    while let Some((i, j)) = todo.pop() {
        let slot = i * width + j;
        if seen[slot] {
            continue;
        }
        seen[slot] = true;
        if i == a.len() && j == b.len() {
            return true;
        }
        let (x, y) = (a.get(i).copied(), b.get(j).copied());
        if x == Some(Piece::Token) {
            todo.push((i + 1, j));
        }
        if y == Some(Piece::Any) {
            todo.push((i, j + 1));
        }
        let (Some(x), Some(y)) = (x, y) else {
            continue;
        };
        match (x, y) {
            (Piece::Char(c), Piece::Char(d)) if c == d => todo.push((i + 1, j + 1)),
            (Piece::Char(_), Piece::One) => todo.push((i + 1, j + 1)),
            (Piece::Char(_), Piece::Any) => todo.push((i + 1, j)),
            (Piece::Token, Piece::Char(d)) if token_char(d) => todo.push((i, j + 1)),
            (Piece::Token, Piece::One) => todo.push((i, j + 1)),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PlanConfig {
        PlanConfig::default()
    }

    fn mapping(username: &str, groups: &[&str]) -> Entry {
        Entry::Mapping(std::sync::Arc::new(Mapping {
            arn: "arn:aws:iam::111122223333:role/x".into(),
            username: username.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }))
    }

    #[test]
    fn reserved_usernames_are_privileged_in_any_case() {
        for u in [
            "system:serviceaccount:kube-system:clusterrole-aggregation-controller",
            "system:kube-controller-manager",
            "system:node:ip-10-0-0-1.ec2.internal",
            "eks:cluster-admin",
            "AWS:x",
            "Amazon:x",
            "iam:x",
            "SYSTEM:anonymous",
            "system:node:{{EC2PrivateDNSName}}",
            "{{SessionName}}:x",
            "{{AccountID}}{{SessionName}}:y",
        ] {
            assert!(username_privilege(u).is_some(), "{u}");
        }
        for u in [
            "developer",
            "{{SessionName}}",
            "dev:{{SessionName}}",
            "{{AccountID}}-{{SessionNameRaw}}",
            "systemx:y",
            "sys tem:x",
        ] {
            assert!(username_privilege(u).is_none(), "{u}");
        }
    }

    #[test]
    fn privileged_groups_are_globs_and_templates_may_expand_to_them() {
        let c = config();
        let g = |gs: &[&str]| {
            group_privilege(&gs.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &c)
        };
        for gs in [
            &["system:masters"][..],
            &["dev", "System:Nodes"],
            &["eks:k8s-metrics"],
            &["system:node-proxier"],
            &["system:{{SessionName}}"],
            &["{{SessionName}}:masters"],
        ] {
            assert!(g(gs).is_some(), "{gs:?}");
        }
        for gs in [
            &["dev"][..],
            &["{{SessionName}}"],
            &["ops-{{AccountID}}"],
            &[],
        ] {
            assert!(g(gs).is_none(), "{gs:?}");
        }
        let literal = PlanConfig {
            privileged_groups: vec!["admins".into()],
            ..config()
        };
        let one = |x: &str| group_privilege(&[x.to_string()], &literal).is_some();
        assert!(one("ADMINS") && one("{{SessionName}}") && one("ad{{SessionName}}s"));
        assert!(!one("admins2") && !one("{{AccountID}}:admins"));
    }

    #[test]
    fn accounts_are_privileged_unless_allowed() {
        let mut c = config();
        let a = Entry::Account("111122223333".into());
        assert_eq!(
            privilege(&a, &c),
            Some(Privilege::Account("111122223333".into()))
        );
        c.allowed_accounts = vec!["111122223333".into()];
        assert_eq!(privilege(&a, &c), None);
        assert!(privilege(&mapping("dev", &["dev"]), &c).is_none());
        assert!(
            privilege(
                &mapping(
                    "system:node:{{EC2PrivateDNSName}}",
                    &["system:bootstrappers", "system:nodes"]
                ),
                &c
            )
            .is_some()
        );
    }

    #[test]
    fn expansion_is_exact_on_small_cases() {
        assert!(may_expand_to("abc", "a?c"));
        assert!(may_expand_to("abc", "*"));
        assert!(!may_expand_to("abc", "ab"));
        assert!(may_expand_to("{{AccessKeyID}}", "akia*"));
        assert!(!may_expand_to("{{AccessKeyID}}", "a b"));
        assert!(may_expand_to("", "*"));
        assert!(!may_expand_to("", "?"));
        assert!(may_expand_to("\u{212A}ube:x", "kube:*"));
    }

    proptest::proptest! {
        /// A template without tokens may expand to a pattern exactly when the glob matches it.
        #[test]
        fn literal_templates_agree_with_the_glob(t in "[a-c:*?]{0,6}", p in "[a-c:*?]{0,5}") {
            proptest::prop_assert_eq!(may_expand_to(&t.replace(['*', '?'], "x"), &p),
                glob_match(&p, &t.replace(['*', '?'], "x")));
        }

        /// Whatever a token is replaced with (within what a token can produce), a match of the
        /// expansion implies the template may expand to the pattern.
        #[test]
        fn expansions_are_covered(pre in "[a-c:]{0,3}", fill in "[a-c.@-]{0,3}", post in "[a-c:]{0,3}",
                                   p in "[a-c:*?]{0,5}") {
            let t = format!("{pre}{{{{SessionName}}}}{post}");
            let expanded = format!("{pre}{fill}{post}");
            if glob_match(&p, &expanded) {
                proptest::prop_assert!(may_expand_to(&t, &p));
            }
        }
    }
}
