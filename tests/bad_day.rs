//! The bad day, on a real kube-apiserver: aws-auth deleted (restored, recreated with the grants'
//! entries only, or waited for), the history ConfigMap deleted. Each scenario prints its figures.
mod support;

use std::time::{Duration, Instant};

use kube::api::DeleteParams;

use support::{NODE_ROLES, World, event_notes, eventually, role};

const LONG: Duration = Duration::from_secs(60);
const NODE: &str = "arn:aws:iam::111122223333:role/eks-node-NodeInstanceRole-ABC";

fn arn(i: usize) -> String {
    format!("arn:aws:iam::111122223333:role/team-{i}")
}

/// The node role and three grants, all in aws-auth.
async fn node_role_and_three_grants(w: &World) {
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    for i in 0..3 {
        w.create(&format!("g{i}"), role(&arn(i), "team", &["dev"]))
            .await;
    }
    for i in 0..3 {
        w.wait_reason(&format!("g{i}"), "Applied").await;
    }
    eventually("node role and grants written", LONG, || async {
        (w.read().await?.roles.values().len() == 4).then_some(())
    })
    .await;
}

async fn roles(w: &World) -> Option<Vec<String>> {
    Some(
        w.read()
            .await?
            .roles
            .values()
            .into_iter()
            .map(|m| m.arn)
            .collect(),
    )
}

async fn delete_aws_auth(w: &World) -> Instant {
    w.configmaps
        .delete(&w.name, &DeleteParams::default())
        .await
        .unwrap();
    Instant::now()
}

/// Deleted under a running operator: recreated at once with the node role exactly as it was and
/// the grants' entries, with a Warning Event naming the version and the entries.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_aws_auth_is_restored_with_the_node_role() {
    let w = World::new("restore").await;
    let _op = w.operator(&[]);
    node_role_and_three_grants(&w).await;
    let node_text = w.configmap().await.unwrap().data.unwrap()["mapRoles"].clone();

    let deleted = delete_aws_auth(&w).await;
    let restored = eventually("aws-auth restored", LONG, || async {
        let r = roles(&w).await?;
        (r.len() == 4).then_some(r)
    })
    .await;
    let took = deleted.elapsed();
    assert_eq!(restored[0], NODE, "{restored:?}");
    assert_eq!(
        w.configmap().await.unwrap().data.unwrap()["mapRoles"],
        node_text,
        "restored as it was"
    );
    let notes = eventually("an AwsAuthRestored event", LONG, || async {
        let n = event_notes(&w.client, &w.name, "AwsAuthRestored").await;
        (!n.is_empty()).then_some(n)
    })
    .await;
    assert!(
        notes[0].contains("the version this operator last read") && notes[0].contains(NODE),
        "{notes:?}"
    );
    println!(
        "figures: aws-auth deleted -> restored in {} ms, entries lost 0 of 4",
        took.as_millis()
    );
}

/// Deleted while no operator ran: the next one restores it from the history.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_aws_auth_is_restored_from_the_history_after_a_restart() {
    let w = World::new("from-history").await;
    let op = w.operator(&[]);
    node_role_and_three_grants(&w).await;
    eventually("the last write in the history", LONG, || async {
        let h = w
            .configmaps
            .get_opt(&format!("{}-history", w.name))
            .await
            .ok()??;
        (h.data?.len() >= 2).then_some(())
    })
    .await;
    drop(op);
    delete_aws_auth(&w).await;
    let started = Instant::now();
    let _op = w.operator(&[]);
    let restored = eventually("aws-auth restored from the history", LONG, || async {
        let r = roles(&w).await?;
        (r.len() == 4).then_some(r)
    })
    .await;
    assert_eq!(restored[0], NODE);
    let notes = eventually("an AwsAuthRestored event", LONG, || async {
        let n = event_notes(&w.client, &w.name, "AwsAuthRestored").await;
        (!n.is_empty()).then_some(n)
    })
    .await;
    assert!(notes[0].contains("history version"), "{notes:?}");
    println!(
        "figures: restored from the history {} ms after start, entries lost 0 of 4",
        started.elapsed().as_millis()
    );
}

/// `recreate-managed` writes the grants' entries only and says what it left out; `wait` writes
/// nothing, the grants say why, and a person's aws-auth is taken up at once.
#[tokio::test(flavor = "multi_thread")]
async fn the_other_choices_on_deletion_do_what_they_say() {
    let w = World::new("recreate").await;
    let op = w.operator(&["--on-aws-auth-deleted", "recreate-managed"]);
    node_role_and_three_grants(&w).await;
    delete_aws_auth(&w).await;
    let r = eventually("recreated with the grants only", LONG, || async {
        let r = roles(&w).await?;
        (r.len() == 3).then_some(r)
    })
    .await;
    assert!(!r.contains(&NODE.to_string()), "{r:?}");
    let notes = eventually("an AwsAuthRecreated event", LONG, || async {
        let n = event_notes(&w.client, &w.name, "AwsAuthRecreated").await;
        (!n.is_empty()).then_some(n)
    })
    .await;
    assert!(
        notes[0].contains(NODE) && notes[0].contains("restore N"),
        "{notes:?}"
    );
    drop(op);

    let w = World::new("wait").await;
    let _op = w.operator(&["--on-aws-auth-deleted", "wait"]);
    node_role_and_three_grants(&w).await;
    delete_aws_auth(&w).await;
    let m = w.wait_reason("g0", "Pending").await;
    assert!(m.contains("--on-aws-auth-deleted is wait"), "{m}");
    assert!(w.configmap().await.is_none(), "written while waiting");
    let notes = eventually("an AwsAuthDeleted event", LONG, || async {
        let n = event_notes(&w.client, &w.name, "AwsAuthDeleted").await;
        (!n.is_empty()).then_some(n)
    })
    .await;
    assert!(notes[0].contains("restore N"), "{notes:?}");
    // A person brings the node role back; the grants follow.
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    eventually("the grants written again", LONG, || async {
        (roles(&w).await?.len() == 4).then_some(())
    })
    .await;
    w.wait_reason("g0", "Applied").await;
}

/// The history ConfigMap deleted: recreated at the next write, with an Event.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_history_is_recreated() {
    let w = World::new("history-deleted").await;
    let _op = w.operator(&[]);
    node_role_and_three_grants(&w).await;
    let history = format!("{}-history", w.name);
    eventually("the history written", LONG, || async {
        w.configmaps.get_opt(&history).await.ok()?
    })
    .await;
    w.configmaps
        .delete(&history, &DeleteParams::default())
        .await
        .unwrap();
    w.create("g3", role(&arn(3), "team", &["dev"])).await;
    w.wait_reason("g3", "Applied").await;
    let h = eventually("the history recreated", LONG, || async {
        w.configmaps.get_opt(&history).await.ok()?
    })
    .await;
    assert!(!h.data.unwrap_or_default().is_empty());
    let notes = eventually("a HistoryRecreated event", LONG, || async {
        let n = event_notes(&w.client, &w.name, "HistoryRecreated").await;
        (!n.is_empty()).then_some(n)
    })
    .await;
    assert!(
        notes[0].contains("were lost") || notes[0].contains("are lost"),
        "{notes:?}"
    );
    assert_eq!(roles(&w).await.unwrap().len(), 5);
}
