//! Convergence against the local kube-apiserver (`hack/local-cluster.sh`): N grants applied in
//! one burst, then single changes with N present. Prints apply time, time until every grant is in
//! aws-auth and Ready (by watches) and until every event is recorded (the operator idle again),
//! aws-auth writes, status updates and events, the operator's peak RSS and CPU, and single-change
//! latency with the operator idle (p50/p95, from the API server accepting the grant to the first
//! aws-auth version holding it).
//!
//! `hack/bench.sh` runs it (release build, N = 100, 1,000, 5,000). The test suite runs it once at
//! a small N so it cannot rot; it prints figures and asserts only that everything converged.
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PartialObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

use aws_auth_operator::api::{IamAccessGrant, IamAccessGrantSpec};
use aws_auth_operator::engine::authmap::Section;
use aws_auth_operator::engine::authmap::read::read_data;
use aws_auth_operator::engine::plan::Ownership;
use support::{NODE_ROLES, World, eventually};

const LONG: Duration = Duration::from_secs(600);

fn spec(i: usize, tag: &str) -> IamAccessGrantSpec {
    IamAccessGrantSpec::arn(
        &format!("arn:aws:iam::111122223333:role/{tag}-{i}"),
        &format!("{tag}-{i}:{{{{SessionName}}}}"),
        &["developers"],
    )
}

/// VmHWM (KiB) and user+system CPU seconds of a process.
fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (hwm, ticks / 100.0)
}

fn metric(op: &support::Operator, name: &str) -> u64 {
    op.http_get("/metrics")
        .and_then(|(_, body)| {
            body.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Row {
    n: usize,
    apply: Duration,
    in_aws_auth: Duration,
    ready: Duration,
    events_done: Duration,
    writes: u64,
    statuses: u64,
    events: u64,
    rss_kib: u64,
    cpu: f64,
    p50: Duration,
    p95: Duration,
}

/// When aws-auth first holds the node role and all `n` grants, by its watch.
async fn all_in_aws_auth(client: kube::Client, name: String, n: usize, start: Instant) -> Duration {
    let cms: Api<ConfigMap> = Api::namespaced(client, "kube-system");
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(cms, cfg).applied_objects().boxed();
    while let Some(cm) = events.try_next().await.expect("aws-auth watch") {
        if read_data(&cm.data.unwrap_or_default()).roles.entries.len() == n + 1 {
            return start.elapsed();
        }
    }
    unreachable!("a watcher's stream does not end")
}

/// When all `n` grants first report Ready for their generation, by their watch.
async fn all_ready(grants: Api<IamAccessGrant>, tag: String, n: usize, start: Instant) -> Duration {
    let cfg = watcher::Config::default().labels(&format!("{}={tag}", support::TEST_LABEL));
    let mut events = watcher(grants, cfg).applied_objects().boxed();
    let mut ready = HashSet::new();
    while let Some(g) = events.try_next().await.expect("grant watch") {
        let is_ready = g.status.as_ref().is_some_and(|s| {
            s.observed_generation == g.metadata.generation
                && (s.conditions.iter()).any(|c| c.type_ == "Ready" && c.status == "True")
        });
        let name = g.metadata.name.unwrap_or_default();
        if is_ready {
            ready.insert(name);
        } else {
            ready.remove(&name);
        }
        if ready.len() == n {
            return start.elapsed();
        }
    }
    unreachable!("a watcher's stream does not end")
}

async fn run(n: usize, samples: usize) -> Row {
    let w = World::new(&format!("bench-{n}")).await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let mut op = w.operator(&["--debounce", "200ms", "--debounce-max", "2s"]);
    eventually("operator ready", Duration::from_secs(60), || async {
        (op.http_get("/readyz")?.0 == 200).then_some(())
    })
    .await;

    // Watched, not polled: a LIST of 5,000 grants every 100 ms would be a load of its own on the
    // API server the operator shares.
    let start = Instant::now();
    let in_aws_auth = tokio::spawn(all_in_aws_auth(w.client.clone(), w.name.clone(), n, start));
    let ready = tokio::spawn(all_ready(w.grants.clone(), w.name.clone(), n, start));

    // One burst, 16 requests in flight (kubectl apply sends one after another).
    futures::stream::iter(0..n)
        .map(|i| {
            let g = w.grant(&format!("g{i}"), spec(i, &w.name));
            let api = w.grants.clone();
            async move {
                api.create(&PostParams::default(), &g)
                    .await
                    .expect("create grant")
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let apply = start.elapsed();
    let wait = |t: tokio::task::JoinHandle<Duration>| async move {
        tokio::time::timeout(LONG, t)
            .await
            .expect("converged within 10 minutes")
            .expect("watch task")
    };
    let in_aws_auth = wait(in_aws_auth).await;
    let ready = wait(ready).await;
    let lp = ListParams::default().labels(&format!("{}={}", support::TEST_LABEL, w.name));
    // The operator is idle once every grant's transition to Applied is recorded as an event
    // (events go after the statuses): asked of the operator, not of the API server.
    let events_done = eventually("all events recorded", LONG, || async {
        (metric(&op, "aws_auth_operator_events_total") >= n as u64).then(|| start.elapsed())
    })
    .await;
    let writes = metric(&op, "aws_auth_operator_writes_total");
    let statuses = metric(&op, "aws_auth_operator_status_updates_total");
    let events = metric(&op, "aws_auth_operator_events_total");
    let (rss_kib, cpu) = usage(op.pid());

    // Single changes with N present and the operator idle, each after a quiet spell. Each is timed to the first aws-auth
    // version that holds it, by a metadata-only watch: the ownership record (an annotation) is
    // written with the data, so it tells the version without the benchmark receiving and decoding
    // the 700 KB object each time (which is the watcher's time, not the operator's).
    let cms: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(w.client.clone(), "kube-system");
    let mut latencies = Vec::new();
    for s in 0..samples {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let arn = format!("arn:aws:iam::111122223333:role/{}-single-{s}", w.name);
        let cfg = watcher::Config::default().fields(&format!("metadata.name={}", w.name));
        let mut events = watcher(cms.clone(), cfg).applied_objects().boxed();
        // The watch's first event is the current object: from then on, changes arrive.
        events.try_next().await.expect("watch").expect("aws-auth");
        let g = w.grant(
            &format!("single-{s}"),
            IamAccessGrantSpec::arn(&arn, "single", &["developers"]),
        );
        w.grants
            .create(&PostParams::default(), &g)
            .await
            .expect("create grant");
        let accepted = Instant::now();
        loop {
            let meta = tokio::time::timeout(Duration::from_secs(30), events.try_next())
                .await
                .expect("aws-auth changes within 30 s")
                .expect("watch")
                .expect("event");
            let arrived = accepted.elapsed();
            let cm = ConfigMap {
                metadata: meta.metadata,
                ..Default::default()
            };
            let owned = Ownership::from_configmap(Some(&cm)).expect("ownership record");
            if owned.owns(Section::MapRoles, &arn.to_lowercase()) {
                latencies.push(arrived);
                break;
            }
        }
        let data = w.configmap().await.and_then(|c| c.data).unwrap_or_default();
        assert!(data.get("mapRoles").is_some_and(|r| r.contains(&arn)));
    }
    latencies.sort();
    op.kill();
    let _ = w
        .grants
        .delete_collection(&DeleteParams::default(), &lp)
        .await;
    let _ = w.configmaps.delete(&w.name, &DeleteParams::default()).await;
    Row {
        n,
        apply,
        in_aws_auth,
        ready,
        events_done,
        writes,
        statuses,
        events,
        rss_kib,
        cpu,
        p50: percentile(&latencies, 0.5),
        p95: percentile(&latencies, 0.95),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (mut sizes, samples) = if full {
        (vec![100, 1000, 5000], 20)
    } else {
        (vec![50], 3)
    };
    // AWS_AUTH_BENCH_SIZES=1000,5000 runs just those.
    if let Ok(list) = std::env::var("AWS_AUTH_BENCH_SIZES") {
        sizes = list
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect();
    }
    println!(
        "{:>6}  {:>9}  {:>12}  {:>9}  {:>10}  {:>7}  {:>8}  {:>7}  {:>9}  {:>7}  {:>10}  {:>10}",
        "grants",
        "apply",
        "in aws-auth",
        "all Ready",
        "all events",
        "writes",
        "statuses",
        "events",
        "peak RSS",
        "CPU",
        "single p50",
        "single p95"
    );
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    for n in sizes {
        let r = run(n, samples).await;
        println!(
            "{:>6}  {:>9}  {:>12}  {:>9}  {:>10}  {:>7}  {:>8}  {:>7}  {:>6.1} MiB  {:>5.2} s  {:>10}  {:>10}",
            r.n,
            ms(r.apply),
            ms(r.in_aws_auth),
            ms(r.ready),
            ms(r.events_done),
            r.writes,
            r.statuses,
            r.events,
            r.rss_kib as f64 / 1024.0,
            r.cpu,
            ms(r.p50),
            ms(r.p95)
        );
    }
}
