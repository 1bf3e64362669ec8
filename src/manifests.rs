//! Loading Kubernetes manifests from files and directories: grants and an aws-auth ConfigMap.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::ConfigMap;
use serde::Deserialize;

use crate::api::{GROUP, IamAccessGrant};
use crate::{Error, Result};

/// What was found in the manifests, with notes about what was skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub grants: Vec<IamAccessGrant>,
    pub notes: Vec<String>,
}

const SPEC_FIELDS: &[&str] = &["arn", "username", "groups", "account", "adopt"];

/// Reads every `.yaml`, `.yml` and `.json` file under `paths` (directories recursively, in name
/// order) and collects the IamAccessGrants of their documents.
pub fn load_grants(paths: &[PathBuf]) -> Result<Loaded> {
    let mut files = Vec::new();
    for p in paths {
        collect_files(p, &mut files)?;
    }
    let mut out = Loaded::default();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for file in files {
        let text = read(&file)?;
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let at = format!("{} (document {})", file.display(), i + 1);
            let value = serde_yaml::Value::deserialize(doc).map_err(|e| Error::Manifest {
                path: file.clone(),
                message: format!("document {}: {e}", i + 1),
            })?;
            let items = match value.get("kind").and_then(|k| k.as_str()) {
                Some("List") => value
                    .get("items")
                    .and_then(|i| i.as_sequence())
                    .cloned()
                    .unwrap_or_default(),
                _ => vec![value],
            };
            for item in items {
                if item.is_null() {
                    continue;
                }
                let kind = item.get("kind").and_then(|k| k.as_str()).unwrap_or("");
                let api = item
                    .get("apiVersion")
                    .and_then(|k| k.as_str())
                    .unwrap_or("");
                if kind != "IamAccessGrant" || !api.starts_with(&format!("{GROUP}/")) {
                    let name = item
                        .get("metadata")
                        .and_then(|m| m.get("name"))
                        .and_then(|n| n.as_str())
                        .unwrap_or("?");
                    out.notes.push(format!(
                        "skipped {kind}/{name} in {at}: not an IamAccessGrant"
                    ));
                    continue;
                }
                if let Some(spec) = item.get("spec").and_then(|s| s.as_mapping()) {
                    for k in spec.keys().filter_map(|k| k.as_str()) {
                        if !SPEC_FIELDS.contains(&k) {
                            out.notes.push(format!(
                                "warning: {at}: spec.{k} is not a field of IamAccessGrant (fields: {}); the API server drops it",
                                SPEC_FIELDS.join(", ")
                            ));
                        }
                    }
                }
                let grant: IamAccessGrant =
                    serde_yaml::from_value(item).map_err(|e| Error::Manifest {
                        path: file.clone(),
                        message: format!("document {}: not a valid IamAccessGrant: {e}", i + 1),
                    })?;
                let name = grant.metadata.name.clone().unwrap_or_default();
                if name.is_empty() {
                    return Err(Error::Manifest {
                        path: file.clone(),
                        message: format!("document {}: IamAccessGrant has no metadata.name", i + 1),
                    });
                }
                if let Some(first) = seen.insert(name.clone(), at.clone()) {
                    return Err(Error::Manifest {
                        path: file.clone(),
                        message: format!(
                            "IamAccessGrant {name} is defined twice: in {first} and in {at}"
                        ),
                    });
                }
                out.grants.push(grant);
            }
        }
    }
    Ok(out)
}

/// Reads an aws-auth ConfigMap manifest (as `kubectl get configmap aws-auth -o yaml` prints it).
pub fn load_configmap(path: &Path) -> Result<ConfigMap> {
    let text = read(path)?;
    let cm: ConfigMap = serde_yaml::from_str(&text).map_err(|e| Error::Manifest {
        path: path.to_path_buf(),
        message: format!("not a ConfigMap manifest: {e}"),
    })?;
    Ok(cm)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort();
        for e in entries {
            let manifest = e
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"));
            if e.is_dir() || manifest {
                collect_files(&e, out)?;
            }
        }
        Ok(())
    } else {
        std::fs::metadata(path).map_err(io)?;
        out.push(path.to_path_buf());
        Ok(())
    }
}

/// Where `import` and `whoami` read aws-auth from: a file, or the cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct AwsAuthSource {
    /// Read aws-auth from this ConfigMap manifest instead of the cluster (e.g. when the cluster
    /// refuses you: `kubectl -n kube-system get cm aws-auth -o yaml` run by someone who can).
    #[arg(long)]
    pub aws_auth: Option<PathBuf>,
    /// Namespace of the ConfigMap in the cluster.
    #[arg(long, env = "AWS_AUTH_NAMESPACE", default_value = crate::authmap::NAMESPACE)]
    pub aws_auth_namespace: String,
    /// Name of the ConfigMap in the cluster.
    #[arg(long, env = "AWS_AUTH_NAME", default_value = crate::authmap::NAME)]
    pub aws_auth_name: String,
}

/// The `data` of aws-auth and a description of where it came from.
pub async fn load_aws_auth(src: &AwsAuthSource) -> Result<(BTreeMap<String, String>, String)> {
    if let Some(path) = &src.aws_auth {
        let cm = load_configmap(path)?;
        return Ok((cm.data.unwrap_or_default(), path.display().to_string()));
    }
    let client = crate::controller::client().await?;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &src.aws_auth_namespace);
    let from = format!(
        "the cluster's {}/{}",
        src.aws_auth_namespace, src.aws_auth_name
    );
    match api.get_opt(&src.aws_auth_name).await {
        Ok(cm) => Ok((cm.and_then(|c| c.data).unwrap_or_default(), from)),
        Err(e) => Err(Error::Usage {
            flag: "--aws-auth",
            message: format!(
                "cannot read {from} ({e}); pass the ConfigMap as a file with --aws-auth FILE"
            ),
        }),
    }
}
