//! What the renderer has verified, per entry: the text of one rendered `mapRoles`/`mapUsers`
//! entry and the mapping the reader reads from it. A key the renderer writes is the concatenation
//! of such entry texts, each a block-sequence item starting `- ` at column 0 whose other lines are
//! indented and whose strings are double-quoted with every line break escaped; so a key made only
//! of known entry texts reads as the concatenation of their mappings, and a key rendered only
//! from verified entries needs no new re-read. That keeps a sync over thousands of grants from
//! parsing its own output again when only one entry changed. Texts are kept by their 128-bit
//! fingerprint (see [`crate::engine::fingerprint`]), not as text: the entry texts are already
//! held by the grants' decisions and by aws-auth itself.
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use super::{Mapping, Section};
use crate::engine::fingerprint::{Fingerprints, hash128};

/// Bounded: cleared when it grows past this many entries (a few MiB at most).
const MAX_ENTRIES: usize = 50_000;

/// Per mapping key (mapRoles, mapUsers): entry text (its fingerprint) -> the mapping it reads as.
type Verified = [HashMap<u128, Arc<Mapping>, Fingerprints>; 2];

static VERIFIED: LazyLock<Mutex<Verified>> = LazyLock::new(Default::default);

fn slot(section: Section) -> usize {
    usize::from(section != Section::MapRoles)
}

pub(crate) fn text_key(text: &str) -> u128 {
    hash128(|h| h.write(text.as_bytes()))
}

/// Records entry texts (by the fingerprints [`unverified`] gave them) read back exactly.
pub(crate) fn remember(
    section: Section,
    texts: impl ExactSizeIterator<Item = (u128, Arc<Mapping>)>,
) {
    let mut all = VERIFIED.lock().expect("memo lock");
    let m = &mut all[slot(section)];
    if m.len() > MAX_ENTRIES {
        *m = HashMap::default();
    }
    // Grown once for a first plan's thousands, not rehashed at each doubling.
    m.reserve(texts.len());
    m.extend(texts);
}

#[cfg(test)]
pub(crate) fn forget() {
    *VERIFIED.lock().expect("memo lock") = Default::default();
}

/// The entries whose texts (by the fingerprint [`text_key`] gave them) are not yet known to read
/// as their mappings.
pub(crate) fn unverified<T>(
    section: Section,
    entries: &[T],
    key_and_mapping: impl Fn(&T) -> (u128, &Arc<Mapping>),
) -> Vec<&T> {
    let all = VERIFIED.lock().expect("memo lock");
    let m = &all[slot(section)];
    entries
        .iter()
        .filter(|e| {
            let (key, mapping) = key_and_mapping(e);
            m.get(&key) != Some(mapping)
        })
        .collect()
}

/// The entries of a key made only of verified entry texts, each entry's line with the mapping
/// the memo shares (`None`: it is not, read it in full).
pub(crate) fn known(section: Section, text: &str) -> Option<Vec<(usize, Arc<Mapping>)>> {
    if !text.starts_with("- ") || !text.ends_with('\n') {
        return None;
    }
    // Split into entry texts and fingerprint them (on the cores when there are thousands)
    // before taking the lock.
    let mut parts: Vec<(usize, &str)> = Vec::new();
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
            parts.push((start_line, &text[start..next]));
            start = next;
            start_line = line;
        }
    }
    let keys = crate::engine::parallel::map(&parts, |&(line, t)| (line, text_key(t)));
    let all = VERIFIED.lock().expect("memo lock");
    let m = &all[slot(section)];
    keys.into_iter()
        .map(|(line, key)| m.get(&key).map(|mapping| (line, mapping.clone())))
        .collect()
}
