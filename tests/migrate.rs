//! `migrate plan|apply|verify` end to end: aws-auth on the real API server, access entries on the
//! local EKS server (`hack/local-aws/`, started by `hack/test.sh`), the binary in between.
mod support;

use std::collections::BTreeMap;
use std::process::Command;

use aws_sdk_eks::types::AuthenticationMode;
use serde_json::Value;
use support::World;
use support::eks::{CLUSTER_ADMIN, bucket, cluster, eks, entry_count, set_mode};

/// `aws-auth-operator migrate ARGS` against the world's aws-auth, not started yet.
fn migrate_cmd(w: &World, cluster: &str, args: &[&str]) -> Command {
    let mut cmd = support::eks::cli(&["migrate"]);
    cmd.args(args)
        .args(["--cluster-name", cluster, "--aws-auth-name", &w.name]);
    cmd
}

/// Runs `aws-auth-operator migrate ARGS` against the world's aws-auth: exit code, stdout, stderr.
fn migrate(w: &World, cluster: &str, args: &[&str]) -> (i32, String, String) {
    let o = migrate_cmd(w, cluster, args).output().expect("binary runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `render` of the shipped examples (grants + aws-auth): the corpus a migration starts from.
fn rendered_examples(grants: &[&str]) -> BTreeMap<String, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aws-auth-operator"));
    cmd.args(["render", "--aws-auth", "examples/aws-auth.yaml"]);
    for g in grants {
        cmd.args(["-f", &format!("examples/grants/{g}.yaml")]);
    }
    let o = cmd
        .args([
            "--privileged-principal",
            "arn:aws:iam::111122223333:user/platform/*",
            "--allowed-account",
            "444455556666",
        ])
        .output()
        .expect("render runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cm: Value = serde_yaml::from_slice(&o.stdout).expect("a ConfigMap");
    serde_json::from_value(cm["data"].clone()).unwrap()
}

/// Replaces keys of the world's aws-auth `data`.
async fn set_data(w: &World, data: Value) {
    let patch = serde_json::json!({ "data": data });
    w.configmaps
        .patch(
            &w.name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
}

fn items(json: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_examples_migrate_checked_and_the_account_grant_is_refused() {
    let w = World::new("migrate-examples").await;
    let data = rendered_examples(&["developers", "platform-admin"]);
    let pairs: Vec<(&str, &str)> = data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    w.create_configmap(&pairs).await;
    let name = format!("examples-{}", std::process::id());
    cluster(&name, AuthenticationMode::ConfigMap).await;

    // CONFIG_MAP: the plan says what to do first, and apply refuses to start.
    let (code, out, err) = migrate(&w, &name, &["plan"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("authenticationMode=API_AND_CONFIG_MAP"),
        "{out}"
    );
    let (code, _, err) = migrate(&w, &name, &["apply"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("CONFIG_MAP mode"), "{err}");

    set_mode(&name, AuthenticationMode::ApiAndConfigMap).await;
    let (code, out, err) = migrate(&w, &name, &["apply", "-o", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("created 5 of 5 access entries"), "{err}");
    let got = items(&out);
    assert_eq!(got.len(), 5, "{out}");
    assert!(got.iter().all(|i| i["action"] == "agrees"), "{out}");

    // What EKS holds now, read back with the SDK.
    let entry = |arn: &'static str| {
        let name = name.clone();
        async move {
            eks()
                .describe_access_entry()
                .cluster_name(&name)
                .principal_arn(arn)
                .send()
                .await
                .expect("entry exists")
                .access_entry
                .unwrap()
        }
    };
    let node =
        entry("arn:aws:iam::111122223333:role/eks-nodegroup-general-NodeInstanceRole-1A2B3C4D5E6F")
            .await;
    assert_eq!(node.r#type(), Some("EC2_LINUX"));
    let fargate = entry("arn:aws:iam::111122223333:role/eks-fargate-pod-execution-role").await;
    assert_eq!(fargate.r#type(), Some("FARGATE_LINUX"));
    let dev = entry("arn:aws:iam::111122223333:role/Developers").await;
    assert_eq!(dev.username(), Some("developer:{{SessionName}}"));
    assert_eq!(dev.kubernetes_groups(), ["developers"]);
    assert_eq!(
        dev.tags().unwrap()["aws-auth.dev/migrated-from"],
        "aws-auth"
    );
    let admin = "arn:aws:iam::111122223333:user/platform/designated_user";
    let policies = eks()
        .list_associated_access_policies()
        .cluster_name(&name)
        .principal_arn(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        policies.associated_access_policies()[0].policy_arn(),
        Some(CLUSTER_ADMIN)
    );
    assert!(entry(admin).await.kubernetes_groups().is_empty());

    // Verified, and the next step is the switch to API; a second apply creates nothing.
    let (code, out, _) = migrate(&w, &name, &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("migration verified"), "{out}");
    assert!(out.contains("authenticationMode=API (one way"), "{out}");
    let (code, _, err) = migrate(&w, &name, &["apply"]);
    assert_eq!(code, 0);
    assert!(!err.contains("created"), "{err}");

    // The account grant has no access-entry form: verification fails and says why.
    let full = rendered_examples(&["developers", "platform-admin", "security-audit-account"]);
    set_data(&w, serde_json::json!(full)).await;
    let (code, out, _) = migrate(&w, &name, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("cannot   mapAccounts line 1: 444455556666")
            && out.contains("do not switch to API yet"),
        "{out}"
    );
    // And someone who edits an entry behind the migration's back is caught.
    eks()
        .update_access_entry()
        .cluster_name(&name)
        .principal_arn("arn:aws:iam::111122223333:role/Developers")
        .kubernetes_groups("admins")
        .send()
        .await
        .unwrap();
    let (code, out, _) = migrate(&w, &name, &["plan"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("groups are [admins], not [developers]"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_entries_migrate_and_one_untranslatable_fails_the_verification() {
    bucket(1000, 2000);
    let w = World::new("migrate-large").await;
    let mut roles = String::new();
    for i in 0..1000 {
        let groups = if i % 100 == 0 {
            "[\"system:masters\"]".to_string()
        } else {
            format!("[\"team-{}\"]", i % 10)
        };
        roles += &format!(
            "- rolearn: \"arn:aws:iam::111122223333:role/r{i:04}\"\n  username: \"r{i}:{{{{SessionName}}}}\"\n  groups: {groups}\n"
        );
    }
    w.create_configmap(&[("mapRoles", &roles)]).await;
    let name = format!("large-{}", std::process::id());
    cluster(&name, AuthenticationMode::ApiAndConfigMap).await;
    let (code, out, err) = migrate(&w, &name, &["apply"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("created 1000 of 1000 access entries"), "{err}");
    assert!(
        out.contains("0 to create, 1000 agree, 0 differ, 0 cannot"),
        "{out}"
    );
    assert_eq!(entry_count(&name).await, 1000);

    roles += "- rolearn: \"arn:aws:iam::111122223333:role/legacy\"\n  username: \"legacy-{{AccountID}}\"\n  groups: [\"ops\"]\n";
    set_data(&w, serde_json::json!({"mapRoles": roles})).await;
    let (code, out, _) = migrate(&w, &name, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("arn:aws:iam::111122223333:role/legacy")
            && out.contains("username template `{{AccountID}}` is not one access entries expand")
            && out.contains("0 to create, 1000 agree, 0 differ, 1 cannot"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_apply_runs_again_and_creates_only_what_is_missing() {
    let w = World::new("migrate-interrupted").await;
    let roles: String = (0..300)
        .map(|i| {
            format!(
                "- rolearn: \"arn:aws:iam::111122223333:role/i{i:03}\"\n  username: \"i{i}\"\n  groups: [\"team\"]\n"
            )
        })
        .collect();
    w.create_configmap(&[("mapRoles", &roles)]).await;
    let name = format!("interrupted-{}", std::process::id());
    cluster(&name, AuthenticationMode::ApiAndConfigMap).await;
    // Cut off mid-way (its pacer starts at 5 calls a second).
    let mut first = migrate_cmd(&w, &name, &["apply"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let made = entry_count(&name).await;
    assert!(made > 0 && made < 300, "{made} created before the cut");
    let (code, out, err) = migrate(&w, &name, &["apply"]);
    assert_eq!(code, 0, "{out}{err}");
    let left = 300 - made;
    // At most the one in flight at the cut is found already there, never created twice.
    assert!(
        err.contains(&format!("created {left} of {left} access entries"))
            || err.contains(&format!("of {} access entries", left - 1)),
        "{made} before the cut: {err}"
    );
    assert!(
        out.contains("0 to create, 300 agree, 0 differ, 0 cannot"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_aws_auth_names_without_its_path_gets_its_full_arn_from_iam() {
    // The caller's account on the local AWS server (moto's), where the role lives.
    const CALLER: &str = "123456789012";
    let name = format!("pathed-{}", std::process::id());
    support::eks::role_with_path(&name, "/platform/ci/").await;
    let w = World::new("migrate-role-path").await;
    let roles = format!(
        "- rolearn: \"arn:aws:iam::{CALLER}:role/{name}\"\n  username: \"ci:{{{{SessionName}}}}\"\n  groups: [\"deployers\"]\n- rolearn: \"arn:aws:iam::{CALLER}:role/no-such-role-{name}\"\n  username: \"ghost\"\n"
    );
    w.create_configmap(&[("mapRoles", &roles)]).await;
    let cluster_name = format!("role-path-{}", std::process::id());
    cluster(&cluster_name, AuthenticationMode::ApiAndConfigMap).await;
    let (code, out, err) = migrate(&w, &cluster_name, &["apply", "-o", "json"]);
    // The role that does not exist cannot be migrated, so the migration is not complete...
    assert_eq!(code, 1, "{out}{err}");
    let got = items(&out);
    assert_eq!(got[1]["action"], "cannot", "{out}");
    // ...but the one that does was created under its full ARN, and agrees.
    let full = format!("arn:aws:iam::{CALLER}:role/platform/ci/{name}");
    assert_eq!(got[0]["action"], "agrees", "{out}");
    assert_eq!(got[0]["entry"]["principalArn"], full);
    let e = eks()
        .describe_access_entry()
        .cluster_name(&cluster_name)
        .principal_arn(&full)
        .send()
        .await
        .expect("the entry is under the full ARN");
    assert_eq!(
        e.access_entry.unwrap().username(),
        Some("ci:{{SessionName}}")
    );
}
