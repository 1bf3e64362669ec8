//! The authenticator-faithful reader of aws-auth `data`: what EKS maps, and every place where
//! EKS would read the text differently from how it looks.
//!
//! The authenticator parses `mapRoles`/`mapUsers` as YAML 1.1 (go-yaml v2), converts to JSON and
//! decodes with `encoding/json` (case-insensitive field names, type errors blank the field);
//! `mapAccounts` is decoded by go-yaml v2 into `[]string`. YAML 1.2 parsers read plain scalars
//! differently, so this reader works on parser events with their scalar style and applies the
//! YAML 1.1 resolution rules itself.
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::{AuthMap, Mapping, Section, shown};
use crate::engine::authmap::arn;

/// What EKS does with the text at a finding's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    /// The whole key is dropped: nobody in it is mapped.
    KeyDropped,
    /// One entry is dropped.
    EntryDropped,
    /// The entry stays live with this field empty.
    FieldBlanked,
    /// An unquoted YAML 1.1 scalar (`yes`, `on`, `null`, a number...) becomes `""`.
    ValueCoerced,
    /// Text that EKS ignores without a word.
    TextIgnored,
    /// A construct this reader does not reproduce exactly, so it will not vouch for the reading.
    NotExact,
    /// Read exactly, but EKS will not do what it seems to say (a dead or ambiguous entry).
    Warning,
}

impl Effect {
    /// Whether a key with this finding must not be rewritten: its text does not say what EKS reads.
    pub fn blocks_rewrite(self) -> bool {
        self != Effect::Warning
    }

    pub fn label(self) -> &'static str {
        match self {
            Effect::KeyDropped => "key dropped",
            Effect::EntryDropped => "entry dropped",
            Effect::FieldBlanked => "field blanked",
            Effect::ValueCoerced => "value coerced",
            Effect::TextIgnored => "text ignored",
            Effect::NotExact => "not exact",
            Effect::Warning => "warning",
        }
    }
}

/// One diagnosis, located in the key's text (lines and columns count from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The data key (`mapRoles`, or a wrong-case key such as `MapRoles`).
    pub key: String,
    pub line: usize,
    pub column: usize,
    pub effect: Effect,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}: {}", self.key, self.effect.label(), self.message)
        } else {
            write!(
                f,
                "{} line {}, column {}: {}: {}",
                self.key,
                self.line,
                self.column,
                self.effect.label(),
                self.message
            )
        }
    }
}

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
    let Some(root) = parse_key(section, text, &mut out.findings) else {
        return out;
    };
    let mut r = Reporter {
        key: section.key(),
        findings: &mut out.findings,
    };
    let Some(items) = root_list(&root, section, &mut r) else {
        return out;
    };
    let mut entries = Vec::new();
    for item in items {
        if let Some(mapping) = read_mapping_entry(section, item, &mut r) {
            entries.push(Located {
                line: item.line,
                value: mapping,
            });
        }
    }
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
    let Some(root) = parse_key(section, text, &mut out.findings) else {
        return out;
    };
    let mut r = Reporter {
        key: section.key(),
        findings: &mut out.findings,
    };
    let Some(items) = root_list(&root, section, &mut r) else {
        return out;
    };
    let mut entries = Vec::new();
    for item in items {
        match &item.kind {
            Kind::Scalar { value, style } => {
                r.check_props(item);
                if *style == TScalarStyle::Plain && resolve_plain(value) == Some(Resolved::Null) {
                    r.at(
                        item,
                        Effect::ValueCoerced,
                        format!("`{value}` is YAML null and EKS reads it as \"\"; write the 12-digit account id in double quotes", value = shown(value)),
                    );
                    entries.push(Located {
                        line: item.line,
                        value: String::new(),
                    });
                    continue;
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
                entries.push(Located {
                    line: item.line,
                    value: value.clone(),
                });
            }
            _ => r.at(
                item,
                Effect::EntryDropped,
                "a list element that is not a scalar is dropped; write `- \"111122223333\"`".into(),
            ),
        }
    }
    if !out.findings.iter().any(|f| f.effect == Effect::KeyDropped) {
        out.entries = entries;
    }
    out
}

/// The authenticator skips these texts before parsing: no entries, no error.
fn skippable(text: &str) -> bool {
    matches!(text.trim(), "" | "``" | "\"\"" | "''")
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

// ---------------------------------------------------------------------------------------------
// Parsing into a small tree that keeps scalar style, anchors, tags and positions.

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) line: usize,
    pub(crate) column: usize,
    /// Position of the node's first character in the text, in chars.
    pub(crate) index: usize,
    pub(crate) anchored: bool,
    pub(crate) tag: Option<Tag>,
    pub(crate) kind: Kind,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Scalar { value: String, style: TScalarStyle },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Alias,
}

#[derive(Default)]
pub(crate) struct TreeBuilder {
    stack: Vec<Node>,
    /// Pending keys of the open mappings, one slot per mapping on the stack.
    keys: Vec<Option<Node>>,
    pub(crate) documents: Vec<(usize, Option<Node>)>,
    doc_line: usize,
}

impl TreeBuilder {
    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                let line = self.doc_line;
                self.documents.push((line, Some(node)));
            }
            Some(Node {
                kind: Kind::Seq(items),
                ..
            }) => items.push(node),
            Some(Node {
                kind: Kind::Map(pairs),
                ..
            }) => {
                let slot = self.keys.last_mut().expect("a key slot per open mapping");
                match slot.take() {
                    None => *slot = Some(node),
                    Some(key) => pairs.push((key, node)),
                }
            }
            Some(_) => unreachable!("only collections are pushed on the stack"),
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let node = |kind, anchor: usize, tag| Node {
            line: mark.line(),
            column: mark.col() + 1,
            index: mark.index(),
            anchored: anchor != 0,
            tag,
            kind,
        };
        match ev {
            Event::DocumentStart => self.doc_line = mark.line(),
            Event::Scalar(value, style, anchor, tag) => {
                self.push_value(node(Kind::Scalar { value, style }, anchor, tag))
            }
            Event::Alias(_) => self.push_value(node(Kind::Alias, 0, None)),
            Event::SequenceStart(anchor, tag) => {
                self.stack.push(node(Kind::Seq(Vec::new()), anchor, tag))
            }
            Event::MappingStart(anchor, tag) => {
                self.stack.push(node(Kind::Map(Vec::new()), anchor, tag));
                self.keys.push(None);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(done) = self.stack.pop() {
                    if matches!(done.kind, Kind::Map(_)) {
                        self.keys.pop();
                    }
                    self.push_value(done);
                }
            }
            Event::DocumentEnd => {
                if self.documents.last().map(|d| d.0) != Some(self.doc_line) {
                    self.documents.push((self.doc_line, None));
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
}

/// How deep collections may nest. aws-auth's entries nest three deep and a grant manifest five;
/// the limit keeps every walk over the tree (and its drop) within a small stack, whatever the
/// text: `- - - ... x` twenty thousand deep would otherwise overflow it and abort the process.
pub(crate) const MAX_DEPTH: usize = 64;

/// Why a text could not be built into a tree: its line, column (1-based) and what went wrong.
pub(crate) struct TreeError {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

/// Parses `text` into trees, one per document, refusing nesting past [`MAX_DEPTH`] as soon as
/// it is reached (the parser's own state lives on the heap).
pub(crate) fn build_tree(text: &str) -> Result<TreeBuilder, TreeError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = TreeBuilder::default();
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| TreeError {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: format!("YAML syntax error ({})", e.info()),
        })?;
        let end = ev == Event::StreamEnd;
        builder.on_event(ev, mark);
        if builder.stack.len() > MAX_DEPTH {
            return Err(TreeError {
                line: mark.line(),
                column: mark.col() + 1,
                message: format!(
                    "lists or mappings nested more than {MAX_DEPTH} deep; write the entries as a flat list"
                ),
            });
        }
        if end {
            return Ok(builder);
        }
    }
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

struct Reporter<'a> {
    key: &'static str,
    findings: &'a mut Vec<Finding>,
}

impl Reporter<'_> {
    fn at(&mut self, node: &Node, effect: Effect, message: String) {
        self.findings.push(Finding {
            key: self.key.to_string(),
            line: node.line,
            column: node.column,
            effect,
            message,
        });
    }

    /// Anchors, aliases and tags are legal YAML that this reader does not reproduce.
    fn check_props(&mut self, node: &Node) {
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

    fn block_scalar(&mut self, node: &Node) {
        self.at(
            node,
            Effect::NotExact,
            "block scalar (`|` or `>`) keeps line breaks in the value: write it on one line in double quotes".into(),
        );
    }
}

/// The root of a key must be a list (or empty). Returns its items.
fn root_list<'n>(root: &'n Node, section: Section, r: &mut Reporter<'_>) -> Option<&'n [Node]> {
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

fn read_mapping_entry(section: Section, item: &Node, r: &mut Reporter<'_>) -> Option<Mapping> {
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
        r.check_props(k);
        let key = match &k.kind {
            Kind::Scalar { value, .. } => value.clone(),
            // Reported by `complex_keys`.
            _ => continue,
        };
        let lower = arn::fold_case(&key);
        if let Some(first) = seen.insert(lower.clone(), k.line) {
            r.at(
                k,
                Effect::NotExact,
                format!("`{key}` is given twice in one entry (first on line {first}); EKS keys are case-insensitive, so which one wins is not evident: keep one", key = shown(&key)),
            );
        }
        let known = [arn_field, "username", "groups"];
        if known.contains(&lower.as_str()) && key != lower {
            r.at(
                k,
                Effect::Warning,
                format!(
                    "`{key}` is read case-insensitively as `{lower}`; write `{lower}`",
                    key = shown(&key),
                    lower = shown(&lower)
                ),
            );
        }
        match lower.as_str() {
            l if l == arn_field => arn = Some(read_string(v, &key, r)),
            "username" => username = read_string(v, &key, r),
            "groups" => groups = read_groups(v, &key, r),
            _ => {
                let hint = if lower == "sso" || lower == "userid" {
                    format!(
                        "`{key}` entries are not managed by this operator and are inert on EKS by default; remove it",
                        key = shown(&key)
                    )
                } else {
                    format!(
                        "unknown key `{key}` is ignored by EKS; the known keys are {arn_field}, username, groups",
                        key = shown(&key)
                    )
                };
                r.at(k, Effect::TextIgnored, hint);
            }
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
fn warn_about_entries<'a>(
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

// ---------------------------------------------------------------------------------------------
// YAML 1.1 plain-scalar resolution as go-yaml v2 does it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    Null,
    Bool,
    Int,
    Float,
    /// `.inf`/`.nan`: the JSON conversion fails and the whole key is dropped.
    Unrepresentable,
    /// Looks like a YAML timestamp; libraries disagree on whether it stays a string.
    Timestamp,
}

impl Resolved {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Resolved::Null => "null",
            Resolved::Bool => "boolean",
            Resolved::Int => "number",
            Resolved::Float => "number",
            Resolved::Unrepresentable => "float",
            Resolved::Timestamp => "timestamp",
        }
    }
}

/// What a plain scalar is in YAML 1.1 when it is not a string (`None`: a string).
pub(crate) fn resolve_plain(s: &str) -> Option<Resolved> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Resolved::Null),
        "y" | "Y" | "yes" | "Yes" | "YES" | "n" | "N" | "no" | "No" | "NO" | "true" | "True"
        | "TRUE" | "false" | "False" | "FALSE" | "on" | "On" | "ON" | "off" | "Off" | "OFF" => {
            return Some(Resolved::Bool);
        }
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF"
        | "-.inf" | "-.Inf" | "-.INF" => return Some(Resolved::Unrepresentable),
        _ => {}
    }
    let first = s.as_bytes()[0];
    if first == b'.' {
        return s.parse::<f64>().is_ok().then_some(Resolved::Float);
    }
    if !(first.is_ascii_digit() || first == b'+' || first == b'-') {
        return None;
    }
    if looks_like_timestamp(s) {
        return Some(Resolved::Timestamp);
    }
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    if is_go_int(&plain) {
        return Some(Resolved::Int);
    }
    if is_yaml_float(&plain) {
        return Some(Resolved::Float);
    }
    None
}

/// `YYYY-...` with a digit after the dash: conservative, so the reader flags rather than guesses.
fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 6 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[5].is_ascii_digit()
}

/// Go's `strconv.ParseInt(s, 0, 64)` / `ParseUint` syntax (any size: overflow becomes a float).
fn is_go_int(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits = |d: &str, radix| !d.is_empty() && d.chars().all(|c| c.is_digit(radix));
    if let Some(d) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        digits(d, 16)
    } else if let Some(d) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        digits(d, 8)
    } else if let Some(d) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        digits(d, 2)
    } else {
        digits(s, 10)
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let all_digits = |d: &str| d.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => !frac.is_empty() && all_digits(frac),
        Some((int, frac)) => !int.is_empty() && all_digits(int) && all_digits(frac),
        None => !mantissa.is_empty() && all_digits(mantissa),
    };
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exp_ok
}

#[cfg(test)]
mod tests {
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
        let text =
            format!("{NODE_ROLE}- rolearn: arn:aws:iam::111122223333:role/b\n\tusername: b\n");
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
        let r = roles(
            "- rolearn: \"arn:aws:iam::111122223333:role/a\"\n  username: \"a\\ufffe\\N\\L\"\n",
        );
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
                f.message.contains("nested more than 64 deep")
                    || f.message.contains("recursion limit"),
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
}
