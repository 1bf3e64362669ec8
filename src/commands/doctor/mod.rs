//! `doctor irsa`: "why can't my pod use its IAM role?" Every step of IAM roles for service
//! accounts checked in order (ServiceAccount and its annotations, the cluster's OIDC issuer, the
//! IAM OIDC provider and its audience, the role and its trust policy, the pods' injected
//! environment, and optionally a real AssumeRoleWithWebIdentity), the broken one named with its fix.
pub mod trust;

use std::io::Write;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use crate::engine::authmap::shown;
use crate::{Error, Result};

pub const ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
pub const REGIONAL_ANNOTATION: &str = "eks.amazonaws.com/sts-regional-endpoints";
pub const EXPIRATION_ANNOTATION: &str = "eks.amazonaws.com/token-expiration";
pub const AUDIENCE: &str = "sts.amazonaws.com";

#[derive(Debug, Clone, clap::Subcommand)]
pub enum DoctorCmd {
    /// IAM roles for service accounts: checks every step a pod needs to use its IAM role.
    Irsa(IrsaArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct IrsaArgs {
    /// Namespace of the ServiceAccount.
    #[arg(long, short = 'n')]
    pub namespace: String,
    /// The ServiceAccount the pods run as.
    #[arg(long)]
    pub service_account: String,
    /// Check this pod (default: every pod of the namespace that uses the ServiceAccount).
    #[arg(long)]
    pub pod: Option<String>,
    /// The EKS cluster, to read its OIDC issuer (eks:DescribeCluster).
    #[arg(long, conflicts_with = "issuer_url")]
    pub cluster: Option<String>,
    /// The cluster's OIDC issuer URL, instead of asking EKS.
    #[arg(long)]
    pub issuer_url: Option<String>,
    /// Also request a token for the ServiceAccount (TokenRequest, audience sts.amazonaws.com) and
    /// call sts:AssumeRoleWithWebIdentity with it, as the pod's SDK would.
    #[arg(long)]
    pub assume: bool,
    #[command(flatten)]
    pub aws: crate::commands::whoami::AwsProfile,
    /// An endpoint for IAM, EKS and STS-compatible services instead of AWS's.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One step of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub namespace: String,
    pub service_account: String,
    pub healthy: bool,
    pub checks: Vec<Check>,
}

#[derive(Default)]
struct Checklist(Vec<Check>);

impl Checklist {
    fn push(&mut self, check: &'static str, status: Status, detail: String, fix: Option<String>) {
        self.0.push(Check {
            check,
            status,
            detail,
            fix,
        });
    }
    fn ok(&mut self, check: &'static str, detail: String) {
        self.push(check, Status::Ok, detail, None);
    }
    fn fail(&mut self, check: &'static str, detail: String, fix: String) {
        self.push(check, Status::Fail, detail, Some(fix));
    }
    fn warn(&mut self, check: &'static str, detail: String, fix: String) {
        self.push(check, Status::Warn, detail, Some(fix));
    }
    fn skip(&mut self, check: &'static str, detail: String) {
        self.push(check, Status::Skip, detail, None);
    }
}

fn aws_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Usage {
        flag: "AWS",
        message: format!("{what} failed: {e}"),
    }
}

/// The role ARN as written in the annotation, checked for the mistakes people make.
pub fn check_role_arn(raw: &str) -> Result<(String, String), (String, String)> {
    let fix_form = "write it as arn:aws:iam::ACCOUNT:role/NAME (with the role's path, if it has one), with no spaces";
    if raw.trim() != raw || raw.chars().any(char::is_whitespace) {
        return Err((
            format!("{ROLE_ANNOTATION} \"{}\" contains whitespace", shown(raw)),
            fix_form.into(),
        ));
    }
    let parsed = crate::engine::authmap::arn::Arn::parse(raw)
        .map_err(|e| (format!("{ROLE_ANNOTATION}: {e}"), fix_form.to_string()))?;
    if !crate::engine::authmap::arn::PARTITIONS.contains(&parsed.partition) {
        return Err((
            format!(
                "{ROLE_ANNOTATION}: unknown partition `{}` in {}",
                shown(parsed.partition),
                shown(raw)
            ),
            fix_form.into(),
        ));
    }
    if parsed.service != "iam" || !parsed.region.is_empty() {
        return Err((
            format!(
                "{ROLE_ANNOTATION} {} is not an IAM ARN (service `{}`, region `{}`)",
                shown(raw),
                shown(parsed.service),
                shown(parsed.region)
            ),
            fix_form.into(),
        ));
    }
    if !crate::engine::authmap::read::is_account_id(parsed.account) {
        return Err((
            format!(
                "{ROLE_ANNOTATION} {}: account `{}` is not 12 digits",
                shown(raw),
                shown(parsed.account)
            ),
            fix_form.into(),
        ));
    }
    let Some(path_and_name) = parsed.resource.strip_prefix("role/") else {
        let kind = parsed.resource.split('/').next().unwrap_or_default();
        return Err((
            format!(
                "{ROLE_ANNOTATION} {} names a {kind}, not a role: IRSA assumes roles only",
                shown(raw)
            ),
            "create a role for the pods and annotate the ServiceAccount with its ARN".into(),
        ));
    };
    let name = path_and_name.rsplit('/').next().unwrap_or_default();
    if !crate::engine::validate::is_iam_name(name) {
        return Err((
            format!(
                "{ROLE_ANNOTATION} {}: `{}` is not a valid role name",
                shown(raw),
                shown(name)
            ),
            fix_form.into(),
        ));
    }
    Ok((parsed.account.to_string(), name.to_string()))
}

/// `%XX` sequences decoded (IAM returns policy documents URL-encoded).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `doctor irsa`; returns whether every step is healthy.
pub async fn run(cmd: &DoctorCmd, out: &mut dyn Write) -> Result<bool> {
    let DoctorCmd::Irsa(args) = cmd;
    let report = diagnose(args).await?;
    let io = |e| Error::Io {
        path: "<stdout>".into(),
        source: e,
    };
    match args.output {
        Output::Json => {
            let text = serde_json::to_string_pretty(&report).expect("report serializes");
            writeln!(out, "{text}").map_err(io)?;
        }
        Output::Text => {
            writeln!(
                out,
                "IRSA doctor: ServiceAccount {}/{}",
                report.namespace, report.service_account
            )
            .map_err(io)?;
            for c in &report.checks {
                writeln!(
                    out,
                    "  {:<5} {:<22} {}",
                    c.status.label(),
                    c.check,
                    c.detail
                )
                .map_err(io)?;
                if let Some(f) = &c.fix {
                    writeln!(out, "  {:<5} {:<22} fix: {f}", "", "").map_err(io)?;
                }
            }
            let failed = report
                .checks
                .iter()
                .filter(|c| c.status == Status::Fail)
                .count();
            if failed == 0 {
                writeln!(out, "healthy").map_err(io)?;
            } else {
                writeln!(out, "{failed} step(s) failed").map_err(io)?;
            }
        }
    }
    Ok(report.healthy)
}

/// Every check, in the order a pod depends on them.
pub async fn diagnose(args: &IrsaArgs) -> Result<Report> {
    let client = crate::client().await?;
    let aws = crate::commands::whoami::aws_config(&args.aws, args.endpoint_url.as_deref()).await;
    let iam = aws_sdk_iam::Client::new(&aws);
    let mut c = Checklist::default();
    let (ns, sa_name) = (args.namespace.as_str(), args.service_account.as_str());

    // 1. The ServiceAccount and its annotations.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let sa = sas.get_opt(sa_name).await?;
    let annotations = sa
        .as_ref()
        .map(|s| s.annotations().clone())
        .unwrap_or_default();
    let mut role = None;
    match &sa {
        None => c.fail(
            "service-account",
            format!("ServiceAccount {ns}/{sa_name} does not exist"),
            format!("create it (kubectl -n {ns} create serviceaccount {sa_name}) and set spec.serviceAccountName: {sa_name} in the pods"),
        ),
        Some(_) => c.ok("service-account", format!("ServiceAccount {ns}/{sa_name} exists")),
    }
    if sa.is_some() {
        match annotations.get(ROLE_ANNOTATION) {
            None => c.fail(
                "role-annotation",
                format!("ServiceAccount {ns}/{sa_name} has no {ROLE_ANNOTATION} annotation"),
                format!("kubectl -n {ns} annotate serviceaccount {sa_name} {ROLE_ANNOTATION}=arn:aws:iam::ACCOUNT:role/NAME"),
            ),
            Some(raw) => match check_role_arn(raw) {
                Ok((account, name)) => {
                    c.ok("role-annotation", format!("{ROLE_ANNOTATION}: {}", shown(raw)));
                    role = Some((raw.clone(), account, name));
                }
                Err((what, fix)) => c.fail("role-annotation", what, fix),
            },
        }
        match annotations.get(REGIONAL_ANNOTATION).map(String::as_str) {
            None | Some("true") | Some("false") => {}
            Some(v) => c.fail(
                "sts-regional-endpoints",
                format!("{REGIONAL_ANNOTATION} is \"{}\"; the pod identity webhook reads only \"true\" or \"false\"", shown(v)),
                format!("kubectl -n {ns} annotate --overwrite serviceaccount {sa_name} {REGIONAL_ANNOTATION}=true"),
            ),
        }
        if let Some(v) = annotations.get(EXPIRATION_ANNOTATION) {
            match v.parse::<i64>() {
                Ok(s) if (600..=86400).contains(&s) => {}
                _ => c.fail(
                    "token-expiration",
                    format!("{EXPIRATION_ANNOTATION} is \"{}\"; it must be a number of seconds from 600 to 86400", shown(v)),
                    format!("kubectl -n {ns} annotate --overwrite serviceaccount {sa_name} {EXPIRATION_ANNOTATION}=86400"),
                ),
            }
        }
    }

    // 2. The cluster's OIDC issuer.
    let issuer = match (&args.issuer_url, &args.cluster) {
        (Some(u), _) => {
            c.ok("oidc-issuer", format!("issuer {u} (given)"));
            Some(u.clone())
        }
        (None, Some(name)) => {
            let eks = aws_sdk_eks::Client::new(&aws);
            let out = eks
                .describe_cluster()
                .name(name)
                .send()
                .await
                .map_err(|e| {
                    aws_error(
                        "eks:DescribeCluster",
                        aws_sdk_eks::error::DisplayErrorContext(e),
                    )
                })?;
            match out
                .cluster()
                .and_then(|cl| cl.identity())
                .and_then(|i| i.oidc())
                .and_then(|o| o.issuer())
            {
                Some(u) => {
                    c.ok("oidc-issuer", format!("cluster {name} has issuer {u}"));
                    Some(u.to_string())
                }
                None => {
                    c.fail("oidc-issuer", format!("cluster {name} reports no OIDC issuer"), "IRSA needs the cluster's OIDC issuer; check the cluster with aws eks describe-cluster".into());
                    None
                }
            }
        }
        (None, None) => {
            c.fail(
                "oidc-issuer",
                "the cluster's OIDC issuer is not known".into(),
                "pass --cluster NAME (read from eks:DescribeCluster) or --issuer-url URL".into(),
            );
            None
        }
    };
    let hostpath = issuer.as_deref().map(|u| {
        u.trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string()
    });

    // 3. The IAM OIDC provider for that issuer, with the sts.amazonaws.com audience.
    let mut provider_arn = None;
    if let Some(hp) = &hostpath {
        let list = iam
            .list_open_id_connect_providers()
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    "iam:ListOpenIDConnectProviders",
                    aws_sdk_iam::error::DisplayErrorContext(e),
                )
            })?;
        let found = list
            .open_id_connect_provider_list()
            .iter()
            .filter_map(|p| p.arn())
            .find(|a| a.ends_with(&format!(":oidc-provider/{hp}")))
            .map(str::to_string);
        match found {
            None => c.fail(
                "oidc-provider",
                format!("no IAM OIDC provider for {hp} in this account"),
                format!("create it: eksctl utils associate-iam-oidc-provider --cluster CLUSTER --approve, or aws iam create-open-id-connect-provider --url https://{hp} --client-id-list {AUDIENCE}"),
            ),
            Some(arn) => {
                let p = iam
                    .get_open_id_connect_provider()
                    .open_id_connect_provider_arn(&arn)
                    .send()
                    .await
                    .map_err(|e| aws_error("iam:GetOpenIDConnectProvider", aws_sdk_iam::error::DisplayErrorContext(e)))?;
                if p.client_id_list().iter().any(|id| id == AUDIENCE) {
                    c.ok("oidc-provider", format!("{arn} lists the audience {AUDIENCE}"));
                } else {
                    c.fail(
                        "oidc-provider",
                        format!("{arn} does not list the audience {AUDIENCE} (client ids: {})", p.client_id_list().join(", ")),
                        format!("aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn {arn} --client-id {AUDIENCE}"),
                    );
                }
                provider_arn = Some(arn);
            }
        }
    }

    // 4. The role: it exists under the annotated ARN, and its trust policy lets the token in.
    if let Some((annotated, account, name)) = &role {
        match iam.get_role().role_name(name).send().await {
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                c.fail(
                    "role",
                    format!("role {name} does not exist in this account"),
                    format!("create it, or correct {ROLE_ANNOTATION} on the ServiceAccount"),
                )
            }
            Err(e) => {
                return Err(aws_error(
                    "iam:GetRole",
                    aws_sdk_iam::error::DisplayErrorContext(e),
                ));
            }
            Ok(out) => {
                let r = out.role();
                let real = r.map(|r| r.arn().to_string()).unwrap_or_default();
                if real != *annotated {
                    c.fail(
                        "role",
                        format!("the role's ARN is {real}, but the annotation says {annotated} (the path must be the role's own)"),
                        format!("kubectl -n {ns} annotate --overwrite serviceaccount {sa_name} {ROLE_ANNOTATION}={real}"),
                    );
                } else {
                    c.ok("role", format!("role {real} exists"));
                }
                let policy = r
                    .and_then(|r| r.assume_role_policy_document())
                    .map(percent_decode)
                    .unwrap_or_default();
                match (&hostpath, &provider_arn) {
                    (Some(hp), provider) => {
                        let expected_provider = provider.clone().unwrap_or_else(|| {
                            format!("arn:aws:iam::{account}:oidc-provider/{hp}")
                        });
                        let e = trust::Expected {
                            provider_arn: &expected_provider,
                            issuer_hostpath: hp,
                            namespace: ns,
                            service_account: sa_name,
                            audience: AUDIENCE,
                        };
                        match trust::evaluate(&policy, &e) {
                            Ok(warnings) => {
                                c.ok(
                                    "trust-policy",
                                    format!(
                                        "the trust policy of {name} lets {} assume it",
                                        e.subject()
                                    ),
                                );
                                for w in warnings {
                                    c.warn("trust-policy", w.clone(), e.statement());
                                }
                            }
                            Err(p) => c.fail("trust-policy", p.what, p.fix),
                        }
                    }
                    (None, _) => c.skip("trust-policy", "skipped: the issuer is not known".into()),
                }
            }
        }
    } else {
        c.skip(
            "role",
            "skipped: no usable role ARN on the ServiceAccount".into(),
        );
    }

    // 5. The pods: the pod identity webhook's environment and token volume.
    if sa.is_some() {
        check_pods(
            &client,
            args,
            sa.as_ref(),
            role.as_ref().map(|r| r.0.as_str()),
            &mut c,
        )
        .await?;
    }

    // 6. A real exchange of a ServiceAccount token for role credentials.
    if args.assume {
        match &role {
            Some((arn, _, _)) => assume(&client, &aws, ns, sa_name, arn, &mut c).await?,
            None => c.skip("assume-role", "skipped: no usable role ARN".into()),
        }
    }

    let healthy = !c.0.iter().any(|x| x.status == Status::Fail);
    Ok(Report {
        namespace: ns.to_string(),
        service_account: sa_name.to_string(),
        healthy,
        checks: c.0,
    })
}

async fn check_pods(
    client: &Client,
    args: &IrsaArgs,
    sa: Option<&ServiceAccount>,
    role_arn: Option<&str>,
    c: &mut Checklist,
) -> Result<()> {
    let (ns, sa_name) = (args.namespace.as_str(), args.service_account.as_str());
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods: Vec<Pod> = match &args.pod {
        Some(name) => match pods_api.get_opt(name).await? {
            Some(p) => vec![p],
            None => {
                c.fail("pods", format!("pod {ns}/{name} does not exist"), "name a running pod with --pod, or leave it out to check every pod of the ServiceAccount".into());
                return Ok(());
            }
        },
        None => pods_api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.as_deref())
                    == Some(sa_name)
            })
            .collect(),
    };
    if pods.is_empty() {
        c.skip("pods", format!("no pod in {ns} runs as {sa_name}"));
        return Ok(());
    }
    // When the role annotation was last written, from the ServiceAccount's managed fields.
    let annotated_at = sa.and_then(|s| {
        s.metadata
            .managed_fields
            .as_ref()?
            .iter()
            .filter(|m| {
                m.fields_v1
                    .as_ref()
                    .is_some_and(|f| f.0.to_string().contains(ROLE_ANNOTATION))
            })
            .filter_map(|m| m.time.clone())
            .max_by_key(|t| t.0)
    });
    // Looked up once, when needed: Some(None) means it could not be read.
    let mut webhook_known: Option<Option<bool>> = None;
    for pod in &pods {
        let name = pod.name_any();
        let spec = pod.spec.as_ref();
        if let Some(other) = spec.and_then(|s| s.service_account_name.as_deref())
            && other != sa_name
        {
            c.fail(
                "pods",
                format!("pod {name} runs as ServiceAccount {other}, not {sa_name}"),
                format!("set spec.serviceAccountName: {sa_name} in its workload"),
            );
            continue;
        }
        let env: Vec<(String, Option<String>)> = spec
            .map(|s| {
                s.containers
                    .iter()
                    .flat_map(|c| c.env.clone().unwrap_or_default())
                    .map(|e| (e.name, e.value))
                    .collect()
            })
            .unwrap_or_default();
        let value = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone().unwrap_or_default())
        };
        let token_volume = spec.and_then(|s| s.volumes.as_ref()).is_some_and(|vs| {
            vs.iter().any(|v| {
                v.projected.as_ref().is_some_and(|p| {
                    p.sources.iter().flatten().any(|s| {
                        s.service_account_token
                            .as_ref()
                            .is_some_and(|t| t.audience.as_deref() == Some(AUDIENCE))
                    })
                })
            })
        });
        let (role_env, file_env) = (value("AWS_ROLE_ARN"), value("AWS_WEB_IDENTITY_TOKEN_FILE"));
        if let (Some(r), Some(_), true) = (&role_env, &file_env, token_volume) {
            match role_arn {
                Some(want) if r != want => c.fail(
                    "pods",
                    format!("pod {name} has AWS_ROLE_ARN={r}, but the ServiceAccount now says {want}"),
                    format!("restart it so the new role is injected: kubectl -n {ns} delete pod {name} (or kubectl rollout restart its workload)"),
                ),
                _ => c.ok("pods", format!("pod {name} has AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE and the projected token (audience {AUDIENCE})")),
            }
            continue;
        }
        let missing: Vec<&str> = [
            (role_env.is_none(), "AWS_ROLE_ARN"),
            (file_env.is_none(), "AWS_WEB_IDENTITY_TOKEN_FILE"),
            (!token_volume, "the projected token volume"),
        ]
        .into_iter()
        .filter_map(|(m, what)| m.then_some(what))
        .collect();
        let created = pod.metadata.creation_timestamp.clone().map(|t| t.0);
        let annotated = annotated_at.as_ref().map(|t| t.0);
        if webhook_known.is_none() && !matches!((created, annotated), (Some(p), Some(a)) if p < a) {
            webhook_known = Some(pod_identity_webhook_present(client).await);
        }
        let why = not_injected_because(created, annotated, webhook_known.flatten());
        c.fail(
            "pods",
            format!("pod {name} lacks {}: {why}", missing.join(", ")),
            format!("restart it once the ServiceAccount is right: kubectl -n {ns} delete pod {name} (or kubectl rollout restart its workload)"),
        );
    }
    Ok(())
}

/// Why a pod of an annotated ServiceAccount lacks the injected environment: created before the
/// annotation (the webhook injects only at creation), or the webhook missing or not acting.
fn not_injected_because(
    created: Option<k8s_openapi::jiff::Timestamp>,
    annotated: Option<k8s_openapi::jiff::Timestamp>,
    webhook_present: Option<bool>,
) -> String {
    match (created, annotated, webhook_present) {
        (Some(p), Some(a), _) if p < a => format!(
            "it was created before the ServiceAccount got its {ROLE_ANNOTATION} annotation ({a}), and the pod identity webhook injects only when a pod is created"
        ),
        (_, _, Some(false)) => "the pod identity webhook is missing (no MutatingWebhookConfiguration for it): EKS runs it; elsewhere install amazon-eks-pod-identity-webhook".into(),
        (_, _, Some(true)) => "the pod identity webhook did not change it: the pod was created before the annotation, or while the webhook was down".into(),
        (_, _, None) => "the pod identity webhook did not change it (whether it is installed cannot be read with your permissions)".into(),
    }
}

/// Whether a MutatingWebhookConfiguration of the pod identity webhook exists (None: cannot tell).
async fn pod_identity_webhook_present(client: &Client) -> Option<bool> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let list = api.list(&ListParams::default()).await.ok()?;
    Some(list.items.iter().any(|m| {
        m.name_any().contains("pod-identity-webhook")
            || m.webhooks
                .iter()
                .flatten()
                .any(|w| w.name.contains("pod-identity-webhook"))
    }))
}

/// TokenRequest for the ServiceAccount, then sts:AssumeRoleWithWebIdentity with that token.
async fn assume(
    client: &Client,
    aws: &aws_config::SdkConfig,
    ns: &str,
    sa: &str,
    role_arn: &str,
    c: &mut Checklist,
) -> Result<()> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![AUDIENCE.into()],
            expiration_seconds: Some(600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = match api
        .create_token_request(sa, &PostParams::default(), &request)
        .await
    {
        Ok(t) => t.status.map(|s| s.token).unwrap_or_default(),
        Err(e) => {
            c.fail(
                "assume-role",
                format!("the API server did not issue a token for {ns}/{sa}: {e}"),
                "you need create on serviceaccounts/token in that namespace".into(),
            );
            return Ok(());
        }
    };
    let sts = aws_sdk_sts::Client::new(aws);
    match sts
        .assume_role_with_web_identity()
        .role_arn(role_arn)
        .role_session_name("aws-auth-operator-doctor")
        .web_identity_token(token)
        .send()
        .await
    {
        Ok(out) => {
            let who = out.assumed_role_user().map(|u| u.arn().to_string()).unwrap_or_default();
            c.ok("assume-role", format!("sts:AssumeRoleWithWebIdentity with a token of {ns}/{sa} returned {who}: the pod gets this identity"));
        }
        Err(e) => c.fail(
            "assume-role",
            format!("sts:AssumeRoleWithWebIdentity was refused: {}", aws_sdk_sts::error::DisplayErrorContext(e)),
            "fix the failed steps above; if none failed, check that the provider's thumbprint and the issuer are current".into(),
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_annotation_mistakes_are_named() {
        assert_eq!(
            check_role_arn("arn:aws:iam::111122223333:role/team/app"),
            Ok(("111122223333".into(), "app".into()))
        );
        for (bad, why) in [
            ("arn:aws:iam::111122223333:role/app ", "whitespace"),
            ("arn:aws:iam:111122223333:role/app", "not an ARN"),
            ("arn:aws:iam::111122223333:user/app", "not a role"),
            (
                "arn:aws:sts::111122223333:assumed-role/app/s",
                "not an IAM ARN",
            ),
            ("arn:aws:iam::11112222333:role/app", "not 12 digits"),
            (
                "arn:aws:iam::111122223333:role/app!",
                "not a valid role name",
            ),
        ] {
            let (what, _) = check_role_arn(bad).unwrap_err();
            assert!(what.contains(why), "{bad}: {what}");
        }
    }

    #[test]
    fn why_a_pod_was_not_injected() {
        let t = |s: i64| Some(k8s_openapi::jiff::Timestamp::from_second(s).unwrap());
        assert!(
            not_injected_because(t(100), t(200), Some(true))
                .contains("created before the ServiceAccount got its")
        );
        assert!(not_injected_because(t(300), t(200), Some(false)).contains("webhook is missing"));
        assert!(not_injected_because(t(300), None, Some(true)).contains("did not change it"));
        assert!(not_injected_because(None, None, None).contains("cannot be read"));
    }

    #[test]
    fn policies_come_url_encoded() {
        assert_eq!(percent_decode("%7B%22a%22%3A1%7D"), "{\"a\":1}");
        assert_eq!(percent_decode("{\"a\":\"100%\"}"), "{\"a\":\"100%\"}");
    }
}
