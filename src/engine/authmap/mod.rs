//! The aws-auth domain, pure: ARNs, templates, the authenticator-faithful reader, the renderer.
pub mod arn;
mod canonical;
pub mod finding;
pub mod goyaml;
pub mod lookup;
pub(crate) mod memo;
pub mod read;
pub mod render;
pub(crate) mod scalar;
pub mod template;
pub(crate) mod tree;
pub mod yaml11;

use std::borrow::Cow;
use std::fmt;

/// How many characters of a user-supplied value a message echoes.
pub const ECHO_CHARS: usize = 120;

/// At most `max` characters of `s`, with an ellipsis and the count left out: messages (CLI,
/// statuses, events) echo values without letting a huge one flood them.
pub fn excerpt(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => {
            let rest = s[cut..].chars().count();
            Cow::Owned(format!("{}… ({rest} more characters)", &s[..cut]))
        }
    }
}

/// A value as messages echo it: at most [`ECHO_CHARS`] characters, with every character that
/// could move a terminal's cursor, end a log line or reorder text escaped (see [`escaped`]).
pub fn shown(s: &str) -> Cow<'_, str> {
    match excerpt(s, ECHO_CHARS) {
        Cow::Borrowed(b) => escaped(b),
        Cow::Owned(o) => match escaped(&o) {
            Cow::Borrowed(_) => Cow::Owned(o),
            Cow::Owned(e) => Cow::Owned(e),
        },
    }
}

/// Whether a character is escaped where text is echoed: C0 and C1 controls (ESC, CR, LF, TAB),
/// DEL, Unicode line and paragraph separators, bidirectional and zero-width format characters.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `s` with each character of [`needs_escape`] written `\u{XXXX}`: statuses, events, logs and
/// `render`'s verdicts show what a value holds without acting on it.
pub fn escaped(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{{{:04X}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The ConfigMap the authenticator reads.
pub const NAMESPACE: &str = "kube-system";
pub const NAME: &str = "aws-auth";

/// One of the three `data` keys the authenticator reads. Order is the authenticator's precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    MapRoles,
    MapUsers,
    MapAccounts,
}

impl Section {
    pub const ALL: [Section; 3] = [Section::MapRoles, Section::MapUsers, Section::MapAccounts];

    /// The section a `data` key names (exact, case-sensitive, as EKS reads it).
    pub fn from_key(key: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.key() == key)
    }

    pub fn key(self) -> &'static str {
        match self {
            Section::MapRoles => "mapRoles",
            Section::MapUsers => "mapUsers",
            Section::MapAccounts => "mapAccounts",
        }
    }

    /// The entry key holding the principal (`rolearn` / `userarn`); none for accounts.
    pub fn arn_field(self) -> &'static str {
        match self {
            Section::MapRoles => "rolearn",
            Section::MapUsers => "userarn",
            Section::MapAccounts => "",
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// One `mapRoles`/`mapUsers` entry as the authenticator holds it after parsing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mapping {
    pub arn: String,
    pub username: String,
    pub groups: Vec<String>,
}

/// What the authenticator holds for the three keys: the meaning of an aws-auth ConfigMap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthMap {
    pub roles: Vec<Mapping>,
    pub users: Vec<Mapping>,
    pub accounts: Vec<String>,
}

impl AuthMap {
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.users.is_empty() && self.accounts.is_empty()
    }
}
