//! aws-auth in the API server's protobuf encoding, for its writes.
//!
//! Profiled on kube-apiserver, a PUT of a 700 KB ConfigMap as JSON spends about four fifths of its
//! time decoding the body (one scan for apiVersion and kind, then the decode, of text that is
//! mostly escaped YAML); as protobuf it is a length and a copy. Built-in types take
//! `application/vnd.kubernetes.protobuf` on every API server, so the write of aws-auth sends it.
//! The encoding is small and fixed (k8s.io/api core/v1 and apimachinery meta/v1 generated.proto),
//! and is written here rather than pulled in with a code generator. The tests below pin the
//! bytes; the test that counts is a real API server decoding them (tests/controller.rs).
//!
//! `managedFields` is not sent: an update without it keeps the live object's (the field manager
//! falls back to them), which is what sending them back unchanged does too.
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

/// The media type of [`configmap`]'s output.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// `k8s\0`: the API server's protobuf serializer reads this, then a `runtime.Unknown`.
const MAGIC: &[u8] = b"k8s\0";

/// Where encoded bytes go: counted first, for the length of a message, then written.
trait Out {
    fn put(&mut self, bytes: &[u8]);
}

struct Count(usize);

impl Out for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

impl Out for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

fn varint(o: &mut dyn Out, mut v: u64) {
    let mut buf = [0u8; 10];
    let mut n = 0;
    loop {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf[n] = low;
            n += 1;
            break;
        }
        buf[n] = low | 0x80;
        n += 1;
    }
    o.put(&buf[..n]);
}

const VARINT: u64 = 0;
const LEN: u64 = 2;

fn tag(o: &mut dyn Out, field: u64, wire: u64) {
    varint(o, (field << 3) | wire);
}

fn bytes(o: &mut dyn Out, field: u64, b: &[u8]) {
    tag(o, field, LEN);
    varint(o, b.len() as u64);
    o.put(b);
}

/// A Go `string` field: empty and absent decode the same, so empty is left out.
fn string(o: &mut dyn Out, field: u64, s: Option<&str>) {
    if let Some(s) = s.filter(|s| !s.is_empty()) {
        bytes(o, field, s.as_bytes());
    }
}

/// int64 (two's complement, as protobuf encodes negative int64) and bool.
fn int(o: &mut dyn Out, field: u64, v: Option<i64>) {
    if let Some(v) = v {
        tag(o, field, VARINT);
        varint(o, v as u64);
    }
}

fn boolean(o: &mut dyn Out, field: u64, v: Option<bool>) {
    int(o, field, v.map(i64::from));
}

/// A nested message: its length first, so it is encoded twice (counted, then written).
fn message(o: &mut dyn Out, field: u64, body: &dyn Fn(&mut dyn Out)) {
    let mut n = Count(0);
    body(&mut n);
    tag(o, field, LEN);
    varint(o, n.0 as u64);
    body(o);
}

/// A `map<string, string>` or `map<string, bytes>`: one entry message (key 1, value 2) each.
fn map<'a>(o: &mut dyn Out, field: u64, entries: impl IntoIterator<Item = (&'a str, &'a [u8])>) {
    for (k, v) in entries {
        message(o, field, &|o| {
            bytes(o, 1, k.as_bytes());
            bytes(o, 2, v);
        });
    }
}

fn time(o: &mut dyn Out, field: u64, t: Option<&Time>) {
    if let Some(t) = t {
        message(o, field, &|o| {
            int(o, 1, Some(t.0.as_second()));
            let nanos = t.0.subsec_nanosecond();
            int(o, 2, (nanos != 0).then_some(i64::from(nanos)));
        });
    }
}

fn owner(o: &mut dyn Out, r: &OwnerReference) {
    string(o, 1, Some(&r.kind));
    string(o, 3, Some(&r.name));
    string(o, 4, Some(&r.uid));
    string(o, 5, Some(&r.api_version));
    boolean(o, 6, r.controller);
    boolean(o, 7, r.block_owner_deletion);
}

fn pairs(
    m: &Option<std::collections::BTreeMap<String, String>>,
) -> impl Iterator<Item = (&str, &[u8])> {
    (m.iter().flatten()).map(|(k, v)| (k.as_str(), v.as_bytes()))
}

fn object_meta(o: &mut dyn Out, m: &ObjectMeta) {
    string(o, 1, m.name.as_deref());
    string(o, 2, m.generate_name.as_deref());
    string(o, 3, m.namespace.as_deref());
    string(o, 4, m.self_link.as_deref());
    string(o, 5, m.uid.as_deref());
    string(o, 6, m.resource_version.as_deref());
    int(o, 7, m.generation);
    time(o, 8, m.creation_timestamp.as_ref());
    time(o, 9, m.deletion_timestamp.as_ref());
    int(o, 10, m.deletion_grace_period_seconds);
    map(o, 11, pairs(&m.labels));
    map(o, 12, pairs(&m.annotations));
    for r in m.owner_references.iter().flatten() {
        message(o, 13, &|o| owner(o, r));
    }
    for f in m.finalizers.iter().flatten() {
        bytes(o, 14, f.as_bytes());
    }
}

fn configmap_message(o: &mut dyn Out, cm: &ConfigMap) {
    message(o, 1, &|o| object_meta(o, &cm.metadata));
    map(o, 2, pairs(&cm.data));
    let binary = cm.binary_data.iter().flatten();
    map(o, 3, binary.map(|(k, v)| (k.as_str(), &v.0[..])));
    boolean(o, 4, cm.immutable);
}

fn envelope(o: &mut dyn Out, cm: &ConfigMap) {
    o.put(MAGIC);
    message(o, 1, &|o| {
        bytes(o, 1, b"v1");
        bytes(o, 2, b"ConfigMap");
    });
    message(o, 2, &|o| configmap_message(o, cm));
}

/// A replace (PUT) of `name` with `cm` as its protobuf body; the resourceVersion `cm` carries is
/// the precondition.
pub fn replace(
    api: &kube::Api<ConfigMap>,
    name: &str,
    pp: &kube::api::PostParams,
    cm: &ConfigMap,
) -> kube::Result<hyper::Request<Vec<u8>>> {
    let mut req = kube::core::Request::new(api.resource_url())
        .replace(name, pp, configmap(cm))
        .map_err(kube::Error::BuildRequest)?;
    req.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    req.extensions_mut().insert("replace");
    Ok(req)
}

/// The ConfigMap as the body of a create or update, sized exactly before it is written.
pub fn configmap(cm: &ConfigMap) -> Vec<u8> {
    let mut n = Count(0);
    envelope(&mut n, cm);
    let mut body = Vec::with_capacity(n.0);
    envelope(&mut body, cm);
    debug_assert_eq!(body.len(), n.0);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_negative_int64() {
        let enc = |v: i64| {
            let mut b = Vec::new();
            int(&mut b, 1, Some(v));
            b
        };
        assert_eq!(enc(1), [0x08, 0x01]);
        assert_eq!(enc(300), [0x08, 0xac, 0x02]);
        // Negative int64 takes ten bytes.
        assert_eq!(
            enc(-1),
            [
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]
        );
    }

    /// The exact bytes of a small ConfigMap, worked out by hand from the .proto field numbers.
    #[test]
    fn a_small_configmap_byte_for_byte() {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("a".into()),
                resource_version: Some("7".into()),
                ..Default::default()
            },
            data: Some([("k".to_string(), "v".to_string())].into()),
            immutable: Some(false),
            ..Default::default()
        };
        let meta = [0x0a, 1, b'a', 0x32, 1, b'7'];
        let entry = [0x0a, 1, b'k', 0x12, 1, b'v'];
        let mut inner = vec![0x0a, meta.len() as u8];
        inner.extend(meta);
        inner.extend([0x12, entry.len() as u8]);
        inner.extend(entry);
        inner.extend([0x20, 0x00]);
        let mut want = b"k8s\0".to_vec();
        want.extend([0x0a, 15, 0x0a, 2, b'v', b'1', 0x12, 9]);
        want.extend(b"ConfigMap");
        want.extend([0x12, inner.len() as u8]);
        want.extend(inner);
        assert_eq!(configmap(&cm), want);
    }

    /// Lengths past one byte of varint, at the size aws-auth reaches.
    #[test]
    fn long_values_are_sized_exactly() {
        let cm = ConfigMap {
            data: Some([("mapRoles".to_string(), "x".repeat(800_000))].into()),
            ..Default::default()
        };
        let body = configmap(&cm);
        assert!(
            body.len() > 800_000 && body.len() < 800_100,
            "{}",
            body.len()
        );
        assert_eq!(body.capacity(), body.len());
    }
}
