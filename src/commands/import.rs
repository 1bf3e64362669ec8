//! `aws-auth-operator import`: today's aws-auth entries, or the cluster's EKS access entries ->
//! IamAccessGrant manifests (adopt: true).
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;

use kube::api::ObjectMeta;

use crate::api::{AccessEntryType, AccessPolicy, IamAccessGrant, IamAccessGrantSpec};
use crate::commands::manifests::{AwsAuthSource, load_aws_auth};
use crate::commands::whoami::{AwsProfile, aws_config};
use crate::engine::access_entry::{AccessEntry, EntryType, POLICY_PREFIX};
use crate::engine::authmap::arn;
use crate::engine::authmap::read::{Finding, read_data};
use crate::engine::authmap::{Mapping, Section};
use crate::engine::entries::{OPERATOR_TAG, Observed};
use crate::engine::validate::validate;
use crate::{Error, Result};

/// Label put on imported grants, so they can be found and reviewed.
pub const IMPORTED_LABEL: &str = "aws-auth.dev/imported";

#[derive(Debug, Default)]
pub struct Imported {
    /// Grants with the aws-auth line each came from.
    pub grants: Vec<(Section, usize, IamAccessGrant)>,
    /// Entries left as they are, with the reason.
    pub skipped: Vec<String>,
    /// Why a key was not imported at all.
    pub unreadable: Vec<Finding>,
}

/// Whether an entry is one EKS writes for a node group or Fargate profile.
pub fn is_node_role(m: &Mapping) -> bool {
    m.username.starts_with("system:node:") && m.groups.iter().any(|g| g == "system:nodes")
}

/// A DNS-1123 name for a principal, deterministic and unique per ARN: the principal's name made
/// safe, plus a short hash of the full ARN.
pub fn grant_name(kind: &str, name: &str, full: &str) -> String {
    let mut safe: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    safe = safe.trim_matches('-').to_string();
    while safe.contains("--") {
        safe = safe.replace("--", "-");
    }
    safe.truncate(40);
    let safe = safe.trim_end_matches('-');
    // FNV-1a: stable across releases and platforms, unlike std's hasher.
    let hash = full
        .to_ascii_lowercase()
        .bytes()
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
    if safe.is_empty() {
        format!("{kind}-{:08x}", hash as u32)
    } else {
        format!("{kind}-{safe}-{:08x}", hash as u32)
    }
}

/// Turns every readable entry into a grant; never guesses at an unreadable key.
pub fn import(data: &BTreeMap<String, String>, include_node_roles: bool) -> Imported {
    let read = read_data(data);
    let mut out = Imported::default();
    for sr in [&read.roles, &read.users] {
        let section = sr.section;
        if !sr.readable() {
            out.unreadable.extend(
                sr.findings
                    .iter()
                    .filter(|f| f.effect.blocks_rewrite())
                    .cloned(),
            );
            continue;
        }
        // What EKS uses: the last entry per principal.
        let mut last: HashMap<String, usize> = HashMap::new();
        let mut spellings: HashMap<String, HashSet<&str>> = HashMap::new();
        for (i, e) in sr.entries.iter().enumerate() {
            let k = e.value.arn.to_ascii_lowercase();
            last.insert(k.clone(), i);
            spellings.entry(k).or_default().insert(&e.value.arn);
        }
        for (i, e) in sr.entries.iter().enumerate() {
            let m = &e.value;
            let at = format!("{section} line {}", e.line);
            let k = m.arn.to_ascii_lowercase();
            if last[&k] != i {
                out.skipped.push(format!(
                    "{at}: {} appears again later; EKS uses the later entry",
                    m.arn
                ));
                continue;
            }
            if section == Section::MapUsers && spellings[&k].len() > 1 {
                out.skipped.push(format!("{at}: {} has entries differing only in case, and EKS picks one at random: resolve by hand", m.arn));
                continue;
            }
            if is_node_role(m) && !include_node_roles {
                out.skipped.push(format!("{at}: {} is an EKS node role; EKS manages it (use --include-node-roles to import it anyway)", m.arn));
                continue;
            }
            let spec = IamAccessGrantSpec {
                arn: Some(m.arn.clone()),
                username: Some(m.username.clone()),
                groups: m.groups.clone(),
                adopt: true,
                ..Default::default()
            };
            match validate(&spec) {
                Ok(v) => out.grants.push((section, e.line, named(&v, spec))),
                Err(invalid) => out.skipped.push(format!(
                    "{at}: {invalid}; the entry stays in aws-auth, not managed"
                )),
            }
        }
    }
    if read.accounts.readable() {
        let mut seen = HashSet::new();
        for e in &read.accounts.entries {
            if !seen.insert(e.value.clone()) {
                continue;
            }
            let spec = IamAccessGrantSpec {
                adopt: true,
                ..IamAccessGrantSpec::account(&e.value)
            };
            match validate(&spec) {
                Ok(_) => out.grants.push((
                    Section::MapAccounts,
                    e.line,
                    grant(format!("account-{}", e.value), spec),
                )),
                Err(invalid) => out.skipped.push(format!(
                    "mapAccounts line {}: {invalid}; the entry stays in aws-auth, not managed",
                    e.line
                )),
            }
        }
    } else {
        out.unreadable.extend(
            read.accounts
                .findings
                .iter()
                .filter(|f| f.effect.blocks_rewrite())
                .cloned(),
        );
    }
    out
}

/// The grant for a validated principal, named after it.
fn named(v: &crate::engine::validate::ValidGrant, spec: IamAccessGrantSpec) -> IamAccessGrant {
    let name = v.canonical.rsplit(['/', ':']).next().unwrap_or_default();
    let kind = if v.section == Section::MapRoles {
        "role"
    } else {
        "user"
    };
    grant(grant_name(kind, name, &v.key), spec)
}

fn grant(name: String, spec: IamAccessGrantSpec) -> IamAccessGrant {
    IamAccessGrant {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(BTreeMap::from([(
                IMPORTED_LABEL.to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

/// One grant as a manifest, with where it came from (line 0: an access entry).
pub fn manifest(section: Section, line: usize, g: &IamAccessGrant) -> String {
    let from = match line {
        0 => "an EKS access entry".to_string(),
        _ => format!("aws-auth {section} line {line}"),
    };
    format!(
        "# Imported from {from}.\n{}",
        serde_yaml::to_string(g).expect("a grant serializes")
    )
}

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub source: AwsAuthSource,
    /// Write one file per grant into this directory instead of a multi-document stream on stdout.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Also import the entries EKS writes for node groups and Fargate profiles.
    #[arg(long)]
    pub include_node_roles: bool,
    /// What to import: aws-auth's entries, or the cluster's EKS access entries.
    #[arg(long, value_enum, default_value = "configmap")]
    pub backend: ImportFrom,
    /// The EKS cluster whose access entries to import (with --backend access-entries).
    #[arg(
        long,
        env = "AWS_AUTH_CLUSTER_NAME",
        required_if_eq("backend", "access-entries")
    )]
    pub cluster_name: Option<String>,
    /// Access entries left out: the cluster creator's (repeatable; any form of the ARN).
    #[arg(
        long = "cluster-creator-arn",
        env = "AWS_AUTH_CLUSTER_CREATOR_ARN",
        value_delimiter = ','
    )]
    pub cluster_creator_arns: Vec<String>,
    #[command(flatten)]
    pub aws: AwsProfile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFrom {
    Configmap,
    AccessEntries,
}

/// Turns access entries into grants, leaving out the creator's, the ones an operator manages
/// already and (unless asked) node roles. The grant names the principal as aws-auth would
/// (roles without their path: the operator finds the entry whatever its path).
pub fn import_entries(
    entries: &[Observed],
    creators: &[String],
    include_node_roles: bool,
) -> Imported {
    let mut out = Imported::default();
    for o in entries {
        let e = &o.entry;
        let at = format!("access entry {}", e.principal_arn);
        let key = arn::principal_key(&e.principal_arn).unwrap_or_default();
        if creators.contains(&key) {
            out.skipped.push(format!(
                "{at}: the cluster creator's; it stays as EKS made it"
            ));
            continue;
        }
        if let Some(by) = o.tags.get(OPERATOR_TAG) {
            out.skipped.push(format!(
                "{at}: managed already (aws-auth.dev/managed-by {by})"
            ));
            continue;
        }
        if e.kind.is_node() && !include_node_roles {
            out.skipped.push(format!("{at}: a {} node entry; EKS manages it (use --include-node-roles to import it anyway)", e.kind.as_str()));
            continue;
        }
        match entry_spec(e) {
            Ok(spec) => match validate(&spec) {
                Ok(v) => out.grants.push((v.section, 0, named(&v, spec))),
                Err(invalid) => out
                    .skipped
                    .push(format!("{at}: {invalid}; the entry stays, not managed")),
            },
            Err(why) => out
                .skipped
                .push(format!("{at}: {why}; the entry stays, not managed")),
        }
    }
    out
}

/// The grant that holds `e`: its principal without a role path, its username, groups, policies
/// and type (node types with the node shape, which EKS sets for them).
fn entry_spec(e: &AccessEntry) -> std::result::Result<IamAccessGrantSpec, String> {
    // Roles without their path, as aws-auth names them; users keep theirs.
    let principal = arn::strip_role_path(&e.principal_arn);
    let (username, groups, entry_type) = match e.kind {
        EntryType::Standard => (
            e.username.clone().ok_or("EKS gave the entry no username")?,
            e.kubernetes_groups.clone(),
            None,
        ),
        node => {
            let session = matches!(node, EntryType::FargateLinux | EntryType::HybridLinux);
            let username = if session {
                "system:node:{{SessionName}}"
            } else {
                "system:node:{{EC2PrivateDNSName}}"
            };
            let mut groups = vec![
                "system:bootstrappers".to_string(),
                "system:nodes".to_string(),
            ];
            match node {
                EntryType::Ec2Windows => groups.push("eks:kube-proxy-windows".into()),
                EntryType::FargateLinux => groups.push("system:node-proxier".into()),
                _ => {}
            }
            let t = match node {
                EntryType::Ec2Windows => AccessEntryType::Ec2Windows,
                EntryType::FargateLinux => AccessEntryType::FargateLinux,
                EntryType::HybridLinux => AccessEntryType::HybridLinux,
                _ => AccessEntryType::Ec2Linux,
            };
            (username.to_string(), groups, Some(t))
        }
    };
    Ok(IamAccessGrantSpec {
        arn: Some(principal),
        username: Some(username),
        groups,
        adopt: true,
        entry_type,
        access_policies: e
            .access_policies
            .iter()
            .map(|a| AccessPolicy {
                policy: a.policy_arn.trim_start_matches(POLICY_PREFIX).to_string(),
                namespaces: a.namespaces.clone(),
            })
            .collect(),
        ..Default::default()
    })
}

/// Runs `import`; returns false when a key was unreadable (nothing of it imported).
pub async fn run(
    args: &ImportArgs,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<bool> {
    let (imported, from) = match (args.backend, &args.cluster_name) {
        (ImportFrom::AccessEntries, Some(cluster)) => {
            let config = aws_config(&args.aws, None).await;
            let eks = crate::eks::Eks::new(&config, cluster);
            let principals = eks.principals().await?;
            let entries: Vec<Observed> = eks
                .observe_all(&principals)
                .await?
                .into_values()
                .flatten()
                .collect();
            let creators = args
                .cluster_creator_arns
                .iter()
                .filter_map(|a| arn::principal_key(a).ok())
                .collect::<Vec<_>>();
            let from = format!("the access entries of EKS cluster {cluster}");
            (
                import_entries(&entries, &creators, args.include_node_roles),
                from,
            )
        }
        _ => {
            let (data, from) = load_aws_auth(&args.source).await?;
            (import(&data, args.include_node_roles), from)
        }
    };
    let io = |path: PathBuf| move |source| Error::Io { path, source };
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).map_err(io(dir.clone()))?;
    }
    for (i, (section, line, g)) in imported.grants.iter().enumerate() {
        let text = manifest(*section, *line, g);
        match &args.out_dir {
            Some(dir) => {
                let path = dir.join(format!(
                    "{}.yaml",
                    g.metadata.name.as_deref().unwrap_or_default()
                ));
                std::fs::write(&path, text).map_err(io(path.clone()))?;
            }
            None => {
                let sep = if i == 0 { "" } else { "---\n" };
                write!(stdout, "{sep}{text}").map_err(io("<stdout>".into()))?;
            }
        }
    }
    for s in &imported.skipped {
        let _ = writeln!(stderr, "skipped {s}");
    }
    for f in &imported.unreadable {
        let _ = writeln!(stderr, "not imported: aws-auth {f}");
    }
    let _ = writeln!(
        stderr,
        "imported {} grants from {from}{}",
        imported.grants.len(),
        match &args.out_dir {
            Some(d) => format!(" into {}", d.display()),
            None => String::new(),
        }
    );
    Ok(imported.unreadable.is_empty())
}

#[cfg(test)]
mod tests;
