//! `aws-auth-operator import`: today's aws-auth entries -> IamAccessGrant manifests (adopt: true).
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;

use kube::api::ObjectMeta;

use crate::api::{IamAccessGrant, IamAccessGrantSpec};
use crate::commands::manifests::{AwsAuthSource, load_aws_auth};
use crate::engine::authmap::read::{Finding, read_data};
use crate::engine::authmap::{Mapping, Section};
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
                Ok(v) => {
                    let name = v
                        .canonical
                        .rsplit(['/', ':'])
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let kind = if v.section == Section::MapRoles {
                        "role"
                    } else {
                        "user"
                    };
                    out.grants.push((
                        section,
                        e.line,
                        grant(grant_name(kind, &name, &v.key), spec),
                    ));
                }
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

/// One grant as a manifest, with where it came from.
pub fn manifest(section: Section, line: usize, g: &IamAccessGrant) -> String {
    format!(
        "# Imported from aws-auth {section} line {line}.\n{}",
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
}

/// Runs `import`; returns false when a key was unreadable (nothing of it imported).
pub async fn run(
    args: &ImportArgs,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<bool> {
    let (data, from) = load_aws_auth(&args.source).await?;
    let imported = import(&data, args.include_node_roles);
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
