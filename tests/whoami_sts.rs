//! `whoami` against a real STS protocol endpoint (moto on loopback, started by `hack/test.sh`) and
//! `import` end to end through the binary.
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};

const ACCOUNT: &str = "123456789012";

/// The moto endpoint; fails loudly without one, like the API-server tests.
fn endpoint() -> String {
    std::env::var("AWS_AUTH_TEST_STS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "no test STS endpoint: run the suite with `hack/test.sh`, which starts moto and sets \
             AWS_AUTH_TEST_STS_ENDPOINT (or `hack/local-sts.sh up DIR` and `eval \"$(hack/local-sts.sh env DIR)\"`)"
        )
    })
}

/// One IAM query-API call to moto. moto routes on the credential scope of the Authorization
/// header and does not check the signature.
fn iam_call(params: &str) -> String {
    let url = endpoint();
    let host = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).expect("moto listens");
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{params}",
        params.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{params}: {out}");
    out
}

fn xml_field(xml: &str, tag: &str) -> String {
    let start = xml
        .find(&format!("<{tag}>"))
        .unwrap_or_else(|| panic!("no {tag} in {xml}"))
        + tag.len()
        + 2;
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    xml[start..end].to_string()
}

/// Access keys of a new IAM user.
fn iam_user(name: &str) -> Credentials {
    iam_call(&format!(
        "Action=CreateUser&UserName={name}&Version=2010-05-08"
    ));
    let xml = iam_call(&format!(
        "Action=CreateAccessKey&UserName={name}&Version=2010-05-08"
    ));
    Credentials::new(
        xml_field(&xml, "AccessKeyId"),
        xml_field(&xml, "SecretAccessKey"),
        None,
        None,
        "test",
    )
}

/// Temporary credentials of a role session, from sts:AssumeRole.
async fn assume_role(role: &str, session: &str) -> Credentials {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(Credentials::new(
            "AKIAEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        .build();
    let out = aws_sdk_sts::Client::from_conf(config)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/{role}"))
        .role_session_name(session)
        .send()
        .await
        .expect("AssumeRole");
    let c = out.credentials().unwrap();
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "test",
    )
}

fn aws_auth_file(name: &str, map_roles: &str, map_users: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("whoami-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("aws-auth.yaml");
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system"},
        "data": {"mapRoles": map_roles, "mapUsers": map_users},
    });
    std::fs::write(&path, serde_yaml::to_string(&cm).unwrap()).unwrap();
    path
}

fn whoami(creds: &Credentials, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aws-auth-operator"));
    cmd.arg("whoami")
        .args(["--endpoint-url", &endpoint(), "--region", "us-east-1"])
        .args(args)
        .env_remove("AWS_PROFILE")
        .env("AWS_ACCESS_KEY_ID", creds.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", creds.secret_access_key())
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    match creds.session_token() {
        Some(t) => cmd.env("AWS_SESSION_TOKEN", t),
        None => cmd.env_remove("AWS_SESSION_TOKEN"),
    };
    cmd.output().expect("binary runs")
}

/// `whoami -o json` that must map the caller (exit 0).
fn mapped_json(creds: &Credentials, args: &[&str]) -> serde_json::Value {
    let o = whoami(creds, &[args, &["-o", "json"]].concat());
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    json(&o)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)))
}

#[tokio::test]
async fn assumed_role_session_is_canonicalised_and_mapped_with_its_session_name() {
    let creds = assume_role("Admins", "alice@example.com").await;
    let file = aws_auth_file(
        "mapped",
        &format!(
            "- rolearn: arn:aws:iam::{ACCOUNT}:role/admins\n  username: \"admin:{{{{SessionName}}}}\"\n  groups: [system:masters]\n"
        ),
        "",
    );
    let r = mapped_json(&creds, &["--aws-auth", file.to_str().unwrap()]);
    assert_eq!(
        r["arn"],
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/Admins/alice@example.com")
    );
    assert_eq!(
        r["canonical_arn"],
        format!("arn:aws:iam::{ACCOUNT}:role/Admins")
    );
    assert_eq!(r["mapped"]["username"], "admin:alice-example.com");
    assert_eq!(r["mapped"]["groups"][0], "system:masters");
    assert_eq!(r["mapped"]["section"], "mapRoles");
}

#[tokio::test]
async fn role_written_with_a_path_is_not_mapped_and_the_fix_is_shown() {
    let creds = assume_role("Deployer", "ci").await;
    let file = aws_auth_file(
        "path",
        &format!("- rolearn: arn:aws:iam::{ACCOUNT}:role/ci/Deployer\n  username: deployer\n"),
        "",
    );
    let o = whoami(&creds, &["--aws-auth", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("NOT MAPPED"), "{out}");
    assert!(
        out.contains(&format!("use arn:aws:iam::{ACCOUNT}:role/Deployer")),
        "{out}"
    );
    assert!(out.contains("kind: IamAccessGrant"), "{out}");
}

#[tokio::test]
async fn iam_user_is_matched_case_insensitively_in_map_users() {
    // One user per run: a moto left running keeps its users.
    let name = format!("carol-{}", std::process::id());
    let creds = iam_user(&name);
    let file = aws_auth_file(
        "user",
        "",
        &format!(
            "- userarn: arn:aws:iam::{ACCOUNT}:user/{}\n  username: carol\n",
            name.to_uppercase()
        ),
    );
    let r = mapped_json(&creds, &["--aws-auth", file.to_str().unwrap()]);
    assert_eq!(r["arn"], format!("arn:aws:iam::{ACCOUNT}:user/{name}"));
    assert_eq!(r["mapped"]["username"], "carol");
}

#[tokio::test]
async fn whoami_reads_aws_auth_from_the_cluster_when_allowed() {
    let w = support::World::new("whoami").await;
    w.create_configmap(&[(
        "mapRoles",
        &format!("- rolearn: arn:aws:iam::{ACCOUNT}:role/Viewer\n  username: viewer\n"),
    )])
    .await;
    let creds = assume_role("Viewer", "dave").await;
    let r = mapped_json(&creds, &["--aws-auth-name", &w.name]);
    assert_eq!(r["mapped"]["username"], "viewer");
    assert_eq!(
        r["aws_auth_source"],
        format!("the cluster's kube-system/{}", w.name)
    );
}

#[test]
fn bad_credentials_exit_two_with_a_clear_message() {
    let creds = Credentials::new("", "", None, None, "test");
    let o = whoami(&creds, &["--aws-auth", "examples/aws-auth.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("AWS credentials"), "{err}");
}

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aws-auth-operator"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn import_then_render_gives_back_the_same_mapping() {
    let roles = "- groups:\n  - system:bootstrappers\n  - system:nodes\n  rolearn: arn:aws:iam::111122223333:role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\n- groups:\n  - system:masters\n  rolearn: arn:aws:iam::111122223333:role/Admin\n  username: admin:{{SessionName}}\n";
    let users = "- userarn: arn:aws:iam::111122223333:user/ops/alice\n  username: alice\n  groups: [view]\n";
    let file = aws_auth_file("import", roles, users);
    let out = file.parent().unwrap().join("grants");
    let o = bin(&[
        "import",
        "--aws-auth",
        file.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("imported 2 grants"), "{err}");
    assert!(err.contains("EKS node role"), "{err}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);

    // The imported admin keeps system:masters only where the policy allows it.
    let o = bin(&[
        "render",
        "-f",
        out.to_str().unwrap(),
        "--aws-auth",
        file.to_str().unwrap(),
        "--privileged-principal",
        "arn:aws:iam::111122223333:role/Admin",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rendered: k8s_openapi::api::core::v1::ConfigMap =
        serde_yaml::from_slice(&o.stdout).unwrap();
    let before = aws_auth_operator::engine::authmap::read::read_data(
        &aws_auth_operator::commands::manifests::load_configmap(Path::new(&file))
            .unwrap()
            .data
            .unwrap(),
    )
    .auth_map();
    let after =
        aws_auth_operator::engine::authmap::read::read_data(&rendered.data.unwrap()).auth_map();
    assert_eq!(
        before, after,
        "same entries, same order here: node role first, then the adopted ones sorted"
    );
}

/// The local EKS server (same process as STS, `hack/local-aws/`).
fn eks() -> aws_sdk_eks::Client {
    aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::Config::builder()
            .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
            .region(aws_sdk_eks::config::Region::new("us-east-1"))
            .endpoint_url(
                std::env::var("AWS_AUTH_TEST_EKS_ENDPOINT")
                    .expect("AWS_AUTH_TEST_EKS_ENDPOINT: run the suite with `hack/test.sh`"),
            )
            .credentials_provider(aws_sdk_eks::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build(),
    )
}

#[tokio::test]
async fn in_api_modes_the_access_entry_decides_and_in_api_aws_auth_is_not_read() {
    use aws_sdk_eks::types::{AccessScope, AccessScopeType, AuthenticationMode};
    let cluster = format!("whoami-{}", std::process::id());
    eks()
        .create_cluster()
        .name(&cluster)
        .role_arn("arn:aws:iam::111122223333:role/eks")
        .resources_vpc_config(aws_sdk_eks::types::VpcConfigRequest::builder().build())
        .access_config(
            aws_sdk_eks::types::CreateAccessConfigRequest::builder()
                .authentication_mode(AuthenticationMode::Api)
                .bootstrap_cluster_creator_admin_permissions(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // The entry names the role with its path; the caller's session ARN has none.
    let principal = format!("arn:aws:iam::{ACCOUNT}:role/team/Viewers");
    eks()
        .create_access_entry()
        .cluster_name(&cluster)
        .principal_arn(&principal)
        .username("viewer:{{SessionName}}")
        .kubernetes_groups("viewers")
        .send()
        .await
        .unwrap();
    eks()
        .associate_access_policy()
        .cluster_name(&cluster)
        .principal_arn(&principal)
        .policy_arn("arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy")
        .access_scope(
            AccessScope::builder()
                .r#type(AccessScopeType::Namespace)
                .namespaces("shop")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let eks_url = std::env::var("AWS_AUTH_TEST_EKS_ENDPOINT").unwrap();
    let file = aws_auth_file(
        "access-entries",
        &format!("- rolearn: arn:aws:iam::{ACCOUNT}:role/Others\n  username: other\n"),
        "",
    );
    let args = [
        "--aws-auth",
        file.to_str().unwrap(),
        "--cluster-name",
        &cluster,
        "--eks-endpoint-url",
        &eks_url,
    ];
    let viewer = assume_role("Viewers", "bob@example.com").await;
    let r = mapped_json(&viewer, &args);
    assert_eq!(r["access_entries"]["authenticationMode"], "API");
    assert_eq!(r["access_entries"]["decidedBy"], "access entry");
    let e = &r["access_entries"]["entry"];
    assert_eq!(e["principalArn"], principal);
    assert_eq!(e["username"], "viewer:bob-example.com");
    assert_eq!(e["groups"][0], "viewers");
    assert_eq!(e["policies"][0], "AmazonEKSViewPolicy in shop");

    // Mapped by aws-auth only: in API mode that is not read, so not authenticated.
    let other = assume_role("Others", "carol").await;
    let o = whoami(&other, &args);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("authentication mode: API\nNO ACCESS ENTRY for you")
            && out.contains("aws-auth is not read"),
        "{out}"
    );
}
