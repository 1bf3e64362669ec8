//! The validating admission webhook: how EKS reads aws-auth, checked at the door, where a person
//! still sees the error in their terminal. Serves HTTPS, makes its own CA and serving certificate
//! at start (or reads one, e.g. from cert-manager), and registers itself.
pub mod certs;
pub mod review;

pub use certs::{Tls, make_certificates, shared_tls, tls};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, RuleWithOperations, ServiceReference, ValidatingWebhook,
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Client;
use kube::api::{Api, DynamicObject, ObjectMeta, Patch, PatchParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::api::IamAccessGrant;
use crate::engine::authmap::shown;
use crate::engine::plan::PlanConfig;
use crate::{Error, Result};
use review::{AwsAuthTarget, Decision, Op, Requester, review_aws_auth, review_grant};

pub const AWS_AUTH_PATH: &str = "/validate/aws-auth";
pub const GRANTS_PATH: &str = "/validate/grants";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailurePolicy {
    /// An operator that is down never blocks an emergency edit.
    Ignore,
    /// Nothing gets past an operator that is down.
    Fail,
}

#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Serve the validating admission webhook (HTTPS) on this address, e.g. 0.0.0.0:9443.
    #[arg(long, env = "AWS_AUTH_WEBHOOK_ADDR")]
    pub webhook_addr: Option<SocketAddr>,
    /// Register the webhook at this base URL (paths /validate/aws-auth and /validate/grants are
    /// appended), with a CA and serving certificate made at start for its host.
    #[arg(long, env = "AWS_AUTH_WEBHOOK_URL", conflicts_with = "webhook_service")]
    pub webhook_url: Option<String>,
    /// Register the webhook behind this Service: NAMESPACE/NAME[:PORT] (the chart's way).
    #[arg(long, env = "AWS_AUTH_WEBHOOK_SERVICE")]
    pub webhook_service: Option<String>,
    /// Read tls.crt and tls.key (and ca.crt, when registering) from here instead of making them
    /// (e.g. a cert-manager Secret mounted there).
    #[arg(long, env = "AWS_AUTH_WEBHOOK_CERT_DIR")]
    pub webhook_cert_dir: Option<PathBuf>,
    /// Share the CA and serving certificate made at start through this Secret,
    /// NAMESPACE/NAME: the first replica creates it, the others use it, so every replica behind
    /// the Service presents a certificate the registered CA vouches for.
    #[arg(
        long,
        env = "AWS_AUTH_WEBHOOK_CERT_SECRET",
        conflicts_with = "webhook_cert_dir"
    )]
    pub webhook_cert_secret: Option<String>,
    /// How long a certificate made here is valid; it is made again (and the Secret and the
    /// registration updated) once a third of that is left. A --webhook-cert-dir is re-read when
    /// its files change instead.
    #[arg(long, env = "AWS_AUTH_WEBHOOK_CERT_VALIDITY", default_value = "365d",
          value_parser = crate::operator::duration::parse_duration)]
    pub webhook_cert_validity: Duration,
    /// Name of the ValidatingWebhookConfiguration the operator creates or patches.
    #[arg(
        long,
        env = "AWS_AUTH_WEBHOOK_NAME",
        default_value = "aws-auth-operator"
    )]
    pub webhook_name: String,
    /// What the API server does when the webhook cannot be reached.
    #[arg(
        long,
        env = "AWS_AUTH_WEBHOOK_FAILURE_POLICY",
        value_enum,
        default_value = "ignore"
    )]
    pub webhook_failure_policy: FailurePolicy,
    /// Seconds the API server waits for an answer (1-30).
    #[arg(long, env = "AWS_AUTH_WEBHOOK_TIMEOUT", default_value_t = 5,
          value_parser = clap::value_parser!(i32).range(1..=30))]
    pub webhook_timeout: i32,
    /// The username the operator's own writes come as (in a pod:
    /// system:serviceaccount:NAMESPACE:NAME); asked of the API server when not given (1.28+).
    #[arg(long, env = "AWS_AUTH_OPERATOR_USERNAME")]
    pub operator_username: Option<String>,
    /// Who may request a privileged group in a grant: a username or `group:NAME` (repeatable,
    /// comma-separated in the environment). None: the requester is not checked.
    #[arg(
        long = "privileged-granter",
        env = "AWS_AUTH_PRIVILEGED_GRANTER",
        value_delimiter = ','
    )]
    pub privileged_granters: Vec<String>,
}

/// What the handlers need.
pub struct Webhook {
    pub target: AwsAuthTarget,
    pub config: PlanConfig,
    pub granters: Vec<String>,
    pub metrics: Arc<crate::operator::telemetry::Metrics>,
}

pub(crate) fn usage(message: String) -> Error {
    Error::Usage {
        flag: "--webhook",
        message,
    }
}

/// The hosts the serving certificate must name: the URL's host, or the Service's DNS names.
pub fn hosts(args: &WebhookArgs) -> Result<Vec<String>> {
    if let Some(url) = &args.webhook_url {
        let rest = url.strip_prefix("https://").ok_or_else(|| {
            usage(format!(
                "--webhook-url `{url}` must start with https:// (the API server calls webhooks over TLS)"
            ))
        })?;
        let authority = rest.split('/').next().unwrap_or_default();
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        };
        return Ok(vec![host.to_string()]);
    }
    if let Some(svc) = &args.webhook_service {
        let (ns, name, _) = parse_service(svc)?;
        return Ok(vec![
            format!("{name}.{ns}.svc"),
            format!("{name}.{ns}.svc.cluster.local"),
        ]);
    }
    Ok(vec!["localhost".into()])
}

/// `NAMESPACE/NAME[:PORT]`.
fn parse_service(s: &str) -> Result<(String, String, i32)> {
    let bad = || {
        usage(format!(
            "--webhook-service `{s}` is not NAMESPACE/NAME[:PORT]"
        ))
    };
    let (ns, rest) = s.split_once('/').ok_or_else(bad)?;
    let (name, port) = match rest.split_once(':') {
        Some((n, p)) => (n, p.parse().map_err(|_| bad())?),
        None => (rest, 443),
    };
    if ns.is_empty() || name.is_empty() {
        return Err(bad());
    }
    Ok((ns.to_string(), name.to_string(), port))
}

/// Binds the webhook port; fails with the address in the message.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| usage(format!("cannot listen on {addr}: {e}")))
}

/// How long a client may take to finish the TLS handshake, and to send a request's headers
/// (also the longest a kept-alive connection may idle): a connection that sends nothing holds no
/// slot for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The API server waits at most 30 s for a webhook; a review taking longer is answered 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections held at once; past it, accepting waits for one to close. Idle ones are cheap (a
/// task each) and closed by the timeouts above, so hundreds of them leave room for the API server.
const MAX_CONNECTIONS: usize = 1024;
/// Reviews worked on at once (each may read 1 MiB of aws-auth twice, on a blocking thread).
const MAX_IN_FLIGHT: usize = 16;
/// The API server sends at most 3 MiB in a request; a review of aws-auth carries the old and
/// the new object (each at most 1.5 MiB, etcd's limit) in JSON: 3.5 MiB leaves room for its
/// envelope and refuses anything larger before reading it.
const MAX_REVIEW_BYTES: usize = 7 << 19;

/// The webhook's routes and request limits.
pub fn router(hook: Arc<Webhook>) -> Router {
    Router::new()
        .route(AWS_AUTH_PATH, post(review))
        .route(GRANTS_PATH, post(review))
        .layer(DefaultBodyLimit::max(MAX_REVIEW_BYTES))
        .layer(tower::limit::ConcurrencyLimitLayer::new(MAX_IN_FLIGHT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(hook)
}

/// Serves the webhook until the task is dropped: TLS in front of the router, each connection on
/// a task of its own, a bounded number of them, and accept errors (out of file descriptors)
/// backed off instead of spun on.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, hook: Arc<Webhook>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let app = router(hook);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Duration::from_millis(10);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => {
                backoff = Duration::from_millis(10);
                c
            }
            Err(e) => {
                warn!(error = %e, "webhook accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => return debug!(%peer, error = %e, "webhook TLS handshake"),
                Err(_) => return debug!(%peer, "webhook TLS handshake timed out"),
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            if let Err(e) = http
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await
            {
                debug!(%peer, error = %e, "webhook connection");
            }
        });
    }
}

/// One AdmissionReview: decoded and judged on a blocking thread (a review of aws-auth parses up
/// to 1 MiB twice), answered with the decision.
async fn review(State(hook): State<Arc<Webhook>>, uri: Uri, body: Bytes) -> Response {
    let reply = |code: StatusCode, body: Vec<u8>| {
        (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    };
    let path = uri.path().to_string();
    let webhook = if path == AWS_AUTH_PATH {
        "aws-auth"
    } else {
        "grants"
    };
    let judge = hook.clone();
    let judged = tokio::task::spawn_blocking(move || {
        let review: AdmissionReview<DynamicObject> =
            serde_json::from_slice(&body).map_err(|e| format!("not an AdmissionReview: {e}"))?;
        let request: AdmissionRequest<DynamicObject> = review
            .try_into()
            .map_err(|_| "an AdmissionReview without a request".to_string())?;
        let decision = judge_request(&judge, &path, &request);
        Ok::<_, String>((request, decision))
    })
    .await;
    let (request, decision) = match judged {
        Ok(Ok(j)) => j,
        Ok(Err(e)) => {
            warn!(error = %shown(&e), "webhook request refused");
            return reply(StatusCode::BAD_REQUEST, b"{}".to_vec());
        }
        Err(e) => {
            warn!(error = %e, "webhook review failed");
            return reply(StatusCode::INTERNAL_SERVER_ERROR, b"{}".to_vec());
        }
    };
    record(&request, &decision);
    let label = crate::operator::telemetry::ReviewLabel {
        webhook,
        allowed: if decision.allowed { "true" } else { "false" },
    };
    hook.metrics.reviews.get_or_create(&label).inc();
    let response = respond(&request, decision);
    let body = serde_json::to_vec(&response.into_review()).expect("a review serializes");
    reply(StatusCode::OK, body)
}

fn convert<T: DeserializeOwned>(o: Option<&DynamicObject>) -> Option<T> {
    serde_json::to_value(o?)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

/// The decision for one request (pure).
fn judge_request(hook: &Webhook, path: &str, req: &AdmissionRequest<DynamicObject>) -> Decision {
    let op = match req.operation {
        Operation::Create => Op::Create,
        Operation::Update => Op::Update,
        Operation::Delete => Op::Delete,
        _ => Op::Other,
    };
    let user = requester(req);
    if path == AWS_AUTH_PATH {
        let (old, new): (Option<ConfigMap>, Option<ConfigMap>) = (
            convert(req.old_object.as_ref()),
            convert(req.object.as_ref()),
        );
        review_aws_auth(&op, &user, old.as_ref(), new.as_ref(), &hook.target)
    } else {
        let (old, new): (Option<IamAccessGrant>, Option<IamAccessGrant>) = (
            convert(req.old_object.as_ref()),
            convert(req.object.as_ref()),
        );
        review_grant(
            &op,
            &user,
            old.as_ref(),
            new.as_ref(),
            &hook.config,
            &hook.granters,
        )
    }
}

fn requester(req: &AdmissionRequest<DynamicObject>) -> Requester {
    Requester {
        username: req.user_info.username.clone().unwrap_or_default(),
        groups: req.user_info.groups.clone().unwrap_or_default(),
    }
}

/// Logs a denial or a break-glass admission.
fn record(req: &AdmissionRequest<DynamicObject>, decision: &Decision) {
    let user = requester(req);
    if let Some(why) = &decision.break_glass {
        // Only a log line: the BreakGlass Event is recorded by the controller once the API server
        // has stored the object (a review posted to this port by anyone else plants nothing).
        warn!(user = %shown(&user.username), object = %shown(&req.name), reason = %shown(why), dry_run = req.dry_run, "break-glass edit let through");
    }
    if !decision.allowed {
        info!(user = %shown(&user.username), object = %shown(&req.name), "edit denied");
    }
}

fn respond(req: &AdmissionRequest<DynamicObject>, d: Decision) -> AdmissionResponse {
    let mut r = AdmissionResponse::from(req);
    if !d.allowed {
        r = r.deny(d.message);
    }
    if !d.warnings.is_empty() {
        r.warnings = Some(
            d.warnings
                .iter()
                .map(|w| crate::engine::authmap::excerpt(w, 500).into_owned())
                .collect(),
        );
    }
    r
}

/// The username the operator's own writes come as: given, or asked of the API server.
pub async fn operator_username(client: &Client, given: Option<&str>) -> Result<String> {
    if let Some(u) = given {
        return Ok(u.to_string());
    }
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = SelfSubjectReview::default();
    match api.create(&Default::default(), &review).await {
        Ok(r) => r
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .ok_or_else(|| {
                usage(
                    "the API server did not say who the operator is; pass --operator-username"
                        .into(),
                )
            }),
        Err(e) => Err(usage(format!(
            "cannot ask the API server who the operator is ({e}; SelfSubjectReview needs Kubernetes 1.28+): pass --operator-username (in a pod: system:serviceaccount:NAMESPACE:SERVICEACCOUNT)"
        ))),
    }
}

/// The label the aws-auth webhook selects its namespace by. API servers before 1.21 do not set
/// it: there the webhook would be registered and never called.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Refuses to register a webhook the API server would never call: aws-auth's namespace must carry
/// the label its namespace selector matches.
async fn namespace_selectable(client: &Client, namespace: &str) -> Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    let fix = format!(
        "kubectl label namespace {namespace} {NAMESPACE_NAME_LABEL}={namespace} (Kubernetes sets it from 1.21 on)"
    );
    match Api::<Namespace>::all(client.clone())
        .get_opt(namespace)
        .await
    {
        Ok(Some(ns)) => labelled_with_its_name(&ns, namespace, &fix),
        Ok(None) => Err(usage(format!(
            "namespace {namespace} (where aws-auth lives) does not exist"
        ))),
        Err(e) => Err(usage(format!(
            "cannot read namespace {namespace} to check the label {NAMESPACE_NAME_LABEL} the aws-auth webhook selects it by ({e}); grant `get` on it (the chart does), or {fix}"
        ))),
    }
}

/// Whether `ns` carries the label the webhook's namespace selector matches.
fn labelled_with_its_name(
    ns: &k8s_openapi::api::core::v1::Namespace,
    namespace: &str,
    fix: &str,
) -> Result<()> {
    let label = ns
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(NAMESPACE_NAME_LABEL));
    if label.map(String::as_str) == Some(namespace) {
        Ok(())
    } else {
        Err(usage(format!(
            "namespace {namespace} lacks the label {NAMESPACE_NAME_LABEL}={namespace} that the aws-auth webhook selects it by, so the API server would never call it; the webhook is not started: {fix}"
        )))
    }
}

/// Creates or updates the ValidatingWebhookConfiguration: one webhook for aws-auth (only its
/// namespace, and only its name where the server has match conditions), one for the grants.
pub async fn register(
    client: &Client,
    args: &WebhookArgs,
    ca_pem: &str,
    target: &AwsAuthTarget,
    grant_selector: Option<&str>,
) -> Result<()> {
    let client_config = |path: &str| -> Result<WebhookClientConfig> {
        let ca_bundle = Some(ByteString(ca_pem.as_bytes().to_vec()));
        if let Some(url) = &args.webhook_url {
            return Ok(WebhookClientConfig {
                url: Some(format!("{}{path}", url.trim_end_matches('/'))),
                ca_bundle,
                service: None,
            });
        }
        let svc = args
            .webhook_service
            .as_deref()
            .ok_or_else(|| usage("registering needs --webhook-url or --webhook-service".into()))?;
        let (namespace, name, port) = parse_service(svc)?;
        Ok(WebhookClientConfig {
            url: None,
            ca_bundle,
            service: Some(ServiceReference {
                namespace,
                name,
                port: Some(port),
                path: Some(path.to_string()),
            }),
        })
    };
    namespace_selectable(client, &target.namespace).await?;
    let version = client.apiserver_version().await?;
    let minor: u32 = version
        .minor
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0);
    let match_conditions = (version.major == "1" && minor >= 28).then(|| {
        let (n, h) = (&target.name, &target.history_name);
        vec![MatchCondition {
            name: "aws-auth-and-history-only".into(),
            expression: format!(
                "(object != null && object.metadata.name in ['{n}', '{h}']) || (oldObject != null && oldObject.metadata.name in ['{n}', '{h}'])"
            ),
        }]
    });
    let policy = match args.webhook_failure_policy {
        FailurePolicy::Ignore => "Ignore",
        FailurePolicy::Fail => "Fail",
    };
    let rule = |groups: &str, versions: &str, resource: &str, ops: &[&str], scope: &str| {
        RuleWithOperations {
            api_groups: Some(vec![groups.into()]),
            api_versions: Some(vec![versions.into()]),
            resources: Some(vec![resource.into()]),
            operations: Some(ops.iter().map(|o| o.to_string()).collect()),
            scope: Some(scope.into()),
        }
    };
    let webhook =
        |name: &str, path: &str, rules, namespace_selector, object_selector, conditions| {
            Ok::<_, Error>(ValidatingWebhook {
                name: name.into(),
                client_config: client_config(path)?,
                rules: Some(vec![rules]),
                namespace_selector,
                object_selector,
                match_conditions: conditions,
                failure_policy: Some(policy.into()),
                side_effects: "NoneOnDryRun".into(),
                admission_review_versions: vec!["v1".into()],
                timeout_seconds: Some(args.webhook_timeout),
                match_policy: Some("Equivalent".into()),
            })
        };
    let namespace_selector = LabelSelector {
        match_labels: Some([(NAMESPACE_NAME_LABEL.to_string(), target.namespace.clone())].into()),
        ..Default::default()
    };
    let object_selector = grant_selector
        .and_then(selector_labels)
        .map(|l| LabelSelector {
            match_labels: Some(l),
            ..Default::default()
        });
    let vwc = ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(args.webhook_name.clone()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    "aws-auth-operator".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        webhooks: Some(vec![
            webhook(
                "aws-auth.aws-auth.dev",
                AWS_AUTH_PATH,
                rule(
                    "",
                    "v1",
                    "configmaps",
                    &["CREATE", "UPDATE", "DELETE"],
                    "Namespaced",
                ),
                Some(namespace_selector),
                None,
                match_conditions,
            )?,
            webhook(
                "grants.aws-auth.dev",
                GRANTS_PATH,
                rule(
                    "aws-auth.dev",
                    "*",
                    "iamaccessgrants",
                    &["CREATE", "UPDATE"],
                    "Cluster",
                ),
                None,
                object_selector,
                None,
            )?,
        ]),
    };
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch(
            &args.webhook_name,
            &PatchParams::apply("aws-auth-operator").force(),
            &Patch::Apply(&vwc),
        )
        .await?;
    info!(name = %args.webhook_name, failure_policy = policy, "webhook registered");
    Ok(())
}

/// `k=v,k2=v2` as labels (other selector forms are not mirrored onto the webhook).
fn selector_labels(s: &str) -> Option<std::collections::BTreeMap<String, String>> {
    s.split(',')
        .map(|p| {
            let (k, v) = p.split_once('=')?;
            let v = v.strip_prefix('=').unwrap_or(v);
            (!k.is_empty() && !k.ends_with('!'))
                .then(|| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_namespace_without_its_name_label_refuses_the_webhook_with_the_fix() {
        // Servers since 1.21 set the label on every namespace and keep it: only this can show it.
        let ns = |labels: &[(&str, &str)]| k8s_openapi::api::core::v1::Namespace {
            metadata: kube::api::ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        let fix = "kubectl label namespace kube-system kubernetes.io/metadata.name=kube-system";
        let e = labelled_with_its_name(&ns(&[]), "kube-system", fix)
            .unwrap_err()
            .to_string();
        assert!(e.contains("would never call it") && e.contains(fix), "{e}");
        let wrong = ns(&[(NAMESPACE_NAME_LABEL, "other")]);
        assert!(labelled_with_its_name(&wrong, "kube-system", fix).is_err());
        let right = ns(&[(NAMESPACE_NAME_LABEL, "kube-system")]);
        assert!(labelled_with_its_name(&right, "kube-system", fix).is_ok());
    }
    use super::*;

    pub(super) fn args(url: Option<&str>, service: Option<&str>) -> WebhookArgs {
        WebhookArgs {
            webhook_addr: None,
            webhook_url: url.map(Into::into),
            webhook_service: service.map(Into::into),
            webhook_cert_dir: None,
            webhook_cert_secret: None,
            webhook_cert_validity: Duration::from_secs(365 * 86_400),
            webhook_name: "aws-auth-operator".into(),
            webhook_failure_policy: FailurePolicy::Ignore,
            webhook_timeout: 5,
            operator_username: None,
            privileged_granters: Vec::new(),
        }
    }

    #[test]
    fn certificate_hosts_come_from_the_url_or_the_service() {
        assert_eq!(
            hosts(&args(Some("https://127.0.0.1:9443"), None)).unwrap(),
            ["127.0.0.1"]
        );
        assert_eq!(
            hosts(&args(Some("https://[::1]:9443/x"), None)).unwrap(),
            ["::1"]
        );
        assert_eq!(
            hosts(&args(None, Some("aws-auth-system/aws-auth-operator:443"))).unwrap(),
            [
                "aws-auth-operator.aws-auth-system.svc",
                "aws-auth-operator.aws-auth-system.svc.cluster.local"
            ]
        );
        assert!(hosts(&args(Some("http://x"), None)).is_err());
        assert!(parse_service("nope").is_err());
    }

    #[test]
    fn made_certificates_load_into_rustls() {
        let a = args(Some("https://127.0.0.1:1"), None);
        let t = tls(&a).unwrap();
        assert!(
            t.ca_pem()
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
    }

    #[test]
    fn simple_selectors_become_labels() {
        assert_eq!(
            selector_labels("a=b, c==d"),
            Some(
                [
                    ("a".to_string(), "b".to_string()),
                    ("c".to_string(), "d".to_string())
                ]
                .into()
            )
        );
        assert_eq!(selector_labels("a!=b"), None);
        assert_eq!(selector_labels("a in (b)"), None);
    }
}
