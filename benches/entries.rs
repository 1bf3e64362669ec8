//! Convergence onto EKS access entries: N grants created in one burst on the local kube-apiserver
//! (`hack/local-cluster.sh`), the operator with `--backend access-entries` against the local EKS
//! server (`hack/local-sts.sh`), which throttles each operation with a token bucket as EKS does
//! (`AWS_AUTH_TEST_EKS_RATE`/`_BURST`, 10/s and 20 by default). Prints the time until every
//! grant is Ready, and per operation the calls, throttled answers, calls per grant and the rate
//! reached against the allowed one.
//!
//! `hack/bench.sh` runs it with N = 1,000. The test suite runs it once at a small N so it cannot
//! rot; it prints figures and asserts only that every grant converged with no call failed.
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use aws_sdk_eks::types::AuthenticationMode;
use futures::StreamExt;
use kube::api::{ListParams, PostParams};

use aws_auth_operator::api::IamAccessGrantSpec;
use support::eks::{aws_env, bucket, cluster, control};
use support::{TEST_LABEL, World, eventually};

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("AWS_AUTH_BENCH_GRANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 1000 } else { 50 });
    let env_or = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (rate, burst) = (
        env_or("AWS_AUTH_TEST_EKS_RATE", 10),
        env_or("AWS_AUTH_TEST_EKS_BURST", 20),
    );
    // The server's bucket as EKS's (a test before may have widened it).
    bucket(rate, burst);
    let w = World::new("bench-entries").await;
    let name = format!("bench-entries-{}", std::process::id());
    cluster(&name, AuthenticationMode::Api).await;
    let env = aws_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut op = support::Operator::start_env(
        &w.name,
        &[
            "--backend",
            "access-entries",
            "--cluster-name",
            &name,
            "--debounce",
            "200ms",
            "--debounce-max",
            "2s",
        ],
        None,
        &env,
    );
    // The operator's first pass (one list of an empty cluster) is not part of the figures.
    eventually("the operator ready", Duration::from_secs(60), || async {
        op.http_get("/readyz").filter(|(code, _)| *code == 200)
    })
    .await;
    control("reset-stats", "");
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let g = w.grant(
                &format!("g{i:05}"),
                IamAccessGrantSpec::arn(
                    &format!("arn:aws:iam::111122223333:role/bench-{i:05}"),
                    &format!("bench-{i}:{{{{SessionName}}}}"),
                    &["developers"],
                ),
            );
            let grants = w.grants.clone();
            async move { grants.create(&PostParams::default(), &g).await.unwrap() }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let applied = started.elapsed();
    let lp = ListParams::default().labels(&format!("{TEST_LABEL}={}", w.name));
    let ready = |reason: &'static str| {
        let grants = w.grants.clone();
        let lp = lp.clone();
        async move {
            let list = grants.list(&lp).await.ok()?;
            let count = list
                .items
                .iter()
                .filter(|g| {
                    g.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.reason == reason)
                    })
                })
                .count();
            Some(count)
        }
    };
    eventually(
        "every grant Applied",
        Duration::from_secs(60 + n as u64 / 2),
        || async { ready("Applied").await.filter(|c| *c == n) },
    )
    .await;
    let converged = started.elapsed();
    let stats: serde_json::Value = serde_json::from_str(&http(&format!(
        "{}/_local_eks/stats",
        support::eks::endpoint()
    )))
    .unwrap();
    op.kill();
    let rate = rate as f64;
    println!(
        "{n} grants onto access entries: created in {:.1} s, all Ready in {:.1} s; bucket {rate}/s per operation, burst {burst}",
        applied.as_secs_f64(),
        converged.as_secs_f64()
    );
    println!(
        "{:32} {:>7} {:>9} {:>9} {:>8} {:>10}",
        "operation", "calls", "throttled", "per grant", "rate/s", "of allowed"
    );
    let calls = stats["calls"].as_object().unwrap();
    let mut total = 0;
    for (op, c) in calls {
        let c = c.as_u64().unwrap();
        let throttled = stats["throttled"][op].as_u64().unwrap_or(0);
        let secs = stats["seconds"][op].as_f64().unwrap_or(0.0);
        let ok = c - throttled;
        let r = if secs > 0.0 {
            (ok - 1) as f64 / secs
        } else {
            f64::NAN
        };
        total += c;
        println!(
            "{op:32} {c:>7} {throttled:>9} {:>9.3} {r:>8.2} {:>9.0}%",
            c as f64 / n as f64,
            r / rate * 100.0
        );
    }
    println!("all calls per grant: {:.3}", total as f64 / n as f64);
    let created = calls.get("CreateAccessEntry").and_then(|c| c.as_u64());
    let throttled = stats["throttled"]["CreateAccessEntry"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(
        created.map(|c| c - throttled),
        Some(n as u64),
        "one create per grant"
    );
}

fn http(url: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-fsS", url])
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
