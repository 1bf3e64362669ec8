//! The operator: watches grants and aws-auth, debounces, and runs sync passes
//! (read -> plan -> write -> statuses) until stopped.
mod break_glass;
pub mod cache;
pub mod debounce;
pub mod entries;
pub mod events;
pub mod protobuf;
mod recreate;
pub mod status;
pub mod status_queue;
mod watches;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use events::Recorder;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Client, Resource};
use tracing::{debug, info, instrument, warn};

use crate::api::{IamAccessGrant, Reason};
use crate::engine::authmap::shown;
use crate::engine::entries::{EntriesPlan, EntryVerdict};
use crate::engine::history::{self, HistoryArgs};
use crate::engine::plan::GrantRef;
use crate::engine::plan::{
    CONFIRMED_BY_ANNOTATION, HeldRemoval, Memo, Plan, PlanConfig, RailsArgs, RemovalWindow,
    Verdict, plan_in,
};
use crate::operator::duration::parse_duration;
use crate::operator::http;
use crate::operator::leader::{Election, Gate, LeaderArgs};
use crate::operator::telemetry::{LogFormat, Metrics, SYNC_CONFLICT, SYNC_ERROR, SYNC_OK};
use crate::operator::webhook::{self, WebhookArgs};
use crate::{Error, Result};
use cache::Cached;
use debounce::{Changes, Debounce};

pub const CRD_NAME: &str = "iamaccessgrants.aws-auth.dev";
const MANAGER: &str = "aws-auth-operator";
/// Which operator process wrote aws-auth last (its pod name, or host and process id).
pub const WRITER_ANNOTATION: &str = "aws-auth.dev/written-by";

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// ARN of the cluster creator (repeatable, or comma-separated in the environment); grants for it
    /// are refused. Any form is recognised: role, path-carrying role, assumed-role session ARN.
    #[arg(
        long = "cluster-creator-arn",
        env = "AWS_AUTH_CLUSTER_CREATOR_ARN",
        value_delimiter = ','
    )]
    pub cluster_creator_arns: Vec<String>,
    /// Namespace of the ConfigMap to manage.
    #[arg(long, env = "AWS_AUTH_NAMESPACE", default_value = crate::engine::authmap::NAMESPACE)]
    pub aws_auth_namespace: String,
    /// Name of the ConfigMap to manage; point it at a shadow copy to trial the operator first.
    #[arg(long, env = "AWS_AUTH_NAME", default_value = crate::engine::authmap::NAME)]
    pub aws_auth_name: String,
    /// Only reconcile grants matching this label selector (e.g. `team=platform`).
    #[arg(long, env = "AWS_AUTH_GRANT_SELECTOR")]
    pub grant_selector: Option<String>,
    /// Sync once changes have been quiet this long.
    #[arg(long, env = "AWS_AUTH_DEBOUNCE", default_value = "200ms", value_parser = parse_duration)]
    pub debounce: Duration,
    /// Sync at the latest this long after the first unsynced change, even during a burst.
    #[arg(long, env = "AWS_AUTH_DEBOUNCE_MAX", default_value = "2s", value_parser = parse_duration)]
    pub debounce_max: Duration,
    /// Sync once this many changes wait, even during a burst: the statuses of a long burst then
    /// go out while it lasts, not thousands at its end.
    #[arg(long, env = "AWS_AUTH_DEBOUNCE_MAX_CHANGES", default_value_t = 500, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub debounce_max_changes: usize,
    /// Managed entries removed within this long count together toward the removal breaker
    /// (--max-removals, --max-removal-percent), however many passes removed them.
    #[arg(long, env = "AWS_AUTH_REMOVAL_WINDOW", default_value = "10m", value_parser = parse_duration)]
    pub removal_window: Duration,
    /// Sync this often even without changes.
    #[arg(long, env = "AWS_AUTH_RESYNC_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub resync_interval: Duration,
    /// What to do when aws-auth is found deleted while an earlier version of it is known: restore
    /// it (unmanaged entries as they were, plus the grants'), recreate it with the grants' entries
    /// only, or wait for a person. With no earlier version (a fresh install) the grants' entries
    /// are written.
    #[arg(
        long,
        env = "AWS_AUTH_ON_AWS_AUTH_DELETED",
        value_enum,
        default_value = "restore"
    )]
    pub on_aws_auth_deleted: recreate::OnDeleted,
    /// Address of the health and metrics endpoints (/livez, /readyz, /metrics).
    #[arg(long, env = "AWS_AUTH_HEALTH_ADDR", default_value = "0.0.0.0:8080")]
    pub health_addr: std::net::SocketAddr,
    /// Log format.
    #[arg(long, env = "AWS_AUTH_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub rails: RailsArgs,
    /// History of aws-auth kept before every write: ConfigMap name (same namespace), versions
    /// and bytes.
    #[command(flatten)]
    pub history: HistoryArgs,
    #[command(flatten)]
    pub webhook: WebhookArgs,
    #[command(flatten)]
    pub leader: LeaderArgs,
    #[command(flatten)]
    pub backend: entries::BackendArgs,
}

/// Everything a sync pass needs.
struct Context {
    grants: Api<IamAccessGrant>,
    grant_cache: Arc<cache::Cache>,
    configmaps: Api<ConfigMap>,
    crds: Api<CustomResourceDefinition>,
    name: String,
    namespace: String,
    history: HistoryArgs,
    history_state: std::sync::Mutex<Option<HistoryState>>,
    config: PlanConfig,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    /// Open while this instance may write (always, without leader election).
    gate: Gate,
    /// Status patches and events, sent in the background.
    statuses: Arc<status_queue::StatusQueue>,
    /// How long removals count toward the breaker (the window itself is kept on aws-auth).
    removal_window: Duration,
    /// aws-auth's resourceVersion as its (metadata) watch last saw it; none while unknown.
    aws_auth_seen: Arc<std::sync::Mutex<Option<String>>>,
    /// aws-auth as this instance last wrote it (what it sent, with the server's metadata).
    last_written: Arc<std::sync::Mutex<Option<Arc<ConfigMap>>>>,
    /// What the passes' plans reuse from one pass to the next (the webhook's plans keep nothing).
    memo: Memo,
    on_deleted: recreate::OnDeleted,
    /// aws-auth as a pass last read or wrote it: what a deleted aws-auth is restored from.
    last_seen: std::sync::Mutex<Option<Arc<ConfigMap>>>,
    /// Set while `--on-aws-auth-deleted wait` waits (its Event is recorded once).
    waiting_for_aws_auth: AtomicBool,
    /// Set when the history ConfigMap was found deleted, until it is recreated (with an Event).
    history_lost: AtomicBool,
    /// Whether this process has written aws-auth (before that, the writer aws-auth names may be
    /// its own predecessor).
    has_written: AtomicBool,
    /// When another instance's write was last reported (at most one Event per interval).
    other_writer_reported: std::sync::Mutex<Option<std::time::Instant>>,
    /// This process, as its writes name it.
    instance: String,
    /// Whether leader election is on (a change of writer is then a change of leader).
    elected: bool,
    /// aws-auth, access entries, or both (see [`entries`]).
    backend: entries::Backend,
    resync_interval: Duration,
}

impl Context {
    fn new(
        args: &RunArgs,
        client: Client,
        config: PlanConfig,
        metrics: Arc<Metrics>,
        gate: Gate,
        (elected, backend): (bool, entries::Backend),
    ) -> Context {
        Context {
            grants: Api::all(client.clone()),
            grant_cache: Default::default(),
            configmaps: Api::namespaced(client.clone(), &args.aws_auth_namespace),
            crds: Api::all(client.clone()),
            name: args.aws_auth_name.clone(),
            namespace: args.aws_auth_namespace.clone(),
            history: args.history.clone(),
            history_state: Default::default(),
            config,
            metrics,
            statuses: Default::default(),
            removal_window: args.removal_window,
            aws_auth_seen: Default::default(),
            last_written: Default::default(),
            memo: Memo::default(),
            on_deleted: args.on_aws_auth_deleted,
            last_seen: Default::default(),
            waiting_for_aws_auth: AtomicBool::new(false),
            history_lost: AtomicBool::new(false),
            has_written: AtomicBool::new(false),
            other_writer_reported: Default::default(),
            instance: std::env::var("POD_NAME").unwrap_or_else(|_| {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                format!("{}-{}", host.trim(), std::process::id())
            }),
            elected,
            backend,
            resync_interval: args.resync_interval,
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: MANAGER.into(),
                    instance: std::env::var("POD_NAME").ok(),
                },
            )
            .gated(gate.clone()),
            gate,
        }
    }

    /// aws-auth as this instance last wrote it, if its watch has seen nothing newer: the same
    /// resourceVersion is the same object, so the pass need not read 1 MiB again. Should a write
    /// of someone else's not have reached the watch yet, the write based on this copy carries
    /// its resourceVersion as precondition and is refused; the pass after it reads afresh.
    fn still_written(&self) -> Option<Arc<ConfigMap>> {
        let seen = self
            .aws_auth_seen
            .lock()
            .expect("aws-auth seen lock")
            .clone()?;
        self.last_written
            .lock()
            .expect("last written lock")
            .clone()
            .filter(|w| w.metadata.resource_version.as_deref() == Some(seen.as_str()))
    }

    fn forget_written(&self) {
        *self.last_written.lock().expect("last written lock") = None;
    }

    /// The removal window recorded on aws-auth, as of now.
    fn window(&self, current: Option<&ConfigMap>) -> (RemovalWindow, Timestamp) {
        let now = Timestamp::now();
        let span = SignedDuration::try_from(self.removal_window).unwrap_or(SignedDuration::MAX);
        (RemovalWindow::from_configmap(current, now, span), now)
    }
}

/// Runs the operator until SIGTERM/SIGINT: the setup steps in order (flags, health server,
/// client and CRD, election, webhook, watches), then the passes while this instance leads.
pub async fn run(args: RunArgs) -> Result<()> {
    let config = PlanConfig::from_args(&args.cluster_creator_arns, &args.rails)?;
    let metrics = Arc::new(Metrics::default());
    let mut tasks = Tasks::default();
    let health = http::bind(args.health_addr).await?;
    tasks.add(tokio::spawn(http::serve(health, metrics.clone())));
    let client = crate::client().await?;
    check_crd(&client).await?;
    let election = elect(&client, &args, &metrics).await?;
    let gate = election
        .as_ref()
        .map_or_else(Gate::always, |e| e.gate.clone());
    if let Some(addr) = args.webhook.webhook_addr {
        for task in start_webhook(&client, &args, &config, addr, metrics.clone()).await? {
            tasks.add(task);
        }
    }
    let backend =
        entries::Backend::new(&args.backend, args.resync_interval, args.removal_window).await?;
    let ctx = Context::new(
        &args,
        client.clone(),
        config,
        metrics,
        gate,
        (election.is_some(), backend),
    );
    let changes = Arc::new(Changes::default());
    let (glass_tx, glass_rx) = tokio::sync::mpsc::channel(break_glass::QUEUE);
    tasks.add(watches::spawn(
        &ctx,
        &args,
        client,
        changes.clone(),
        glass_tx,
    ));
    // Never plan from an empty cache: that would remove every managed entry.
    ctx.grant_cache.listed().await;
    info!(
        namespace = %args.aws_auth_namespace,
        name = %args.aws_auth_name,
        grants = ctx.grant_cache.len(),
        "caches ready"
    );
    // A follower is ready with warm caches; a single instance once its first pass succeeded.
    if ctx.elected {
        ctx.metrics.ready.store(true, Ordering::Relaxed);
    }
    tasks.add(resync(changes.clone(), args.resync_interval));
    tasks.add(break_glass::record(ctx.recorder.clone(), glass_rx));
    tasks.add(tokio::spawn(ctx.statuses.clone().run(
        ctx.grants.clone(),
        ctx.recorder.clone(),
        ctx.gate.clone(),
        ctx.metrics.clone(),
    )));
    let debounce = Debounce {
        quiet: args.debounce,
        max_wait: args.debounce_max,
        max_changes: args.debounce_max_changes,
    };
    let result = tokio::select! {
        r = lead(&ctx, &debounce, &changes) => r,
        _ = shutdown_signal() => { info!("shutting down"); Ok(()) }
    };
    if let Some(e) = election {
        e.leave().await;
    }
    result
}

/// The background tasks of a run, stopped when it ends (also on an error mid-setup).
#[derive(Default)]
struct Tasks(Vec<tokio::task::AbortHandle>);

impl Tasks {
    fn add<T>(&mut self, task: tokio::task::JoinHandle<T>) {
        self.0.push(task.abort_handle());
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::AbortHandle::abort);
    }
}

/// Joins the leader election when it is on; without it this instance always leads.
async fn elect(
    client: &Client,
    args: &RunArgs,
    metrics: &Arc<Metrics>,
) -> Result<Option<Election>> {
    if !args.leader.leader_elect {
        metrics.leader.set(1);
        return Ok(None);
    }
    let election = Election::start(
        client.clone(),
        &args.leader,
        &args.aws_auth_namespace,
        metrics.clone(),
    )
    .await?;
    Ok(Some(election))
}

/// A pass every `every` even when nothing was seen to change (a missed event, a drifted copy).
fn resync(changes: Arc<Changes>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            changes.note();
        }
    })
}

/// Reconciles whenever this instance holds the lease, and stops the moment it loses it.
async fn lead(ctx: &Context, debounce: &Debounce, changes: &Changes) -> Result<()> {
    let mut gate = ctx.gate.clone();
    loop {
        gate.opened().await;
        // What a new leader wrote before, others may have replaced since: it reads afresh.
        ctx.forget_written();
        // A new leader syncs at once: its predecessor may have stopped mid-burst.
        changes.note();
        tokio::select! {
            r = reconcile_forever(ctx, debounce, changes) => return r,
            // Dropping the pass cancels its requests at their next await.
            _ = gate.closed() => info!("not leader; reconciling stopped"),
        }
    }
}

/// Serves the admission webhook and, with `--webhook-url`/`--webhook-service`, registers it;
/// keeps its certificate fresh. The server's task and the certificates'.
async fn start_webhook(
    client: &Client,
    args: &RunArgs,
    config: &PlanConfig,
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<[tokio::task::JoinHandle<()>; 2]> {
    let w = &args.webhook;
    let tls = match &w.webhook_cert_secret {
        Some(secret) => webhook::shared_tls(client, w, secret).await?,
        None => webhook::tls(w)?,
    };
    let listener = webhook::bind(addr).await?;
    let target = webhook::review::AwsAuthTarget {
        namespace: args.aws_auth_namespace.clone(),
        name: args.aws_auth_name.clone(),
        history_name: args.history.name(&args.aws_auth_name),
        operator_username: webhook::operator_username(client, w.operator_username.as_deref())
            .await?,
    };
    let hook = Arc::new(webhook::Webhook {
        target: target.clone(),
        config: config.clone(),
        granters: w.privileged_granters.clone(),
        metrics,
    });
    let task = tokio::spawn(webhook::serve(listener, tls.server.clone(), hook));
    info!(%addr, operator = %target.operator_username, "admission webhook serving");
    let registers = w.webhook_url.is_some() || w.webhook_service.is_some();
    if registers {
        let ca = tls.ca_pem().ok_or_else(|| Error::Usage {
            flag: "--webhook-cert-dir",
            message: "registering the webhook needs the CA: put ca.crt beside tls.crt and tls.key"
                .into(),
        })?;
        webhook::register(client, w, ca, &target, args.grant_selector.as_deref()).await?;
    }
    let registration = registers.then(|| webhook::certs::Registration {
        client: client.clone(),
        target,
        grant_selector: args.grant_selector.clone(),
    });
    let fresh = tokio::spawn(webhook::certs::keep_fresh(
        client.clone(),
        w.clone(),
        tls,
        registration,
    ));
    Ok([task, fresh])
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

async fn check_crd(client: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crd_ready(crds.get_opt(CRD_NAME).await?)
}

/// The CRD must exist and be Established before the grant watch can work.
fn crd_ready(crd: Option<CustomResourceDefinition>) -> Result<()> {
    let missing = |why: &str| Error::Usage {
        flag: "CRD",
        message: format!(
            "CustomResourceDefinition {CRD_NAME} {why}: install it with `kubectl apply -f crds/` (or `aws-auth-operator crd | kubectl apply -f -`, or the Helm chart) and start again"
        ),
    };
    let crd = crd.ok_or_else(|| missing("is not installed"))?;
    let established = crd
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    if !established {
        return Err(missing("is not established yet"));
    }
    Ok(())
}

async fn reconcile_forever(ctx: &Context, debounce: &Debounce, changes: &Changes) -> Result<()> {
    let mut backoff = Duration::from_millis(200);
    // Long enough ago that the first change is synced on its leading edge.
    let now = tokio::time::Instant::now();
    let mut idle_since = now.checked_sub(debounce.quiet).unwrap_or(now);
    loop {
        debounce.settle(changes, idle_since).await;
        loop {
            let started = std::time::Instant::now();
            let r = sync(ctx).await;
            let took = started.elapsed();
            match r {
                Ok(()) => {
                    ctx.metrics.synced(SYNC_OK, took);
                    ctx.metrics.ready.store(true, Ordering::Relaxed);
                    backoff = Duration::from_millis(200);
                    break;
                }
                Err(SyncError::NotLeader) => break,
                Err(SyncError::Conflict) => {
                    ctx.metrics.synced(SYNC_CONFLICT, took);
                    ctx.metrics.conflicts.inc();
                    debug!("aws-auth changed under us; re-reading and re-planning");
                    continue;
                }
                Err(SyncError::Transient(e)) => {
                    ctx.metrics.synced(SYNC_ERROR, took);
                    ctx.metrics.failed(e.metric_label());
                    // The API server did not answer at all: not ready until a pass succeeds.
                    if matches!(&e, Error::Kube(k) | Error::History(k) if !matches!(k, kube::Error::Api(_)))
                    {
                        ctx.metrics.ready.store(false, Ordering::Relaxed);
                    }
                    warn!(error = %e, category = e.metric_label(), retry_in = ?backoff, "sync failed");
                    changes.wait_for(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        idle_since = tokio::time::Instant::now();
    }
}

#[derive(Debug)]
enum SyncError {
    /// Someone else wrote aws-auth between our read and our write (409), or deleted it.
    Conflict,
    /// The gate closed during the pass: this instance is no longer the leader.
    NotLeader,
    Transient(Error),
}

/// Every write checks the gate right before it is sent.
fn leading(ctx: &Context) -> Result<(), SyncError> {
    if ctx.gate.is_open() {
        Ok(())
    } else {
        Err(SyncError::NotLeader)
    }
}

impl From<kube::Error> for SyncError {
    fn from(e: kube::Error) -> Self {
        SyncError::Transient(Error::Kube(e))
    }
}

/// One pass: read grants (cache) and aws-auth (fresh), plan, write if changed, patch statuses.
#[instrument(skip_all)]
async fn sync(ctx: &Context) -> Result<(), SyncError> {
    let started = std::time::Instant::now();
    // Shared with the cache, not copied: a sync over thousands of grants allocates no copies.
    let grants: Vec<Arc<Cached>> = ctx.grant_cache.state();
    let (backends, changed) = ctx.backend.current().await.map_err(SyncError::Transient)?;
    if let Some((from, to)) = changed {
        entries::report_mode(ctx, &from, &to).await;
    }
    // Access entries first: EKS reads them before aws-auth.
    let entries = match backends.access_entries {
        true => Some(entries::pass(ctx, &grants).await),
        false => None,
    };
    // A pass that failed leaves every grant waiting; a call that failed, its grant (and the
    // pass is retried either way).
    let (entries, entries_error, retry) = match entries {
        Some(Ok((p, retry))) => (Some(p), None, retry),
        Some(Err(SyncError::Transient(e))) => (None, Some(e), None),
        Some(Err(other)) => return Err(other),
        None => (None, None, None),
    };
    let entries_held = entries
        .as_ref()
        .and_then(|e| e.held.as_ref())
        .map_or(0, |h| h.principals.len());
    if !backends.aws_auth {
        if entries.is_some() {
            ctx.metrics.removals_held.set(entries_held as i64);
        }
        let outcome = entries
            .as_ref()
            .ok_or_else(|| entries_error.as_ref().expect("a pass's outcome"));
        update_statuses(ctx, &grants, None, None, Some(outcome));
        return match entries_error.or(retry) {
            Some(e) => Err(SyncError::Transient(e)),
            None => Ok(()),
        };
    }
    // Status patches wait while aws-auth is read and written.
    let exclusive = ctx.statuses.aws_auth_first.write().await;
    let mut config = ctx.config.clone();
    let current = match ctx.still_written() {
        Some(w) => Some(w),
        None => {
            let read = ctx.configmaps.get_opt(&ctx.name).await?.map(Arc::new);
            if let Some(c) = &read {
                report_other_writer(ctx, c).await;
            }
            read
        }
    };
    // aws-auth found deleted: planned over its last known version, or over nothing.
    let (current, missing) = match current {
        Some(c) => {
            *ctx.last_seen.lock().expect("last seen lock") = Some(c.clone());
            ctx.waiting_for_aws_auth.store(false, Ordering::Relaxed);
            (Some(c), None)
        }
        None => {
            let seen = ctx.last_seen.lock().expect("last seen lock").clone();
            let known = recreate::last_known(
                &ctx.configmaps,
                &ctx.namespace,
                &ctx.name,
                &ctx.history.name(&ctx.name),
                seen.as_deref(),
            )
            .await?;
            let missing = recreate::Missing::decide(known, ctx.on_deleted);
            let base = match &missing {
                recreate::Missing::Restore(k) => Some(Arc::new(k.cm.clone())),
                _ => None,
            };
            (base, Some(missing))
        }
    };
    let waiting = matches!(missing, Some(recreate::Missing::Wait(_)));
    // A restored version is written even where the plan changes nothing in it.
    let restoring = matches!(missing, Some(recreate::Missing::Restore(_)));
    let (window, now) = ctx.window(current.as_deref());
    config.recently_removed = window.recent();
    config.peak_managed = window.peak;
    let t_read = started.elapsed();
    let mut p = plan_in(&ctx.memo, &grants, current.as_deref(), &config)
        .map_err(|e| SyncError::Transient(e.into()))?;
    // Whether the grant list can be trusted matters only to a plan that removes managed entries,
    // so only such a plan asks the CRD. Asked after the grants were taken: deleting the CRD
    // marks it first and deletes the grants after, so a list emptied by that is always seen
    // together with the mark.
    if p.removes_managed() {
        let crd = ctx.crds.get_metadata_opt(CRD_NAME).await?;
        config.grants_unavailable = grants_unavailable(crd.map(|c| c.metadata));
        if config.grants_unavailable.is_some() {
            p = plan_in(&ctx.memo, &grants, current.as_deref(), &config)
                .map_err(|e| SyncError::Transient(e.into()))?;
        }
    }
    // The version about to be replaced goes into the history first: a write that could not be
    // undone is not made, except a revocation (additions and changes wait, removals proceed).
    let mut history_unavailable = None;
    if p.changed
        && !waiting
        // A restored version is in the history or was read by this process: nothing to keep.
        && let Some(cur) = current.as_deref().filter(|c| c.metadata.resource_version.is_some())
        && let Err(e) = keep_history(ctx, cur).await
    {
        let e = match e {
            SyncError::Transient(e) => e,
            other => return Err(other),
        };
        let why = format!(
            "the history ConfigMap {}/{} cannot be written ({e})",
            ctx.namespace,
            ctx.history.name(&ctx.name)
        );
        warn!(error = %e, "history not kept: removals proceed, additions and changes wait");
        config.history_unavailable = Some(why);
        p = plan_in(&ctx.memo, &grants, current.as_deref(), &config)
            .map_err(|e| SyncError::Transient(e.into()))?;
        history_unavailable = Some(e);
    }
    let t_plan = started.elapsed();
    if p.changed || restoring {
        abort_point("before-write");
    }
    let (written, write_error) = if waiting {
        (
            None,
            Some(Error::Waiting(format!(
                "{}/{} was deleted, and --on-aws-auth-deleted is wait: nothing is written until a person creates it again (aws-auth-operator restore N, or kubectl apply)",
                ctx.namespace, ctx.name
            ))),
        )
    } else if p.changed || restoring {
        // Until this write is known to have succeeded, nothing of it is taken for aws-auth.
        ctx.forget_written();
        ctx.memo.forget_plan();
        let window = window.after_write(
            now,
            p.removed,
            p.confirmed.is_some(),
            p.managed_before,
            p.ownership.len(),
        );
        match write(ctx, &mut p, current.as_deref(), &window).await? {
            Ok(w) => {
                let w = Arc::new(w);
                *ctx.last_written.lock().expect("last written lock") = Some(w.clone());
                *ctx.last_seen.lock().expect("last seen lock") = Some(w.clone());
                ctx.has_written.store(true, Ordering::Relaxed);
                abort_point("after-write");
                (Some(w), None)
            }
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let t_write = started.elapsed();
    drop(exclusive);
    // aws-auth's held removals and the access entries' held deletions together.
    ctx.metrics
        .removals_held
        .set((p.held.as_ref().map_or(0, |h| h.count) + entries_held) as i64);
    if write_error.is_none() {
        report_rails(ctx, &p, current.as_deref()).await;
    }
    if (p.changed || restoring) && write_error.is_none() {
        ctx.metrics.writes.inc();
    }
    let mut by_reason = std::collections::BTreeMap::<&'static str, i64>::new();
    for v in &p.verdicts {
        *by_reason.entry(v.reason.as_str()).or_default() += 1;
    }
    ctx.metrics.set_grants(by_reason);
    if let Some(e) = &write_error {
        warn!(error = %e, "writing aws-auth failed");
        if let Some(cm) = &current {
            let note = format!("writing {}/{} failed: {e}", ctx.namespace, ctx.name);
            let about = cm.object_ref(&());
            note_event(
                ctx,
                &about,
                EventType::Warning,
                "WriteFailed",
                "Write",
                &note,
            )
            .await;
        }
    }
    let outcome = match (&entries, &entries_error) {
        (Some(plan), _) => Some(Ok(plan)),
        (None, Some(e)) => Some(Err(e)),
        (None, None) => None,
    };
    update_statuses(ctx, &grants, Some(&p), write_error.as_ref(), outcome);

    // What was read is not needed any more: the history of the write below is the pass's peak.
    drop(current);
    // The next pass plans over what was just written: read it now, not in the next change's way.
    if let Some(w) = &written {
        ctx.memo.read_ahead(w);
    }
    // The version just written goes into the history now, after aws-auth and the statuses: the
    // next write finds its predecessor kept already and does not wait for the history. If this
    // fails, that write keeps it itself.
    if let Some(w) = &written {
        let mut kept = keep_history(ctx, w).await;
        // Deleted by someone: created again at once, with the version just written.
        if matches!(kept, Err(SyncError::Conflict)) && ctx.history_lost.load(Ordering::Relaxed) {
            kept = keep_history(ctx, w).await;
        }
        if let Err(e) = kept {
            debug!(error = ?e, "history not updated after the write; the next write keeps it first");
        }
    }
    if let Some(w) = &written
        && let Some(m) = &missing
    {
        report_recreated(ctx, w, m).await;
    }
    if let Some(recreate::Missing::Wait(k)) = &missing {
        if !ctx.waiting_for_aws_auth.swap(true, Ordering::Relaxed) {
            report_waiting(ctx, k).await;
        }
        return Ok(());
    }
    if let Some(e) = history_unavailable {
        if let Some(w) = &written {
            let note = format!(
                "wrote {} change(s) without keeping the replaced version, as the history {}/{} cannot be written ({e}): removals of managed entries proceed, additions and changes wait until it can be",
                p.diff.len(),
                ctx.namespace,
                ctx.history.name(&ctx.name)
            );
            let about = w.object_ref(&());
            note_event(
                ctx,
                &about,
                EventType::Warning,
                "HistoryUnavailable",
                "Write",
                &note,
            )
            .await;
        }
        // Retried with back-off until the history is kept and what waits is written.
        return Err(SyncError::Transient(write_error.unwrap_or(e)));
    }
    match write_error.or(entries_error).or(retry) {
        Some(e) => Err(SyncError::Transient(e)),
        None => {
            // Where a pass's time went: reads, plan, history + write.
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            info!(
                grants = grants.len(),
                changed = p.changed,
                diff = p.diff.len(),
                read_ms = ms(t_read),
                plan_ms = ms(t_plan - t_read),
                write_ms = ms(t_write - t_plan),
                "synced"
            );
            Ok(())
        }
    }
}

/// Why the grant list cannot be trusted to be complete, if it cannot.
fn grants_unavailable(crd: Option<kube::api::ObjectMeta>) -> Option<String> {
    match crd {
        None => Some("the IamAccessGrant CRD is not installed".into()),
        Some(m) if m.deletion_timestamp.is_some() => {
            Some("the IamAccessGrant CRD is being deleted".into())
        }
        Some(_) => None,
    }
}

/// Held and confirmed removals are told on aws-auth (events) and in the log, once each.
async fn report_rails(ctx: &Context, p: &Plan, current: Option<&ConfigMap>) {
    let before = HeldRemoval::from_configmap(current);
    let Some(cm) = current else { return };
    let mut events = Vec::new();
    if let Some(h) = &p.held
        && before.as_ref().map(|b| &b.token) != Some(&h.token)
    {
        let how = h
            .confirm
            .as_deref()
            .map(|c| format!("; to let it proceed, run `{c}`"))
            .unwrap_or_default();
        warn!(count = h.count, token = %h.token, principals = %h.summary(), reason = %h.reason, "removal held");
        let note = format!(
            "kept {} managed entries ({}): {}{how}",
            h.count,
            h.reason,
            h.summary()
        );
        events.push((EventType::Warning, "RemovalHeld", note));
    }
    if let Some(c) = &p.confirmed {
        let by = current
            .and_then(|c| c.metadata.annotations.as_ref())
            .and_then(|a| a.get(CONFIRMED_BY_ANNOTATION))
            .map_or_else(
                || "someone (no confirmed-by annotation)".to_string(),
                |u| shown(u).into_owned(),
            );
        info!(count = c.count, token = %c.token, by = %by, "held removal confirmed; removing");
        let note = format!(
            "removal of {} managed entries confirmed by {by} with token {}: {}",
            c.count,
            c.token,
            c.summary()
        );
        events.push((EventType::Normal, "RemovalConfirmed", note));
    }
    let about = cm.object_ref(&());
    for (type_, reason, note) in events {
        note_event(ctx, &about, type_, reason, "Remove", &note).await;
    }
}

/// Debug builds only (the fault tests): abort the process at a named point of the pass when
/// `AWS_AUTH_TEST_ABORT_AT` names it, as a SIGKILL there would: `before-write` (the history kept,
/// aws-auth not written) or `after-write` (aws-auth written, statuses and history not).
fn abort_point(at: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("AWS_AUTH_TEST_ABORT_AT").as_deref() == Ok(at) {
        eprintln!("aborting at {at} (AWS_AUTH_TEST_ABORT_AT)");
        std::process::abort();
    }
    let _ = at;
}

/// Another aws-auth-operator writing aws-auth (a second install, or replicas without leader
/// election): both stay consistent through resourceVersion preconditions, but they may undo each
/// other's work, so it is said, at most every ten minutes, in a Warning Event naming the other
/// writer and in the log. Each write carries its writer in an annotation; with leader election a
/// change of writer is a change of leader, and is not reported.
async fn report_other_writer(ctx: &Context, current: &ConfigMap) {
    let Some(rv) = current.metadata.resource_version.as_deref() else {
        return;
    };
    let Some(other) = current
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(WRITER_ANNOTATION))
    else {
        return;
    };
    // Every write of this process names it; before its first, the named writer may be its own
    // predecessor.
    if ctx.elected || *other == ctx.instance || !ctx.has_written.load(Ordering::Relaxed) {
        return;
    }
    {
        let mut last = ctx.other_writer_reported.lock().expect("other writer lock");
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(600)) {
            return;
        }
        *last = Some(std::time::Instant::now());
    }
    let note = format!(
        "aws-auth resourceVersion {rv} was written by another aws-auth-operator, {} (field manager {MANAGER}), not by this one, {}: a second install, or replicas without leader election. Both stay consistent through resourceVersion preconditions, but they may undo each other's work: run one operator per cluster, or enable leader election",
        shown(other),
        shown(&ctx.instance)
    );
    warn!(note = %note, "another writer");
    let about = current.object_ref(&());
    note_event(
        ctx,
        &about,
        EventType::Warning,
        "AnotherWriter",
        "Write",
        &note,
    )
    .await;
}

/// Records an Event about aws-auth (or the object `about` names); a failure is only logged.
async fn note_event(
    ctx: &Context,
    about: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(truncate(note)),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, about).await {
        debug!(error = %e, reason, "event not recorded");
    }
}

/// aws-auth was found deleted and has just been recreated: a Warning Event on it says from what
/// (and what a recreation with the grants' entries only left out), and a metric counts it.
async fn report_recreated(ctx: &Context, written: &ConfigMap, missing: &recreate::Missing) {
    let listed = |k: &recreate::Known| {
        let all = k.unmanaged();
        let shown: Vec<String> = all.iter().take(10).map(|p| shown(p).into_owned()).collect();
        let more = all.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        (all.len(), format!("{}{more}", shown.join(", ")))
    };
    let (type_, reason, note, with) = match missing {
        recreate::Missing::Restore(k) => {
            let (n, list) = listed(k);
            (
                EventType::Warning,
                "AwsAuthRestored",
                format!(
                    "aws-auth was deleted; recreated from {} with the {n} entries aws-auth-operator does not manage, as they were ({list}), and the grants' entries",
                    k.source
                ),
                "restored",
            )
        }
        recreate::Missing::Recreate(Some(k)) => {
            let (n, list) = listed(k);
            (
                EventType::Warning,
                "AwsAuthRecreated",
                format!(
                    "aws-auth was deleted; recreated with the grants' entries only (--on-aws-auth-deleted recreate-managed). {} also held {n} entries aws-auth-operator does not manage ({list}): bring them back with `aws-auth-operator history` and `restore N`",
                    k.source
                ),
                "managed",
            )
        }
        // Written only once it exists again, so never reported here.
        recreate::Missing::Wait(_) => return,
        recreate::Missing::Recreate(None) => {
            info!(
                "no earlier version of aws-auth is known (no history): created with the grants' entries only"
            );
            (
                EventType::Normal,
                "AwsAuthCreated",
                "no earlier version of aws-auth is known (no history): created with the grants' entries only".to_string(),
                "",
            )
        }
    };
    if !with.is_empty() {
        warn!(reason, note = %note, "aws-auth recreated");
        ctx.metrics
            .recreated
            .get_or_create(&crate::operator::telemetry::RecreatedLabel { with })
            .inc();
    }
    note_event(
        ctx,
        &written.object_ref(&()),
        type_,
        reason,
        "Recreate",
        &note,
    )
    .await;
}

/// `--on-aws-auth-deleted wait`: said once, in the log and in an Event about the missing object.
async fn report_waiting(ctx: &Context, known: &recreate::Known) {
    let note = format!(
        "aws-auth was deleted; --on-aws-auth-deleted is wait, so nothing is written until it exists again. Its last known version is {} ({} entries not managed by aws-auth-operator); `aws-auth-operator history` and `restore N` bring it back",
        known.source,
        known.unmanaged().len()
    );
    warn!(note = %note, "aws-auth deleted; waiting");
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: Some(ctx.name.clone()),
        namespace: Some(ctx.namespace.clone()),
        ..Default::default()
    };
    note_event(
        ctx,
        &reference,
        EventType::Warning,
        "AwsAuthDeleted",
        "Wait",
        &note,
    )
    .await;
}

/// Keeps a version of aws-auth in the history ConfigMap: each one the operator writes, right
/// after writing it, and whatever is there before it is replaced. No history, no write (but for
/// removals): a write that could not be undone is not made.
async fn keep_history(ctx: &Context, current: &ConfigMap) -> Result<(), SyncError> {
    // What this process last wrote saves reading up to 800 KiB before every write; the history's
    // resourceVersion still guards each change, and a conflict reads it afresh.
    let known = ctx.history_state.lock().expect("history lock").clone();
    let name = ctx.history.name(&ctx.name);
    let state = match known {
        Some(s) => Some(s),
        None => ctx.configmaps.get_opt(&name).await?.map(|cm| HistoryState {
            resource_version: cm.metadata.resource_version.unwrap_or_default(),
            index: history::Index::of(&cm.data.unwrap_or_default()),
        }),
    };
    let index = state.as_ref().map(|s| s.index.clone()).unwrap_or_default();
    // This process's own last write is kept already: nothing is built or sent for it.
    let rv = current
        .metadata
        .resource_version
        .as_deref()
        .unwrap_or_default();
    let todo = if index.holds(rv) {
        None
    } else {
        let (rv, json) = history::Version::json_of(current, &Timestamp::now().to_string());
        let (versions, bytes) = (ctx.history.history_versions, ctx.history.history_bytes);
        history::record(&index, &rv, json, versions, bytes)
    };
    let (patch, index) = match todo {
        Some((patch, index)) if !patch.is_empty() => (patch, index),
        todo => {
            // Nothing to send; a version too large to keep is noted as passed over.
            let mut state = state;
            if let (Some((_, index)), Some(s)) = (todo, state.as_mut()) {
                s.index = index;
            }
            *ctx.history_state.lock().expect("history lock") = state;
            return Ok(());
        }
    };
    leading(ctx)?;
    let res = match &state {
        // A merge patch of the items that change, answered with metadata only: neither the
        // request nor the answer carries the whole history.
        Some(s) => {
            // Serialized from the patch itself: a JSON value of it would copy the version first.
            #[derive(serde::Serialize, Debug)]
            struct Body<'a> {
                metadata: Meta<'a>,
                data: &'a std::collections::BTreeMap<String, Option<String>>,
            }
            #[derive(serde::Serialize, Debug)]
            #[serde(rename_all = "camelCase")]
            struct Meta<'a> {
                resource_version: &'a str,
            }
            let body = Body {
                metadata: Meta {
                    resource_version: &s.resource_version,
                },
                data: &patch,
            };
            let pp = PatchParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            };
            ctx.configmaps
                .patch_metadata(&name, &pp, &Patch::Merge(&body))
                .await
                .map(|m| m.metadata.resource_version)
        }
        None => {
            let cm = ConfigMap {
                metadata: kube::api::ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ctx.namespace.clone()),
                    ..Default::default()
                },
                data: Some(
                    patch
                        .into_iter()
                        .filter_map(|(k, v)| Some((k, v?)))
                        .collect(),
                ),
                ..Default::default()
            };
            let pp = PostParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            };
            ctx.configmaps
                .create(&pp, &cm)
                .await
                .map(|c| c.metadata.resource_version)
        }
    };
    let recreated =
        state.is_none() && res.is_ok() && ctx.history_lost.swap(false, Ordering::Relaxed);
    {
        let mut known = ctx.history_state.lock().expect("history lock");
        match res {
            Ok(rv) => {
                *known = rv.map(|resource_version| HistoryState {
                    resource_version,
                    index,
                });
            }
            Err(kube::Error::Api(s))
                if s.is_conflict() || s.is_already_exists() || s.is_not_found() =>
            {
                // Gone (deleted by someone): created again at once, with the version at hand.
                if s.is_not_found() {
                    ctx.history_lost.store(true, Ordering::Relaxed);
                }
                *known = None;
                return Err(SyncError::Conflict);
            }
            Err(e) => {
                *known = None;
                return Err(SyncError::Transient(Error::History(e)));
            }
        }
    }
    if recreated {
        let note = format!(
            "the history ConfigMap {}/{name} was deleted; recreated with the version of aws-auth at hand (resourceVersion {}); the versions it held are lost",
            ctx.namespace, rv
        );
        warn!(note = %note, "history recreated");
        note_event(
            ctx,
            &current.object_ref(&()),
            EventType::Warning,
            "HistoryRecreated",
            "Write",
            &note,
        )
        .await;
    }
    Ok(())
}

/// The history ConfigMap as this process last wrote it: its resourceVersion and index.
#[derive(Debug, Clone)]
struct HistoryState {
    resource_version: String,
    index: history::Index,
}

/// Writes the plan with the read's resourceVersion as precondition. A conflict or a vanished
/// object is `Err(Conflict)` (re-plan at once); other API failures come back as `Ok(Err(e))`.
async fn write(
    ctx: &Context,
    p: &mut Arc<Plan>,
    current: Option<&ConfigMap>,
    window: &RemovalWindow,
) -> Result<Result<ConfigMap, Error>, SyncError> {
    let started = std::time::Instant::now();
    // The memo has let go of the plan, so its data moves into the ConfigMap sent (one copy of up
    // to 1 MiB of text for the rest of the pass, not two).
    let mut cm = match Arc::get_mut(p) {
        Some(p) => p.take_configmap_for_write(current, &ctx.namespace, &ctx.name),
        None => p.configmap(current, &ctx.namespace, &ctx.name, true),
    };
    window.apply_to(&mut cm);
    cm.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(WRITER_ANNOTATION.into(), ctx.instance.clone());
    leading(ctx)?;
    let pp = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    // A restored version (no resourceVersion) is created, like a missing aws-auth.
    let res = match current.filter(|c| c.metadata.resource_version.is_some()) {
        None => ctx.configmaps.create(&pp, &cm).await,
        Some(_) => replace_answered_with_metadata(ctx, &pp, cm).await,
    };
    match res {
        Ok(written) => {
            info!(
                resource_version = written.metadata.resource_version.as_deref().unwrap_or(""),
                write_ms = started.elapsed().as_secs_f64() * 1e3,
                changed_entries = p.diff.len(),
                // The first few: a write of thousands of entries stays one readable line.
                changes = ?&p.diff[..p.diff.len().min(LOGGED_CHANGES)],
                "aws-auth written"
            );
            Ok(Ok(written))
        }
        Err(kube::Error::Api(s))
            if s.is_conflict() || s.is_already_exists() || s.is_not_found() =>
        {
            Err(SyncError::Conflict)
        }
        Err(e) => Ok(Err(Error::Kube(e))),
    }
}

/// Entry changes a write's log line lists (all are counted).
const LOGGED_CHANGES: usize = 20;

/// Replaces aws-auth and asks for the answer as metadata only: the server keeps `data` as sent,
/// so the written object is what was sent with the server's metadata, and up to 1 MiB is not
/// sent back and decoded for every write. The body is protobuf (see protobuf.rs): decoding 700 KB
/// of JSON was most of the API server's time for this request.
async fn replace_answered_with_metadata(
    ctx: &Context,
    pp: &PostParams,
    mut cm: ConfigMap,
) -> kube::Result<ConfigMap> {
    let mut req = protobuf::replace(&ctx.configmaps, &ctx.name, pp, &cm)?;
    answered_with_metadata(&mut req);
    let client = ctx.configmaps.clone().into_client();
    let meta: kube::core::PartialObjectMeta<ConfigMap> = client.request(req).await?;
    // The answer's managedFields are the server's; what was sent carried none (protobuf.rs).
    cm.metadata = meta.metadata;
    Ok(cm)
}

/// Asks the API server to answer with the object's metadata only (PartialObjectMetadata).
fn answered_with_metadata(req: &mut hyper::Request<Vec<u8>>) {
    req.headers_mut().insert(
        hyper::header::ACCEPT,
        hyper::header::HeaderValue::from_static(
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        ),
    );
}

/// Decides each grant's status and hands the changed ones to the status worker: from aws-auth's
/// plan (`None` when aws-auth is not written), the access-entry plan, or both.
fn update_statuses(
    ctx: &Context,
    grants: &[Arc<Cached>],
    p: Option<&Plan>,
    write_error: Option<&Error>,
    entries: Option<Result<&EntriesPlan, &Error>>,
) {
    let now = Time(Timestamp::now());
    let waiting = entries.and_then(Result::err).map(entries::pass_failed);
    let entry = |name: &str| -> Option<&EntryVerdict> {
        match entries? {
            Ok(plan) => plan.verdicts.get(name),
            Err(_) => waiting.as_ref(),
        }
    };
    let by_aws: Vec<(&Arc<Cached>, Option<&Verdict>)> = match p {
        Some(p) => with_verdicts(grants, p)
            .map(|(g, v)| (g, Some(v)))
            .collect(),
        None => grants.iter().map(|g| (g, None)).collect(),
    };
    let updates = by_aws.into_iter().filter_map(|(g, verdict)| {
        let e = entry(&g.name);
        // EKS not answering leaves an Applied status as it is, as a failed aws-auth write does:
        // the entries it describes are still there.
        if e.is_some_and(|e| e.reason == Reason::Pending && entries.is_some_and(|r| r.is_err()))
            && g.reports(Reason::Applied)
        {
            return None;
        }
        let aws = match verdict.map(|v| (v.reason, write_error)) {
            // Applied is reported only once a write holding the grant has succeeded: an Applied
            // status (with its observedGeneration) stays until then, anything else is Pending.
            // While a deleted aws-auth is waited for, nothing is applied at all.
            Some((Reason::Applied, Some(err)))
                if g.reports(Reason::Applied) && !matches!(err, Error::Waiting(_)) =>
            {
                // Nothing else to report: the status stays as it is.
                let _ = entries?;
                Some((Reason::Applied, verdict?.message.clone()))
            }
            Some((Reason::Applied, Some(err))) => Some((
                Reason::Pending,
                Arc::from(format!("waiting to write aws-auth: {err}")),
            )),
            Some((r, _)) => Some((r, verdict?.message.clone())),
            None => None,
        };
        let (reason, message, backends) = match (&aws, e) {
            (Some((r, m)), None) if entries.is_none() => (
                *r,
                match GrantRef::spec(&**g) {
                    // What aws-auth cannot hold is said, not silently dropped.
                    s if r.is_ready()
                        && (!s.access_policies.is_empty() || s.entry_type.is_some()) =>
                    {
                        Arc::from(truncate(&format!("{m}; {AWS_AUTH_ONLY}")))
                    }
                    _ => truncate_shared(m),
                },
                status::Backends {
                    aws_auth: r.is_ready(),
                    access_entries: false,
                },
            ),
            _ => {
                let (r, m, b) = entries::merge(aws.as_ref().map(|(r, m)| (*r, &**m)), e);
                (r, Arc::from(truncate(&m)), b)
            }
        };
        let fallback;
        let verdict = match verdict {
            Some(v) => v,
            None => {
                fallback = Verdict {
                    grant: g.name.clone(),
                    reason,
                    message: message.clone(),
                    section: e.and_then(|e| e.section),
                    canonical_arn: e.and_then(|e| e.canonical_arn.clone()),
                };
                &fallback
            }
        };
        let decided = status::Decided::new(g, reason, message, verdict, &now).on(backends);
        (g.status_print() != Some(decided.print())).then(|| status_queue::Update {
            grant: g.clone(),
            decided,
        })
    });
    let updates: Vec<_> = updates.collect();
    ctx.statuses.push(updates);
}

/// Said of a grant with access policies or a type while only aws-auth is written.
const AWS_AUTH_ONLY: &str = "spec.accessPolicies and spec.type take effect through EKS access entries, which are not written here (--backend configmap, or the cluster's mode is CONFIG_MAP)";

/// Condition messages and event notes are capped by the API (32 KiB and 1 KiB).
const MAX_MESSAGE: usize = 1000;

/// [`truncate`], sharing a message within the cap as it is (the plan's verdicts hold it already).
/// Each grant with its verdict. The cache hands the grants over in name order and the verdicts
/// are in name order too, so one walk pairs them (a binary search per grant compared thousands
/// of names with long common prefixes); a grant out of that order is looked up.
fn with_verdicts<'a>(
    grants: &'a [Arc<Cached>],
    p: &'a Plan,
) -> impl Iterator<Item = (&'a Arc<Cached>, &'a Verdict)> {
    let mut next = 0;
    grants.iter().filter_map(move |g| {
        let name = &*g.name;
        // Every verdict before `next` sorts before a name seen already.
        if next > 0 && *p.verdicts[next - 1].grant >= *name {
            return p.verdict(name).map(|v| (g, v));
        }
        while p.verdicts.get(next).is_some_and(|v| *v.grant < *name) {
            next += 1;
        }
        p.verdicts
            .get(next)
            .filter(|v| *v.grant == *name)
            .map(|v| (g, v))
    })
}

fn truncate_shared(s: &Arc<str>) -> Arc<str> {
    if s.len() <= MAX_MESSAGE {
        return s.clone();
    }
    truncate(s).into()
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_MESSAGE {
        return s.to_string();
    }
    let mut end = MAX_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_unestablished_crd_is_a_clear_error() {
        use kube::CustomResourceExt;
        let e = crd_ready(None).unwrap_err().to_string();
        assert!(e.contains("iamaccessgrants.aws-auth.dev is not installed: install it with `kubectl apply -f crds/`"), "{e}");
        let e = crd_ready(Some(crate::api::IamAccessGrant::crd()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not established yet"), "{e}");
    }

    /// Grants in name order are paired with their verdicts by one walk; any other order still
    /// finds each grant's verdict, and a grant without one gets none.
    #[test]
    fn every_grant_gets_its_verdict_in_any_order() {
        let grant = |n: &str| {
            let arn = format!("arn:aws:iam::111122223333:role/{n}");
            IamAccessGrant::new(n, crate::api::IamAccessGrantSpec::arn(&arn, n, &["g"]))
        };
        let grants: Vec<IamAccessGrant> = ["a", "b", "c", "d"].map(grant).into();
        let p = crate::engine::plan::plan(&grants, None, &PlanConfig::default()).unwrap();
        let cached = |order: &[&str]| -> Vec<Arc<Cached>> {
            order
                .iter()
                .map(|n| Arc::new(Cached::new(grant(n))))
                .collect()
        };
        for order in [
            &["a", "b", "c", "d"][..],
            &["d", "c", "b", "a"],
            &["c", "a", "d", "b"],
            &["b", "zz", "a", "d", "c"],
        ] {
            let gs = cached(order);
            let paired: Vec<(&str, &str)> = with_verdicts(&gs, &p)
                .map(|(g, v)| (&*g.name, &*v.grant))
                .collect();
            let mut want: Vec<(&str, &str)> = order
                .iter()
                .filter(|n| **n != "zz")
                .map(|n| (*n, *n))
                .collect();
            want.sort();
            let mut got = paired.clone();
            got.sort();
            assert_eq!(got, want, "{order:?}");
        }
    }
}
