//! The plan's configuration: budgets, the lockout rails, the one-pass switches, and the flags
//! `run` and `render` build it from.
use super::*;

/// A ConfigMap's `data` holds at most 1 MiB; the budget keeps a margin for other writers' keys
/// that arrive between a plan and its write.
pub const DATA_LIMIT: usize = 1024 * 1024;
pub const DATA_MARGIN: usize = 32 * 1024;
/// An object's annotations hold at most 256 KiB together.
pub const ANNOTATIONS_LIMIT: usize = 256 * 1024;
pub const ANNOTATIONS_MARGIN: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// Principal keys of the cluster creator(s) (see [`arn::principal_key`]).
    pub cluster_creators: Vec<String>,
    /// Budget for the size of `data` (keys and values, as the API server counts them).
    pub max_data_bytes: usize,
    /// Budget for all annotations of aws-auth; the ownership record gets what the others leave.
    pub max_annotation_bytes: usize,
    /// A pass that would remove more than this many managed entries *and* more than
    /// `max_removal_percent` of them removes none until a person confirms.
    pub max_removals: usize,
    pub max_removal_percent: u32,
    /// Group globs that only principals matching `privileged_principals` (ARN globs) may be
    /// granted (see [`policy`]: reserved usernames and whole accounts are privileged too).
    pub privileged_groups: Vec<String>,
    pub privileged_principals: Vec<String>,
    /// Accounts an `account:` grant may map (every principal of the account).
    pub allowed_accounts: Vec<String>,
    /// Set for one pass when the grant list cannot be trusted to be complete (the CRD is missing
    /// or being deleted): no managed entry is removed, whatever the count or confirmation.
    pub grants_unavailable: Option<String>,
    /// Set for one pass when the history of aws-auth cannot be kept: removals of managed entries
    /// still apply (a revocation must not wait on a broken history), additions and changes wait
    /// (`Pending`, with this reason) and the entries they would change stay as they are.
    pub history_unavailable: Option<String>,
    /// Managed entries the operator removed in its recent passes (its removal window). They count
    /// toward the breaker with this pass's, so a deletion spread over many passes is held as a
    /// mass deletion in one would be.
    pub recently_removed: usize,
    /// The most managed entries aws-auth held within the removal window (see
    /// [`RemovalWindow`]): the breaker's percentage is taken of at least this many.
    pub peak_managed: usize,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            cluster_creators: Vec::new(),
            max_data_bytes: DATA_LIMIT - DATA_MARGIN,
            max_annotation_bytes: ANNOTATIONS_LIMIT - ANNOTATIONS_MARGIN,
            max_removals: 5,
            max_removal_percent: 30,
            privileged_groups: policy::DEFAULT_PRIVILEGED_GROUPS
                .iter()
                .map(|g| g.to_string())
                .collect(),
            privileged_principals: Vec::new(),
            allowed_accounts: Vec::new(),
            grants_unavailable: None,
            history_unavailable: None,
            recently_removed: 0,
            peak_managed: 0,
        }
    }
}

/// The lockout rails, as `run` and `render` take them (so a pull-request check agrees with the
/// cluster).
#[derive(Debug, Clone, clap::Args)]
pub struct RailsArgs {
    /// A group glob that only principals matching --privileged-principal may be granted
    /// (repeatable, comma-separated in the environment).
    #[arg(
        long = "privileged-group",
        env = "AWS_AUTH_PRIVILEGED_GROUP",
        value_delimiter = ',',
        default_values = policy::DEFAULT_PRIVILEGED_GROUPS
    )]
    pub privileged_groups: Vec<String>,
    /// An ARN glob (`*`, `?`; case-insensitive) of principals that may hold a privileged identity
    /// (a privileged group, a reserved username, an adopted privileged entry), e.g.
    /// `arn:aws:iam::111122223333:role/platform-*` (repeatable). None: nobody may.
    #[arg(
        long = "privileged-principal",
        env = "AWS_AUTH_PRIVILEGED_PRINCIPAL",
        value_delimiter = ','
    )]
    pub privileged_principals: Vec<String>,
    /// A 12-digit account an `account:` grant may map (repeatable). None: no account grant.
    #[arg(
        long = "allowed-account",
        env = "AWS_AUTH_ALLOWED_ACCOUNT",
        value_delimiter = ','
    )]
    pub allowed_accounts: Vec<String>,
    /// A pass that would remove more than this many managed entries...
    #[arg(long, env = "AWS_AUTH_MAX_REMOVALS", default_value_t = 5)]
    pub max_removals: usize,
    /// ...and more than this percentage of them removes none until confirmed (`confirm-removal`).
    #[arg(long, env = "AWS_AUTH_MAX_REMOVAL_PERCENT", default_value_t = 30)]
    pub max_removal_percent: u32,
}

impl PlanConfig {
    /// The configuration `run` and `render` build from their flags.
    pub fn from_args<S: AsRef<str>>(creators: &[S], rails: &RailsArgs) -> crate::Result<Self> {
        let mut c = Self::for_cluster_creators(creators)?;
        c.privileged_groups = rails.privileged_groups.clone();
        c.privileged_principals = rails.privileged_principals.clone();
        c.allowed_accounts = rails.allowed_accounts.clone();
        c.max_removals = rails.max_removals;
        c.max_removal_percent = rails.max_removal_percent;
        if c.max_removal_percent > 100 {
            return Err(crate::Error::Usage {
                flag: "--max-removal-percent",
                message: format!("{} is not a percentage (0-100)", c.max_removal_percent),
            });
        }
        Ok(c)
    }

    /// The default budgets with the cluster creators given on the command line.
    pub fn for_cluster_creators<S: AsRef<str>>(arns: &[S]) -> crate::Result<Self> {
        Self::default()
            .with_cluster_creators(arns)
            .map_err(|e| crate::Error::Usage {
                flag: "--cluster-creator-arn",
                message: e.to_string(),
            })
    }

    /// Configures the cluster creator ARNs (any form: role, path-carrying role, session ARN).
    pub fn with_cluster_creators<S: AsRef<str>>(
        mut self,
        arns: &[S],
    ) -> Result<Self, arn::ArnError> {
        self.cluster_creators = arns
            .iter()
            .map(|a| arn::principal_key(a.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }
}
