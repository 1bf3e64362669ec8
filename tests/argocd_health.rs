//! The chart's Argo CD health check (Lua) run by a real Lua 5.1 interpreter (Argo CD's
//! gopher-lua speaks 5.1) against grant status fixtures.
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const SCRIPT: &str = include_str!("../charts/aws-auth-operator/health/argocd.lua");
const FIXTURES: &str = include_str!("fixtures/argocd-health.yaml");

/// A JSON value as a Lua table constructor (what Argo CD hands the script as `obj`).
fn lua(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => format!("{{{}}}", a.iter().map(lua).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("[{k:?}] = {}", lua(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn health(obj: &Value) -> (String, String) {
    let program = format!(
        "obj = {}\nlocal hs = (function()\n{SCRIPT}\nend)()\nio.write(hs.status, '\\t', hs.message or '')\n",
        lua(obj)
    );
    let mut child = Command::new("lua5.1")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lua5.1 runs (apt-get install lua5.1; .ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(program.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "lua failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, message) = text.split_once('\t').expect("status and message");
    (status.to_string(), message.to_string())
}

#[test]
fn argo_cd_health_follows_the_ready_condition_of_the_current_generation() {
    let cases: Vec<Value> = serde_yaml::from_str(FIXTURES).unwrap();
    assert!(cases.len() >= 8);
    for case in &cases {
        let (status, message) = health(&case["obj"]);
        assert_eq!(
            status, case["expect"],
            "{}: got {status} ({message})",
            case["name"]
        );
        if let Some(m) = case["message"].as_str() {
            assert!(message.contains(m), "{}: message {message:?}", case["name"]);
        }
        assert!(!message.is_empty(), "{}: no message", case["name"]);
    }
}
