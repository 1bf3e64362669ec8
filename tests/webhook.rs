//! The admission webhook on a real kube-apiserver, which calls it at a loopback URL. One test
//! that walks through every case in order: the webhook it registers guards ConfigMaps in
//! kube-system, so it runs in its own test binary (binaries run one after another).
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

use aws_auth_operator::api::IamAccessGrant;
use aws_auth_operator::operator::webhook::review::BREAK_GLASS_ANNOTATION;
use support::{NODE_ROLES, World, client_as, event_notes, eventually, free_port, role};

const LONG: Duration = Duration::from_secs(60);
const HOOK: &str = "aws-auth-operator-webhook-test";

/// A write of aws-auth's data (and annotations) as `client`: the API server's answer.
async fn put(
    client: &Client,
    w: &World,
    data: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> Result<ConfigMap, String> {
    write(client, w, data, annotations, false).await
}

/// The same as a dry run: the webhook is asked, nothing is stored.
async fn probe(client: &Client, w: &World, data: &[(&str, &str)]) -> Result<ConfigMap, String> {
    write(client, w, data, &[], true).await
}

async fn write(
    client: &Client,
    w: &World,
    data: &[(&str, &str)],
    annotations: &[(&str, &str)],
    dry_run: bool,
) -> Result<ConfigMap, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let pp = PostParams {
        dry_run,
        ..Default::default()
    };
    // The operator writes aws-auth too: a write that lost the race is made again on what it
    // wrote, as a person would run kubectl again.
    let mut attempts = 0;
    loop {
        let mut cm = api.get(&w.name).await.map_err(|e| e.to_string())?;
        cm.data = Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let ann = cm.metadata.annotations.get_or_insert_with(BTreeMap::new);
        for (k, v) in annotations {
            ann.insert(k.to_string(), v.to_string());
        }
        match api.replace(&w.name, &pp, &cm).await {
            Err(kube::Error::Api(e)) if e.code == 409 && attempts < 5 => attempts += 1,
            r => return r.map_err(|e| e.to_string()),
        }
    }
}

fn denied(r: Result<ConfigMap, String>, expect: &[&str]) {
    let e = r.expect_err("denied");
    assert!(e.contains("admission webhook"), "{e}");
    for x in expect {
        assert!(e.contains(x), "`{x}` not in: {e}");
    }
}

async fn webhook_config(client: &Client) -> Option<ValidatingWebhookConfiguration> {
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get_opt(HOOK)
        .await
        .ok()?
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_stops_what_would_lock_people_out_at_the_door() {
    let w = World::new("webhook").await;
    let hooks: Api<ValidatingWebhookConfiguration> = Api::all(w.client.clone());
    let _ = hooks.delete(HOOK, &DeleteParams::default()).await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;

    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let flags = |policy: &'static str| {
        vec![
            "--webhook-addr".to_string(),
            format!("127.0.0.1:{port}"),
            "--webhook-url".into(),
            url.clone(),
            "--webhook-name".into(),
            HOOK.into(),
            "--webhook-failure-policy".into(),
            policy.into(),
            "--operator-username".into(),
            "admin".into(),
            "--privileged-principal".into(),
            "arn:aws:iam::111122223333:role/platform-*".into(),
            "--privileged-granter".into(),
            "group:platform-team".into(),
            "--cluster-creator-arn".into(),
            "arn:aws:iam::111122223333:role/creator".into(),
        ]
    };
    let ignore = flags("ignore");
    let mut op = w.operator(&ignore.iter().map(String::as_str).collect::<Vec<_>>());

    let alice = client_as("alice", &["system:masters"]).await;
    let tab = format!("{NODE_ROLES}- rolearn: arn:aws:iam::111122223333:role/x\n\tusername: x\n");
    // Registration reaches the API server's webhook cache within moments (dry runs ask it
    // without storing anything).
    let first = eventually("the webhook answers", LONG, || async {
        probe(&alice, &w, &[("mapRoles", &tab)]).await.err()
    })
    .await;
    assert!(
        first.contains("tab character") && first.contains("line 7, column 1"),
        "{first}"
    );

    // A grant through the operator: its entry is managed.
    w.create(
        "dev",
        role("arn:aws:iam::111122223333:role/dev", "dev", &["developers"]),
    )
    .await;
    w.wait_reason("dev", "Applied").await;
    let managed = w.configmap().await.unwrap().data.unwrap()["mapRoles"].clone();

    // Hand edits that EKS would read differently, or that touch managed entries: denied.
    let entry =
        |body: &str| format!("{managed}- rolearn: arn:aws:iam::111122223333:role/x\n{body}");
    denied(
        put(
            &alice,
            &w,
            &[("mapRoles", &entry("  username: {{SessionName}}\n"))],
            &[],
        )
        .await,
        &["double-quote the value"],
    );
    denied(
        put(
            &alice,
            &w,
            &[("mapRoles", &managed), ("MapRoles", NODE_ROLES)],
            &[],
        )
        .await,
        &["rename it to `mapRoles`"],
    );
    denied(
        put(
            &alice,
            &w,
            &[(
                "mapRoles",
                &entry("  username: x\n  groups: system:masters\n"),
            )],
            &[],
        )
        .await,
        &["groups: [\"system:masters\"]"],
    );
    denied(
        put(
            &alice,
            &w,
            &[(
                "mapRoles",
                &format!("{managed}...\n- rolearn: arn:aws:iam::111122223333:role/x\n"),
            )],
            &[],
        )
        .await,
        &["document end marker"],
    );
    denied(
        put(
            &alice,
            &w,
            &[("mapRoles", &managed.replace("developers", "system:masters"))],
            &[],
        )
        .await,
        &["changes the mapRoles entry for arn:aws:iam::111122223333:role/dev"],
    );
    let cms: Api<ConfigMap> = Api::namespaced(alice.clone(), "kube-system");
    let e = cms
        .delete(&w.name, &DeleteParams::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unmaps every IAM user and role"), "{e}");

    // A correct edit of an unowned entry (a new node group) passes.
    let node2 = format!(
        "{managed}- rolearn: arn:aws:iam::111122223333:role/eks-node-2\n  username: system:node:{{{{EC2PrivateDNSName}}}}\n  groups: [system:bootstrappers, system:nodes]\n"
    );
    put(&alice, &w, &[("mapRoles", &node2)], &[]).await.unwrap();

    // The escape hatch: two broken keys get in, and leave a Warning Event.
    let bad_users = "- userarn: arn:aws:iam::111122223333:user/a\n  username: a\n  groups: [on]\n";
    let bad_accounts = "- 111122223333\n\t- x\n";
    put(
        &alice,
        &w,
        &[
            ("mapRoles", &node2),
            ("mapUsers", bad_users),
            ("mapAccounts", bad_accounts),
        ],
        &[(BREAK_GLASS_ANNOTATION, "INC-1234 restore by hand")],
    )
    .await
    .unwrap();
    let notes = eventually("BreakGlass event", LONG, || async {
        let n = event_notes(&w.client, &w.name, "BreakGlass").await;
        (!n.is_empty()).then_some(n)
    })
    .await;
    // Recorded by the leader from the stored object (the webhook only logs the requester).
    assert!(
        notes[0].contains("break-glass annotation (field manager") && notes[0].contains("INC-1234"),
        "{notes:?}"
    );
    // Fixing one of the two broken keys passes; the other may stay broken for now.
    let good_users = bad_users.replace("[on]", "[\"on\"]");
    put(
        &alice,
        &w,
        &[
            ("mapRoles", &node2),
            ("mapUsers", &good_users),
            ("mapAccounts", bad_accounts),
        ],
        &[],
    )
    .await
    .unwrap();
    // Breaking the fixed key again is not.
    denied(
        put(
            &alice,
            &w,
            &[
                ("mapRoles", &node2),
                ("mapUsers", bad_users),
                ("mapAccounts", bad_accounts),
            ],
            &[],
        )
        .await,
        &["mapUsers line 3"],
    );

    // Grants: what the operator would refuse is refused at `kubectl apply`.
    let grants_as = |c: &Client| Api::<IamAccessGrant>::all(c.clone());
    let create =
        |c: Client, name: &'static str, arn: &'static str, groups: &'static [&'static str]| {
            let g = w.grant(name, role(arn, name, groups));
            async move {
                grants_as(&c)
                    .create(&PostParams::default(), &g)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        };
    let e = create(
        alice.clone(),
        "pathy",
        "arn:aws:iam::111122223333:role/team/x",
        &[],
    )
    .await
    .unwrap_err();
    // (The CRD's CEL rules refuse it first, in the operator's words.)
    assert!(
        e.contains("spec.arn") && e.contains(aws_auth_operator::engine::rules::ROLE_PATH),
        "{e}"
    );
    let e = create(
        alice.clone(),
        "creator",
        "arn:aws:iam::111122223333:role/creator",
        &[],
    )
    .await
    .unwrap_err();
    assert!(e.contains("ClusterCreator"), "{e}");
    let e = create(
        alice.clone(),
        "mallory",
        "arn:aws:iam::111122223333:user/mallory",
        &["system:masters"],
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("Forbidden: group system:masters is privileged"),
        "{e}"
    );
    let e = create(
        alice.clone(),
        "admins",
        "arn:aws:iam::111122223333:role/platform-admins",
        &["system:masters"],
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("only the privileged granters (group:platform-team)") && e.contains("alice"),
        "{e}"
    );
    let carol = client_as("carol", &["system:masters", "platform-team"]).await;
    create(
        carol,
        "admins",
        "arn:aws:iam::111122223333:role/platform-admins",
        &["system:masters"],
    )
    .await
    .unwrap();
    w.wait_reason("admins", "Applied").await;

    // The history is the operator's: alice may neither edit nor delete it, but the operator
    // keeps writing it; break-glass lets her through.
    let history = format!("{}-history", w.name);
    let alice_cms: Api<ConfigMap> = Api::namespaced(alice.clone(), "kube-system");
    let planted = serde_json::json!({"data": {"9": "{\"data\":{\"mapRoles\":\"planted\"}}"}});
    let e = alice_cms
        .patch(&history, &PatchParams::default(), &Patch::Merge(&planted))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("changing kube-system/{history} is denied")) && e.contains("admin"),
        "{e}"
    );
    let e = alice_cms
        .delete(&history, &DeleteParams::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("deleting"), "{e}");
    let versions = |h: ConfigMap| h.data.map_or(0, |d| d.len());
    let before = versions(w.configmaps.get(&history).await.unwrap());
    w.create(
        "ops",
        role("arn:aws:iam::111122223333:role/ops", "ops", &["ops"]),
    )
    .await;
    w.wait_reason("ops", "Applied").await;
    eventually("the operator still writes the history", LONG, || async {
        (versions(w.configmaps.get(&history).await.ok()?) > before).then_some(())
    })
    .await;
    let glass = serde_json::json!({"metadata": {"annotations": {(BREAK_GLASS_ANNOTATION): "INC-7 repair"}}});
    alice_cms
        .patch(&history, &PatchParams::default(), &Patch::Merge(&glass))
        .await
        .unwrap();

    // The operator stopped, failurePolicy Ignore: edits go through unchecked.
    op.kill();
    put(&alice, &w, &[("mapRoles", &tab)], &[]).await.unwrap();
    put(&alice, &w, &[("mapRoles", &node2)], &[]).await.unwrap();

    // Registered with Fail, then stopped: edits of aws-auth are refused.
    let fail = flags("fail");
    let mut op = w.operator(&fail.iter().map(String::as_str).collect::<Vec<_>>());
    eventually("registered with Fail", LONG, || async {
        let c = webhook_config(&w.client).await?;
        (c.webhooks?[0].failure_policy.as_deref() == Some("Fail")).then_some(())
    })
    .await;
    op.kill();
    let e = eventually("the API server notices the dead webhook", LONG, || async {
        probe(&alice, &w, &[("mapRoles", NODE_ROLES)]).await.err()
    })
    .await;
    assert!(e.contains("failed calling webhook"), "{e}");
    hooks.delete(HOOK, &DeleteParams::default()).await.unwrap();
}

/// Replicas behind one Service must present certificates from the one registered CA: the first
/// makes them and stores them in the Secret, the next reads them.
#[tokio::test]
async fn replicas_share_one_webhook_certificate_through_a_secret() {
    use aws_auth_operator::operator::webhook::{WebhookArgs, shared_tls};
    use clap::Parser;
    use k8s_openapi::api::core::v1::Secret;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        webhook: WebhookArgs,
    }
    let secret = "default/aws-auth-operator-shared-certs";
    let args = Args::parse_from([
        "run",
        "--webhook-service",
        "default/aws-auth-operator:443",
        "--webhook-cert-secret",
        secret,
    ]);
    let client = support::client().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let _ = secrets
        .delete("aws-auth-operator-shared-certs", &DeleteParams::default())
        .await;
    let first = shared_tls(&client, &args.webhook, secret).await.unwrap();
    let second = shared_tls(&client, &args.webhook, secret).await.unwrap();
    let ca = first.ca_pem().expect("the CA is kept").to_string();
    assert!(ca.contains("BEGIN CERTIFICATE"), "{ca}");
    assert_eq!(
        Some(ca),
        second.ca_pem().map(str::to_string),
        "the second replica made its own CA"
    );
    let stored = secrets.get("aws-auth-operator-shared-certs").await.unwrap();
    assert_eq!(stored.type_.as_deref(), Some("kubernetes.io/tls"));
}

/// The certificate made here expires: with a 30 s validity it is made again at about 20 s, the
/// Secret and the registered CA bundle (new CA and the one before) updated, the server presents
/// the new certificate, and the API server still gets answers after the first one expired.
#[tokio::test(flavor = "multi_thread")]
async fn self_made_certificates_are_renewed_before_they_expire() {
    use k8s_openapi::api::core::v1::Secret;
    const ROTATING: &str = "aws-auth-operator-webhook-rotation-test";
    let w = World::new("webhook-rotate").await;
    let hooks: Api<ValidatingWebhookConfiguration> = Api::all(w.client.clone());
    let _ = hooks.delete(ROTATING, &DeleteParams::default()).await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), "default");
    let secret = "aws-auth-operator-rotation-certs";
    let _ = secrets.delete(secret, &DeleteParams::default()).await;

    let port = free_port();
    let (addr, url) = (
        format!("127.0.0.1:{port}"),
        format!("https://127.0.0.1:{port}"),
    );
    let shared = format!("default/{secret}");
    let _op = w.operator(&[
        "--webhook-addr",
        &addr,
        "--webhook-url",
        &url,
        "--webhook-name",
        ROTATING,
        "--webhook-failure-policy",
        "fail",
        "--operator-username",
        "admin",
        "--webhook-cert-secret",
        &shared,
        "--webhook-cert-validity",
        "30s",
    ]);
    let alice = client_as("alice", &["system:masters"]).await;
    let tab = format!("{NODE_ROLES}- rolearn: arn:aws:iam::111122223333:role/x\n\tusername: x\n");
    let answered = || async {
        let e = probe(&alice, &w, &[("mapRoles", &tab)]).await.err()?;
        e.contains("tab character").then_some(e)
    };
    eventually("the webhook answers", LONG, answered).await;
    let field =
        |s: &Secret, k: &str| String::from_utf8(s.data.as_ref().unwrap()[k].0.clone()).unwrap();
    let first = secrets.get(secret).await.unwrap();
    let not_after: u64 = first.metadata.annotations.as_ref().unwrap()["aws-auth.dev/not-after"]
        .parse()
        .unwrap();
    let renewed = eventually("the certificate made again", LONG, || async {
        let s = secrets.get(secret).await.ok()?;
        (field(&s, "tls.crt") != field(&first, "tls.crt")).then_some(s)
    })
    .await;
    let bundle = field(&renewed, "ca.crt");
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2, "{bundle}");
    assert!(bundle.contains(field(&first, "ca.crt").trim_end()));
    eventually("the new CA bundle registered", LONG, || async {
        let c = hooks.get_opt(ROTATING).await.ok()??;
        let registered = c.webhooks?[0].client_config.ca_bundle.clone()?;
        (registered.0 == bundle.as_bytes()).then_some(())
    })
    .await;

    // The server presents the new certificate: a client trusting only the new CA connects.
    let new_ca = bundle
        .split_inclusive("-----END CERTIFICATE-----")
        .next()
        .unwrap();
    eventually("the new certificate served", LONG, || async {
        handshake(port, new_ca).await.then_some(())
    })
    .await;
    // Past the first certificate's end, the API server still gets answers.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    tokio::time::sleep(Duration::from_secs((not_after + 2).saturating_sub(now))).await;
    eventually(
        "answers after the first certificate expired",
        LONG,
        answered,
    )
    .await;
    hooks
        .delete(ROTATING, &DeleteParams::default())
        .await
        .unwrap();
}

/// Whether a TLS handshake with the webhook port succeeds for a client trusting only `ca`.
async fn handshake(port: u16, ca: &str) -> bool {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    let Ok(cert) = CertificateDer::from_pem_slice(ca.as_bytes()) else {
        return false;
    };
    if roots.add(cert).is_err() {
        return false;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let name = ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await.is_ok()
}

/// The webhook selects aws-auth's namespace by its `kubernetes.io/metadata.name` label: the API
/// server sets it on every namespace and puts it back when removed (the operator checks it at
/// start; a unit test shows the refusal, which no current server can produce). A namespace that
/// does not exist is refused with its name.
#[tokio::test(flavor = "multi_thread")]
async fn the_namespace_label_the_webhook_selects_by_is_kept_by_the_server() {
    use k8s_openapi::api::core::v1::Namespace;
    let client = support::client().await;
    let ns = "aws-auth-unlabeled";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await;
    let off = serde_json::json!({"metadata": {"labels": {"kubernetes.io/metadata.name": null}}});
    let after = namespaces
        .patch(ns, &PatchParams::default(), &Patch::Merge(&off))
        .await
        .unwrap();
    assert_eq!(
        after
            .metadata
            .labels
            .unwrap_or_default()
            .get("kubernetes.io/metadata.name")
            .map(String::as_str),
        Some(ns),
        "the API server let the label go"
    );
    let port = free_port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aws-auth-operator"))
        .args([
            "run",
            "--aws-auth-namespace",
            "aws-auth-no-such-namespace",
            "--aws-auth-name",
            "aws-auth",
        ])
        .args(["--webhook-addr", &format!("127.0.0.1:{port}")])
        .args(["--webhook-url", &format!("https://127.0.0.1:{port}")])
        .args(["--webhook-name", "aws-auth-operator-unlabeled-test"])
        .args(["--operator-username", "admin"])
        .args(["--health-addr", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("namespace aws-auth-no-such-namespace (where aws-auth lives) does not exist"),
        "{err}"
    );
    assert!(
        Api::<ValidatingWebhookConfiguration>::all(client)
            .get_opt("aws-auth-operator-unlabeled-test")
            .await
            .unwrap()
            .is_none(),
        "registered anyway"
    );
}

/// The aws-auth webhook's match conditions (1.28+) keep every other ConfigMap of the namespace
/// from it: the API server sends it only reviews of aws-auth and its history, counted by the
/// operator's `webhook_reviews` metric.
#[tokio::test(flavor = "multi_thread")]
async fn match_conditions_send_only_aws_auth_to_the_webhook() {
    let w = World::new("match").await;
    let hook = "aws-auth-operator-match-test";
    let hooks: Api<ValidatingWebhookConfiguration> = Api::all(w.client.clone());
    let _ = hooks.delete(hook, &DeleteParams::default()).await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("https://{addr}");
    let op = w.operator(&[
        "--webhook-addr",
        &addr,
        "--webhook-url",
        &url,
        "--webhook-name",
        hook,
        "--operator-username",
        "admin",
    ]);
    let alice = client_as("alice", &["system:masters"]).await;
    let tab = format!("{NODE_ROLES}- rolearn: arn:aws:iam::111122223333:role/x\n\tusername: x\n");
    eventually("the webhook answers", LONG, || async {
        probe(&alice, &w, &[("mapRoles", &tab)]).await.err()
    })
    .await;
    let reviews = || {
        ["true", "false"]
            .iter()
            .map(|a| {
                op.metric(&format!(
                    "aws_auth_operator_webhook_reviews_total{{webhook=\"aws-auth\",allowed=\"{a}\"}}"
                ))
                .unwrap_or(0.0)
            })
            .sum::<f64>()
    };
    let before = reviews();
    assert!(before >= 1.0, "the refused probe was counted");
    // Writes to other ConfigMaps in the namespace: its selector matches them, its conditions not.
    let configmaps: Api<ConfigMap> = Api::namespaced(alice.clone(), "kube-system");
    let others: Vec<String> = (0..20).map(|i| format!("{}-other-{i}", w.name)).collect();
    for name in &others {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {support::TEST_LABEL: &w.name}},
            "data": {"mapRoles": tab.as_str()}
        }))
        .unwrap();
        configmaps
            .create(&PostParams::default(), &cm)
            .await
            .expect("another ConfigMap is never the webhook's business");
        configmaps
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    assert_eq!(reviews(), before, "reviews of other ConfigMaps were sent");
    // One more edit of aws-auth is sent, and counted.
    probe(&alice, &w, &[("mapRoles", NODE_ROLES)])
        .await
        .expect("a valid edit");
    assert_eq!(reviews(), before + 1.0);
    println!(
        "webhook reviews: {} of aws-auth; 0 of 40 writes to other ConfigMaps",
        before + 1.0
    );
    drop(op);
    let _ = hooks.delete(hook, &DeleteParams::default()).await;
}
