//! The webhook's serving certificate: made here (kept in memory, or shared by the replicas
//! through a Secret) or read from a directory (cert-manager's), and kept fresh while the process
//! runs. A certificate made here is valid for `--webhook-cert-validity` (a year) and made again
//! once a third of that is left; the CA bundle registered then holds the new CA and the one
//! before it, so a replica still serving the old certificate stays trusted until it picks up the
//! new one (it checks at least hourly). A directory is re-read when its files change.
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};

use super::review::AwsAuthTarget;
use super::{WebhookArgs, hosts, register, usage};
use crate::{Error, Result};

/// When a certificate made here stops being valid, on the Secret that shares it (Unix seconds).
pub const NOT_AFTER_ANNOTATION: &str = "aws-auth.dev/not-after";

/// PEM texts of a CA bundle (absent: a directory without ca.crt), a certificate and its key.
#[derive(Clone, PartialEq, Eq)]
pub struct Material {
    pub ca_pem: Option<String>,
    pub cert_pem: String,
    pub key_pem: String,
    /// Known for certificates made here.
    pub not_after: Option<SystemTime>,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Material")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A CA and a serving certificate for `hosts`, valid from a minute ago (clock skew) for `valid`.
pub fn make_certificates(hosts: &[String], valid: Duration) -> Result<Material> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| usage(format!("making the webhook certificate: {e}"));
    let now = SystemTime::now();
    let not_after = now + valid;
    let (from, to) = (
        time::OffsetDateTime::from(now - Duration::from_secs(60)),
        time::OffsetDateTime::from(not_after),
    );
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "aws-auth-operator webhook CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (ca.not_before, ca.not_after) = (from, to);
    let ca_key = KeyPair::generate().map_err(err)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(hosts.to_vec()).map_err(err)?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        hosts.first().cloned().unwrap_or_default(),
    );
    (leaf.not_before, leaf.not_after) = (from, to);
    let key = KeyPair::generate().map_err(err)?;
    let cert = leaf.signed_by(&key, &issuer).map_err(err)?;
    Ok(Material {
        ca_pem: Some(ca_cert.pem()),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_after: Some(not_after),
    })
}

/// The certificate the server presents, swapped in place when it is made again.
#[derive(Debug)]
struct Serving(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Serving {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().expect("certificate lock").clone())
    }
}

/// The server's TLS configuration and the material it serves.
pub struct Tls {
    pub server: Arc<rustls::ServerConfig>,
    serving: Arc<Serving>,
    material: Material,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified(m: &Material) -> Result<Arc<CertifiedKey>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, e: &dyn std::fmt::Display| usage(format!("webhook {what}: {e}"));
    let chain = CertificateDer::pem_slice_iter(m.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(m.key_pem.as_bytes()).map_err(|e| bad("key", &e))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|e| bad("certificate", &e))
}

fn server_config(material: Material) -> Result<Tls> {
    let serving = Arc::new(Serving(RwLock::new(certified(&material)?)));
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| usage(format!("webhook TLS: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(serving.clone());
    Ok(Tls {
        server: Arc::new(server),
        serving,
        material,
    })
}

impl Tls {
    /// The CA bundle that vouches for the served certificate (none: a directory without ca.crt).
    pub fn ca_pem(&self) -> Option<&str> {
        self.material.ca_pem.as_deref()
    }

    /// Serves `m` from the next handshake on.
    fn swap(&mut self, m: Material) -> Result<()> {
        *self.serving.0.write().expect("certificate lock") = certified(&m)?;
        self.material = m;
        Ok(())
    }
}

/// The TLS configuration: from `--webhook-cert-dir`, or made for `hosts`.
pub fn tls(args: &WebhookArgs) -> Result<Tls> {
    match &args.webhook_cert_dir {
        Some(dir) => server_config(read_dir(dir)?),
        None => server_config(make_certificates(
            &hosts(args)?,
            args.webhook_cert_validity,
        )?),
    }
}

fn read_dir(dir: &std::path::Path) -> Result<Material> {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).map_err(|source| Error::Io {
            path: dir.join(f),
            source,
        })
    };
    Ok(Material {
        ca_pem: read("ca.crt").ok(),
        cert_pem: read("tls.crt")?,
        key_pem: read("tls.key")?,
        not_after: None,
    })
}

fn split_secret(secret: &str) -> Result<(&str, &str)> {
    secret.split_once('/').ok_or_else(|| {
        usage(format!(
            "--webhook-cert-secret `{secret}` must be NAMESPACE/NAME"
        ))
    })
}

/// The material in a Secret, if complete.
fn stored(s: &Secret) -> Option<Material> {
    let field = |k: &str| {
        let b = s.data.as_ref()?.get(k)?;
        String::from_utf8(b.0.clone()).ok()
    };
    let not_after = s
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(NOT_AFTER_ANNOTATION))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
    Some(Material {
        ca_pem: Some(field("ca.crt")?),
        cert_pem: field("tls.crt")?,
        key_pem: field("tls.key")?,
        not_after,
    })
}

fn secret_of(ns: &str, name: &str, m: &Material, resource_version: Option<String>) -> Secret {
    let data = [
        ("ca.crt", m.ca_pem.clone().unwrap_or_default()),
        ("tls.crt", m.cert_pem.clone()),
        ("tls.key", m.key_pem.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
    .collect();
    let not_after = m
        .not_after
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            resource_version,
            annotations: Some([(NOT_AFTER_ANNOTATION.to_string(), not_after.to_string())].into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// The certificates kept in `--webhook-cert-secret`: read if a replica made them already, else
/// made here and stored (a replica that loses the race to create reads the winner's).
pub async fn shared_tls(client: &Client, args: &WebhookArgs, secret: &str) -> Result<Tls> {
    let (ns, name) = split_secret(secret)?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    if let Some(m) = secrets.get_opt(name).await?.as_ref().and_then(stored) {
        return server_config(m);
    }
    let m = make_certificates(&hosts(args)?, args.webhook_cert_validity)?;
    match secrets
        .create(&PostParams::default(), &secret_of(ns, name, &m, None))
        .await
    {
        Ok(_) => server_config(m),
        Err(kube::Error::Api(s)) if s.is_already_exists() => {
            let theirs = secrets.get(name).await?;
            server_config(stored(&theirs).ok_or_else(|| {
                usage(format!("Secret {secret} lacks ca.crt, tls.crt or tls.key; delete it so that it is made again"))
            })?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether a certificate made here is due to be made again: a third of its validity or less
/// left, or an end not known (made by a version that did not record it).
fn due(m: &Material, valid: Duration, now: SystemTime) -> bool {
    m.not_after.is_none_or(|end| now + valid / 3 >= end)
}

/// The first certificate of a PEM bundle (the CA in use before a renewal).
fn first_pem(bundle: &str) -> &str {
    const END: &str = "-----END CERTIFICATE-----";
    bundle
        .find(END)
        .map_or(bundle, |i| &bundle[..i + END.len()])
}

/// A renewal: new material whose CA bundle also vouches for the certificate it replaces.
fn renewed(args: &WebhookArgs, old: &Material) -> Result<Material> {
    let mut m = make_certificates(&hosts(args)?, args.webhook_cert_validity)?;
    if let (Some(new), Some(old)) = (&m.ca_pem, &old.ca_pem) {
        m.ca_pem = Some(format!("{new}{}\n", first_pem(old).trim_end()));
    }
    Ok(m)
}

/// One look: the material to serve from now on, if it changed (made again here, another
/// replica's from the Secret, or the directory's new files).
async fn refresh(
    client: &Client,
    args: &WebhookArgs,
    current: &Material,
) -> Result<Option<Material>> {
    let now = SystemTime::now();
    if let Some(dir) = &args.webhook_cert_dir {
        let m = read_dir(dir)?;
        return Ok((&m != current).then_some(m));
    }
    let Some(secret) = &args.webhook_cert_secret else {
        return due(current, args.webhook_cert_validity, now)
            .then(|| renewed(args, current))
            .transpose();
    };
    let (ns, name) = split_secret(secret)?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let found = secrets.get_opt(name).await?;
    let theirs = found.as_ref().and_then(stored);
    let base = theirs.as_ref().unwrap_or(current);
    if !due(base, args.webhook_cert_validity, now) {
        return Ok(theirs.filter(|t| t != current));
    }
    // Made again and stored with the Secret's resourceVersion as precondition: of replicas
    // renewing at once, one wins and the others take its certificate at their next look.
    let m = renewed(args, base)?;
    let rv = found.and_then(|s| s.metadata.resource_version);
    let sent = secret_of(ns, name, &m, rv.clone());
    let res = match rv {
        Some(_) => secrets.replace(name, &PostParams::default(), &sent).await,
        None => secrets.create(&PostParams::default(), &sent).await,
    };
    match res {
        Ok(_) => Ok(Some(m)),
        Err(kube::Error::Api(s)) if s.is_conflict() || s.is_already_exists() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// How often to look: often enough that every replica takes a new certificate long before the
/// one it replaced expires.
fn check_every(valid: Duration) -> Duration {
    (valid / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// Where the webhook is registered, to register the new CA bundle after a change.
pub struct Registration {
    pub client: Client,
    pub target: AwsAuthTarget,
    pub grant_selector: Option<String>,
}

/// Keeps the served certificate fresh for as long as the process runs.
pub async fn keep_fresh(
    client: Client,
    args: WebhookArgs,
    mut tls: Tls,
    registration: Option<Registration>,
) {
    let every = check_every(args.webhook_cert_validity);
    loop {
        match refresh(&client, &args, &tls.material).await {
            Ok(Some(m)) => {
                let ends = m.not_after.and_then(|t| t.duration_since(UNIX_EPOCH).ok());
                if let Err(e) = tls.swap(m) {
                    warn!(error = %e, "new webhook certificate not usable; serving the old one");
                } else {
                    info!(
                        not_after_unix = ends.map(|d| d.as_secs()),
                        "webhook certificate renewed"
                    );
                    if let (Some(r), Some(ca)) = (&registration, tls.ca_pem())
                        && let Err(e) =
                            register(&r.client, &args, ca, &r.target, r.grant_selector.as_deref())
                                .await
                    {
                        warn!(error = %e, "webhook not registered with the new CA; retrying at the next look");
                        tls.material.not_after = Some(UNIX_EPOCH);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "webhook certificate not refreshed; retrying"),
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_made_again_once_a_third_of_their_life_is_left() {
        let year = Duration::from_secs(365 * 86_400);
        let m = make_certificates(&["webhook.example".into()], year).unwrap();
        let now = SystemTime::now();
        assert!(!due(&m, year, now));
        assert!(!due(&m, year, now + year / 2));
        assert!(due(&m, year, now + year * 2 / 3 + Duration::from_secs(60)));
        let unknown = Material {
            not_after: None,
            ..m.clone()
        };
        assert!(due(&unknown, year, now));
    }

    #[test]
    fn a_renewal_bundles_the_new_ca_with_the_one_before() {
        let args = crate::operator::webhook::tests::args(Some("https://127.0.0.1:9443"), None);
        let first = make_certificates(&["127.0.0.1".into()], Duration::from_secs(60)).unwrap();
        let second = renewed(&args, &first).unwrap();
        let third = renewed(&args, &second).unwrap();
        let third_ca = third.ca_pem.clone().unwrap();
        let count = |m: &Material| {
            m.ca_pem
                .as_ref()
                .unwrap()
                .matches("BEGIN CERTIFICATE")
                .count()
        };
        assert_eq!((count(&second), count(&third)), (2, 2));
        let (old_ca, new_ca) = (first.ca_pem.unwrap(), second.ca_pem.clone().unwrap());
        assert!(new_ca.ends_with(&format!("{}\n", old_ca.trim_end())));
        assert!(third_ca.contains(first_pem(&new_ca)) && !third_ca.contains(old_ca.trim_end()));
        assert_ne!(second.cert_pem, third.cert_pem);
        // The server takes it in place.
        let mut tls = server_config(third.clone()).unwrap();
        tls.swap(second.clone()).unwrap();
        assert_eq!(tls.ca_pem(), second.ca_pem.as_deref());
    }
}
