//! The reader and the renderer against aws-iam-authenticator's own parser (`hack/oracle`, the
//! Go module at the version EKS runs), on generated hostile aws-auth maps and grants:
//!
//! - every key the reader calls readable is read exactly as the authenticator reads it;
//! - `render`'s manifest decodes (as kubectl decodes it) to exactly the plan's data;
//! - unreadable keys stay byte-identical; entries the operator does not manage keep their
//!   meaning; Applied grants are mapped exactly as specified; refused grants change nothing;
//!   planning again on the output changes nothing;
//! - the corpus of the reader's documented rules (`tests/fixtures/reader-rules.json`) and of ARN
//!   canonicalisation (`tests/fixtures/canonicalize.tsv`) agree with the authenticator.
//!
//! A test binary of its own (no libtest harness), so that it takes `--cases N` (or
//! `AWS_AUTH_DIFF_CASES`) for long runs: `cargo test --test differential -- --cases 100000`.
//! A failure is shrunk to a minimal case and printed as a reproducer.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{Value, json};

use aws_auth_operator::api::{IamAccessGrant, IamAccessGrantSpec, Reason};
use aws_auth_operator::commands::manifests::configmap_yaml;
use aws_auth_operator::engine::authmap::Section;
use aws_auth_operator::engine::authmap::arn::{canonicalize, match_key};
use aws_auth_operator::engine::authmap::read::{SectionRead, read_data, read_mappings};
use aws_auth_operator::engine::plan::{PlanConfig, plan};

/// The oracle process, asked one JSON line at a time.
struct Oracle {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Oracle {
    fn path() -> String {
        if let Ok(p) = std::env::var("AWS_AUTH_TEST_ORACLE") {
            return p;
        }
        // Not through hack/test.sh: build it (cached) the same way.
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/oracle.sh"))
            .arg("build")
            .stderr(Stdio::inherit())
            .output()
            .expect("hack/oracle.sh runs");
        assert!(
            out.status.success(),
            "the oracle could not be built: run the suite with hack/test.sh, or install Go"
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn start(path: &str, mode: &str) -> Child {
        Command::new(path)
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("the oracle {path} does not start: {e}"))
    }

    fn new(path: &str) -> Self {
        let mut child = Self::start(path, "--batch");
        Oracle {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            _child: child,
        }
    }

    fn ask(&mut self, request: &Value) -> Value {
        writeln!(self.stdin, "{request}").expect("the oracle reads");
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("the oracle answers");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("oracle answer {line:?}: {e}"))
    }
}

/// Entries as the oracle lists them: (ARN, username, groups).
type Entries = Vec<(String, String, Vec<String>)>;

fn oracle_entries(key: &Value) -> Entries {
    key["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["arn"].as_str().unwrap().to_string(),
                e["username"].as_str().unwrap().to_string(),
                serde_json::from_value(e["groups"].clone()).unwrap(),
            )
        })
        .collect()
}

fn reader_entries(section: Section, data: &BTreeMap<String, String>) -> (bool, Entries) {
    let read = read_data(data);
    match section {
        Section::MapAccounts => (
            read.accounts.readable(),
            read.accounts
                .values()
                .into_iter()
                .map(|a| (a, String::new(), vec![]))
                .collect(),
        ),
        _ => {
            let r: &SectionRead<_> = if section == Section::MapRoles {
                &read.roles
            } else {
                &read.users
            };
            (
                r.readable(),
                r.values()
                    .into_iter()
                    .map(|m| (m.arn, m.username, m.groups))
                    .collect(),
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Generators: EKS-style keys, mutated anywhere with the pieces where YAML readers part ways.

fn name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-c]", "[A-Za-z0-9+=,.@_-]{1,8}"]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9:._-]{0,8}",
        "[a-z]{1,3}:\\{\\{SessionName\\}\\}",
        Just("on".to_string()),
        Just("0123".to_string()),
        Just("dev team".to_string()),
        Just("x\u{2028}y".to_string()),
        Just("a\"b'c\\d".to_string()),
    ]
}

fn principal() -> impl Strategy<Value = (bool, String)> {
    (any::<bool>(), name(), prop::option::of("[a-z]{1,4}")).prop_map(|(role, n, path)| {
        let kind = if role { "role" } else { "user" };
        let path = path.map(|p| format!("{p}/")).unwrap_or_default();
        (role, format!("arn:aws:iam::111122223333:{kind}/{path}{n}"))
    })
}

/// One entry's text, in one of the styles people and tools write.
fn entry_text(field: &'static str) -> impl Strategy<Value = String> {
    (
        name(),
        text(),
        prop::collection::vec(text(), 0..3),
        0..3usize,
    )
        .prop_map(move |(n, username, groups, style)| {
            let kind = if field == "rolearn" { "role" } else { "user" };
            let arn = format!("arn:aws:iam::111122223333:{kind}/{n}");
            let q = |s: &str| serde_json::to_string(s).unwrap();
            match style {
                0 => format!(
                    "- {field}: {arn}\n  username: {username}\n  groups:\n{}",
                    groups
                        .iter()
                        .map(|g| format!("    - {g}\n"))
                        .collect::<String>()
                ),
                1 => format!(
                    "- {field}: {}\n  username: {}\n  groups: [{}]\n",
                    q(&arn),
                    q(&username),
                    groups.iter().map(|g| q(g)).collect::<Vec<_>>().join(", ")
                ),
                _ => format!(
                    "- {{\"{field}\": {}, \"username\": {}, \"groups\": [{}]}}\n",
                    q(&arn),
                    q(&username),
                    groups.iter().map(|g| q(g)).collect::<Vec<_>>().join(", ")
                ),
            }
        })
}

const PIECES: &[&str] = &[
    "- ",
    "\n",
    "  ",
    "\t",
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    ", ",
    ": ",
    "# c",
    "&a ",
    "*a",
    "!!str ",
    "---",
    "--- \"\"",
    "...",
    "|",
    ">",
    "~",
    "on",
    "``",
    "\\/",
    "\\L",
    "\\u2028",
    "\u{0}",
    "\u{7}",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
    "\u{2029}",
    "\u{feff}",
    "\u{fffe}",
    "\r\n",
    "\u{212A}",
    "%YAML 1.2\n",
    "{{SessionName}}",
    "system:masters",
    "rolearn: ",
    "userarn: ",
    "username: ",
    "groups:",
];

/// A key's text: entries in several styles, then mutations (a piece inserted, a character
/// replaced or deleted) at arbitrary places.
fn key_text(field: &'static str) -> impl Strategy<Value = String> {
    (
        prop::collection::vec(entry_text(field), 0..4),
        prop::collection::vec((any::<prop::sample::Index>(), 0..3usize, 0..PIECES.len()), 0..3),
        prop_oneof![3 => Just(None), 1 => prop::sample::select(vec!["", "''", "\"\"", "``", "---", "--- \"\"", "[]"]).prop_map(Some)],
    )
        .prop_map(|(entries, mutations, whole)| {
            if let Some(w) = whole {
                return w.to_string();
            }
            let mut chars: Vec<char> = entries.concat().chars().collect();
            for (at, how, piece) in mutations {
                let i = at.index(chars.len() + 1);
                match how {
                    0 => {
                        chars.splice(i..i, PIECES[piece].chars());
                    }
                    1 if i < chars.len() => {
                        chars.remove(i);
                    }
                    _ if i < chars.len() => {
                        chars.splice(i..=i, PIECES[piece].chars());
                    }
                    _ => {}
                }
            }
            chars.into_iter().collect()
        })
}

fn accounts_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("- \"111122223333\"\n".to_string()),
        Just("- 444455556666\n- '111122223333'\n".to_string()),
        Just("111122223333".to_string()),
        Just("[\"444455556666\"]".to_string()),
        Just("''".to_string()),
        Just("--- ''".to_string()),
    ]
}

fn data() -> impl Strategy<Value = BTreeMap<String, String>> {
    (
        prop::option::of(key_text("rolearn")),
        prop::option::of(key_text("userarn")),
        prop::option::of(accounts_text()),
    )
        .prop_map(|(roles, users, accounts)| {
            let mut d = BTreeMap::new();
            for (k, v) in [
                ("mapRoles", roles),
                ("mapUsers", users),
                ("mapAccounts", accounts),
            ] {
                if let Some(v) = v {
                    d.insert(k.to_string(), v);
                }
            }
            d
        })
}

fn spec() -> impl Strategy<Value = IamAccessGrantSpec> {
    let arn = (
        principal(),
        text(),
        prop::collection::vec(text(), 0..3),
        any::<bool>(),
    )
        .prop_map(|((_, arn), username, groups, adopt)| IamAccessGrantSpec {
            arn: Some(arn),
            username: Some(username),
            groups,
            adopt,
            ..Default::default()
        });
    let account = prop::sample::select(vec!["111122223333", "444455556666"]).prop_map(|a| {
        IamAccessGrantSpec {
            account: Some(a.into()),
            ..Default::default()
        }
    });
    prop_oneof![5 => arn, 1 => account]
}

fn grants() -> impl Strategy<Value = Vec<IamAccessGrant>> {
    prop::collection::vec(spec(), 0..6).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let mut g = IamAccessGrant::new(&format!("g{i}"), s);
                g.metadata.creation_timestamp = Some(Time(
                    Timestamp::from_second(1_700_000_000 + i as i64).unwrap(),
                ));
                g
            })
            .collect()
    })
}

// ---------------------------------------------------------------------------------------------
// The properties.

#[derive(Default)]
struct Counts {
    cases: usize,
    keys: usize,
    readable_keys: usize,
    lookups: usize,
}

fn configmap(data: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some("aws-auth".into()),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

/// What EKS does for each ARN: (section, username, groups, ambiguous) or None.
type Looked = BTreeMap<String, Option<(String, String, Vec<String>, bool)>>;

fn lookups(answer: &Value) -> Looked {
    answer["lookups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let arn = l["arn"].as_str().unwrap().to_string();
            let hit = l["section"].as_str().map(|s| {
                (
                    s.to_string(),
                    l["username"].as_str().unwrap_or_default().to_string(),
                    serde_json::from_value(l["groups"].clone()).unwrap_or_default(),
                    l["ambiguous"].as_bool().unwrap_or(false),
                )
            });
            (arn, hit)
        })
        .collect()
}

fn one_case(
    oracle: &mut Oracle,
    counts: &mut Counts,
    data: &BTreeMap<String, String>,
    grants: &[IamAccessGrant],
) -> Result<(), TestCaseError> {
    counts.cases += 1;
    let current = configmap(data.clone());
    // Every ARN anyone names: the entries' and the grants'.
    let mut arns: Vec<String> = grants.iter().filter_map(|g| g.spec.arn.clone()).collect();
    let before = oracle.ask(&json!({"data": data, "arns": []}));
    for k in ["mapRoles", "mapUsers"] {
        arns.extend(oracle_entries(&before["keys"][k]).into_iter().map(|e| e.0));
    }
    arns.sort();
    arns.dedup();
    let before = oracle.ask(&json!({"data": data, "arns": arns}));

    // 1. The reader: a key it calls readable is read exactly as EKS reads it.
    for section in Section::ALL {
        let k = section.key();
        if !data.contains_key(k) {
            continue;
        }
        counts.keys += 1;
        let (readable, ours) = reader_entries(section, data);
        if readable {
            counts.readable_keys += 1;
            let eks = &before["keys"][k];
            prop_assert!(
                eks.get("error").is_none(),
                "{k} read as {ours:?}, but EKS fails it: {}",
                eks["error"]
            );
            prop_assert_eq!(
                &ours,
                &oracle_entries(eks),
                "{} read otherwise than EKS reads it",
                k
            );
        }
    }

    // 2. The plan and its manifest.
    let config = PlanConfig {
        privileged_principals: vec!["*".into()],
        allowed_accounts: vec!["111122223333".into(), "444455556666".into()],
        max_removals: usize::MAX,
        ..PlanConfig::default()
    };
    let p =
        plan(grants, Some(&current), &config).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let written = p.configmap(Some(&current), "kube-system", "aws-auth", false);
    let manifest = configmap_yaml(&written).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let after = oracle.ask(&json!({"manifest": manifest, "arns": arns}));
    prop_assert!(
        after.get("decodeError").is_none(),
        "kubectl cannot decode the manifest: {}",
        after["decodeError"]
    );
    let decoded: BTreeMap<String, String> =
        serde_json::from_value(after["data"].clone()).unwrap_or_default();
    prop_assert_eq!(&decoded, &p.data, "the manifest decodes to other data");

    // 3. Unreadable keys are kept byte-identical.
    let read = read_data(data);
    for section in Section::ALL {
        if data.contains_key(section.key()) && !read.readable(section) {
            prop_assert_eq!(
                p.data.get(section.key()),
                data.get(section.key()),
                "unreadable {} changed",
                section.key()
            );
        }
    }

    // 4. Meaning: Applied grants as specified; every other principal as before, unless an
    // Applied grant holds it (by the principal key the plan documents: it errs toward "the same
    // principal", so an adopting grant also takes over dead spellings, a role path or a region).
    let (was, now) = (lookups(&before), lookups(&after));
    counts.lookups += now.len();
    let mut taken: Vec<String> = Vec::new();
    for g in grants {
        let v = p.verdict(g.metadata.name.as_deref().unwrap()).unwrap();
        if v.reason != Reason::Applied {
            continue;
        }
        if let Some(a) = &g.spec.account {
            let accounts: Vec<String> = serde_json::from_value(after["accounts"].clone()).unwrap();
            prop_assert!(
                accounts.contains(a),
                "account {a} Applied but not in mapAccounts"
            );
            continue;
        }
        let arn = g.spec.arn.clone().unwrap();
        taken.push(match_key(&arn));
        let hit = now.get(&arn).cloned().flatten();
        prop_assert!(hit.is_some(), "{arn} Applied but EKS does not map it");
        let (_, username, groups, ambiguous) = hit.unwrap();
        prop_assert!(!ambiguous, "{arn} Applied but mapped twice, differently");
        prop_assert_eq!(
            &username,
            g.spec.username.as_ref().unwrap(),
            "{} username",
            arn
        );
        prop_assert_eq!(&groups, &g.spec.groups, "{} groups", arn);
    }
    for (arn, hit) in &was {
        if taken.contains(&match_key(arn)) {
            continue;
        }
        prop_assert_eq!(
            now.get(arn),
            Some(hit),
            "{} changed meaning though no Applied grant holds it",
            arn
        );
    }

    // 5. Planning again on the output changes nothing.
    let again =
        plan(grants, Some(&written), &config).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(!again.changed, "the second plan changed: {:?}", again.diff);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The corpus.

fn corpus(oracle: &mut Oracle, oracle_path: &str) -> usize {
    let rules: Vec<Value> =
        serde_json::from_str(include_str!("fixtures/reader-rules.json")).unwrap();
    for rule in &rules {
        let (name, key, text) = (
            rule["rule"].as_str().unwrap(),
            rule["key"].as_str().unwrap(),
            rule["text"].as_str().unwrap(),
        );
        let section = Section::from_key(key).unwrap();
        let data = BTreeMap::from([(key.to_string(), text.to_string())]);
        // The authenticator reads it as the rule says...
        let eks = &oracle.ask(&json!({"data": data}))["keys"][key];
        assert_eq!(
            eks.get("error").is_some(),
            rule["eks"]["error"].as_bool().unwrap(),
            "{name}: EKS {}",
            eks
        );
        assert_eq!(
            oracle_entries(eks),
            oracle_entries(&rule["eks"]),
            "{name}: EKS reads other entries"
        );
        // ...and so does the reader.
        let read = match section {
            Section::MapAccounts => read_data(&data).accounts.first_blocking().cloned(),
            _ => read_mappings(section, Some(text)).first_blocking().cloned(),
        };
        let verdict = read.as_ref().map_or("readable", |f| f.effect.label());
        let expected = rule["reader"].as_str().unwrap();
        let expected = if expected == "warning" {
            "readable"
        } else {
            expected
        };
        assert_eq!(verdict, expected, "{name}: the reader says {read:?}");
        if verdict == "readable" {
            assert_eq!(
                reader_entries(section, &data).1,
                oracle_entries(eks),
                "{name}"
            );
        }
    }
    // ARN canonicalisation: the fixture's expectations are the authenticator's.
    let tsv = include_str!("fixtures/canonicalize.tsv");
    let rows: Vec<(&str, &str)> = tsv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split_once('\t').unwrap())
        .collect();
    let mut child = Oracle::start(oracle_path, "--canonicalize");
    let mut stdin = child.stdin.take().unwrap();
    for (input, _) in &rows {
        writeln!(stdin, "{input}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let answers: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(answers.len(), rows.len());
    for ((input, expected), answer) in rows.iter().zip(&answers) {
        let (canonical, error) = answer.split_once('\t').unwrap();
        let eks = if error.is_empty() { canonical } else { "ERROR" };
        assert_eq!(eks, *expected, "canonicalize.tsv: {input}");
        let ours = canonicalize(input).map_or("ERROR".to_string(), |c| c.to_string());
        assert_eq!(ours, eks, "our canonicalisation of {input}");
    }
    rules.len() + rows.len()
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cases: u32 = std::env::var("AWS_AUTH_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let mut filter = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cases" => {
                cases = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--cases takes a number")
            }
            // libtest's flags, which `cargo test` may pass to every test binary.
            "--test-threads" | "--format" | "--color" | "--skip" => {
                it.next();
            }
            a if a.starts_with('-') => {}
            a => filter = Some(a.to_string()),
        }
    }
    const NAMES: [&str; 2] = ["differential_corpus", "differential_render_and_reader"];
    let wanted = |n: &str| filter.as_deref().is_none_or(|f| n.contains(f));
    if !NAMES.iter().any(|n| wanted(n)) {
        println!("differential: 0 tests match the filter");
        return;
    }
    let path = Oracle::path();
    let mut oracle = Oracle::new(&path);
    if wanted(NAMES[0]) {
        let n = corpus(&mut oracle, &path);
        println!(
            "test differential_corpus ... ok ({n} rules and ARNs agree with the authenticator)"
        );
    }
    if wanted(NAMES[1]) {
        let started = Instant::now();
        // The runner takes a `Fn`: the oracle and the counts are borrowed per case.
        let counts = std::cell::RefCell::new(Counts::default());
        let oracle = std::cell::RefCell::new(&mut oracle);
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&(data(), grants()), |(d, g)| {
            one_case(&mut oracle.borrow_mut(), &mut counts.borrow_mut(), &d, &g)
        });
        let counts = counts.into_inner();
        match result {
            Ok(()) => println!(
                "test differential_render_and_reader ... ok ({} cases, {} keys checked ({} readable), {} lookups, {:.1} s)",
                counts.cases,
                counts.keys,
                counts.readable_keys,
                counts.lookups,
                started.elapsed().as_secs_f64()
            ),
            Err(TestError::Fail(why, (d, g))) => {
                let specs: Vec<&IamAccessGrantSpec> = g.iter().map(|g| &g.spec).collect();
                eprintln!(
                    "test differential_render_and_reader ... FAILED: {why}\nminimal reproducer:\n  data: {}\n  grants (oldest first): {}",
                    serde_json::to_string(&d).unwrap(),
                    serde_json::to_string(&specs).unwrap()
                );
                std::process::exit(101);
            }
            Err(e) => {
                eprintln!("test differential_render_and_reader ... FAILED: {e}");
                std::process::exit(101);
            }
        }
    }
}
