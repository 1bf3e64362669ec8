//! The `render` command end to end, as pull-request CI runs it: the real binary on the shipped examples.
use std::path::Path;
use std::process::{Command, Output};

fn render(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aws-auth-operator"))
        .arg("render")
        .args(args)
        // The examples grant system:masters and an account; the policy has its own test (a flag
        // overrides this).
        .env("AWS_AUTH_PRIVILEGED_PRINCIPAL", "*")
        .env("AWS_AUTH_ALLOWED_ACCOUNT", "444455556666")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn examples_render_keep_the_node_roles_and_exit_zero() {
    let o = render(&[
        "-f",
        "examples/grants",
        "--aws-auth",
        "examples/aws-auth.yaml",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("eks-nodegroup-general-NodeInstanceRole-1A2B3C4D5E6F"),
        "{out}"
    );
    assert!(out.contains("eks-fargate-pod-execution-role"), "{out}");
    assert!(out.contains("aws-auth.dev/managed"));
    assert!(stderr(&o).contains("4 grants: 4 applied, 0 refused; aws-auth changes"));
}

#[test]
fn output_fed_back_as_aws_auth_is_a_fixed_point() {
    let first = render(&[
        "-f",
        "examples/grants",
        "--aws-auth",
        "examples/aws-auth.yaml",
    ]);
    let dir = std::env::temp_dir().join(format!("render-fixed-point-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("aws-auth.yaml");
    std::fs::write(&file, &first.stdout).unwrap();
    let second = render(&[
        "-f",
        "examples/grants",
        "--aws-auth",
        file.to_str().unwrap(),
    ]);
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(stdout(&first), stdout(&second));
    assert!(
        stderr(&second).contains("aws-auth unchanged"),
        "{}",
        stderr(&second)
    );
    let diff = render(&[
        "-f",
        "examples/grants",
        "--aws-auth",
        file.to_str().unwrap(),
        "-o",
        "diff",
    ]);
    assert_eq!(stdout(&diff), "");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_invalid_grant_exits_one_and_names_the_fix() {
    let o = render(&[
        "-f",
        "examples/grants",
        "examples/invalid",
        "--aws-auth",
        "examples/aws-auth.yaml",
        "-o",
        "diff",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("admins-with-path        False  Invalid"),
        "{err}"
    );
    assert!(
        err.contains("use arn:aws:iam::111122223333:role/Admins"),
        "{err}"
    );
    assert!(
        stdout(&o).contains("+ mapUsers: arn:aws:iam::111122223333:user/platform/designated_user")
    );
}

#[test]
fn cluster_creator_given_as_session_arn_is_refused() {
    let o = render(&[
        "-f",
        "examples/grants",
        "--cluster-creator-arn",
        "arn:aws:sts::111122223333:assumed-role/ci-deployer/pipeline-42",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("ci-deployer             False  ClusterCreator"),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("role/ci-deployer"));
}

#[test]
fn usage_and_io_errors_exit_two_and_name_the_problem() {
    let o = render(&["-f", "does/not/exist.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does/not/exist.yaml"), "{}", stderr(&o));

    let dir = std::env::temp_dir().join(format!("render-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: aws-auth.dev/v1alpha1\nkind: IamAccessGrant\nmetadata: {name: x}\nspec:\n  groups: system:masters\n").unwrap();
    let o = render(&["-f", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("bad.yaml: document 1: not a valid IamAccessGrant"),
        "{}",
        stderr(&o)
    );

    let o = render(&["-f", "examples/grants", "--cluster-creator-arn", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--cluster-creator-arn"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn other_kinds_are_skipped_and_unknown_spec_fields_warned_about() {
    let dir = std::env::temp_dir().join(format!("render-mixed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("mixed.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n---\napiVersion: aws-auth.dev/v1alpha1\nkind: IamAccessGrant\nmetadata: {name: a}\nspec:\n  arn: arn:aws:iam::111122223333:role/a\n  username: a\n  group: [typo]\n",
    )
    .unwrap();
    let o = render(&["-f", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(err.contains("skipped Namespace/team"), "{err}");
    assert!(err.contains("spec.group is not a field"), "{err}");
    assert!(Path::new(&dir).exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// A scratch directory for one test, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("render-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, file: &str, text: &str) -> String {
        let p = self.0.join(file);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const GRANT: &str = "apiVersion: aws-auth.dev/v1alpha1\nkind: IamAccessGrant\nmetadata: {name: new-admin}\nspec:\n  arn: arn:aws:iam::111122223333:role/new-admin\n  username: new-admin\n  groups: [\"system:masters\"]\n";

fn aws_auth_json(map_roles: &str, map_users: Option<&str>) -> String {
    let mut data = serde_json::json!({ "mapRoles": map_roles });
    if let Some(u) = map_users {
        data["mapUsers"] = u.into();
    }
    serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system"},
        "data": data,
    })
    .to_string()
}

fn rendered_data(o: &Output) -> std::collections::BTreeMap<String, String> {
    let cm: serde_yaml::Value = serde_yaml::from_str(&stdout(o)).unwrap();
    serde_yaml::from_value(cm["data"].clone()).unwrap()
}

#[test]
fn a_yaml12_escape_leaves_the_key_byte_identical_and_the_grant_waiting() {
    let s = Scratch::new("escape");
    let roles = r#"[{"rolearn":"arn:aws:iam::111122223333:role\/old-admin","username":"old-admin","groups":["system:masters"]}]"#;
    let cm = s.write("aws-auth.json", &aws_auth_json(roles, None));
    let g = s.write("g.yaml", GRANT);
    let o = render(&["-f", &g, "--aws-auth", &cm]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(rendered_data(&o)["mapRoles"], roles);
    let err = stderr(&o);
    assert!(err.contains("new-admin  False  AwsAuthUnreadable"), "{err}");
    assert!(err.contains("mapRoles line 1, column"), "{err}");
}

#[test]
fn characters_go_yaml_refuses_are_written_as_escapes() {
    let s = Scratch::new("nonchar");
    let users = "- userarn: \"arn:aws:iam::111122223333:user/a\"\n  username: \"a\\ufffe\"\n";
    let cm = s.write("aws-auth.json", &aws_auth_json("", Some(users)));
    let g = s.write(
        "g.yaml",
        &GRANT.replace("username: new-admin", "username: \"x\\uffff\""),
    );
    let o = render(&["-f", &g, "--aws-auth", &cm]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let data = rendered_data(&o);
    assert!(data["mapRoles"].contains("\\uffff"), "{}", data["mapRoles"]);
    assert!(data.values().all(|v| !v.contains(['\u{fffe}', '\u{ffff}'])));
}

/// An unowned key holding line separators (legal in `-o json`, read by EKS as they are) is
/// printed with YAML escapes, so the output fed back as `--aws-auth` reads the same and changes
/// nothing.
#[test]
fn output_holding_line_separators_can_be_fed_back() {
    let s = Scratch::new("ls");
    let keep = "unowned \u{2028} text \u{2029} and \u{85}";
    let mut cm: serde_json::Value = serde_json::from_str(&aws_auth_json("", None)).unwrap();
    cm["data"]["notes"] = keep.into();
    cm["metadata"]["annotations"] = serde_json::json!({"team": "a\u{2028}b"});
    let cm = s.write("aws-auth.json", &cm.to_string());
    let g = s.write("g.yaml", GRANT);
    let first = render(&["-f", &g, "--aws-auth", &cm]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let out = stdout(&first);
    assert!(out.contains(r#""unowned \L text \P and \N""#), "{out}");
    assert!(!out.contains(['\u{2028}', '\u{2029}', '\u{85}']), "{out}");
    let fed = s.write("out.yaml", &out);
    let second = render(&["-f", &g, "--aws-auth", &fed]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(stdout(&second), out);
    assert!(
        stderr(&second).contains("aws-auth unchanged"),
        "{}",
        stderr(&second)
    );
    assert_eq!(rendered_data(&second)["notes"], keep);
}

/// A key that is a document marker and an empty quoted string is not empty for EKS (it fails
/// to decode and drops the key): unreadable, kept byte-identical, the grant waiting.
#[test]
fn a_document_marker_with_an_empty_string_is_unreadable() {
    let s = Scratch::new("marker");
    for text in ["--- \"\"", "---\n''", "---\n\"\""] {
        let cm = s.write("aws-auth.json", &aws_auth_json(text, None));
        let g = s.write("g.yaml", GRANT);
        let o = render(&["-f", &g, "--aws-auth", &cm]);
        assert_eq!(o.status.code(), Some(1), "{text:?}: {}", stderr(&o));
        assert_eq!(rendered_data(&o)["mapRoles"], text);
        let err = stderr(&o);
        assert!(
            err.contains("AwsAuthUnreadable") && err.contains("empty quoted string"),
            "{err}"
        );
    }
}

#[test]
fn a_raw_next_line_in_the_configmap_is_seen_as_it_is() {
    let s = Scratch::new("nel");
    // Unowned entry with a raw U+0085 in a plain value: go-yaml breaks the line there.
    let roles = "- rolearn: arn:aws:iam::111122223333:role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\u{85}x\n";
    let cm = s.write("aws-auth.json", &aws_auth_json(roles, None));
    let g = s.write("g.yaml", GRANT);
    let o = render(&["-f", &g, "--aws-auth", &cm]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(rendered_data(&o)["mapRoles"], roles);
    assert!(stderr(&o).contains("U+0085"), "{}", stderr(&o));
    // The same ConfigMap as YAML cannot say what it holds: refused, with the way out.
    let yaml = s.write(
        "aws-auth.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: aws-auth, namespace: kube-system}}\ndata:\n  mapRoles: \"{}\"\n", roles.replace('\n', "\\n")),
    );
    let o = render(&["-f", &g, "--aws-auth", &yaml]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("line 5") && stderr(&o).contains("-o json"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn grants_are_typed_as_kubectl_types_them() {
    let s = Scratch::new("yaml11");
    let g = s.write(
        "g.yaml",
        &format!(
            "{GRANT}---\napiVersion: aws-auth.dev/v1alpha1\nkind: IamAccessGrant\nmetadata: {{name: acct}}\nspec:\n  account: 012345678901\n---\napiVersion: aws-auth.dev/v1alpha1\nkind: IamAccessGrant\nmetadata: {{name: no-user}}\nspec:\n  arn: arn:aws:iam::111122223333:user/n\n  username: no\n---\napiVersion: aws-auth.dev/v1alpha1\nkind: IamAccessGrant\nmetadata: {{name: on-group}}\nspec:\n  arn: arn:aws:iam::111122223333:user/o\n  username: o\n  groups: [On]\n---\napiVersion: aws-auth.dev/v1alpha1\nkind: IamAccessGrant\nmetadata: {{name: adopt-yes}}\nspec:\n  arn: arn:aws:iam::111122223333:user/y\n  username: yy\n  adopt: yes\n---\napiVersion: aws-auth.dev/v1alpha1\nkind: IamAccessGrant\nmetadata: {{name: adopt-one}}\nspec:\n  arn: arn:aws:iam::111122223333:user/z\n  username: z\n  adopt: 1\n"
        ),
    );
    let o = render(&["-f", &g]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("acct       False  Invalid"), "{err}");
    assert!(
        err.contains("spec.account (line 13): unquoted `012345678901` is a YAML 1.1 number"),
        "{err}"
    );
    assert!(err.contains("quote it: \"012345678901\""), "{err}");
    assert!(
        err.contains("spec.username (line 20): unquoted `no` is a YAML 1.1 boolean"),
        "{err}"
    );
    assert!(
        err.contains("spec.groups[0] (line 28): unquoted `On`"),
        "{err}"
    );
    assert!(err.contains("new-admin  True   Applied"), "{err}");
    assert!(err.contains("adopt-yes  True   Applied"), "{err}");
    assert!(
        err.contains("spec.adopt (line 44): `1` is not true or false"),
        "{err}"
    );
    let out = stdout(&o);
    assert!(
        !out.contains("012345678901") && !out.contains("user/n") && !out.contains("user/o"),
        "{out}"
    );
}

#[test]
fn byte_order_marks_are_skipped_and_errors_stay_short() {
    let s = Scratch::new("bom");
    let g = s.write("g.yaml", &format!("\u{feff}{GRANT}"));
    let cm = s.write(
        "aws-auth.yaml",
        "\u{feff}apiVersion: v1\nkind: ConfigMap\nmetadata: {name: aws-auth, namespace: kube-system}\ndata: {}\n",
    );
    let o = render(&["-f", &g, "--aws-auth", &cm]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let big = s.write("big.yaml", &"not a manifest ".repeat(300_000));
    let o = render(&["-f", &g, "--aws-auth", &big]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stderr.len() < 2_000, "{} bytes of stderr", o.stderr.len());
    assert!(stderr(&o).contains("more characters"), "{}", stderr(&o));

    let long = "u".repeat(10_000);
    let g = s.write(
        "long.yaml",
        &GRANT.replace("username: new-admin", &format!("username: {long}")),
    );
    let o = render(&["-f", &g, "-o", "diff"]);
    assert!(o.stderr.len() < 2_000, "{} bytes of stderr", o.stderr.len());
}

#[test]
fn the_privileged_groups_policy_is_the_clusters() {
    let readme_command = [
        "-f",
        "examples/grants",
        "--aws-auth",
        "examples/aws-auth.yaml",
        "--privileged-principal",
        "arn:aws:iam::111122223333:user/platform/*",
        "--allowed-account",
        "444455556666",
    ];
    let o = render(&readme_command);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = render(&[
        "-f",
        "examples/grants",
        "--privileged-principal",
        "arn:aws:iam::111122223333:role/platform-*",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("platform-admin          False  Forbidden"),
        "{err}"
    );
    assert!(!stdout(&o).contains("designated_user"));
}

#[test]
fn a_mass_removal_is_held_in_render_too() {
    let s = Scratch::new("held");
    let first = render(&[
        "-f",
        "examples/grants",
        "--aws-auth",
        "examples/aws-auth.yaml",
    ]);
    let cm = s.write("aws-auth.yaml", &stdout(&first));
    let empty = s.write("none.yaml", "");
    let o = render(&["-f", &empty, "--aws-auth", &cm, "--max-removals", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("removal held: 4 managed entries stay in aws-auth"),
        "{err}"
    );
    assert!(err.contains("aws-auth-operator confirm-removal "), "{err}");
    assert!(stdout(&o).contains("designated_user"));
}

/// `render -o access-entries`: the entries the shipped grants become, offline, for a pull
/// request that targets a cluster on access entries; what cannot be one fails the check.
#[test]
fn render_prints_the_access_entries_the_examples_become() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aws-auth-operator"))
        .args(["render", "-f", "examples/grants", "-o", "access-entries"])
        .args([
            "--privileged-principal",
            "arn:aws:iam::111122223333:user/platform/*",
        ])
        .args(["--allowed-account", "444455556666"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let entries: serde_json::Value = serde_yaml::from_str(&stdout).unwrap();
    let admin = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["principalArn"] == "arn:aws:iam::111122223333:user/platform/designated_user")
        .expect("the admin's entry");
    assert_eq!(
        admin["accessPolicies"][0]["policyArn"],
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    );
    assert!(admin.get("kubernetesGroups").is_none(), "{admin}");
    assert_eq!(entries.as_array().unwrap().len(), 3, "{stdout}");
    assert!(
        stderr.contains("security-audit-account  False  Invalid")
            && stderr.contains("4 grants: 3 access entries, 1 refused"),
        "{stderr}"
    );
}
