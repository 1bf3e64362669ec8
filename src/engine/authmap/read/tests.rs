use super::*;

fn roles(text: &str) -> SectionRead<Mapping> {
    read_mappings(Section::MapRoles, Some(text))
}

fn effects(r: &SectionRead<Mapping>) -> Vec<Effect> {
    r.findings.iter().map(|f| f.effect).collect()
}

const NODE_ROLE: &str = "- rolearn: arn:aws:iam::111122223333:role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n";

#[test]
fn eks_written_node_role_reads_exactly() {
    let r = roles(NODE_ROLE);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(
        r.values(),
        vec![Mapping {
            arn: "arn:aws:iam::111122223333:role/eks-node".into(),
            username: "system:node:{{EC2PrivateDNSName}}".into(),
            groups: vec!["system:bootstrappers".into(), "system:nodes".into()],
        }]
    );
}

// The semantics doc's mistakes table, row by row.

#[test]
fn syntax_error_drops_the_whole_key() {
    let r = roles("- rolearn: \"arn:aws:iam::111122223333:role/a\n  username: x\n");
    assert!(r.entries.is_empty());
    assert_eq!(effects(&r), [Effect::KeyDropped]);
    assert!(!r.readable());
}

#[test]
fn tab_indentation_drops_the_whole_key_with_its_line() {
    let text = format!("{NODE_ROLE}- rolearn: arn:aws:iam::111122223333:role/b\n\tusername: b\n");
    let r = roles(&text);
    assert!(r.entries.is_empty());
    let f = r.first_blocking().unwrap();
    assert_eq!((f.line, f.column, f.effect), (7, 1, Effect::KeyDropped));
    assert!(f.message.contains("tab"), "{f}");
}

#[test]
fn mapping_instead_of_list_drops_the_whole_key() {
    let r = roles("rolearn: arn:aws:iam::111122223333:role/a\nusername: a\n");
    assert!(r.entries.is_empty());
    assert_eq!(effects(&r), [Effect::KeyDropped]);
}

#[test]
fn unquoted_brace_template_drops_the_whole_key() {
    let text = format!(
        "{NODE_ROLE}- rolearn: arn:aws:iam::111122223333:role/a\n  username: {{{{SessionName}}}}\n"
    );
    let r = roles(&text);
    assert!(
        r.entries.is_empty(),
        "node role is gone too: {:?}",
        r.entries
    );
    assert!(effects(&r).contains(&Effect::KeyDropped));
    assert_eq!(r.first_blocking().unwrap().line, 7);
}

#[test]
fn entry_without_rolearn_is_dropped() {
    let r = roles("- rolarn: arn:aws:iam::111122223333:role/a\n  username: a\n");
    assert!(r.entries.is_empty());
    assert_eq!(effects(&r), [Effect::TextIgnored, Effect::EntryDropped]);
    assert!(r.findings[0].message.contains("rolarn"));
}

#[test]
fn scalar_list_element_is_dropped() {
    let text = format!("{NODE_ROLE}- arn:aws:iam::111122223333:role/a\n");
    let r = roles(&text);
    assert_eq!(r.entries.len(), 1);
    assert_eq!(effects(&r), [Effect::EntryDropped]);
    assert_eq!(r.findings[0].line, 6);
}

#[test]
fn wrong_type_fields_are_blanked_but_the_entry_stays() {
    let r = roles(
        "- rolearn: arn:aws:iam::111122223333:role/a\n  username: [a]\n  groups: system:masters\n",
    );
    assert_eq!(
        r.values(),
        vec![Mapping {
            arn: "arn:aws:iam::111122223333:role/a".into(),
            username: String::new(),
            groups: vec![]
        }]
    );
    assert_eq!(effects(&r), [Effect::FieldBlanked, Effect::FieldBlanked]);
    assert!(
        r.findings[1]
            .message
            .contains("groups: [\"system:masters\"]")
    );
}

#[test]
fn yaml11_specials_become_empty_strings() {
    for special in [
        "yes", "no", "on", "off", "y", "n", "true", "false", "null", "~", "123", "0x1F", "1e3",
        "0o17", "1_000",
    ] {
        let r = roles(&format!(
            "- rolearn: arn:aws:iam::111122223333:role/a\n  username: u\n  groups: [x, {special}]\n"
        ));
        assert_eq!(r.values()[0].groups, ["x", ""], "{special}");
        assert_eq!(effects(&r), [Effect::ValueCoerced], "{special}");
    }
    let r = roles(
        "- rolearn: arn:aws:iam::111122223333:role/a\n  username: \"on\"\n  groups: ['yes', \"123\"]\n",
    );
    assert!(r.findings.is_empty());
    assert_eq!(r.values()[0].username, "on");
    assert_eq!(r.values()[0].groups, ["yes", "123"]);
}

#[test]
fn plain_strings_that_only_start_like_numbers_stay_strings() {
    let r = roles(
        "- rolearn: arn:aws:iam::111122223333:role/a\n  username: 1password-bot\n  groups: [-admins, +x, .team]\n",
    );
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(r.values()[0].username, "1password-bot");
    assert_eq!(r.values()[0].groups, ["-admins", "+x", ".team"]);
}

#[test]
fn text_after_a_document_marker_is_ignored() {
    for marker in ["---", "..."] {
        let text = format!(
            "{NODE_ROLE}{marker}\n- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n"
        );
        let r = roles(&text);
        assert_eq!(r.entries.len(), 1, "{marker}");
        assert_eq!(effects(&r), [Effect::TextIgnored], "{marker}");
    }
}

#[test]
fn spaces_inside_a_quoted_arn_are_kept_and_never_match() {
    let r = roles("- rolearn: \" arn:aws:iam::111122223333:role/a \"\n  username: a\n");
    assert_eq!(r.values()[0].arn, " arn:aws:iam::111122223333:role/a ");
    assert_eq!(effects(&r), [Effect::Warning]);
    assert!(r.readable());
}

#[test]
fn empty_forms_map_nobody_without_error() {
    for text in ["", "\"\"", "''", "null", "~", "[]", "\n"] {
        let r = roles(text);
        assert!(
            r.entries.is_empty() && r.findings.is_empty(),
            "{text:?}: {:?}",
            r.findings
        );
    }
    let a = read_accounts(Some("[]"));
    assert!(a.entries.is_empty() && a.findings.is_empty());
}

#[test]
fn keys_match_case_insensitively_with_a_warning() {
    let r = roles("- roleARN: arn:aws:iam::111122223333:role/a\n  UserName: a\n");
    assert_eq!(r.values()[0].username, "a");
    assert_eq!(effects(&r), [Effect::Warning, Effect::Warning]);
    let r = roles(
        "- rolearn: arn:aws:iam::111122223333:role/a\n  roleArn: arn:aws:iam::111122223333:role/b\n",
    );
    assert!(!r.readable());
}

#[test]
fn anchors_aliases_tags_and_block_scalars_are_not_vouched_for() {
    for text in [
        "- &n\n  rolearn: arn:aws:iam::111122223333:role/a\n- *n\n",
        "- rolearn: !!str arn:aws:iam::111122223333:role/a\n",
        "- rolearn: |\n    arn:aws:iam::111122223333:role/a\n",
    ] {
        assert!(!roles(text).readable(), "{text}");
    }
}

#[test]
fn role_paths_and_duplicates_are_warned_about() {
    let r = roles(
        "- rolearn: arn:aws:iam::111122223333:role/team/a\n- rolearn: arn:aws:iam::111122223333:role/b\n- rolearn: arn:aws:iam::111122223333:role/B\n",
    );
    assert!(r.readable());
    assert_eq!(r.findings.len(), 2);
    assert!(r.findings[0].message.contains("role/a"));
    assert!(r.findings[1].message.contains("last one"));
    let u = read_mappings(
        Section::MapUsers,
        Some(
            "- userarn: arn:aws:iam::111122223333:user/a\n- userarn: arn:aws:iam::111122223333:user/A\n",
        ),
    );
    assert!(u.findings[0].message.contains("random"));
}

#[test]
fn accounts_keep_source_text_and_coerce_null() {
    let a = read_accounts(Some("- 111122223333\n- \"444455556666\"\n- ~\n"));
    assert_eq!(a.values(), ["111122223333", "444455556666", ""]);
    assert_eq!(
        a.findings.iter().map(|f| f.effect).collect::<Vec<_>>(),
        [Effect::ValueCoerced]
    );
}

#[test]
fn comments_and_terraform_style_quoting_read_exactly() {
    let text = "# platform team\n- rolearn: 'arn:aws:iam::111122223333:role/a' # admins\n  username: \"a:{{SessionName}}\"\n  groups:\n    - \"system:masters\"\n";
    let r = roles(text);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(
        r.values(),
        vec![Mapping {
            arn: "arn:aws:iam::111122223333:role/a".into(),
            username: "a:{{SessionName}}".into(),
            groups: vec!["system:masters".into()],
        }]
    );
}

// go-yaml v2's limits (see goyaml.rs): text a YAML 1.2 parser reads but EKS does not.

#[test]
fn yaml12_only_escape_makes_the_key_dropped() {
    let text = r#"'[{"rolearn":"arn:aws:iam::111122223333:role\/old-admin","username":"old-admin","groups":["system:masters"]}]'"#;
    // Single-quoted: the backslash is literal there, so the text is one scalar, not a list.
    assert!(!roles(text).readable());
    let text = r#"[{"rolearn":"arn:aws:iam::111122223333:role\/old-admin","username":"old-admin","groups":["system:masters"]}]"#;
    let r = roles(text);
    assert!(r.entries.is_empty(), "{:?}", r.entries);
    let f = r.first_blocking().unwrap();
    assert_eq!((f.line, f.effect), (1, Effect::KeyDropped));
    assert!(
        f.message.contains("\\/") && f.message.contains("mapRoles"),
        "{f}"
    );
}

#[test]
fn directives_leading_end_markers_and_raw_controls_are_unreadable() {
    for (text, line) in [
        (format!("...\n{NODE_ROLE}"), 1),
        (format!("%YAML 1.2\n---\n{NODE_ROLE}"), 1),
        (
            format!("%TAG !e! tag:example.com,2000:\n---\n{NODE_ROLE}"),
            1,
        ),
        (format!("{NODE_ROLE}# note \u{7}\n"), 6),
        (format!("# \u{fffe}\n{NODE_ROLE}"), 1),
        (format!("{NODE_ROLE}- rolearn: a\u{85}b\n"), 6),
        (
            "- rolearn: arn:aws:iam::111122223333:role/a # x\u{2028}- y\n".to_string(),
            1,
        ),
    ] {
        let r = roles(&text);
        assert!(!r.readable(), "{text:?}");
        assert_eq!(
            r.first_blocking().unwrap().line,
            line,
            "{text:?}: {:?}",
            r.findings
        );
    }
    // Escapes of the same characters are fine.
    let r =
        roles("- rolearn: \"arn:aws:iam::111122223333:role/a\"\n  username: \"a\\ufffe\\N\\L\"\n");
    assert!(r.readable(), "{:?}", r.findings);
    assert_eq!(r.values()[0].username, "a\u{fffe}\u{85}\u{2028}");
}

#[test]
fn unicode_line_breaks_and_folding_inside_values_are_unreadable() {
    for text in [
        "- rolearn: arn:aws:iam::111122223333:role/a\n  username: 'alice\u{2028}  ops'\n",
        "- rolearn: arn:aws:iam::111122223333:role/a\n  username: \"alice\n    ops\"\n",
        "- rolearn: arn:aws:iam::111122223333:role/a\n  username: alice\n    ops\n",
    ] {
        let r = roles(text);
        assert!(!r.readable(), "{text:?}");
        assert_eq!(r.first_blocking().unwrap().line, 2, "{text:?}");
    }
}

#[test]
fn findings_echo_bounded_values() {
    let long = "x".repeat(10_000);
    let r = roles(&format!(
        "- rolearn: \"arn:aws:iam::111122223333:role/{long} \"\n  username: {long}_1e3\n- {long}: 1\n"
    ));
    assert!(!r.findings.is_empty());
    for f in &r.findings {
        assert!(f.to_string().len() < 600, "{}", f.to_string().len());
    }
}

#[test]
fn deep_nesting_makes_the_key_unreadable_not_a_crash() {
    for text in [
        format!("{}x", "- ".repeat(20_000)),
        format!("- {}x", "[".repeat(20_000)),
        format!(
            "- a:\n{}",
            (1..200)
                .map(|i| format!("{}b{i}:\n", " ".repeat(i * 2)))
                .collect::<String>()
        ),
    ] {
        let r = roles(&text);
        assert!(!r.readable(), "{:?}", r.findings);
        let f = r.first_blocking().unwrap();
        assert!(
            f.message.contains("nested more than 64 deep") || f.message.contains("recursion limit"),
            "{f}"
        );
        assert!(f.line >= 1 && f.column > 1, "{f}");
    }
}

#[test]
fn what_the_authenticator_skips_maps_nobody() {
    for text in ["``", "  ``\n", " \"\" ", "''", "\n''\n"] {
        let r = roles(text);
        assert!(r.findings.is_empty() && r.entries.is_empty(), "{text:?}");
    }
}

/// An empty quoted string that is not the whole text is decoded, as a string, and the
/// authenticator drops the key: unreadable here, in every key.
#[test]
fn an_empty_quoted_string_beside_anything_drops_the_key() {
    for text in [
        "--- \"\"",
        "---\n\"\"",
        "--- ''",
        "---\n''",
        "'' # note",
        "\"\" ...",
    ] {
        for section in [Section::MapRoles, Section::MapUsers] {
            let r = read_mappings(section, Some(text));
            let f = r
                .first_blocking()
                .unwrap_or_else(|| panic!("{text:?} readable"));
            assert_eq!(f.effect, Effect::KeyDropped, "{text:?}: {f}");
        }
        assert!(!read_accounts(Some(text)).readable(), "{text:?}");
    }
    for text in ["---", "--- ~", "--- null", "--- []"] {
        assert!(
            roles(text).readable() && roles(text).entries.is_empty(),
            "{text:?}"
        );
    }
}

#[test]
fn wrong_case_top_level_keys_are_reported() {
    let data = BTreeMap::from([("MapRoles".to_string(), NODE_ROLE.to_string())]);
    let r = read_data(&data);
    assert!(r.roles.entries.is_empty());
    assert_eq!(r.notes.len(), 1);
    assert!(r.notes[0].message.contains("rename it to `mapRoles`"));
}
