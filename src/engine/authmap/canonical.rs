//! The renderer's own layout, read without a YAML parser. Every `mapRoles`/`mapUsers` text the
//! renderer writes is a block list of entries in one fixed layout ([`super::render::mapping_text`]):
//!
//! ```text
//! - rolearn: "..."          (userarn in mapUsers)
//!   username: "..."         (left out when empty)
//!   groups:                 (left out when there are none)
//!     - "..."
//! ```
//!
//! with every string double-quoted, escaped only as [`super::render::quote`] escapes (`\"`, `\\`,
//! and `\u`/`\U` with lower-case hex for exactly the characters that need it). In that layout
//! go-yaml v2, and so EKS, reads each string as its quoted characters with the escapes decoded:
//! no plain scalar to resolve, no raw line break to fold, nothing outside YAML 1.1's printable
//! set. So it is read here byte by byte, tens of times faster than a parse; the first re-read of
//! thousands of rendered entries is what this is for. Text that is not exactly that layout is
//! declined (`None`) and read in full by [`super::read`]: this never guesses. Tests check that
//! whatever this accepts, the full reader reads the same and finds nothing that blocks a rewrite.
use std::borrow::Cow;

use super::goyaml::needs_escape;
use super::{Mapping, Section};

/// The entries of a whole key in the renderer's layout, with the line each starts on; `None` when
/// any part of the text is not in it.
pub(crate) fn read(section: Section, text: &str) -> Option<Vec<(usize, Mapping)>> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut line = 1;
    while !rest.is_empty() {
        let (entry, lines, len) = entry(section, rest)?;
        let mapping = Mapping {
            arn: entry.arn.into_owned(),
            username: entry.username.into_owned(),
            groups: entry.groups.into_iter().map(Cow::into_owned).collect(),
        };
        out.push((line, mapping));
        line += lines;
        rest = &rest[len..];
    }
    (!out.is_empty()).then_some(out)
}

/// Whether `text` is exactly one entry in the renderer's layout that reads as `m`.
pub(crate) fn reads_as(section: Section, text: &str, m: &Mapping) -> bool {
    entry(section, text).is_some_and(|(e, _, len)| {
        len == text.len()
            && e.arn == m.arn.as_str()
            && e.username == m.username.as_str()
            && e.groups.len() == m.groups.len()
            && e.groups.iter().zip(&m.groups).all(|(a, b)| a == b.as_str())
    })
}

/// One entry's strings, borrowed from the text where no escape had to be decoded.
struct Entry<'t> {
    arn: Cow<'t, str>,
    username: Cow<'t, str>,
    groups: Vec<Cow<'t, str>>,
}

/// The entry at the start of `text`: its strings, how many lines it spans and its length.
fn entry(section: Section, text: &str) -> Option<(Entry<'_>, usize, usize)> {
    let mut rest = text
        .strip_prefix("- ")?
        .strip_prefix(section.arn_field())?
        .strip_prefix(": ")?;
    let arn;
    (arn, rest) = quoted_line(rest)?;
    // The full reader drops an entry without an ARN: not this layout's to read.
    if arn.is_empty() {
        return None;
    }
    let mut lines = 1;
    let mut username = Cow::Borrowed("");
    if let Some(r) = rest.strip_prefix("  username: ") {
        (username, rest) = quoted_line(r)?;
        // The renderer leaves an empty username out.
        if username.is_empty() {
            return None;
        }
        lines += 1;
    }
    let mut groups = Vec::new();
    if let Some(mut r) = rest.strip_prefix("  groups:\n") {
        lines += 1;
        while let Some(item) = r.strip_prefix("    - ") {
            let group;
            (group, r) = quoted_line(item)?;
            groups.push(group);
            lines += 1;
        }
        // The renderer leaves an empty list out.
        if groups.is_empty() {
            return None;
        }
        rest = r;
    }
    // What follows must be the next entry or the end: anything else (a comment, a key of
    // another indentation, a blank line) is for the full reader.
    if !(rest.is_empty() || rest.starts_with("- ")) {
        return None;
    }
    Some((
        Entry {
            arn,
            username,
            groups,
        },
        lines,
        text.len() - rest.len(),
    ))
}

/// A double-quoted string that ends its line: its value and the text after the line break.
fn quoted_line(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let (value, rest) = quoted(text)?;
    Some((value, rest.strip_prefix('\n')?))
}

/// A double-quoted string as the renderer writes it: its value and the text after the closing
/// quote.
fn quoted(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let body = text.strip_prefix('"')?;
    let bytes = body.as_bytes();
    // Most values are printable ASCII without escapes: borrowed as they are.
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => return Some((Cow::Borrowed(&body[..i]), &body[i + 1..])),
            b'\\' => break,
            0x20..=0x7e => i += 1,
            // Raw control characters are escaped by the renderer; non-ASCII is decoded below.
            _ if b.is_ascii() => return None,
            _ => break,
        }
    }
    let mut out = String::from(&body[..i]);
    let mut chars = body[i..].char_indices();
    while let Some((j, c)) = chars.next() {
        match c {
            '"' => return Some((Cow::Owned(out), &body[i + j + 1..])),
            '\\' => {
                let c = match chars.next()?.1 {
                    e @ ('"' | '\\') => e,
                    'u' => hex(&mut chars, 4)?,
                    'U' => hex(&mut chars, 8)?,
                    _ => return None,
                };
                out.push(c);
            }
            c if needs_escape(c) => return None,
            c => out.push(c),
        }
    }
    None
}

/// The character of `digits` lower-case hex digits, if the renderer would have escaped it so:
/// `\U` only above U+FFFF, and only for a character that needs an escape.
fn hex(chars: &mut std::str::CharIndices<'_>, digits: usize) -> Option<char> {
    let mut v: u32 = 0;
    for _ in 0..digits {
        let d = chars.next()?.1;
        if d.is_ascii_uppercase() {
            return None;
        }
        v = v * 16 + d.to_digit(16)?;
    }
    let c = char::from_u32(v)?;
    let width = if v > 0xFFFF { 8 } else { 4 };
    (width == digits && needs_escape(c)).then_some(c)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::engine::authmap::read::read_mappings_in_full;
    use crate::engine::authmap::render::tests::m;
    use crate::engine::authmap::render::{mapping_text, quote};

    /// What the full reader makes of `text`, if it reads it exactly (warnings allowed).
    fn in_full(section: Section, text: &str) -> Option<Vec<(usize, Mapping)>> {
        let r = read_mappings_in_full(section, Some(text));
        r.readable()
            .then(|| r.entries.into_iter().map(|e| (e.line, e.value)).collect())
    }

    /// The property all of this rests on: accepted means read the same by the full reader.
    fn agrees(section: Section, text: &str) -> Result<(), TestCaseError> {
        if let Some(fast) = read(section, text) {
            let full = in_full(section, text);
            prop_assert_eq!(Some(fast), full, "text: {:?}", text);
        }
        Ok(())
    }

    #[test]
    fn reads_the_renderers_output_with_lines() {
        let a = m(
            "arn:aws:iam::111122223333:role/a",
            "admin:{{SessionName}}",
            &["x", "on"],
        );
        let b = m("arn:aws:iam::111122223333:role/b\u{85}", "", &[]);
        let c = m(
            "arn:aws:iam::111122223333:role/c",
            "\"q\"\\ü\u{10ffff}\u{fffe}",
            &["\u{0}"],
        );
        let text: String = [&a, &b, &c]
            .iter()
            .map(|e| mapping_text(Section::MapRoles, e))
            .collect();
        let want = vec![(1, a.clone()), (6, b.clone()), (7, c.clone())];
        assert_eq!(read(Section::MapRoles, &text), Some(want.clone()));
        assert_eq!(in_full(Section::MapRoles, &text), Some(want));
        assert!(reads_as(
            Section::MapRoles,
            &mapping_text(Section::MapRoles, &c),
            &c
        ));
        assert!(!reads_as(
            Section::MapRoles,
            &mapping_text(Section::MapRoles, &c),
            &a
        ));
        // One key's layout is not the other's.
        assert_eq!(read(Section::MapUsers, &text), None);
    }

    #[test]
    fn declines_anything_else() {
        let ok = "- rolearn: \"arn:aws:iam::111122223333:role/a\"\n  username: \"u\"\n  groups:\n    - \"g\"\n";
        assert!(read(Section::MapRoles, ok).is_some());
        for bad in [
            "",
            "# comment\n- rolearn: \"a\"\n",
            "- rolearn: arn:aws:iam::111122223333:role/a\n",
            "- rolearn: 'arn'\n",
            "- rolearn: \"a\"",
            "- rolearn: \"a\"\n\n",
            "- rolearn: \"a\" # c\n",
            "- rolearn: \"\"\n",
            "- rolearn: \"a\"\n  username: \"\"\n",
            "- rolearn: \"a\"\n  groups:\n",
            "- rolearn: \"a\"\n  groups: []\n",
            "- rolearn: \"a\"\n  groups:\n  - \"g\"\n",
            "- rolearn: \"a\"\n  Username: \"u\"\n",
            "- rolearn: \"a\"\n  groups:\n    - \"g\"\n  username: \"u\"\n",
            "- rolearn: \"a\"\r\n",
            "- rolearn: \"a\tb\"\n",
            "- rolearn: \"a\\/b\"\n",
            "- rolearn: \"a\\nb\"\n",
            "- rolearn: \"\\u0041\"\n",
            "- rolearn: \"\\u001B\"\n",
            "- rolearn: \"\\U0000fffe\"\n",
            "- rolearn: \"a\u{2028}\"\n",
            "- rolearn: \"a\u{feff}\"\n",
            "- rolearn: \"a\"\n...\n",
            "---\n- rolearn: \"a\"\n",
        ] {
            assert_eq!(read(Section::MapRoles, bad), None, "{bad:?}");
        }
    }

    fn any_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z:/{}._-]{0,12}",
            any::<String>(),
            prop::collection::vec(
                prop_oneof![
                    Just('"'),
                    Just('\\'),
                    Just('\n'),
                    Just('\t'),
                    Just('#'),
                    Just(':'),
                    Just('\u{85}'),
                    Just('\u{2028}'),
                    Just('\u{feff}'),
                    Just('\u{fffe}'),
                    Just('\u{0}'),
                    Just('\u{7f}'),
                    Just('é'),
                    Just('\u{10ffff}'),
                    Just('a'),
                ],
                0..8
            )
            .prop_map(|v| v.into_iter().collect()),
        ]
    }

    /// Text made mostly of what quoted strings are made of.
    fn quoted_like() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                3 => prop::sample::select(vec!['"', '\\', 'u', 'U', '0', '1', 'f', 'F', 'e', '8', 'a', 'n', '/']),
                1 => any::<char>(),
            ],
            0..24,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    fn mapping() -> impl Strategy<Value = Mapping> {
        (
            any_value(),
            any_value(),
            prop::collection::vec(any_value(), 0..3),
        )
            .prop_map(|(arn, username, groups)| Mapping {
                arn: format!("a{arn}"),
                username,
                groups,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_renderers_output_is_accepted_and_read_as_the_full_reader_reads_it(
            entries in prop::collection::vec(mapping(), 1..4),
            roles in any::<bool>(),
        ) {
            let section = if roles { Section::MapRoles } else { Section::MapUsers };
            let text: String = entries.iter().map(|e| mapping_text(section, e)).collect();
            let fast = read(section, &text);
            prop_assert!(fast.is_some(), "declined its own layout: {:?}", text);
            prop_assert_eq!(
                fast.as_ref().map(|v| v.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>()),
                Some(entries.clone())
            );
            agrees(section, &text)?;
            for e in &entries {
                prop_assert!(reads_as(section, &mapping_text(section, e), e));
            }
        }

        /// Texts one edit away from the layout (a byte changed, inserted or removed, anywhere):
        /// whatever is still accepted must read as the full reader reads it.
        #[test]
        fn whatever_is_accepted_the_full_reader_reads_the_same(
            entries in prop::collection::vec(mapping(), 1..3),
            at in any::<prop::sample::Index>(),
            edit in 0u8..3,
            with in prop_oneof![
                Just(' '), Just('"'), Just('\\'), Just('\n'), Just('-'), Just(':'), Just('#'),
                Just('u'), Just('U'), Just('0'), Just('a'), Just('\t'), Just('\r'), Just('\u{85}'),
                Just('{'), Just('&'), Just('*'), Just('!'), Just('\''),
            ],
        ) {
            let text: String = entries.iter().map(|e| mapping_text(Section::MapRoles, e)).collect();
            let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
            let i = bounds[at.index(bounds.len())];
            let next = bounds.iter().copied().find(|&b| b > i).unwrap_or(i);
            let mut edited = text.clone();
            match edit {
                0 => edited.insert(i, with),
                1 => edited.replace_range(i..next, &with.to_string()),
                _ => edited.replace_range(i..next, ""),
            }
            agrees(Section::MapRoles, &edited)?;
        }

        /// Any string at all, quoted as the renderer quotes it, decodes back to itself, alone and
        /// as the full reader sees it, and the decoder declines any text the quoting cannot
        /// produce.
        #[test]
        fn a_quoted_string_decodes_to_itself(s in any_value(), junk in quoted_like()) {
            let q = quote(&s);
            prop_assert_eq!(quoted(&q).map(|(v, rest)| (v.into_owned(), rest.to_string())), Some((s.clone(), String::new())));
            let text = format!("- userarn: {q}\n");
            if let Some(got) = read(Section::MapUsers, &text) {
                prop_assert_eq!(got[0].1.arn.clone(), s.clone());
            }
            agrees(Section::MapUsers, &text)?;
            // The decoder takes exactly what the quoting writes: a quoted string is read only
            // where it is the quoting of its value.
            let arbitrary = format!("\"{junk}");
            if let Some((v, rest)) = quoted(&arbitrary) {
                prop_assert_eq!(&arbitrary[..arbitrary.len() - rest.len()], quote(&v));
            }
        }
    }
}
