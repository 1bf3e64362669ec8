//! What `migrate` asks of the EKS API: the cluster's authentication mode and account, the access
//! entries (with their policies), and the entries it creates. Throttling is retried by the SDK in
//! its adaptive mode (a client-side rate that follows the answers), with up to ten attempts.
use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_eks::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_eks::types::{AccessScope, AccessScopeType};
use futures::{StreamExt, TryStreamExt};

use crate::engine::access_entry::{AccessEntry, Association, EntryType};
use crate::{Error, Result};

/// The tag each entry `migrate apply` creates carries, so that it can be told from the others.
pub const MIGRATED_TAG: &str = "aws-auth.dev/migrated-from";

/// How many EKS calls are in flight at once (each kept within the SDK's adaptive rate).
pub const CONCURRENCY: usize = 8;

pub struct Eks {
    client: aws_sdk_eks::Client,
    pub cluster: String,
}

/// The cluster as `migrate` needs it.
pub struct Cluster {
    pub mode: String,
    pub account: String,
}

fn aws_error<E: std::error::Error + 'static>(operation: &'static str, e: E) -> Error {
    Error::Aws {
        operation,
        message: DisplayErrorContext(e).to_string(),
    }
}

impl Eks {
    pub fn new(config: &aws_config::SdkConfig, cluster: &str) -> Eks {
        let retry = aws_config::retry::RetryConfig::adaptive()
            .with_max_attempts(10)
            .with_initial_backoff(Duration::from_millis(100));
        let conf = aws_sdk_eks::config::Builder::from(config)
            .retry_config(retry)
            .build();
        Eks {
            client: aws_sdk_eks::Client::from_conf(conf),
            cluster: cluster.to_string(),
        }
    }

    pub async fn cluster(&self) -> Result<Cluster> {
        let out = self
            .client
            .describe_cluster()
            .name(&self.cluster)
            .send()
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
        self.client
            .list_access_entries()
            .cluster_name(&self.cluster)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| aws_error("eks:ListAccessEntries", e))
    }

    /// The entries of these principals, with their policies (`None`: no such entry).
    pub async fn entries(
        &self,
        principals: &[String],
    ) -> Result<BTreeMap<String, Option<AccessEntry>>> {
        futures::stream::iter(principals)
            .map(|p| async move { Ok((p.clone(), self.entry(p).await?)) })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
    }

    pub async fn entry(&self, principal: &str) -> Result<Option<AccessEntry>> {
        let got = self
            .client
            .describe_access_entry()
            .cluster_name(&self.cluster)
            .principal_arn(principal)
            .send()
            .await;
        let e = match got {
            Ok(out) => match out.access_entry() {
                Some(e) => e.clone(),
                None => return Ok(None),
            },
            Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(None),
            Err(e) => return Err(aws_error("eks:DescribeAccessEntry", e)),
        };
        let policies = self
            .client
            .list_associated_access_policies()
            .cluster_name(&self.cluster)
            .principal_arn(principal)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| aws_error("eks:ListAssociatedAccessPolicies", e))?;
        let kind = e.r#type().unwrap_or("STANDARD");
        Ok(Some(AccessEntry {
            principal_arn: principal.to_string(),
            kind: EntryType::parse(kind).ok_or_else(|| Error::Aws {
                operation: "eks:DescribeAccessEntry",
                message: format!("access entry type {kind} is not one this tool knows"),
            })?,
            username: e.username().map(str::to_string),
            kubernetes_groups: e.kubernetes_groups().to_vec(),
            access_policies: policies
                .iter()
                .map(|p| Association {
                    policy_arn: p.policy_arn().unwrap_or_default().to_string(),
                    namespaces: p
                        .access_scope()
                        .map(|s| s.namespaces().to_vec())
                        .unwrap_or_default(),
                })
                .collect(),
        }))
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
        match req.send().await {
            Ok(_) => {}
            Err(err) if err.code() == Some("ResourceInUseException") => {}
            Err(err) => return Err(aws_error("eks:CreateAccessEntry", err)),
        }
        for a in &e.access_policies {
            let scope = if a.namespaces.is_empty() {
                AccessScope::builder().r#type(AccessScopeType::Cluster)
            } else {
                AccessScope::builder()
                    .r#type(AccessScopeType::Namespace)
                    .set_namespaces(Some(a.namespaces.clone()))
            };
            self.client
                .associate_access_policy()
                .cluster_name(&self.cluster)
                .principal_arn(&e.principal_arn)
                .policy_arn(&a.policy_arn)
                .access_scope(scope.build())
                .send()
                .await
                .map_err(|e| aws_error("eks:AssociateAccessPolicy", e))?;
        }
        Ok(())
    }
}
