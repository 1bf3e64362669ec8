//! The Helm chart through the real Helm engine (helm-python-sdk): lint, render, and an install into
//! the test kube-apiserver whose RBAC is then proven sufficient by running the operator as the
//! chart's ServiceAccount.
mod support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use support::{World, eventually, role};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/aws-auth-operator");

/// The test virtualenv's python; fails loudly without one.
fn python() -> String {
    std::env::var("AWS_AUTH_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("no Helm engine: run the suite with `hack/test.sh`, which sets AWS_AUTH_TEST_PYTHON to a python with helm-python-sdk (hack/python-env.sh)")
    })
}

/// Runs Python with helm-python-sdk and returns what the script printed as JSON.
fn helm(script: &str, args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "helm script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Installs the chart into the test API server with the real Helm engine.
fn helm_install(kubeconfig: &str, namespace: &str, release: &str, values: &Value) {
    let script = r#"
import helm_python as helm, json, sys
cfg = helm.Config(kubeconfig_path=sys.argv[1], namespace=sys.argv[3])
cfg.install(sys.argv[2], sys.argv[4], json.loads(sys.argv[5]), namespace=sys.argv[3], create_namespace=True)
print(json.dumps("installed"))
"#;
    helm(
        script,
        &[kubeconfig, CHART, namespace, release, &values.to_string()],
    );
}

fn render(values: Value) -> Vec<Value> {
    let script = r#"
import helm_python as helm, json, sys
with helm.Chart.load(sys.argv[1]) as c:
    m = c.render(json.loads(sys.argv[2]), name="rel", namespace="aws-auth-system")
print(json.dumps(m))
"#;
    let files = helm(script, &[CHART, &values.to_string()]);
    let mut docs = Vec::new();
    for (path, text) in files.as_object().unwrap() {
        if !path.ends_with(".yaml") {
            continue;
        }
        for d in serde_yaml::Deserializer::from_str(text.as_str().unwrap()) {
            let v: Value = serde::Deserialize::deserialize(d).unwrap();
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    docs
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

/// The Role on aws-auth's namespace (the other Role is in the release's).
fn aws_auth_role(docs: &[Value]) -> &Value {
    docs.iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == "kube-system")
        .expect("a Role in kube-system")
}

fn env_of(deploy: &Value) -> Vec<(String, String)> {
    deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn chart_lints_clean_and_carries_the_generated_crd() {
    let lint = helm(
        "import helm_python as helm, json, sys; print(json.dumps(helm.lint(sys.argv[1], strict=True)))",
        &[CHART],
    );
    assert_eq!(lint["errors"], json!([]), "{lint}");
    let severe: Vec<&Value> = lint["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["severity"].as_i64() > Some(1))
        .collect();
    assert!(severe.is_empty(), "{severe:?}");
    let chart_crd =
        std::fs::read_to_string(format!("{CHART}/files/iamaccessgrants.aws-auth.dev.yaml"))
            .unwrap();
    assert_eq!(
        chart_crd,
        aws_auth_operator::api::crd_yaml(),
        "chart CRD drifted: copy crds/ into charts/aws-auth-operator/files/"
    );
}

#[test]
fn chart_renders_secure_defaults_and_least_privilege() {
    let docs = render(json!({}));
    let deploy = find(&docs, "Deployment");
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["args"], json!(["run"]));

    // No wildcard anywhere; aws-auth writable only by name.
    for d in &docs {
        let text = d.to_string();
        assert!(!text.contains("\"*\""), "wildcard in {}", d["kind"]);
    }
    let r = aws_auth_role(&docs);
    assert_eq!(r["metadata"]["namespace"], "kube-system");
    let by_name = r["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resourceNames"].is_array())
        .unwrap();
    assert_eq!(by_name["resourceNames"], json!(["aws-auth"]));
    assert!(
        by_name["verbs"]
            .as_array()
            .unwrap()
            .contains(&json!("update"))
    );
    let cr = find(&docs, "ClusterRole");
    assert!(
        !cr.to_string().contains("configmaps"),
        "configmaps only through the namespaced Role"
    );

    let docs = render(json!({
        "clusterCreatorArns": ["arn:aws:iam::111122223333:role/creator", "arn:aws:iam::111122223333:user/root-ish"],
        "awsAuth": {"name": "aws-auth-shadow"},
    }));
    let env = env_of(find(&docs, "Deployment"));
    assert!(env.contains(&(
        "AWS_AUTH_CLUSTER_CREATOR_ARN".into(),
        "arn:aws:iam::111122223333:role/creator,arn:aws:iam::111122223333:user/root-ish".into()
    )));
    assert!(env.contains(&("AWS_AUTH_NAME".into(), "aws-auth-shadow".into())));
    assert_eq!(
        aws_auth_role(&docs)["rules"][0]["resourceNames"],
        json!(["aws-auth-shadow"])
    );
    assert_eq!(
        aws_auth_role(&docs)["rules"][1],
        json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["aws-auth-shadow-history"], "verbs": ["get", "patch"]})
    );

    // The lockout rails' values reach the operator.
    let docs = render(json!({
        "privilegedGroups": ["system:masters", "cluster-admins"],
        "privilegedPrincipals": ["arn:aws:iam::111122223333:role/platform-*"],
        "maxRemovals": 3,
        "maxRemovalPercent": 10,
        "removalWindow": "30m",
        "onAwsAuthDeleted": "wait",
        "history": {"name": "auth-history", "versions": 5, "bytes": 100000},
    }));
    let env = env_of(find(&docs, "Deployment"));
    for (k, v) in [
        ("AWS_AUTH_PRIVILEGED_GROUP", "system:masters,cluster-admins"),
        (
            "AWS_AUTH_PRIVILEGED_PRINCIPAL",
            "arn:aws:iam::111122223333:role/platform-*",
        ),
        ("AWS_AUTH_MAX_REMOVALS", "3"),
        ("AWS_AUTH_MAX_REMOVAL_PERCENT", "10"),
        ("AWS_AUTH_REMOVAL_WINDOW", "30m"),
        ("AWS_AUTH_ON_AWS_AUTH_DELETED", "wait"),
        ("AWS_AUTH_HISTORY_NAME", "auth-history"),
        ("AWS_AUTH_HISTORY_VERSIONS", "5"),
        ("AWS_AUTH_HISTORY_BYTES", "100000"),
    ] {
        assert!(
            env.contains(&(k.into(), v.into())),
            "{k}={v} missing: {env:?}"
        );
    }
    assert_eq!(
        aws_auth_role(&docs)["rules"][1]["resourceNames"],
        json!(["auth-history"])
    );

    // The webhook, by default: a Service, the operator registers itself under its own name only.
    let docs = render(json!({"privilegedGranters": ["group:platform"]}));
    let svc = docs
        .iter()
        .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == "rel-aws-auth-operator")
        .expect("webhook Service");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    let env = env_of(find(&docs, "Deployment"));
    for (k, v) in [
        ("AWS_AUTH_WEBHOOK_ADDR", "0.0.0.0:9443"),
        (
            "AWS_AUTH_WEBHOOK_SERVICE",
            "aws-auth-system/rel-aws-auth-operator:443",
        ),
        ("AWS_AUTH_WEBHOOK_NAME", "rel-aws-auth-operator"),
        ("AWS_AUTH_WEBHOOK_FAILURE_POLICY", "ignore"),
        (
            "AWS_AUTH_OPERATOR_USERNAME",
            "system:serviceaccount:aws-auth-system:rel-aws-auth-operator",
        ),
        ("AWS_AUTH_PRIVILEGED_GRANTER", "group:platform"),
    ] {
        assert!(
            env.contains(&(k.into(), v.into())),
            "{k}={v} missing: {env:?}"
        );
    }
    let rules = find(&docs, "ClusterRole")["rules"]
        .as_array()
        .unwrap()
        .clone();
    assert!(rules.contains(&json!({"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"], "resourceNames": ["rel-aws-auth-operator"], "verbs": ["get", "patch"]})), "{rules:?}");
    assert!(rules.contains(&json!({"apiGroups": [""], "resources": ["namespaces"], "resourceNames": ["kube-system"], "verbs": ["get"]})), "{rules:?}");
    assert!(
        !docs
            .iter()
            .any(|d| d["kind"] == "ValidatingWebhookConfiguration")
    );

    // With cert-manager: a Certificate, the configuration from the chart with the CA injected,
    // the Secret mounted, and no permission to register webhooks.
    let docs =
        render(json!({"webhook": {"certManager": {"enabled": true}, "failurePolicy": "Fail"}}));
    let cert = find(&docs, "Certificate");
    assert_eq!(
        cert["spec"]["dnsNames"][0],
        "rel-aws-auth-operator.aws-auth-system.svc"
    );
    assert_eq!(find(&docs, "Issuer")["spec"], json!({"selfSigned": {}}));
    let vwc = find(&docs, "ValidatingWebhookConfiguration");
    assert_eq!(
        vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "aws-auth-system/rel-aws-auth-operator-webhook"
    );
    assert_eq!(vwc["webhooks"][0]["failurePolicy"], "Fail");
    assert_eq!(
        vwc["webhooks"][0]["clientConfig"]["service"]["path"],
        "/validate/aws-auth"
    );
    assert_eq!(
        vwc["webhooks"][1]["clientConfig"]["service"]["path"],
        "/validate/grants"
    );
    let deploy = find(&docs, "Deployment");
    assert_eq!(
        deploy["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
        "rel-aws-auth-operator-webhook-tls"
    );
    let env = env_of(deploy);
    assert!(env.contains(&("AWS_AUTH_WEBHOOK_CERT_DIR".into(), "/webhook-tls".into())));
    assert!(!env.iter().any(|(k, _)| k == "AWS_AUTH_WEBHOOK_SERVICE"));
    assert!(
        !find(&docs, "ClusterRole")
            .to_string()
            .contains("validatingwebhookconfigurations")
    );
    let docs = render(json!({"webhook": {"enabled": false}}));
    assert!(
        !docs
            .iter()
            .any(|d| d["kind"] == "Service" && d["spec"]["ports"][0]["port"] == 443)
    );
    assert!(
        !env_of(find(&docs, "Deployment"))
            .iter()
            .any(|(k, _)| k.starts_with("AWS_AUTH_WEBHOOK"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn installed_chart_rbac_is_enough_to_run_the_operator_and_no_more() {
    let w = World::new("chart").await;
    let kubeconfig = std::env::var("KUBECONFIG").unwrap();
    let ns = "aws-auth-chart-test";
    let release = format!("chart-{}", std::process::id());
    let selector = format!("{}={}", support::TEST_LABEL, w.name);
    // The CRD is cluster-wide and the suite's (`support::client` applied it): the chart goes in
    // without it.
    // (The admission policy has a test of its own.)
    let values = json!({"awsAuth": {"name": w.name}, "grantSelector": selector, "debounce": "50ms", "debounceMax": "500ms", "crds": {"enabled": false}, "admissionPolicy": {"enabled": false}});
    helm_install(&kubeconfig, ns, &release, &values);

    // The Deployment is in the API server (no kubelet runs it here): run its configuration locally
    // as its ServiceAccount.
    let deploy: Deployment = Api::namespaced(w.client.clone(), ns)
        .get(&format!("{release}-aws-auth-operator"))
        .await
        .unwrap();
    let pod = deploy.spec.unwrap().template.spec.unwrap();
    let sa = pod.service_account_name.unwrap();
    let env: Vec<(String, String)> = pod.containers[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .filter_map(|e| Some((e.name, e.value?)))
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "AWS_AUTH_HEALTH_ADDR" | "AWS_AUTH_LOG_FORMAT" | "AWS_AUTH_WEBHOOK_ADDR"
            )
        })
        .collect();
    // The webhook registers itself as the ServiceAccount; nothing serves its Service here, and
    // its failure policy (Ignore) lets requests through.
    let webhook_addr = format!("127.0.0.1:{}", support::free_port());
    let as_sa = support::impersonating_kubeconfig(&format!("system:serviceaccount:{ns}:{sa}"));

    let port = support::free_port();
    let log = std::env::temp_dir().join(format!("chart-operator-{}.log", std::process::id()));
    let mut op = Command::new(env!("CARGO_BIN_EXE_aws-auth-operator"))
        .arg("run")
        .envs(env)
        .env("KUBECONFIG", &as_sa)
        .env("AWS_AUTH_HEALTH_ADDR", format!("127.0.0.1:{port}"))
        .env("AWS_AUTH_WEBHOOK_ADDR", &webhook_addr)
        .env("RUST_LOG", "info,kube_client::client::tls=error")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();

    w.create(
        "viewer",
        role("arn:aws:iam::111122223333:role/Viewer", "viewer", &["view"]),
    )
    .await;
    let applied =
        tokio::time::timeout(Duration::from_secs(60), w.wait_reason("viewer", "Applied")).await;
    if applied.is_err() {
        let _ = op.kill();
        let _ = op.wait();
        panic!(
            "not applied as the chart's ServiceAccount; operator log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    eventually(
        "entry written as the ServiceAccount",
        Duration::from_secs(30),
        || async { (w.read().await?.roles.values().len() == 1).then_some(()) },
    )
    .await;
    // Each write is kept in the history ConfigMap, with the chart's RBAC.
    let patch = json!({"spec": {"groups": ["view", "edit"]}});
    w.grants
        .patch(
            &w.full_name("viewer"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let groups = |v: &aws_auth_operator::engine::history::Version| {
        aws_auth_operator::engine::authmap::read::read_data(&v.data)
            .roles
            .values()
            .first()
            .map(|m| m.groups.clone())
    };
    let versions = eventually(
        "both writes in the history, written as the ServiceAccount",
        Duration::from_secs(30),
        || async {
            let h = w
                .configmaps
                .get_opt(&format!("{}-history", w.name))
                .await
                .ok()??;
            let versions =
                aws_auth_operator::engine::history::versions(&h.data.unwrap_or_default());
            (versions.len() == 2).then_some(versions)
        },
    )
    .await;
    assert_eq!(groups(&versions[0].1).unwrap(), ["view"]);
    assert_eq!(groups(&versions[1].1).unwrap(), ["view", "edit"]);
    let _ = op.kill();
    let _ = op.wait();
    applied_log_check(&log);
    let hooks: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(w.client.clone());
    let name = format!("{release}-aws-auth-operator");
    let hook = hooks
        .get(&name)
        .await
        .expect("the webhook registered as the ServiceAccount");
    assert_eq!(
        hook.webhooks.unwrap()[0]
            .client_config
            .service
            .as_ref()
            .unwrap()
            .name,
        name
    );
    hooks.delete(&name, &Default::default()).await.unwrap();

    // Least privilege: the same identity cannot read Secrets, nor write another ConfigMap.
    let kc = kube::config::Kubeconfig::read_from(&as_sa).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let sa_client = kube::Client::try_from(config).unwrap();
    match Api::<Secret>::namespaced(sa_client.clone(), "kube-system")
        .list(&Default::default())
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403),
        other => panic!("ServiceAccount can list Secrets: {other:?}"),
    }
    // Its own namespace: the Lease and the certificate Secret by name, nothing else.
    match Api::<Secret>::namespaced(sa_client.clone(), ns)
        .get("someone-elses")
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403),
        other => panic!("ServiceAccount can read other Secrets: {other:?}"),
    }
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(sa_client.clone(), ns);
    match leases.get("someone-elses").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403),
        other => panic!("ServiceAccount can read other Leases: {other:?}"),
    }
    let lease = leases.get(&name).await.expect("the operator's own Lease");
    assert!(lease.spec.unwrap().lease_duration_seconds == Some(15));
    let other: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(sa_client, "kube-system");
    match other.get("extension-apiserver-authentication").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403),
        other => panic!("ServiceAccount can read other ConfigMaps: {other:?}"),
    }
}

/// The operator ran as the ServiceAccount without a permission error.
fn applied_log_check(log: &std::path::Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        !text.contains("forbidden"),
        "operator log shows a missing permission:\n{text}"
    );
}

/// What `render` returns when Helm refuses the values: the error text.
fn render_error(values: Value) -> String {
    let script = r#"
import helm_python as helm, json, sys
try:
    with helm.Chart.load(sys.argv[1]) as c:
        c.render(json.loads(sys.argv[2]), name="rel", namespace="aws-auth-system")
    print(json.dumps(None))
except Exception as e:
    print(json.dumps(str(e)))
"#;
    match helm(script, &[CHART, &values.to_string()]) {
        Value::String(s) => s,
        other => panic!("Helm accepted {values}: {other}"),
    }
}

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn chart_renders_every_option() {
    // Defaults: two replicas electing a leader, a PDB, spread over zones and nodes, the CRD kept.
    let docs = render(json!({}));
    let deploy = find(&docs, "Deployment");
    assert_eq!(deploy["spec"]["replicas"], 2);
    let env = env_of(deploy);
    for (k, v) in [
        ("AWS_AUTH_LEADER_ELECT", "true"),
        ("AWS_AUTH_LEASE_NAME", "rel-aws-auth-operator"),
        ("AWS_AUTH_LEASE_NAMESPACE", "aws-auth-system"),
        ("AWS_AUTH_LEASE_DURATION", "15s"),
        ("AWS_AUTH_LEASE_RENEW_BEFORE", "5s"),
        (
            "AWS_AUTH_WEBHOOK_CERT_SECRET",
            "aws-auth-system/rel-aws-auth-operator-webhook-certs",
        ),
    ] {
        assert!(env.contains(&(k.into(), v.into())), "{k}={v}: {env:?}");
    }
    let pdb = find(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"],
        "rel"
    );
    let spread = &deploy["spec"]["template"]["spec"]["topologySpreadConstraints"];
    assert_eq!(spread[0]["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(spread[1]["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(spread[0]["whenUnsatisfiable"], "ScheduleAnyway");
    let crd = find(&docs, "CustomResourceDefinition");
    assert_eq!(crd["metadata"]["name"], "iamaccessgrants.aws-auth.dev");
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    // The Lease and the certificate Secret: by name, create apart (it cannot be limited).
    let local = docs
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == "aws-auth-system")
        .expect("a Role in the release namespace");
    assert_eq!(
        local["rules"],
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["rel-aws-auth-operator"], "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["rel-aws-auth-operator-webhook-certs"], "verbs": ["get", "update"]},
        ])
    );
    let metrics_svc = docs
        .iter()
        .find(|d| {
            d["kind"] == "Service" && d["metadata"]["name"] == "rel-aws-auth-operator-metrics"
        })
        .expect("metrics Service");
    assert_eq!(metrics_svc["spec"]["ports"][0]["name"], "metrics");
    assert!(!kinds(&docs).contains(&"ServiceMonitor".to_string()));
    // The NetworkPolicy is on by default: the webhook port from the API server's addresses only.
    let np = find(&docs, "NetworkPolicy");
    assert_eq!(np["spec"]["ingress"][1]["ports"][0]["port"], "webhook");
    assert_eq!(
        np["spec"]["ingress"][1]["from"],
        json!([{"ipBlock": {"cidr": "0.0.0.0/0"}}])
    );

    // Every other option, set.
    let docs = render(json!({
        "replicaCount": 3,
        "leaderElection": {"leaseDuration": "30s", "renewBefore": "10s"},
        "podDisruptionBudget": {"maxUnavailable": "50%"},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "x"}}}],
        "extraArgs": ["--resync-interval", "10m"],
        "podAnnotations": {"example.com/team": "platform"},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "metrics": {"serviceMonitor": {"enabled": true, "interval": "15s", "labels": {"release": "prometheus"}}},
        "networkPolicy": {"enabled": true, "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}], "apiServerCidrs": ["10.0.0.0/16"], "apiServerSourceCidrs": ["10.0.0.0/19", "10.0.32.0/19"]},
        "crds": {"keep": false},
        "logFormat": "text",
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/op"}},
    }));
    let deploy = find(&docs, "Deployment");
    assert_eq!(deploy["spec"]["replicas"], 3);
    let pod = &deploy["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/team"],
        "platform"
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["args"], json!(["run", "--resync-interval", "10m"]));
    assert_eq!(c["resources"]["limits"]["memory"], "256Mi");
    assert_eq!(
        pod["spec"]["topologySpreadConstraints"][0]["whenUnsatisfiable"],
        "DoNotSchedule"
    );
    let env = env_of(deploy);
    assert!(env.contains(&("AWS_AUTH_LEASE_DURATION".into(), "30s".into())));
    assert!(env.contains(&("AWS_AUTH_LOG_FORMAT".into(), "text".into())));
    assert_eq!(
        find(&docs, "PodDisruptionBudget")["spec"]["maxUnavailable"],
        "50%"
    );
    let sm = find(&docs, "ServiceMonitor");
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["interval"], "15s");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"],
        "metrics"
    );
    let np = find(&docs, "NetworkPolicy");
    assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], "health");
    assert_eq!(
        np["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["name"],
        "monitoring"
    );
    assert_eq!(np["spec"]["ingress"][1]["ports"][0]["port"], "webhook");
    assert_eq!(
        np["spec"]["ingress"][1]["from"],
        json!([{"ipBlock": {"cidr": "10.0.0.0/19"}}, {"ipBlock": {"cidr": "10.0.32.0/19"}}])
    );
    assert_eq!(
        np["spec"]["egress"][1]["to"][0]["ipBlock"]["cidr"],
        "10.0.0.0/16"
    );
    assert!(
        find(&docs, "CustomResourceDefinition")["metadata"]["annotations"].is_null(),
        "crds.keep=false still keeps"
    );
    assert_eq!(
        find(&docs, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::111122223333:role/op"
    );

    // One replica without election: no PDB (it could never be satisfied), no Lease rights.
    let docs = render(json!({
        "replicaCount": 1,
        "leaderElection": {"enabled": false},
        "crds": {"enabled": false},
        "metrics": {"service": {"enabled": false}},
        "webhook": {"enabled": false},
    }));
    let k = kinds(&docs);
    for absent in ["PodDisruptionBudget", "CustomResourceDefinition", "Service"] {
        assert!(!k.contains(&absent.to_string()), "{absent} in {k:?}");
    }
    assert!(!docs.iter().any(|d| d.to_string().contains("leases")));
    assert!(
        !env_of(find(&docs, "Deployment"))
            .iter()
            .any(|(k, _)| k.starts_with("AWS_AUTH_LEASE") || k == "AWS_AUTH_LEADER_ELECT")
    );
}

#[test]
fn helm_refuses_bad_values_with_a_message() {
    for (values, expect) in [
        (json!({"replicaCount": 0}), "replicaCount"),
        (json!({"replicaCount": "two"}), "replicaCount"),
        (json!({"debounce": "fast"}), "debounce"),
        (
            json!({"webhook": {"failurePolicy": "ignore"}}),
            "failurePolicy",
        ),
        (
            json!({"leaderElection": {"leaseDuration": "1m"}}),
            "leaseDuration",
        ),
        (json!({"maxRemovalPercent": 150}), "maxRemovalPercent"),
        (
            json!({"clusterCreatorArns": ["creator"]}),
            "clusterCreatorArns",
        ),
        (json!({"replica": 2}), "replica"),
        (
            json!({"networkPolicy": {"apiServerCidrs": ["everywhere"]}}),
            "apiServerCidrs",
        ),
        (
            json!({"replicaCount": 2, "leaderElection": {"enabled": false}}),
            "needs leaderElection.enabled",
        ),
        (json!({"backend": "access-entries"}), "clusterName"),
        (json!({"backend": "entries"}), "backend"),
    ] {
        let e = render_error(values.clone());
        assert!(e.contains(expect), "{values}: {e}");
    }
}

/// With a cluster name the operator gets the backend flags, may keep its access-entry record
/// (by name only), and may reach the AWS APIs; without one, none of these.
#[test]
fn chart_renders_the_access_entry_backend() {
    let docs = render(json!({"clusterName": "prod", "awsRegion": "eu-west-1"}));
    let env = env_of(find(&docs, "Deployment"));
    for (k, v) in [
        ("AWS_AUTH_BACKEND", "auto"),
        ("AWS_AUTH_CLUSTER_NAME", "prod"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_AUTH_OPERATOR_NAME", "rel-aws-auth-operator"),
    ] {
        assert!(
            env.contains(&(k.to_string(), v.to_string())),
            "{k}: {env:?}"
        );
    }
    let role = aws_auth_role(&docs).to_string();
    assert!(role.contains("aws-auth-access-entries"), "{role}");
    let egress = find(&docs, "NetworkPolicy")["spec"]["egress"].to_string();
    assert!(egress.contains("\"port\":443"), "{egress}");
    let plain = render(json!({}));
    assert!(!aws_auth_role(&plain).to_string().contains("access-entries"));
    assert!(
        !env_of(find(&plain, "Deployment"))
            .iter()
            .any(|(k, _)| k == "AWS_AUTH_CLUSTER_NAME")
    );
}

/// One README row per leaf of values.schema.json: key, type, default from values.yaml, and the
/// schema's description.
fn values_rows(schema: &Value, values: &Value, prefix: &str, rows: &mut Vec<String>) {
    for (key, prop) in schema["properties"].as_object().unwrap() {
        let path = format!("{prefix}{key}");
        let value = &values[key.as_str()];
        if prop["properties"].is_object() {
            values_rows(prop, value, &format!("{path}."), rows);
            continue;
        }
        let ty = match &prop["type"] {
            Value::Array(types) => types
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(" or "),
            t => t.as_str().unwrap().to_string(),
        };
        let ty = match prop["enum"].as_array() {
            Some(e) => e
                .iter()
                .map(|v| format!("`{}`", v.as_str().unwrap()))
                .collect::<Vec<_>>()
                .join(", "),
            None => ty,
        };
        let description = prop["description"]
            .as_str()
            .unwrap_or_else(|| panic!("{path} has no description in values.schema.json"));
        rows.push(format!(
            "| `{path}` | {ty} | `{}` | {} |",
            serde_json::to_string(value).unwrap(),
            description.replace('|', "\\|")
        ));
    }
}

#[test]
fn readme_values_table_is_the_schema() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{CHART}/values.schema.json")).unwrap(),
    )
    .unwrap();
    let values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(format!("{CHART}/values.yaml")).unwrap())
            .unwrap();
    let mut rows = vec![
        "| value | type | default | what it does |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    values_rows(&schema, &values, "", &mut rows);
    let table = rows.join("\n");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    const START: &str = "<!-- values:start -->\n";
    let start = readme.find(START).expect("values table markers") + START.len();
    let end = readme
        .find("<!-- values:end -->")
        .expect("values table end marker");
    assert!(
        readme.get(start..end).unwrap_or("") == format!("{table}\n"),
        "README's values table is stale; put this between the markers:\n{table}"
    );
}

/// The chart's ValidatingAdmissionPolicy, installed by the real Helm engine and evaluated by the
/// API server itself, with no operator running: aws-auth is not deleted, the ownership annotation
/// and the history are the operator's ServiceAccount's alone, a system:masters entry added by hand
/// needs the break-glass annotation. (Each request is a dry run, which the policy sees as well.)
#[tokio::test(flavor = "multi_thread")]
async fn the_admission_policy_guards_aws_auth_with_the_operator_stopped() {
    use aws_auth_operator::engine::plan::OWNERSHIP_ANNOTATION;
    use aws_auth_operator::operator::webhook::review::BREAK_GLASS_ANNOTATION;
    let w = World::new("policy").await;
    w.create_configmap(&[("mapRoles", support::NODE_ROLES)])
        .await;
    let kubeconfig = std::env::var("KUBECONFIG").unwrap();
    let ns = "aws-auth-policy-test";
    let release = format!("policy-{}", std::process::id());
    let values = json!({"awsAuth": {"name": w.name}, "crds": {"enabled": false}, "webhook": {"enabled": false}});
    helm_install(&kubeconfig, ns, &release, &values);
    let operator = format!("system:serviceaccount:{ns}:{release}-aws-auth-operator");
    let admin: Api<ConfigMap> = Api::namespaced(w.client.clone(), "kube-system");
    let as_operator: Api<ConfigMap> =
        Api::namespaced(support::client_as(&operator, &[]).await, "kube-system");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let dry_delete = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    // Every request below is a dry run: aws-auth stays as it is.
    let base = w.configmap().await.unwrap();
    let edited = |f: &dyn Fn(&mut ConfigMap)| {
        let mut cm = base.clone();
        f(&mut cm);
        cm
    };
    let annotate = |cm: &mut ConfigMap, k: &str, v: &str| {
        cm.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
    };
    // The policy is in force once the API server has loaded it.
    let refusal = eventually("the policy in force", Duration::from_secs(60), || async {
        admin
            .delete(&w.name, &dry_delete)
            .await
            .err()
            .map(|e| e.to_string())
    })
    .await;
    assert!(
        refusal.contains("must not be deleted") && refusal.contains("ValidatingAdmissionPolicy"),
        "{refusal}"
    );
    // The ownership annotation: not by hand, by the operator's ServiceAccount.
    let owned = edited(&|cm| annotate(cm, OWNERSHIP_ANNOTATION, "forged"));
    let e = admin
        .replace(&w.name, &dry, &owned)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("aws-auth.dev/managed is the operator's record"),
        "{e}"
    );
    as_operator
        .replace(&w.name, &dry, &owned)
        .await
        .expect("the operator changes its record");
    // A system:masters entry by hand: only with the break-glass annotation.
    let masters = format!(
        "{}- rolearn: arn:aws:iam::111122223333:role/sneaky\n  username: sneaky\n  groups: [system:masters]\n",
        support::NODE_ROLES
    );
    let add = |cm: &mut ConfigMap| {
        cm.data
            .get_or_insert_with(Default::default)
            .insert("mapRoles".into(), masters.clone());
    };
    let e = admin
        .replace(&w.name, &dry, &edited(&add))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("system:masters entry added by hand"), "{e}");
    let glass = edited(&|cm| {
        add(cm);
        annotate(cm, BREAK_GLASS_ANNOTATION, "incident 42");
    });
    admin
        .replace(&w.name, &dry, &glass)
        .await
        .expect("break-glass lets it through");
    // Any other edit of aws-auth passes.
    let other = edited(&|cm| annotate(cm, "example.com/note", "x"));
    admin
        .replace(&w.name, &dry, &other)
        .await
        .expect("an ordinary edit");
    // The history: only the operator.
    let history: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": format!("{}-history", w.name)},
        "data": {"v1": "forged"}
    }))
    .unwrap();
    let e = admin.create(&dry, &history).await.unwrap_err().to_string();
    assert!(e.contains("is written only by the operator"), "{e}");
    as_operator
        .create(&dry, &history)
        .await
        .expect("the operator writes its history");
    // The access-entry record: the operator's, but for a person's confirmation of a held deletion.
    let record_name = format!("{}-access-entries", w.name);
    let record: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": record_name, "annotations": {"aws-auth.dev/removal-held": "held"}},
        "data": {"entries-1": "[]"}
    }))
    .unwrap();
    let e = admin.create(&dry, &record).await.unwrap_err().to_string();
    assert!(e.contains("is written only by the operator"), "{e}");
    let record = as_operator
        .create(&PostParams::default(), &record)
        .await
        .expect("the operator writes its record");
    let mut confirmed = record.clone();
    confirmed
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("aws-auth.dev/confirm-removal".into(), "0123".into());
    admin
        .replace(&record_name, &dry, &confirmed)
        .await
        .expect("a person confirms a held deletion");
    let mut forged = confirmed.clone();
    forged
        .data
        .as_mut()
        .unwrap()
        .insert("entries-1".into(), "[\"forged\"]".into());
    let e = admin
        .replace(&record_name, &dry, &forged)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("is written only by the operator"), "{e}");
    let mut unheld = record.clone();
    unheld.metadata.annotations = None;
    let e = admin
        .replace(&record_name, &dry, &unheld)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("is written only by the operator"), "{e}");
    let e = admin
        .delete(&record_name, &dry_delete)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("is written only by the operator"), "{e}");
    // (Left for the next run's clean-up, after the policy is gone: the operator may not delete.)
    // Other ConfigMaps of the namespace are none of its business.
    let unrelated: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": format!("{}-unrelated", w.name)}}))
            .unwrap();
    admin.create(&dry, &unrelated).await.expect("unrelated");
    // Leave no policy behind for the next run's clean-up of this aws-auth.
    let script = r#"
import helm_python as helm, json, sys
cfg = helm.Config(kubeconfig_path=sys.argv[1], namespace=sys.argv[2])
cfg.uninstall(sys.argv[3])
print(json.dumps("uninstalled"))
"#;
    helm(script, &[&kubeconfig, ns, &release]);
}
