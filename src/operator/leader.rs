//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager), and the gate every
//! write of the operator passes.
//!
//! The crate takes, renews and releases the Lease. What it reports is combined with the Lease as
//! the API server last showed it: this instance counts as leader only while the crate says so
//! *and* its last renewal seen on the server is recent. A leader that can no longer renew (API
//! server unreachable, process stalled) stops writing when its renewal ages out, before another
//! instance may take the Lease over, even if the crate has not noticed yet.
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::operator::duration::parse_duration;
use crate::operator::telemetry::Metrics;
use crate::{Error, Result};

#[derive(Debug, Clone, clap::Args)]
pub struct LeaderArgs {
    /// Elect a leader on a Lease, so that several replicas can run: only the leader writes
    /// aws-auth, statuses, history and events; the others keep their caches warm.
    #[arg(long, env = "AWS_AUTH_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, env = "AWS_AUTH_LEASE_NAME", default_value = "aws-auth-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (default: `POD_NAMESPACE`, else aws-auth's namespace).
    #[arg(long, env = "AWS_AUTH_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long a Lease holds without renewal; a follower takes over at most this long after
    /// the leader died. Whole seconds.
    #[arg(long, env = "AWS_AUTH_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// The leader renews this long before its Lease would expire. Whole seconds, less than the
    /// duration.
    #[arg(long, env = "AWS_AUTH_LEASE_RENEW_BEFORE", default_value = "5s", value_parser = parse_duration)]
    pub lease_renew_before: Duration,
    /// Identity in the Lease (default: `POD_NAME`, else host name and process id).
    #[arg(long, env = "AWS_AUTH_LEADER_IDENTITY")]
    pub leader_identity: Option<String>,
}

/// Whether this instance may write now. Without leader election it always may.
#[derive(Clone, Debug)]
pub struct Gate(watch::Receiver<bool>);

impl Gate {
    /// A gate that is always open: a single instance without election.
    pub fn always() -> Gate {
        let (tx, rx) = watch::channel(true);
        // Keeps the channel open for the life of the process; the value never changes.
        std::mem::forget(tx);
        Gate(rx)
    }

    pub fn is_open(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the gate is open.
    pub async fn opened(&mut self) {
        let _ = self.0.wait_for(|open| *open).await;
    }

    /// Resolves once the gate is closed (never, if it stays open).
    pub async fn closed(&mut self) {
        if self.0.wait_for(|open| !*open).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A running election: the gate, and how to leave it.
pub struct Election {
    pub gate: Gate,
    pub identity: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Election {
    /// Joins the election on the Lease (created if missing).
    pub async fn start(
        client: Client,
        args: &LeaderArgs,
        default_namespace: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Election> {
        let usage = |flag, message: String| Error::Usage { flag, message };
        let duration = args.lease_duration.as_secs();
        let renew_before = args.lease_renew_before.as_secs();
        if duration == 0 || renew_before >= duration {
            return Err(usage(
                "--lease-renew-before",
                format!(
                    "must be shorter than --lease-duration ({duration}s), in whole seconds; e.g. --lease-duration 15s --lease-renew-before 5s"
                ),
            ));
        }
        let namespace = args
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| default_namespace.to_string());
        let identity = args
            .leader_identity
            .clone()
            .unwrap_or_else(default_identity);
        let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
            .with_namespace(&namespace)
            .with_identity(&identity)
            .with_duration(duration)
            .with_grace(renew_before)
            .with_field_manager("aws-auth-operator-leader")
            .build()
            .await
            .map_err(|e| lease_error(&namespace, &args.lease_name, e))?;
        let (held, manager_task) = manager.watch().await;
        let leases: Api<Lease> = Api::namespaced(client, &namespace);
        let (tx, rx) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(false);
        let judge = Judge {
            identity: identity.clone(),
            // Closes before the Lease expires on the server by half the renewal lead: a
            // follower's clock may run that much ahead of ours.
            margin: Duration::from_secs(renew_before) / 2,
            tx,
            metrics,
        };
        let lease_name = args.lease_name.clone();
        let task = tokio::spawn(async move {
            judge
                .run(held, leases, &lease_name, stop_rx, manager_task)
                .await;
        });
        info!(%identity, %namespace, lease = %args.lease_name, "joined leader election");
        Ok(Election {
            gate: Gate(rx),
            identity,
            stop,
            task,
        })
    }

    /// Stops writing and releases the Lease, so a follower can take over without waiting for it
    /// to expire. Waits a few seconds at most.
    pub async fn leave(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            warn!("leaving the leader election timed out; the Lease expires on its own");
        }
    }
}

fn default_identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "aws-auth-operator".into());
        format!("{host}-{}", std::process::id())
    })
}

fn lease_error(namespace: &str, name: &str, e: LeaseManagerError) -> Error {
    Error::Usage {
        flag: "--leader-elect",
        message: format!(
            "cannot use Lease {namespace}/{name}: {e}; the operator needs get, create, update and patch on leases in {namespace} (the chart grants them)"
        ),
    }
}

/// Decides, from the crate's view and the Lease's last renewal, whether this instance leads.
struct Judge {
    identity: String,
    margin: Duration,
    tx: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

impl Judge {
    async fn run(
        self,
        mut held: watch::Receiver<bool>,
        leases: Api<Lease>,
        name: &str,
        mut stop: watch::Receiver<bool>,
        manager_task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
    ) {
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut lease_events = watcher(leases, config)
            .default_backoff()
            .applied_objects()
            .boxed();
        let mut crate_says = *held.borrow();
        // Until a renewal by this identity is seen on the server, the gate stays closed.
        let mut valid_until: Option<Instant> = None;
        loop {
            let leading = crate_says && valid_until.is_some_and(|t| t > Instant::now());
            if self
                .tx
                .send_if_modified(|old| std::mem::replace(old, leading) != leading)
            {
                self.metrics.leader.set(leading as i64);
                if leading {
                    info!(identity = %self.identity, "became leader; writing");
                } else {
                    warn!(identity = %self.identity, "not leader; writes stopped");
                }
            }
            let expiry = async {
                match valid_until {
                    Some(t) if leading => tokio::time::sleep_until(t).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.changed() => break,
                r = held.changed() => match r {
                    Ok(()) => crate_says = *held.borrow_and_update(),
                    // The crate's task ended (it logs why): nobody renews any more.
                    Err(_) => crate_says = false,
                },
                ev = lease_events.next() => match ev {
                    Some(Ok(lease)) => valid_until = self.renewed_until(&lease),
                    Some(Err(e)) => warn!(error = %e, "Lease watch error; retrying"),
                    None => {}
                },
                _ = expiry => {
                    warn!(identity = %self.identity, "no renewal of the Lease seen in time");
                    valid_until = None;
                }
            }
        }
        // Closing the gate first means nothing is written after the release.
        self.tx.send_replace(false);
        self.metrics.leader.set(0);
        drop(held);
        match manager_task.await {
            Ok(Ok(_)) => info!(identity = %self.identity, "Lease released"),
            Ok(Err(e)) => warn!(error = %e, "releasing the Lease"),
            Err(e) => warn!(error = %e, "lease task"),
        }
    }

    /// Until when the Lease, as the server shows it, makes this identity the holder.
    fn renewed_until(&self, lease: &Lease) -> Option<Instant> {
        let spec = lease.spec.as_ref()?;
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return None;
        }
        let renewed: SystemTime = spec.renew_time.as_ref()?.0.into();
        let secs = u64::try_from(spec.lease_duration_seconds?).ok()?;
        let expires = renewed + Duration::from_secs(secs);
        let left = expires.duration_since(SystemTime::now()).ok()?;
        Some(Instant::now() + left.checked_sub(self.margin)?)
    }
}
