//! What the reader says about a key's text: each finding located by line and column, with what
//! EKS does there and the fix.
use std::fmt;

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
