//! The `render` command end to end, as pull-request CI runs it: the real binary on the shipped examples.
use std::path::Path;
use std::process::{Command, Output};

fn render(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aws-auth-operator"))
        .arg("render")
        .args(args)
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
