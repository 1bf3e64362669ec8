//! What the renderer has verified, per entry: the text of one rendered `mapRoles`/`mapUsers`
//! entry and the mapping the reader reads from it. A key the renderer writes is the concatenation
//! of such entry texts, each a block-sequence item starting `- ` at column 0 whose other lines are
//! indented and whose strings are double-quoted with every line break escaped; so a key made only
//! of known entry texts reads as the concatenation of their mappings, and a key rendered only
//! from verified entries needs no new re-read. That keeps a sync over thousands of grants from
//! parsing its own output again when only one entry changed.
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use super::read::Located;
use super::{Mapping, Section};

/// Bounded: cleared when it grows past this many entries (a few MiB at most).
const MAX_ENTRIES: usize = 50_000;

static VERIFIED: LazyLock<Mutex<HashMap<(Section, String), Mapping>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Records entry texts whose key was re-read and matched exactly.
pub(crate) fn remember(section: Section, texts: impl Iterator<Item = (String, Mapping)>) {
    let mut m = VERIFIED.lock().expect("memo lock");
    if m.len() > MAX_ENTRIES {
        m.clear();
    }
    for (text, mapping) in texts {
        m.insert((section, text), mapping);
    }
}

/// The entry texts not yet known to read as their mappings.
pub(crate) fn unverified<'a>(
    section: Section,
    entries: impl Iterator<Item = (&'a str, &'a Mapping)>,
) -> Vec<(&'a str, &'a Mapping)> {
    let m = VERIFIED.lock().expect("memo lock");
    let mut key = (section, String::new());
    entries
        .filter(|(text, mapping)| {
            key.1.clear();
            key.1.push_str(text);
            m.get(&key) != Some(*mapping)
        })
        .collect()
}

/// The entries of a key made only of verified entry texts (`None`: it is not, read it in full).
pub(crate) fn read_known(section: Section, text: &str) -> Option<Vec<Located<Mapping>>> {
    if !text.starts_with("- ") || !text.ends_with('\n') {
        return None;
    }
    let m = VERIFIED.lock().expect("memo lock");
    let mut out = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut line = 1;
    let bytes = text.as_bytes();
    let mut key = (section, String::new());
    for (i, b) in bytes.iter().enumerate() {
        if *b != b'\n' {
            continue;
        }
        line += 1;
        let next = i + 1;
        if next == bytes.len() || text[next..].starts_with("- ") {
            key.1.clear();
            key.1.push_str(&text[start..next]);
            let mapping = m.get(&key)?;
            out.push(Located {
                line: start_line,
                value: mapping.clone(),
            });
            start = next;
            start_line = line;
        }
    }
    Some(out)
}
