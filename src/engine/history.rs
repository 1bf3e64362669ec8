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

/// Data keys of the history ConfigMap: `v` and a zero-padded sequence number.
fn key(seq: u64) -> String {
    format!("v{seq:010}")
}

/// The recorded versions, oldest first, with their sequence numbers. Unreadable items are skipped.
pub fn versions(history: &BTreeMap<String, String>) -> Vec<(u64, Version)> {
    let mut out: Vec<(u64, Version)> = history
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.strip_prefix('v')?.parse().ok()?,
                serde_json::from_str(v).ok()?,
            ))
        })
        .collect();
    out.sort_by_key(|(n, _)| *n);
    out
}

/// The history after recording `v`: at most `max_versions` versions and `max_bytes` bytes, the
/// oldest dropped first. A version larger than the whole budget is not kept (the history says so
/// through its absence rather than failing every write).
pub fn record(
    history: &BTreeMap<String, String>,
    v: &Version,
    max_versions: usize,
    max_bytes: usize,
) -> BTreeMap<String, String> {
    // Only the newest version is read: the history can hold 800 KiB, and a write that parsed and
    // re-serialized all of it would pay for that on every change.
    let numbered = |k: &String| k.strip_prefix('v')?.parse::<u64>().ok();
    let newest = history
        .iter()
        .filter_map(|(k, text)| Some((numbered(k)?, text)))
        .max_by_key(|(n, _)| *n);
    // The same resourceVersion twice (a write that failed and was retried) is kept once.
    if let Some((_, text)) = newest
        && serde_json::from_str::<Version>(text)
            .is_ok_and(|last| last.resource_version == v.resource_version && last.data == v.data)
    {
        return history.clone();
    }
    let next = newest.map_or(1, |(n, _)| n + 1);
    // Items that are not versions are not kept: the history holds nothing else.
    let mut out: BTreeMap<String, String> = history
        .iter()
        .filter(|(k, _)| numbered(k).is_some())
        .map(|(k, text)| (k.clone(), text.clone()))
        .collect();
    out.insert(
        key(next),
        serde_json::to_string(v).expect("a version serializes"),
    );
    let mut size: usize = out.iter().map(|(k, v)| k.len() + v.len()).sum();
    // Keys are zero-padded, so the first is the oldest.
    while let Some((k, text)) = out.first_key_value()
        && (out.len() > max_versions.max(1) || size > max_bytes)
    {
        size -= k.len() + text.len();
        let k = k.clone();
        out.remove(&k);
    }
    out
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
        out.extend(entry_diff(s, &entries(&b), &entries(&a)));
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
