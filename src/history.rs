//! History of aws-auth and restore: before every write the operator keeps the previous `data`
//! and ownership record in a ConfigMap beside aws-auth, so that entries someone broke or deleted
//! by hand (EKS node roles) can be brought back. Recording and restoring are pure; the commands
//! around them (`history`, `history show`, `restore`, `confirm-removal`) talk to the cluster.
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};

use crate::authmap::read::read_data;
use crate::authmap::{Section, shown};
use crate::plan::{
    CONFIRM_ANNOTATION, HeldRemoval, OWNERSHIP_ANNOTATION, Ownership, entry_diff, entry_key,
    render_entries, section_entries,
};
use crate::{Error, Result};

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
fn history_name(given: Option<&str>, aws_auth: &str) -> String {
    given.map_or_else(|| format!("{aws_auth}-history"), str::to_string)
}

/// aws-auth as it was before one write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    /// RFC 3339, when it was replaced.
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
    let mut all = versions(history);
    // The same resourceVersion twice (a write that failed and was retried) is kept once.
    if all
        .last()
        .is_some_and(|(_, last)| last.resource_version == v.resource_version && last.data == v.data)
    {
        return history.clone();
    }
    let next = all.last().map_or(1, |(n, _)| n + 1);
    all.push((next, v.clone()));
    let mut out: BTreeMap<String, String> = all
        .into_iter()
        .map(|(n, v)| {
            (
                key(n),
                serde_json::to_string(&v).expect("a version serializes"),
            )
        })
        .collect();
    let size =
        |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    while !out.is_empty() && (out.len() > max_versions.max(1) || size(&out) > max_bytes) {
        let oldest = out.keys().next().cloned().expect("not empty");
        out.remove(&oldest);
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
        let is_owned = |e: &crate::validate::Entry| owned.owns(s, &entry_key(e));
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

// ---------------------------------------------------------------------------------------------
// The commands.

#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Namespace of aws-auth.
    #[arg(long, global = true, env = "AWS_AUTH_NAMESPACE", default_value = crate::authmap::NAMESPACE)]
    pub aws_auth_namespace: String,
    /// Name of aws-auth.
    #[arg(long, global = true, env = "AWS_AUTH_NAME", default_value = crate::authmap::NAME)]
    pub aws_auth_name: String,
    /// ConfigMap that keeps the history (default: `<aws-auth name>-history`).
    #[arg(long, global = true, env = "AWS_AUTH_HISTORY_NAME")]
    pub history_name: Option<String>,
}

impl Target {
    fn history_name(&self) -> String {
        history_name(self.history_name.as_deref(), &self.aws_auth_name)
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct HistoryCmd {
    #[command(subcommand)]
    pub action: Option<HistoryAction>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum HistoryAction {
    /// Print version N as a ConfigMap manifest.
    Show { n: u64 },
}

#[derive(Debug, Clone, clap::Args)]
pub struct RestoreCmd {
    /// The version to restore (see `history`).
    pub n: u64,
    /// Print what would change and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConfirmCmd {
    /// The token the held removal names (annotation `aws-auth.dev/removal-held`, event `RemovalHeld`).
    pub token: String,
    #[command(flatten)]
    pub target: Target,
}

async fn api(target: &Target) -> Result<Api<ConfigMap>> {
    let client = crate::controller::client().await?;
    Ok(Api::namespaced(client, &target.aws_auth_namespace))
}

async fn load_versions(cms: &Api<ConfigMap>, target: &Target) -> Result<Vec<(u64, Version)>> {
    let name = target.history_name();
    let h = cms.get_opt(&name).await?;
    Ok(versions(&h.and_then(|c| c.data).unwrap_or_default()))
}

fn usage(flag: &'static str, message: String) -> Error {
    Error::Usage { flag, message }
}

/// `history`: the versions, newest last, with what the write after each changed.
pub async fn history(cmd: &HistoryCmd, out: &mut dyn Write) -> Result<bool> {
    let cms = api(&cmd.target).await?;
    let all = load_versions(&cms, &cmd.target).await?;
    let io = |e| Error::Io {
        path: "<stdout>".into(),
        source: e,
    };
    if let Some(HistoryAction::Show { n }) = &cmd.action {
        let (_, v) = all.iter().find(|(m, _)| m == n).ok_or_else(|| {
            usage(
                "N",
                format!(
                    "no version {n} in {}; `history` lists them",
                    cmd.target.history_name()
                ),
            )
        })?;
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(cmd.target.aws_auth_name.clone()),
                namespace: Some(cmd.target.aws_auth_namespace.clone()),
                annotations: v
                    .managed
                    .clone()
                    .map(|m| BTreeMap::from([(OWNERSHIP_ANNOTATION.to_string(), m)])),
                ..Default::default()
            },
            data: Some(v.data.clone()),
            ..Default::default()
        };
        writeln!(
            out,
            "# version {n}: {} (resourceVersion {})",
            v.time, v.resource_version
        )
        .map_err(io)?;
        out.write_all(
            serde_yaml::to_string(&cm)
                .expect("a ConfigMap serializes")
                .as_bytes(),
        )
        .map_err(io)?;
        return Ok(true);
    }
    if all.is_empty() {
        writeln!(
            out,
            "no history yet in {}/{}",
            cmd.target.aws_auth_namespace,
            cmd.target.history_name()
        )
        .map_err(io)?;
        return Ok(true);
    }
    let current = cms
        .get_opt(&cmd.target.aws_auth_name)
        .await?
        .and_then(|c| c.data)
        .unwrap_or_default();
    for (i, (n, v)) in all.iter().enumerate() {
        let next = all.get(i + 1).map_or(&current, |(_, w)| &w.data);
        let entries = read_data(&v.data).auth_map();
        writeln!(
            out,
            "{n:>4}  {}  resourceVersion {}  {} roles, {} users, {} accounts",
            v.time,
            v.resource_version,
            entries.roles.len(),
            entries.users.len(),
            entries.accounts.len()
        )
        .map_err(io)?;
        let label = if i + 1 == all.len() {
            "then, up to now"
        } else {
            "then"
        };
        let ch = changes(&v.data, next);
        if ch.is_empty() {
            writeln!(out, "      {label}: no entry changed").map_err(io)?;
        }
        for c in ch {
            writeln!(out, "      {label}: {}", shown(&c)).map_err(io)?;
        }
    }
    Ok(true)
}

/// `restore N`: version N's unowned entries back into aws-auth, with the resourceVersion
/// precondition and the renderer's re-read check.
pub async fn restore_cmd(cmd: &RestoreCmd, out: &mut dyn Write) -> Result<bool> {
    let cms = api(&cmd.target).await?;
    let all = load_versions(&cms, &cmd.target).await?;
    let (_, v) = all.iter().find(|(m, _)| *m == cmd.n).ok_or_else(|| {
        usage(
            "N",
            format!(
                "no version {} in {}; `history` lists them",
                cmd.n,
                cmd.target.history_name()
            ),
        )
    })?;
    let current = cms.get_opt(&cmd.target.aws_auth_name).await?;
    let r = restore(v, current.as_ref()).map_err(|m| usage("N", m))?;
    let io = |e| Error::Io {
        path: "<stdout>".into(),
        source: e,
    };
    if r.changes.is_empty() && current.as_ref().and_then(|c| c.data.as_ref()) == Some(&r.data) {
        writeln!(
            out,
            "aws-auth already holds version {}'s unmanaged entries; nothing to do",
            cmd.n
        )
        .map_err(io)?;
        return Ok(true);
    }
    for c in &r.changes {
        writeln!(out, "{c}").map_err(io)?;
    }
    if cmd.dry_run {
        writeln!(out, "dry run: nothing written").map_err(io)?;
        return Ok(true);
    }
    let pp = PostParams {
        field_manager: Some("aws-auth-operator-restore".into()),
        ..Default::default()
    };
    match current {
        Some(mut cm) => {
            cm.data = Some(r.data);
            cms.replace(&cmd.target.aws_auth_name, &pp, &cm).await.map_err(|e| match e {
                kube::Error::Api(s) if s.is_conflict() => usage(
                    "N",
                    "aws-auth changed while restoring (resourceVersion precondition); run restore again".into(),
                ),
                e => e.into(),
            })?;
        }
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(cmd.target.aws_auth_name.clone()),
                    namespace: Some(cmd.target.aws_auth_namespace.clone()),
                    ..Default::default()
                },
                data: Some(r.data),
                ..Default::default()
            };
            cms.create(&pp, &cm).await?;
        }
    }
    writeln!(
        out,
        "restored version {}'s unmanaged entries into {}/{}",
        cmd.n, cmd.target.aws_auth_namespace, cmd.target.aws_auth_name
    )
    .map_err(io)?;
    Ok(true)
}

/// `confirm-removal TOKEN`: lets the held removal with exactly this token proceed.
pub async fn confirm_removal(cmd: &ConfirmCmd, out: &mut dyn Write) -> Result<bool> {
    let cms = api(&cmd.target).await?;
    let current = cms.get_opt(&cmd.target.aws_auth_name).await?;
    let held = HeldRemoval::from_configmap(current.as_ref()).ok_or_else(|| {
        usage(
            "TOKEN",
            format!(
                "{}/{} holds back no removal",
                cmd.target.aws_auth_namespace, cmd.target.aws_auth_name
            ),
        )
    })?;
    if held.token != cmd.token.trim() {
        return Err(usage(
            "TOKEN",
            format!(
                "`{}` is not the token of the removal held now ({}, {} entries: {}); check that this is the removal you mean, then confirm it with its own token",
                shown(&cmd.token),
                held.token,
                held.count,
                held.summary()
            ),
        ));
    }
    if held.confirm.is_none() {
        return Err(usage(
            "TOKEN",
            format!("this removal cannot be confirmed: {}", held.reason),
        ));
    }
    let rv = current.and_then(|c| c.metadata.resource_version);
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": rv, "annotations": { CONFIRM_ANNOTATION: held.token } }
    });
    cms.patch(
        &cmd.target.aws_auth_name,
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|e| match e {
        kube::Error::Api(s) if s.is_conflict() => usage(
            "TOKEN",
            "aws-auth changed meanwhile; look at the held removal again".into(),
        ),
        e => e.into(),
    })?;
    let io = |e| Error::Io {
        path: "<stdout>".into(),
        source: e,
    };
    writeln!(
        out,
        "confirmed: the operator now removes {} managed entries: {}",
        held.count,
        held.summary()
    )
    .map_err(io)?;
    Ok(true)
}

#[cfg(test)]
mod tests;
