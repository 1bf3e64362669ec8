//! aws-auth-operator: declarative, lockout-proof access to Amazon EKS through `kube-system/aws-auth`.
pub mod api;
pub mod authmap;
pub mod plan;
pub mod validate;
