//! The container image (built by `hack/image.sh build`, which `hack/test.sh` runs): a non-root
//! numeric user, a read-only root filesystem, `render` on the examples, and the operator in the
//! container (host network) through one grant lifecycle on the real kube-apiserver.
mod support;

use std::process::{Command, Output};
use std::time::Duration;

use kube::api::DeleteParams;

use support::{World, eventually, free_port, role};

fn image() -> String {
    std::env::var("AWS_AUTH_TEST_IMAGE").unwrap_or_else(|_| {
        panic!("no image to test: run the suite with `hack/test.sh`, which builds it with `hack/image.sh build` and sets AWS_AUTH_TEST_IMAGE")
    })
}

fn podman(args: &[&str]) -> Output {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/containers.conf");
    Command::new("podman")
        .env("CONTAINERS_CONF", conf)
        .args(args)
        .output()
        .expect("podman runs (hack/image.sh install)")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
const RENDER: &[&str] = &[
    "render",
    "-f",
    "/examples/grants",
    "-f",
    "/examples/invalid",
    "--aws-auth",
    "/examples/aws-auth.yaml",
    "--privileged-principal",
    "arn:aws:iam::111122223333:user/platform/*",
];

#[test]
fn image_runs_render_as_a_numeric_non_root_user_on_a_read_only_root() {
    let image = image();
    let inspect = podman(&["image", "inspect", &image, "--format", "{{.Config.User}}"]);
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    let user = text(&inspect.stdout).trim().to_string();
    let (uid, gid) = user.split_once(':').expect("USER uid:gid");
    let uid: u32 = uid
        .parse()
        .expect("numeric uid (Kubernetes' runAsNonRoot needs one)");
    let _: u32 = gid.parse().expect("numeric gid");
    assert_ne!(uid, 0);

    let mount = format!("{EXAMPLES}:/examples:ro");
    let mut args = vec![
        "run",
        "--rm",
        "--read-only",
        "--network",
        "none",
        "-v",
        &mount,
        &image,
    ];
    args.extend_from_slice(RENDER);
    let inside = podman(&args);
    // The same binary outside the image, on the same files.
    let outside = Command::new(env!("CARGO_BIN_EXE_aws-auth-operator"))
        .args(RENDER.iter().map(|a| a.replace("/examples", EXAMPLES)))
        .output()
        .unwrap();
    assert_eq!(inside.status.code(), Some(1), "{}", text(&inside.stderr));
    assert_eq!(outside.status.code(), Some(1));
    assert_eq!(text(&inside.stdout), text(&outside.stdout));
    assert!(text(&inside.stdout).contains("system:node:{{EC2PrivateDNSName}}"));
    assert!(
        text(&inside.stderr).contains("use arn:aws:iam::111122223333:role/Admins"),
        "{}",
        text(&inside.stderr)
    );
}

/// Removes the container however the test ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        podman(&["rm", "--force", "--time", "2", &self.0]);
    }
}

#[tokio::test]
async fn operator_container_reconciles_a_grant_on_the_real_api_server() {
    let image = image();
    let w = World::new("image").await;
    w.create_configmap(&[("mapRoles", support::NODE_ROLES)])
        .await;
    // Readable by the image's user, mounted read-only.
    let dir = std::env::temp_dir().join(format!("image-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::copy(std::env::var("KUBECONFIG").unwrap(), &kubeconfig).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o644)).unwrap();

    let port = free_port();
    let name = format!("aws-auth-operator-test-{}", std::process::id());
    let mount = format!("{}:/config/kubeconfig:ro", kubeconfig.display());
    let health = format!("127.0.0.1:{port}");
    let selector = format!("{}={}", support::TEST_LABEL, w.name);
    let run = podman(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--read-only",
        "--network",
        "host",
        "--env",
        "KUBECONFIG=/config/kubeconfig",
        "--env",
        "AWS_AUTH_PRIVILEGED_PRINCIPAL=*",
        "-v",
        &mount,
        &image,
        "run",
        "--aws-auth-name",
        &w.name,
        "--grant-selector",
        &selector,
        "--health-addr",
        &health,
        "--debounce",
        "50ms",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let container = Container(name);
    let logs = || text(&podman(&["logs", &container.0]).stderr);

    // The process in the container runs as the image's user.
    let pid = text(&podman(&["inspect", &container.0, "--format", "{{.State.Pid}}"]).stdout)
        .trim()
        .to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(uid, "65532", "{status}");

    w.create(
        "from-image",
        role(
            "arn:aws:iam::111122223333:role/FromImage",
            "from-image",
            &["view"],
        ),
    )
    .await;
    let applied = tokio::time::timeout(
        Duration::from_secs(60),
        w.wait_reason("from-image", "Applied"),
    )
    .await;
    assert!(applied.is_ok(), "not applied; container log:\n{}", logs());
    let read = w.read().await.unwrap();
    assert_eq!(
        read.auth_map().roles.len(),
        2,
        "node role kept, grant added"
    );

    // Metrics from the container's port on the host network.
    let metrics = eventually("metrics served", Duration::from_secs(10), || async {
        let (_, body) = support::http_get(port, "/metrics")?;
        body.contains("aws_auth_operator_writes_total")
            .then_some(body)
    })
    .await;
    assert!(
        metrics.contains("aws_auth_operator_grants{reason=\"Applied\"} 1"),
        "{metrics}"
    );

    // Deleting the grant removes its entry and keeps the node role.
    w.grants
        .delete(&w.full_name("from-image"), &DeleteParams::default())
        .await
        .unwrap();
    eventually("entry removed", Duration::from_secs(30), || async {
        let roles = w.read().await?.auth_map().roles;
        (roles.len() == 1 && roles[0].username.starts_with("system:node:")).then_some(())
    })
    .await;
    // SIGTERM ends it cleanly.
    let stop = podman(&["stop", "--time", "10", &container.0]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let code = text(&podman(&["inspect", &container.0, "--format", "{{.State.ExitCode}}"]).stdout);
    assert_eq!(code.trim(), "0", "{}", logs());
    let _ = std::fs::remove_dir_all(&dir);
}
