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

/// Per mapping key (mapRoles, mapUsers): entry text -> the mapping it reads as.
type Verified = [HashMap<String, Mapping>; 2];

static VERIFIED: LazyLock<Mutex<Verified>> = LazyLock::new(Default::default);

fn slot(section: Section) -> usize {
    usize::from(section != Section::MapRoles)
}

/// Records entry texts whose key was re-read and matched exactly.
pub(crate) fn remember(section: Section, texts: impl Iterator<Item = (String, Mapping)>) {
    let mut all = VERIFIED.lock().expect("memo lock");
    let m = &mut all[slot(section)];
    if m.len() > MAX_ENTRIES {
        m.clear();
    }
    m.extend(texts);
}

#[cfg(test)]
pub(crate) fn forget() {
    *VERIFIED.lock().expect("memo lock") = Default::default();
}

/// The entry texts not yet known to read as their mappings.
pub(crate) fn unverified<'a>(
    section: Section,
    entries: &[(&'a str, &'a Mapping)],
) -> Vec<(&'a str, &'a Mapping)> {
    let all = VERIFIED.lock().expect("memo lock");
    let m = &all[slot(section)];
    entries
        .iter()
        .filter(|(text, mapping)| m.get(*text) != Some(*mapping))
        .copied()
        .collect()
}

/// The entries of a key made only of verified entry texts (`None`: it is not, read it in full).
pub(crate) fn read_known(section: Section, text: &str) -> Option<Vec<Located<Mapping>>> {
    if !text.starts_with("- ") || !text.ends_with('\n') {
        return None;
    }
    let all = VERIFIED.lock().expect("memo lock");
    let m = &all[slot(section)];
    let mut out = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut line = 1;
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b != b'\n' {
            continue;
        }
        line += 1;
        let next = i + 1;
        if next == bytes.len() || text[next..].starts_with("- ") {
            let mapping = m.get(&text[start..next])?;
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
