//! Principal keys hashed once where they are made, and the maps the plan keys by them.
use super::*;

/// An unowned entry the plan found, by principal key.
pub(super) struct Unowned<'a> {
    pub(super) section: Section,
    pub(super) line: usize,
    pub(super) entry: &'a Entry,
}

/// A principal key with its hash, worked out once where the key is made (a grant's decision,
/// an entry read from aws-auth), so the plan's maps over thousands of principals hash nothing.
#[derive(Debug, Clone)]
pub(super) struct OwnedKey {
    pub(super) hash: u64,
    pub(super) key: String,
}

/// A borrowed [`OwnedKey`]: what the plan's maps are keyed by.
#[derive(Debug, Clone, Copy)]
pub(super) struct Keyed<'a> {
    pub(super) hash: u64,
    pub(super) key: &'a str,
}

pub(super) static KEY_HASH: std::sync::LazyLock<std::hash::RandomState> =
    std::sync::LazyLock::new(std::hash::RandomState::new);

impl OwnedKey {
    pub(super) fn new(key: String) -> Self {
        OwnedKey {
            hash: Keyed::lookup(&key).hash,
            key,
        }
    }

    pub(super) fn borrowed(&self) -> Keyed<'_> {
        Keyed {
            hash: self.hash,
            key: &self.key,
        }
    }
}

impl<'a> Keyed<'a> {
    /// A key looked up by its text alone (hashed now).
    pub(super) fn lookup(key: &'a str) -> Self {
        use std::hash::BuildHasher;
        Keyed {
            hash: KEY_HASH.hash_one(key),
            key,
        }
    }

    pub(super) fn as_str(&self) -> &'a str {
        self.key
    }
}

impl PartialEq for Keyed<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl Eq for Keyed<'_> {}

impl std::hash::Hash for Keyed<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Maps keyed by [`Keyed`] (and its section) use the hash it carries.
#[derive(Default, Clone, Copy)]
pub(super) struct Prehashed;

impl std::hash::BuildHasher for Prehashed {
    type Hasher = PrehashedHasher;
    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher(0)
    }
}

pub(super) struct PrehashedHasher(u64);

impl std::hash::Hasher for PrehashedHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only sections' discriminants come this way; mixed in so each key's sections differ.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(super) type KeyMap<K, V> = HashMap<K, V, Prehashed>;
