//! The operator as a process against a real kube-apiserver + etcd (see `hack/local-cluster.sh`).
//! Each test has its own aws-auth ConfigMap and its own grants (selected by label).
mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};

use aws_auth_operator::api::IamAccessGrantSpec;
use aws_auth_operator::engine::authmap::Mapping;
use aws_auth_operator::engine::authmap::Section;
use aws_auth_operator::engine::authmap::read::read_mappings;
use aws_auth_operator::engine::authmap::render::render_mappings;
use aws_auth_operator::engine::plan::{OWNERSHIP_ANNOTATION, Ownership};
use support::{NODE_ROLES, World, event_notes_by_uid, eventually, role};

const LONG: Duration = Duration::from_secs(120);

fn node_role() -> Mapping {
    read_mappings(Section::MapRoles, Some(NODE_ROLES))
        .values()
        .remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn grant_lifecycle_keeps_the_node_role() {
    let w = World::new("lifecycle").await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let op = w.operator(&[]);
    eventually("/readyz answers 200 after the first sync", LONG, || async {
        (op.http_get("/readyz")?.0 == 200).then_some(())
    })
    .await;
    assert_eq!(op.http_get("/livez").map(|r| r.0), Some(200));

    let arn = "arn:aws:iam::111122223333:role/Admins";
    w.create(
        "admins",
        role(arn, "admin:{{SessionName}}", &["system:masters"]),
    )
    .await;
    let msg = w.wait_reason("admins", "Applied").await;
    assert!(msg.contains("mapRoles maps"), "{msg}");
    // The transition is recorded as an Event the API server accepts (about a cluster-scoped
    // object, so in kube-system).
    let uid = (w.grants.get(&w.full_name("admins")).await.unwrap())
        .metadata
        .uid
        .unwrap();
    eventually("an Applied event about the grant", LONG, || async {
        let notes = event_notes_by_uid(&w.client, &uid, "Applied").await;
        notes
            .iter()
            .any(|n| n.contains("mapRoles maps"))
            .then_some(())
    })
    .await;
    let metrics = op.http_get("/metrics").unwrap().1;
    assert!(
        metrics.contains("aws_auth_operator_grants{reason=\"Applied\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("aws_auth_operator_writes_total 0"),
        "{metrics}"
    );
    // The whole exposition: a histogram of passes, results, the leader flag and the last success.
    for series in [
        "# TYPE aws_auth_operator_sync_duration_seconds histogram",
        "aws_auth_operator_sync_duration_seconds_count{result=\"success\"}",
        "aws_auth_operator_syncs_total{result=\"success\"}",
        "aws_auth_operator_leader 1",
        "aws_auth_operator_removals_held 0",
        "aws_auth_operator_conflicts_total",
        "aws_auth_operator_watch_restarts_total{watch=\"grants\"} 0",
        "aws_auth_operator_watch_restarts_total{watch=\"aws-auth\"} 0",
        "# EOF",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
    let last = op
        .metric("aws_auth_operator_last_successful_sync_timestamp_seconds")
        .expect("last success stamped");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - 120.0..=now + 1.0).contains(&last), "{last} vs {now}");
    let g = w.grants.get(&w.full_name("admins")).await.unwrap();
    let status = g.status.unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.canonical_arn.as_deref(), Some(arn));
    assert_eq!(status.section.as_deref(), Some("mapRoles"));
    let roles = w.read().await.unwrap().roles.values();
    assert_eq!(roles[0], node_role());
    assert_eq!(
        roles[1],
        Mapping {
            arn: arn.into(),
            username: "admin:{{SessionName}}".into(),
            groups: vec!["system:masters".into()]
        }
    );

    // Groups changed -> entry updated, observedGeneration follows.
    let patch = serde_json::json!({"spec": {"groups": ["view"]}});
    w.grants
        .patch(
            &w.full_name("admins"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    eventually("groups updated", LONG, || async {
        let roles = w.read().await?.roles.values();
        (roles.len() == 2 && roles[1].groups == ["view"]).then_some(())
    })
    .await;
    eventually("observedGeneration 2", LONG, || async {
        let s = w.grants.get(&w.full_name("admins")).await.ok()?.status?;
        (s.observed_generation == Some(2) && s.conditions[0].observed_generation == Some(2))
            .then_some(())
    })
    .await;

    // Deleted -> entry removed; the node role is still exactly there.
    w.grants
        .delete(&w.full_name("admins"), &DeleteParams::default())
        .await
        .unwrap();
    eventually("entry removed", LONG, || async {
        let roles = w.read().await?.roles.values();
        (roles == [node_role()]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_creator_given_as_session_arn_is_refused_and_nothing_written() {
    let w = World::new("creator").await;
    let before = w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let _op = w.operator(&[
        "--cluster-creator-arn",
        "arn:aws:sts::111122223333:assumed-role/Creator/alice@example.com",
    ]);
    w.create(
        "creator",
        role(
            "arn:aws:iam::111122223333:role/Creator",
            "creator",
            &["system:masters"],
        ),
    )
    .await;
    let msg = w.wait_reason("creator", "ClusterCreator").await;
    assert!(msg.contains("cluster creator"), "{msg}");
    let after = w.configmap().await.unwrap();
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "aws-auth was written"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_grants_are_rejected_or_refused_and_valid_ones_still_apply() {
    let w = World::new("invalid").await;
    let _op = w.operator(&[]);
    // The CRD's schema and CEL rules refuse what needs no other object.
    let rules = support::CRD_RULES.lock().await;
    for bad in [
        IamAccessGrantSpec {
            account: Some("1234".into()),
            ..Default::default()
        },
        role("not-an-arn", "x", &[]),
        role("arn:aws:iam::111122223333:role/x", "", &[]),
        IamAccessGrantSpec {
            arn: Some("arn:aws:iam::111122223333:role/x".into()),
            account: Some("111122223333".into()),
            username: Some("x".into()),
            ..Default::default()
        },
    ] {
        let err = w
            .grants
            .create(&PostParams::default(), &w.grant("rejected", bad.clone()))
            .await;
        match err {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 422, "{bad:?}: {s:?}"),
            other => panic!("schema accepted {bad:?}: {other:?}"),
        }
    }
    drop(rules);
    // A grant the CRD admitted before it had these rules: the operator refuses it with the fix.
    support::create_past_the_rules(
        &w.client,
        &w.grant(
            "path",
            role("arn:aws:iam::111122223333:role/team/Admins", "a", &[]),
        ),
    )
    .await;
    w.create(
        "good",
        role("arn:aws:iam::111122223333:user/good", "good", &[]),
    )
    .await;
    let msg = w.wait_verdict("path", "Invalid").await;
    assert!(
        msg.contains("use arn:aws:iam::111122223333:role/Admins"),
        "{msg}"
    );
    w.wait_reason("good", "Applied").await;
    let users = w.read().await.unwrap().users.values();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].arn, "arn:aws:iam::111122223333:user/good");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_aws_auth_is_left_alone_until_fixed_by_hand() {
    let w = World::new("unreadable").await;
    let broken =
        format!("{NODE_ROLES}- rolearn: arn:aws:iam::111122223333:role/x\n\tusername: x\n");
    let before = w.create_configmap(&[("mapRoles", &broken)]).await;
    let _op = w.operator(&[]);
    w.create("role", role("arn:aws:iam::111122223333:role/A", "a", &[]))
        .await;
    let msg = w.wait_reason("role", "AwsAuthUnreadable").await;
    assert!(msg.contains("mapRoles line 7"), "{msg}");
    assert!(msg.contains("tab"), "{msg}");
    let now = w.configmap().await.unwrap();
    assert_eq!(
        now.metadata.resource_version,
        before.metadata.resource_version
    );
    assert_eq!(now.data.unwrap()["mapRoles"], broken);

    // Fixed by hand: everything converges.
    let fixed = format!("{NODE_ROLES}- rolearn: arn:aws:iam::111122223333:role/x\n  username: x\n");
    let patch = serde_json::json!({"data": {"mapRoles": fixed}});
    w.configmaps
        .patch(&w.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    w.wait_reason("role", "Applied").await;
    let roles = w.read().await.unwrap().roles.values();
    assert_eq!(roles.len(), 3);
    assert_eq!(roles[0], node_role());
    assert_eq!(roles[1].arn, "arn:aws:iam::111122223333:role/x");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_writer_never_loses_an_entry_while_200_grants_arrive() {
    let w = World::new("concurrent").await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let _op = w.operator(&[]);

    // Another tool (think eksctl): read, add or edit its own entries, write with the precondition.
    let writer = async {
        let mut mine: BTreeMap<String, String> = BTreeMap::new();
        let mut conflicts = 0;
        for i in 0..60 {
            loop {
                let cm = w.configmap().await.unwrap();
                let mut roles = read_mappings(
                    Section::MapRoles,
                    cm.data
                        .as_ref()
                        .and_then(|d| d.get("mapRoles"))
                        .map(String::as_str),
                )
                .values();
                let arn = format!("arn:aws:iam::999988887777:role/writer-{}", i / 2);
                let username = format!("writer-{i}");
                match roles.iter_mut().find(|m| m.arn == arn) {
                    Some(m) => m.username = username.clone(),
                    None => roles.push(Mapping {
                        arn: arn.clone(),
                        username: username.clone(),
                        groups: vec!["system:nodes".into()],
                    }),
                }
                let mut next = cm.clone();
                next.data.get_or_insert_with(Default::default).insert(
                    "mapRoles".into(),
                    render_mappings(Section::MapRoles, &roles).unwrap(),
                );
                match w
                    .configmaps
                    .replace(&w.name, &PostParams::default(), &next)
                    .await
                {
                    Ok(_) => {
                        mine.insert(arn, username);
                        break;
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => conflicts += 1,
                    Err(e) => panic!("writer: {e}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (mine, conflicts)
    };
    let creator = futures::stream::iter(0..200)
        .map(|i| {
            let spec = if i % 2 == 0 {
                role(
                    &format!("arn:aws:iam::111122223333:user/bulk-{i}"),
                    &format!("bulk-{i}"),
                    &["team"],
                )
            } else {
                role(
                    &format!("arn:aws:iam::111122223333:role/bulk-{i}"),
                    &format!("bulk-{i}"),
                    &["team"],
                )
            };
            let w = &w;
            async move { w.create(&format!("bulk-{i}"), spec).await }
        })
        .buffer_unordered(10)
        .collect::<Vec<_>>();
    let ((mine, conflicts), _) = tokio::join!(writer, creator);
    eprintln!("writer hit {conflicts} conflicts");

    let want_roles: HashMap<String, String> = mine.into_iter().collect();
    eventually(
        "all writer entries and 200 grants present",
        LONG,
        || async {
            let read = w.read().await?;
            let roles = read.roles.values();
            let users = read.users.values();
            let writer_ok = want_roles
                .iter()
                .all(|(arn, u)| roles.iter().any(|m| &m.arn == arn && &m.username == u));
            let bulk_roles = roles
                .iter()
                .filter(|m| m.arn.contains(":role/bulk-"))
                .count();
            let bulk_users = users
                .iter()
                .filter(|m| m.arn.contains(":user/bulk-"))
                .count();
            (writer_ok && bulk_roles == 100 && bulk_users == 100 && roles[0] == node_role())
                .then_some(())
        },
    )
    .await;
    let read = w.read().await.unwrap();
    assert_eq!(read.roles.values().len(), 1 + 30 + 100, "no duplicates");
    for i in [0, 77, 199] {
        w.wait_reason(&format!("bulk-{i}"), "Applied").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_auth_is_created_when_absent_and_recreated_when_deleted() {
    let w = World::new("absent").await;
    let _op = w.operator(&[]);
    w.create("u", role("arn:aws:iam::111122223333:user/u", "u", &[]))
        .await;
    w.wait_reason("u", "Applied").await;
    assert_eq!(w.read().await.unwrap().users.values().len(), 1);

    w.configmaps
        .delete(&w.name, &DeleteParams::default())
        .await
        .unwrap();
    eventually("aws-auth recreated", LONG, || async {
        let users = w.read().await?.users.values();
        (users.len() == 1 && users[0].arn == "arn:aws:iam::111122223333:user/u").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_in_a_burst_then_restart_converges_without_duplicates() {
    let w = World::new("sigkill").await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let mut op = w.operator(&[]);
    let created = AtomicUsize::new(0);
    let burst = futures::stream::iter(0..100)
        .map(|i| {
            let (w, created) = (&w, &created);
            async move {
                w.create(
                    &format!("k-{i}"),
                    role(
                        &format!("arn:aws:iam::111122223333:role/k-{i}"),
                        &format!("k-{i}"),
                        &[],
                    ),
                )
                .await;
                created.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .buffer_unordered(2)
        .collect::<Vec<_>>();
    let killer = async {
        // Kill once the operator has written part of the burst, while grants still arrive.
        let written = eventually("a partial write", LONG, || async {
            let n = w.read().await?.roles.values().len() - 1;
            (n > 0).then_some(n)
        })
        .await;
        op.kill();
        (written, created.load(Ordering::SeqCst))
    };
    let (_, (written, created_at_kill)) = tokio::join!(burst, killer);
    eprintln!("killed with {written} entries written and {created_at_kill} of 100 grants created");
    assert!(created_at_kill < 100, "the kill must land inside the burst");

    let _op = w.operator(&[]);
    eventually("all 100 grants present exactly once", LONG, || async {
        let roles = w.read().await?.roles.values();
        let mut arns: Vec<&str> = roles.iter().map(|m| m.arn.as_str()).collect();
        arns.sort();
        arns.dedup();
        (roles.len() == 101 && arns.len() == 101 && roles[0] == node_role()).then_some(())
    })
    .await;
    w.wait_reason("k-99", "Applied").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_write_reports_pending_and_applied_only_after_it_succeeds() {
    use k8s_openapi::api::rbac::v1::{
        ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
    };
    let w = World::new("pending").await;
    let user = "test-operator-without-write";
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let meta = |name: &str, ns: Option<&str>| kube::api::ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(Into::into),
        ..Default::default()
    };
    let subject = vec![Subject {
        kind: "User".into(),
        name: user.into(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        ..Default::default()
    }];
    let pp = PatchParams::apply("aws-auth-operator-tests").force();
    // Everything the operator needs except writing ConfigMaps.
    let cr = ClusterRole {
        metadata: meta(user, None),
        rules: Some(vec![
            rule(
                &["aws-auth.dev"],
                &["iamaccessgrants"],
                &["get", "list", "watch"],
            ),
            rule(&["aws-auth.dev"], &["iamaccessgrants/status"], &["patch"]),
            rule(
                &["apiextensions.k8s.io"],
                &["customresourcedefinitions"],
                &["get"],
            ),
        ]),
        ..Default::default()
    };
    kube::Api::<ClusterRole>::all(w.client.clone())
        .patch(user, &pp, &Patch::Apply(&cr))
        .await
        .unwrap();
    let crb = ClusterRoleBinding {
        metadata: meta(user, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: user.into(),
        },
        subjects: Some(subject.clone()),
    };
    kube::Api::<ClusterRoleBinding>::all(w.client.clone())
        .patch(user, &pp, &Patch::Apply(&crb))
        .await
        .unwrap();
    let r = Role {
        metadata: meta(user, Some("kube-system")),
        rules: Some(vec![rule(
            &[""],
            &["configmaps"],
            &["get", "list", "watch"],
        )]),
    };
    kube::Api::<Role>::namespaced(w.client.clone(), "kube-system")
        .patch(user, &pp, &Patch::Apply(&r))
        .await
        .unwrap();
    let rb = RoleBinding {
        metadata: meta(user, Some("kube-system")),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: user.into(),
        },
        subjects: Some(subject),
    };
    kube::Api::<RoleBinding>::namespaced(w.client.clone(), "kube-system")
        .patch(user, &pp, &Patch::Apply(&rb))
        .await
        .unwrap();

    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let mut op = w.operator_as(user, &[]);
    w.create("p", role("arn:aws:iam::111122223333:role/P", "p", &[]))
        .await;
    // The history is written first, and is refused the same way: the addition waits.
    let msg = w.wait_reason("p", "Pending").await;
    assert!(
        msg.contains("history ConfigMap") && msg.contains("additions and changes wait"),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("forbidden"), "{msg}");
    assert_eq!(w.read().await.unwrap().roles.values(), [node_role()]);
    op.kill();

    // With write access the same grant is applied.
    let _op = w.operator(&[]);
    w.wait_reason("p", "Applied").await;
    assert_eq!(w.read().await.unwrap().roles.values().len(), 2);
}

/// Passes that follow each other while the statuses of the first are still on their way (the
/// watch has not brought them back) write each grant's status once and record its event once.
#[tokio::test(flavor = "multi_thread")]
async fn each_status_and_event_is_written_once_while_passes_follow_each_other() {
    const N: usize = 400;
    const MORE: usize = 5;
    let w = World::new("once").await;
    w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let op = w.operator(&[]);
    let in_aws_auth = |n: usize| {
        let w = &w;
        async move {
            eventually("grants in aws-auth", LONG, || async {
                (w.read().await?.roles.values().len() == n + 1).then_some(())
            })
            .await
        }
    };
    futures::stream::iter(0..N)
        .map(|i| {
            let w = &w;
            async move {
                // Names long enough for an ownership record past 8 KiB: written deflated.
                let arn = format!("arn:aws:iam::111122223333:role/once-{i}-of-a-burst-of-400");
                w.create(&format!("once-{i}"), role(&arn, "once", &["team"]))
                    .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    in_aws_auth(N).await;
    // Each of these is a pass of its own, while hundreds of statuses are still being written.
    for i in 0..MORE {
        let arn = format!("arn:aws:iam::111122223333:role/once-more-{i}");
        w.create(&format!("more-{i}"), role(&arn, "once", &["team"]))
            .await;
        in_aws_auth(N + i + 1).await;
    }
    let count = |series: &str| op.metric(series).unwrap_or(0.0) as usize;
    let statuses = "aws_auth_operator_status_updates_total";
    let events = "aws_auth_operator_events_total";
    eventually("every status and event written", LONG, || async {
        (count(statuses) >= N + MORE && count(events) >= N + MORE).then_some(())
    })
    .await;
    // Anything written twice would come within this.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(statuses), N + MORE, "status updates");
    assert_eq!(count(events), N + MORE, "events");
    for name in ["once-0", "once-399", "more-4"] {
        w.wait_reason(name, "Applied").await;
    }
    let cm = w.configmap().await.unwrap();
    let record = &cm.metadata.annotations.as_ref().unwrap()[OWNERSHIP_ANNOTATION];
    assert!(record.starts_with(r#"{"deflate":""#), "{record}");
    let owned = Ownership::from_configmap(Some(&cm)).unwrap();
    for i in [0, 399] {
        let key = format!("arn:aws:iam::111122223333:role/once-{i}-of-a-burst-of-400");
        assert!(owned.owns(Section::MapRoles, &key));
    }
}

/// The write of aws-auth is sent as protobuf: the API server must store exactly what the JSON
/// write would (every metadata field, data with line breaks and non-ASCII text, binaryData,
/// immutable), keep the live managedFields (the body carries none), and still refuse a stale
/// resourceVersion.
#[tokio::test(flavor = "multi_thread")]
async fn the_protobuf_write_is_stored_exactly_as_sent() {
    use aws_auth_operator::operator::controller::protobuf;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    let w = World::new("protobuf").await;
    let created = w.create_configmap(&[("mapRoles", NODE_ROLES)]).await;
    let mut cm = created.clone();
    let m = &mut cm.metadata;
    m.labels = Some(BTreeMap::from([("team".into(), "platform".into())]));
    m.annotations = Some(BTreeMap::from([
        ("note".into(), "line one\nline \"two\" ✓".into()),
        ("empty".into(), String::new()),
    ]));
    m.finalizers = Some(vec!["example.com/keep".into()]);
    m.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: "6f1c6ad5-3b0b-4b5e-9d7e-1b3a5c1d2e4f".into(),
        controller: Some(false),
        block_owner_deletion: None,
    }]);
    let long = "- rolearn: \"arn:aws:iam::111122223333:role/ü\"\n  username: \"x\"\n".repeat(3000);
    cm.data = Some(BTreeMap::from([
        ("mapRoles".into(), long),
        ("mapUsers".into(), "[]\n".into()),
        ("empty".into(), String::new()),
    ]));
    cm.binary_data = Some(BTreeMap::from([(
        "blob".into(),
        ByteString(vec![0, 1, 2, 255]),
    )]));
    cm.immutable = Some(false);

    let put = |cm: ConfigMap| {
        let api = w.configmaps.clone();
        let name = w.name.clone();
        async move {
            let pp = PostParams {
                field_manager: Some("protobuf-test".into()),
                ..Default::default()
            };
            let req = protobuf::replace(&api, &name, &pp, &cm).unwrap();
            api.into_client().request::<ConfigMap>(req).await
        }
    };
    put(cm.clone()).await.expect("protobuf PUT accepted");
    let stored = w.configmap().await.unwrap();
    let (s, c) = (&stored.metadata, &cm.metadata);
    assert_eq!(s.labels, c.labels);
    assert_eq!(s.annotations, c.annotations);
    assert_eq!(s.finalizers, c.finalizers);
    assert_eq!(s.owner_references, c.owner_references);
    assert_eq!(s.uid, created.metadata.uid);
    assert_eq!(s.creation_timestamp, created.metadata.creation_timestamp);
    assert_ne!(s.resource_version, c.resource_version);
    assert_eq!(stored.data, cm.data);
    assert_eq!(stored.binary_data, cm.binary_data);
    // The creator's managedFields entry is kept, and the update has one of its own.
    let managers: Vec<_> = (s.managed_fields.iter().flatten())
        .map(|f| f.manager.clone().unwrap_or_default())
        .collect();
    assert_eq!(managers.len(), 2, "{managers:?}");
    assert!(
        managers.contains(&"protobuf-test".to_string()),
        "{managers:?}"
    );

    // The resourceVersion sent is still the precondition.
    let stale = put(cm.clone())
        .await
        .expect_err("stale resourceVersion refused");
    assert!(
        matches!(&stale, kube::Error::Api(s) if s.is_conflict()),
        "{stale}"
    );

    // World::new removes the finalizer before it deletes the ConfigMap.
}

/// Another tool that writes aws-auth with server-side apply (its own field manager) keeps what it
/// wrote: the operator's writes carry no managedFields and change only its own entries, so the
/// tool's labels, annotations and entries stay, and so does its record in managedFields.
#[tokio::test(flavor = "multi_thread")]
async fn another_field_managers_server_side_apply_is_kept() {
    let w = World::new("ssa").await;
    let theirs = "- userarn: arn:aws:iam::111122223333:user/break-glass-admin\n  username: break-glass-admin\n  groups:\n  - ops\n";
    let applied = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": w.name, "namespace": "kube-system",
            "labels": {"team": "platform"},
            "annotations": {"example.com/owner": "terraform"}
        },
        "data": {"mapRoles": NODE_ROLES, "mapUsers": theirs}
    });
    w.configmaps
        .patch(
            &w.name,
            &PatchParams::apply("terraform"),
            &Patch::Apply(&applied),
        )
        .await
        .expect("server-side apply by another manager");
    let _op = w.operator(&[]);
    w.create(
        "alice",
        role("arn:aws:iam::111122223333:user/alice", "alice", &["dev"]),
    )
    .await;
    w.wait_reason("alice", "Applied").await;
    let terraform_keeps = |cm: &ConfigMap| {
        let labels = cm.metadata.labels.clone().unwrap_or_default();
        let annotations = cm.metadata.annotations.clone().unwrap_or_default();
        let fields = cm
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter(|m| m.manager.as_deref() == Some("terraform"))
            .filter_map(|m| m.fields_v1.as_ref().map(|f| f.0.to_string()))
            .collect::<String>();
        labels.get("team").map(String::as_str) == Some("platform")
            && annotations.get("example.com/owner").map(String::as_str) == Some("terraform")
            && fields.contains("f:team")
            && fields.contains("f:example.com/owner")
    };
    let cm = w.configmap().await.unwrap();
    assert!(terraform_keeps(&cm), "{:?}", cm.metadata);
    let users = || async {
        let mut users: Vec<String> = w
            .read()
            .await?
            .users
            .values()
            .iter()
            .map(|m| m.arn.clone())
            .collect();
        users.sort();
        Some(users)
    };
    assert_eq!(
        users().await.unwrap(),
        [
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::111122223333:user/break-glass-admin"
        ]
    );
    // The grant goes: only its entry does.
    w.grants
        .delete(&w.full_name("alice"), &DeleteParams::default())
        .await
        .unwrap();
    eventually("alice's entry removed", LONG, || async {
        (users().await? == ["arn:aws:iam::111122223333:user/break-glass-admin"]).then_some(())
    })
    .await;
    let cm = w.configmap().await.unwrap();
    assert!(terraform_keeps(&cm), "{:?}", cm.metadata);
}
