//! What the operator, `migrate` and `whoami` ask of the EKS API: the cluster's authentication
//! mode and account, the access entries (with their tags and policies), and the calls that
//! create, change and delete them; and of IAM, the full ARN of a role an entry is for.
//!
//! EKS throttles each operation with a token bucket whose size it does not publish. Each
//! operation here has a pacer of its own that finds the rate: it starts low and doubles about
//! every second until the first throttle, then adds about one call a second every second while
//! EKS answers, and slows by a fifth at each throttle, whose call it retries. The SDK's own retry is off, so that every throttle reaches the pacer (its adaptive
//! mode halves its rate at each one and came back slowly: a quarter of the allowed rate, measured
//! in BENCHMARKS.md).
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_eks::config::http::HttpResponse;
use aws_sdk_eks::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_eks::types::{AccessScope, AccessScopeType};
use futures::{StreamExt, TryStreamExt};
use tokio::time::Instant;

use crate::engine::access_entry::{AccessEntry, Association, EntryType};
use crate::engine::entries::{Call, Observed};
use crate::{Error, Result};

pub use crate::engine::access_entry::MIGRATED_TAG;

/// How many EKS calls are in flight at once (each operation paced on its own).
pub const CONCURRENCY: usize = 8;

/// Attempts per call: throttles and server errors are retried, paced.
const ATTEMPTS: u32 = 10;

/// One operation's pace: calls start `1 / rate` apart.
struct Pacer {
    rate: f64,
    next: Instant,
    /// Until the first throttle the rate doubles about every second (a generous limit is found
    /// in seconds); after it, it grows by about one call a second every second.
    starting: bool,
}

impl Pacer {
    const START: f64 = 5.0;
    const MIN: f64 = 0.5;
    const MAX: f64 = 1000.0;
    /// What a throttle leaves of the rate.
    const BACKOFF: f64 = 0.8;
}

pub struct Eks {
    client: aws_sdk_eks::Client,
    pub cluster: String,
    pacers: Mutex<HashMap<&'static str, Pacer>>,
}

/// The cluster as `migrate` needs it.
pub struct Cluster {
    pub mode: String,
    pub account: String,
}

fn aws_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &'static str,
    e: SdkError<E, HttpResponse>,
) -> Error {
    Error::Aws {
        operation,
        message: answer(&e),
    }
}

/// EKS's answer: its code and message, or the SDK's account of a call that got none.
fn answer<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, HttpResponse>,
) -> String {
    match (e.code(), e.message()) {
        (Some(code), Some(m)) => format!("{code}: {m}"),
        _ => DisplayErrorContext(e).to_string(),
    }
}

fn throttled(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("ThrottlingException" | "TooManyRequestsException" | "Throttling")
    )
}

/// A call EKS did not make: its answer, and whether a later attempt may succeed (a throttle
/// still there after the retries, a server error, an entry another writer made or deleted since
/// it was read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub transient: bool,
    pub message: String,
}

fn failure<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &'static str,
    e: SdkError<E, HttpResponse>,
) -> Failure {
    let message = format!("eks:{operation}: {}", answer(&e));
    Failure {
        // Another writer's entry in the way, or the entry gone since it was read: read again.
        transient: transient(&e)
            || matches!(
                e.code(),
                Some("ResourceInUseException" | "ResourceNotFoundException")
            ),
        message,
    }
}

/// Whether an error may pass on its own: a throttle, a server error, a connection that failed.
fn transient<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ServiceError(s) => {
            throttled(e.code())
                || matches!(
                    e.code(),
                    Some("ServerException" | "ServiceUnavailableException")
                )
                || s.raw().status().as_u16() >= 500
                || s.raw().status().as_u16() == 429
        }
        _ => false,
    }
}

impl Eks {
    pub fn new(config: &aws_config::SdkConfig, cluster: &str) -> Eks {
        let conf = aws_sdk_eks::config::Builder::from(config)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        Eks {
            client: aws_sdk_eks::Client::from_conf(conf),
            cluster: cluster.to_string(),
            pacers: Mutex::default(),
        }
    }

    /// Waits for this operation's next slot.
    async fn slot(&self, op: &'static str) {
        let at = {
            let mut pacers = self.pacers.lock().expect("pacers");
            let now = Instant::now();
            let p = pacers.entry(op).or_insert(Pacer {
                rate: Pacer::START,
                next: now,
                starting: true,
            });
            let at = p.next.max(now);
            p.next = at + Duration::from_secs_f64(1.0 / p.rate);
            at
        };
        tokio::time::sleep_until(at).await;
    }

    fn answered(&self, op: &'static str, throttle: bool) {
        let mut pacers = self.pacers.lock().expect("pacers");
        if let Some(p) = pacers.get_mut(op) {
            p.rate = if throttle {
                p.starting = false;
                (p.rate * Pacer::BACKOFF).max(Pacer::MIN)
            } else if p.starting {
                (p.rate + 1.0).min(Pacer::MAX)
            } else {
                // About one call a second more, every second.
                (p.rate + 1.0 / p.rate).min(Pacer::MAX)
            };
        }
    }

    /// One call, paced, with throttles and transient errors retried.
    async fn call<T, E, Fut>(
        &self,
        op: &'static str,
        send: impl Fn() -> Fut,
    ) -> std::result::Result<T, SdkError<E, HttpResponse>>
    where
        Fut: Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata,
    {
        let mut attempt = 1;
        loop {
            self.slot(op).await;
            match send().await {
                Ok(v) => {
                    self.answered(op, false);
                    return Ok(v);
                }
                Err(e) if attempt < ATTEMPTS && transient(&e) => {
                    let throttle = throttled(e.code());
                    self.answered(op, throttle);
                    if !throttle {
                        tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
                    }
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn cluster(&self) -> Result<Cluster> {
        let req = self.client.describe_cluster().name(&self.cluster);
        let out = self
            .call("DescribeCluster", || req.clone().send())
            .await
            .map_err(|e| aws_error("eks:DescribeCluster", e))?;
        let c = out.cluster();
        let mode = c
            .and_then(|c| c.access_config())
            .and_then(|a| a.authentication_mode())
            .map_or("CONFIG_MAP", |m| m.as_str())
            .to_string();
        let account = c
            .and_then(|c| c.arn())
            .and_then(|a| a.split(':').nth(4))
            .unwrap_or_default()
            .to_string();
        Ok(Cluster { mode, account })
    }

    /// Every access entry's principal ARN.
    pub async fn principals(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = self
                .client
                .list_access_entries()
                .cluster_name(&self.cluster)
                .set_next_token(token.take());
            let page = self
                .call("ListAccessEntries", || req.clone().send())
                .await
                .map_err(|e| aws_error("eks:ListAccessEntries", e))?;
            out.extend(page.access_entries().iter().cloned());
            match page.next_token() {
                Some(t) => token = Some(t.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// The entries of these principals, with their tags and policies (`None`: no such entry),
    /// described `CONCURRENCY` at a time.
    pub async fn observe_all(
        &self,
        principals: &[String],
    ) -> Result<BTreeMap<String, Option<Observed>>> {
        futures::stream::iter(principals)
            .map(|p| async move { Ok((p.clone(), self.observe(p).await?)) })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
    }

    pub async fn entry(&self, principal: &str) -> Result<Option<AccessEntry>> {
        Ok(self.observe(principal).await?.map(|o| o.entry))
    }

    /// The entry of `principal` with its tags and policies (`None`: no such entry).
    pub async fn observe(&self, principal: &str) -> Result<Option<Observed>> {
        let req = self
            .client
            .describe_access_entry()
            .cluster_name(&self.cluster)
            .principal_arn(principal);
        let e = match self
            .call("DescribeAccessEntry", || req.clone().send())
            .await
        {
            Ok(out) => match out.access_entry() {
                Some(e) => e.clone(),
                None => return Ok(None),
            },
            Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(None),
            Err(e) => return Err(aws_error("eks:DescribeAccessEntry", e)),
        };
        let mut policies = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = self
                .client
                .list_associated_access_policies()
                .cluster_name(&self.cluster)
                .principal_arn(principal)
                .set_next_token(token.take());
            let page = self
                .call("ListAssociatedAccessPolicies", || req.clone().send())
                .await
                .map_err(|e| aws_error("eks:ListAssociatedAccessPolicies", e))?;
            policies.extend(page.associated_access_policies().iter().map(|p| {
                Association {
                    policy_arn: p.policy_arn().unwrap_or_default().to_string(),
                    namespaces: p
                        .access_scope()
                        .map(|s| s.namespaces().to_vec())
                        .unwrap_or_default(),
                }
            }));
            match page.next_token() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        let kind = e.r#type().unwrap_or("STANDARD");
        let entry = AccessEntry {
            principal_arn: principal.to_string(),
            kind: EntryType::parse(kind).ok_or_else(|| Error::Aws {
                operation: "eks:DescribeAccessEntry",
                message: format!("access entry type {kind} is not one this tool knows"),
            })?,
            username: e.username().map(str::to_string),
            kubernetes_groups: e.kubernetes_groups().to_vec(),
            access_policies: policies,
        };
        let tags = e
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(Some(Observed { entry, tags }))
    }

    /// Makes one call of the operator's plan on `principal`'s entry. Gone already is done for a
    /// deletion or a disassociation.
    pub async fn apply(&self, principal: &str, call: &Call) -> std::result::Result<(), Failure> {
        let c = &self.client;
        let name = &self.cluster;
        let op = call.operation();
        let gone = |code: Option<&str>| code == Some("ResourceNotFoundException");
        match call {
            Call::Create(e, tags) => {
                let req = c
                    .create_access_entry()
                    .cluster_name(name)
                    .principal_arn(principal)
                    .r#type(e.kind.as_str())
                    .set_username(e.username.clone())
                    .set_tags(Some(tags.clone().into_iter().collect()))
                    .set_kubernetes_groups(
                        (!e.kubernetes_groups.is_empty()).then(|| e.kubernetes_groups.clone()),
                    );
                self.call(op, || req.clone().send())
                    .await
                    .map_err(|e| failure(op, e))?;
            }
            Call::Update { username, groups } => {
                let req = c
                    .update_access_entry()
                    .cluster_name(name)
                    .principal_arn(principal)
                    .set_username(username.clone())
                    .set_kubernetes_groups(Some(groups.clone()));
                self.call(op, || req.clone().send())
                    .await
                    .map_err(|e| failure(op, e))?;
            }
            Call::Tag(tags) => {
                let req = c
                    .describe_access_entry()
                    .cluster_name(name)
                    .principal_arn(principal);
                let out = self
                    .call("DescribeAccessEntry", || req.clone().send())
                    .await
                    .map_err(|e| failure("DescribeAccessEntry", e))?;
                let arn = out
                    .access_entry()
                    .and_then(|e| e.access_entry_arn())
                    .unwrap_or_default();
                let req = c
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(tags.clone().into_iter().collect()));
                self.call(op, || req.clone().send())
                    .await
                    .map_err(|e| failure(op, e))?;
            }
            Call::Associate(a) => {
                let req = c
                    .associate_access_policy()
                    .cluster_name(name)
                    .principal_arn(principal)
                    .policy_arn(&a.policy_arn)
                    .access_scope(scope(a));
                self.call(op, || req.clone().send())
                    .await
                    .map_err(|e| failure(op, e))?;
            }
            Call::Disassociate(policy) => {
                let req = c
                    .disassociate_access_policy()
                    .cluster_name(name)
                    .principal_arn(principal)
                    .policy_arn(policy);
                match self.call(op, || req.clone().send()).await {
                    Err(e) if !gone(e.code()) => return Err(failure(op, e)),
                    _ => {}
                }
            }
            Call::Delete => {
                let req = c
                    .delete_access_entry()
                    .cluster_name(name)
                    .principal_arn(principal);
                match self.call(op, || req.clone().send()).await {
                    Err(e) if !gone(e.code()) => return Err(failure(op, e)),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Creates `e` and associates its policies. An entry already there (a run cut off before)
    /// is not an error: the verification that follows compares it.
    pub async fn create(&self, e: &AccessEntry) -> Result<()> {
        let mut req = self
            .client
            .create_access_entry()
            .cluster_name(&self.cluster)
            .principal_arn(&e.principal_arn)
            .r#type(e.kind.as_str())
            .tags(MIGRATED_TAG, "aws-auth")
            .set_username(e.username.clone());
        if !e.kubernetes_groups.is_empty() {
            req = req.set_kubernetes_groups(Some(e.kubernetes_groups.clone()));
        }
        match self.call("CreateAccessEntry", || req.clone().send()).await {
            Ok(_) => {}
            Err(err) if err.code() == Some("ResourceInUseException") => {}
            Err(err) => return Err(aws_error("eks:CreateAccessEntry", err)),
        }
        for a in &e.access_policies {
            let req = self
                .client
                .associate_access_policy()
                .cluster_name(&self.cluster)
                .principal_arn(&e.principal_arn)
                .policy_arn(&a.policy_arn)
                .access_scope(scope(a));
            self.call("AssociateAccessPolicy", || req.clone().send())
                .await
                .map_err(|e| aws_error("eks:AssociateAccessPolicy", e))?;
        }
        Ok(())
    }
}

/// What a role is in IAM. aws-auth and grants name roles without their path (EKS strips it when
/// it matches aws-auth); an access entry needs the role's full ARN, path included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleLookup {
    /// The role's ARN in IAM.
    Found(String),
    /// IAM has no role of that name in the caller's account.
    Missing,
    /// IAM could not be asked (why).
    Unknown(String),
}

/// Asks IAM (`GetRole`, the caller's account) for the role `arn` names, by its name.
pub async fn lookup_role(iam: &aws_sdk_iam::Client, arn: &str) -> RoleLookup {
    let name = arn.rsplit('/').next().unwrap_or_default();
    match iam.get_role().role_name(name).send().await {
        Ok(out) => match out.role() {
            Some(r) => RoleLookup::Found(r.arn().to_string()),
            None => RoleLookup::Missing,
        },
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            RoleLookup::Missing
        }
        Err(e) => RoleLookup::Unknown(format!(
            "iam:GetRole failed: {}",
            aws_sdk_iam::error::DisplayErrorContext(e)
        )),
    }
}

/// Where an association applies: the cluster, or its namespaces.
fn scope(a: &Association) -> AccessScope {
    if a.namespaces.is_empty() {
        AccessScope::builder().r#type(AccessScopeType::Cluster)
    } else {
        AccessScope::builder()
            .r#type(AccessScopeType::Namespace)
            .set_namespaces(Some(a.namespaces.clone()))
    }
    .build()
}
