//! What each list element of a key maps: the entry's fields as the authenticator decodes them
//! (YAML 1.1 -> JSON -> Go, case-insensitive names, type errors blank the field), and the
//! warnings about entries that read fine but never match.
use std::collections::HashMap;

use yaml_rust2::scanner::TScalarStyle;

use super::super::finding::{Effect, Finding};
use super::super::scalar::{Resolved, resolve_plain};
use super::super::tree::{Kind, Node};
use super::super::{Mapping, Section, arn, shown};

pub(super) struct Reporter<'a> {
    pub(super) key: &'static str,
    pub(super) findings: &'a mut Vec<Finding>,
}

impl Reporter<'_> {
    pub(super) fn at(&mut self, node: &Node, effect: Effect, message: String) {
        self.findings.push(Finding {
            key: self.key.to_string(),
            line: node.line,
            column: node.column,
            effect,
            message,
        });
    }

    /// Anchors, aliases and tags are legal YAML that this reader does not reproduce.
    pub(super) fn check_props(&mut self, node: &Node) {
        if node.anchored {
            self.at(
                node,
                Effect::NotExact,
                "YAML anchor (`&name`): write the value out instead".into(),
            );
        }
        if let Some(tag) = &node.tag {
            self.at(
                node,
                Effect::NotExact,
                format!(
                    "explicit YAML tag `{}{}`: remove it and double-quote the value",
                    tag.handle, tag.suffix
                ),
            );
        }
    }

    pub(super) fn block_scalar(&mut self, node: &Node) {
        self.at(
            node,
            Effect::NotExact,
            "block scalar (`|` or `>`) keeps line breaks in the value: write it on one line in double quotes".into(),
        );
    }
}

/// The root of a key must be a list (or empty). Returns its items.
pub(super) fn root_list<'n>(
    root: &'n Node,
    section: Section,
    r: &mut Reporter<'_>,
) -> Option<&'n [Node]> {
    r.check_props(root);
    match &root.kind {
        Kind::Seq(items) => Some(items),
        // Empty, `null`, `~`: no entries and nothing lost (a text that is only `""` or `''` was
        // skipped before parsing).
        Kind::Scalar { value, style }
            if *style == TScalarStyle::Plain
                && (value.is_empty() || resolve_plain(value) == Some(Resolved::Null)) =>
        {
            None
        }
        // A quoted empty string with anything beside it (`--- ""`, `'' # note`): the
        // authenticator decodes it as a string, not a list, and drops the key.
        Kind::Scalar { value, .. } if value.is_empty() => {
            r.at(
                root,
                Effect::KeyDropped,
                format!("the value of {section} is an empty quoted string, not a list: EKS drops the whole key; write `[]`, or leave the key empty"),
            );
            None
        }
        Kind::Alias => {
            r.at(
                root,
                Effect::NotExact,
                "YAML alias (`*name`): write the value out instead".into(),
            );
            None
        }
        other => {
            let what = match other {
                Kind::Map(_) => "a mapping",
                _ => "a scalar",
            };
            r.at(
                root,
                Effect::KeyDropped,
                format!("the value of {section} is {what}, not a list: EKS drops the whole key; start each entry with `- `"),
            );
            None
        }
    }
}

pub(super) fn read_mapping_entry(
    section: Section,
    item: &Node,
    r: &mut Reporter<'_>,
) -> Option<Mapping> {
    r.check_props(item);
    let pairs = match &item.kind {
        Kind::Map(pairs) => pairs,
        Kind::Alias => {
            r.at(
                item,
                Effect::NotExact,
                "YAML alias (`*name`): write the entry out instead".into(),
            );
            return None;
        }
        _ => {
            r.at(
                item,
                Effect::EntryDropped,
                format!(
                    "a list element that is not a mapping is dropped; write `- {}: ...`",
                    section.arn_field()
                ),
            );
            return None;
        }
    };
    let arn_field = section.arn_field();
    let mut arn: Option<String> = None;
    let mut username = String::new();
    let mut groups = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (k, v) in pairs {
        let Some((key, lower)) = field_name(k, arn_field, &mut seen, r) else {
            continue;
        };
        match lower.as_str() {
            l if l == arn_field => arn = Some(read_string(v, &key, r)),
            "username" => username = read_string(v, &key, r),
            "groups" => groups = read_groups(v, &key, r),
            _ => r.at(
                k,
                Effect::TextIgnored,
                unknown_field(&key, &lower, arn_field),
            ),
        }
    }
    match arn {
        Some(a) if !a.is_empty() => Some(Mapping {
            arn: a,
            username,
            groups,
        }),
        _ => {
            r.at(
                item,
                Effect::EntryDropped,
                format!("entry has no {arn_field}: EKS drops it; add `{arn_field}: \"arn:aws:iam::111122223333:...\"`"),
            );
            None
        }
    }
}

/// A field's name as written and as the authenticator's case-insensitive decoding reads it,
/// with the findings about the name itself (`None`: a complex key, reported by `complex_keys`).
fn field_name(
    k: &Node,
    arn_field: &str,
    seen: &mut HashMap<String, usize>,
    r: &mut Reporter<'_>,
) -> Option<(String, String)> {
    r.check_props(k);
    let Kind::Scalar { value: key, .. } = &k.kind else {
        return None;
    };
    let lower = arn::fold_case(key);
    if let Some(first) = seen.insert(lower.clone(), k.line) {
        r.at(
            k,
            Effect::NotExact,
            format!("`{key}` is given twice in one entry (first on line {first}); EKS keys are case-insensitive, so which one wins is not evident: keep one", key = shown(key)),
        );
    }
    let known = [arn_field, "username", "groups"];
    if known.contains(&lower.as_str()) && *key != lower {
        r.at(
            k,
            Effect::Warning,
            format!(
                "`{key}` is read case-insensitively as `{lower}`; write `{lower}`",
                key = shown(key),
                lower = shown(&lower)
            ),
        );
    }
    Some((key.clone(), lower))
}

/// What is said of a field EKS does not read.
fn unknown_field(key: &str, lower: &str, arn_field: &str) -> String {
    if lower == "sso" || lower == "userid" {
        format!(
            "`{key}` entries are not managed by this operator and are inert on EKS by default; remove it",
            key = shown(key)
        )
    } else {
        format!(
            "unknown key `{key}` is ignored by EKS; the known keys are {arn_field}, username, groups",
            key = shown(key)
        )
    }
}

/// A string field decoded through YAML 1.1 -> JSON -> Go string.
fn read_string(v: &Node, field: &str, r: &mut Reporter<'_>) -> String {
    r.check_props(v);
    match &v.kind {
        Kind::Scalar { value, style } => match style {
            TScalarStyle::Plain => match resolve_plain(value) {
                None => value.clone(),
                Some(Resolved::Null) if value.is_empty() => {
                    r.at(v, Effect::ValueCoerced, format!("`{field}` has no value: EKS reads \"\"; give it a value or remove the line"));
                    String::new()
                }
                Some(Resolved::Unrepresentable) => {
                    r.at(v, Effect::KeyDropped, format!("unquoted `{value}` is a YAML float that JSON cannot hold: EKS drops the whole key; double-quote it", value = shown(value)));
                    String::new()
                }
                Some(kind) => {
                    r.at(
                        v,
                        Effect::ValueCoerced,
                        format!("unquoted `{value}` is a YAML 1.1 {} and EKS reads `{field}` as \"\"; write \"{value}\" in double quotes", kind.name(), value = shown(value)),
                    );
                    String::new()
                }
            },
            TScalarStyle::Literal | TScalarStyle::Folded => {
                r.block_scalar(v);
                value.clone()
            }
            _ => value.clone(),
        },
        Kind::Alias => {
            r.at(
                v,
                Effect::NotExact,
                "YAML alias (`*name`): write the value out instead".into(),
            );
            String::new()
        }
        _ => {
            r.at(
                v,
                Effect::FieldBlanked,
                format!("`{field}` must be a string but is a {}: EKS keeps the entry with `{field}` = \"\"; write one double-quoted string", describe(v)),
            );
            String::new()
        }
    }
}

fn read_groups(v: &Node, field: &str, r: &mut Reporter<'_>) -> Vec<String> {
    r.check_props(v);
    match &v.kind {
        Kind::Seq(items) => items
            .iter()
            .map(|i| read_string(i, "groups item", r))
            .collect(),
        Kind::Scalar {
            value,
            style: TScalarStyle::Plain,
        } if resolve_plain(value) == Some(Resolved::Null) => Vec::new(),
        Kind::Alias => {
            r.at(
                v,
                Effect::NotExact,
                "YAML alias (`*name`): write the list out instead".into(),
            );
            Vec::new()
        }
        _ => {
            let shown = match &v.kind {
                Kind::Scalar { value, .. } => format!("[\"{value}\"]", value = shown(value)),
                _ => "[\"...\"]".into(),
            };
            r.at(
                v,
                Effect::FieldBlanked,
                format!("`{field}` must be a list but is a {}: EKS keeps the entry with no groups; write `{field}: {shown}`", describe(v)),
            );
            Vec::new()
        }
    }
}

fn describe(n: &Node) -> &'static str {
    match n.kind {
        Kind::Scalar { .. } => "scalar",
        Kind::Seq(_) => "list",
        Kind::Map(_) => "mapping",
        Kind::Alias => "alias",
    }
}

/// Entries that parse fine but that EKS will not use the way they read.
pub(super) fn warn_about_entries<'a>(
    section: Section,
    entries: impl Iterator<Item = (usize, &'a Mapping)>,
    findings: &mut Vec<Finding>,
) {
    let key = section.key();
    let mut warn = |line, message: String| {
        findings.push(Finding {
            key: key.to_string(),
            line,
            column: 1,
            effect: Effect::Warning,
            message,
        })
    };
    // What is said of each entry on its own, and its case-folded ARN, worked out on the cores
    // when there are thousands (the operator reads its own output after every write); the
    // duplicates are then found in order.
    let entries: Vec<(usize, &Mapping)> = entries.collect();
    let alone = crate::engine::parallel::map(&entries, |(_, m)| {
        let a = m.arn.as_str();
        let said = if a.trim() != a || a.contains(char::is_whitespace) {
            Some(format!(
                "ARN `{a}` contains whitespace, which EKS keeps verbatim: it never matches",
                a = shown(a)
            ))
        } else if let Err(err) = arn::principal_key(a) {
            Some(format!("{err}: this entry never matches"))
        } else if section == Section::MapRoles && arn::role_path(a).is_some() {
            Some(format!(
                "role ARN has a path, which EKS never matches; use {}",
                arn::strip_role_path(a)
            ))
        } else {
            None
        };
        (said, arn::fold_case(a))
    });
    let mut exact: HashMap<&str, usize> = HashMap::with_capacity(entries.len());
    let mut folded: HashMap<String, (usize, &str)> = HashMap::with_capacity(entries.len());
    for (&(line, m), (said, lower)) in entries.iter().zip(alone) {
        let a = m.arn.as_str();
        if let Some(said) = said {
            warn(line, said);
        }
        if section == Section::MapRoles {
            if let Some((first, _)) = folded.insert(lower, (line, a)) {
                warn(
                    line,
                    format!(
                        "duplicate entry for `{a}` (also on line {first}): EKS uses the last one",
                        a = shown(a)
                    ),
                );
            }
        } else {
            if let Some(first) = exact.insert(a, line) {
                warn(
                    line,
                    format!(
                        "duplicate entry for `{a}` (also on line {first}): EKS uses the last one",
                        a = shown(a)
                    ),
                );
            }
            if let Some((first, other)) = folded.insert(lower, (line, a))
                && other != a
            {
                warn(
                    line,
                    format!(
                        "`{a}` differs only in case from `{other}` (line {first}): EKS keeps both and picks one at random",
                        a = shown(a),
                        other = shown(other)
                    ),
                );
            }
        }
    }
}
