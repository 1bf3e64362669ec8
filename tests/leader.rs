//! Two replicas with leader election on the real kube-apiserver: exactly one writes; a SIGKILLed
//! leader is replaced within the Lease duration and the new one converges; SIGTERM releases the
//! Lease.
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::DeleteParams;

use support::{Operator, World, eventually, role};

const LEASE_SECS: u64 = 4;

fn replica(w: &World, lease: &str, id: &str) -> Operator {
    w.operator(&[
        "--leader-elect",
        "--lease-name",
        lease,
        "--lease-namespace",
        "default",
        "--lease-duration",
        &format!("{LEASE_SECS}s"),
        "--lease-renew-before",
        "2s",
        "--leader-identity",
        id,
    ])
}

async fn holder(leases: &Api<Lease>, name: &str) -> Option<String> {
    leases.get_opt(name).await.ok()??.spec?.holder_identity
}

/// Waits until exactly one of `ops` reports itself leader; returns its index.
async fn one_leader(ops: &[&Operator]) -> usize {
    eventually("exactly one leader", Duration::from_secs(20), || async {
        let flags: Vec<_> = ops
            .iter()
            .map(|o| o.metric("aws_auth_operator_leader"))
            .collect();
        let leaders: Vec<_> = (0..ops.len()).filter(|&i| flags[i] == Some(1.0)).collect();
        (leaders.len() == 1 && flags.iter().all(Option::is_some)).then(|| leaders[0])
    })
    .await
}

#[tokio::test]
async fn one_replica_writes_and_the_other_takes_over() {
    let w = World::new("leader").await;
    let lease = "aws-auth-operator-leader-test";
    let leases: Api<Lease> = Api::namespaced(w.client.clone(), "default");
    let _ = leases.delete(lease, &DeleteParams::default()).await;
    w.create_configmap(&[]).await;

    let a = replica(&w, lease, "replica-a");
    let b = replica(&w, lease, "replica-b");
    let mut ops = [a, b];
    let first = one_leader(&[&ops[0], &ops[1]]).await;
    let ids = ["replica-a", "replica-b"];
    assert_eq!(holder(&leases, lease).await.as_deref(), Some(ids[first]));
    let follower = 1 - first;
    // The follower is ready (warm caches) without leading.
    eventually("follower ready", Duration::from_secs(20), || async {
        (ops[follower].http_get("/readyz")?.0 == 200).then_some(())
    })
    .await;

    w.create(
        "one",
        role("arn:aws:iam::111122223333:role/one", "one", &["devs"]),
    )
    .await;
    w.wait_reason("one", "Applied").await;
    assert!(ops[first].metric("aws_auth_operator_writes_total") >= Some(1.0));
    // Exactly one writer: the follower planned nothing and wrote nothing.
    assert_eq!(
        ops[follower].metric("aws_auth_operator_writes_total"),
        Some(0.0),
        "follower wrote:\n{}",
        ops[follower].logs()
    );
    assert!(!ops[follower].logs().contains("aws-auth written"));

    // SIGKILL: no release; the follower takes over once the Lease expires.
    let killed = Instant::now();
    ops[first].kill();
    eventually(
        "follower leads after the leader was killed",
        Duration::from_secs(LEASE_SECS + 6),
        || async { (ops[follower].metric("aws_auth_operator_leader")? == 1.0).then_some(()) },
    )
    .await;
    let took = killed.elapsed();
    println!("takeover after SIGKILL: {took:?} (Lease duration {LEASE_SECS}s)");
    // The Lease expires at most LEASE_SECS after the leader's last renewal; the library then
    // waits up to a second of jitter before taking it.
    assert!(
        took <= Duration::from_secs(LEASE_SECS + 3),
        "takeover took {took:?}, Lease duration {LEASE_SECS}s"
    );
    assert_eq!(holder(&leases, lease).await.as_deref(), Some(ids[follower]));
    // The new leader converges: a grant made after the takeover is applied.
    w.create(
        "two",
        role("arn:aws:iam::111122223333:role/two", "two", &["devs"]),
    )
    .await;
    w.wait_reason("two", "Applied").await;
    let read = w.read().await.unwrap();
    assert_eq!(read.auth_map().roles.len(), 2, "{:?}", w.configmap().await);

    // SIGTERM: the leader stops writing, releases the Lease and exits cleanly.
    let c = replica(&w, lease, "replica-c");
    eventually("third replica ready", Duration::from_secs(20), || async {
        (c.http_get("/readyz")?.0 == 200).then_some(())
    })
    .await;
    let code = ops[follower].terminate();
    assert_eq!(code, Some(0), "{}", ops[follower].logs());
    assert!(
        ops[follower].logs().contains("Lease released"),
        "{}",
        ops[follower].logs()
    );
    // Released: no holder until the next replica takes it.
    let after = holder(&leases, lease).await;
    assert!(
        after.is_none() || after.as_deref() == Some("replica-c"),
        "Lease still held by {after:?} after SIGTERM"
    );
    eventually(
        "third replica leads",
        Duration::from_secs(LEASE_SECS + 6),
        || async { (c.metric("aws_auth_operator_leader")? == 1.0).then_some(()) },
    )
    .await;
    w.create(
        "three",
        role("arn:aws:iam::111122223333:role/three", "three", &["devs"]),
    )
    .await;
    w.wait_reason("three", "Applied").await;
}

/// A leader whose Lease is taken (here by hand, as a partitioned leader's would be by the new
/// one) stops writing at once, and writes again only once it holds the Lease again.
#[tokio::test]
async fn a_leader_that_loses_the_lease_stops_writing() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use k8s_openapi::jiff::Timestamp;
    use kube::api::{Patch, PatchParams};

    let w = World::new("leader-lost").await;
    let lease = "aws-auth-operator-lost-test";
    let leases: Api<Lease> = Api::namespaced(w.client.clone(), "default");
    let _ = leases.delete(lease, &DeleteParams::default()).await;
    w.create_configmap(&[]).await;
    let op = replica(&w, lease, "replica-a");
    one_leader(&[&op]).await;
    w.create(
        "one",
        role("arn:aws:iam::111122223333:role/one", "one", &["devs"]),
    )
    .await;
    w.wait_reason("one", "Applied").await;
    let writes = op.metric("aws_auth_operator_writes_total").unwrap();

    let stolen = serde_json::json!({ "spec": {
        "holderIdentity": "intruder",
        "renewTime": MicroTime(Timestamp::now()),
        "leaseDurationSeconds": LEASE_SECS,
    }});
    leases
        .patch(lease, &PatchParams::default(), &Patch::Merge(&stolen))
        .await
        .unwrap();
    eventually("leader steps down", Duration::from_secs(2), || async {
        (op.metric("aws_auth_operator_leader")? == 0.0).then_some(())
    })
    .await;
    w.create(
        "two",
        role("arn:aws:iam::111122223333:role/two", "two", &["devs"]),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.read().await.unwrap().auth_map().roles.len(), 1);
    assert_eq!(op.metric("aws_auth_operator_writes_total"), Some(writes));

    // The intruder never renews: the replica takes the Lease back and catches up.
    w.wait_reason("two", "Applied").await;
    assert_eq!(holder(&leases, lease).await.as_deref(), Some("replica-a"));
}
