//! The promise seen from inside the cluster, on the real kube-apiserver: a tenant whose RBAC
//! allows only `iamaccessgrants` (impersonated) tries what the code allows, and gets exactly what
//! the policy allows; no input stops the operator. One binary: its webhook guards kube-system.
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};

use aws_auth_operator::api::{IamAccessGrant, IamAccessGrantSpec};
use aws_auth_operator::engine::authmap::lookup::lookup;
use aws_auth_operator::engine::authmap::read::read_data;
use aws_auth_operator::engine::plan::HeldRemoval;
use aws_auth_operator::operator::webhook::review::BREAK_GLASS_ANNOTATION;
use support::{NODE_ROLES, TEST_LABEL, World, client_as, eventually, free_port, role};

const LONG: Duration = Duration::from_secs(60);
const TENANT: &str = "tenant-dev";
const NODE_ROLE: &str = "arn:aws:iam::111122223333:role/eks-node-NodeInstanceRole-ABC";

/// RBAC on `iamaccessgrants` only, bound to the tenant.
async fn tenant_rbac(client: &Client) {
    support::grant_only_rbac(client, TENANT).await
}

/// A grant created as `client`: the API server's answer.
async fn create_as(
    client: &Client,
    w: &World,
    name: &str,
    spec: IamAccessGrantSpec,
) -> Result<(), String> {
    create_grant_as(client, w.grant(name, spec)).await
}

async fn create_grant_as(client: &Client, g: IamAccessGrant) -> Result<(), String> {
    Api::<IamAccessGrant>::all(client.clone())
        .create(&PostParams::default(), &g)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// What the authenticator's lookup maps `arn` to in aws-auth now: (username, groups).
async fn mapped(w: &World, arn: &str) -> Option<(String, Vec<String>)> {
    let data = w.configmap().await?.data.unwrap_or_default();
    let read = read_data(&data);
    lookup(&read, arn, "x").map(|h| (h.mapping.username, h.mapping.groups))
}

/// Escalation through the grant a tenant may create: every privileged identity ends Forbidden,
/// and aws-auth never maps it; the EKS node role keeps system:nodes.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_gets_exactly_what_the_policy_allows() {
    let w = World::new("tenant").await;
    tenant_rbac(&w.client).await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let _op = w.operator(&[
        "--privileged-principal",
        "arn:aws:iam::111122223333:role/platform-*",
    ]);
    let tenant = client_as(TENANT, &[]).await;
    // The tenant may not touch aws-auth itself.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(tenant.clone(), "kube-system");
    assert!(cms.get(&w.name).await.is_err(), "the tenant reads aws-auth");

    let attempts: Vec<(&str, IamAccessGrantSpec)> = vec![
        (
            "sa",
            role(
                "arn:aws:iam::111122223333:role/t-sa",
                "system:serviceaccount:kube-system:clusterrole-aggregation-controller",
                &[],
            ),
        ),
        (
            "kcm",
            role(
                "arn:aws:iam::111122223333:role/t-kcm",
                "system:kube-controller-manager",
                &[],
            ),
        ),
        (
            "node",
            role(
                "arn:aws:iam::111122223333:role/t-node",
                "system:node:ip-10-0-0-1.ec2.internal",
                &["system:nodes"],
            ),
        ),
        (
            "eks",
            role(
                "arn:aws:iam::111122223333:role/t-eks",
                "eks:cluster-admin",
                &[],
            ),
        ),
        (
            "metrics",
            role(
                "arn:aws:iam::111122223333:role/t-metrics",
                "metrics",
                &["eks:k8s-metrics"],
            ),
        ),
        (
            "masters",
            role(
                "arn:aws:iam::111122223333:role/t-masters",
                "m",
                &["system:masters"],
            ),
        ),
        (
            "tpl",
            role(
                "arn:aws:iam::111122223333:role/t-tpl",
                "{{SessionName}}:x",
                &[],
            ),
        ),
        ("account", IamAccessGrantSpec::account("777788889999")),
    ];
    for (name, spec) in attempts.iter().cloned() {
        create_as(&tenant, &w, name, spec).await.unwrap();
    }
    let mut adopt = w.grant("adopt", role(NODE_ROLE, "dev", &["dev"]));
    adopt.spec.adopt = true;
    create_grant_as(&tenant, adopt).await.unwrap();
    create_as(
        &tenant,
        &w,
        "fine",
        role(
            "arn:aws:iam::111122223333:role/t-fine",
            "dev:{{SessionName}}",
            &["dev"],
        ),
    )
    .await
    .unwrap();
    w.wait_reason("fine", "Applied").await;
    for (name, spec) in &attempts {
        let m = w.wait_reason(name, "Forbidden").await;
        assert!(
            m.contains("privileged")
                || m.contains("reserved prefix")
                || m.contains("--allowed-account"),
            "{name}: {m}"
        );
        if let Some(arn) = &spec.arn {
            assert_eq!(mapped(&w, arn).await, None, "{name} is mapped");
        }
    }
    let m = w.wait_reason("adopt", "Forbidden").await;
    assert!(
        m.contains("adopt: true would take over aws-auth mapRoles line 1"),
        "{m}"
    );
    let (user, groups) = mapped(&w, NODE_ROLE)
        .await
        .expect("the node role is mapped");
    assert_eq!(user, "system:node:{{EC2PrivateDNSName}}");
    assert_eq!(groups, ["system:bootstrappers", "system:nodes"]);

    // Oversized grants are refused by the API server itself, naming the limit.
    let many: Vec<String> = (0..5000).map(|i| format!("g{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let e = create_as(
        &tenant,
        &w,
        "groups",
        role("arn:aws:iam::111122223333:role/t-g", "g", &refs),
    )
    .await
    .unwrap_err();
    assert!(e.contains("spec.groups") && e.contains("32"), "{e}");
    let e = create_as(
        &tenant,
        &w,
        "long",
        role(
            "arn:aws:iam::111122223333:role/t-l",
            &"u".repeat(200_000),
            &[],
        ),
    )
    .await
    .unwrap_err();
    assert!(e.contains("spec.username") && e.contains("256"), "{e}");
    // A control character is refused by the API server itself, named and never echoed.
    let _rules = support::CRD_RULES.lock().await;
    let e = create_as(
        &tenant,
        &w,
        "esc",
        role("arn:aws:iam::111122223333:role/t-esc", "a\u{1b}[2Jb", &[]),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("spec.username")
            && e.contains(aws_auth_operator::engine::rules::TEXT_CONTROL)
            && !e.contains('\u{1b}'),
        "{e}"
    );
}

/// A grant's status is not an input for who keeps an entry: a tenant who patches an invalid
/// grant's status to name a revoked principal's entry does not keep that principal mapped.
#[tokio::test(flavor = "multi_thread")]
async fn a_patched_status_keeps_no_revoked_principal() {
    let w = World::new("tenant-status").await;
    tenant_rbac(&w.client).await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let boss = "arn:aws:iam::111122223333:role/Boss";
    let op = w.operator(&[]);
    w.create("boss", role(boss, "boss", &["ops"])).await;
    w.wait_reason("boss", "Applied").await;
    let tenant = client_as(TENANT, &[]).await;
    // Invalid (a role path), and so a grant whose status says which entry it keeps.
    // (Created past the CRD's rules, as before an upgrade; the tenant patches only the status.)
    support::create_past_the_rules(
        &w.client,
        &w.grant(
            "forger",
            role("arn:aws:iam::111122223333:role/team/x", "x", &["dev"]),
        ),
    )
    .await;
    w.wait_verdict("forger", "Invalid").await;
    // With the operator stopped (so it cannot correct the status first), the tenant claims the
    // boss's entry and the admin revokes the boss.
    drop(op);
    let grants = Api::<IamAccessGrant>::all(tenant.clone());
    let forged = serde_json::json!({"status": {
        "section": "mapRoles",
        "canonicalArn": boss,
        "conditions": [{
            "type": "Ready", "status": "False", "reason": "Invalid", "message": "forged",
            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1
        }]
    }});
    match grants
        .patch_status(
            &w.full_name("forger"),
            &PatchParams::default(),
            &Patch::Merge(&forged),
        )
        .await
    {
        Ok(_) => {}
        // Before 1.33 the API server checks the stale spec on a status write: the forgery is
        // refused outright there, and the revocation below must hold all the same.
        Err(kube::Error::Api(s)) if s.code == 422 => {}
        Err(e) => panic!("the tenant may patch the status: {e}"),
    }
    Api::<IamAccessGrant>::all(w.client.clone())
        .delete(&w.full_name("boss"), &DeleteParams::default())
        .await
        .unwrap();
    let _op = w.operator(&[]);
    eventually("the revoked principal unmapped", LONG, || async {
        mapped(&w, boss).await.is_none().then_some(())
    })
    .await;
    let m = w.wait_verdict("forger", "Invalid").await;
    assert!(!m.contains("stays in aws-auth"), "{m}");
    assert!(
        mapped(
            &w,
            "arn:aws:iam::111122223333:role/eks-node-NodeInstanceRole-ABC"
        )
        .await
        .is_some()
    );
}

/// Padding grants do not dilute the breaker, and a deletion of all grants removes nothing
/// until a person confirms (the first deletion does not slip through on the leading edge).
#[tokio::test(flavor = "multi_thread")]
async fn mass_deletions_by_a_tenant_are_held_whole() {
    let w = World::new("tenant-dilute").await;
    tenant_rbac(&w.client).await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    // The product's quiet period is 200 ms; 2 s here keeps ten sequential deletions on a loaded
    // machine within one burst (slower ones are still counted by the removal window).
    let op = w.operator(&[
        "--max-removals",
        "5",
        "--max-removal-percent",
        "30",
        "--debounce",
        "2s",
        "--debounce-max",
        "30s",
    ]);
    let tenant = client_as(TENANT, &[]).await;
    let arn = |kind: &str, i: usize| format!("arn:aws:iam::111122223333:role/{kind}-{i}");
    for i in 0..10 {
        create_as(
            &tenant,
            &w,
            &format!("real-{i}"),
            role(&arn("real", i), "r", &["dev"]),
        )
        .await
        .unwrap();
    }
    for i in 0..30 {
        create_as(
            &tenant,
            &w,
            &format!("pad-{i}"),
            role(&arn("pad", i), "p", &["dev"]),
        )
        .await
        .unwrap();
    }
    w.wait_reason("pad-29", "Applied").await;
    w.wait_reason("real-9", "Applied").await;
    let grants = Api::<IamAccessGrant>::all(tenant.clone());
    for i in 0..10 {
        grants
            .delete(&w.full_name(&format!("real-{i}")), &DeleteParams::default())
            .await
            .unwrap();
    }
    let held = eventually("the removal of the 10 real grants held", LONG, || async {
        HeldRemoval::from_configmap(w.configmap().await.as_ref())
    })
    .await;
    assert_eq!(held.count, 10, "{held:?}");
    for i in 0..10 {
        assert!(
            mapped(&w, &arn("real", i)).await.is_some(),
            "real-{i} was removed"
        );
    }

    // Confirmed with the confirmer named (the CLI as the admin, who names themself).
    let (code, out, err) = support::cli(&[
        "confirm-removal",
        &held.token,
        "--aws-auth-name",
        &w.name,
        "--confirmed-by",
        "admin",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    eventually("the 10 removed", LONG, || async {
        mapped(&w, &arn("real", 9)).await.is_none().then_some(())
    })
    .await;
    let notes = eventually("RemovalConfirmed", LONG, || async {
        let n = support::event_notes(&w.client, &w.name, "RemovalConfirmed").await;
        (!n.is_empty()).then_some(n)
    })
    .await;
    assert!(notes[0].contains("confirmed by admin"), "{notes:?}");

    // The window lives on aws-auth: 3 removed, the operator restarted, 3 more is 6 > 5.
    for i in 0..3 {
        grants
            .delete(&w.full_name(&format!("pad-{i}")), &DeleteParams::default())
            .await
            .unwrap();
    }
    eventually("3 removed and counted on aws-auth", LONG, || async {
        let cm = w.configmap().await?;
        let window = cm
            .metadata
            .annotations
            .as_ref()?
            .get("aws-auth.dev/removal-window")?
            .clone();
        (mapped(&w, &arn("pad", 2)).await.is_none()).then_some(window)
    })
    .await;
    drop(op);
    let _op = w.operator(&["--max-removals", "5", "--max-removal-percent", "30"]);
    for i in 3..6 {
        grants
            .delete(&w.full_name(&format!("pad-{i}")), &DeleteParams::default())
            .await
            .unwrap();
    }
    let held = eventually("3 more held after the restart", LONG, || async {
        HeldRemoval::from_configmap(w.configmap().await.as_ref())
    })
    .await;
    assert!(
        held.count == 3 && held.reason.contains("with 3 removed in the last passes"),
        "{held:?}"
    );

    // Everything deleted at once: nothing goes until confirmed, not even the first.
    let lp = ListParams::default().labels(&format!("{TEST_LABEL}={}", w.name));
    grants
        .delete_collection(&DeleteParams::default(), &lp)
        .await
        .unwrap();
    let held = eventually("the whole deletion held", LONG, || async {
        let h = HeldRemoval::from_configmap(w.configmap().await.as_ref())?;
        (h.count == 27).then_some(h)
    })
    .await;
    assert_eq!(held.count, 27);
    for i in 3..30 {
        assert!(
            mapped(&w, &arn("pad", i)).await.is_some(),
            "pad-{i} was removed"
        );
    }
}

/// Break-glass never skips who may grant; no text stops the operator, render or the webhook;
/// idle connections do not keep a real admission from being answered.
#[tokio::test(flavor = "multi_thread")]
async fn no_input_stops_the_operator_and_break_glass_does_not_grant() {
    const HOOK: &str = "aws-auth-operator-tenant-test";
    let w = World::new("tenant-hook").await;
    tenant_rbac(&w.client).await;
    let hooks: Api<ValidatingWebhookConfiguration> = Api::all(w.client.clone());
    let _ = hooks.delete(HOOK, &DeleteParams::default()).await;
    // aws-auth whose mapUsers nests twenty thousand levels deep.
    let deep = format!("{}x\n", "- ".repeat(20_000));
    w.create_configmap(&[("mapRoles", NODE_ROLES), ("mapUsers", &deep)])
        .await;
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let addr = format!("127.0.0.1:{port}");
    let mut op = w.operator(&[
        "--webhook-addr",
        &addr,
        "--webhook-url",
        &url,
        "--webhook-name",
        HOOK,
        "--operator-username",
        "admin",
        "--privileged-principal",
        "arn:aws:iam::111122223333:role/platform-*",
        "--privileged-granter",
        "group:platform-team",
    ]);
    let tenant = client_as(TENANT, &[]).await;
    create_as(
        &tenant,
        &w,
        "user",
        role("arn:aws:iam::111122223333:user/u", "u", &["dev"]),
    )
    .await
    .unwrap();
    let m = w.wait_reason("user", "AwsAuthUnreadable").await;
    assert!(
        m.contains("nested more than 64 deep") || m.contains("recursion limit"),
        "{m}"
    );
    assert!(
        op.running(),
        "the operator stopped on deep YAML:\n{}",
        op.logs()
    );
    let data = w.configmap().await.unwrap().data.unwrap();
    assert_eq!(data["mapUsers"], deep, "the unreadable key was rewritten");

    // render over the same text: a verdict, not a crash.
    let file = std::env::temp_dir().join(format!("deep-aws-auth-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_string(&serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "aws-auth", "namespace": "kube-system"}, "data": {"mapUsers": deep}})).unwrap()).unwrap();
    let grant_file = std::env::temp_dir().join(format!("deep-grant-{}.yaml", std::process::id()));
    std::fs::write(&grant_file, format!("apiVersion: aws-auth.dev/v1alpha1\nkind: IamAccessGrant\nmetadata: {{name: u}}\nspec:\n  arn: arn:aws:iam::111122223333:user/u\n  username: u\n  groups:\n  {}x\n", "- ".repeat(20_000))).unwrap();
    let (code, _, err) = support::cli(&[
        "render",
        "-f",
        grant_file.to_str().unwrap(),
        "--aws-auth",
        file.to_str().unwrap(),
    ]);
    assert!(code == 1 || code == 2, "render exited {code}: {err}");
    assert!(
        err.contains("nested more than 64 deep") || err.contains("recursion limit"),
        "{err}"
    );

    // The webhook answers (registration reaches the API server's cache within moments).
    let e = eventually("the webhook answers", LONG, || async {
        create_as(
            &tenant,
            &w,
            "masters",
            role(
                "arn:aws:iam::111122223333:role/platform-x",
                "x",
                &["system:masters"],
            ),
        )
        .await
        .err()
    })
    .await;
    assert!(
        e.contains("only the privileged granters (group:platform-team)"),
        "{e}"
    );
    // Break-glass does not change who may grant.
    let mut glass = w.grant(
        "masters",
        role(
            "arn:aws:iam::111122223333:role/platform-x",
            "x",
            &["system:masters"],
        ),
    );
    glass.metadata.annotations = Some(
        [(
            BREAK_GLASS_ANNOTATION.to_string(),
            "INC-1 trust me".to_string(),
        )]
        .into(),
    );
    let e = create_grant_as(&tenant, glass).await.unwrap_err();
    assert!(
        e.contains("break-glass annotation does not change who may grant"),
        "{e}"
    );
    assert_eq!(
        mapped(&w, "arn:aws:iam::111122223333:role/platform-x").await,
        None
    );

    // A forged AdmissionReview carrying the deep text, posted straight to the port.
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "1", "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "name": w.name, "namespace": "kube-system", "operation": "UPDATE",
            "userInfo": {"username": "mallory"},
            "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": w.name, "namespace": "kube-system"}, "data": {"mapRoles": deep}},
            "oldObject": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": w.name, "namespace": "kube-system"}, "data": {"mapRoles": NODE_ROLES}}}
    });
    let answer = post_insecure(
        port,
        "/validate/aws-auth",
        &serde_json::to_vec(&review).unwrap(),
    );
    assert!(
        answer.contains("\"allowed\":false") && answer.contains("nested"),
        "{answer}"
    );
    assert!(
        op.running(),
        "the webhook's review stopped the operator:\n{}",
        op.logs()
    );

    // 300 idle connections, then a real admission through the API server.
    let idle: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let started = Instant::now();
    let e = create_as(
        &tenant,
        &w,
        "pathy",
        role("arn:aws:iam::111122223333:role/team/x", "x", &[]),
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert!(
        e.contains("role ARN has a path"),
        "not answered by the webhook: {e}"
    );
    println!("tenant: a real admission with 300 idle connections open answered in {took:?}");
    drop(idle);
    assert!(op.running());
    op.kill();
    hooks.delete(HOOK, &DeleteParams::default()).await.unwrap();
}

/// POST over TLS without verifying the certificate (the test plays a client off the cluster).
fn post_insecure(port: u16, path: &str, body: &[u8]) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-sk",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
        ])
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(body)?;
            c.wait_with_output()
        })
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
