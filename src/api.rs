//! The `IamAccessGrant` custom resource (aws-auth.dev/v1alpha1): its spec, status and CRD.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "aws-auth.dev";
pub const READY: &str = "Ready";

/// Grants one AWS principal access to the cluster through `kube-system/aws-auth` or EKS access
/// entries.
///
/// Give `arn` (an IAM user or role) with `username` and `groups`, or give `account` alone to
/// admit every principal of an AWS account. On EKS access entries, `type` and `accessPolicies`
/// say more.
// Each `printcolumn(...)` repeats `type_`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "aws-auth.dev",
    version = "v1alpha1",
    kind = "IamAccessGrant",
    status = "IamAccessGrantStatus",
    shortname = "iag",
    category = "aws-auth",
    printcolumn(name = "ARN", type_ = "string", json_path = ".spec.arn"),
    printcolumn(
        name = "Account",
        type_ = "string",
        json_path = ".spec.account",
        priority = "1"
    ),
    printcolumn(name = "Username", type_ = "string", json_path = ".spec.username"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = grant_rules)]
pub struct IamAccessGrantSpec {
    /// IAM user or role ARN, e.g. arn:aws:iam::111122223333:role/admins (roles without a path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::engine::validate::MAX_ARN_CHARS))]
    pub arn: Option<String>,

    /// Kubernetes username; may use {{AccountID}}, {{SessionName}}, {{SessionNameRaw}},
    /// {{AccessKeyID}} and, for node roles, {{EC2PrivateDNSName}}. Left out, EKS access entries
    /// generate one (aws-auth needs one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::engine::validate::MAX_NAME_CHARS))]
    pub username: Option<String>,

    /// Kubernetes groups, e.g. [system:masters]; the same template tokens are allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = crate::engine::validate::MAX_GROUPS),
        inner(length(max = crate::engine::validate::MAX_NAME_CHARS))
    )]
    pub groups: Vec<String>,

    /// A 12-digit AWS account id, quoted ("111122223333"): admits every principal of the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::engine::validate::MAX_NAME_CHARS))]
    pub account: Option<String>,

    /// Take over an aws-auth entry or EKS access entry for the same principal that was written
    /// by someone else.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,

    /// The access entry's type under EKS access entries. Unset: STANDARD, or EC2_LINUX for the
    /// node shape (username system:node:{{EC2PrivateDNSName}}, groups system:bootstrappers and
    /// system:nodes); set it to EC2_WINDOWS, FARGATE_LINUX or HYBRID_LINUX for those nodes.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub entry_type: Option<AccessEntryType>,

    /// EKS access policies associated with the access entry (access entries only; aws-auth
    /// holds the username and groups alone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::engine::validate::MAX_POLICIES))]
    pub access_policies: Vec<AccessPolicy>,
}

/// An access entry's type (EKS User Guide, "Create access entries").
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessEntryType {
    Standard,
    #[serde(rename = "EC2_LINUX")]
    Ec2Linux,
    #[serde(rename = "EC2_WINDOWS")]
    Ec2Windows,
    FargateLinux,
    HybridLinux,
}

/// One EKS access policy and where it applies.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicy {
    /// AmazonEKSClusterAdminPolicy, AmazonEKSAdminPolicy, AmazonEKSEditPolicy,
    /// AmazonEKSViewPolicy, or any arn:aws:eks::aws:cluster-access-policy/NAME.
    #[schemars(
        length(min = 1, max = crate::engine::validate::MAX_NAME_CHARS),
        regex(pattern = r"^([A-Za-z0-9]+|arn:aws(-cn|-us-gov|-iso|-iso-b|-iso-e|-iso-f|-eusc)?:eks::aws:cluster-access-policy/[A-Za-z0-9]+)$")
    )]
    pub policy: String,
    /// The namespaces it applies in; none: the whole cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = crate::engine::validate::MAX_GROUPS),
        inner(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))
    )]
    pub namespaces: Vec<String>,
}

impl IamAccessGrantSpec {
    /// A grant for an IAM user or role ARN.
    pub fn arn(arn: &str, username: &str, groups: &[&str]) -> Self {
        IamAccessGrantSpec {
            arn: Some(arn.to_string()),
            username: Some(username.to_string()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    /// A grant for every principal of an account.
    pub fn account(account: &str) -> Self {
        IamAccessGrantSpec {
            account: Some(account.to_string()),
            ..Default::default()
        }
    }
}

/// The grant's self-contained rules as CEL (`x-kubernetes-validations`), with the operator's own
/// messages ([`crate::engine::rules`]): the API server refuses a bad grant even with the operator
/// stopped. Bounds stay `maxLength`/`maxItems`, which also bound the rules' cost.
fn grant_rules(schema: &mut schemars::Schema) {
    crate::engine::rules::attach(
        schema
            .as_object_mut()
            .expect("the spec schema is an object"),
    );
}

/// What the operator last decided about a grant.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IamAccessGrantStatus {
    /// The generation the Ready condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The principal as EKS matches it (roles without path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_arn: Option<String>,
    /// The aws-auth key holding the entry: mapRoles, mapUsers or mapAccounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// Where the grant is in effect: aws-auth, access-entries, or both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<String>,
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Why a grant is or is not in aws-auth: the Ready condition's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    Applied,
    Invalid,
    ClusterCreator,
    Conflict,
    AwsAuthUnreadable,
    TooLarge,
    Pending,
    /// A privileged group for a principal the policy does not allow.
    Forbidden,
    /// EKS refused the grant's access entry (its message follows).
    AccessEntryRefused,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Applied => "Applied",
            Reason::Invalid => "Invalid",
            Reason::ClusterCreator => "ClusterCreator",
            Reason::Conflict => "Conflict",
            Reason::AwsAuthUnreadable => "AwsAuthUnreadable",
            Reason::TooLarge => "TooLarge",
            Reason::Pending => "Pending",
            Reason::Forbidden => "Forbidden",
            Reason::AccessEntryRefused => "AccessEntryRefused",
        }
    }

    pub fn is_ready(self) -> bool {
        self == Reason::Applied
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The CRD as YAML, exactly as committed in `crds/`.
pub fn crd_yaml() -> String {
    let crd = IamAccessGrant::crd();
    format!(
        "# Generated by `aws-auth-operator crd`; do not edit.\n{}",
        serde_yaml::to_string(&crd).expect("a CRD always serializes")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crd_matches_the_rust_types() {
        let committed = include_str!("../crds/iamaccessgrants.aws-auth.dev.yaml");
        assert!(
            committed == crd_yaml(),
            "crds/ drifted from src/api.rs: run `cargo run -- crd > crds/iamaccessgrants.aws-auth.dev.yaml`"
        );
    }

    #[test]
    fn crd_is_cluster_scoped_with_short_name_and_status() {
        let crd = IamAccessGrant::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.short_names, Some(vec!["iag".to_string()]));
        let v = &crd.spec.versions[0];
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let cols: Vec<_> = v
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .filter(|c| c.priority.is_none())
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(cols, ["ARN", "Username", "Ready", "Reason", "Age"]);
    }
}
