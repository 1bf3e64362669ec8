//! The operator's access-entry backend end to end: grants on the real API server, access entries
//! on the local EKS server (`hack/local-aws/`, started by `hack/test.sh`), the operator binary in
//! between, in each authentication mode.
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_auth_operator::api::AccessPolicy;
use aws_sdk_eks::types::AuthenticationMode;
use kube::api::{DeleteParams, Patch, PatchParams};
use support::eks::{CLUSTER_ADMIN, CREATOR, aws_env, cluster_with, eks, set_mode};
use support::{Operator, World, event_notes, eventually, role};

const VIEW: &str = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy";

fn arn(name: &str) -> String {
    format!("arn:aws:iam::111122223333:role/{name}")
}

/// A test's world and its EKS cluster (named after it and this run) in `mode`, with the
/// creator's admin entry when `bootstrap` is set.
async fn world(name: &str, mode: AuthenticationMode, bootstrap: bool) -> (World, String) {
    let w = World::new(name).await;
    let c = format!("{name}-{}", std::process::id());
    cluster_with(&c, mode, bootstrap).await;
    (w, c)
}

/// The operator on `cluster`'s access entries (and the world's aws-auth), `backend` as given.
fn operator(w: &World, cluster: &str, backend: &str, extra: &[&str]) -> Operator {
    let env = aws_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut args = vec![
        "--backend",
        backend,
        "--cluster-name",
        cluster,
        "--operator-name",
        &w.name,
        "--cluster-creator-arn",
        CREATOR,
    ];
    args.extend_from_slice(extra);
    Operator::start_env(&w.name, &args, None, &env)
}

/// An access entry as EKS holds it: (username, groups, tags, policies as `NAME[ in ns,..]`).
async fn entry(cluster: &str, principal: &str) -> Option<Entry> {
    let out = eks()
        .describe_access_entry()
        .cluster_name(cluster)
        .principal_arn(principal)
        .send()
        .await;
    let e = match out {
        Ok(o) => o.access_entry?.clone(),
        Err(e) if format!("{e:?}").contains("ResourceNotFoundException") => return None,
        Err(e) => panic!("{e:?}"),
    };
    // Deleted between the two calls: gone.
    let policies = match eks()
        .list_associated_access_policies()
        .cluster_name(cluster)
        .principal_arn(principal)
        .send()
        .await
    {
        Ok(o) => o,
        Err(e) if format!("{e:?}").contains("ResourceNotFoundException") => return None,
        Err(e) => panic!("{e:?}"),
    }
    .associated_access_policies
    .unwrap_or_default()
    .into_iter()
    .map(|p| {
        let name = p.policy_arn.unwrap_or_default();
        let ns = p
            .access_scope
            .and_then(|s| s.namespaces)
            .unwrap_or_default();
        if ns.is_empty() {
            name
        } else {
            format!("{name} in {}", ns.join(","))
        }
    })
    .collect();
    Some(Entry {
        username: e.username,
        groups: e.kubernetes_groups.unwrap_or_default(),
        tags: e.tags.unwrap_or_default().into_iter().collect(),
        policies,
    })
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    username: Option<String>,
    groups: Vec<String>,
    tags: BTreeMap<String, String>,
    policies: Vec<String>,
}

async fn wait_entry(
    cluster: &str,
    principal: &str,
    what: &str,
    ok: impl Fn(&Option<Entry>) -> bool,
) -> Option<Entry> {
    eventually(what, Duration::from_secs(60), || async {
        let e = entry(cluster, principal).await;
        ok(&e).then_some(e)
    })
    .await
}

/// Whether aws-auth's mapRoles holds an entry whose ARN passes `f`.
async fn in_aws_auth(w: &World, f: impl Fn(&str) -> bool) -> bool {
    w.read()
        .await
        .unwrap()
        .roles
        .entries
        .iter()
        .any(|e| f(&e.value.arn))
}

async fn backends(w: &World, name: &str) -> Vec<String> {
    let g = w.grants.get(&w.full_name(name)).await.unwrap();
    g.status.map(|s| s.backends).unwrap_or_default()
}

async fn patch_spec(w: &World, name: &str, spec: serde_json::Value) {
    w.grants
        .patch(
            &w.full_name(name),
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grants_life_on_access_entries_and_whose_entries_are_kept() {
    let (w, c) = world("ae-life", AuthenticationMode::Api, true).await;
    let c = c.as_str();
    // Someone else's entry, and a grant for it that does not adopt.
    eks()
        .create_access_entry()
        .cluster_name(c)
        .principal_arn(arn("theirs"))
        .username("theirs")
        .kubernetes_groups("their-group")
        .send()
        .await
        .unwrap();
    let _op = operator(&w, c, "auto", &["--resync-interval", "3s"]);
    w.create("dev", role(&arn("dev"), "dev", &["devs"])).await;
    w.create("admin", role(&arn("admin"), "admin", &["system:masters"]))
        .await;
    w.create("theirs", role(&arn("theirs"), "mine", &["mine"]))
        .await;

    let m = w.wait_reason("dev", "Applied").await;
    assert!(m.contains("username dev, groups [devs]"), "{m}");
    assert_eq!(backends(&w, "dev").await, ["access-entries"]);
    let dev = entry(c, &arn("dev")).await.expect("dev's entry");
    assert_eq!(
        (dev.username.as_deref(), &dev.groups[..]),
        (Some("dev"), &["devs".to_string()][..])
    );
    assert_eq!(dev.tags["aws-auth.dev/managed-by"], w.name);
    let uid = w
        .grants
        .get(&w.full_name("dev"))
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    assert_eq!(dev.tags["aws-auth.dev/grant-uid"], uid);

    // system:masters, which access entries refuse as a group, is the cluster-admin policy.
    let m = w.wait_reason("admin", "Applied").await;
    assert!(m.contains("AmazonEKSClusterAdminPolicy"), "{m}");
    let admin = entry(c, &arn("admin")).await.unwrap();
    assert_eq!(
        (admin.groups.len(), &admin.policies[..]),
        (0, &[CLUSTER_ADMIN.to_string()][..])
    );

    // No username: EKS generates one.
    let mut generated = role(&arn("gen"), "x", &["devs"]);
    generated.username = None;
    w.create("gen", generated).await;
    let m = w.wait_reason("gen", "Applied").await;
    assert!(m.contains("username generated by EKS"), "{m}");
    let named_by_eks = entry(c, &arn("gen")).await.unwrap();
    assert_eq!(
        named_by_eks.username.as_deref(),
        Some("arn:aws:sts::111122223333:assumed-role/gen/{{SessionName}}")
    );

    // Someone else's entry is kept until a grant adopts it.
    let m = w.wait_reason("theirs", "Conflict").await;
    assert!(m.contains("set adopt: true"), "{m}");
    assert_eq!(
        entry(c, &arn("theirs")).await.unwrap().username.as_deref(),
        Some("theirs")
    );
    patch_spec(&w, "theirs", serde_json::json!({"adopt": true})).await;
    w.wait_reason("theirs", "Applied").await;
    let theirs = entry(c, &arn("theirs")).await.unwrap();
    assert_eq!(
        (theirs.username.as_deref(), &theirs.groups[..]),
        (Some("mine"), &["mine".to_string()][..])
    );
    assert_eq!(theirs.tags["aws-auth.dev/managed-by"], w.name);

    // Edits: groups, then policies in and out.
    patch_spec(&w, "dev", serde_json::json!({"groups": ["devs", "oncall"]})).await;
    wait_entry(c, &arn("dev"), "dev's groups updated", |e| {
        e.as_ref().is_some_and(|e| e.groups == ["devs", "oncall"])
    })
    .await;
    let policies = vec![AccessPolicy {
        policy: "AmazonEKSViewPolicy".into(),
        namespaces: vec!["team-a".into()],
    }];
    patch_spec(&w, "dev", serde_json::json!({"accessPolicies": policies})).await;
    wait_entry(c, &arn("dev"), "dev's policy associated", |e| {
        e.as_ref()
            .is_some_and(|e| e.policies == [format!("{VIEW} in team-a")])
    })
    .await;
    patch_spec(&w, "dev", serde_json::json!({"accessPolicies": null})).await;
    wait_entry(c, &arn("dev"), "dev's policy disassociated", |e| {
        e.as_ref().is_some_and(|e| e.policies.is_empty())
    })
    .await;

    // Deleted grant, deleted entry; the creator's entry is never touched, aws-auth never written.
    w.grants
        .delete(&w.full_name("dev"), &DeleteParams::default())
        .await
        .unwrap();
    wait_entry(c, &arn("dev"), "dev's entry deleted", Option::is_none).await;
    let creator = entry(c, CREATOR).await.expect("the creator's entry stays");
    assert_eq!(creator.policies, [CLUSTER_ADMIN.to_string()]);
    assert!(creator.tags.is_empty(), "{creator:?}");
    assert!(
        w.configmap().await.is_none(),
        "aws-auth is not written under API"
    );
    // An entry of the operator's deleted behind its back is made again at the next resync.
    eks()
        .delete_access_entry()
        .cluster_name(c)
        .principal_arn(arn("admin"))
        .send()
        .await
        .unwrap();
    let again = wait_entry(
        c,
        &arn("admin"),
        "admin's entry made again",
        Option::is_some,
    )
    .await;
    assert_eq!(again.unwrap().policies, [CLUSTER_ADMIN.to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mode_switched_mid_run_moves_grants_to_access_entries() {
    let (w, c) = world("ae-mode", AuthenticationMode::ConfigMap, false).await;
    let c = c.as_str();
    w.create_configmap(&[("mapRoles", support::NODE_ROLES)])
        .await;
    let _op = operator(&w, c, "auto", &["--resync-interval", "2s"]);
    w.create("a", role(&arn("a"), "a", &["team"])).await;
    w.wait_reason("a", "Applied").await;
    assert_eq!(backends(&w, "a").await, ["aws-auth"]);
    // What aws-auth cannot hold is said.
    let mut viewer = role(&arn("viewer"), "viewer", &[]);
    viewer.access_policies = vec![AccessPolicy {
        policy: "AmazonEKSViewPolicy".into(),
        namespaces: vec![],
    }];
    w.create("viewer", viewer).await;
    let m = w.wait_reason("viewer", "Applied").await;
    assert!(m.contains("take effect through EKS access entries"), "{m}");
    assert!(in_aws_auth(&w, |a| a == arn("a")).await);

    set_mode(c, AuthenticationMode::ApiAndConfigMap).await;
    wait_entry(c, &arn("a"), "a's access entry", Option::is_some).await;
    eventually(
        "both backends in a's status",
        Duration::from_secs(30),
        || async { (backends(&w, "a").await == ["aws-auth", "access-entries"]).then_some(()) },
    )
    .await;
    let notes = event_notes(&w.client, &w.name, "AuthenticationModeChanged").await;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("from CONFIG_MAP to API_AND_CONFIG_MAP")),
        "{notes:?}"
    );
    // The node role EKS wrote stays in aws-auth: the operator never owned it.
    assert!(in_aws_auth(&w, |a| a.contains("NodeInstanceRole")).await);

    set_mode(c, AuthenticationMode::Api).await;
    eventually(
        "access entries alone in a's status",
        Duration::from_secs(30),
        || async { (backends(&w, "a").await == ["access-entries"]).then_some(()) },
    )
    .await;
    let before = w.configmap().await.unwrap().data;
    w.create("b", role(&arn("b"), "b", &["team"])).await;
    wait_entry(c, &arn("b"), "b's access entry", Option::is_some).await;
    w.wait_reason("b", "Applied").await;
    assert_eq!(
        w.configmap().await.unwrap().data,
        before,
        "aws-auth is left as it was under API"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mass_deletion_of_grants_waits_for_a_person() {
    let (w, c) = world("ae-breaker", AuthenticationMode::Api, false).await;
    let c = c.as_str();
    let _op = operator(&w, c, "access-entries", &[]);
    for i in 0..10 {
        w.create(
            &format!("g{i}"),
            role(&arn(&format!("r{i}")), "u", &["team"]),
        )
        .await;
    }
    for i in 0..10 {
        w.wait_reason(&format!("g{i}"), "Applied").await;
    }
    for i in 0..8 {
        w.grants
            .delete(&w.full_name(&format!("g{i}")), &DeleteParams::default())
            .await
            .unwrap();
    }
    let record = format!("{}-access-entries", w.name);
    let held = eventually("the deletion held", Duration::from_secs(30), || async {
        let cm = w.configmaps.get_opt(&record).await.ok()??;
        cm.metadata
            .annotations?
            .get("aws-auth.dev/removal-held")
            .cloned()
    })
    .await;
    assert!(
        held.contains("holding the deletion of 8 of this operator's 10 access entries"),
        "{held}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..10 {
        assert!(
            entry(c, &arn(&format!("r{i}"))).await.is_some(),
            "r{i} kept while held"
        );
    }
    let notes = event_notes(&w.client, &record, "RemovalHeld").await;
    assert!(!notes.is_empty());
    // The history holds the operator's entries as they were before the first change.
    let cm = w.configmaps.get(&record).await.unwrap();
    assert!(cm.data.unwrap().keys().any(|k| k.starts_with("entries-")));

    let token = held
        .rsplit_once("confirm-removal=")
        .unwrap()
        .1
        .split('`')
        .next()
        .unwrap()
        .to_string();
    w.configmaps
        .patch(
            &record,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"metadata": {"annotations": {"aws-auth.dev/confirm-removal": token}}})),
        )
        .await
        .unwrap();
    for i in 0..8 {
        wait_entry(
            c,
            &arn(&format!("r{i}")),
            "a confirmed deletion",
            Option::is_none,
        )
        .await;
    }
    assert!(entry(c, &arn("r9")).await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn what_eks_refuses_is_ready_false_with_its_message() {
    // Access entries forced on a cluster whose mode has no API: EKS refuses every call.
    let (w, c) = world("ae-refused", AuthenticationMode::ConfigMap, false).await;
    let c = c.as_str();
    let _op = operator(&w, c, "access-entries", &[]);
    w.create("a", role(&arn("a"), "a", &["team"])).await;
    let m = w.wait_reason("a", "AccessEntryRefused").await;
    assert!(
        m.contains("InvalidRequestException") && m.contains("authentication mode"),
        "{m}"
    );
    // An access policy that is not one is refused at the door, with its field.
    let mut spec = role(&arn("b"), "b", &[]);
    spec.access_policies = vec![AccessPolicy {
        policy: "arn:aws:iam::aws:policy/AdministratorAccess".into(),
        namespaces: vec![],
    }];
    let e = w
        .grants
        .create(&Default::default(), &w.grant("b", spec))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("spec.accessPolicies[0].policy"), "{e}");
}

/// `import --backend access-entries` turns the cluster's entries into grants that adopt them:
/// the operator then tags them and changes nothing else; the creator's entry is left out.
#[tokio::test(flavor = "multi_thread")]
async fn imported_access_entries_are_adopted_as_they_are() {
    let (w, c) = world("ae-import", AuthenticationMode::Api, true).await;
    let c = c.as_str();
    let path_role = "arn:aws:iam::111122223333:role/team/deployer";
    eks()
        .create_access_entry()
        .cluster_name(c)
        .principal_arn(path_role)
        .username("deployer:{{SessionName}}")
        .kubernetes_groups("deployers")
        .send()
        .await
        .unwrap();
    let out = support::eks::cli(&["import", "--backend", "access-entries", "--cluster-name", c])
        .args(["--cluster-creator-arn", CREATOR])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("the cluster creator's"), "{stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut grants: Vec<aws_auth_operator::api::IamAccessGrant> =
        serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
    assert_eq!(grants.len(), 1, "{text}");
    let g = grants.pop().unwrap();
    assert_eq!(g.spec.arn.as_deref(), Some(arn("deployer").as_str()));
    w.create("deployer", g.spec).await;
    let _op = operator(&w, c, "auto", &[]);
    let m = w.wait_reason("deployer", "Applied").await;
    assert!(m.contains("path kept"), "{m}");
    let e = entry(c, path_role).await.unwrap();
    assert_eq!(
        (e.username.as_deref(), &e.groups[..]),
        (
            Some("deployer:{{SessionName}}"),
            &["deployers".to_string()][..]
        )
    );
    assert_eq!(e.tags["aws-auth.dev/managed-by"], w.name);
    assert!(entry(c, CREATOR).await.unwrap().tags.is_empty());
}

/// A grant names a role as aws-auth does, without its path; its new access entry is made under
/// the role's full ARN, which the operator asks IAM for.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_entry_gets_the_roles_full_arn_from_iam() {
    // The caller's account on the local AWS server (moto's), where the role lives.
    const CALLER: &str = "123456789012";
    let (w, c) = world("ae-path", AuthenticationMode::Api, false).await;
    let c = c.as_str();
    let name = format!("pathed-{}", std::process::id());
    support::eks::role_with_path(&name, "/platform/ci/").await;
    let _op = operator(&w, c, "auto", &[]);
    let written = format!("arn:aws:iam::{CALLER}:role/{name}");
    w.create("ci", role(&written, "ci:{{SessionName}}", &["deployers"]))
        .await;
    let m = w.wait_reason("ci", "Applied").await;
    assert!(m.contains("path kept"), "{m}");
    let full = format!("arn:aws:iam::{CALLER}:role/platform/ci/{name}");
    let e = entry(c, &full)
        .await
        .expect("the entry is under the full ARN");
    assert_eq!(e.username.as_deref(), Some("ci:{{SessionName}}"));
    assert!(entry(c, &written).await.is_none());
}

/// A tenant whose RBAC allows only grants (impersonated) gets on access entries exactly what the
/// policy allows: no admin policy or system:masters for a principal outside it, no taking over
/// someone else's admin entry, nothing for the creator; an ordinary grant works.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_gets_on_access_entries_exactly_what_the_policy_allows() {
    const TENANT: &str = "tenant-ae";
    let (w, c) = world("ae-tenant", AuthenticationMode::Api, true).await;
    let c = c.as_str();
    support::grant_only_rbac(&w.client, TENANT).await;
    // Someone else's admin entry: a break-glass role.
    let glass = arn("break-glass");
    eks()
        .create_access_entry()
        .cluster_name(c)
        .principal_arn(&glass)
        .send()
        .await
        .unwrap();
    eks()
        .associate_access_policy()
        .cluster_name(c)
        .principal_arn(&glass)
        .policy_arn(CLUSTER_ADMIN)
        .access_scope(
            aws_sdk_eks::types::AccessScope::builder()
                .r#type(aws_sdk_eks::types::AccessScopeType::Cluster)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let _op = operator(
        &w,
        c,
        "auto",
        &[
            "--privileged-principal",
            "arn:aws:iam::111122223333:role/platform-*",
        ],
    );
    let tenant = support::client_as(TENANT, &[]).await;
    let grants: kube::Api<aws_auth_operator::api::IamAccessGrant> = kube::Api::all(tenant);
    let with_policy = |a: &str, policy: &str| {
        let mut spec = role(a, "t", &[]);
        spec.access_policies = vec![AccessPolicy {
            policy: policy.into(),
            namespaces: vec![],
        }];
        spec
    };
    let mut hijack = role(&glass, "mine", &[]);
    hijack.adopt = true;
    let attempts = [
        (
            "admin",
            with_policy(&arn("t-admin"), "AmazonEKSClusterAdminPolicy"),
            "Forbidden",
        ),
        (
            "masters",
            role(&arn("t-masters"), "m", &["system:masters"]),
            "Forbidden",
        ),
        ("hijack", hijack, "Forbidden"),
        ("creator", role(CREATOR, "me", &[]), "ClusterCreator"),
        (
            "ok",
            with_policy(&arn("t-ok"), "AmazonEKSViewPolicy"),
            "Applied",
        ),
        (
            "platform",
            with_policy(&arn("platform-a"), "AmazonEKSClusterAdminPolicy"),
            "Applied",
        ),
    ];
    for (name, spec, _) in &attempts {
        grants
            .create(&Default::default(), &w.grant(name, spec.clone()))
            .await
            .unwrap_or_else(|e| panic!("the tenant creates {name}: {e}"));
    }
    for (name, _, reason) in &attempts {
        w.wait_reason(name, reason).await;
    }
    for a in ["t-admin", "t-masters"] {
        assert!(entry(c, &arn(a)).await.is_none(), "{a} got an entry");
    }
    let glass_now = entry(c, &glass).await.unwrap();
    assert_eq!(glass_now.policies, [CLUSTER_ADMIN.to_string()]);
    assert!(glass_now.tags.is_empty(), "{glass_now:?}");
    assert!(entry(c, CREATOR).await.unwrap().tags.is_empty());
    assert!(entry(c, &arn("t-ok")).await.is_some());
    assert_eq!(
        entry(c, &arn("platform-a")).await.unwrap().policies,
        [CLUSTER_ADMIN.to_string()]
    );
}

/// The migration with the operator in place: `migrate apply` copies the operator's aws-auth
/// entries into access entries; the operator, once it follows the mode, takes each copy that
/// authenticates its grant's principal as the grant says (no `adopt` needed) and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn entries_migrate_copied_from_the_operators_aws_auth_are_taken_as_they_are() {
    let (w, c) = world("ae-migrated", AuthenticationMode::ConfigMap, false).await;
    let c = c.as_str();
    w.create_configmap(&[("mapRoles", support::NODE_ROLES)])
        .await;
    let op = operator(&w, c, "configmap", &[]);
    w.create("dev", role(&arn("dev"), "dev:{{SessionName}}", &["devs"]))
        .await;
    w.wait_reason("dev", "Applied").await;
    drop(op);
    set_mode(c, AuthenticationMode::ApiAndConfigMap).await;
    let out = support::eks::cli(&["migrate", "apply", "--cluster-name", c])
        .args(["--aws-auth-name", &w.name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        entry(c, &arn("dev"))
            .await
            .unwrap()
            .tags
            .contains_key("aws-auth.dev/migrated-from")
    );
    let _op = operator(&w, c, "auto", &[]);
    eventually(
        "dev held by both backends",
        Duration::from_secs(60),
        || async { (backends(&w, "dev").await == ["aws-auth", "access-entries"]).then_some(()) },
    )
    .await;
    let e = entry(c, &arn("dev")).await.unwrap();
    assert_eq!(e.tags["aws-auth.dev/managed-by"], w.name);
    assert_eq!(
        (e.username.as_deref(), &e.groups[..]),
        (Some("dev:{{SessionName}}"), &["devs".to_string()][..])
    );
}
