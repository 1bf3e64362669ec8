//! The local EKS server (`hack/local-aws/`, started by `hack/test.sh`): a client, clusters, the
//! token bucket, and the environment that points the operator's AWS SDK at it.
use std::process::Command;

use aws_sdk_eks::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_eks::types::{
    AuthenticationMode, CreateAccessConfigRequest, UpdateAccessConfigRequest,
};

pub const CLUSTER_ADMIN: &str =
    "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy";
/// The principal the local server makes the cluster's creator.
pub const CREATOR: &str = "arn:aws:iam::111122223333:role/cluster-creator";

pub fn endpoint() -> String {
    std::env::var("AWS_AUTH_TEST_EKS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "no test EKS endpoint: run the suite with `hack/test.sh`, which starts the local AWS \
             server and sets AWS_AUTH_TEST_EKS_ENDPOINT"
        )
    })
}

pub fn eks() -> aws_sdk_eks::Client {
    aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint())
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .retry_config(aws_sdk_eks::config::retry::RetryConfig::adaptive().with_max_attempts(10))
            .build(),
    )
}

/// Creates cluster `name` in `mode`, with the creator's admin entry where the mode has the API
/// when `bootstrap` is set.
pub async fn cluster_with(name: &str, mode: AuthenticationMode, bootstrap: bool) {
    eks()
        .create_cluster()
        .name(name)
        .role_arn("arn:aws:iam::111122223333:role/eks-cluster")
        .resources_vpc_config(aws_sdk_eks::types::VpcConfigRequest::builder().build())
        .access_config(
            CreateAccessConfigRequest::builder()
                .authentication_mode(mode)
                .bootstrap_cluster_creator_admin_permissions(bootstrap)
                .build(),
        )
        .send()
        .await
        .expect("create cluster");
}

pub async fn cluster(name: &str, mode: AuthenticationMode) {
    cluster_with(name, mode, false).await
}

/// An IAM client of the local server (moto's IAM: account 123456789012).
pub fn iam() -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::Config::builder()
            .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
            .region(aws_sdk_iam::config::Region::new("us-east-1"))
            .endpoint_url(endpoint())
            .credentials_provider(aws_sdk_iam::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build(),
    )
}

/// Creates IAM role `name` under `path` on the local server (moto's account 123456789012).
pub async fn role_with_path(name: &str, path: &str) {
    iam()
        .create_role()
        .role_name(name)
        .path(path)
        .assume_role_policy_document("{\"Version\":\"2012-10-17\",\"Statement\":[]}")
        .send()
        .await
        .expect("create role");
}

/// Moves `cluster` to authentication mode `mode`, as `update-cluster-config` does.
pub async fn set_mode(cluster: &str, mode: AuthenticationMode) {
    eks()
        .update_cluster_config()
        .name(cluster)
        .access_config(
            UpdateAccessConfigRequest::builder()
                .authentication_mode(mode)
                .build(),
        )
        .send()
        .await
        .expect("mode switch");
}

/// How many access entries `cluster` holds.
pub async fn entry_count(cluster: &str) -> usize {
    eks()
        .list_access_entries()
        .cluster_name(cluster)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await
        .len()
}

/// The local server's token bucket, per operation.
pub fn bucket(rate: u32, burst: u32) {
    let body = format!("{{\"rate\": {rate}, \"burst\": {burst}}}");
    control("throttle", &body);
}

/// POSTs to one of the local server's test hooks; gives its answer.
pub fn control(hook: &str, body: &str) -> String {
    let out = Command::new("curl")
        .args(["-fsS", "-X", "POST", "-d", body])
        .arg(format!("{}/_local_eks/{hook}", endpoint()))
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `aws-auth-operator ARGS` with its AWS SDK pointed at the local server, not started yet.
pub fn cli(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aws-auth-operator"));
    cmd.args(args).env_remove("AWS_PROFILE");
    for (k, v) in aws_env() {
        cmd.env(k, v);
    }
    cmd
}

/// The environment that points the AWS SDK of a child process at the local server.
pub fn aws_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL_EKS", endpoint()),
        ("AWS_ENDPOINT_URL_IAM", endpoint()),
    ]
}
