//! Helpers for tests against the real kube-apiserver that `hack/local-cluster.sh` starts.
#![allow(dead_code)]

pub mod eks;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use tokio::sync::OnceCell;

use aws_auth_operator::api::{IamAccessGrant, IamAccessGrantSpec};
use aws_auth_operator::engine::authmap::read::{AwsAuthRead, read_data};

pub const TEST_LABEL: &str = "aws-auth.dev/test";
pub const NODE_ROLES: &str = "- groups:\n  - system:bootstrappers\n  - system:nodes\n  rolearn: arn:aws:iam::111122223333:role/eks-node-NodeInstanceRole-ABC\n  username: system:node:{{EC2PrivateDNSName}}\n";

static CRD: OnceCell<()> = OnceCell::const_new();

/// A client for the test server. Fails loudly when the suite runs without one: these tests are
/// part of the README's test command (`hack/test.sh`), which starts the server.
pub async fn client() -> Client {
    if std::env::var("AWS_AUTH_TEST_CLUSTER").as_deref() != Ok("1") {
        panic!(
            "no test API server: run the suite with `hack/test.sh`, which starts a local kube-apiserver \
             and sets KUBECONFIG and AWS_AUTH_TEST_CLUSTER=1 (or run `hack/local-cluster.sh up` and \
             `eval \"$(hack/local-cluster.sh env)\"` first)"
        );
    }
    aws_auth_operator::install_tls_provider();
    let client = Client::try_default()
        .await
        .expect("KUBECONFIG points at the test server");
    CRD.get_or_init(|| install_crd(client.clone())).await;
    client
}

pub async fn install_crd(client: Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    // Applied, not only created: a server kept from an earlier run gets this build's CRD.
    crds.patch(
        "iamaccessgrants.aws-auth.dev",
        &PatchParams::apply("aws-auth-operator-tests").force(),
        &Patch::Apply(IamAccessGrant::crd()),
    )
    .await
    .unwrap_or_else(|e| panic!("installing the CRD: {e}"));
    eventually("CRD established", Duration::from_secs(30), || async {
        let crd = crds.get("iamaccessgrants.aws-auth.dev").await.ok()?;
        crd.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;
}

/// Held by a test that lifts the CRD's CEL rules ([`create_past_the_rules`]) and by one that
/// relies on them refusing a grant: within a test binary the two never overlap.
pub static CRD_RULES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Creates `grant` as a CRD without the CEL rules admitted it (a grant from before an upgrade, or
/// from a server without CEL): the operator must still refuse it. Lifts the rules, creates the
/// grant, and puts them back before it returns.
pub async fn create_past_the_rules(client: &Client, grant: &IamAccessGrant) {
    let _rules = CRD_RULES.lock().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let grants: Api<IamAccessGrant> = Api::all(client.clone());
    let name = "iamaccessgrants.aws-auth.dev";
    let set_rules = |lifted: bool| {
        let crds = crds.clone();
        async move {
            let mut crd = crds.get(name).await.expect("the CRD");
            let mut wanted = serde_json::to_value(IamAccessGrant::crd().spec).unwrap();
            if lifted {
                lift(&mut wanted["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]);
            }
            crd.spec = serde_json::from_value(wanted).unwrap();
            crds.replace(name, &PostParams::default(), &crd)
                .await
                .expect("replacing the CRD");
        }
    };
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    set_rules(true).await;
    eventually(
        "the CRD without its rules served",
        Duration::from_secs(30),
        || async { grants.create(&dry_run, grant).await.ok().map(|_| ()) },
    )
    .await;
    grants
        .create(&PostParams::default(), grant)
        .await
        .expect("creating the grant past the rules");
    set_rules(false).await;
    eventually(
        "the CRD with its rules served",
        Duration::from_secs(30),
        || async {
            let mut probe = grant.clone();
            probe.metadata.name =
                Some(format!("{}-probe", grant.metadata.name.as_deref().unwrap()));
            grants.create(&dry_run, &probe).await.is_err().then_some(())
        },
    )
    .await;
}

/// Removes every CEL rule from a schema.
fn lift(schema: &mut serde_json::Value) {
    if let Some(o) = schema.as_object_mut() {
        o.remove("x-kubernetes-validations");
        o.values_mut().for_each(lift);
    }
}

/// Polls `f` until it returns `Some`, or panics naming what never happened.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One test's world: its own aws-auth ConfigMap name and its own grant label.
pub struct World {
    pub client: Client,
    pub name: String,
    pub grants: Api<IamAccessGrant>,
    pub configmaps: Api<ConfigMap>,
}

impl World {
    pub async fn new(name: &str) -> World {
        let client = client().await;
        let w = World {
            grants: Api::all(client.clone()),
            configmaps: Api::namespaced(client.clone(), "kube-system"),
            client,
            name: format!("aws-auth-{name}"),
        };
        // Leftovers of an earlier run of the same test.
        let lp = ListParams::default().labels(&format!("{TEST_LABEL}={}", w.name));
        let _ = w
            .grants
            .delete_collection(&DeleteParams::default(), &lp)
            .await;
        // A finalizer a test put on aws-auth (and did not live to remove) would keep it.
        let unfinalize = serde_json::json!({"metadata": {"finalizers": null}});
        let _ = (w.configmaps)
            .patch(&w.name, &PatchParams::default(), &Patch::Merge(&unfinalize))
            .await;
        let _ = w.configmaps.delete(&w.name, &DeleteParams::default()).await;
        // And its history, so that a test run twice on one API server starts from nothing.
        for suffix in ["history", "access-entries"] {
            let _ = w
                .configmaps
                .delete(&format!("{}-{suffix}", w.name), &DeleteParams::default())
                .await;
        }
        eventually("leftovers gone", Duration::from_secs(30), || async {
            let left = w.grants.list(&lp).await.ok()?.items.len();
            let cm = w.configmaps.get_opt(&w.name).await.ok()?;
            (left == 0 && cm.is_none()).then_some(())
        })
        .await;
        w
    }

    pub fn operator(&self, extra: &[&str]) -> Operator {
        Operator::start(&self.name, extra, None)
    }

    /// The operator acting as `user` (impersonated), to test what missing permissions do.
    pub fn operator_as(&self, user: &str, extra: &[&str]) -> Operator {
        let kubeconfig = impersonating_kubeconfig(user);
        Operator::start(&self.name, extra, Some(&kubeconfig))
    }

    pub fn grant(&self, name: &str, spec: IamAccessGrantSpec) -> IamAccessGrant {
        let mut g = IamAccessGrant::new(&format!("{}-{name}", self.name), spec);
        g.metadata.labels = Some(BTreeMap::from([(
            TEST_LABEL.to_string(),
            self.name.clone(),
        )]));
        g
    }

    pub async fn create(&self, name: &str, spec: IamAccessGrantSpec) -> IamAccessGrant {
        self.grants
            .create(&PostParams::default(), &self.grant(name, spec))
            .await
            .unwrap_or_else(|e| panic!("creating grant {name}: {e}"))
    }

    pub fn full_name(&self, name: &str) -> String {
        format!("{}-{name}", self.name)
    }

    pub async fn create_configmap(&self, data: &[(&str, &str)]) -> ConfigMap {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        };
        self.configmaps
            .create(&PostParams::default(), &cm)
            .await
            .expect("create aws-auth")
    }

    pub async fn configmap(&self) -> Option<ConfigMap> {
        self.configmaps
            .get_opt(&self.name)
            .await
            .expect("get aws-auth")
    }

    pub async fn read(&self) -> Option<AwsAuthRead> {
        self.configmap()
            .await
            .map(|cm| read_data(&cm.data.unwrap_or_default()))
    }

    /// The grant's Ready reason once its status describes its current generation.
    pub async fn reason(&self, name: &str) -> Option<(String, String)> {
        let g = self.grants.get_opt(&self.full_name(name)).await.ok()??;
        let status = g.status?;
        if status.observed_generation != g.metadata.generation {
            return None;
        }
        let c = status.conditions.into_iter().find(|c| c.type_ == "Ready")?;
        Some((c.reason, c.message))
    }

    pub async fn wait_reason(&self, name: &str, reason: &str) -> String {
        eventually(
            &format!("grant {name} reports {reason}"),
            Duration::from_secs(60),
            || async {
                let (r, m) = self.reason(name).await?;
                (r == reason).then_some(m)
            },
        )
        .await
    }

    /// The operator's verdict on a grant made past the CRD's rules ([`create_past_the_rules`]):
    /// in its status where the API server takes one (1.33+), else in its Event (before 1.33 the
    /// server checks the stale spec on a status write and refuses it).
    pub async fn wait_verdict(&self, name: &str, reason: &str) -> String {
        let grants: Api<IamAccessGrant> = Api::all(self.client.clone());
        let full = self.full_name(name);
        eventually(
            &format!("grant {name} reports {reason} (status or event)"),
            Duration::from_secs(60),
            || async {
                if let Some((r, m)) = self.reason(name).await
                    && r == reason
                {
                    return Some(m);
                }
                let uid = grants.get(&full).await.ok()?.metadata.uid?;
                grant_event_notes(&self.client, &uid, reason).await.pop()
            },
        )
        .await
    }
}

pub fn role(arn: &str, username: &str, groups: &[&str]) -> IamAccessGrantSpec {
    IamAccessGrantSpec::arn(arn, username, groups)
}

/// The operator binary as a child process, killed with SIGKILL when dropped.
pub struct Operator {
    child: Child,
    pub log: PathBuf,
    pub port: u16,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Operator {
    pub fn start(
        configmap: &str,
        extra: &[&str],
        kubeconfig: Option<&std::path::Path>,
    ) -> Operator {
        Self::start_env(configmap, extra, kubeconfig, &[])
    }

    /// [`Operator::start`] with more environment (the fault tests' abort points).
    pub fn start_env(
        configmap: &str,
        extra: &[&str],
        kubeconfig: Option<&std::path::Path>,
        env: &[(&str, &str)],
    ) -> Operator {
        // One log per process: several operators of one test (replicas) must not share a file.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = std::env::temp_dir().join(format!("{configmap}-{}-{n}.log", std::process::id()));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let port = free_port();
        // AWS_AUTH_TEST_WRAP runs the operator under a profiler, e.g. `heaptrack -o /tmp/op`.
        let wrap = std::env::var("AWS_AUTH_TEST_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut cmd = match words.next() {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.args(words).arg(env!("CARGO_BIN_EXE_aws-auth-operator"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_aws-auth-operator")),
        };
        if let Some(k) = kubeconfig {
            cmd.env("KUBECONFIG", k);
        }
        let child = cmd
            .args(["run", "--aws-auth-name", configmap, "--grant-selector"])
            .arg(format!("{TEST_LABEL}={configmap}"))
            // Short debounce keeps tests quick; a caller that sets its own (the benchmark) wins.
            .args(if extra.contains(&"--debounce") {
                &[][..]
            } else {
                &["--debounce", "50ms", "--debounce-max", "500ms"][..]
            })
            .args(["--health-addr", &format!("127.0.0.1:{port}")])
            .args(extra)
            // Tests grant system:masters freely unless they test the policy (a flag overrides it).
            .env("AWS_AUTH_PRIVILEGED_PRINCIPAL", "*")
            .env("RUST_LOG", "info,kube_client::client::tls=error")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("operator starts");
        Operator { child, log, port }
    }

    /// GET on the health port: (status code, body).
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running (not exited)?
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as Kubernetes stops a pod; waits for the exit and returns its code.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().ok()?.code()
    }

    /// A metric's value as `/metrics` shows it (the first sample whose line starts with `series`).
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.http_get("/metrics")?;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// GET on a loopback port: (status code, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, out.split_once("\r\n\r\n")?.1.to_string()))
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A client that acts as `user` in `groups` (admin token + impersonation), as a person would.
pub async fn client_as(user: &str, groups: &[&str]) -> Client {
    let path = impersonating_kubeconfig_in(user, groups);
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// A kubeconfig for the test server that acts as `user` (admin token + impersonation).
pub fn impersonating_kubeconfig(user: &str) -> PathBuf {
    impersonating_kubeconfig_in(user, &[])
}

/// The same, with impersonated groups.
pub fn impersonating_kubeconfig_in(user: &str, groups: &[&str]) -> PathBuf {
    let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG");
    let mut cfg: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig).unwrap()).unwrap();
    cfg["users"][0]["user"]["as"] = serde_yaml::Value::String(user.to_string());
    if !groups.is_empty() {
        cfg["users"][0]["user"]["as-groups"] = groups
            .iter()
            .map(|g| serde_yaml::Value::String(g.to_string()))
            .collect();
    }
    let safe: String = user
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let path = std::env::temp_dir().join(format!(
        "kubeconfig-as-{safe}-{}-{}",
        groups.join("-"),
        std::process::id()
    ));
    std::fs::write(&path, serde_yaml::to_string(&cfg).unwrap()).unwrap();
    path
}

/// The operator binary run as a command (`history`, `restore`, `confirm-removal`): exit code,
/// stdout, stderr.
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_aws-auth-operator"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Notes of the events with `reason` recorded in kube-system about one object, by name.
pub async fn event_notes(client: &Client, object: &str, reason: &str) -> Vec<String> {
    events_about(client, reason, |r| r.name.as_deref() == Some(object)).await
}

/// Notes of the events with `reason` about the grant with this uid, in any namespace.
pub async fn grant_event_notes(client: &Client, uid: &str, reason: &str) -> Vec<String> {
    events_in(Api::all(client.clone()), reason, |r| {
        r.uid.as_deref() == Some(uid)
    })
    .await
}

/// Notes of the events with `reason` recorded in kube-system about the object with this uid (an
/// earlier run's object of the same name does not count).
pub async fn event_notes_by_uid(client: &Client, uid: &str, reason: &str) -> Vec<String> {
    events_about(client, reason, |r| r.uid.as_deref() == Some(uid)).await
}

async fn events_about(
    client: &Client,
    reason: &str,
    regarding: impl Fn(&k8s_openapi::api::core::v1::ObjectReference) -> bool,
) -> Vec<String> {
    events_in(
        Api::namespaced(client.clone(), "kube-system"),
        reason,
        regarding,
    )
    .await
}

async fn events_in(
    events: Api<k8s_openapi::api::events::v1::Event>,
    reason: &str,
    regarding: impl Fn(&k8s_openapi::api::core::v1::ObjectReference) -> bool,
) -> Vec<String> {
    events
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(&regarding) && e.reason.as_deref() == Some(reason)
        })
        .filter_map(|e| e.note)
        .collect()
}

/// RBAC on `iamaccessgrants` only (and their status), bound to `user`: a tenant.
pub async fn grant_only_rbac(client: &Client, user: &str) {
    let pp = PatchParams::apply("aws-auth-operator-tests").force();
    let name = "aws-auth-operator-test-tenant";
    let cr = ClusterRole {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["aws-auth.dev".into()]),
            // The status too: the strongest tenant, whose status patches must not count.
            resources: Some(vec![
                "iamaccessgrants".into(),
                "iamaccessgrants/status".into(),
            ]),
            verbs: [
                "get",
                "list",
                "watch",
                "create",
                "update",
                "patch",
                "delete",
                "deletecollection",
            ]
            .iter()
            .map(|v| v.to_string())
            .collect(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    Api::<ClusterRole>::all(client.clone())
        .patch(name, &pp, &Patch::Apply(&cr))
        .await
        .unwrap();
    let binding = format!("{name}-{user}");
    let crb = ClusterRoleBinding {
        metadata: kube::api::ObjectMeta {
            name: Some(binding.clone()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: user.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Default::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(&binding, &pp, &Patch::Apply(&crb))
        .await
        .unwrap();
}
