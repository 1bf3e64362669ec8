//! Prints how long one sync's pure part takes (plan: read, validate, merge, render, re-read) and how
//! big aws-auth gets, for growing numbers of grants over an aws-auth that already holds 100
//! entries of EKS's (node roles). `cargo bench --bench plan`.
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use aws_auth_operator::api::{IamAccessGrant, IamAccessGrantSpec};
use aws_auth_operator::engine::plan::{Memo, PlanConfig, plan_in};
use aws_auth_operator::operator::controller::cache::Cached;

/// The controller's cache entries, shared, as the controller hands them to the plan (versions of
/// objects from the API server: each with a uid and a resourceVersion, fingerprinted when cached).
fn grants(n: usize) -> Vec<Arc<Cached>> {
    (0..n).map(grant).collect()
}

/// Grant number `i`: a role or a user, created one second after grant `i - 1`.
fn grant(i: usize) -> Arc<Cached> {
    grant_in(i, 111122223333)
}

/// Grant number `i` for a principal of `account` (a set of grants no planner has seen before,
/// of the same shape and size).
fn grant_in(i: usize, account: u64) -> Arc<Cached> {
    let kind = if i.is_multiple_of(2) { "role" } else { "user" };
    let mut g = IamAccessGrant::new(
        &format!("grant-{i}"),
        IamAccessGrantSpec {
            arn: Some(format!("arn:aws:iam::{account}:{kind}/team-{i}")),
            username: Some(format!("team-{i}:{{{{SessionName}}}}")),
            groups: vec!["developers".into(), format!("team-{i}")],
            ..Default::default()
        },
    );
    g.metadata.creation_timestamp = Some(Time(
        Timestamp::from_second(1_700_000_000 + i as i64).unwrap(),
    ));
    g.metadata.uid = Some(format!(
        "00000000-0000-{:04}-0000-{i:012}",
        account % 10_000
    ));
    g.metadata.resource_version = Some((1000 + i).to_string());
    Arc::new(Cached::new(g))
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// 100 node-role entries as EKS writes them, unquoted.
fn eks_aws_auth() -> ConfigMap {
    let roles: String = (0..100)
        .map(|i| format!("- groups:\n  - system:bootstrappers\n  - system:nodes\n  rolearn: arn:aws:iam::111122223333:role/eks-nodegroup-{i}-NodeInstanceRole\n  username: system:node:{{{{EC2PrivateDNSName}}}}\n"))
        .collect();
    ConfigMap {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("aws-auth".into()),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        data: Some([("mapRoles".to_string(), roles)].into()),
        ..Default::default()
    }
}

fn main() {
    let config = PlanConfig::default();
    // One planner's memory across the runs, as the controller keeps one across its passes.
    let memo = Memo::default();
    let plan = |g: &[Arc<Cached>], c: Option<&ConfigMap>, k: &PlanConfig| plan_in(&memo, g, c, k);
    let eks = eks_aws_auth();
    println!(
        "{:>7}  {:>11}  {:>11}  {:>11}  {:>11}  {:>11}  {:>10}  {:>9}",
        "grants",
        "first plan",
        "own output",
        "unchanged",
        "read ahead",
        "one added",
        "data bytes",
        "applied"
    );
    // Each figure is the median of 5 runs; a different `recently_removed` per run
    // (it changes nothing here) keeps the plan memo from answering the runs that measure work.
    let runs: usize = std::env::var("AWS_AUTH_BENCH_PLAN_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let median = |mut v: Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let fresh = |k: usize| PlanConfig {
        recently_removed: k,
        ..config.clone()
    };
    // AWS_AUTH_BENCH_PLAN_SIZES=5000 runs just that size.
    let sizes: Vec<usize> = std::env::var("AWS_AUTH_BENCH_PLAN_SIZES")
        .ok()
        .map(|l| l.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 100, 1000, 5000]);
    for n in sizes {
        // A first plan (a new leader, a restart): a planner of its own, and grants whose entry
        // texts no plan of this process has rendered.
        let first_t = median(
            (1..=runs as u64)
                .map(|k| {
                    let gs: Vec<_> = (0..n).map(|i| grant_in(i, 111122223333 + k)).collect();
                    let fresh_memo = Memo::default();
                    let t = Instant::now();
                    let p = plan_in(&fresh_memo, &gs, Some(&eks), &config).unwrap();
                    let took = t.elapsed();
                    assert!(p.changed);
                    took
                })
                .collect(),
        );
        let gs = grants(n);
        let first = plan(&gs, Some(&eks), &config).unwrap();
        let cm: ConfigMap = first.configmap(Some(&eks), "kube-system", "aws-auth", true);
        let written = |p: &aws_auth_operator::engine::plan::Plan, before: &ConfigMap| {
            p.configmap(Some(before), "kube-system", "aws-auth", true)
        };
        // Over its own output, read for the first time: what a pass works out after a write
        // (each run's output comes from one more grant, so no run finds the text read before).
        let mut extra = Vec::new();
        let mut last = cm.clone();
        let own_t = median(
            (1..=runs)
                .map(|k| {
                    extra.push(grant(n + 1000 + k));
                    let with: Vec<_> = gs.iter().chain(&extra).cloned().collect();
                    last = written(&plan(&with, Some(&last), &config).unwrap(), &last);
                    let t = Instant::now();
                    let p = plan(&with, Some(&last), &fresh(k)).unwrap();
                    assert!(!p.changed);
                    t.elapsed()
                })
                .collect(),
        );
        // The same inputs again (a resync, an event that changed nothing the plan reads).
        let unchanged_t = median(
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    let p = plan(&gs, Some(&cm), &config).unwrap();
                    assert!(!p.changed);
                    t.elapsed()
                })
                .collect(),
        );
        // Single changes one after another: one grant more than aws-auth holds, over the text the
        // last change wrote, which the operator reads right after writing it (what its pass after
        // one apply sees); the read ahead is timed on its own.
        let mut more = gs.clone();
        let mut last = written(&plan(&more, Some(&cm), &config).unwrap(), &cm);
        let mut ahead = Vec::new();
        let added_t = median(
            (1..=runs)
                .map(|k| {
                    let t = Instant::now();
                    memo.read_ahead(&last);
                    ahead.push(t.elapsed());
                    more.push(grant(n + 2000 + k));
                    let t = Instant::now();
                    let p = plan(&more, Some(&last), &config).unwrap();
                    let took = t.elapsed();
                    assert!(p.changed && p.diff.len() == 1, "{:?}", p.diff);
                    last = written(&p, &last);
                    took
                })
                .collect(),
        );
        let ahead_t = median(ahead);
        let bytes: usize = first.data.values().map(String::len).sum();
        let applied = first
            .verdicts
            .iter()
            .filter(|v| v.reason.is_ready())
            .count();
        println!(
            "{n:>7}  {:>9.2}ms  {:>9.2}ms  {:>9.2}ms  {:>9.2}ms  {:>9.2}ms  {bytes:>10}  {applied:>9}",
            first_t.as_secs_f64() * 1e3,
            own_t.as_secs_f64() * 1e3,
            unchanged_t.as_secs_f64() * 1e3,
            ahead_t.as_secs_f64() * 1e3,
            added_t.as_secs_f64() * 1e3
        );
    }
    println!("peak RSS: {} KiB", peak_rss_kib());
}
