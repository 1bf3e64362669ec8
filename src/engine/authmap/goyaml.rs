//! go-yaml v2's limits, as the reader's own rules: where go-yaml (YAML 1.1, which EKS runs) and
//! a YAML 1.2 parser could read the same text differently, the text is reported, never guessed.
//!
//! - go-yaml's reader refuses any character outside YAML 1.1's printable set, anywhere in the
//!   text (comments included): "control characters are not allowed", and the key is dropped.
//! - U+0085, U+2028 and U+2029 are line breaks to go-yaml and content to YAML 1.2 parsers.
//! - Escapes are YAML 1.1's: `\/` is YAML 1.2 only and go-yaml refuses it.
//! - Directives (`%YAML 1.2` is refused by go-yaml) and `...` markers change what is read.
//! - Scalars spread over several lines are folded, with rules the parsers do not share.
use super::finding::{Effect, Finding};

/// YAML 1.1's printable set, which go-yaml v2's reader enforces on the whole input.
pub fn is_printable(c: char) -> bool {
    matches!(c as u32,
        0x09 | 0x0A | 0x0D | 0x20..=0x7E | 0x85 | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// Raw line breaks of YAML 1.1 that YAML 1.2 reads as content.
pub fn is_unicode_break(c: char) -> bool {
    matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Whether the renderer must write `c` as an escape inside double quotes.
pub fn needs_escape(c: char) -> bool {
    !is_printable(c) || c.is_control() || is_unicode_break(c) || c == '\u{feff}'
}

/// The escapes go-yaml v2 knows after a backslash in a double-quoted scalar.
fn is_yaml11_escape(c: char) -> bool {
    "0abt\tnvfre \"'\\N_LPxuU".contains(c)
}

/// Character-level rules over a key's whole text. Each rule reports its first occurrence only,
/// with the count, so a hostile value cannot flood statuses and logs.
pub(crate) fn scan_text(key: &str, text: &str) -> Vec<Finding> {
    #[derive(Default)]
    struct First {
        at: Option<(usize, usize, char)>,
        count: usize,
    }
    let (mut control, mut breaks, mut bom) = (First::default(), First::default(), First::default());
    let mut out = Vec::new();
    let mut line = 1;
    let mut column = 1;
    let mut chars = text.chars().peekable();
    let mut line_start = true;
    let mut rest_of_text = text;
    while let Some(c) = chars.next() {
        if line_start {
            line_start = false;
            line_rules(key, line, rest_of_text, &mut out);
        }
        let rule = if !is_printable(c) {
            Some(&mut control)
        } else if is_unicode_break(c) {
            Some(&mut breaks)
        } else if c == '\u{feff}' {
            Some(&mut bom)
        } else {
            None
        };
        if let Some(r) = rule {
            r.count += 1;
            r.at.get_or_insert((line, column, c));
        }
        rest_of_text = &rest_of_text[c.len_utf8()..];
        let newline = c == '\n' || (c == '\r' && chars.peek() != Some(&'\n'));
        if newline {
            line += 1;
            column = 1;
            line_start = true;
        } else {
            column += 1;
        }
    }
    let more = |n: usize| match n {
        1 => String::new(),
        n => format!(" ({} more in this key)", n - 1),
    };
    if let Some((line, column, c)) = control.at {
        out.push(finding(key, line, column, Effect::KeyDropped, format!(
            "character U+{:04X} is not allowed in YAML 1.1: go-yaml refuses the text (\"control characters are not allowed\") and EKS drops the whole {key}{}; remove it, or write it as \\u{:04X} inside double quotes",
            c as u32, more(control.count), c as u32
        )));
    }
    if let Some((line, column, c)) = breaks.at {
        let escape = match c {
            '\u{85}' => "\\N",
            '\u{2028}' => "\\L",
            _ => "\\P",
        };
        out.push(finding(key, line, column, Effect::NotExact, format!(
            "raw Unicode line break U+{:04X}{}: go-yaml (YAML 1.1) breaks the line there, so EKS does not read the text as it looks; remove it, or write {escape} inside double quotes",
            c as u32, more(breaks.count)
        )));
    }
    if let Some((line, column, _)) = bom.at {
        out.push(finding(
            key,
            line,
            column,
            Effect::NotExact,
            format!(
                "byte order mark U+FEFF{}: YAML readers skip or keep it differently; remove it",
                more(bom.count)
            ),
        ));
    }
    out
}

/// Rules about whole lines: directives and document end markers.
fn line_rules(key: &str, line: usize, rest: &str, out: &mut Vec<Finding>) {
    let text = rest.split(['\n', '\r']).next().unwrap_or_default();
    if let Some(directive) = text.strip_prefix('%') {
        let yaml11 = directive.split_whitespace().collect::<Vec<_>>() == ["YAML", "1.1"];
        let (effect, why) = if directive.starts_with("YAML") && !yaml11 {
            (
                Effect::KeyDropped,
                format!("go-yaml reads only YAML 1.1 and EKS drops the whole {key}"),
            )
        } else {
            (
                Effect::NotExact,
                "directives change how the text is read".to_string(),
            )
        };
        out.push(finding(
            key,
            line,
            1,
            effect,
            format!(
                "YAML directive `%{}`: {why}; remove the line",
                super::excerpt(directive, 40)
            ),
        ));
    }
    let marker = text
        .strip_prefix("...")
        .is_some_and(|after| after.is_empty() || after.starts_with([' ', '\t']));
    if marker {
        out.push(finding(
            key,
            line,
            1,
            Effect::TextIgnored,
            format!("a YAML document end marker `...` ends {key} here: EKS ignores everything after it (and go-yaml may refuse the text); remove the marker"),
        ));
    }
}

/// The source of one flow scalar (`chars` from its opening quote): a YAML 1.2-only escape, or a
/// line break inside the quotes (folded by rules the parsers do not share).
pub(crate) fn check_quoted(chars: &[char], start: usize, double: bool) -> Option<(Effect, String)> {
    let quote = if double { '"' } else { '\'' };
    let mut i = start + 1;
    while let Some(&c) = chars.get(i) {
        match c {
            '\\' if double => {
                let next = chars.get(i + 1).copied().unwrap_or(' ');
                if next == '\n' || next == '\r' {
                    return Some(multi_line());
                }
                if !is_yaml11_escape(next) {
                    return Some((
                        Effect::KeyDropped,
                        format!(
                            "escape `\\{next}` exists only in YAML 1.2: go-yaml refuses it and EKS drops the whole key; write `{next}` without the backslash"
                        ),
                    ));
                }
                i += 2;
            }
            '\'' if !double && chars.get(i + 1) == Some(&'\'') => i += 2,
            c if c == quote => return None,
            '\n' | '\r' => return Some(multi_line()),
            _ => i += 1,
        }
    }
    None
}

/// A plain scalar whose value is not its source text was folded from several lines; one that
/// starts with an indicator go-yaml never lets start a plain scalar (yaml-rust2 takes `|` and
/// `>` as text in a flow collection) is refused by go-yaml.
pub(crate) fn check_plain(chars: &[char], start: usize, value: &str) -> Option<(Effect, String)> {
    let n = value.chars().count();
    let source = chars.get(start..start + n)?;
    if let Some(&c @ ('|' | '>' | '%' | '@' | '`')) = source.first() {
        return Some((
            Effect::KeyDropped,
            format!(
                "a value cannot start with `{c}` unquoted: go-yaml refuses it and EKS drops the whole key; put the value in double quotes"
            ),
        ));
    }
    if source.iter().copied().eq(value.chars()) {
        None
    } else {
        Some(multi_line())
    }
}

fn multi_line() -> (Effect, String) {
    (
        Effect::NotExact,
        "a value spread over several lines is folded into one, by rules YAML readers do not share: write it on one line in double quotes".into(),
    )
}

fn finding(key: &str, line: usize, column: usize, effect: Effect, message: String) -> Finding {
    Finding {
        key: key.to_string(),
        line,
        column,
        effect,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_set_is_yaml11s() {
        for c in [
            '\t',
            '\n',
            '\r',
            ' ',
            '~',
            '\u{85}',
            '\u{a0}',
            '\u{d7ff}',
            '\u{e000}',
            '\u{fffd}',
            '\u{10000}',
            '\u{10ffff}',
            '\u{feff}',
        ] {
            assert!(is_printable(c), "{:?}", c);
        }
        for c in [
            '\0', '\u{7}', '\u{1b}', '\u{7f}', '\u{80}', '\u{9f}', '\u{fffe}', '\u{ffff}',
        ] {
            assert!(!is_printable(c), "{:?}", c);
            assert!(needs_escape(c), "{:?}", c);
        }
        for c in ['\u{85}', '\u{2028}', '\u{2029}', '\u{feff}'] {
            assert!(needs_escape(c), "{:?}", c);
        }
    }

    #[test]
    fn first_occurrence_is_located_and_counted() {
        let f = scan_text("mapRoles", "- a\n- b\u{fffe}c\u{1}\n# \u{7}\n");
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].line, f[0].column, f[0].effect),
            (2, 4, Effect::KeyDropped)
        );
        assert!(
            f[0].message.contains("U+FFFE") && f[0].message.contains("2 more"),
            "{}",
            f[0]
        );
    }

    #[test]
    fn directives_and_end_markers() {
        let f = scan_text("mapRoles", "%YAML 1.2\n---\n- a\n");
        assert_eq!(f[0].effect, Effect::KeyDropped);
        let f = scan_text("mapRoles", "%TAG ! tag:x,2000:\n---\n- a\n");
        assert_eq!(f[0].effect, Effect::NotExact);
        let f = scan_text("mapRoles", "...\n- a\n");
        assert_eq!((f[0].line, f[0].effect), (1, Effect::TextIgnored));
        assert!(scan_text("mapRoles", "- ...x\n- a...\n").is_empty());
    }

    #[test]
    fn quoted_sources() {
        let chars: Vec<char> = r#""a\/b""#.chars().collect();
        assert_eq!(check_quoted(&chars, 0, true).unwrap().0, Effect::KeyDropped);
        let chars: Vec<char> = r#""a\"b\\\u00e9\N""#.chars().collect();
        assert_eq!(check_quoted(&chars, 0, true), None);
        let chars: Vec<char> = "'it''s\n  x'".chars().collect();
        assert_eq!(check_quoted(&chars, 0, false).unwrap().0, Effect::NotExact);
        let chars: Vec<char> = "'it''s'".chars().collect();
        assert_eq!(check_quoted(&chars, 0, false), None);
    }
}
