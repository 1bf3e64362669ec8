//! The access-entry backend: which backends a pass writes (the cluster's authentication mode,
//! re-read on the resync interval), and the pass over EKS access entries: read what EKS holds,
//! plan ([`crate::engine::entries`]), keep the record of the operator's entries, make the calls.
//!
//! EKS is read in full at start and on every resync; between them the operator trusts what it
//! read and what its own calls did, and describes only entries that appeared in the list. So a
//! pass over unchanged grants costs one list call, and a new grant one create.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::cache::Cached;
use super::status::Backends;
use super::{Context, SyncError, note_event};
use crate::api::Reason;
use crate::commands::whoami::{AwsProfile, aws_config};
use crate::eks::{CONCURRENCY, Eks, Failure, RoleLookup, lookup_role};
use crate::engine::access_entry::AccessEntry;
use crate::engine::authmap::{arn, shown};
use crate::engine::entries::{
    self, Call, EntriesConfig, EntriesPlan, EntryVerdict, Observed, Work,
};
// The record carries held deletions and their confirmation under aws-auth's annotation names.
use crate::engine::plan::{CONFIRM_ANNOTATION, HELD_ANNOTATION};
use crate::{Error, Result};

/// Which backend(s) `run` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// Follow the cluster's authentication mode (DescribeCluster): aws-auth under CONFIG_MAP,
    /// access entries under API, both under API_AND_CONFIG_MAP. Without --cluster-name: aws-auth.
    Auto,
    Configmap,
    AccessEntries,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// Where grants are written: auto, configmap (aws-auth) or access-entries (the EKS API).
    #[arg(long, env = "AWS_AUTH_BACKEND", value_enum, default_value = "auto")]
    pub backend: BackendArg,
    /// The EKS cluster's name (needed for access entries, and for auto to read the mode).
    #[arg(long, env = "AWS_AUTH_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// The value of the `aws-auth.dev/managed-by` tag on the access entries this operator
    /// creates: entries with another value (or none) are someone else's.
    #[arg(
        long,
        env = "AWS_AUTH_OPERATOR_NAME",
        default_value = "aws-auth-operator"
    )]
    pub operator_name: String,
    #[command(flatten)]
    pub aws: AwsProfile,
}

/// Versions of the operator's entries the record keeps, and the bytes they may take together
/// (a ConfigMap holds at most 1 MiB).
const RECORD_VERSIONS: usize = 10;
const RECORD_BYTES: usize = 800 * 1024;

/// The backends and, when access entries are among them, the EKS side.
pub struct Backend {
    arg: BackendArg,
    pub eks: Option<EksSide>,
    every: Duration,
}

pub struct EksSide {
    pub eks: Eks,
    /// Asked for the full ARN (path included) of a role a new entry is for.
    iam: aws_sdk_iam::Client,
    /// What IAM said, by principal key: the role's ARN, or none (no such role in that account,
    /// or IAM could not be asked: the ARN as written then, and EKS's answer).
    roles: Mutex<HashMap<String, Option<String>>>,
    pub operator: String,
    state: Mutex<State>,
    removal_window: Duration,
}

#[derive(Default)]
struct State {
    /// The cluster's mode and account, and when they were read.
    mode: Option<(String, String, Instant)>,
    /// The entries as last read or changed, by principal ARN; none: read all afresh.
    known: Option<HashMap<String, Observed>>,
    read_at: Option<Instant>,
    /// Deletions made within the removal window.
    removed: VecDeque<(Instant, usize)>,
}

impl Backend {
    pub async fn new(
        args: &BackendArgs,
        resync: Duration,
        removal_window: Duration,
    ) -> Result<Backend> {
        let eks = match (args.backend, &args.cluster_name) {
            (BackendArg::Configmap, _) => None,
            (BackendArg::AccessEntries, None) => {
                return Err(Error::Usage {
                    flag: "--backend",
                    message: "access-entries needs --cluster-name (or AWS_AUTH_CLUSTER_NAME): the EKS cluster whose access entries to manage".into(),
                });
            }
            (BackendArg::Auto, None) => {
                info!(
                    "no --cluster-name: writing aws-auth only (give it to follow the cluster's authentication mode)"
                );
                None
            }
            (_, Some(cluster)) => {
                let config = aws_config(&args.aws, None).await;
                Some(EksSide {
                    eks: Eks::new(&config, cluster),
                    iam: aws_sdk_iam::Client::new(&config),
                    roles: Mutex::default(),
                    operator: args.operator_name.clone(),
                    state: Mutex::default(),
                    removal_window,
                })
            }
        };
        Ok(Backend {
            arg: args.backend,
            eks,
            every: resync,
        })
    }

    /// The backends this pass writes, and a mode change seen (from, to). The mode is read at the
    /// first pass and again once the resync interval has passed.
    pub async fn current(&self) -> Result<(Backends, Option<(String, String)>)> {
        let Some(side) = &self.eks else {
            return Ok((
                Backends {
                    aws_auth: true,
                    access_entries: false,
                },
                None,
            ));
        };
        if self.arg == BackendArg::AccessEntries {
            side.account().await?;
            return Ok((
                Backends {
                    aws_auth: false,
                    access_entries: true,
                },
                None,
            ));
        }
        let (mode, changed) = side.mode(self.every).await?;
        let backends = match mode.as_str() {
            "API" => Backends {
                aws_auth: false,
                access_entries: true,
            },
            "API_AND_CONFIG_MAP" => Backends {
                aws_auth: true,
                access_entries: true,
            },
            _ => Backends {
                aws_auth: true,
                access_entries: false,
            },
        };
        Ok((backends, changed))
    }
}

impl EksSide {
    async fn mode(&self, every: Duration) -> Result<(String, Option<(String, String)>)> {
        let due = {
            let s = self.state.lock().expect("entries state");
            match &s.mode {
                Some((m, _, at)) if at.elapsed() < every => return Ok((m.clone(), None)),
                m => m.as_ref().map(|(m, _, _)| m.clone()),
            }
        };
        let c = match self.eks.cluster().await {
            Ok(c) => c,
            // EKS not answering does not stop the pass: the mode last read holds until it does
            // (modes only move forward, and a move is seen at the next successful read).
            Err(e) => match due {
                Some(last) => {
                    warn!(error = %e, "the cluster's mode could not be read again; the last one read holds");
                    return Ok((last, None));
                }
                None => return Err(e),
            },
        };
        let mut s = self.state.lock().expect("entries state");
        s.mode = Some((c.mode.clone(), c.account, Instant::now()));
        let changed = due
            .filter(|old| *old != c.mode)
            .map(|old| (old, c.mode.clone()));
        Ok((c.mode, changed))
    }

    /// The cluster's account (read once).
    pub async fn account(&self) -> Result<String> {
        if let Some((_, a, _)) = &self.state.lock().expect("entries state").mode {
            return Ok(a.clone());
        }
        let c = self.eks.cluster().await?;
        self.state.lock().expect("entries state").mode =
            Some((c.mode, c.account.clone(), Instant::now()));
        Ok(c.account)
    }

    /// What EKS holds: listed every pass, described when new to the operator (all of them at
    /// start and after each resync interval).
    pub async fn observe(&self, every: Duration) -> Result<Vec<Observed>> {
        let listed = self.eks.principals().await?;
        let (fresh, mut known) = {
            let mut s = self.state.lock().expect("entries state");
            let stale = s.read_at.is_none_or(|at| at.elapsed() >= every);
            match s.known.take() {
                Some(k) if !stale => (false, k),
                _ => (true, HashMap::new()),
            }
        };
        let listed_set: std::collections::HashSet<&String> = listed.iter().collect();
        known.retain(|p, _| listed_set.contains(p));
        let unknown: Vec<String> = listed
            .iter()
            .filter(|p| !known.contains_key(*p))
            .cloned()
            .collect();
        let described = self.eks.observe_all(&unknown).await?;
        known.extend(described.into_iter().filter_map(|(p, o)| Some((p, o?))));
        let mut out: Vec<Observed> = known.values().cloned().collect();
        out.sort_by(|a, b| a.entry.principal_arn.cmp(&b.entry.principal_arn));
        let mut s = self.state.lock().expect("entries state");
        s.known = Some(known);
        if fresh {
            s.read_at = Some(Instant::now());
        }
        Ok(out)
    }

    /// The full ARNs IAM gave for roles, by principal key (see [`EntriesConfig::role_arns`]).
    pub fn role_arns(&self) -> HashMap<String, String> {
        let roles = self.roles.lock().expect("roles");
        roles
            .iter()
            .filter_map(|(k, full)| Some((k.clone(), full.clone()?)))
            .collect()
    }

    /// Asks IAM, once per role, for the roles `work` creates entries for; whether it asked (the
    /// plan is then made again with what IAM said).
    pub async fn learn_roles(&self, work: &[Work]) -> bool {
        let unknown: Vec<(String, String)> = {
            let roles = self.roles.lock().expect("roles");
            work.iter()
                .filter(|w| w.principal.contains(":role/"))
                .filter(|w| w.calls.iter().any(|c| matches!(c, Call::Create(..))))
                .filter_map(|w| {
                    let key = arn::principal_key(&w.principal).ok()?;
                    (!roles.contains_key(&key)).then(|| (key, w.principal.clone()))
                })
                .collect()
        };
        if unknown.is_empty() {
            return false;
        }
        let found: Vec<(String, Option<String>)> = futures::stream::iter(unknown)
            .map(|(key, written)| async move {
                let account = |a: &str| arn::Arn::parse(a).map(|p| p.account.to_string()).ok();
                let full = match lookup_role(&self.iam, &written).await {
                    // A role of another account is not the one IAM answers for.
                    RoleLookup::Found(a) => Some(a).filter(|a| account(a) == account(&written)),
                    RoleLookup::Missing => None,
                    RoleLookup::Unknown(why) => {
                        warn!(role = %written, %why, "the entry is made under the ARN as written");
                        None
                    }
                };
                (key, full)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        self.roles.lock().expect("roles").extend(found);
        true
    }

    /// Deletions within the removal window.
    pub fn recently_removed(&self) -> usize {
        let mut s = self.state.lock().expect("entries state");
        let window = self.removal_window;
        s.removed.retain(|(at, _)| at.elapsed() < window);
        s.removed.iter().map(|(_, n)| n).sum()
    }

    /// Makes the plan's calls, `CONCURRENCY` principals at a time (each principal's in order),
    /// while `leading` says this instance may write. Gives each failed work's failure.
    pub async fn execute(
        &self,
        work: Vec<Work>,
        leading: impl Fn() -> bool + Sync,
    ) -> Vec<(Work, Failure)> {
        let leading = &leading;
        let results: Vec<Option<(Work, Failure)>> = futures::stream::iter(work)
            .map(|w| async move {
                for call in &w.calls {
                    if !leading() {
                        return Some((
                            w.clone(),
                            Failure {
                                transient: true,
                                message: "this instance stopped leading".into(),
                            },
                        ));
                    }
                    if let Err(f) = self.eks.apply(&w.principal, call).await {
                        self.forget(&w.principal);
                        return Some((w.clone(), f));
                    }
                    self.done(&w.principal, call);
                }
                None
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        results.into_iter().flatten().collect()
    }

    /// Counts deletions toward the breaker's window.
    pub fn removed(&self, n: usize) {
        if n > 0 {
            let mut s = self.state.lock().expect("entries state");
            s.removed.push_back((Instant::now(), n));
        }
    }

    /// A call that failed leaves the entry unknown: the next pass describes it again.
    fn forget(&self, principal: &str) {
        if let Some(k) = &mut self.state.lock().expect("entries state").known {
            k.remove(principal);
        }
    }

    /// What a call that succeeded made of the entry, so the next pass need not ask.
    fn done(&self, principal: &str, call: &Call) {
        let mut s = self.state.lock().expect("entries state");
        let Some(known) = &mut s.known else { return };
        match call {
            Call::Create(e, tags) => {
                known.insert(
                    principal.to_string(),
                    Observed {
                        entry: AccessEntry {
                            principal_arn: principal.to_string(),
                            ..e.clone()
                        },
                        tags: tags.clone(),
                    },
                );
            }
            Call::Delete => {
                known.remove(principal);
            }
            other => {
                let Some(o) = known.get_mut(principal) else {
                    return;
                };
                match other {
                    Call::Update { username, groups } => {
                        if username.is_some() {
                            o.entry.username = username.clone();
                        }
                        o.entry.kubernetes_groups = groups.clone();
                    }
                    Call::Tag(tags) => o.tags.extend(tags.clone()),
                    Call::Associate(a) => {
                        o.entry
                            .access_policies
                            .retain(|h| h.policy_arn != a.policy_arn);
                        o.entry.access_policies.push(a.clone());
                    }
                    Call::Disassociate(p) => o.entry.access_policies.retain(|h| h.policy_arn != *p),
                    Call::Create(..) | Call::Delete => {}
                }
            }
        }
    }
}

/// A grant's status from its aws-auth verdict and its access-entry verdict, for the backends
/// the pass writes: the reason of the first that does not hold it, and where it is in effect.
pub fn merge(
    aws: Option<(Reason, &str)>,
    entry: Option<&EntryVerdict>,
) -> (Reason, String, Backends) {
    match (aws, entry) {
        (Some((r, m)), None) => (
            r,
            m.to_string(),
            Backends {
                aws_auth: r.is_ready(),
                access_entries: false,
            },
        ),
        (None, Some(e)) => (
            e.reason,
            e.message.clone(),
            Backends {
                aws_auth: false,
                access_entries: e.reason.is_ready(),
            },
        ),
        (None, None) => (
            Reason::Pending,
            "not planned yet".into(),
            Backends::default(),
        ),
        (Some((r, m)), Some(e)) => {
            let backends = Backends {
                aws_auth: r.is_ready(),
                access_entries: e.reason.is_ready(),
            };
            if r.is_ready() && e.unsupported {
                // Still admitted through aws-auth while the mode keeps it.
                return (
                    r,
                    format!(
                        "aws-auth: {m}; not an access entry: {} (aws-auth alone admits it until the cluster switches to API)",
                        e.message
                    ),
                    backends,
                );
            }
            if r.is_ready() && !e.reason.is_ready() {
                (e.reason, format!("{}; aws-auth: {m}", e.message), backends)
            } else {
                (r, format!("aws-auth: {m}; {}", e.message), backends)
            }
        }
    }
}

/// The record of the operator's access entries: the versions before each change, and the
/// breaker's held deletions and their confirmation (`kubectl annotate`), in one ConfigMap.
pub struct Record<'a> {
    pub configmaps: &'a kube::Api<ConfigMap>,
    pub name: String,
}

impl Record<'_> {
    pub async fn read(&self) -> Result<Option<ConfigMap>> {
        Ok(self.configmaps.get_opt(&self.name).await?)
    }

    /// Keeps `owned` (the operator's entries before a change) as a new version, dropping the
    /// oldest beyond [`RECORD_VERSIONS`] or [`RECORD_BYTES`]; `current` is the record as the pass
    /// read or made it.
    pub async fn keep(&self, current: Option<&ConfigMap>, owned: &[AccessEntry]) -> Result<()> {
        let key = format!(
            "entries-{}",
            k8s_openapi::jiff::Timestamp::now().as_millisecond()
        );
        let json = serde_json::to_string(owned).expect("entries serialize");
        if json.len() > RECORD_BYTES {
            return Err(Error::Waiting(format!(
                "the record of this operator's {} access entries takes {} bytes, more than the {RECORD_BYTES} one version may take in {}: no access entry is changed without it",
                owned.len(),
                json.len(),
                self.name
            )));
        }
        let Some(cm) = current else {
            self.create(BTreeMap::from([(key, json)]), BTreeMap::new())
                .await?;
            return Ok(());
        };
        let old: Vec<(&String, usize)> = cm
            .data
            .iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("entries-"))
            .map(|(k, v)| (k, v.len()))
            .collect();
        // Oldest first (the keys are milliseconds of equal width).
        let (mut count, mut bytes) = (
            old.len() + 1,
            old.iter().map(|(_, n)| n).sum::<usize>() + json.len(),
        );
        let mut data: BTreeMap<String, Option<String>> = BTreeMap::new();
        for (k, n) in &old {
            if count <= RECORD_VERSIONS && bytes <= RECORD_BYTES {
                break;
            }
            data.insert(k.to_string(), None);
            count -= 1;
            bytes -= n;
        }
        data.insert(key, Some(json));
        self.patch(serde_json::json!({ "data": data })).await
    }

    /// Notes held deletions on the record; gives the record when this made it.
    pub async fn hold(&self, current: Option<&ConfigMap>, held: &str) -> Result<Option<ConfigMap>> {
        if current.is_none() {
            let note = BTreeMap::from([(HELD_ANNOTATION.to_string(), held.to_string())]);
            return Ok(Some(self.create(BTreeMap::new(), note).await?));
        }
        self.patch(serde_json::json!({ "metadata": { "annotations": { HELD_ANNOTATION: held } } }))
            .await?;
        Ok(None)
    }

    async fn create(
        &self,
        data: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    ) -> Result<ConfigMap> {
        let cm = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(self.name.clone()),
                annotations: Some(annotations),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        Ok(self.configmaps.create(&PostParams::default(), &cm).await?)
    }

    /// Clears the held note and its confirmation once nothing is held.
    pub async fn clear(&self) -> Result<()> {
        self.patch(serde_json::json!({ "metadata": { "annotations": { HELD_ANNOTATION: null, CONFIRM_ANNOTATION: null } } })).await
    }

    async fn patch(&self, body: serde_json::Value) -> Result<()> {
        self.configmaps
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
        Ok(())
    }
}

/// The plan's verdicts with the calls' failures: EKS's refusal, or a wait for EKS.
pub fn with_failures(plan: &mut EntriesPlan, failed: &[(Work, Failure)]) {
    for (w, f) in failed {
        let Some(g) = &w.grant else {
            warn!(principal = %w.principal, error = %f.message, "deleting an access entry failed");
            continue;
        };
        if let Some(v) = plan.verdicts.get_mut(g) {
            v.reason = if f.transient {
                Reason::Pending
            } else {
                Reason::AccessEntryRefused
            };
            v.message = if f.transient {
                format!("waiting for EKS: {}", f.message)
            } else {
                format!("EKS refused the access entry: {}", f.message)
            };
        }
    }
}

/// The record's name: aws-auth's, with `-access-entries`.
pub fn record_name(aws_auth: &str) -> String {
    format!("{aws_auth}-access-entries")
}

fn reference(namespace: &str, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

/// A change of the cluster's authentication mode: a log line and an Event on aws-auth.
pub(super) async fn report_mode(ctx: &Context, from: &str, to: &str) {
    let note = format!(
        "the cluster's authentication mode changed from {from} to {to}: grants now go to {}",
        match to {
            "API" => "access entries only (aws-auth is left as it is; EKS no longer reads it)",
            "API_AND_CONFIG_MAP" => "access entries and aws-auth",
            _ => "aws-auth",
        }
    );
    info!(from, to, "{note}");
    let about = reference(&ctx.namespace, &ctx.name);
    note_event(
        ctx,
        &about,
        EventType::Normal,
        "AuthenticationModeChanged",
        "Reconcile",
        &note,
    )
    .await;
}

/// One pass over access entries: read, plan, hold a mass deletion, keep the record, call EKS.
/// With the plan comes the failure EKS may get over, if a call met one: the pass is then
/// retried with back-off once the statuses are out.
pub(super) async fn pass(
    ctx: &Context,
    grants: &[Arc<Cached>],
) -> Result<(EntriesPlan, Option<Error>), SyncError> {
    let side = ctx
        .backend
        .eks
        .as_ref()
        .expect("access entries are written with an EKS client");
    let account = side.account().await.map_err(SyncError::Transient)?;
    let observed = side
        .observe(ctx.resync_interval)
        .await
        .map_err(SyncError::Transient)?;
    let recently_removed = side.recently_removed();
    let plan_with = |confirmed: Option<&str>, role_arns: &HashMap<String, String>| {
        entries::plan(
            grants,
            &observed,
            &EntriesConfig {
                plan: &ctx.config,
                operator: &side.operator,
                cluster_account: Some(&account),
                recently_removed,
                confirmed,
                role_arns,
            },
        )
    };
    // New role entries are made under the role's full ARN, which IAM is asked for once.
    let mut role_arns = side.role_arns();
    let mut plan = plan_with(None, &role_arns);
    if side.learn_roles(&plan.work).await {
        role_arns = side.role_arns();
        plan = plan_with(None, &role_arns);
    }
    let record = Record {
        configmaps: &ctx.configmaps,
        name: record_name(&ctx.name),
    };
    // Read once; the pass keeps it up to date with what it writes.
    let mut current = if plan.work.is_empty() && plan.held.is_none() {
        None
    } else {
        record.read().await.map_err(SyncError::Transient)?
    };
    let annotation = |key: &str| {
        current
            .as_ref()
            .and_then(|c| c.metadata.annotations.as_ref())
            .and_then(|a| a.get(key))
            .cloned()
    };
    let (confirmation, noted) = (annotation(CONFIRM_ANNOTATION), annotation(HELD_ANNOTATION));
    if let Some(held) = plan.held.clone() {
        if confirmation.as_deref() == Some(held.token.as_str()) {
            plan = plan_with(Some(&held.token), &role_arns);
        } else {
            let note = format!(
                "holding the deletion of {} of this operator's {} access entries ({}): confirm with `kubectl annotate configmap -n {} {} {CONFIRM_ANNOTATION}={}`, or restore the grants",
                held.principals.len(),
                held.owned,
                held.principals
                    .iter()
                    .take(10)
                    .map(|p| shown(p).into_owned())
                    .collect::<Vec<_>>()
                    .join(", "),
                ctx.namespace,
                record.name,
                held.token
            );
            if noted.as_deref() != Some(note.as_str()) {
                super::leading(ctx)?;
                warn!(count = held.principals.len(), token = %held.token, "access-entry deletions held");
                if let Some(made) = record
                    .hold(current.as_ref(), &note)
                    .await
                    .map_err(SyncError::Transient)?
                {
                    current = Some(made);
                }
                let about = reference(&ctx.namespace, &record.name);
                note_event(
                    ctx,
                    &about,
                    EventType::Warning,
                    "RemovalHeld",
                    "Reconcile",
                    &note,
                )
                .await;
            }
        }
    }
    if plan.work.is_empty() {
        return Ok((plan, None));
    }
    super::leading(ctx)?;
    // What the change replaces is kept first.
    record
        .keep(current.as_ref(), &plan.owned_before)
        .await
        .map_err(SyncError::Transient)?;
    let work = std::mem::take(&mut plan.work);
    let deletions = work.iter().filter(|w| w.calls == [Call::Delete]).count();
    let calls: usize = work.iter().map(|w| w.calls.len()).sum();
    let failed = side.execute(work, || ctx.gate.is_open()).await;
    let failed_deletions = failed
        .iter()
        .filter(|(w, _)| w.calls == [Call::Delete])
        .count();
    side.removed(deletions - failed_deletions);
    if plan.confirmed || (plan.held.is_none() && noted.is_some()) {
        record.clear().await.map_err(SyncError::Transient)?;
    }
    with_failures(&mut plan, &failed);
    info!(
        calls,
        deletions,
        failed = failed.len(),
        "access entries synced"
    );
    // A failure EKS may get over is retried with back-off; a refusal waits for a change.
    if !ctx.gate.is_open() {
        return Err(SyncError::NotLeader);
    }
    let retry = failed
        .iter()
        .find(|(_, f)| f.transient)
        .map(|(_, f)| Error::Aws {
            operation: "eks",
            message: f.message.clone(),
        });
    Ok((plan, retry))
}

/// Every grant's access-entry verdict when the pass itself failed: refused with EKS's answer
/// when EKS refused it (a mode without the API, a cluster that is not there, no permission),
/// else waiting.
pub fn pass_failed(e: &Error) -> EntryVerdict {
    let refused = matches!(e, Error::Aws { message, .. } if [
        "InvalidRequestException",
        "InvalidParameterException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
    ]
    .iter()
    .any(|code| message.contains(code)));
    let (reason, message) = match e {
        _ if refused => (Reason::AccessEntryRefused, format!("EKS refused: {e}")),
        Error::Aws { .. } => (Reason::Pending, format!("waiting for EKS: {e}")),
        e => (
            Reason::Pending,
            format!("waiting to write access entries: {e}"),
        ),
    };
    EntryVerdict {
        reason,
        message,
        section: None,
        canonical_arn: None,
        unsupported: false,
    }
}
