//! History of aws-auth and restore: before every write the operator keeps the previous `data`
//! and ownership record in a ConfigMap beside aws-auth, so that entries someone broke or deleted
//! by hand (EKS node roles) can be brought back. Recording and restoring are pure; the commands
//! around them (`history`, `history show`, `restore`, `confirm-removal`) talk to the cluster.
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ConfigMap;
use serde::{Deserialize, Serialize};

use crate::engine::authmap::Section;
use crate::engine::authmap::read::read_data;
use crate::engine::plan::{
    OWNERSHIP_ANNOTATION, Ownership, entry_diff, entry_key, render_entries, section_entries,
};

#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// ConfigMap that keeps the history, in aws-auth's namespace (default: `<aws-auth name>-history`).
    #[arg(long, env = "AWS_AUTH_HISTORY_NAME")]
    pub history_name: Option<String>,
    /// Versions kept; the oldest are dropped first.
    #[arg(long, env = "AWS_AUTH_HISTORY_VERSIONS", default_value_t = 20)]
    pub history_versions: usize,
    /// Bytes the history may take (a ConfigMap holds at most 1 MiB); the oldest go first.
    #[arg(long, env = "AWS_AUTH_HISTORY_BYTES", default_value_t = 800 * 1024)]
    pub history_bytes: usize,
}

impl HistoryArgs {
    pub fn name(&self, aws_auth: &str) -> String {
        history_name(self.history_name.as_deref(), aws_auth)
    }
}

/// The history ConfigMap: as given, or `<aws-auth name>-history`.
pub(crate) fn history_name(given: Option<&str>, aws_auth: &str) -> String {
    given.map_or_else(|| format!("{aws_auth}-history"), str::to_string)
}

/// aws-auth as it was before one write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    /// RFC 3339, when it was recorded: right after the operator wrote it, or right before the
    /// operator replaced it (a version someone else wrote).
    pub time: String,
    /// The resourceVersion it had.
    pub resource_version: String,
    pub data: BTreeMap<String, String>,
    /// The ownership record it carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<String>,
}

impl Version {
    pub fn of(cm: &ConfigMap, time: String) -> Version {
        Version {
            time,
            resource_version: cm.metadata.resource_version.clone().unwrap_or_default(),
            data: cm.data.clone().unwrap_or_default(),
            managed: cm
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(OWNERSHIP_ANNOTATION).cloned()),
        }
    }
}

/// [`Version`] serialized from a ConfigMap it borrows: the same JSON as `Version::of` gives, without
/// a copy of up to 1 MiB of data before it is serialized (the history is kept right after a write,
/// when the pass holds the most).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionOf<'a> {
    time: &'a str,
    resource_version: &'a str,
    data: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    managed: Option<&'a String>,
}

impl Version {
    /// The resourceVersion and the JSON of the version of `cm` recorded at `time`.
    pub fn json_of(cm: &ConfigMap, time: &str) -> (String, String) {
        let empty = BTreeMap::new();
        let resource_version = cm.metadata.resource_version.as_deref().unwrap_or_default();
        let v = VersionOf {
            time,
            resource_version,
            data: cm.data.as_ref().unwrap_or(&empty),
            managed: cm
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(OWNERSHIP_ANNOTATION)),
        };
        let json = serde_json::to_string(&v).expect("a version serializes");
        (resource_version.to_string(), json)
    }
}

/// Data keys of the history ConfigMap: `v` and a zero-padded sequence number.
fn key(seq: u64) -> String {
    format!("v{seq:010}")
}

/// The recorded versions, oldest first, with their sequence numbers. Unreadable items are skipped.
pub fn versions(history: &BTreeMap<String, String>) -> Vec<(u64, Version)> {
    let mut out: Vec<(u64, Version)> = history
        .iter()
        .filter_map(|(k, v)| Some((seq(k)?, serde_json::from_str(v).ok()?)))
        .collect();
    out.sort_by_key(|(n, _)| *n);
    out
}

/// What the controller keeps of the history ConfigMap between writes instead of the ConfigMap
/// itself (up to 800 KiB): each version's key and size, and which aws-auth resourceVersion the
/// newest version holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    /// Version key -> bytes (key and value), oldest first: keys are zero-padded.
    pub versions: BTreeMap<String, usize>,
    /// aws-auth's resourceVersion in the newest version.
    pub newest: Option<String>,
    /// aws-auth's resourceVersion of the last version found too large to keep: it is not
    /// serialized again before every write (up to 1 MiB each time, for nothing).
    pub passed_over: Option<String>,
    /// Items that are not versions; the next record removes them.
    pub foreign: Vec<String>,
}

fn seq(key: &str) -> Option<u64> {
    key.strip_prefix('v')?.parse().ok()
}

impl Index {
    /// Reads only the newest version in full.
    pub fn of(history: &BTreeMap<String, String>) -> Index {
        let mut index = Index::default();
        for (k, v) in history {
            match seq(k) {
                Some(_) => {
                    index.versions.insert(k.clone(), k.len() + v.len());
                }
                None => index.foreign.push(k.clone()),
            }
        }
        index.newest = index
            .versions
            .keys()
            .max_by_key(|k| seq(k))
            .and_then(|k| serde_json::from_str::<Version>(&history[k]).ok())
            .map(|v| v.resource_version);
        index
    }

    /// Whether aws-auth at this resourceVersion needs no recording: the newest version holds it
    /// already, or it was found too large to keep.
    pub fn holds(&self, resource_version: &str) -> bool {
        let rv = Some(resource_version);
        !resource_version.is_empty()
            && (self.newest.as_deref() == rv || self.passed_over.as_deref() == rv)
    }
}

/// The change to the history's `data` that records a version, given as its resourceVersion and
/// JSON (see [`Version::json_of`]): a JSON merge patch (the new version, and `None` for each item
/// dropped), with the index after it; `None` when that version is the newest one already (a write that failed and was retried). At most `max_versions` versions and `max_bytes`
/// bytes are kept, the oldest dropped first; a version larger than the whole budget is not kept
/// and costs no other version (the history says so through its absence rather than failing
/// every write).
pub fn record(
    index: &Index,
    resource_version: &str,
    text: String,
    max_versions: usize,
    max_bytes: usize,
) -> Option<(BTreeMap<String, Option<String>>, Index)> {
    if index.holds(resource_version) {
        return None;
    }
    let next = index
        .versions
        .keys()
        .filter_map(|k| seq(k))
        .max()
        .map_or(1, |n| n + 1);
    let key = key(next);
    let mut after = index.clone();
    after.foreign.clear();
    let mut patch: BTreeMap<String, Option<String>> =
        index.foreign.iter().map(|k| (k.clone(), None)).collect();
    if key.len() + text.len() > max_bytes {
        after.passed_over = Some(resource_version.to_string());
        return Some((patch, after));
    }
    after.versions.insert(key.clone(), key.len() + text.len());
    after.newest = Some(resource_version.to_string());
    let mut size: usize = after.versions.values().sum();
    while after.versions.len() > max_versions.max(1) || size > max_bytes {
        let Some((oldest, bytes)) = after.versions.pop_first() else {
            break;
        };
        size -= bytes;
        patch.insert(oldest, None);
    }
    patch.insert(key, Some(text));
    Some((patch, after))
}

/// Entry-level changes from one `data` to another, `+`/`-` lines as the plan prints them.
pub fn changes(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let (b, a) = (read_data(before), read_data(after));
    let mut out = Vec::new();
    for s in Section::ALL {
        let entries = |r| {
            section_entries(r, s)
                .into_iter()
                .map(|(_, e)| e)
                .collect::<Vec<_>>()
        };
        out.extend(
            entry_diff(s, &entries(&b), &entries(&a))
                .iter()
                .map(ToString::to_string),
        );
        if (!b.readable(s) || !a.readable(s)) && before.get(s.key()) != after.get(s.key()) {
            out.push(format!(
                "~ {s}: text changed (unreadable in one of the two)"
            ));
        }
    }
    out
}

/// What `restore` would write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restore {
    pub data: BTreeMap<String, String>,
    pub changes: Vec<String>,
}

/// aws-auth with the entries `old` held that the operator does not own (by the current ownership
/// record) written back: in `old`'s order, followed by unowned entries added since (nobody loses
/// an entry by a restore). Managed entries stay as they are now; they follow the grants. A key
/// `old` holds but that cannot be read exactly is refused, and nothing is written.
pub fn restore(old: &Version, current: Option<&ConfigMap>) -> Result<Restore, String> {
    let empty = BTreeMap::new();
    let cur_data = current.and_then(|c| c.data.as_ref()).unwrap_or(&empty);
    let owned = Ownership::from_configmap(current).unwrap_or_default();
    let (old_read, cur_read) = (read_data(&old.data), read_data(cur_data));
    let mut data = cur_data.clone();
    for s in Section::ALL {
        if let Some(f) = old_read.first_blocking(s) {
            return Err(format!(
                "version from {} (resourceVersion {}) holds a {s} that cannot be read exactly ({f}); choose another version",
                old.time, old.resource_version
            ));
        }
        let old_entries = section_entries(&old_read, s);
        let cur_readable = cur_read.readable(s);
        let cur_entries = if cur_readable {
            section_entries(&cur_read, s)
        } else {
            Vec::new()
        };
        let is_owned = |e: &crate::engine::validate::Entry| owned.owns(s, &entry_key(e));
        let mut after: Vec<_> = old_entries
            .iter()
            .map(|(_, e)| e.clone())
            .filter(|e| !is_owned(e))
            .collect();
        let restored: BTreeSet<String> = after.iter().map(entry_key).collect();
        after.extend(
            cur_entries
                .iter()
                .map(|(_, e)| e.clone())
                .filter(|e| !is_owned(e) && !restored.contains(&entry_key(e))),
        );
        // Managed entries: as they are now; from `old` when today's text cannot be read.
        let managed_source = if cur_readable {
            &cur_entries
        } else {
            &old_entries
        };
        after.extend(
            managed_source
                .iter()
                .map(|(_, e)| e.clone())
                .filter(|e| is_owned(e)),
        );
        let before: Vec<_> = cur_entries.into_iter().map(|(_, e)| e).collect();
        if cur_readable && after == before {
            continue;
        }
        if after.is_empty() {
            data.remove(s.key());
        } else {
            let text = render_entries(s, &after).map_err(|e| e.to_string())?;
            data.insert(s.key().to_string(), text);
        }
    }
    let changes = changes(cur_data, &data);
    Ok(Restore { data, changes })
}

#[cfg(test)]
mod tests;
