//! Loading Kubernetes manifests from files and directories: grants and an aws-auth ConfigMap.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;

use crate::api::{GROUP, IamAccessGrant, Reason};
use crate::engine::authmap::yaml11::{self, Decoded, Typed};
use crate::engine::authmap::{excerpt, shown};
use crate::engine::plan::Verdict;
use crate::{Error, Result};

/// What was found in the manifests, with notes about what was skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub grants: Vec<IamAccessGrant>,
    /// Grants the API server would reject as kubectl sends them (a YAML 1.1 boolean or number
    /// where a string belongs): never applied, reported `Invalid`.
    pub rejected: Vec<Verdict>,
    pub notes: Vec<String>,
}

const SPEC_FIELDS: &[&str] = &[
    "arn",
    "username",
    "groups",
    "account",
    "adopt",
    "type",
    "accessPolicies",
];

/// Reads every `.yaml`, `.yml` and `.json` file under `paths` (directories recursively, in name
/// order) and collects the IamAccessGrants of their documents. YAML is decoded as kubectl
/// decodes it (YAML 1.1), JSON as JSON.
pub fn load_grants(paths: &[PathBuf]) -> Result<Loaded> {
    let mut files = Vec::new();
    for p in paths {
        collect_files(p, &mut files)?;
    }
    let mut out = Loaded::default();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for file in files {
        let text = read(&file)?;
        let bad = |message: String| Error::Manifest {
            path: file.clone(),
            message: shown_message(&message),
        };
        let decoded = if looks_like_json(&text) {
            let v: Value =
                serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
            Decoded {
                documents: vec![v],
                typed: Vec::new(),
            }
        } else {
            yaml11::decode(&text).map_err(bad)?
        };
        for (i, value) in decoded.documents.into_iter().enumerate() {
            let at = format!("{} (document {})", file.display(), i + 1);
            let (items, prefix) = match value.get("kind").and_then(Value::as_str) {
                Some("List") => (
                    value
                        .get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                    vec!["items".to_string()],
                ),
                _ => (vec![value], Vec::new()),
            };
            for (n, item) in items.into_iter().enumerate() {
                if item.is_null() {
                    continue;
                }
                let mut path = prefix.clone();
                if !prefix.is_empty() {
                    path.push(n.to_string());
                }
                let kind = item.get("kind").and_then(Value::as_str).unwrap_or("");
                let api = item.get("apiVersion").and_then(Value::as_str).unwrap_or("");
                let name = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if kind != "IamAccessGrant" || !api.starts_with(&format!("{GROUP}/")) {
                    let shown_name = if name.is_empty() { "?" } else { &name };
                    out.notes.push(format!(
                        "skipped {}/{} in {at}: not an IamAccessGrant",
                        shown(kind),
                        shown(shown_name)
                    ));
                    continue;
                }
                if name.is_empty() {
                    return Err(bad(format!(
                        "document {}: IamAccessGrant has no metadata.name",
                        i + 1
                    )));
                }
                if let Some(first) = seen.insert(name.clone(), at.clone()) {
                    return Err(bad(format!(
                        "IamAccessGrant {name} is defined twice: in {first} and in {at}"
                    )));
                }
                if let Some(spec) = item.get("spec").and_then(Value::as_object) {
                    for k in spec.keys().filter(|k| !SPEC_FIELDS.contains(&k.as_str())) {
                        out.notes.push(format!(
                            "warning: {at}: spec.{} is not a field of IamAccessGrant (fields: {}); the API server drops it",
                            shown(k),
                            SPEC_FIELDS.join(", ")
                        ));
                    }
                }
                path.push("spec".to_string());
                if let Some(t) = decoded.typed.iter().find(|t| {
                    let adopt_bool =
                        t.path.get(path.len()).is_some_and(|f| f == "adopt") && t.kind == "boolean";
                    t.document == i && t.path.starts_with(&path) && t.kind != "null" && !adopt_bool
                }) {
                    out.rejected
                        .push(type_error(&name, &t.path[path.len()..], t));
                    continue;
                }
                let grant: IamAccessGrant = serde_json::from_value(item).map_err(|e| {
                    bad(format!(
                        "document {}: not a valid IamAccessGrant: {e}",
                        i + 1
                    ))
                })?;
                out.grants.push(grant);
            }
        }
    }
    Ok(out)
}

/// The verdict for a spec value that kubectl sends as a boolean or a number.
fn type_error(grant: &str, field: &[String], t: &Typed) -> Verdict {
    let adopt = field.first().is_some_and(|f| f == "adopt");
    let mut dotted = "spec".to_string();
    for f in field {
        if f.bytes().all(|b| b.is_ascii_digit()) {
            dotted.push_str(&format!("[{f}]"));
        } else {
            dotted.push_str(&format!(".{}", shown(f)));
        }
    }
    let fix = if adopt {
        "write adopt: true or adopt: false".to_string()
    } else {
        format!("quote it: \"{}\"", shown(&t.text))
    };
    let message = if adopt {
        format!(
            "{dotted} (line {}): `{}` is not true or false; {fix}",
            t.line,
            shown(&t.text)
        )
    } else {
        format!(
            "{dotted} (line {}): unquoted `{}` is a YAML 1.1 {} to kubectl, so the API server rejects this grant (it needs a string); {fix}",
            t.line,
            shown(&t.text),
            t.kind
        )
    };
    Verdict {
        grant: grant.into(),
        reason: Reason::Invalid,
        message: message.into(),
        section: None,
        canonical_arn: None,
    }
}

/// Reads an aws-auth ConfigMap manifest (as `kubectl get configmap aws-auth -o yaml` or `-o json`
/// prints it). The reader must see the ConfigMap's exact text: JSON is decoded as JSON, and a
/// YAML file holding a character that YAML readers fold or refuse is refused.
pub fn load_configmap(path: &Path) -> Result<ConfigMap> {
    let text = read(path)?;
    let bad = |message: String| Error::Manifest {
        path: path.to_path_buf(),
        message: shown_message(&message),
    };
    if looks_like_json(&text) {
        return serde_json::from_str(&text)
            .map_err(|e| bad(format!("not a ConfigMap manifest (JSON): {e}")));
    }
    yaml11::check_characters(&text).map_err(|e| {
        bad(format!(
            "{e}; the ConfigMap's exact text cannot be known from YAML: export it with `kubectl -n kube-system get cm aws-auth -o json`"
        ))
    })?;
    // Decoded as kubectl does (YAML 1.1): the same text means the same ConfigMap here and there.
    let mut decoded =
        yaml11::decode(&text).map_err(|e| bad(format!("not a ConfigMap manifest: {e}")))?;
    if decoded.documents.len() != 1 {
        return Err(bad(format!(
            "{} YAML documents; give the aws-auth ConfigMap alone",
            decoded.documents.len()
        )));
    }
    serde_json::from_value(decoded.documents.remove(0))
        .map_err(|e| bad(format!("not a ConfigMap manifest: {e}")))
}

/// A ConfigMap as the YAML manifest `render` and `history show` print: read back (as kubectl
/// would) before it is returned, so what is printed is exactly the object, whatever its text holds.
pub fn configmap_yaml(cm: &ConfigMap) -> Result<String> {
    let value = serde_json::to_value(cm).expect("a ConfigMap serializes");
    yaml11::to_manifest(&value).map_err(|message| Error::Manifest {
        path: "<output>".into(),
        message,
    })
}

/// kubectl takes a document starting with `{` (after whitespace) as JSON.
fn looks_like_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// Parser errors quote the input; a huge file must not end up whole in a message.
fn shown_message(message: &str) -> String {
    excerpt(message, 400).into_owned()
}

/// The file's text, without the UTF-8 byte order mark some editors write (kubectl skips it).
fn read(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
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
    #[arg(long, env = "AWS_AUTH_NAMESPACE", default_value = crate::engine::authmap::NAMESPACE)]
    pub aws_auth_namespace: String,
    /// Name of the ConfigMap in the cluster.
    #[arg(long, env = "AWS_AUTH_NAME", default_value = crate::engine::authmap::NAME)]
    pub aws_auth_name: String,
}

/// The `data` of aws-auth and a description of where it came from.
pub async fn load_aws_auth(src: &AwsAuthSource) -> Result<(BTreeMap<String, String>, String)> {
    if let Some(path) = &src.aws_auth {
        let cm = load_configmap(path)?;
        return Ok((cm.data.unwrap_or_default(), path.display().to_string()));
    }
    let client = crate::client().await?;
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
