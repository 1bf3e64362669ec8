//! `aws-auth-operator render`: the plan, offline. Grants and the current aws-auth from files in,
//! the new aws-auth manifest (or a diff) and a verdict per grant out.
use std::io::Write;
use std::path::PathBuf;

use crate::commands::manifests::{configmap_yaml, load_configmap, load_grants};
use crate::engine::authmap;
use crate::engine::plan::{Plan, PlanConfig, RailsArgs, Verdict, plan};
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Yaml,
    Diff,
    /// The EKS access entries the grants become (for a cluster in API or API_AND_CONFIG_MAP).
    AccessEntries,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// Files or directories of IamAccessGrant manifests (multi-document YAML; other kinds are skipped).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// The current aws-auth ConfigMap (`kubectl -n kube-system get cm aws-auth -o yaml`); none: start empty.
    #[arg(long)]
    pub aws_auth: Option<PathBuf>,
    /// ARN of the cluster creator (repeatable); grants for it are refused. Any form: role, session ARN.
    #[arg(long = "cluster-creator-arn")]
    pub cluster_creator_arns: Vec<String>,
    /// What to print on stdout: the whole new aws-auth manifest, the entry-level diff, or the
    /// access entries the grants become.
    #[arg(long, short = 'o', value_enum, default_value = "yaml")]
    pub output: Output,
    /// The cluster's AWS account (node types need roles of it), for `-o access-entries`.
    #[arg(long)]
    pub cluster_account: Option<String>,
    #[command(flatten)]
    pub rails: RailsArgs,
}

/// Runs `render`; returns whether every grant applies (exit 0) or some were refused (exit 1).
pub fn run(args: &RenderArgs, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<bool> {
    let config = PlanConfig::from_args(&args.cluster_creator_arns, &args.rails)?;
    let loaded = load_grants(&args.paths)?;
    if args.output == Output::AccessEntries {
        return access_entries(args, &config, &loaded, stdout, stderr);
    }
    let current = args.aws_auth.as_deref().map(load_configmap).transpose()?;
    let mut p = std::sync::Arc::unwrap_or_clone(plan(&loaded.grants, current.as_ref(), &config)?);
    // Grants the API server would reject never reach the plan; they are reported beside it.
    p.verdicts.extend(loaded.rejected.iter().cloned());
    p.verdicts.sort_by(|a, b| a.grant.cmp(&b.grant));
    let (ns, name) = current
        .as_ref()
        .map(|c| {
            (
                c.metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| authmap::NAMESPACE.into()),
                c.metadata
                    .name
                    .clone()
                    .unwrap_or_else(|| authmap::NAME.into()),
            )
        })
        .unwrap_or_else(|| (authmap::NAMESPACE.into(), authmap::NAME.into()));

    let out = |e: std::io::Error| Error::Io {
        path: "<stdout>".into(),
        source: e,
    };
    match args.output {
        Output::Yaml => {
            let cm = p.configmap(current.as_ref(), &ns, &name, false);
            let yaml = configmap_yaml(&cm)?;
            stdout.write_all(yaml.as_bytes()).map_err(out)?;
        }
        Output::Diff | Output::AccessEntries => {
            for line in &p.diff {
                writeln!(stdout, "{line}").map_err(out)?;
            }
        }
    }
    let _ = write_report(&p, &loaded.notes, stderr);
    Ok(p.all_applied() && p.held.is_none())
}

/// `-o access-entries`: the entries the grants become on a cluster with none of them yet, with the
/// verdicts the operator's access-entry backend would give.
fn access_entries(
    args: &RenderArgs,
    config: &PlanConfig,
    loaded: &crate::commands::manifests::Loaded,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<bool> {
    use crate::engine::entries::{Call, EntriesConfig, plan as plan_entries};
    let p = plan_entries(
        &loaded.grants,
        &[],
        &EntriesConfig {
            plan: config,
            operator: "aws-auth-operator",
            cluster_account: args.cluster_account.as_deref(),
            recently_removed: 0,
            confirmed: None,
            role_arns: &Default::default(),
        },
    );
    let entries: Vec<_> = p
        .work
        .iter()
        .filter_map(|w| {
            let mut entry = w.calls.iter().find_map(|c| match c {
                Call::Create(e, _) => Some(e.clone()),
                _ => None,
            })?;
            entry.access_policies = w
                .calls
                .iter()
                .filter_map(|c| match c {
                    Call::Associate(a) => Some(a.clone()),
                    _ => None,
                })
                .collect();
            Some(entry)
        })
        .collect();
    let yaml = serde_yaml::to_string(&entries).expect("entries serialize");
    stdout.write_all(yaml.as_bytes()).map_err(|e| Error::Io {
        path: "<stdout>".into(),
        source: e,
    })?;
    let mut verdicts: Vec<Verdict> = p
        .verdicts
        .iter()
        .map(|(g, v)| Verdict {
            grant: g.clone(),
            reason: v.reason,
            message: v.message.as_str().into(),
            section: v.section,
            canonical_arn: v.canonical_arn.clone(),
        })
        .collect();
    verdicts.extend(loaded.rejected.iter().cloned());
    verdicts.sort_by(|a, b| a.grant.cmp(&b.grant));
    let _ = write_verdicts(&verdicts, stderr);
    let refused = verdicts.iter().filter(|v| !v.reason.is_ready()).count();
    let _ = writeln!(
        stderr,
        "{} grants: {} access entries, {refused} refused",
        verdicts.len(),
        verdicts.len() - refused
    );
    Ok(refused == 0)
}

/// The verdict table and everything found in the current aws-auth, for people and CI logs.
pub fn write_report(p: &Plan, notes: &[String], w: &mut dyn Write) -> std::io::Result<()> {
    for n in notes.iter().chain(&p.notes) {
        writeln!(w, "{n}")?;
    }
    for f in &p.findings {
        writeln!(w, "aws-auth {f}")?;
    }
    write_verdicts(&p.verdicts, w)?;
    if let Some(h) = &p.held {
        writeln!(
            w,
            "removal held: {} managed entries stay in aws-auth ({}): {}{}",
            h.count,
            h.reason,
            h.summary(),
            h.confirm
                .as_deref()
                .map(|c| format!("; to remove them, run `{c}` against the cluster"))
                .unwrap_or_default()
        )?;
    }
    let refused = p.verdicts.iter().filter(|v| !v.reason.is_ready()).count();
    writeln!(
        w,
        "{} grants: {} applied, {refused} refused; aws-auth {}",
        p.verdicts.len(),
        p.verdicts.len() - refused,
        if p.changed { "changes" } else { "unchanged" }
    )
}

/// One line per grant: name, Ready, reason, message.
fn write_verdicts(verdicts: &[Verdict], w: &mut dyn Write) -> std::io::Result<()> {
    let width = verdicts
        .iter()
        .map(|v| v.grant.len())
        .max()
        .unwrap_or(0)
        .max(5);
    writeln!(
        w,
        "{:<width$}  {:<5}  {:<18}  MESSAGE",
        "GRANT", "READY", "REASON"
    )?;
    for v in verdicts {
        let ready = if v.reason.is_ready() { "True" } else { "False" };
        writeln!(
            w,
            "{:<width$}  {ready:<5}  {:<18}  {}",
            v.grant,
            v.reason.as_str(),
            v.message
        )?;
    }
    Ok(())
}
