//! The CRD's CEL rules refuse what the operator refuses, with the operator's words, on the real
//! API server and with no operator running: every grant of one corpus (a case for each rule, then
//! generated grants near the valid forms) is created with dry-run and the verdicts compared.
mod support;

use kube::Api;
use kube::api::{ObjectMeta, PostParams};

use aws_auth_operator::api::{IamAccessGrant, IamAccessGrantSpec};
use aws_auth_operator::engine::rules;
use aws_auth_operator::engine::validate::{Invalid, validate};

const ROLE: &str = "arn:aws:iam::111122223333:role/admins";

fn arn(arn: &str) -> IamAccessGrantSpec {
    IamAccessGrantSpec::arn(arn, "alice", &[])
}

fn with(arn: &str, username: &str, groups: &[&str]) -> IamAccessGrantSpec {
    IamAccessGrantSpec::arn(arn, username, groups)
}

/// A grant for each rule (its message named, so that a rule no case reaches fails the test), and
/// valid grants of every form.
fn cases() -> Vec<(IamAccessGrantSpec, Option<String>)> {
    let s = |m: &str| Some(m.to_string());
    let mut both = arn(ROLE);
    both.account = Some("111122223333".into());
    let mut account_with_username = IamAccessGrantSpec::account("111122223333");
    account_with_username.username = Some("x".into());
    let no_username = IamAccessGrantSpec {
        arn: Some(ROLE.into()),
        ..Default::default()
    };
    vec![
        (arn(ROLE), None),
        (arn("arn:aws:iam::111122223333:user/ops/dev/bob"), None),
        (
            arn("arn:aws-cn:iam::111122223333:user/bob@example.com"),
            None,
        ),
        (IamAccessGrantSpec::account("111122223333"), None),
        (
            with(
                "arn:aws:iam::111122223333:role/nodes",
                "system:node:{{EC2PrivateDNSName}}",
                &["system:bootstrappers", "system:nodes"],
            ),
            None,
        ),
        (
            with(ROLE, "admin:{{SessionName}}", &["{{AccountID}}-devs"]),
            None,
        ),
        (both, s(rules::BOTH)),
        (IamAccessGrantSpec::default(), s(rules::NEITHER)),
        (
            IamAccessGrantSpec::account("11112222333x"),
            s(rules::ACCOUNT_DIGITS),
        ),
        (account_with_username, s(rules::ACCOUNT_ONLY)),
        (
            arn("arn:aws:iam::111122223333:role/a\u{1b}[2J"),
            s(rules::ARN_CONTROL),
        ),
        (
            arn("arn:aws:iam::111122223333:role/a\u{202e}b"),
            s(rules::ARN_CONTROL),
        ),
        (
            arn("arn:aws:iam::111122223333:role/a b"),
            s(rules::ARN_WHITESPACE),
        ),
        (
            arn("arn:aws:iam::111122223333:role/a\u{3000}"),
            s(rules::ARN_WHITESPACE),
        ),
        (arn("arn:aws:iam::111122223333"), s(rules::NOT_AN_ARN)),
        (arn("role/admins"), s(rules::NOT_AN_ARN)),
        (
            arn("arn:aws-x:iam::111122223333:role/a"),
            Some(rules::unknown_partition()),
        ),
        (
            arn("arn:aws:iam::111122223333:group/devs"),
            s(rules::IAM_GROUP),
        ),
        (
            arn("arn:aws:iam::111122223333:policy/p"),
            s(rules::NOT_A_PRINCIPAL),
        ),
        (arn("arn:aws:s3:::bucket"), s(rules::NOT_A_PRINCIPAL)),
        (
            arn("arn:aws:sts::111122223333:assumed-role/r"),
            s(rules::NO_SESSION),
        ),
        (arn("arn:aws:iam::1111:role/a"), s(rules::ARN_ACCOUNT)),
        (
            arn("arn:aws:iam:us-east-1:111122223333:role/a"),
            s(rules::ARN_REGION),
        ),
        (
            arn("arn:aws:iam::111122223333:role/a*b"),
            s(rules::IAM_NAME),
        ),
        (arn("arn:aws:iam::111122223333:role"), s(rules::IAM_NAME)),
        (arn("arn:aws:iam::111122223333:user"), s(rules::IAM_NAME)),
        (
            arn(&format!(
                "arn:aws:iam::111122223333:user/{}",
                "n".repeat(65)
            )),
            s(rules::IAM_NAME),
        ),
        (
            arn("arn:aws:sts::111122223333:assumed-role/team/Admin/alice"),
            Some(format!(
                "{}arn:aws:iam::111122223333:role/Admin",
                rules::ASSUMED_ROLE
            )),
        ),
        (
            arn("arn:aws-us-gov:iam::111122223333:role/team/x:y/admins"),
            Some(format!(
                "{}arn:aws-us-gov:iam::111122223333:role/admins",
                rules::ROLE_PATH
            )),
        ),
        (
            arn("arn:aws:iam::111122223333:user/ops//bob"),
            s(rules::USER_PATH),
        ),
        (
            arn("arn:aws:iam::111122223333:user/é/bob"),
            s(rules::USER_PATH),
        ),
        (
            arn("arn:aws:iam::111122223333:root"),
            Some(format!(
                "{}111122223333{}",
                rules::ROOT_USER,
                rules::ROOT_USER_END
            )),
        ),
        (
            arn("arn:aws:sts::111122223333:federated-user/bob"),
            s(rules::FEDERATED_USER),
        ),
        (no_username, None),
        (with(ROLE, "", &[]), s(rules::USERNAME_EMPTY)),
        (with(ROLE, "a\u{7}", &[]), s(rules::TEXT_CONTROL)),
        (with(ROLE, "a\u{a0}b", &[]), s(rules::TEXT_WHITESPACE)),
        (with(ROLE, "{{Session}}", &[]), Some(rules::unknown_token())),
        (
            with(ROLE, "a:{{SessionName", &[]),
            Some(rules::unknown_token()),
        ),
        (
            with(ROLE, "{{EC2PrivateDNSName}}", &[]),
            s(rules::EC2_ONLY_FOR_NODES),
        ),
        (with(ROLE, "a", &["ok", ""]), s(rules::EMPTY_ITEM)),
        (with(ROLE, "a", &["a b", ""]), s(rules::EMPTY_ITEM)),
        (with(ROLE, "a", &["x\u{feff}"]), s(rules::TEXT_CONTROL)),
        (with(ROLE, "a", &["a\tb"]), s(rules::TEXT_CONTROL)),
        (with(ROLE, "a", &["a b"]), s(rules::TEXT_WHITESPACE)),
        (
            with(ROLE, "a", &["{{x}}{{AccountID}}"]),
            Some(rules::unknown_token()),
        ),
        (
            with(
                "arn:aws:iam::111122223333:user/n",
                "n",
                &["system:nodes", "{{EC2PrivateDNSName}}"],
            ),
            s(rules::EC2_ONLY_FOR_NODES),
        ),
    ]
}

/// A small deterministic generator (xorshift), so that a failure names a case that comes back.
struct Rng(u64);

impl Rng {
    /// `right` four times in five, else one of `wrong`.
    fn mostly<'a>(&mut self, right: &'a str, wrong: &[&'a str]) -> &'a str {
        if self.pick(&["r", "r", "r", "r", "w"]) == "r" {
            right
        } else {
            self.pick(wrong)
        }
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        from[(self.0 % from.len() as u64) as usize]
    }
}

/// Grants near the valid forms: each part of the ARN, the username and the groups right or wrong.
fn generated(n: usize) -> Vec<IamAccessGrantSpec> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|_| {
            let arn = [
                r.mostly("arn:", &["ARN:", "", "arn"]),
                r.mostly(
                    "aws",
                    &["aws-cn", "aws-eusc", "aws-iso-f", "aws-foo", "AWS"],
                ),
                r.mostly(":iam::", &[":sts::", ":iam:eu-west-1:", ":s3:::", ":iam:"]),
                r.mostly(
                    "111122223333",
                    &["11112222333", "1111222233334", "x11122223333"],
                ),
                r.mostly(
                    ":role/",
                    &[
                        ":user/",
                        ":user/",
                        ":role/p/",
                        ":user/p/q/",
                        ":user//",
                        ":role//",
                        ":assumed-role/R/",
                        ":assumed-role/",
                        ":federated-user/",
                        ":root",
                        ":group/",
                        ":role",
                    ],
                ),
                r.mostly(
                    "admins",
                    &["a.b@c", "", "x*y", "a b", "a/b", "é", "s:1", "/"],
                ),
            ]
            .concat();
            let username = r.mostly(
                "alice",
                &[
                    "u:{{SessionName}}",
                    "{{SessionNameRaw}}{{AccessKeyID}}",
                    "{{EC2PrivateDNSName}}",
                    "{{Bad}}",
                    "{{open",
                    "",
                    "a b",
                    "a\u{85}",
                ],
            );
            let groups: Vec<&str> = (0..r.pick(&["0", "1", "2", "3"]).parse::<usize>().unwrap())
                .map(|_| {
                    r.mostly(
                        "devs",
                        &[
                            "system:nodes",
                            "system:masters",
                            "",
                            "a b",
                            "{{AccountID}}",
                            "{{EC2PrivateDNSName}}",
                            "}}{{",
                        ],
                    )
                })
                .collect();
            with(&arn, username, &groups)
        })
        .collect()
}

/// Whether the API server's refusal holds the operator's: the same field, the same message (the
/// bounds in the API server's own words, on the same field).
fn server_says(status: &kube::core::Status, e: &Invalid) -> bool {
    let bound = e.message.contains("more than the");
    status.details.iter().flat_map(|d| &d.causes).any(|c| {
        let field = c.field.as_str();
        let message = c.message.as_str();
        if bound {
            field.starts_with(e.field)
        } else {
            // A group's own rules name the item: spec.groups[1].
            (field == e.field || field.starts_with(&format!("{}[", e.field)))
                && (message == e.message || message.ends_with(&format!(": {}", e.message)))
        }
    })
}

async fn check(api: &Api<IamAccessGrant>, spec: IamAccessGrantSpec) -> Result<(), String> {
    let operator = validate(&spec);
    let grant = IamAccessGrant {
        metadata: ObjectMeta {
            name: Some("cel-rules".into()),
            ..Default::default()
        },
        spec: spec.clone(),
        status: None,
    };
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let server = api.create(&dry_run, &grant).await;
    match (operator, server) {
        (Ok(_), Ok(_)) => Ok(()),
        (Err(e), Err(kube::Error::Api(status))) if server_says(&status, &e) => Ok(()),
        (operator, server) => Err(format!(
            "{spec:?}\n  operator: {:?}\n  server:   {:?}",
            operator.map(|_| ()).map_err(|e| e.to_string()),
            server.map(|_| ()).map_err(|e| match e {
                kube::Error::Api(s) => format!("{:?}", s.details.map(|d| d.causes)),
                e => e.to_string(),
            }),
        )),
    }
}

#[tokio::test]
async fn the_api_server_refuses_what_the_operator_refuses_in_its_words() {
    let api: Api<IamAccessGrant> = Api::all(support::client().await);
    let mut failures = Vec::new();
    let mut messages = std::collections::BTreeSet::new();
    let curated = cases();
    for (spec, expected) in curated.clone() {
        let got = validate(&spec).err().map(|e| e.message);
        assert_eq!(got, expected, "the operator's verdict on {spec:?}");
        messages.extend(got);
        if let Err(f) = check(&api, spec).await {
            failures.push(f);
        }
    }
    // Every rule has a case.
    for m in [
        rules::BOTH,
        rules::NEITHER,
        rules::ACCOUNT_DIGITS,
        rules::ACCOUNT_ONLY,
        rules::ARN_CONTROL,
        rules::ARN_WHITESPACE,
        rules::NOT_AN_ARN,
        rules::IAM_GROUP,
        rules::NOT_A_PRINCIPAL,
        rules::NO_SESSION,
        rules::ARN_ACCOUNT,
        rules::ARN_REGION,
        rules::IAM_NAME,
        rules::ASSUMED_ROLE,
        rules::ROLE_PATH,
        rules::USER_PATH,
        rules::ROOT_USER,
        rules::FEDERATED_USER,
        rules::USERNAME_EMPTY,
        rules::EMPTY_ITEM,
        rules::TEXT_CONTROL,
        rules::TEXT_WHITESPACE,
        rules::EC2_ONLY_FOR_NODES,
        &rules::unknown_token(),
        &rules::unknown_partition(),
    ] {
        assert!(
            messages.iter().any(|got| got.starts_with(m)),
            "no case reaches the rule `{m}`"
        );
    }
    let generated = generated(600);
    let refused = generated.iter().filter(|s| validate(s).is_err()).count();
    for spec in generated {
        if let Err(f) = check(&api, spec).await {
            failures.push(f);
        }
    }
    println!(
        "{} curated and 600 generated grants ({refused} of them refused by the operator): {} disagreements",
        curated.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "the CRD's rules and the operator disagree on {} grants:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn bounds_are_refused_by_the_api_server_on_the_same_field() {
    let api: Api<IamAccessGrant> = Api::all(support::client().await);
    let many: Vec<String> = (0..33).map(|i| format!("g{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let long_role = format!("arn:aws:iam::111122223333:role/{}", "a".repeat(1000));
    for spec in [
        with(ROLE, &"u".repeat(257), &[]),
        with(ROLE, "u", &many),
        with(ROLE, "u", &[&"g".repeat(257)]),
        arn(&long_role),
        IamAccessGrantSpec::account(&"1".repeat(257)),
    ] {
        assert!(validate(&spec).is_err(), "{spec:?}");
        check(&api, spec).await.unwrap();
    }
}

/// What a person sees: `kubectl apply` (the kubectl of the server's version, which
/// `hack/local-cluster.sh` builds) of a grant with a role path is refused by the API server
/// itself, with the operator's message and fix.
#[tokio::test]
async fn kubectl_apply_shows_the_operators_message() {
    support::client().await;
    let kubectl = std::env::var("AWS_AUTH_TEST_KUBECTL").expect(
        "AWS_AUTH_TEST_KUBECTL: run the suite with `hack/test.sh`, which builds kubectl of the server's version",
    );
    let file = std::env::temp_dir().join(format!("cel-rules-{}.yaml", std::process::id()));
    std::fs::write(
        &file,
        "apiVersion: aws-auth.dev/v1alpha1\nkind: IamAccessGrant\nmetadata:\n  name: cel-rules-kubectl\nspec:\n  arn: arn:aws:iam::111122223333:role/team/admins\n  username: admin\n",
    )
    .unwrap();
    let out = std::process::Command::new(&kubectl)
        .args(["apply", "--dry-run=server", "-f"])
        .arg(&file)
        .output()
        .expect("kubectl runs");
    let _ = std::fs::remove_file(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    // (After "Invalid value:" the server shows the value: v1.37.2 prints it quoted.)
    assert!(
        stderr.contains("spec.arn: Invalid value: ")
            && stderr.contains(&format!(
                "{}arn:aws:iam::111122223333:role/admins",
                rules::ROLE_PATH
            )),
        "{stderr}"
    );
}
