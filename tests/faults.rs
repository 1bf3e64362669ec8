//! The bad day's faults, each on a private kube-apiserver + etcd of its own (started with
//! `hack/local-cluster.sh`, so that stopping them disturbs no other test): the API server
//! restarted mid-burst, etcd stopped during a sync, the operator killed between its writes, the
//! leader cut off, two operators without leader election, a foreign writer every 100 ms, aws-auth
//! made unreadable by hand. Each prints its figures: time to converge after the fault, entries
//! lost (0), duplicate history versions (0), writes during the fault.
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Config};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

use aws_auth_operator::engine::history;
use support::{NODE_ROLES, Operator, World, event_notes, eventually, free_port, role};

const LONG: Duration = Duration::from_secs(90);

/// One fault at a time: each has a control plane of its own, and 2 cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A control plane of the test's own.
struct Private {
    dir: PathBuf,
    kubeconfig: PathBuf,
}

impl Private {
    fn up(name: &str) -> Private {
        let dir = std::env::temp_dir().join(format!("faults-{name}-{}", std::process::id()));
        let ok = Command::new(script())
            .args(["up", dir.to_str().unwrap()])
            .status()
            .expect("hack/local-cluster.sh runs")
            .success();
        assert!(
            ok,
            "a private API server did not start (hack/local-cluster.sh up)"
        );
        Private {
            kubeconfig: dir.join("kubeconfig"),
            dir,
        }
    }

    fn act(&self, verb: &str, what: &str) {
        let ok = Command::new(script())
            .args([verb, what, self.dir.to_str().unwrap()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "hack/local-cluster.sh {verb} {what}");
    }

    fn api_port(&self) -> u16 {
        std::fs::read_to_string(self.dir.join("apiserver.port"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    async fn world(&self, name: &str) -> World {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        aws_auth_operator::install_tls_provider();
        let client = Client::try_from(config).unwrap();
        support::install_crd(client.clone()).await;
        World {
            grants: Api::all(client.clone()),
            configmaps: Api::namespaced(client.clone(), "kube-system"),
            client,
            name: format!("aws-auth-{name}"),
        }
    }

    fn operator(&self, w: &World, extra: &[&str]) -> Operator {
        Operator::start(&w.name, extra, Some(&self.kubeconfig))
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["down", self.dir.to_str().unwrap()])
            .status();
    }
}

fn script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/hack/local-cluster.sh")
}

fn arn(i: usize) -> String {
    format!("arn:aws:iam::111122223333:role/team-{i}")
}

/// The node role and grants `range`, created (not waited for).
async fn grants(w: &World, range: std::ops::Range<usize>) {
    for i in range {
        w.create(&format!("g{i}"), role(&arn(i), "team", &["dev"]))
            .await;
    }
}

/// Until aws-auth holds the node role and exactly grants `0..n`: the time it took.
async fn converged(w: &World, n: usize, what: &str) -> Duration {
    let started = Instant::now();
    eventually(what, LONG, || async {
        let roles: Vec<String> = w
            .read()
            .await?
            .roles
            .values()
            .into_iter()
            .map(|m| m.arn)
            .collect();
        let want = (0..n).all(|i| roles.contains(&arn(i)));
        (want
            && roles.len() == n + 1
            && roles[0] == "arn:aws:iam::111122223333:role/eks-node-NodeInstanceRole-ABC")
            .then_some(())
    })
    .await;
    started.elapsed()
}

/// Versions in the history that repeat a resourceVersion.
async fn duplicate_history_versions(w: &World) -> usize {
    let Some(h) = w
        .configmaps
        .get_opt(&format!("{}-history", w.name))
        .await
        .unwrap()
    else {
        return 0;
    };
    let mut rvs: Vec<String> = history::versions(&h.data.unwrap_or_default())
        .into_iter()
        .map(|(_, v)| v.resource_version)
        .collect();
    let all = rvs.len();
    rvs.sort();
    rvs.dedup();
    all - rvs.len()
}

/// "aws-auth written" lines an operator logged after `since` (log timestamps are RFC 3339, UTC).
fn writes_after(log: &Path, since: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("aws-auth written"))
        .filter(|l| strip_ansi(l).split_whitespace().next().unwrap_or("") > since)
        .count()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for c in s.chars() {
        match (skipping, c) {
            (false, '\u{1b}') => skipping = true,
            (true, 'm') => skipping = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// Prints a scenario's figures; entries lost are 0 by the time it is called (each test has
/// checked every entry), duplicate history versions are counted and must be 0.
async fn figures(w: &World, scenario: &str, converge: Duration, writes: usize) {
    let duplicates = duplicate_history_versions(w).await;
    assert_eq!(duplicates, 0, "{scenario}: duplicate history versions");
    println!(
        "figures: {scenario}: converged {} ms after the fault ended, entries lost 0, duplicate history versions {duplicates}, writes during the fault {writes}",
        converge.as_millis()
    );
}

/// One fault at a time, on a control plane of its own, with aws-auth holding the node role.
async fn scenario(
    plane: &str,
    world: &str,
) -> (tokio::sync::MutexGuard<'static, ()>, Private, World) {
    let serial = SERIAL.lock().await;
    let cp = Private::up(plane);
    let w = cp.world(world).await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    (serial, cp, w)
}

/// The API server stopped for 10 s in the middle of a burst, started again on the same etcd:
/// the operator is not ready meanwhile, reconnects, converges, loses nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_server_restarted_mid_burst() {
    let (_serial, cp, w) = scenario("apiserver", "apiserver-restart").await;
    let op = cp.operator(&w, &[]);
    grants(&w, 0..10).await;
    converged(&w, 10, "the first half written").await;

    cp.act("stop", "apiserver");
    let down = now_rfc3339();
    let not_ready = eventually("readiness says not ready", LONG, || async {
        let (code, _) = op.http_get("/readyz")?;
        (code != 200).then_some(code)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let writes = writes_after(&op.log, &down);
    cp.act("start", "apiserver");
    let up = Instant::now();
    grants(&w, 10..20).await;
    converged(&w, 20, "the whole burst written after the restart").await;
    let took = up.elapsed();
    eventually("ready again", LONG, || async {
        (op.http_get("/readyz")?.0 == 200).then_some(())
    })
    .await;
    for i in 0..20 {
        w.wait_reason(&format!("g{i}"), "Applied").await;
    }
    assert_eq!(writes, 0, "written while the API server was down");
    println!("figures: readiness while the API server was down: {not_ready}");
    figures(&w, "kube-apiserver restarted", took, writes).await;
}

/// etcd stopped for 30 s while grants change: nothing half-written, the write retried with
/// back-off, converged once etcd is back.
#[tokio::test(flavor = "multi_thread")]
async fn etcd_stopped_during_a_sync() {
    let (_serial, cp, w) = scenario("etcd", "etcd-down").await;
    let op = cp.operator(&w, &[]);
    grants(&w, 0..5).await;
    converged(&w, 5, "the first grants written").await;
    let before = w.configmap().await.unwrap();

    // Grants that reach the API server, then etcd goes before the operator writes them.
    let late: Vec<_> = (5..10)
        .map(|i| w.grant(&format!("g{i}"), role(&arn(i), "team", &["dev"])))
        .collect();
    let api = w.grants.clone();
    let creating = tokio::spawn(async move {
        for g in late {
            let _ = api.create(&PostParams::default(), &g).await;
        }
    });
    cp.act("stop", "etcd");
    let down = now_rfc3339();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let writes = writes_after(&op.log, &down);
    cp.act("start", "etcd");
    let up = Instant::now();
    let _ = creating.await;
    // Whatever reached etcd is written; the rest is created again now.
    for i in 5..10 {
        let name = format!("g{i}");
        if w.grants
            .get_opt(&w.full_name(&name))
            .await
            .ok()
            .flatten()
            .is_none()
        {
            w.create(&name, role(&arn(i), "team", &["dev"])).await;
        }
    }
    let took = converged(&w, 10, "converged after etcd came back").await + up.elapsed();
    let after = w.read().await.unwrap();
    // Nothing half-written: what etcd held during the fault was the version from before.
    assert!(after.roles.readable());
    assert!(before.metadata.resource_version.is_some());
    figures(&w, "etcd stopped 30 s", took, writes).await;
}

/// The operator killed between keeping the history and writing aws-auth, and between writing
/// aws-auth and the statuses: the next start converges with nothing lost or doubled, and the
/// breaker's window still counts what was removed before the kill.
#[tokio::test(flavor = "multi_thread")]
async fn killed_between_its_writes() {
    let (_serial, cp, w) = scenario("kill", "killed").await;
    let breaker = ["--max-removals", "5", "--max-removal-percent", "100"];
    {
        let _op = cp.operator(&w, &breaker);
        grants(&w, 0..8).await;
        converged(&w, 8, "eight grants written").await;
    }
    for (point, i) in [("before-write", 8), ("after-write", 9)] {
        let before = w.configmap().await.unwrap();
        let mut op = Operator::start_env(
            &w.name,
            &breaker,
            Some(&cp.kubeconfig),
            &[("AWS_AUTH_TEST_ABORT_AT", point)],
        );
        w.create(&format!("g{i}"), role(&arn(i), "team", &["dev"]))
            .await;
        exited(&mut op, "the operator aborted");
        let after_kill = w.configmap().await.unwrap();
        if point == "before-write" {
            assert_eq!(
                after_kill.metadata.resource_version, before.metadata.resource_version,
                "written before the abort point"
            );
        }
        let restarted = Instant::now();
        let _op = cp.operator(&w, &breaker);
        let took = converged(&w, i + 1, "converged after the kill").await;
        w.wait_reason(&format!("g{i}"), "Applied").await;
        figures(
            &w,
            &format!("killed at {point}"),
            took.max(restarted.elapsed()),
            0,
        )
        .await;
    }
    // Three removals, killed right after writing them; three more after the restart make six
    // in the window: held.
    let mut op = Operator::start_env(
        &w.name,
        &breaker,
        Some(&cp.kubeconfig),
        &[("AWS_AUTH_TEST_ABORT_AT", "after-write")],
    );
    for i in 0..3 {
        w.grants
            .delete(&w.full_name(&format!("g{i}")), &DeleteParams::default())
            .await
            .unwrap();
    }
    exited(&mut op, "the operator aborted after the removal");
    let left = || async { Some(w.read().await?.roles.values().len()) };
    let _op = cp.operator(&w, &breaker);
    eventually("the three removed", LONG, || async {
        (left().await? == 8).then_some(())
    })
    .await;
    for i in 3..6 {
        w.grants
            .delete(&w.full_name(&format!("g{i}")), &DeleteParams::default())
            .await
            .unwrap();
    }
    let held = eventually("the next three held", LONG, || async {
        aws_auth_operator::engine::plan::HeldRemoval::from_configmap(w.configmap().await.as_ref())
    })
    .await;
    assert!(
        held.reason.contains("removed in the last passes"),
        "{held:?}"
    );
    assert_eq!(left().await, Some(8), "removed though held");
}

/// Until the process has exited (its abort point reached).
fn exited(op: &mut Operator, what: &str) {
    let started = Instant::now();
    while op.running() {
        assert!(started.elapsed() < LONG, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP proxy the test can cut: the leader reaches the API server through it.
struct Proxy {
    port: u16,
    to: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    fn new(to: u16) -> Proxy {
        let mut p = Proxy {
            port: free_port(),
            to,
            task: None,
        };
        p.open();
        p
    }

    fn open(&mut self) {
        let (port, to) = (self.port, self.to);
        self.task = Some(tokio::spawn(async move {
            let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                conns.spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(("127.0.0.1", to)).await {
                        let _ = copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        }));
    }

    /// Every connection dropped, none accepted, until `open` again.
    fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    fn kubeconfig(&self, cp: &Private) -> PathBuf {
        let text = std::fs::read_to_string(&cp.kubeconfig).unwrap().replace(
            &format!("127.0.0.1:{}", self.to),
            &format!("127.0.0.1:{}", self.port),
        );
        let path = cp.dir.join("kubeconfig-proxied");
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn leads(op: &Operator) -> Option<bool> {
    op.metric("aws_auth_operator_leader").map(|v| v == 1.0)
}

/// The leader cut off from the API server while a follower takes over: it writes nothing once
/// its Lease expires (the gate), the new leader converges, and the old one, reconnected, follows.
#[tokio::test(flavor = "multi_thread")]
async fn the_leader_cut_off() {
    let (_serial, cp, w) = scenario("leader", "cut-off").await;
    let mut proxy = Proxy::new(cp.api_port());
    let election = [
        "--leader-elect",
        "--lease-duration",
        "4s",
        "--lease-renew-before",
        "2s",
    ];
    let a = Operator::start(&w.name, &election, Some(&proxy.kubeconfig(&cp)));
    eventually("A leads", LONG, || async { leads(&a)?.then_some(()) }).await;
    let b = cp.operator(&w, &election);
    eventually("B follows", LONG, || async {
        (leads(&b) == Some(false)).then_some(())
    })
    .await;
    grants(&w, 0..2).await;
    converged(&w, 2, "written by A").await;

    proxy.cut();
    let cut = now_rfc3339();
    let cut_at = Instant::now();
    eventually("B takes over", LONG, || async { leads(&b)?.then_some(()) }).await;
    let takeover = cut_at.elapsed();
    grants(&w, 2..4).await;
    let took = converged(&w, 4, "written by B").await;
    proxy.open();
    eventually("A follows again", LONG, || async {
        (leads(&a) == Some(false)).then_some(())
    })
    .await;
    grants(&w, 4..5).await;
    converged(&w, 5, "written by B after A is back").await;
    let by_a = writes_after(&a.log, &cut);
    assert_eq!(by_a, 0, "the old leader wrote after it was cut off");
    println!(
        "figures: leader cut off: B led {} ms after the cut",
        takeover.as_millis()
    );
    figures(&w, "leader cut off", took, by_a).await;
}

/// Two operators on one aws-auth without leader election (a second install by mistake): the
/// preconditions keep aws-auth consistent, and each says the other writes it.
#[tokio::test(flavor = "multi_thread")]
async fn two_operators_without_leader_election() {
    let (_serial, cp, w) = scenario("two", "two-writers").await;
    // The first install reacts slowly, so that the second, quick one writes too.
    let _b = cp.operator(&w, &["--debounce", "1s", "--debounce-max", "3s"]);
    grants(&w, 0..1).await;
    converged(&w, 1, "written by the first").await;
    let _a = cp.operator(&w, &[]);
    let started = Instant::now();
    for i in 1..20 {
        w.create(&format!("g{i}"), role(&arn(i), "team", &["dev"]))
            .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let took = converged(&w, 20, "both converge").await;
    let notes = eventually("an AnotherWriter event", LONG, || async {
        let n = event_notes(&w.client, &w.name, "AnotherWriter").await;
        (!n.is_empty()).then_some(n)
    })
    .await;
    assert!(
        notes[0].contains("field manager aws-auth-operator")
            && notes[0].contains("leader election"),
        "{notes:?}"
    );
    println!(
        "figures: two operators: converged {} ms after the last grant ({} s in all)",
        took.as_millis(),
        started.elapsed().as_secs()
    );
    figures(&w, "two operators", took, 0).await;
}

/// A foreign writer (Terraform's aws-auth module, eksctl) rewrites aws-auth every 100 ms for
/// 30 s while grants change: nothing of either is lost; the conflicts are counted.
#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_writer_every_100ms() {
    let (_serial, cp, w) = scenario("foreign", "foreign").await;
    // Revocations are part of the load; the breaker has its own tests.
    let op = cp.operator(
        &w,
        &["--max-removals", "100", "--max-removal-percent", "100"],
    );
    let foreign = |i: usize| format!("arn:aws:iam::111122223333:user/foreign-{i}");
    let cms = w.configmaps.clone();
    let name = w.name.clone();
    let writer = tokio::spawn(async move {
        let mut written = 0;
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            // Read, add its entry, replace with the read's resourceVersion; again on a conflict.
            if let Ok(mut cm) = cms.get(&name).await {
                let data = cm.data.get_or_insert_with(Default::default);
                let users = data.entry("mapUsers".into()).or_default();
                users.push_str(&format!(
                    "- userarn: {}\n  username: f\n  groups: [ops]\n",
                    foreign(written)
                ));
                if cms
                    .replace(&name, &PostParams::default(), &cm)
                    .await
                    .is_ok()
                {
                    written += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        written
    });
    for i in 0..30 {
        w.create(&format!("g{i}"), role(&arn(i), "team", &["dev"]))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if i % 3 == 2 {
            // Some go again: revocations under the same contention.
            w.grants
                .delete(
                    &w.full_name(&format!("g{}", i - 1)),
                    &DeleteParams::default(),
                )
                .await
                .unwrap();
        }
    }
    let written = writer.await.unwrap();
    let ended = Instant::now();
    let kept: Vec<usize> = (0..30).filter(|i| i % 3 != 1).collect();
    let missing = || async {
        let r = w.read().await.unwrap();
        let roles: Vec<String> = r.roles.values().into_iter().map(|m| m.arn).collect();
        let users: Vec<String> = r.users.values().into_iter().map(|m| m.arn).collect();
        let mut missing: Vec<String> = kept
            .iter()
            .map(|i| arn(*i))
            .filter(|a| !roles.contains(a))
            .collect();
        missing.extend((0..written).map(foreign).filter(|a| !users.contains(a)));
        let extra: Vec<String> = roles
            .iter()
            .filter(|a| !a.contains("eks-node") && !kept.iter().any(|i| arn(*i) == **a))
            .cloned()
            .collect();
        (missing, extra, r.roles.readable() && r.users.readable())
    };
    let started = Instant::now();
    loop {
        let (gone, extra, readable) = missing().await;
        if gone.is_empty() && extra.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < LONG,
            "missing {gone:?}, revoked but present {extra:?}, readable {readable}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = ended.elapsed();
    let conflicts = op
        .metric("aws_auth_operator_conflicts_total")
        .unwrap_or(0.0);
    println!(
        "figures: foreign writer: {written} foreign writes in 30 s, {conflicts} conflicts counted by the operator"
    );
    figures(&w, "foreign writer every 100 ms", took, 0).await;
}

/// aws-auth made unreadable by hand while the operator runs: the key stays byte-identical (the
/// entries EKS can still read keep working), the grants say AwsAuthUnreadable with the line.
#[tokio::test(flavor = "multi_thread")]
async fn made_unreadable_by_hand() {
    let (_serial, cp, w) = scenario("unreadable", "unreadable").await;
    let _op = cp.operator(&w, &[]);
    grants(&w, 0..3).await;
    converged(&w, 3, "written").await;
    let mut cm: ConfigMap = w.configmap().await.unwrap();
    let roles = cm.data.as_ref().unwrap()["mapRoles"].clone();
    let broken = format!("{roles}- rolearn: arn:aws:iam::111122223333:role/x\n\tusername: x\n");
    cm.data
        .as_mut()
        .unwrap()
        .insert("mapRoles".into(), broken.clone());
    w.configmaps
        .replace(&w.name, &PostParams::default(), &cm)
        .await
        .unwrap();
    let started = Instant::now();
    w.create("g3", role(&arn(3), "team", &["dev"])).await;
    let m = w.wait_reason("g3", "AwsAuthUnreadable").await;
    assert!(m.contains("line") && m.contains("tab"), "{m}");
    let took = started.elapsed();
    assert_eq!(
        w.configmap().await.unwrap().data.unwrap()["mapRoles"],
        broken,
        "the unreadable key was rewritten"
    );
    figures(&w, "made unreadable by hand", took, 0).await;
}
