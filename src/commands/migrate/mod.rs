//! `migrate plan|apply|verify`: from aws-auth to EKS access entries with no lockout window. The
//! plan reads aws-auth with the operator's reader and the cluster's access entries, and says for
//! each aws-auth entry which access entry authenticates its principal the same way (or why none
//! can); `apply` creates the missing ones and then verifies; `verify` checks again at any time.
//! The migration is complete only when every principal aws-auth admits is admitted the same way
//! by access entries.
use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::commands::manifests::{AwsAuthSource, load_aws_auth};
use crate::eks;
use crate::engine::access_entry::{self, AccessEntry};
use crate::engine::authmap::read::{AwsAuthRead, read_data};
use crate::engine::authmap::{Section, arn, shown};
use crate::{Error, Result};
pub use eks::MIGRATED_TAG;

#[derive(Debug, clap::Subcommand)]
pub enum MigrateCmd {
    /// Print, for every aws-auth entry, the access entry that authenticates it the same way, or
    /// why none can (exit 1 if any cannot, or an existing entry disagrees).
    Plan(MigrateArgs),
    /// Create the missing access entries, then verify (exit 1 unless verified).
    Apply(MigrateArgs),
    /// Check that access entries admit every aws-auth principal the same way (exit 1 if not).
    Verify(MigrateArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MigrateOutput {
    Text,
    Yaml,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    /// The EKS cluster's name.
    #[arg(long, env = "AWS_AUTH_CLUSTER_NAME")]
    pub cluster_name: String,
    #[command(flatten)]
    pub source: AwsAuthSource,
    /// The cluster creator's ARN (repeatable): never migrated, and required to hold an access
    /// entry of its own before the switch to API.
    #[arg(
        long = "cluster-creator-arn",
        env = "AWS_AUTH_CLUSTER_CREATOR_ARN",
        value_delimiter = ','
    )]
    pub cluster_creator_arns: Vec<String>,
    #[command(flatten)]
    pub aws: crate::commands::whoami::AwsProfile,
    /// An EKS-compatible endpoint instead of AWS's.
    #[arg(long, env = "AWS_ENDPOINT_URL_EKS")]
    pub endpoint_url: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: MigrateOutput,
}

/// What becomes of one aws-auth entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    /// No access entry yet: this one would authenticate the principal the same way.
    Create {
        entry: AccessEntry,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
    },
    /// The existing access entry authenticates the principal the same way.
    Agrees { entry: AccessEntry },
    /// An access entry exists and authenticates the principal differently (EKS uses it first).
    Differs {
        want: AccessEntry,
        have: AccessEntry,
        differences: Vec<String>,
    },
    /// No access entry can say what this entry says.
    Cannot { reason: String },
    /// Not migrated, and not needed (a later entry wins, the cluster creator).
    Skipped { reason: String },
}

impl Action {
    /// Whether this entry stands in the way of the switch to API (a person must act on it).
    pub fn blocks(&self) -> bool {
        matches!(self, Action::Cannot { .. } | Action::Differs { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// `mapRoles`, `mapUsers`, `mapAccounts`, or `cluster creator`.
    pub key: String,
    pub line: usize,
    pub principal: String,
    #[serde(flatten)]
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Migration {
    pub cluster: String,
    pub authentication_mode: String,
    pub items: Vec<Item>,
    /// Access entries for principals aws-auth does not name (kept as they are).
    pub only_in_access_entries: Vec<String>,
    /// The steps left, in order.
    pub next_steps: Vec<String>,
    /// True when every principal aws-auth admits is admitted the same way by access entries.
    pub complete: bool,
}

impl Migration {
    fn count(&self, f: fn(&Action) -> bool) -> usize {
        self.items.iter().filter(|i| f(&i.action)).count()
    }

    pub fn to_create(&self) -> Vec<&AccessEntry> {
        self.items
            .iter()
            .filter_map(|i| match &i.action {
                Action::Create { entry, .. } => Some(entry),
                _ => None,
            })
            .collect()
    }
}

pub use crate::eks::RoleLookup;

/// What was read from AWS: the cluster, its access entries, and the aws-auth roles in IAM.
#[derive(Debug, Default)]
pub struct Observed {
    pub cluster: String,
    pub mode: String,
    /// The cluster's account.
    pub account: String,
    /// The access entries of aws-auth's principals, by their principal ARN (`None`: none).
    pub existing: BTreeMap<String, Option<AccessEntry>>,
    /// Every access entry's principal ARN.
    pub all_entries: Vec<String>,
    /// mapRoles ARNs (as written) of the caller's account, looked up in IAM.
    pub roles: BTreeMap<String, RoleLookup>,
}

/// The pure part: aws-auth as read and what AWS holds -> what each entry becomes.
pub fn plan(read: &AwsAuthRead, seen: &Observed, creators: &[String]) -> Migration {
    let (cluster, mode, all_entries) = (&seen.cluster, &seen.mode, &seen.all_entries);
    let creator_keys: BTreeSet<String> = creators
        .iter()
        .filter_map(|c| arn::principal_key(c).ok())
        .collect();
    // The existing entries by principal, whatever path their ARN carries.
    let existing: BTreeMap<String, &AccessEntry> = seen
        .existing
        .iter()
        .filter_map(|(p, e)| Some((arn::principal_key(p).ok()?, e.as_ref()?)))
        .collect();
    let mut items = Vec::new();
    for section in [Section::MapRoles, Section::MapUsers] {
        let s = if section == Section::MapRoles {
            &read.roles
        } else {
            &read.users
        };
        if let Some(f) = s.first_blocking() {
            items.push(Item {
                key: section.key().into(),
                line: f.line,
                principal: "(the whole key)".into(),
                action: Action::Cannot {
                    reason: format!("unreadable, so what EKS maps from it is not known: {f}"),
                },
            });
            continue;
        }
        // The entry EKS uses for a principal is the last one (mapRoles: case-insensitive).
        let key = |a: &str| match section {
            Section::MapRoles => arn::fold_case(a),
            _ => a.to_string(),
        };
        let mut last: BTreeMap<String, usize> = BTreeMap::new();
        for e in &s.entries {
            last.insert(key(&e.value.arn), e.line);
        }
        for e in &s.entries {
            let m = &e.value;
            let winner = last[&key(&m.arn)];
            let action = if winner != e.line {
                Action::Skipped {
                    reason: format!("a later entry for the same principal wins (line {winner})"),
                }
            } else if arn::principal_key(&m.arn).is_ok_and(|k| creator_keys.contains(&k)) {
                Action::Skipped {
                    reason: "the cluster creator: never migrated (see the cluster creator's line)"
                        .into(),
                }
            } else {
                decide(section, m, seen, &existing)
            };
            items.push(Item {
                key: section.key().into(),
                line: e.line,
                principal: m.arn.clone(),
                action,
            });
        }
    }
    if let Some(f) = read.accounts.first_blocking() {
        items.push(Item {
            key: Section::MapAccounts.key().into(),
            line: f.line,
            principal: "(the whole key)".into(),
            action: Action::Cannot {
                reason: format!("unreadable: {f}"),
            },
        });
    }
    for a in &read.accounts.entries {
        items.push(Item {
            key: Section::MapAccounts.key().into(),
            line: a.line,
            principal: a.value.clone(),
            action: Action::Cannot {
                reason: format!(
                    "mapAccounts admits every IAM principal of account {}, and access entries name principals one by one: create an entry (or a grant) for each principal of it that uses the cluster, then remove the account",
                    shown(&a.value)
                ),
            },
        });
    }
    items.extend(creator_items(creators, all_entries));
    let named: BTreeSet<&String> = seen.existing.keys().collect();
    let only_in_access_entries = all_entries
        .iter()
        .filter(|p| !named.contains(p))
        .cloned()
        .collect();
    let complete = items
        .iter()
        .all(|i| matches!(i.action, Action::Agrees { .. } | Action::Skipped { .. }));
    let mut m = Migration {
        cluster: cluster.into(),
        authentication_mode: mode.into(),
        items,
        only_in_access_entries,
        next_steps: Vec::new(),
        complete,
    };
    m.next_steps = next_steps(&m);
    m
}

fn decide(
    section: Section,
    m: &crate::engine::authmap::Mapping,
    seen: &Observed,
    existing: &BTreeMap<String, &AccessEntry>,
) -> Action {
    let account = Some(seen.account.as_str()).filter(|a| !a.is_empty());
    let mut t = match access_entry::from_mapping(section, m, account) {
        Ok(t) => t,
        Err(reason) => return Action::Cannot { reason },
    };
    if section == Section::MapRoles {
        match seen.roles.get(&m.arn) {
            Some(RoleLookup::Found(real)) if *real != t.entry.principal_arn => {
                t.entry.principal_arn = real.clone();
                t.notes.push(format!(
                    "principal {}: the role's full ARN from IAM (aws-auth names roles without their path; access entries need it)",
                    shown(real)
                ));
            }
            Some(RoleLookup::Missing) => {
                return Action::Cannot {
                    reason: "IAM has no role of this name in this account: the entry admits nobody; remove it".into(),
                };
            }
            Some(RoleLookup::Unknown(why)) => t.notes.push(format!(
                "IAM not read ({why}): if the role has a path, EKS refuses this ARN; give the role's full ARN"
            )),
            _ => {}
        }
    }
    let have = arn::principal_key(&t.entry.principal_arn)
        .ok()
        .and_then(|k| existing.get(&k).copied());
    match have {
        None => Action::Create {
            entry: t.entry,
            notes: t.notes,
        },
        Some(have) => {
            let differences = access_entry::differences(&t.entry, have);
            if differences.is_empty() {
                Action::Agrees {
                    entry: have.clone(),
                }
            } else {
                Action::Differs {
                    want: t.entry,
                    have: have.clone(),
                    differences,
                }
            }
        }
    }
}

/// The cluster creator needs an access entry of its own before aws-auth stops counting: in API
/// mode nothing else admits it.
fn creator_items(creators: &[String], all_entries: &[String]) -> Vec<Item> {
    let have: BTreeSet<String> = all_entries
        .iter()
        .filter_map(|a| arn::principal_key(a).ok())
        .collect();
    creators
        .iter()
        .map(|c| {
            let held = arn::principal_key(c).is_ok_and(|k| have.contains(&k));
            Item {
                key: "cluster creator".into(),
                line: 0,
                principal: c.clone(),
                action: if held {
                    Action::Skipped {
                        reason: "has an access entry of its own (not changed by migrate)".into(),
                    }
                } else {
                    Action::Cannot {
                        reason: "has no access entry, so under API it would lose access: create one with the AmazonEKSClusterAdminPolicy association (aws eks create-access-entry, then associate-access-policy) before the switch".into(),
                    }
                },
            }
        })
        .collect()
}

fn next_steps(m: &Migration) -> Vec<String> {
    let update = |mode: &str| {
        format!(
            "aws eks update-cluster-config --name {} --access-config authenticationMode={mode}",
            m.cluster
        )
    };
    let creates = m.to_create().len();
    let blocked = m.items.iter().filter(|i| i.action.blocks()).count();
    let mut steps = Vec::new();
    match m.authentication_mode.as_str() {
        "CONFIG_MAP" => {
            steps.push(format!(
                "{} (access entries need it; aws-auth keeps working)",
                update("API_AND_CONFIG_MAP")
            ));
            steps.push(format!(
                "aws-auth-operator migrate apply --cluster-name {}",
                m.cluster
            ));
        }
        "API_AND_CONFIG_MAP" => {
            if creates > 0 {
                steps.push(format!(
                    "aws-auth-operator migrate apply --cluster-name {} ({creates} to create)",
                    m.cluster
                ));
            }
            if blocked > 0 {
                steps.push(format!(
                    "resolve the {blocked} entries marked cannot or differs (each says how), then aws-auth-operator migrate verify --cluster-name {}",
                    m.cluster
                ));
            }
            if m.complete {
                steps.push(format!(
                    "{} (one way: aws-auth is no longer read after it)",
                    update("API")
                ));
            } else {
                steps.push(
                    "do not switch to API yet: some principals would lose access (above)".into(),
                );
            }
        }
        _ => {
            if !m.complete {
                steps.push(
                    "the cluster reads access entries only: the principals marked above have no access now; create their entries".into(),
                );
            }
        }
    }
    steps
}

/// Text for a person: one line per entry, then the steps.
pub fn render_text(m: &Migration) -> String {
    let mut s = format!(
        "cluster {}: authentication mode {}\n\n",
        m.cluster, m.authentication_mode
    );
    for i in &m.items {
        let at = if i.line == 0 {
            i.key.clone()
        } else {
            format!("{} line {}", i.key, i.line)
        };
        let (verb, detail, notes): (&str, String, &[String]) = match &i.action {
            Action::Create { entry, notes } => ("create", describe(entry), notes),
            Action::Agrees { entry } => ("agrees", describe(entry), &[]),
            Action::Differs { differences, .. } => ("differs", differences.join("; "), &[]),
            Action::Cannot { reason } => ("cannot", reason.clone(), &[]),
            Action::Skipped { reason } => ("skipped", reason.clone(), &[]),
        };
        s += &format!(
            "{verb:<8} {at}: {}\n         {detail}\n",
            shown(&i.principal)
        );
        for n in notes {
            s += &format!("         note: {n}\n");
        }
    }
    for p in &m.only_in_access_entries {
        s += &format!("kept     access entry only: {}\n", shown(p));
    }
    let count = |f: fn(&Action) -> bool| m.count(f);
    s += &format!(
        "\n{} to create, {} agree, {} differ, {} cannot, {} skipped; migration {}\n",
        count(|a| matches!(a, Action::Create { .. })),
        count(|a| matches!(a, Action::Agrees { .. })),
        count(|a| matches!(a, Action::Differs { .. })),
        count(|a| matches!(a, Action::Cannot { .. })),
        count(|a| matches!(a, Action::Skipped { .. })),
        if m.complete {
            "verified: access entries admit every aws-auth principal the same way"
        } else {
            "not complete"
        },
    );
    if !m.next_steps.is_empty() {
        s += "\nnext:\n";
        for (n, step) in m.next_steps.iter().enumerate() {
            s += &format!("  {}. {step}\n", n + 1);
        }
    }
    s
}

fn describe(e: &AccessEntry) -> String {
    let mut s = e.kind.as_str().to_string();
    if let Some(u) = &e.username {
        s += &format!(" username {}", shown(u));
    }
    if !e.kubernetes_groups.is_empty() {
        s += &format!(" groups [{}]", shown(&e.kubernetes_groups.join(", ")));
    }
    if !e.access_policies.is_empty() {
        let names: Vec<String> = e.access_policies.iter().map(|a| a.label()).collect();
        s += &format!(" policies [{}]", names.join(", "));
    }
    s
}

/// The mapRoles roles of the caller's account as IAM has them (their full ARNs).
async fn iam_roles(
    config: &aws_config::SdkConfig,
    read: &AwsAuthRead,
) -> BTreeMap<String, RoleLookup> {
    use futures::StreamExt;
    let caller = match aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
    {
        Ok(c) => c.account().unwrap_or_default().to_string(),
        Err(e) => {
            let why = format!(
                "sts:GetCallerIdentity failed: {}",
                aws_sdk_sts::error::DisplayErrorContext(e)
            );
            return read
                .roles
                .entries
                .iter()
                .map(|e| (e.value.arn.clone(), RoleLookup::Unknown(why.clone())))
                .collect();
        }
    };
    let iam = aws_sdk_iam::Client::new(config);
    let mine: BTreeSet<&String> = read
        .roles
        .entries
        .iter()
        .map(|e| &e.value.arn)
        .filter(|a| arn::Arn::parse(a).is_ok_and(|p| p.account == caller))
        .collect();
    futures::stream::iter(mine)
        .map(|a| {
            let iam = iam.clone();
            async move { (a.clone(), eks::lookup_role(&iam, a).await) }
        })
        .buffer_unordered(eks::CONCURRENCY)
        .collect()
        .await
}

/// The cluster and the access entries of aws-auth's principals, as EKS answers now; `roles` is
/// what IAM said of aws-auth's roles (asked once per run).
async fn observe(
    args: &MigrateArgs,
    eks: &eks::Eks,
    read: &AwsAuthRead,
    roles: &BTreeMap<String, RoleLookup>,
) -> Result<Observed> {
    let cluster = eks.cluster().await?;
    let mut seen = Observed {
        cluster: args.cluster_name.clone(),
        mode: cluster.mode,
        account: cluster.account,
        roles: roles.clone(),
        ..Observed::default()
    };
    // The access-entry API answers only once the mode has it.
    if seen.mode != "CONFIG_MAP" {
        seen.all_entries = eks.principals().await?;
        let named = [&read.roles, &read.users]
            .into_iter()
            .flat_map(|s| s.entries.iter().map(|e| &e.value.arn));
        let keys: BTreeSet<String> = named
            .chain(roles.values().filter_map(|r| match r {
                RoleLookup::Found(a) => Some(a),
                _ => None,
            }))
            .filter_map(|p| arn::principal_key(p).ok())
            .collect();
        let wanted: Vec<String> = seen
            .all_entries
            .iter()
            .filter(|p| arn::principal_key(p).is_ok_and(|k| keys.contains(&k)))
            .cloned()
            .collect();
        seen.existing = eks
            .observe_all(&wanted)
            .await?
            .into_iter()
            .map(|(p, o)| (p, o.map(|o| o.entry)))
            .collect();
    }
    Ok(seen)
}

/// Creates the planned entries, `eks::CONCURRENCY` at a time, showing progress on stderr.
async fn create_all(
    eks: &eks::Eks,
    entries: &[&AccessEntry],
    stderr: &mut dyn Write,
) -> Result<()> {
    use futures::{StreamExt, TryStreamExt};
    let total = entries.len();
    let terminal = std::io::stderr().is_terminal();
    let mut done = 0usize;
    let mut results = futures::stream::iter(entries)
        .map(|e| eks.create(e))
        .buffer_unordered(eks::CONCURRENCY);
    while let Some(()) = results.try_next().await? {
        done += 1;
        // A bar on a terminal; a line per tenth in logs.
        if terminal {
            let width = 30;
            let filled = done * width / total.max(1);
            let _ = write!(
                stderr,
                "\rcreating access entries [{}{}] {done}/{total}",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
        } else if done == total || done.is_multiple_of((total / 10).max(1)) {
            let _ = writeln!(stderr, "created {done} of {total} access entries");
        }
    }
    if terminal && total > 0 {
        let _ = writeln!(stderr);
    }
    Ok(())
}

/// Runs `migrate plan|apply|verify`; returns whether the command's condition holds (see each).
pub async fn run(cmd: &MigrateCmd, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<bool> {
    let (args, apply) = match cmd {
        MigrateCmd::Plan(a) | MigrateCmd::Verify(a) => (a, false),
        MigrateCmd::Apply(a) => (a, true),
    };
    let config = crate::commands::whoami::aws_config(&args.aws, args.endpoint_url.as_deref()).await;
    let eks = eks::Eks::new(&config, &args.cluster_name);
    let (data, _) = load_aws_auth(&args.source).await?;
    let read = read_data(&data);
    let roles = iam_roles(&config, &read).await;
    let creators = &args.cluster_creator_arns;
    let mut m = plan(&read, &observe(args, &eks, &read, &roles).await?, creators);
    if apply {
        if m.authentication_mode == "CONFIG_MAP" {
            return Err(Error::Usage {
                flag: "--cluster-name",
                message: format!(
                    "cluster {} is in CONFIG_MAP mode, which has no access entries: first run aws eks update-cluster-config --name {} --access-config authenticationMode=API_AND_CONFIG_MAP",
                    args.cluster_name, args.cluster_name
                ),
            });
        }
        create_all(&eks, &m.to_create(), stderr).await?;
        // Verified with what EKS answers now, not with what was sent.
        m = plan(&read, &observe(args, &eks, &read, &roles).await?, creators);
    }
    let text = match args.output {
        MigrateOutput::Text => render_text(&m),
        MigrateOutput::Json => serde_json::to_string_pretty(&m).expect("serializes") + "\n",
        MigrateOutput::Yaml => serde_yaml::to_string(&m).expect("serializes"),
    };
    crate::commands::print(stdout, &text)?;
    Ok(match cmd {
        MigrateCmd::Plan(_) => !m.items.iter().any(|i| i.action.blocks()),
        _ => m.complete,
    })
}

#[cfg(test)]
mod tests;
