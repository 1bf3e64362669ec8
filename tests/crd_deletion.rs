//! Deleting the IamAccessGrant CRD deletes every grant with it; the operator must remove nothing
//! and recover when the CRD comes back. Its own test binary: it takes the CRD away from every
//! other test while it runs (test binaries run one after another).
mod support;

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, DeleteParams, PostParams};

use aws_auth_operator::api::IamAccessGrant;
use aws_auth_operator::engine::plan::HeldRemoval;
use support::{NODE_ROLES, World, event_notes, eventually, role};

const LONG: Duration = Duration::from_secs(120);
const CRD: &str = "iamaccessgrants.aws-auth.dev";

async fn established(crds: &Api<CustomResourceDefinition>) -> Option<()> {
    crds.get(CRD)
        .await
        .ok()?
        .status?
        .conditions?
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True")
        .then_some(())
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_crd_removes_nothing_and_the_operator_recovers() {
    let w = World::new("crd-deletion").await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let mut op = w.operator(&[]);
    let grant = |i: usize| {
        role(
            &format!("arn:aws:iam::111122223333:role/team-{i:02}"),
            "t",
            &["system:masters"],
        )
    };
    for i in 0..20 {
        w.create(&format!("g{i:02}"), grant(i)).await;
    }
    eventually("20 grants in aws-auth", LONG, || async {
        (w.read().await?.roles.values().len() == 21).then_some(())
    })
    .await;
    let before = w.configmap().await.unwrap().data;

    let crds: Api<CustomResourceDefinition> = Api::all(w.client.clone());
    crds.delete(CRD, &DeleteParams::default()).await.unwrap();
    eventually("CRD gone", LONG, || async {
        crds.get_opt(CRD).await.ok()?.is_none().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        w.configmap().await.unwrap().data,
        before,
        "aws-auth changed"
    );
    let held = HeldRemoval::from_configmap(w.configmap().await.as_ref()).expect("held");
    assert_eq!(held.count, 20);
    assert!(held.reason.contains("CRD"), "{}", held.reason);
    let notes = event_notes(&w.client, &w.name, "RemovalHeld").await;
    assert!(
        notes.iter().any(|n| n.contains("kept 20 managed entries")),
        "{notes:?}"
    );
    assert!(op.running(), "operator exited:\n{}", op.logs());
    assert_eq!(op.http_get("/livez").map(|r| r.0), Some(200));

    // The CRD and the grants come back (a GitOps sync): nothing changes, the hold clears.
    crds.create(&PostParams::default(), &IamAccessGrant::crd())
        .await
        .unwrap();
    eventually("CRD established again", LONG, || established(&crds)).await;
    for i in 0..20 {
        // The API server may need a moment before it serves the re-created resource.
        eventually("grant re-created", LONG, || async {
            w.grants
                .create(
                    &PostParams::default(),
                    &w.grant(&format!("g{i:02}"), grant(i)),
                )
                .await
                .ok()
        })
        .await;
    }
    eventually("hold cleared", LONG, || async {
        HeldRemoval::from_configmap(w.configmap().await.as_ref())
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(w.configmap().await.unwrap().data, before);
    w.wait_reason("g00", "Applied").await;
    assert!(op.running());
}
