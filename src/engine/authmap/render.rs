//! The renderer: block YAML that the authenticator reads back exactly, verified before it is returned.
use std::fmt::Write;
use std::sync::Arc;

use super::goyaml;
use super::read::{read_accounts, read_mappings_in_full};
use super::{Mapping, Section};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rendered {section} does not read back as intended ({detail}); nothing is written")]
pub struct RenderMismatch {
    pub section: Section,
    pub detail: String,
}

/// A YAML double-quoted scalar. Escapes, with YAML 1.1's escapes only, every character go-yaml
/// would refuse (outside YAML 1.1's printable set) or read as a line break, so no value can
/// change the document's shape or make EKS drop the key.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(quoted_len(s));
    quote_into(&mut out, s);
    out
}

/// [`quote`], appended to `out`.
fn quote_into(out: &mut String, s: &str) {
    out.push('"');
    // Most values are printable ASCII with nothing to escape: copied whole.
    if s.bytes()
        .all(|b| matches!(b, 0x20..=0x7e) && b != b'"' && b != b'\\')
    {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if goyaml::needs_escape(c) && (c as u32) > 0xFFFF => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
            c if goyaml::needs_escape(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One `mapRoles`/`mapUsers` entry; a key's text is its entries' texts in order.
pub fn mapping_text(section: Section, e: &Mapping) -> String {
    // Sized for strings that need no escape (exact for those, which is nearly all of them),
    // without scanning them twice; one that needed escapes is shrunk after: thousands of these
    // are kept between passes.
    let mut out = String::with_capacity(text_len_with(section, e, |s| 2 + s.len()));
    out.push_str("- ");
    out.push_str(section.arn_field());
    out.push_str(": ");
    quote_into(&mut out, &e.arn);
    if !e.username.is_empty() {
        out.push_str("\n  username: ");
        quote_into(&mut out, &e.username);
    }
    if !e.groups.is_empty() {
        out.push_str("\n  groups:");
        for g in &e.groups {
            out.push_str("\n    - ");
            quote_into(&mut out, g);
        }
    }
    out.push('\n');
    if out.capacity() > out.len() {
        out.shrink_to_fit();
    }
    out
}

/// One `mapAccounts` entry.
pub fn account_text(account: &str) -> String {
    format!("- {}\n", quote(account))
}

/// Renders `mapRoles` or `mapUsers` and proves the authenticator reads back exactly `entries`.
pub fn render_mappings(section: Section, entries: &[Mapping]) -> Result<String, RenderMismatch> {
    let texts: Vec<String> = entries.iter().map(|e| mapping_text(section, e)).collect();
    let shared: Vec<Arc<Mapping>> = entries.iter().cloned().map(Arc::new).collect();
    let pairs: Vec<(&str, &Arc<Mapping>)> = texts.iter().map(String::as_str).zip(&shared).collect();
    prove_mapping_texts(section, &pairs)?;
    Ok(texts.concat())
}

/// What the re-read check needs of one entry text: its fingerprint in the renderer's memo and
/// whether the layout's reader reads it as its mapping. Worked out where the text is made (a
/// first plan makes thousands, each grant's on whichever thread decides it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TextProof {
    key: u128,
    in_layout: bool,
}

impl TextProof {
    pub(crate) fn new(section: Section, text: &str, m: &Mapping) -> Self {
        debug_assert_eq!(text, mapping_text(section, m));
        TextProof {
            key: super::memo::text_key(text),
            in_layout: super::canonical::reads_as(section, text, m),
        }
    }
}

/// Proves that entry texts, each the [`mapping_text`] of its mapping, read back as exactly their
/// mappings wherever they stand in a key.
pub(crate) fn prove_mapping_texts(
    section: Section,
    entries: &[(&str, &Arc<Mapping>)],
) -> Result<(), RenderMismatch> {
    let proofs: Vec<(TextProof, &str, &Arc<Mapping>)> = entries
        .iter()
        .map(|&(t, m)| (TextProof::new(section, t, m), t, m))
        .collect();
    prove_texts(section, &proofs)
}

/// [`prove_mapping_texts`] with each text's [`TextProof`] worked out already. Texts proven before
/// (see [`super::memo`]) are not looked at again.
pub(crate) fn prove_texts(
    section: Section,
    entries: &[(TextProof, &str, &Arc<Mapping>)],
) -> Result<(), RenderMismatch> {
    // Only the entries not verified yet are read back: each entry text stands alone. One the
    // layout's reader read is proven; any other goes to the full reader, which then says where
    // it differs.
    let new = super::memo::unverified(section, entries, |(p, _, m)| (p.key, m));
    let odd: Vec<(&str, &Arc<Mapping>)> = new
        .iter()
        .filter(|(p, _, _)| !p.in_layout)
        .map(|&&(_, t, m)| (t, m))
        .collect();
    if !odd.is_empty() {
        let text: String = odd.iter().map(|(t, _)| *t).collect();
        let want: Vec<Mapping> = odd.iter().map(|(_, m)| Mapping::clone(m)).collect();
        let back = read_mappings_in_full(section, Some(&text));
        verify(section, back.readable(), &back.values(), &want)?;
    }
    super::memo::remember(
        section,
        new.into_iter().map(|(p, _, m)| (p.key, Arc::clone(m))),
    );
    Ok(())
}

/// The length of [`quote`]'s output, without building it.
pub fn quoted_len(s: &str) -> usize {
    if s.is_ascii() {
        return 2 + s
            .bytes()
            .map(|b| match b {
                b'"' | b'\\' => 2,
                0..=0x1f | 0x7f => 6,
                _ => 1,
            })
            .sum::<usize>();
    }
    2 + s
        .chars()
        .map(|c| match c {
            '"' | '\\' => 2,
            c if goyaml::needs_escape(c) && (c as u32) > 0xFFFF => 10,
            c if goyaml::needs_escape(c) => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

/// The length of [`mapping_text`]'s output, without building it.
pub fn mapping_text_len(section: Section, e: &Mapping) -> usize {
    text_len_with(section, e, quoted_len)
}

/// The length of [`mapping_text`]'s output with each string quoted in `quoted(s)` bytes.
fn text_len_with(section: Section, e: &Mapping, quoted: impl Fn(&str) -> usize) -> usize {
    let mut n = 5 + section.arn_field().len() + quoted(&e.arn);
    if !e.username.is_empty() {
        n += 13 + quoted(&e.username);
    }
    if !e.groups.is_empty() {
        n += 10 + e.groups.iter().map(|g| 7 + quoted(g)).sum::<usize>();
    }
    n
}

/// Renders `mapAccounts` and proves it reads back exactly.
pub fn render_accounts(accounts: &[String]) -> Result<String, RenderMismatch> {
    let out: String = accounts.iter().map(|a| account_text(a)).collect();
    let back = read_accounts(Some(&out));
    verify(
        Section::MapAccounts,
        back.readable(),
        &back.values(),
        accounts,
    )?;
    Ok(out)
}

fn verify<T: PartialEq + std::fmt::Debug>(
    section: Section,
    readable: bool,
    got: &[T],
    want: &[T],
) -> Result<(), RenderMismatch> {
    if !readable {
        return Err(RenderMismatch {
            section,
            detail: "the reader reports a problem in it".into(),
        });
    }
    if got != want {
        let i = got.iter().zip(want).position(|(g, w)| g != w);
        return Err(RenderMismatch {
            section,
            detail: match i {
                Some(i) => format!(
                    "entry {} reads as {:?}, intended {:?}",
                    i + 1,
                    got[i],
                    want[i]
                ),
                None => format!("{} entries read back, {} intended", got.len(), want.len()),
            },
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engine::authmap::read::read_mappings;

    pub(crate) fn m(arn: &str, username: &str, groups: &[&str]) -> Mapping {
        Mapping {
            arn: arn.into(),
            username: username.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn renders_block_lists_with_every_string_double_quoted() {
        let text = render_mappings(
            Section::MapRoles,
            &[m(
                "arn:aws:iam::111122223333:role/a",
                "admin:{{SessionName}}",
                &["system:masters", "on"],
            )],
        )
        .unwrap();
        assert_eq!(
            text,
            "- rolearn: \"arn:aws:iam::111122223333:role/a\"\n  username: \"admin:{{SessionName}}\"\n  groups:\n    - \"system:masters\"\n    - \"on\"\n"
        );
    }

    #[test]
    fn hostile_strings_survive_the_round_trip() {
        let nasty = [
            "a\"b",
            "back\\slash",
            "line\nbreak",
            "tab\there",
            "---",
            "# not a comment",
            "{{x}}: y",
            "\u{2028}",
            "\u{85}\u{2029}\u{feff}",
            "nonchar\u{fffe}\u{ffff}",
            "\u{0}\u{7f}\u{9f}",
            "ünï",
            " lead",
        ];
        let entries: Vec<Mapping> = nasty.iter().map(|s| m(s, s, &[s])).collect();
        render_mappings(Section::MapUsers, &entries).unwrap();
        let accounts: Vec<String> = nasty.iter().map(|s| s.to_string()).collect();
        render_accounts(&accounts).unwrap();
    }

    #[test]
    fn characters_go_yaml_refuses_are_escaped() {
        let text = render_mappings(
            Section::MapUsers,
            &[m(
                "arn:aws:iam::111122223333:user/a",
                "a\u{fffe}b\u{85}",
                &["\u{ffff}"],
            )],
        )
        .unwrap();
        assert!(text.contains(r#""a\ufffeb\u0085""#), "{text}");
        assert!(text.contains(r#""\uffff""#), "{text}");
        assert!(text.chars().all(|c| !goyaml::needs_escape(c) || c == '\n'));
    }

    #[test]
    fn lengths_are_computed_without_rendering() {
        for e in [
            m("arn:aws:iam::111122223333:user/a", "", &[]),
            m(
                "a\"b\\c\u{0}\u{fffe}\u{10ffff}é",
                "u{{x}}\n",
                &["g", "h\u{85}"],
            ),
        ] {
            for s in [Section::MapRoles, Section::MapUsers] {
                assert_eq!(mapping_text_len(s, &e), mapping_text(s, &e).len(), "{e:?}");
            }
        }
    }

    #[test]
    fn a_key_of_verified_entries_reads_without_parsing_and_the_same() {
        let entries: Vec<Mapping> = (0..3)
            .map(|i| {
                m(
                    &format!("arn:aws:iam::111122223333:role/memo-{i}"),
                    "u",
                    &["g"],
                )
            })
            .collect();
        let text = render_mappings(Section::MapRoles, &entries).unwrap();
        let known = super::super::memo::known(Section::MapRoles, &text).expect("known");
        assert_eq!(
            known.iter().map(|(line, _)| *line).collect::<Vec<_>>(),
            [1, 5, 9]
        );
        assert_eq!(
            read_mappings(Section::MapRoles, Some(&text)).values(),
            entries
        );
        // Anything else in the text, and it is read in full.
        assert!(super::super::memo::known(Section::MapRoles, &format!("# c\n{text}")).is_none());
        assert!(
            super::super::memo::known(Section::MapRoles, &text.replace("memo-1", "memo-9"))
                .is_none()
        );
    }

    #[test]
    fn empty_username_and_groups_are_omitted() {
        let text = render_mappings(
            Section::MapUsers,
            &[m("arn:aws:iam::111122223333:user/a", "", &[])],
        )
        .unwrap();
        assert_eq!(text, "- userarn: \"arn:aws:iam::111122223333:user/a\"\n");
    }
}
