//! Property tests of the engine: what is rendered reads back exactly, unowned entries are never
//! lost, the plan is idempotent, and the reader never panics.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;

use aws_auth_operator::api::{IamAccessGrant, IamAccessGrantSpec, Reason};
use aws_auth_operator::engine::authmap::read::{read_accounts, read_data, read_mappings};
use aws_auth_operator::engine::authmap::render::{render_accounts, render_mappings};
use aws_auth_operator::engine::authmap::{Mapping, Section};
use aws_auth_operator::engine::plan::{PlanConfig, plan};

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+=,.@_-]{1,20}"
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9:._-]{0,15}",
        "[a-z]{1,5}:\\{\\{SessionName\\}\\}",
        "\\{\\{AccountID\\}\\}-[a-z]{1,5}",
        Just("on".to_string()),
        Just("123".to_string()),
        Just("system:masters".to_string()),
    ]
}

fn spec() -> impl Strategy<Value = IamAccessGrantSpec> {
    let arn_grant = (
        prop_oneof![Just("role"), Just("user")],
        name(),
        text(),
        prop::collection::vec(text(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(kind, n, username, groups, adopt)| IamAccessGrantSpec {
            arn: Some(format!("arn:aws:iam::111122223333:{kind}/{n}")),
            username: Some(username),
            groups,
            adopt,
            ..Default::default()
        });
    let account = "[0-9]{12}".prop_map(|a| IamAccessGrantSpec {
        account: Some(a),
        ..Default::default()
    });
    prop_oneof![4 => arn_grant, 1 => account]
}

fn grants() -> impl Strategy<Value = Vec<IamAccessGrant>> {
    prop::collection::vec((spec(), 0i64..5), 0..12).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (s, age))| {
                let mut g = IamAccessGrant::new(&format!("g{i}"), s);
                g.metadata.creation_timestamp =
                    Some(Time(Timestamp::from_second(1_700_000_000 + age).unwrap()));
                g
            })
            .collect()
    })
}

/// Unowned role entries written the way EKS and eksctl write them (plain, unquoted).
fn unowned_roles() -> impl Strategy<Value = Vec<Mapping>> {
    prop::collection::vec(("[a-z][a-z0-9-]{0,12}", "[a-z][a-z0-9-]{0,8}"), 0..4).prop_map(|v| {
        v.into_iter()
            .map(|(n, u)| Mapping {
                arn: format!("arn:aws:iam::111122223333:role/{n}"),
                username: format!("system:node:{u}"),
                groups: vec!["system:bootstrappers".into(), "system:nodes".into()],
            })
            .collect()
    })
}

fn eks_style(entries: &[Mapping]) -> String {
    entries
        .iter()
        .map(|m| {
            format!(
                "- groups:\n  - {}\n  rolearn: {}\n  username: {}\n",
                m.groups.join("\n  - "),
                m.arn,
                m.username
            )
        })
        .collect()
}

fn configmap(
    data: BTreeMap<String, String>,
    annotations: Option<BTreeMap<String, String>>,
) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some("aws-auth".into()),
            namespace: Some("kube-system".into()),
            annotations,
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn plan_writes_exactly_the_applied_grants_keeps_unowned_and_is_idempotent(
        gs in grants(), unowned in unowned_roles()
    ) {
        let mut data = BTreeMap::new();
        if !unowned.is_empty() {
            data.insert("mapRoles".to_string(), eks_style(&unowned));
        }
        let current = configmap(data, None);
        let config = PlanConfig {
            privileged_principals: vec!["*".into()],
            // Grants come and go at random here; the breaker has its own tests.
            max_removals: usize::MAX,
            ..PlanConfig::default()
        };
        let p = plan(&gs, Some(&current), &config).unwrap();
        let after = read_data(&p.data);
        prop_assert!(after.roles.readable() && after.users.readable() && after.accounts.readable());

        // Unowned entries: all there, in their order, unless a grant adopted one.
        let adopted: Vec<String> = p.verdicts.iter().filter(|v| v.reason == Reason::Applied)
            .filter_map(|v| v.canonical_arn.clone()).map(|a| a.to_ascii_lowercase()).collect();
        let kept: Vec<&Mapping> = unowned.iter().filter(|m| !adopted.contains(&m.arn.to_ascii_lowercase())).collect();
        let roles = after.roles.values();
        let mut it = roles.iter();
        for m in &kept {
            prop_assert!(it.any(|r| r == *m), "unowned entry lost or reordered: {m:?}");
        }

        // Managed entries: exactly one per applied grant, as the grant says.
        let applied: Vec<&IamAccessGrant> = gs.iter()
            .filter(|g| p.verdict(g.metadata.name.as_deref().unwrap()).unwrap().reason == Reason::Applied)
            .collect();
        let map = after.auth_map();
        let managed = map.roles.len() + map.users.len() + map.accounts.len() - kept.len();
        prop_assert_eq!(managed, applied.len());
        for g in applied {
            if let Some(a) = &g.spec.account {
                prop_assert!(map.accounts.contains(a));
            } else {
                let want = Mapping { arn: g.spec.arn.clone().unwrap(), username: g.spec.username.clone().unwrap(), groups: g.spec.groups.clone() };
                prop_assert!(map.roles.contains(&want) || map.users.contains(&want), "missing {want:?}");
            }
        }

        // Idempotent.
        let written = p.configmap(Some(&current), "kube-system", "aws-auth", true);
        let again = plan(&gs, Some(&written), &config).unwrap();
        prop_assert!(!again.changed, "second plan changed: {:?}", again.diff);
        prop_assert_eq!(&again.verdicts, &p.verdicts);
    }

    #[test]
    fn any_strings_render_and_read_back_exactly(
        entries in prop::collection::vec((any::<String>(), any::<String>(), prop::collection::vec(any::<String>(), 0..3)), 0..4),
        accounts in prop::collection::vec(any::<String>(), 0..4),
    ) {
        let entries: Vec<Mapping> = entries.into_iter()
            .filter(|(a, _, _)| !a.is_empty())
            .map(|(arn, username, groups)| Mapping { arn, username, groups })
            .collect();
        prop_assert!(render_mappings(Section::MapUsers, &entries).is_ok());
        prop_assert!(render_accounts(&accounts).is_ok());
    }

    #[test]
    fn reader_never_panics_on_arbitrary_text(s in any::<String>()) {
        let _ = read_mappings(Section::MapRoles, Some(&s));
        let _ = read_accounts(Some(&s));
    }

    #[test]
    fn reader_never_panics_on_yaml_shaped_text(
        parts in prop::collection::vec(prop_oneof![
            Just("- "), Just("rolearn: "), Just("username: "), Just("groups:"), Just("\n"), Just("  "),
            Just("\t"), Just("{{SessionName}}"), Just("["), Just("]"), Just("{"), Just("}"), Just("\""),
            Just("'"), Just("&a "), Just("*a"), Just("!!str "), Just("---"), Just("..."), Just("on"),
            Just("123"), Just("~"), Just("# c"), Just(": "), Just("|"), Just(">"), Just(","),
        ], 0..40)
    ) {
        let s: String = parts.concat();
        let r = read_mappings(Section::MapRoles, Some(&s));
        // Whatever the text, entries are only reported for a key EKS does not drop.
        if r.findings.iter().any(|f| f.effect == aws_auth_operator::engine::authmap::read::Effect::KeyDropped) {
            prop_assert!(r.entries.is_empty());
        }
    }
}

/// Pieces of text where a YAML 1.2 parser and go-yaml v2 (EKS) part ways, among YAML structure.
fn hostile_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("- "),
            Just("rolearn: "),
            Just("userarn: "),
            Just("username: "),
            Just("groups:"),
            Just("\n"),
            Just("  "),
            Just("\""),
            Just("'"),
            Just("["),
            Just("]"),
            Just(", "),
            Just("# c"),
            Just("arn:aws:iam::111122223333:role/a"),
            Just("system:masters"),
            Just("\u{0}"),
            Just("\u{7}"),
            Just("\u{1b}"),
            Just("\u{7f}"),
            Just("\u{9f}"),
            Just("\u{85}"),
            Just("\u{2028}"),
            Just("\u{2029}"),
            Just("\u{feff}"),
            Just("\u{fffe}"),
            Just("\u{ffff}"),
            Just("%YAML 1.2\n"),
            Just("%YAML 1.1\n"),
            Just("%TAG ! tag:x,2000:\n"),
            Just("...\n"),
            Just("---\n"),
            Just("...x"),
            Just("\\/"),
            Just("\\'"),
            Just("\\u2028"),
            Just("\\N"),
            Just("\\x41"),
            Just("\\ufffe"),
            Just("\\\n"),
            Just("\u{212A}"),
            Just("\u{17F}"),
            Just("\r\n"),
            Just("\r"),
            Just("on"),
            Just("``"),
            Just("\t"),
        ],
        0..30,
    )
    .prop_map(|v| v.concat())
}

/// go-yaml v2's limits, stated independently of the reader: text that breaks one of them can
/// never be read exactly.
fn breaks_go_yaml_limits(text: &str) -> bool {
    let printable = |c: char| matches!(c as u32, 0x09 | 0x0A | 0x0D | 0x20..=0x7E | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF);
    text.chars().any(|c| !printable(c) || c == '\u{feff}')
        || text
            .lines()
            .any(|l| l.starts_with('%') || l.trim_end() == "...")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_key_is_read_exactly_or_reported_unreadable(text in hostile_text()) {
        // The authenticator skips these before parsing (Go's TrimSpace, Unicode spaces included).
        if matches!(text.trim(), "" | "``" | "\"\"" | "''") {
            prop_assert!(read_mappings(Section::MapRoles, Some(&text)).entries.is_empty());
            return Ok(());
        }
        for section in [Section::MapRoles, Section::MapUsers] {
            let r = read_mappings(section, Some(&text));
            if !r.readable() {
                continue;
            }
            prop_assert!(!breaks_go_yaml_limits(&text), "{text:?} read as {:?}", r.values());
            // Read exactly: the rendering of what was read reads back the same.
            let rendered = render_mappings(section, &r.values());
            prop_assert!(rendered.is_ok(), "{text:?}: {rendered:?}");
            let back = read_mappings(section, Some(&rendered.unwrap()));
            prop_assert!(back.readable());
            prop_assert_eq!(back.values(), r.values());
        }
        let a = read_accounts(Some(&text));
        if a.readable() {
            prop_assert!(!breaks_go_yaml_limits(&text), "{text:?} read as {:?}", a.values());
            let rendered = render_accounts(&a.values());
            prop_assert!(rendered.is_ok(), "{text:?}: {rendered:?}");
            prop_assert_eq!(read_accounts(Some(&rendered.unwrap())).values(), a.values());
        }
    }
}
