//! aws-auth found deleted (`kubectl delete`, a Terraform or Helm release that owned it): what the
//! pass plans over instead. The operator is the one component that knows what was there, so by
//! default it restores the last version it knows (its memory of the last read, else the newest
//! version in the history) with every entry it does not manage exactly as it was, and the grants'
//! entries on top (`--on-aws-auth-deleted`).
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta};

use crate::engine::authmap::Section;
use crate::engine::authmap::read::read_data;
use crate::engine::history;
use crate::engine::plan::{OWNERSHIP_ANNOTATION, Ownership, entry_key, section_entries};
use crate::engine::validate::Entry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnDeleted {
    /// Recreate it from its last known version: unmanaged entries as they were, plus the grants'.
    Restore,
    /// Recreate it with the grants' entries only (EKS node roles are lost until restored).
    RecreateManaged,
    /// Write nothing until a person creates it again (`aws-auth-operator restore N`).
    Wait,
}

/// aws-auth found missing, and what this pass does about it.
pub enum Missing {
    /// Recreate it from its last known version (the pass plans over it).
    Restore(Known),
    /// Create it with the grants' entries: no earlier version is known, or the flag says so.
    Recreate(Option<Known>),
    /// Write nothing until a person creates it.
    Wait(Known),
}

impl Missing {
    pub fn decide(known: Option<Known>, on_deleted: OnDeleted) -> Missing {
        match (known, on_deleted) {
            (Some(k), OnDeleted::Restore) => Missing::Restore(k),
            (Some(k), OnDeleted::Wait) => Missing::Wait(k),
            (known, _) => Missing::Recreate(known),
        }
    }
}

/// The last known version of a deleted aws-auth, as a ConfigMap to plan over (no
/// resourceVersion: the write creates it), and where it came from.
pub struct Known {
    pub cm: ConfigMap,
    pub source: String,
}

impl Known {
    /// The principals of the entries the operator does not manage, which a restore brings back.
    pub fn unmanaged(&self) -> Vec<String> {
        let data = self.cm.data.clone().unwrap_or_default();
        let read = read_data(&data);
        let owned = Ownership::from_configmap(Some(&self.cm)).unwrap_or_default();
        let mut out = Vec::new();
        for s in Section::ALL {
            if !read.readable(s) {
                if data.contains_key(s.key()) {
                    out.push(format!("{} (kept as text)", s.key()));
                }
                continue;
            }
            for (_, e) in section_entries(&read, s) {
                if !owned.owns(s, &entry_key(&e)) {
                    out.push(match &e {
                        Entry::Mapping(m) => m.arn.clone(),
                        Entry::Account(a) => a.clone(),
                    });
                }
            }
        }
        out
    }
}

/// What aws-auth last held: the version this process last read, else the newest in the history.
pub async fn last_known(
    configmaps: &Api<ConfigMap>,
    namespace: &str,
    name: &str,
    history_name: &str,
    last_seen: Option<&ConfigMap>,
) -> Result<Option<Known>, kube::Error> {
    let fresh = |data: BTreeMap<String, String>, managed: Option<String>| ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            annotations: managed.map(|m| [(OWNERSHIP_ANNOTATION.to_string(), m)].into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    if let Some(seen) = last_seen {
        let managed = seen
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(OWNERSHIP_ANNOTATION).cloned());
        return Ok(Some(Known {
            cm: fresh(seen.data.clone().unwrap_or_default(), managed),
            source: format!(
                "the version this operator last read (resourceVersion {})",
                seen.metadata.resource_version.as_deref().unwrap_or("?")
            ),
        }));
    }
    let Some(h) = configmaps.get_opt(history_name).await? else {
        return Ok(None);
    };
    let newest = history::versions(&h.data.unwrap_or_default())
        .into_iter()
        .max_by_key(|(n, _)| *n);
    Ok(newest.map(|(n, v)| Known {
        source: format!(
            "history version {n} in {namespace}/{history_name} (resourceVersion {}, {})",
            v.resource_version, v.time
        ),
        cm: fresh(v.data, v.managed),
    }))
}
