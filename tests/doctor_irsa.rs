//! `doctor irsa` end to end: IAM, EKS and STS on moto (loopback), ServiceAccounts, pods and
//! TokenRequest on the real kube-apiserver, the binary as a person runs it.
mod support;

use std::collections::BTreeMap;
use std::process::Command;

use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const ACCOUNT: &str = "123456789012";

fn endpoint() -> String {
    std::env::var("AWS_AUTH_TEST_STS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "no test AWS endpoint: run the suite with `hack/test.sh`, which starts moto and sets \
             AWS_AUTH_TEST_STS_ENDPOINT"
        )
    })
}

fn creds() -> Credentials {
    Credentials::new("AKIAEXAMPLE", "secret", None, None, "test")
}

fn iam() -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint())
            .credentials_provider(creds())
            .build(),
    )
}

fn eks() -> aws_sdk_eks::Client {
    aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::Config::builder()
            .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
            .region(aws_sdk_eks::config::Region::new("us-east-1"))
            .endpoint_url(endpoint())
            .credentials_provider(creds())
            .build(),
    )
}

/// One IRSA setup, healthy unless a test breaks a part of it.
struct Setup {
    ns: String,
    sa: String,
    role: String,
    issuer: String,
    hostpath: String,
}

impl Setup {
    fn new(case: &str) -> Setup {
        let hostpath = format!(
            "oidc.eks.us-east-1.amazonaws.com/id/{}",
            case.to_uppercase().replace('-', "")
        );
        Setup {
            ns: format!("irsa-{case}"),
            sa: "app".into(),
            role: format!("irsa-{case}"),
            issuer: format!("https://{hostpath}"),
            hostpath,
        }
    }

    fn provider_arn(&self) -> String {
        format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{}", self.hostpath)
    }

    fn role_arn(&self) -> String {
        format!("arn:aws:iam::{ACCOUNT}:role/{}", self.role)
    }

    fn trust(&self, op: &str, sub: &str) -> String {
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": self.provider_arn()},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {op: {
                format!("{}:sub", self.hostpath): sub,
                format!("{}:aud", self.hostpath): "sts.amazonaws.com",
            }}
        }]})
        .to_string()
    }

    async fn provider(&self, client_ids: &[&str]) {
        iam()
            .create_open_id_connect_provider()
            .url(&self.issuer)
            .set_client_id_list(Some(client_ids.iter().map(|s| s.to_string()).collect()))
            .thumbprint_list("9e99a48a9960b14926bb7f3b02e22da2b0ab7280")
            .send()
            .await
            .expect("create OIDC provider");
    }

    async fn role(&self, policy: &str) {
        iam()
            .create_role()
            .role_name(&self.role)
            .assume_role_policy_document(policy)
            .send()
            .await
            .expect("create role");
    }

    /// The namespace and the ServiceAccount with `annotation` as its role ARN.
    async fn service_account(&self, annotation: Option<&str>) {
        let client = support::client().await;
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(self.ns.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        let _ = Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await;
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(self.sa.clone()),
                annotations: annotation.map(|a| {
                    BTreeMap::from([("eks.amazonaws.com/role-arn".to_string(), a.to_string())])
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<ServiceAccount>::namespaced(client, &self.ns)
            .create(&PostParams::default(), &sa)
            .await
            .expect("create ServiceAccount");
    }

    /// A pod of the ServiceAccount, as the pod identity webhook leaves it (`injected`) or not.
    async fn pod(&self, name: &str, injected: bool) {
        let client = support::client().await;
        let mut spec = json!({
            "serviceAccountName": self.sa,
            "automountServiceAccountToken": false,
            "containers": [{"name": "app", "image": "app:1"}],
        });
        if injected {
            spec["containers"][0]["env"] = json!([
                {"name": "AWS_ROLE_ARN", "value": self.role_arn()},
                {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"},
            ]);
            spec["volumes"] = json!([{"name": "aws-iam-token", "projected": {"sources": [
                {"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token"}}
            ]}}]);
        }
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec
        }))
        .unwrap();
        Api::<Pod>::namespaced(client, &self.ns)
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
    }

    /// A healthy setup: provider with the audience, role trusting exactly this ServiceAccount,
    /// annotated ServiceAccount, an injected pod.
    async fn healthy(&self) {
        self.provider(&["sts.amazonaws.com"]).await;
        self.role(&self.trust(
            "StringEquals",
            &format!("system:serviceaccount:{}:{}", self.ns, self.sa),
        ))
        .await;
        self.service_account(Some(&self.role_arn())).await;
        self.pod("app-1", true).await;
    }

    /// Runs `doctor irsa -o json`: exit code and the checks as (name, status, detail, fix).
    fn doctor(&self, extra: &[&str]) -> (i32, Vec<(String, String, String, String)>) {
        let out = Command::new(env!("CARGO_BIN_EXE_aws-auth-operator"))
            .args([
                "doctor",
                "irsa",
                "-n",
                &self.ns,
                "--service-account",
                &self.sa,
            ])
            .args([
                "--endpoint-url",
                &endpoint(),
                "--region",
                "us-east-1",
                "-o",
                "json",
            ])
            .args(extra)
            .env_remove("AWS_PROFILE")
            .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .output()
            .expect("binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let checks = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                (s("check"), s("status"), s("detail"), s("fix"))
            })
            .collect();
        (out.status.code().unwrap_or(-1), checks)
    }

    /// `doctor irsa --issuer-url ISSUER`.
    fn doctor_issuer(&self) -> (i32, Vec<(String, String, String, String)>) {
        self.doctor(&["--issuer-url", &self.issuer])
    }

    /// A setup with one part broken: the provider's client ids (none: no provider), the trust
    /// policy's StringEquals `:sub`, the annotation (default: the role's ARN, with an injected pod).
    async fn arrange(&self, client_ids: Option<&[&str]>, sub: &str, annotation: Option<&str>) {
        self.arrange_policy(client_ids, &self.trust("StringEquals", sub), annotation)
            .await;
    }

    /// [`Setup::arrange`] with a trust policy of its own.
    async fn arrange_policy(
        &self,
        client_ids: Option<&[&str]>,
        policy: &str,
        annotation: Option<&str>,
    ) {
        if let Some(ids) = client_ids {
            self.provider(ids).await;
        }
        self.role(policy).await;
        match annotation {
            Some(a) => self.service_account(Some(a)).await,
            None => {
                self.service_account(Some(&self.role_arn())).await;
                self.pod("app-1", true).await;
            }
        }
    }
}

/// The one failing check, which must be `name` and say `detail` (and `fix`).
fn only_failure(
    result: &(i32, Vec<(String, String, String, String)>),
    name: &str,
    detail: &str,
    fix: &str,
) {
    let (code, checks) = result;
    assert_eq!(*code, 1, "{checks:#?}");
    let failed: Vec<_> = checks.iter().filter(|c| c.1 == "fail").collect();
    assert_eq!(failed.len(), 1, "{checks:#?}");
    let (check, _, d, f) = failed[0];
    assert_eq!(check, name, "{checks:#?}");
    assert!(d.contains(detail), "detail `{d}` lacks `{detail}`");
    assert!(f.contains(fix), "fix `{f}` lacks `{fix}`");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_setup_is_reported_healthy_and_the_role_is_assumed() {
    let s = Setup::new("healthy");
    // The issuer comes from EKS here.
    let cluster = eks()
        .create_cluster()
        .name("irsa-doctor")
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/eks-cluster"))
        .resources_vpc_config(aws_sdk_eks::types::VpcConfigRequest::builder().build())
        .send()
        .await
        .expect("create cluster");
    let issuer = cluster
        .cluster()
        .unwrap()
        .identity()
        .unwrap()
        .oidc()
        .unwrap()
        .issuer()
        .unwrap()
        .to_string();
    let hostpath = issuer.trim_start_matches("https://").to_string();
    let s = Setup {
        issuer,
        hostpath,
        ..s
    };
    s.healthy().await;
    let (code, checks) = s.doctor(&["--cluster", "irsa-doctor", "--assume"]);
    assert_eq!(code, 0, "{checks:#?}");
    let names: Vec<&str> = checks.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "service-account",
            "role-annotation",
            "oidc-issuer",
            "oidc-provider",
            "role",
            "trust-policy",
            "pods",
            "assume-role"
        ]
    );
    assert!(checks.iter().all(|c| c.1 == "ok"), "{checks:#?}");
    let assumed = &checks.last().unwrap().2;
    assert!(
        assumed.contains(&format!("assumed-role/{}/aws-auth-operator-doctor", s.role)),
        "{assumed}"
    );

    // The text checklist, as a person reads it.
    let out = Command::new(env!("CARGO_BIN_EXE_aws-auth-operator"))
        .args([
            "doctor",
            "irsa",
            "-n",
            &s.ns,
            "--service-account",
            &s.sa,
            "--issuer-url",
            &s.issuer,
        ])
        .args(["--endpoint-url", &endpoint(), "--region", "us-east-1"])
        .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("  OK    trust-policy") && text.ends_with("healthy\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_broken_step_is_named_with_its_fix() {
    const STS: Option<&[&str]> = Some(&["sts.amazonaws.com"]);

    // No IAM OIDC provider for the issuer.
    let s = Setup::new("no-provider");
    s.arrange(None, "system:serviceaccount:irsa-no-provider:app", None)
        .await;
    only_failure(
        &s.doctor_issuer(),
        "oidc-provider",
        "no IAM OIDC provider for oidc.eks.us-east-1.amazonaws.com/id/NOPROVIDER",
        "create-open-id-connect-provider",
    );

    // A provider without the sts.amazonaws.com audience.
    let s = Setup::new("no-audience");
    s.arrange(
        Some(&["something-else"]),
        "system:serviceaccount:irsa-no-audience:app",
        None,
    )
    .await;
    only_failure(
        &s.doctor_issuer(),
        "oidc-provider",
        "does not list the audience sts.amazonaws.com",
        "add-client-id-to-open-id-connect-provider",
    );

    // :sub for another namespace.
    let s = Setup::new("other-ns");
    s.arrange(STS, "system:serviceaccount:default:app", None)
        .await;
    only_failure(
        &s.doctor_issuer(),
        "trust-policy",
        "allows namespace default, not irsa-other-ns",
        "system:serviceaccount:irsa-other-ns:app",
    );

    // A wildcard under StringEquals.
    let s = Setup::new("wildcard");
    s.arrange(STS, "system:serviceaccount:irsa-wildcard:*", None)
        .await;
    only_failure(
        &s.doctor_issuer(),
        "trust-policy",
        "StringEquals compares literally",
        "StringEquals",
    );

    // The right Allow beside an explicit Deny for every ServiceAccount of the namespace: STS
    // refuses, and so does the doctor.
    let s = Setup::new("deny");
    let mut policy: serde_json::Value =
        serde_json::from_str(&s.trust("StringEquals", "system:serviceaccount:irsa-deny:app"))
            .unwrap();
    policy["Statement"].as_array_mut().unwrap().push(json!({
        "Effect": "Deny",
        "Principal": {"Federated": s.provider_arn()},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringLike": {format!("{}:sub", s.hostpath): "system:serviceaccount:irsa-deny:*"}}
    }));
    s.arrange_policy(STS, &policy.to_string(), None).await;
    only_failure(
        &s.doctor_issuer(),
        "trust-policy",
        "statement 2 denies sts:AssumeRoleWithWebIdentity",
        "remove that Deny",
    );

    // A wildcard action allows: healthy.
    let s = Setup::new("action-wildcard");
    let policy = s
        .trust(
            "StringEquals",
            "system:serviceaccount:irsa-action-wildcard:app",
        )
        .replace("sts:AssumeRoleWithWebIdentity", "sts:AssumeRoleWith*");
    s.arrange_policy(STS, &policy, None).await;
    let (code, checks) = s.doctor_issuer();
    assert_eq!(code, 0, "{checks:#?}");
    assert!(
        checks.iter().any(|c| c.0 == "trust-policy" && c.1 == "ok"),
        "{checks:#?}"
    );

    // A typo in the annotation.
    let s = Setup::new("typo");
    let typo = format!("arn:aws:iam:{ACCOUNT}:role/{}", s.role);
    s.arrange(STS, "system:serviceaccount:irsa-typo:app", Some(&typo))
        .await;
    let result = s.doctor_issuer();
    let failed: Vec<_> = result.1.iter().filter(|c| c.1 == "fail").collect();
    assert_eq!(failed[0].0, "role-annotation", "{:#?}", result.1);
    assert!(
        failed[0].2.contains("is not an ARN") || failed[0].2.contains("not an IAM ARN"),
        "{:#?}",
        failed
    );
    assert!(failed[0].3.contains("arn:aws:iam::ACCOUNT:role/NAME"));

    // A role ARN with a path the role does not have.
    let s = Setup::new("path");
    let with_path = format!("arn:aws:iam::{ACCOUNT}:role/team/{}", s.role);
    s.arrange(STS, "system:serviceaccount:irsa-path:app", Some(&with_path))
        .await;
    only_failure(
        &s.doctor_issuer(),
        "role",
        &format!(
            "the role's ARN is {}, but the annotation says {with_path}",
            s.role_arn()
        ),
        &format!("role-arn={}", s.role_arn()),
    );

    // Pods without the environment: the pod identity webhook is missing, then present but the
    // pods predate the annotation.
    let s = Setup::new("no-env");
    s.provider(&["sts.amazonaws.com"]).await;
    s.role(&s.trust("StringEquals", "system:serviceaccount:irsa-no-env:app"))
        .await;
    s.service_account(None).await;
    s.pod("early", false).await;
    let client = support::client().await;
    let patch = json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": s.role_arn()}}});
    Api::<ServiceAccount>::namespaced(client.clone(), &s.ns)
        .patch(&s.sa, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let (code, checks) = s.doctor_issuer();
    assert_eq!(code, 1);
    let pods: Vec<_> = checks.iter().filter(|c| c.0 == "pods").collect();
    assert_eq!(pods.len(), 1, "{checks:#?}");
    assert!(
        pods[0].2.contains(
            "pod early lacks AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE, the projected token volume"
        ),
        "{}",
        pods[0].2
    );
    assert!(
        pods[0].2.contains("the pod identity webhook is missing"),
        "{}",
        pods[0].2
    );
    assert!(pods[0].3.contains("delete pod early"), "{}", pods[0].3);
    assert!(
        checks.iter().filter(|c| c.0 != "pods").all(|c| c.1 == "ok"),
        "{checks:#?}"
    );
    // With the webhook installed (its configuration only; it selects nothing here).
    let mwc: k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration =
        serde_json::from_value(json!({
            "metadata": {"name": "pod-identity-webhook"},
            "webhooks": [{
                "name": "iam-for-pods.amazonaws.com",
                "clientConfig": {"url": "https://127.0.0.1:1/mutate"},
                "rules": [{"apiGroups": ["example.invalid"], "apiVersions": ["v1"], "resources": ["nothing"], "operations": ["CREATE"]}],
                "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            }]
        }))
        .unwrap();
    let mwcs: Api<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration> =
        Api::all(client);
    let _ = mwcs
        .delete("pod-identity-webhook", &Default::default())
        .await;
    mwcs.create(&PostParams::default(), &mwc).await.unwrap();
    let (code, checks) = s.doctor_issuer();
    mwcs.delete("pod-identity-webhook", &Default::default())
        .await
        .unwrap();
    assert_eq!(code, 1);
    let pods: Vec<_> = checks.iter().filter(|c| c.0 == "pods").collect();
    assert!(
        pods[0]
            .2
            .contains("did not change it: the pod was created before the annotation"),
        "{}",
        pods[0].2
    );

    // A pod created a second before the annotation: the ServiceAccount's managedFields (the API
    // server's record of when each field was written) say so, and the webhook is not asked.
    let s = Setup::new("late");
    s.provider(&["sts.amazonaws.com"]).await;
    s.role(&s.trust("StringEquals", "system:serviceaccount:irsa-late:app"))
        .await;
    s.service_account(None).await;
    s.pod("before", false).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let patch = json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": s.role_arn()}}});
    let sa = Api::<ServiceAccount>::namespaced(support::client().await, &s.ns)
        .patch(
            &s.sa,
            &PatchParams::apply("platform-gitops"),
            &Patch::Apply(&json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": s.sa, "annotations": patch["metadata"]["annotations"]}})),
        )
        .await
        .unwrap();
    let written = sa
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some("platform-gitops"))
        .and_then(|m| m.time)
        .expect("the server records who wrote the annotation, and when");
    let (code, checks) = s.doctor_issuer();
    assert_eq!(code, 1);
    let pods: Vec<_> = checks.iter().filter(|c| c.0 == "pods").collect();
    assert!(
        pods[0].2.contains(&format!(
            "it was created before the ServiceAccount got its eks.amazonaws.com/role-arn annotation ({})",
            written.0
        )),
        "{}",
        pods[0].2
    );
}
