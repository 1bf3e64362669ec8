//! `aws-auth-operator whoami`: which ARN AWS sees for the caller, and whether, how and why (not)
//! aws-auth maps it.
use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::commands::import::grant_name;
use crate::commands::manifests::{AwsAuthSource, load_aws_auth};
use crate::engine::access_entry::AccessEntry;
use crate::engine::authmap::lookup::lookup;
use crate::engine::authmap::read::{AwsAuthRead, Effect, read_data};
use crate::engine::authmap::template::{self, Identity};
use crate::engine::authmap::{Section, arn};
use crate::{Error, Result};

/// What STS says about the caller.
#[derive(Debug, Clone, Serialize)]
pub struct Caller {
    pub account: String,
    pub arn: String,
    pub user_id: String,
    #[serde(skip)]
    pub access_key_id: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Mapped {
    pub section: String,
    pub line: usize,
    pub entry_arn: String,
    /// Username and groups after template expansion, as Kubernetes will see them.
    pub username: String,
    pub groups: Vec<String>,
    /// Set when EKS may pick another entry instead (mapUsers keys differing only in case).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ambiguous: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub account: String,
    pub arn: String,
    pub user_id: String,
    /// The ARN EKS matches aws-auth entries against.
    pub canonical_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    pub aws_auth_source: String,
    pub authenticated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapped: Option<Mapped>,
    /// Why the caller is not mapped (or mapped but rejected), as far as aws-auth shows.
    pub causes: Vec<String>,
    /// An IamAccessGrant that would grant access, when none does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_grant: Option<String>,
    /// With `--cluster-name`: the cluster's authentication mode and what access entries say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_entries: Option<AccessEntries>,
}

/// What the cluster's access entries do for the caller.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccessEntries {
    pub authentication_mode: String,
    /// Which of the two decided: `access entry`, `aws-auth`, or `none`.
    pub decided_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<EntryMatch>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EntryMatch {
    pub principal_arn: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// As Kubernetes sees it: the entry's (or EKS's generated) username with the session name in.
    pub username: String,
    pub groups: Vec<String>,
    /// Access policies, `NAME` (cluster-wide) or `NAME in ns1,ns2`.
    pub policies: Vec<String>,
}

/// Decides, exactly as EKS would, what aws-auth `data` does for `caller`.
pub fn explain(caller: &Caller, data: &BTreeMap<String, String>, source: &str) -> Result<Report> {
    let canonical = arn::canonicalize(&caller.arn).map_err(|e| Error::Usage {
        flag: "caller",
        message: format!("STS returned an ARN EKS cannot use: {e}"),
    })?;
    let session_name = caller.arn.contains(":assumed-role/").then(|| {
        caller
            .arn
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string()
    });
    let read = read_data(data);
    let mut report = Report {
        account: caller.account.clone(),
        arn: caller.arn.clone(),
        user_id: caller.user_id.clone(),
        canonical_arn: canonical.arn.clone(),
        session_name: session_name.clone(),
        aws_auth_source: source.to_string(),
        authenticated: false,
        mapped: None,
        causes: Vec::new(),
        suggested_grant: None,
        access_entries: None,
    };
    if let Some(hit) = lookup(&read, &canonical.arn, &caller.account) {
        let id = Identity {
            account_id: &caller.account,
            session_name: session_name.as_deref().unwrap_or_default(),
            access_key_id: &caller.access_key_id,
        };
        let expanded = template::render(&hit.mapping.username, &id).and_then(|u| {
            let groups = hit
                .mapping
                .groups
                .iter()
                .map(|g| template::render(g, &id))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((u, groups))
        });
        match expanded {
            Ok((username, groups)) => {
                report.authenticated = true;
                report.mapped = Some(Mapped {
                    section: hit.section.key().to_string(),
                    line: hit.line,
                    entry_arn: hit.mapping.arn.clone(),
                    username,
                    groups,
                    ambiguous: (!hit.ambiguous_with.is_empty()).then(|| {
                        format!(
                            "EKS picks at random between this entry and {}",
                            hit.ambiguous_with.join(", ")
                        )
                    }),
                });
            }
            Err(e) => report.causes.push(format!(
                "{} line {} matches, but {e}",
                hit.section, hit.line
            )),
        }
        if hit.section == Section::MapUsers && hit.mapping.arn != canonical.arn {
            report.causes.push(format!(
                "mapUsers line {} writes {} and matches only ignoring case; older authenticator versions compare mapUsers exactly: write {}",
                hit.line, hit.mapping.arn, canonical.arn
            ));
        }
        if hit.section == Section::MapAccounts && report.authenticated {
            report.causes.push(format!(
                "no entry names you; mapAccounts admits all of account {} with your ARN as username and no groups",
                caller.account
            ));
        }
        return Ok(report);
    }
    report.causes = why_not(&read, &canonical.arn, data);
    report.suggested_grant = Some(suggest(&canonical.arn, canonical.kind));
    Ok(report)
}

/// The likely causes, most specific first.
fn why_not(read: &AwsAuthRead, canonical: &str, data: &BTreeMap<String, String>) -> Vec<String> {
    let mut causes = Vec::new();
    let key = canonical.to_ascii_lowercase();
    let name = key.rsplit('/').next().unwrap_or_default().to_string();
    for sr in [&read.roles, &read.users] {
        let section = sr.section;
        for e in &sr.entries {
            let a = &e.value.arn;
            let lower = a.to_ascii_lowercase();
            if lower.trim() == key && lower != key {
                causes.push(format!("{section} line {}: the ARN has spaces around it, which EKS keeps, so it never matches; remove them", e.line));
            } else if arn::role_path(a).is_some()
                && arn::strip_role_path(a).eq_ignore_ascii_case(canonical)
            {
                causes.push(format!("{section} line {}: the role is written with a path ({a}); EKS matches roles without one: use {}", e.line, arn::strip_role_path(a)));
            } else if a.contains(":assumed-role/")
                && arn::canonicalize(a).is_ok_and(|c| c.arn.eq_ignore_ascii_case(canonical))
            {
                causes.push(format!("{section} line {}: an STS session ARN was pasted ({a}); it names one past session: use the role ARN {canonical}", e.line));
            }
        }
    }
    for f in read.findings() {
        let line_text = data
            .get(&f.key)
            .and_then(|t| t.lines().nth(f.line.saturating_sub(1)))
            .unwrap_or_default()
            .to_ascii_lowercase();
        let mentions_you = !name.is_empty() && line_text.contains(&name);
        match f.effect {
            Effect::KeyDropped => causes.push(format!("EKS drops the whole {}: {f}", f.key)),
            Effect::EntryDropped
            | Effect::FieldBlanked
            | Effect::ValueCoerced
            | Effect::TextIgnored
                if mentions_you =>
            {
                causes.push(format!("aws-auth {f}"))
            }
            Effect::Warning if f.line == 0 => causes.push(format!("aws-auth {f}")),
            _ => {}
        }
    }
    if causes.is_empty() {
        causes.push(format!("aws-auth has no entry for {canonical} in mapRoles or mapUsers, and its account is not in mapAccounts"));
    }
    causes.push("if the cluster uses EKS access entries (authentication mode API or API_AND_CONFIG_MAP), an access entry can also grant access; aws-auth is not consulted in mode API".into());
    causes
}

fn suggest(canonical: &str, kind: arn::PrincipalType) -> String {
    let name = canonical.rsplit('/').next().unwrap_or_default();
    let (k, username) = match kind {
        arn::PrincipalType::Role => (
            "role",
            format!("\"{}:{{{{SessionName}}}}\"", name.to_ascii_lowercase()),
        ),
        _ => ("user", name.to_string()),
    };
    let key = arn::match_key(canonical);
    format!(
        "apiVersion: aws-auth.dev/v1alpha1\nkind: IamAccessGrant\nmetadata:\n  name: {}\nspec:\n  arn: {canonical}\n  username: {username}\n  groups: []  # the groups your RBAC bindings use, e.g. [system:masters]\n",
        grant_name(k, name, &key)
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WhoamiOutput {
    Text,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct WhoamiArgs {
    #[command(flatten)]
    pub source: AwsAuthSource,
    #[command(flatten)]
    pub aws: AwsProfile,
    /// An STS-compatible endpoint instead of AWS's.
    #[arg(long, env = "AWS_ENDPOINT_URL_STS")]
    pub endpoint_url: Option<String>,
    /// The EKS cluster: its authentication mode and access entries are consulted too (as EKS
    /// does: access entries first in API_AND_CONFIG_MAP, only them in API).
    #[arg(long, env = "AWS_AUTH_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// An EKS-compatible endpoint instead of AWS's.
    #[arg(long, env = "AWS_ENDPOINT_URL_EKS")]
    pub eks_endpoint_url: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: WhoamiOutput,
}

/// Which AWS credentials and region the AWS commands (`whoami`, `doctor`, `migrate`) use.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AwsProfile {
    /// AWS profile (default: the standard credential chain: environment, profile, web identity...).
    #[arg(long, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// AWS region.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
}

/// The AWS SDK configuration: the standard credential chain, or a profile; a region; an
/// endpoint for AWS-compatible services (moto in the tests).
pub async fn aws_config(aws: &AwsProfile, endpoint_url: Option<&str>) -> aws_config::SdkConfig {
    crate::install_tls_provider();
    let (profile, region) = (aws.profile.as_deref(), aws.region.as_deref());
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(u) = endpoint_url {
        loader = loader.endpoint_url(u);
    }
    loader.load().await
}

/// Asks STS who the caller is (GetCallerIdentity), through the standard credential chain.
pub async fn caller_identity(args: &WhoamiArgs) -> Result<Caller> {
    use aws_sdk_sts::config::ProvideCredentials;
    let config = aws_config(&args.aws, args.endpoint_url.as_deref()).await;
    let sts_err = |e: String| Error::Usage {
        flag: "AWS credentials",
        message: e,
    };
    let access_key_id = match config.credentials_provider() {
        Some(p) => p
            .provide_credentials()
            .await
            .map_err(|e| sts_err(format!("no usable AWS credentials: {e}")))?
            .access_key_id()
            .to_string(),
        None => {
            return Err(sts_err(
                "no AWS credentials found (environment, profile, web identity)".into(),
            ));
        }
    };
    let out = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            sts_err(format!(
                "sts:GetCallerIdentity failed: {}",
                aws_sdk_sts::error::DisplayErrorContext(e)
            ))
        })?;
    Ok(Caller {
        account: out.account().unwrap_or_default().to_string(),
        arn: out.arn().unwrap_or_default().to_string(),
        user_id: out.user_id().unwrap_or_default().to_string(),
        access_key_id,
    })
}

/// Runs `whoami`; returns whether aws-auth authenticates the caller.
pub async fn run(args: &WhoamiArgs, stdout: &mut dyn Write) -> Result<bool> {
    let caller = caller_identity(args).await?;
    let (data, source) = load_aws_auth(&args.source).await?;
    let mut report = explain(&caller, &data, &source)?;
    if let Some(cluster) = &args.cluster_name {
        let config = aws_config(&args.aws, args.eks_endpoint_url.as_deref()).await;
        let eks = crate::eks::Eks::new(&config, cluster);
        let mode = eks.cluster().await?.mode;
        let entry = if mode == "CONFIG_MAP" {
            None
        } else {
            entry_for(&eks, &report.canonical_arn).await?
        };
        through_access_entries(&mut report, &caller, &mode, entry.as_ref());
    }
    let text = match args.output {
        WhoamiOutput::Json => {
            serde_json::to_string_pretty(&report).expect("report serializes") + "\n"
        }
        WhoamiOutput::Text => render_text(&report),
    };
    crate::commands::print(stdout, &text)?;
    Ok(report.authenticated)
}

/// The access entry EKS uses for the caller: the one whose principal is the caller's (a role's
/// path does not matter: EKS matches the role itself).
async fn entry_for(eks: &crate::eks::Eks, canonical: &str) -> Result<Option<AccessEntry>> {
    let Ok(key) = arn::principal_key(canonical) else {
        return Ok(None);
    };
    let principals = eks.principals().await?;
    match principals
        .iter()
        .find(|p| arn::principal_key(p).is_ok_and(|k| k == key))
    {
        Some(p) => eks.entry(p).await,
        None => Ok(None),
    }
}

/// Folds what access entries say into the report, the way the mode makes EKS decide.
pub fn through_access_entries(
    report: &mut Report,
    caller: &Caller,
    mode: &str,
    entry: Option<&AccessEntry>,
) {
    let matched = entry.map(|e| entry_match(e, caller, report.session_name.as_deref()));
    // The cluster's mode is known now: the generic hint about access entries gives way to it.
    report
        .causes
        .retain(|c| !c.starts_with("if the cluster uses EKS access entries"));
    if mode == "API" && report.mapped.is_some() {
        report.causes.insert(
            0,
            "the cluster's authentication mode is API: the aws-auth entry above is not read".into(),
        );
    }
    let decided_by = match (mode, &matched) {
        ("API" | "API_AND_CONFIG_MAP", Some(_)) => {
            report.authenticated = true;
            report.suggested_grant = None;
            "access entry"
        }
        ("API", None) => {
            report.authenticated = false;
            report.causes.insert(
                0,
                format!(
                    "the cluster's authentication mode is API: aws-auth is not read, and no access entry names {}; create one (aws eks create-access-entry --cluster-name CLUSTER --principal-arn {})",
                    report.canonical_arn, report.canonical_arn
                ),
            );
            "none"
        }
        _ if report.mapped.is_some() => "aws-auth",
        _ => "none",
    };
    report.access_entries = Some(AccessEntries {
        authentication_mode: mode.to_string(),
        decided_by: decided_by.into(),
        entry: matched,
    });
}

fn entry_match(e: &AccessEntry, caller: &Caller, session: Option<&str>) -> EntryMatch {
    let session = session.unwrap_or_default();
    let username = match &e.username {
        Some(u) => u.clone(),
        // EKS's generated username ("Set a custom username"): the user's ARN, or the role's
        // session ARN without the role's path.
        None if caller.arn.contains(":assumed-role/") => {
            let partition = caller.arn.split(':').nth(1).unwrap_or("aws");
            let name = e.principal_arn.rsplit('/').next().unwrap_or_default();
            format!(
                "arn:{partition}:sts::{}:assumed-role/{name}/{{{{SessionName}}}}",
                caller.account
            )
        }
        None => e.principal_arn.clone(),
    };
    let username = username
        .replace("{{SessionNameRaw}}", session)
        .replace("{{SessionName}}", &session.replace('@', "-"));
    EntryMatch {
        principal_arn: e.principal_arn.clone(),
        kind: e.kind.as_str().to_string(),
        username,
        groups: e.kubernetes_groups.clone(),
        policies: e.access_policies.iter().map(|a| a.label()).collect(),
    }
}

pub fn render_text(r: &Report) -> String {
    let mut s = format!(
        "account:        {}\narn:            {}\nEKS matches on: {}\n",
        r.account, r.arn, r.canonical_arn
    );
    if let Some(sn) = &r.session_name {
        s += &format!("session name:   {sn}\n");
    }
    s += &format!("aws-auth from:  {}\n\n", r.aws_auth_source);
    match &r.mapped {
        Some(m) => {
            s += &format!(
                "MAPPED by {} line {} ({})\n  username: {}\n  groups:   [{}]\n",
                m.section,
                m.line,
                m.entry_arn,
                m.username,
                m.groups.join(", ")
            );
            if let Some(a) = &m.ambiguous {
                s += &format!("  warning:  {a}\n");
            }
        }
        None => {
            s += "NOT MAPPED by aws-auth: EKS answers \"You must be logged in to the server (Unauthorized)\"\n"
        }
    }
    for c in &r.causes {
        s += &format!("  - {c}\n");
    }
    if let Some(a) = &r.access_entries {
        s += &format!("\nauthentication mode: {}\n", a.authentication_mode);
        match &a.entry {
            Some(e) => {
                let how = if a.decided_by == "access entry" {
                    "decides (EKS reads access entries first)"
                } else {
                    "not read in this mode"
                };
                s += &format!(
                    "ACCESS ENTRY {} ({}) {how}\n  username: {}\n  groups:   [{}]\n  policies: [{}]\n",
                    e.principal_arn,
                    e.kind,
                    e.username,
                    e.groups.join(", "),
                    e.policies.join(", ")
                );
            }
            None if a.authentication_mode == "CONFIG_MAP" => {
                s += "no access entries in this mode: aws-auth alone decides\n"
            }
            None => s += "NO ACCESS ENTRY for you\n",
        }
        s += &format!("decided by: {}\n", a.decided_by);
    }
    if let Some(g) = &r.suggested_grant {
        s += &format!(
            "\nAn IamAccessGrant that grants access (apply it as a cluster admin):\n---\n{g}"
        );
    }
    s
}

#[cfg(test)]
mod tests;
