//! The lockout rails on a real kube-apiserver: the removal breaker and its confirmation, the
//! history and `restore`, the privileged-groups policy.
mod support;

use std::time::Duration;

use kube::api::{DeleteParams, ListParams, Patch, PatchParams};

use aws_auth_operator::engine::plan::{CONFIRM_ANNOTATION, HeldRemoval};
use support::{NODE_ROLES, TEST_LABEL, World, cli, event_notes, eventually, role};

const LONG: Duration = Duration::from_secs(120);

fn user(i: usize) -> String {
    format!("arn:aws:iam::111122223333:user/u{i:02}")
}

async fn users_in_aws_auth(w: &World) -> Option<usize> {
    Some(w.read().await?.users.values().len())
}

/// Grants for users u00..u(n-1), once all are in aws-auth.
async fn users_granted(w: &World, n: usize) {
    for i in 0..n {
        w.create(&format!("u{i:02}"), role(&user(i), "u", &["dev"]))
            .await;
    }
    eventually("every user entry written", LONG, || async {
        (users_in_aws_auth(w).await? == n).then_some(())
    })
    .await;
}

async fn held(w: &World) -> Option<HeldRemoval> {
    HeldRemoval::from_configmap(w.configmap().await.as_ref())
}

#[tokio::test(flavor = "multi_thread")]
async fn small_removals_proceed_mass_removals_wait_for_the_right_token() {
    let w = World::new("breaker").await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let op = w.operator(&[]);
    users_granted(&w, 20).await;

    // Two of twenty: removed at once.
    for i in 0..2 {
        w.grants
            .delete(&w.full_name(&format!("u{i:02}")), &DeleteParams::default())
            .await
            .unwrap();
    }
    eventually("2 entries removed", LONG, || async {
        (users_in_aws_auth(&w).await? == 18).then_some(())
    })
    .await;
    assert!(held(&w).await.is_none());

    // `kubectl delete iag --all` (of this test's grants): held, entries untouched.
    let before = w.configmap().await.unwrap().data;
    let lp = ListParams::default().labels(&format!("{TEST_LABEL}={}", w.name));
    w.grants
        .delete_collection(&DeleteParams::default(), &lp)
        .await
        .unwrap();
    // The first deletion may be synced on its own (leading edge) and go through; the breaker
    // counts it with the 2 before, so at most 5 go in all and every other entry is held.
    let (h, left) = eventually("every remaining entry held", LONG, || async {
        let h = held(&w).await?;
        let left = users_in_aws_auth(&w).await?;
        (h.count == left).then_some((h, left))
    })
    .await;
    assert!(
        left >= 18 - 3,
        "{} removed after 2, more than --max-removals 5",
        18 - left
    );
    assert_eq!(h.principals.last().unwrap(), &user(19));
    if left == 18 {
        assert_eq!(w.configmap().await.unwrap().data, before);
    }
    println!(
        "mass deletion: {} removed before the breaker held {left}",
        18 - left
    );
    eventually("RemovalHeld event naming the held set", LONG, || async {
        let n = event_notes(&w.client, &w.name, "RemovalHeld").await;
        n.iter()
            .any(|n| n.contains(&format!("kept {left} managed entries")) && n.contains(&h.token))
            .then_some(())
    })
    .await;
    let metrics = op.http_get("/metrics").unwrap().1;
    assert!(
        metrics.contains(&format!("aws_auth_operator_removals_held {left}")),
        "{metrics}"
    );

    // A wrong token: refused by the command, ignored as an annotation.
    let name_args = ["--aws-auth-name", w.name.as_str()];
    let (code, _, err) = cli(&[&["confirm-removal", "0123456789abcdef"], &name_args[..]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is not the token of the removal held now") && err.contains(&h.token),
        "{err}"
    );
    let patch =
        serde_json::json!({"metadata": {"annotations": {CONFIRM_ANNOTATION: "0123456789abcdef"}}});
    w.configmaps
        .patch(&w.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("stale confirmation cleared", LONG, || async {
        let cm = w.configmap().await?;
        (!cm.metadata.annotations?.contains_key(CONFIRM_ANNOTATION)).then_some(())
    })
    .await;
    assert_eq!(users_in_aws_auth(&w).await, Some(left));
    assert_eq!(held(&w).await.map(|h| h.token), Some(h.token.clone()));

    // The right token: removed, and recorded.
    // Who confirms is asked of the API server (SelfSubjectReview): the test's user, admin.
    let (code, out, err) = cli(&[&["confirm-removal", h.token.as_str()], &name_args[..]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("removes {left} managed entries")),
        "{out}"
    );
    eventually("confirmed removal done", LONG, || async {
        (users_in_aws_auth(&w).await? == 0 && held(&w).await.is_none()).then_some(())
    })
    .await;
    let roles = w.read().await.unwrap().roles.values();
    assert_eq!(roles.len(), 1, "node role kept: {roles:?}");
    eventually("RemovalConfirmed event", LONG, || async {
        let n = event_notes(&w.client, &w.name, "RemovalConfirmed").await;
        n.iter().any(|n| n.contains(&h.token)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn history_keeps_versions_and_restore_brings_back_node_roles_deleted_by_hand() {
    let w = World::new("history").await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let _op = w.operator(&[]);
    w.create("a", role("arn:aws:iam::111122223333:role/a", "a", &["dev"]))
        .await;
    w.wait_reason("a", "Applied").await;
    w.create("b", role("arn:aws:iam::111122223333:role/b", "b", &["dev"]))
        .await;
    w.wait_reason("b", "Applied").await;
    eventually("both written", LONG, || async {
        (w.read().await?.roles.values().len() == 3).then_some(())
    })
    .await;

    // Someone deletes the node role by hand.
    let cm = w.configmap().await.unwrap();
    let roles = cm.data.as_ref().unwrap()["mapRoles"].clone();
    let without_node = roles
        .split_once("- rolearn: \"arn:aws:iam::111122223333:role/a\"")
        .map(|(_, rest)| format!("- rolearn: \"arn:aws:iam::111122223333:role/a\"{rest}"))
        .unwrap();
    let patch = serde_json::json!({"data": {"mapRoles": without_node}});
    w.configmaps
        .patch(&w.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(w.read().await.unwrap().roles.values().len(), 2);

    let target = ["--aws-auth-name", w.name.as_str()];
    let (code, out, err) = cli(&[&["history"], &target[..]].concat());
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("resourceVersion"))
        .collect();
    // Before the first write (EKS's node role alone), then each write the operator made.
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].trim_start().starts_with("1  ") && lines[0].contains("1 roles"),
        "{out}"
    );
    assert!(
        out.contains("then: + mapRoles: arn:aws:iam::111122223333:role/a"),
        "{out}"
    );
    assert!(
        out.contains("then, up to now: - mapRoles: arn:aws:iam::111122223333:role/eks-node-NodeInstanceRole-ABC"),
        "{out}"
    );
    let (code, out, _) = cli(&[&["history", "show", "1"], &target[..]].concat());
    assert_eq!(code, 0);
    assert!(
        out.contains("eks-node-NodeInstanceRole-ABC") && out.contains("kind: ConfigMap"),
        "{out}"
    );

    let (code, out, err) = cli(&[&["restore", "2"], &target[..]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("+ mapRoles: arn:aws:iam::111122223333:role/eks-node-NodeInstanceRole-ABC"),
        "{out}"
    );
    let roles = w.read().await.unwrap().roles.values();
    let arns: Vec<&str> = roles.iter().map(|m| m.arn.as_str()).collect();
    assert_eq!(
        arns,
        [
            "arn:aws:iam::111122223333:role/eks-node-NodeInstanceRole-ABC",
            "arn:aws:iam::111122223333:role/a",
            "arn:aws:iam::111122223333:role/b"
        ]
    );
    // Managed entries keep following the grants after a restore.
    w.grants
        .delete(&w.full_name("b"), &DeleteParams::default())
        .await
        .unwrap();
    eventually("b removed, node role still there", LONG, || async {
        let roles = w.read().await?.roles.values();
        (roles.len() == 2 && roles[0].arn.contains("eks-node")).then_some(())
    })
    .await;
    let (code, _, err) = cli(&[&["restore", "99"], &target[..]].concat());
    assert_eq!(code, 2);
    assert!(err.contains("no version 99"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn privileged_groups_are_forbidden_outside_the_policy_while_the_rest_apply() {
    let w = World::new("policy").await;
    let _op = w.operator(&[
        "--privileged-principal",
        "arn:aws:iam::111122223333:role/platform-*",
    ]);
    w.create(
        "mallory",
        role(
            "arn:aws:iam::111122223333:user/mallory",
            "mallory",
            &["system:masters"],
        ),
    )
    .await;
    w.create(
        "platform",
        role(
            "arn:aws:iam::111122223333:role/platform-admins",
            "p",
            &["system:masters"],
        ),
    )
    .await;
    w.create(
        "viewer",
        role("arn:aws:iam::111122223333:role/viewer", "v", &["view"]),
    )
    .await;
    let msg = w.wait_reason("mallory", "Forbidden").await;
    assert!(msg.contains("group system:masters is privileged"), "{msg}");
    w.wait_reason("platform", "Applied").await;
    w.wait_reason("viewer", "Applied").await;
    let r = w.read().await.unwrap();
    assert_eq!(r.roles.values().len(), 2);
    assert!(
        r.users.values().is_empty(),
        "mallory was written: {:?}",
        r.users.values()
    );
}

/// A deletion spread over many passes (one grant at a time, each synced on its own) is held like
/// one in a single pass: the breaker counts what the last passes removed.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_deletion_is_held_like_a_mass_deletion() {
    let w = World::new("slow-delete").await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    // The count alone: four of ten would already pass the default share of 30%.
    let _op = w.operator(&["--max-removal-percent", "100"]);
    users_granted(&w, 10).await;
    for i in 0..5 {
        w.grants
            .delete(&w.full_name(&format!("u{i:02}")), &DeleteParams::default())
            .await
            .unwrap();
        eventually("one more removed", LONG, || async {
            (users_in_aws_auth(&w).await? == 9 - i).then_some(())
        })
        .await;
        assert!(held(&w).await.is_none(), "held after {} removals", i + 1);
    }
    // The sixth, alone in its pass, makes 6 of 10 within the window: held.
    w.grants
        .delete(&w.full_name("u05"), &DeleteParams::default())
        .await
        .unwrap();
    let h = eventually("sixth removal held", LONG, || held(&w)).await;
    assert_eq!(h.count, 1);
    assert_eq!(h.principals, [user(5)]);
    assert!(
        h.reason.contains("6 of 10") && h.reason.contains("5 removed in the last passes"),
        "{}",
        h.reason
    );
    assert_eq!(users_in_aws_auth(&w).await, Some(5));
}

/// A history that cannot be written (here made immutable) does not stop a revocation: the
/// removal applies with a Warning Event, an addition waits Pending and applies once the history
/// is writable again; the node role stays throughout.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_history_holds_additions_but_not_revocations() {
    let w = World::new("history-broken").await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let _op = w.operator(&[]);
    let (a, b) = (
        "arn:aws:iam::111122223333:role/a",
        "arn:aws:iam::111122223333:role/b",
    );
    w.create("a", role(a, "a", &["dev"])).await;
    w.create("b", role(b, "b", &["dev"])).await;
    w.wait_reason("a", "Applied").await;
    w.wait_reason("b", "Applied").await;

    let history = format!("{}-history", w.name);
    let cms = w.configmaps.clone();
    // Broken only once it holds aws-auth as it is now: a statement about a later write, not a
    // race with the keeping of b's (a status can be sent before its write's version is kept).
    eventually("the history holds aws-auth's last write", LONG, || async {
        let rv = w.configmap().await?.metadata.resource_version?;
        let h = cms.get_opt(&history).await.ok().flatten()?;
        aws_auth_operator::engine::history::Index::of(&h.data.unwrap_or_default())
            .holds(&rv)
            .then_some(())
    })
    .await;
    cms.delete(&history, &DeleteParams::default())
        .await
        .unwrap();
    let frozen: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": history, "labels": {(TEST_LABEL): w.name}},
        "data": {"note": "frozen"},
        "immutable": true
    }))
    .unwrap();
    cms.create(&Default::default(), &frozen).await.unwrap();
    // Each write's version is kept right after it, so the write after the history broke is the
    // first that finds its predecessor not kept.
    w.create("x", role("arn:aws:iam::111122223333:role/x", "x", &["dev"]))
        .await;
    w.wait_reason("x", "Applied").await;

    // b revoked, c added: b goes, c waits.
    w.grants
        .delete(&w.full_name("b"), &DeleteParams::default())
        .await
        .unwrap();
    let c = "arn:aws:iam::111122223333:role/c";
    w.create("c", role(c, "c", &["dev"])).await;
    eventually("b removed", LONG, || async {
        let r = w.read().await?;
        (!r.roles.values().iter().any(|m| m.arn == b)).then_some(())
    })
    .await;
    let m = w.wait_reason("c", "Pending").await;
    assert!(
        m.contains(&history) && m.contains("removals proceed"),
        "{m}"
    );
    let notes = eventually("a HistoryUnavailable event", LONG, || async {
        let n = event_notes(&w.client, &w.name, "HistoryUnavailable").await;
        (!n.is_empty()).then_some(n)
    })
    .await;
    assert!(
        notes[0].contains("removals of managed entries proceed"),
        "{notes:?}"
    );
    let roles = w.read().await.unwrap().roles.values();
    assert!(roles.iter().any(|m| m.arn == a), "{roles:?}");
    assert!(
        roles.iter().any(|m| m.arn.contains("eks-node")),
        "{roles:?}"
    );
    assert!(!roles.iter().any(|m| m.arn == c), "{roles:?}");

    // The history repaired (deleted: the operator recreates it), c applies.
    cms.delete(&history, &DeleteParams::default())
        .await
        .unwrap();
    w.wait_reason("c", "Applied").await;
    let h = cms.get(&history).await.unwrap();
    assert!(h.immutable != Some(true) && h.data.is_some_and(|d| d.len() > 1));
}
