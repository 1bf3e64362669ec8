//! `history`, `history show N`, `restore N` and `confirm-removal TOKEN`: the history ConfigMap
//! and the breaker's held removals, read and acted on from a terminal.
use std::collections::BTreeMap;
use std::io::Write;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

use crate::engine::authmap::read::read_data;
use crate::engine::authmap::shown;
use crate::engine::plan::{
    CONFIRM_ANNOTATION, CONFIRMED_BY_ANNOTATION, HeldRemoval, OWNERSHIP_ANNOTATION,
};

use crate::engine::history::{Version, changes, history_name, restore, versions};
use crate::{Error, Result};

#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Namespace of aws-auth.
    #[arg(long, global = true, env = "AWS_AUTH_NAMESPACE", default_value = crate::engine::authmap::NAMESPACE)]
    pub aws_auth_namespace: String,
    /// Name of aws-auth.
    #[arg(long, global = true, env = "AWS_AUTH_NAME", default_value = crate::engine::authmap::NAME)]
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
    /// Your Kubernetes username, recorded with the confirmation (the webhook checks it is the
    /// requester's). Default: asked of the API server (1.28+), else the kubeconfig's `as`.
    #[arg(long)]
    pub confirmed_by: Option<String>,
    #[command(flatten)]
    pub target: Target,
}

async fn api(target: &Target) -> Result<Api<ConfigMap>> {
    let client = crate::client().await?;
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
        out.write_all(crate::commands::manifests::configmap_yaml(&cm)?.as_bytes())
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

/// Who is confirming: given, asked of the API server, or the user the kubeconfig impersonates.
async fn confirmer(given: Option<&str>) -> Result<String> {
    if let Some(u) = given {
        return Ok(u.to_string());
    }
    let config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    let impersonated = config.auth_info.impersonate.clone();
    let client = kube::Client::try_from(config)?;
    match crate::operator::webhook::operator_username(&client, None).await {
        Ok(u) => Ok(u),
        Err(_) => impersonated.ok_or_else(|| {
            usage(
                "--confirmed-by",
                "the API server cannot say who you are (SelfSubjectReview needs Kubernetes 1.28+): pass --confirmed-by YOUR-USERNAME (the webhook checks it)".into(),
            )
        }),
    }
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
    let by = confirmer(cmd.confirmed_by.as_deref()).await?;
    let rv = current.and_then(|c| c.metadata.resource_version);
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": rv, "annotations": {
            CONFIRM_ANNOTATION: held.token, CONFIRMED_BY_ANNOTATION: by
        } }
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
        "confirmed as {}: the operator now removes {} managed entries: {}",
        shown(&by),
        held.count,
        held.summary()
    )
    .map_err(io)?;
    Ok(true)
}
