//! Phase 1: aws-auth's `data` as the plan reads it.
use super::*;

/// aws-auth's `data` as the plan reads it: the reader's result, and each readable key's entries
/// with their lines and principal keys. Worked out once per text (see [`memo`]).
pub(super) struct Prepared {
    pub(super) read: AwsAuthRead,
    pub(super) entries: BTreeMap<Section, Vec<(usize, Entry, OwnedKey)>>,
}

impl Prepared {
    pub(super) fn new(data: &BTreeMap<String, String>) -> Self {
        // A key made only of entry texts the renderer has proven (the operator's own output)
        // shares their mappings with the renderer's memo and the grants' decisions: one mapping
        // per entry, not three.
        let (mut read, [known_roles, known_users]) = read_data_sharing(data);
        let mut known = [known_roles, known_users];
        let readable: Vec<Section> = Section::ALL
            .into_iter()
            .filter(|&s| read.readable(s))
            .collect();
        // The entries move out of the reader's result; the plan asks it only about findings.
        let mut take = |s: Section| -> Vec<(usize, Entry)> {
            let (mappings, shared) = match s {
                Section::MapRoles => (&mut read.roles.entries, &mut known[0]),
                Section::MapUsers => (&mut read.users.entries, &mut known[1]),
                Section::MapAccounts => {
                    return std::mem::take(&mut read.accounts.entries)
                        .into_iter()
                        .map(|e| (e.line, Entry::Account(e.value)))
                        .collect();
                }
            };
            match shared.take() {
                Some(shared) => shared
                    .into_iter()
                    .map(|(line, m)| (line, Entry::Mapping(m)))
                    .collect(),
                None => std::mem::take(mappings)
                    .into_iter()
                    .map(|e| (e.line, Entry::Mapping(Arc::new(e.value))))
                    .collect(),
            }
        };
        let entries = readable
            .into_iter()
            .map(|s| {
                // Each entry's principal key, on the cores when there are thousands.
                let taken = take(s);
                let keys = parallel::map(&taken, |(_, e)| OwnedKey::new(entry_key(e)));
                let entries = taken
                    .into_iter()
                    .zip(keys)
                    .map(|((line, e), key)| (line, e, key))
                    .collect();
                (s, entries)
            })
            .collect();
        Prepared { read, entries }
    }
}

/// The current entries, split: unowned ones are kept; managed ones are rebuilt from the grants.
pub(super) struct Current<'p> {
    pub(super) unowned: KeyMap<Keyed<'p>, Unowned<'p>>,
    pub(super) managed: KeyMap<(Section, Keyed<'p>), &'p Entry>,
    /// Per key, whether each current entry is managed (the assembly asks again).
    pub(super) is_managed: BTreeMap<Section, Vec<bool>>,
}

/// Phase 1: each current entry is managed (the ownership record lists it) or not.
pub(super) fn split<'p>(prepared: &'p Prepared, owned_before: &Ownership) -> Current<'p> {
    let mut now = Current {
        unowned: KeyMap::default(),
        managed: KeyMap::default(),
        is_managed: BTreeMap::new(),
    };
    for (&section, entries) in &prepared.entries {
        let flags = now.is_managed.entry(section).or_default();
        for (line, entry, key) in entries {
            let owned = owned_before.owns(section, &key.key);
            flags.push(owned);
            if owned {
                now.managed.insert((section, key.borrowed()), entry);
            } else {
                now.unowned.entry(key.borrowed()).or_insert(Unowned {
                    section,
                    line: *line,
                    entry,
                });
            }
        }
    }
    now
}
