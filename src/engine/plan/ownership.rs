//! The ownership record on aws-auth: which principals the operator wrote, and which grant holds
//! each; its readable and deflated forms and what an entry costs in it.
use super::*;

/// The principals the operator wrote, per key (lower-cased principal keys), each with the
/// [`Holder`] of the grant that holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    pub keys: BTreeMap<Section, BTreeMap<String, Option<Holder>>>,
    /// Read from a record written before holders were recorded (version 1 or 2): an invalid
    /// grant's status is then trusted for the entry it keeps, until the record is rewritten.
    pub legacy: bool,
}

/// Which grant holds an entry: a digest of the grant's uid (a manifest not created yet: its
/// name). The API server picks uids, so a grant cannot be made to hold another's entry; an
/// invalid grant keeps the entry it last applied only when the record names it as the holder
/// (its status, which whoever may patch it could forge, only says which entry that is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Holder(pub u32);

impl Holder {
    pub fn of<G: GrantRef + ?Sized>(g: &G) -> Self {
        // FNV-1a: stable across processes and versions, unlike the keyed fingerprints.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in g.uid().unwrap_or(g.name()).bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        Holder((h ^ (h >> 32)) as u32)
    }
}

/// `#` and eight hex digits after a principal's name in the record (no IAM name holds a `#`).
pub(super) const HOLDER_BYTES: usize = 9;

impl Ownership {
    pub fn from_configmap(cm: Option<&ConfigMap>) -> Result<Self, String> {
        let Some(value) = cm
            .and_then(|c| c.metadata.annotations.as_ref())
            .and_then(|a| a.get(OWNERSHIP_ANNOTATION))
        else {
            return Ok(Self::default());
        };
        let invalid = |e: &dyn std::fmt::Display| {
            format!(
                "annotation {OWNERSHIP_ANNOTATION} is not valid: {e}; every entry is treated as not managed"
            )
        };
        let mut json: serde_json::Value = serde_json::from_str(value).map_err(|e| invalid(&e))?;
        if json.get("v") == Some(&3.into()) {
            json = inflate_record(&json).map_err(|e| invalid(&e))?;
        }
        // Versions 2 and 4 group the principals by what precedes their last `/`, and version 4
        // follows each name with its holder; the first version (a plain list per key) is still
        // read. Older versions are rewritten as version 4 at the next write.
        let version = json.get("v").and_then(serde_json::Value::as_u64);
        let legacy = version != Some(4);
        let raw: BTreeMap<String, BTreeSet<String>> = if version.is_some() {
            let grouped: BTreeMap<String, serde_json::Value> =
                serde_json::from_value(json).map_err(|e| invalid(&e))?;
            let mut out = BTreeMap::new();
            for (k, v) in grouped.into_iter().filter(|(k, _)| k != "v") {
                let groups: BTreeMap<String, Vec<String>> =
                    serde_json::from_value(v).map_err(|e| invalid(&e))?;
                let keys: BTreeSet<String> = groups
                    .into_iter()
                    .flat_map(|(prefix, names)| {
                        names.into_iter().map(move |n| format!("{prefix}{n}"))
                    })
                    .collect();
                out.insert(k, keys);
            }
            out
        } else {
            serde_json::from_value(json).map_err(|e| invalid(&e))?
        };
        let mut keys = BTreeMap::new();
        for (k, v) in raw {
            let section = Section::from_key(&k).ok_or_else(|| {
                format!("annotation {OWNERSHIP_ANNOTATION} names unknown key `{k}`")
            })?;
            let mut held = BTreeMap::new();
            for name in v {
                let (name, holder) = match name.rsplit_once('#').filter(|_| !legacy) {
                    Some((n, h)) => {
                        let h = u32::from_str_radix(h, 16)
                            .ok()
                            .filter(|_| h.len() == 8)
                            .ok_or_else(|| invalid(&format!("`{n}#{h}` has no valid holder")))?;
                        (n.to_string(), Some(Holder(h)))
                    }
                    None => (name, None),
                };
                held.insert(name, holder);
            }
            keys.insert(section, held);
        }
        Ok(Ownership { keys, legacy })
    }

    pub fn owns(&self, section: Section, key: &str) -> bool {
        self.keys.get(&section).is_some_and(|s| s.contains_key(key))
    }

    pub fn holder(&self, section: Section, key: &str) -> Option<Holder> {
        self.keys.get(&section)?.get(key).copied().flatten()
    }

    /// Whether the entry at `key` may be kept for the grant `holder` whose status says it holds
    /// it (an invalid grant's last applied entry).
    pub(super) fn may_keep(&self, section: Section, key: &str, holder: Holder) -> bool {
        self.owns(section, key) && (self.legacy || self.holder(section, key) == Some(holder))
    }

    /// The number of managed entries.
    pub fn len(&self) -> usize {
        self.keys.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Version 4: `{"v":4,"mapRoles":{"arn:aws:iam::111122223333:role/":["a#0badf00d"]}}`, the
    /// common part of each principal written once, each name followed by its holder. Past
    /// [`DEFLATE_ABOVE`] bytes, version 3: `{"v":3,"deflate":"<base64>"}`, the version 4 text
    /// deflated (a third of it or less at thousands of grants).
    pub fn to_annotation(&self) -> String {
        let text = self.to_record();
        if text.len() <= DEFLATE_ABOVE {
            return text;
        }
        use std::io::Write;
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(text.as_bytes()).expect("deflating into memory");
        let deflated = z.finish().expect("deflating into memory");
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, deflated);
        format!(r#"{{"deflate":"{b64}","v":3}}"#)
    }

    /// Whether `text`, a record of these principals, is in the format [`Self::to_annotation`]
    /// writes them in (the deflated text is not compared: the principals are the same already).
    pub fn is_written_as(&self, text: &str) -> bool {
        let v4 = self.to_record();
        if v4.len() <= DEFLATE_ABOVE {
            text == v4
        } else {
            !self.legacy && text.starts_with(r#"{"deflate":""#)
        }
    }

    pub(super) fn to_record(&self) -> String {
        let mut out = serde_json::Map::new();
        out.insert("v".into(), 4.into());
        for (section, keys) in self.keys.iter().filter(|(_, v)| !v.is_empty()) {
            let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (k, holder) in keys {
                let (prefix, name) = split_key(k);
                groups.entry(prefix).or_default().push(match holder {
                    Some(Holder(h)) => format!("{name}#{h:08x}"),
                    None => name.to_string(),
                });
            }
            out.insert(
                section.key().into(),
                serde_json::to_value(groups).expect("string lists serialize"),
            );
        }
        serde_json::Value::Object(out).to_string()
    }

    /// The same principals and holders per key (a key with none is the same as no key).
    pub(super) fn same_keys(&self, other: &Ownership) -> bool {
        type Held = BTreeMap<String, Option<Holder>>;
        fn non_empty(o: &Ownership) -> impl Iterator<Item = (&Section, &Held)> {
            o.keys.iter().filter(|(_, v)| !v.is_empty())
        }
        self.legacy == other.legacy && non_empty(self).eq(non_empty(other))
    }
}

/// Ownership records longer than this are written deflated (version 3); shorter ones stay as
/// readable JSON.
pub const DEFLATE_ABOVE: usize = 8 * 1024;

/// The version 4 (or 2) record inside a version 3 one. Inflating stops past the largest record
/// the annotation limit allows, so a record made by hand cannot make the operator allocate more.
pub(super) fn inflate_record(json: &serde_json::Value) -> Result<serde_json::Value, String> {
    use std::io::Read;
    let b64 = json
        .get("deflate")
        .and_then(|d| d.as_str())
        .ok_or("version 3 has no `deflate` text")?;
    let deflated = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
        .map_err(|e| format!("`deflate` is not base64: {e}"))?;
    let mut text = Vec::new();
    let read = flate2::read::DeflateDecoder::new(&deflated[..])
        .take(MAX_INFLATED as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("`deflate` does not inflate: {e}"))?;
    if read > MAX_INFLATED {
        return Err(format!("`deflate` inflates past {MAX_INFLATED} bytes"));
    }
    let inner: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("the inflated record: {e}"))?;
    if inner.get("v") != Some(&2.into()) && inner.get("v") != Some(&4.into()) {
        return Err("the inflated record is not version 2 or 4".into());
    }
    Ok(inner)
}

/// The plan counts the record at its version 4 size against the 256 KiB annotation limit, so no
/// record it writes inflates past that.
pub(super) const MAX_INFLATED: usize = 256 * 1024;

/// A principal key split after its last `/` (the part the ownership record shares).
pub(super) fn split_key(k: &str) -> (&str, &str) {
    match k.rfind('/') {
        Some(i) => k.split_at(i + 1),
        None => ("", k),
    }
}

/// Bytes the ownership record grows by when `key` is added (its prefix is counted the first
/// time), and the prefix to note when it is. `prefix` is the prefix's length and [`Keyed`] hash
/// when known.
pub(super) fn record_cost<'k>(
    key: &'k str,
    prefix: Option<(usize, u64)>,
    prefixes: &KeyMap<Keyed<'k>, ()>,
) -> (usize, Option<Keyed<'k>>) {
    let (prefix, name) = match prefix {
        Some((len, hash)) => (
            Keyed {
                hash,
                key: &key[..len],
            },
            &key[len..],
        ),
        None => {
            let (p, n) = split_key(key);
            (Keyed::lookup(p), n)
        }
    };
    let name = name.len() + 3 + HOLDER_BYTES;
    if prefixes.contains_key(&prefix) {
        (name, None)
    } else {
        (name + prefix.key.len() + 8, Some(prefix))
    }
}
