use super::*;
use crate::api::{IamAccessGrant, IamAccessGrantSpec};
use crate::engine::plan::{PlanConfig, plan};
use kube::api::ObjectMeta;

const NODE: &str = "- rolearn: arn:aws:iam::111122223333:role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n";

fn cm(data: &[(&str, &str)], rv: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some("aws-auth".into()),
            resource_version: Some(rv.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

/// [`record`] of a version as it is.
fn record(
    index: &Index,
    v: &Version,
    versions: usize,
    bytes: usize,
) -> Option<(BTreeMap<String, Option<String>>, Index)> {
    let json = serde_json::to_string(v).unwrap();
    super::record(index, &v.resource_version, json, versions, bytes)
}

/// Applies a merge patch of `data` as the API server does, and checks the index stays true.
fn recorded(
    h: &BTreeMap<String, String>,
    v: &Version,
    versions: usize,
    bytes: usize,
) -> BTreeMap<String, String> {
    let Some((patch, index)) = record(&Index::of(h), v, versions, bytes) else {
        return h.clone();
    };
    let mut out = h.clone();
    for (k, value) in patch {
        match value {
            Some(text) => out.insert(k, text),
            None => out.remove(&k),
        };
    }
    assert_eq!(Index::of(&out), index);
    out
}

#[test]
fn record_keeps_the_newest_within_count_and_bytes() {
    let mut h = BTreeMap::from([("notes".to_string(), "not a version".to_string())]);
    for i in 0..30 {
        let v = Version::of(&cm(&[("mapRoles", NODE)], &i.to_string()), format!("t{i}"));
        h = recorded(&h, &v, 20, 1 << 20);
    }
    let all = versions(&h);
    assert_eq!(all.len(), 20);
    assert_eq!(h.len(), 20, "only versions are kept");
    assert_eq!((all[0].0, all[19].0), (11, 30));
    assert_eq!(all[19].1.resource_version, "29");
    // The same state twice is kept once.
    assert!(record(&Index::of(&h), &all[19].1, 20, 1 << 20).is_none());
    // Bytes: only as many as fit.
    let one = h.iter().next().map(|(k, v)| k.len() + v.len()).unwrap();
    let small = recorded(
        &h,
        &Version::of(&cm(&[("mapRoles", NODE)], "x"), "t".into()),
        20,
        one * 3,
    );
    assert_eq!(versions(&small).len(), 3);
    assert_eq!(versions(&small).last().unwrap().1.resource_version, "x");
    // A version larger than the whole budget is not kept, and nothing else is lost for it.
    let huge = Version::of(&cm(&[("mapRoles", &NODE.repeat(50))], "y"), "t".into());
    let (patch, index) = record(&Index::of(&small), &huge, 20, one * 3).unwrap();
    assert!(patch.is_empty());
    let before = Index::of(&small);
    assert_eq!(
        (&index.versions, &index.newest),
        (&before.versions, &before.newest)
    );
    // Nor is it serialized again before the next write (its resourceVersion is held as passed).
    assert!(index.holds("y") && !before.holds("y"));
    assert!(record(&index, &huge, 20, one * 3).is_none());
}

#[test]
fn restore_brings_back_node_roles_deleted_by_hand_and_leaves_managed_entries() {
    let grant = IamAccessGrant::new(
        "dev",
        IamAccessGrantSpec::arn("arn:aws:iam::111122223333:role/dev", "dev", &["developers"]),
    );
    let config = PlanConfig::default();
    let p = plan(
        std::slice::from_ref(&grant),
        Some(&cm(&[("mapRoles", NODE)], "1")),
        &config,
    )
    .unwrap();
    let good = p.configmap(
        Some(&cm(&[("mapRoles", NODE)], "1")),
        "kube-system",
        "aws-auth",
        true,
    );
    let before_the_edit = Version::of(&good, "t1".into());

    // Someone deletes the node role by hand and adds a new one.
    let mut broken = good.clone();
    let managed_text = read_data(good.data.as_ref().unwrap()).roles.values()[1].clone();
    let new_node = "- rolearn: arn:aws:iam::111122223333:role/eks-node-2\n  username: system:node:{{EC2PrivateDNSName}}\n";
    broken.data.as_mut().unwrap().insert(
        "mapRoles".into(),
        format!(
            "{new_node}- rolearn: \"{}\"\n  username: \"dev\"\n  groups:\n    - \"developers\"\n",
            managed_text.arn
        ),
    );
    let r = restore(&before_the_edit, Some(&broken)).unwrap();
    let roles = read_data(&r.data).roles.values();
    let arns: Vec<&str> = roles.iter().map(|m| m.arn.as_str()).collect();
    assert_eq!(
        arns,
        [
            "arn:aws:iam::111122223333:role/eks-node",
            "arn:aws:iam::111122223333:role/eks-node-2",
            "arn:aws:iam::111122223333:role/dev",
        ]
    );
    assert_eq!(
        r.changes,
        [
            "+ mapRoles: arn:aws:iam::111122223333:role/eks-node username=\"system:node:{{EC2PrivateDNSName}}\" groups=[system:bootstrappers,system:nodes]"
        ]
    );
    // Restoring the current state changes nothing.
    let same = restore(&Version::of(&good, "t".into()), Some(&good)).unwrap();
    assert!(same.changes.is_empty() && same.data == *good.data.as_ref().unwrap());

    // A broken (unreadable) key today is replaced by the version's readable text.
    let mut tabbed = good.clone();
    tabbed
        .data
        .as_mut()
        .unwrap()
        .insert("mapRoles".into(), "- rolearn: x\n\tusername: y\n".into());
    let r = restore(&before_the_edit, Some(&tabbed)).unwrap();
    assert_eq!(
        read_data(&r.data).roles.values(),
        read_data(good.data.as_ref().unwrap()).roles.values()
    );
}

#[test]
fn an_unreadable_version_is_refused() {
    let v = Version::of(
        &cm(&[("mapRoles", "- rolearn: a\n\tusername: b\n")], "3"),
        "t".into(),
    );
    let e = restore(&v, Some(&cm(&[("mapRoles", NODE)], "4"))).unwrap_err();
    assert!(
        e.contains("cannot be read exactly") && e.contains("resourceVersion 3"),
        "{e}"
    );
}

#[test]
fn a_version_serialized_from_the_configmap_it_borrows_is_the_version_of_it() {
    let mut c = cm(&[("mapRoles", NODE), ("other", "x\"\n")], "42");
    for _ in 0..2 {
        let (rv, json) = Version::json_of(&c, "t1");
        assert_eq!(rv, "42");
        assert_eq!(
            json,
            serde_json::to_string(&Version::of(&c, "t1".into())).unwrap()
        );
        let back: Version = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Version::of(&c, "t1".into()));
        // Again with an ownership record.
        c.metadata.annotations =
            Some([(OWNERSHIP_ANNOTATION.to_string(), "rec".to_string())].into());
    }
    assert!(Version::json_of(&c, "t").1.contains("\"managed\":\"rec\""));
}
