//! How the authenticator maps one caller: mapRoles, then mapUsers, then mapAccounts.
use super::arn;
use super::read::AwsAuthRead;
use super::{Mapping, Section};

/// The entry EKS picks for a canonical ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub section: Section,
    pub line: usize,
    /// The entry as written (username and groups still templated). For an account hit, the
    /// username is the caller's canonical ARN and there are no groups.
    pub mapping: Mapping,
    /// Other entries EKS could have picked instead (mapUsers keys differing only in case).
    pub ambiguous_with: Vec<String>,
}

/// Looks a caller up exactly as the authenticator's ConfigMap mapper does.
pub fn lookup(read: &AwsAuthRead, canonical_arn: &str, account: &str) -> Option<Hit> {
    let key = arn::go_to_lower(canonical_arn);
    // mapRoles is keyed by Go's lower-cased ARN (Unicode: `K` KELVIN SIGN is `k`); the last
    // entry wins.
    if let Some(e) = read
        .roles
        .entries
        .iter()
        .rev()
        .find(|e| arn::go_to_lower(&e.value.arn) == key)
    {
        return Some(Hit {
            section: Section::MapRoles,
            line: e.line,
            mapping: e.value.clone(),
            ambiguous_with: Vec::new(),
        });
    }
    // mapUsers keeps keys as written (last wins among exact duplicates) and matches them
    // case-insensitively (Unicode folding: `ſ` is `s`), so keys differing only in case are a
    // coin toss.
    let folded = arn::fold_case(canonical_arn);
    let matches: Vec<_> = read
        .users
        .entries
        .iter()
        .filter(|e| arn::fold_case(&e.value.arn) == folded)
        .collect();
    if let Some(last) = matches.last() {
        let mut others: Vec<String> = matches
            .iter()
            .map(|e| e.value.arn.clone())
            .filter(|a| *a != last.value.arn)
            .collect();
        others.dedup();
        return Some(Hit {
            section: Section::MapUsers,
            line: last.line,
            mapping: last.value.clone(),
            ambiguous_with: others,
        });
    }
    read.accounts
        .entries
        .iter()
        .find(|e| e.value == account)
        .map(|e| Hit {
            section: Section::MapAccounts,
            line: e.line,
            mapping: Mapping {
                arn: canonical_arn.to_string(),
                username: canonical_arn.to_string(),
                groups: Vec::new(),
            },
            ambiguous_with: Vec::new(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::authmap::read::read_data;
    use std::collections::BTreeMap;

    fn read(pairs: &[(&str, &str)]) -> AwsAuthRead {
        read_data(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    #[test]
    fn roles_before_users_last_wins_accounts_last() {
        let r = read(&[
            (
                "mapRoles",
                "- rolearn: arn:aws:iam::111122223333:role/A\n  username: first\n- rolearn: arn:aws:iam::111122223333:role/a\n  username: second\n",
            ),
            (
                "mapUsers",
                "- userarn: arn:aws:iam::111122223333:role/A\n  username: user-side\n",
            ),
            ("mapAccounts", "- \"444455556666\"\n"),
        ]);
        let hit = lookup(&r, "arn:aws:iam::111122223333:role/A", "111122223333").unwrap();
        assert_eq!(
            (hit.section, hit.mapping.username.as_str(), hit.line),
            (Section::MapRoles, "second", 3)
        );
        let hit = lookup(&r, "arn:aws:iam::444455556666:role/X", "444455556666").unwrap();
        assert_eq!(hit.section, Section::MapAccounts);
        assert_eq!(hit.mapping.username, "arn:aws:iam::444455556666:role/X");
        assert!(lookup(&r, "arn:aws:iam::111122223333:role/B", "111122223333").is_none());
    }

    #[test]
    fn unicode_case_matches_as_go_does() {
        let r = read(&[
            (
                "mapRoles",
                "- rolearn: \"arn:aws:iam::111122223333:role/\\u212Aube-admin\"\n  username: kelvin\n",
            ),
            (
                "mapUsers",
                "- userarn: \"arn:aws:iam::111122223333:user/\\u017Fam\"\n  username: long-s\n",
            ),
        ]);
        let hit = lookup(
            &r,
            "arn:aws:iam::111122223333:role/kube-admin",
            "111122223333",
        )
        .unwrap();
        assert_eq!(hit.mapping.username, "kelvin");
        let hit = lookup(&r, "arn:aws:iam::111122223333:user/sam", "111122223333").unwrap();
        assert_eq!(hit.mapping.username, "long-s");
    }

    #[test]
    fn user_keys_differing_in_case_are_ambiguous() {
        let r = read(&[(
            "mapUsers",
            "- userarn: arn:aws:iam::111122223333:user/Bob\n  username: a\n- userarn: arn:aws:iam::111122223333:user/bob\n  username: b\n",
        )]);
        let hit = lookup(&r, "arn:aws:iam::111122223333:user/BOB", "111122223333").unwrap();
        assert_eq!(hit.ambiguous_with, ["arn:aws:iam::111122223333:user/Bob"]);
    }
}
