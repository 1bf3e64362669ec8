//! The authenticator-faithful reader of aws-auth `data`: what EKS maps, and every place where
//! EKS would read the text differently from how it looks.
//!
//! The authenticator parses `mapRoles`/`mapUsers` as YAML 1.1 (go-yaml v2), converts to JSON and
//! decodes with `encoding/json` (case-insensitive field names, type errors blank the field);
//! `mapAccounts` is decoded by go-yaml v2 into `[]string`. YAML 1.2 parsers read plain scalars
//! differently, so this reader works on parser events with their scalar style and applies the
//! YAML 1.1 resolution rules itself.
//!
//! The steps live beside this module: the tree (`tree`), YAML 1.1 scalar resolution (`scalar`),
//! go-yaml's character rules (`goyaml`), the findings (`finding`); here the key's syntax, and in
//! `entries` what each list element maps.
use std::collections::BTreeMap;
use std::sync::Arc;

use yaml_rust2::scanner::TScalarStyle;

pub use super::finding::{Effect, Finding};
use super::scalar::{Resolved, resolve_plain};
use super::tree::{Kind, Node, build_tree};
use super::{AuthMap, Mapping, Section, shown};
use entries::{Reporter, read_mapping_entry, root_list, warn_about_entries};

mod entries;
#[cfg(test)]
mod tests;

/// A value with the line of the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub line: usize,
    pub value: T,
}

/// One key as the authenticator reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionRead<T> {
    pub section: Section,
    pub present: bool,
    /// The entries EKS holds, in text order.
    pub entries: Vec<Located<T>>,
    pub findings: Vec<Finding>,
}

impl<T: Clone> SectionRead<T> {
    fn new(section: Section, present: bool) -> Self {
        SectionRead {
            section,
            present,
            entries: Vec::new(),
            findings: Vec::new(),
        }
    }

    /// True when the text says exactly what EKS reads, so the key may be rewritten.
    pub fn readable(&self) -> bool {
        !self.findings.iter().any(|f| f.effect.blocks_rewrite())
    }

    /// The first finding that makes the key unreadable.
    pub fn first_blocking(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| f.effect.blocks_rewrite())
    }

    pub fn values(&self) -> Vec<T> {
        self.entries.iter().map(|e| e.value.clone()).collect()
    }
}

/// The whole aws-auth `data` as the authenticator reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsAuthRead {
    pub roles: SectionRead<Mapping>,
    pub users: SectionRead<Mapping>,
    pub accounts: SectionRead<String>,
    /// Findings about `data` keys themselves (wrong-case keys EKS ignores).
    pub notes: Vec<Finding>,
}

impl AwsAuthRead {
    pub fn auth_map(&self) -> AuthMap {
        AuthMap {
            roles: self.roles.values(),
            users: self.users.values(),
            accounts: self.accounts.values(),
        }
    }

    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.notes
            .iter()
            .chain(&self.roles.findings)
            .chain(&self.users.findings)
            .chain(&self.accounts.findings)
    }

    pub fn readable(&self, section: Section) -> bool {
        match section {
            Section::MapRoles => self.roles.readable(),
            Section::MapUsers => self.users.readable(),
            Section::MapAccounts => self.accounts.readable(),
        }
    }

    pub fn first_blocking(&self, section: Section) -> Option<&Finding> {
        match section {
            Section::MapRoles => self.roles.first_blocking(),
            Section::MapUsers => self.users.first_blocking(),
            Section::MapAccounts => self.accounts.first_blocking(),
        }
    }
}

/// Reads ConfigMap `data` exactly as the authenticator does.
pub fn read_data(data: &BTreeMap<String, String>) -> AwsAuthRead {
    let text = |s: Section| data.get(s.key()).map(String::as_str);
    AwsAuthRead {
        roles: read_mappings(Section::MapRoles, text(Section::MapRoles)),
        users: read_mappings(Section::MapUsers, text(Section::MapUsers)),
        accounts: read_accounts(text(Section::MapAccounts)),
        notes: key_notes(data),
    }
}

/// Wrong-case keys, which EKS ignores.
fn key_notes(data: &BTreeMap<String, String>) -> Vec<Finding> {
    let mut notes = Vec::new();
    for key in data.keys() {
        for section in Section::ALL {
            if key != section.key() && key.eq_ignore_ascii_case(section.key()) {
                notes.push(Finding {
                    key: key.clone(),
                    line: 0,
                    column: 0,
                    effect: Effect::Warning,
                    message: format!(
                        "EKS reads only the exact key `{}`; `{key}` maps nobody: rename it to `{}`",
                        section.key(),
                        section.key(),
                        key = shown(key)
                    ),
                });
            }
        }
    }
    notes
}

/// Reads one `mapRoles` or `mapUsers` value (`None`: the key is absent).
pub fn read_mappings(section: Section, text: Option<&str>) -> SectionRead<Mapping> {
    match read_mappings_sharing(section, text) {
        (mut out, Some(known)) => {
            out.entries = known
                .into_iter()
                .map(|(line, m)| Located {
                    line,
                    value: (*m).clone(),
                })
                .collect();
            out
        }
        (out, None) => out,
    }
}

/// A mapping key made only of entry texts the renderer verified: their lines and the mappings
/// the renderer's memo shares.
pub(crate) type Known = Vec<(usize, Arc<Mapping>)>;

/// [`read_data`], except that a mapping key made only of verified entry texts comes back as
/// the shared mappings (its `entries` left empty), not as copies.
pub(crate) fn read_data_sharing(
    data: &BTreeMap<String, String>,
) -> (AwsAuthRead, [Option<Known>; 2]) {
    let text = |s: Section| data.get(s.key()).map(String::as_str);
    let (roles, known_roles) = read_mappings_sharing(Section::MapRoles, text(Section::MapRoles));
    let (users, known_users) = read_mappings_sharing(Section::MapUsers, text(Section::MapUsers));
    let read = AwsAuthRead {
        roles,
        users,
        accounts: read_accounts(text(Section::MapAccounts)),
        notes: key_notes(data),
    };
    (read, [known_roles, known_users])
}

fn read_mappings_sharing(
    section: Section,
    text: Option<&str>,
) -> (SectionRead<Mapping>, Option<Known>) {
    let mut out = SectionRead::new(section, text.is_some());
    let text = text.filter(|t| !skippable(t));
    if let Some(known) = text.and_then(|t| super::memo::known(section, t)) {
        warn_about_entries(
            section,
            known.iter().map(|(l, m)| (*l, &**m)),
            &mut out.findings,
        );
        return (out, Some(known));
    }
    // The renderer's layout (its output read after a restart, say) needs no parse.
    if let Some(entries) = text.and_then(|t| super::canonical::read(section, t)) {
        warn_about_entries(
            section,
            entries.iter().map(|(l, m)| (*l, m)),
            &mut out.findings,
        );
        out.entries = entries
            .into_iter()
            .map(|(line, value)| Located { line, value })
            .collect();
        return (out, None);
    }
    (read_parsed(section, text, out), None)
}

/// [`read_mappings`] with neither fast path: the parse every other reading must agree with.
pub(crate) fn read_mappings_in_full(section: Section, text: Option<&str>) -> SectionRead<Mapping> {
    let out = SectionRead::new(section, text.is_some());
    read_parsed(section, text.filter(|t| !skippable(t)), out)
}

/// The full read of a mapping key's text (after the checks above).
fn read_parsed(
    section: Section,
    text: Option<&str>,
    mut out: SectionRead<Mapping>,
) -> SectionRead<Mapping> {
    let mut entries = Vec::new();
    each_item(section, text, &mut out.findings, |item, r| {
        if let Some(mapping) = read_mapping_entry(section, item, r) {
            entries.push(Located {
                line: item.line,
                value: mapping,
            });
        }
    });
    // A key dropped anywhere below means nothing of it is mapped.
    if out.findings.iter().any(|f| f.effect == Effect::KeyDropped) {
        return out;
    }
    warn_about_entries(
        section,
        entries.iter().map(|e| (e.line, &e.value)),
        &mut out.findings,
    );
    out.entries = entries;
    out
}

/// Reads the `mapAccounts` value (`None`: the key is absent).
pub fn read_accounts(text: Option<&str>) -> SectionRead<String> {
    let section = Section::MapAccounts;
    let mut out = SectionRead::new(section, text.is_some());
    let text = text.filter(|t| !skippable(t));
    let mut entries = Vec::new();
    each_item(section, text, &mut out.findings, |item, r| {
        if let Some(value) = read_account(item, r) {
            entries.push(Located {
                line: item.line,
                value,
            });
        }
    });
    if !out.findings.iter().any(|f| f.effect == Effect::KeyDropped) {
        out.entries = entries;
    }
    out
}

/// One `mapAccounts` element as go-yaml v2 decodes it into a string (`None`: dropped).
fn read_account(item: &Node, r: &mut Reporter<'_>) -> Option<String> {
    match &item.kind {
        Kind::Scalar { value, style } => {
            r.check_props(item);
            if *style == TScalarStyle::Plain && resolve_plain(value) == Some(Resolved::Null) {
                r.at(
                    item,
                    Effect::ValueCoerced,
                    format!("`{value}` is YAML null and EKS reads it as \"\"; write the 12-digit account id in double quotes", value = shown(value)),
                );
                return Some(String::new());
            }
            if matches!(style, TScalarStyle::Literal | TScalarStyle::Folded) {
                r.block_scalar(item);
            }
            // go-yaml v2 decodes any non-null scalar into a string as its source text.
            if !is_account_id(value) {
                r.at(
                    item,
                    Effect::Warning,
                    format!(
                        "`{value}` is not a 12-digit AWS account id; it admits nobody",
                        value = shown(value)
                    ),
                );
            }
            Some(value.clone())
        }
        _ => {
            r.at(
                item,
                Effect::EntryDropped,
                "a list element that is not a scalar is dropped; write `- \"111122223333\"`".into(),
            );
            None
        }
    }
}

/// Parses a key and hands each element of its list to `each`; a key that is not a list (or is
/// empty) has none, and its findings say why.
fn each_item(
    section: Section,
    text: Option<&str>,
    findings: &mut Vec<Finding>,
    mut each: impl FnMut(&Node, &mut Reporter<'_>),
) {
    let Some(root) = parse_key(section, text, findings) else {
        return;
    };
    let mut r = Reporter {
        key: section.key(),
        findings,
    };
    if let Some(items) = root_list(&root, section, &mut r) {
        items.iter().for_each(|item| each(item, &mut r));
    }
}

/// The authenticator skips these texts before parsing: no entries, no error.
fn skippable(text: &str) -> bool {
    matches!(text.trim(), "" | "``" | "\"\"" | "''")
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a key's text, records syntax-level findings, and returns the first document's root.
fn parse_key(section: Section, text: Option<&str>, findings: &mut Vec<Finding>) -> Option<Node> {
    let text = text?;
    let key = section.key();
    // go-yaml's rules about characters, directives and markers come first: where they fire,
    // what a YAML 1.2 parser would make of the text does not matter.
    findings.extend(super::goyaml::scan_text(key, text));
    let fail = |findings: &mut Vec<Finding>, line, column, effect, message: String| {
        findings.push(Finding {
            key: key.to_string(),
            line,
            column,
            effect,
            message,
        })
    };
    for (i, l) in text.lines().enumerate() {
        if let Some(col) = l.find('\t') {
            fail(
                findings,
                i + 1,
                l[..col].chars().count() + 1,
                Effect::KeyDropped,
                format!(
                    "tab character: YAML forbids tabs in indentation and EKS drops the whole {key}; indent with spaces",
                    key = shown(key)
                ),
            );
        }
    }
    if findings.iter().any(|f| f.effect == Effect::KeyDropped) {
        return None;
    }
    let builder = match build_tree(text) {
        Ok(b) => b,
        Err(e) => {
            fail(
                findings,
                e.line,
                e.column,
                Effect::KeyDropped,
                format!(
                    "{}: EKS drops the whole {key} (or cannot be relied on to read it)",
                    e.message,
                    key = shown(key)
                ),
            );
            return None;
        }
    };
    let chars: Vec<char> = text.chars().collect();
    for (_, root) in &builder.documents {
        if let Some(root) = root {
            complex_keys(key, root, findings);
            scalar_sources(key, &chars, root, findings);
        }
    }
    if findings.iter().any(|f| f.effect == Effect::KeyDropped) {
        return None;
    }
    let mut docs = builder.documents.into_iter();
    let root = docs.next().and_then(|d| d.1);
    let marker_reported = findings.iter().any(|f| f.message.contains("marker `...`"));
    if let Some((line, _)) = docs.next().filter(|_| !marker_reported) {
        fail(
            findings,
            line.max(1),
            1,
            Effect::TextIgnored,
            format!(
                "a YAML document marker (`---` or `...`) ends {key} here: EKS ignores everything after it; remove the marker",
                key = shown(key)
            ),
        );
    }
    root
}

/// Scalars whose source go-yaml reads differently: YAML 1.2-only escapes, values folded from
/// several lines.
fn scalar_sources(key: &str, chars: &[char], node: &Node, findings: &mut Vec<Finding>) {
    match &node.kind {
        Kind::Seq(items) => items
            .iter()
            .for_each(|i| scalar_sources(key, chars, i, findings)),
        Kind::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            scalar_sources(key, chars, k, findings);
            scalar_sources(key, chars, v, findings);
        }),
        Kind::Scalar { value, style } => {
            let problem = match style {
                TScalarStyle::DoubleQuoted => super::goyaml::check_quoted(chars, node.index, true),
                TScalarStyle::SingleQuoted => super::goyaml::check_quoted(chars, node.index, false),
                TScalarStyle::Plain => super::goyaml::check_plain(chars, node.index, value),
                // Reported where they are read.
                _ => None,
            };
            if let Some((effect, message)) = problem {
                findings.push(Finding {
                    key: key.to_string(),
                    line: node.line,
                    column: node.column,
                    effect,
                    message: message.replace(
                        "the whole key",
                        &format!("the whole {key}", key = shown(key)),
                    ),
                });
            }
        }
        Kind::Alias => {}
    }
}

/// go-yaml v2 refuses mapping keys that are lists or mappings, which fails the whole key. An
/// unquoted `{{SessionName}}` is exactly that: a flow mapping whose key is a flow mapping.
fn complex_keys(key: &str, node: &Node, findings: &mut Vec<Finding>) {
    match &node.kind {
        Kind::Seq(items) => items.iter().for_each(|i| complex_keys(key, i, findings)),
        Kind::Map(pairs) => {
            for (k, v) in pairs {
                if matches!(k.kind, Kind::Seq(_) | Kind::Map(_)) {
                    findings.push(Finding {
                        key: key.to_string(),
                        line: k.line,
                        column: k.column,
                        effect: Effect::KeyDropped,
                        message: format!("a mapping key that is itself a list or mapping: an unquoted value starting with `{{` (e.g. `{{{{SessionName}}}}`) is read as a YAML mapping and EKS drops the whole {key}; double-quote the value", key = shown(key)),
                    });
                }
                complex_keys(key, k, findings);
                complex_keys(key, v, findings);
            }
        }
        Kind::Scalar { .. } | Kind::Alias => {}
    }
}
