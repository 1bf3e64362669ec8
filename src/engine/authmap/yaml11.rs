//! YAML as kubectl decodes manifests (sigs.k8s.io/yaml over go-yaml v2): YAML 1.1, where an
//! unquoted `no`, `On` or `012345678901` is a boolean or a number, not a string. `render` reads
//! grant manifests this way, so the pull-request check agrees with what the API server accepts.
use serde_json::{Map, Number, Value};
use yaml_rust2::scanner::TScalarStyle;

use super::goyaml;
use super::scalar::{Resolved, resolve_plain};
use super::tree::{Kind, Node, build_tree};

/// A plain scalar that YAML 1.1 reads as something other than a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typed {
    /// Document index (from 0) and the path of keys and list indexes to the value.
    pub document: usize,
    pub path: Vec<String>,
    pub line: usize,
    /// The source text, as written.
    pub text: String,
    /// `boolean`, `number`, `null`.
    pub kind: &'static str,
}

/// A stream decoded into JSON values, with every plain scalar that is not a string.
#[derive(Debug, Default)]
pub struct Decoded {
    pub documents: Vec<Value>,
    pub typed: Vec<Typed>,
}

/// Decodes a YAML stream the way kubectl does. Errors name the line and the fix.
pub fn decode(text: &str) -> Result<Decoded, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    check_characters(text)?;
    let builder = build_tree(text)
        .map_err(|e| format!("line {} column {}: {}", e.line, e.column, e.message))?;
    let mut out = Decoded::default();
    for (i, (_, root)) in builder.documents.iter().enumerate() {
        let Some(root) = root else { continue };
        let mut path = Vec::new();
        let v = convert(root, i, &mut path, &mut out.typed)?;
        out.documents.push(v);
    }
    Ok(out)
}

/// go-yaml refuses characters outside YAML 1.1's printable set and breaks lines at U+0085,
/// U+2028 and U+2029, which YAML 1.2 parsers keep as text: such a file is refused, not guessed.
pub fn check_characters(text: &str) -> Result<(), String> {
    for (n, line) in text.split('\n').enumerate() {
        if let Some(c) = line
            .chars()
            .find(|&c| !goyaml::is_printable(c) || goyaml::is_unicode_break(c) || c == '\u{feff}')
        {
            return Err(format!(
                "line {}: character U+{:04X}, which YAML readers refuse or read as a line break; remove it, or write it as an escape (\\u{:04X}) inside double quotes",
                n + 1,
                c as u32,
                c as u32
            ));
        }
    }
    Ok(())
}

fn convert(
    node: &Node,
    document: usize,
    path: &mut Vec<String>,
    typed: &mut Vec<Typed>,
) -> Result<Value, String> {
    Ok(match &node.kind {
        Kind::Scalar { value, style } => {
            let tagged = node.tag.is_some();
            if *style != TScalarStyle::Plain || tagged {
                return Ok(Value::String(value.clone()));
            }
            let resolved = resolve_plain(value);
            let v = match resolved {
                None | Some(Resolved::Timestamp) => return Ok(Value::String(value.clone())),
                Some(Resolved::Null) => Value::Null,
                Some(Resolved::Bool) => Value::Bool(matches!(
                    value.as_str(),
                    "y" | "Y"
                        | "yes"
                        | "Yes"
                        | "YES"
                        | "true"
                        | "True"
                        | "TRUE"
                        | "on"
                        | "On"
                        | "ON"
                )),
                Some(Resolved::Int | Resolved::Float) => Value::Number(number(value)),
                Some(Resolved::Unrepresentable) => {
                    return Err(format!(
                        "line {}: `{value}` is a YAML float that JSON cannot hold; double-quote it",
                        node.line
                    ));
                }
            };
            typed.push(Typed {
                document,
                path: path.clone(),
                line: node.line,
                text: value.clone(),
                kind: resolved.map_or("string", Resolved::name),
            });
            v
        }
        Kind::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                out.push(convert(item, document, path, typed)?);
                path.pop();
            }
            Value::Array(out)
        }
        Kind::Map(pairs) => {
            let mut out = Map::new();
            for (k, v) in pairs {
                let Kind::Scalar { value: key, .. } = &k.kind else {
                    return Err(format!(
                        "line {}: a mapping key that is itself a list or mapping; an unquoted value starting with `{{` must be double-quoted",
                        k.line
                    ));
                };
                path.push(key.clone());
                let value = convert(v, document, path, typed)?;
                path.pop();
                out.insert(key.clone(), value);
            }
            Value::Object(out)
        }
        Kind::Alias => {
            return Err(format!(
                "line {}: YAML aliases (`*name`) are not supported here; write the value out",
                node.line
            ));
        }
    })
}

/// A JSON number for a YAML 1.1 int or float (the value is only ever reported, never used).
fn number(text: &str) -> Number {
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    let (sign, digits) = match plain.strip_prefix('-') {
        Some(d) => (-1i64, d),
        None => (1, plain.strip_prefix('+').unwrap_or(&plain)),
    };
    let radix = [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ]
    .iter()
    .find_map(|(p, r)| digits.strip_prefix(p).map(|d| (d, *r)));
    if let Some((d, r)) = radix
        && let Ok(n) = i64::from_str_radix(d, r)
    {
        return Number::from(sign * n);
    }
    if let Ok(n) = plain.parse::<i64>() {
        return Number::from(n);
    }
    plain
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .unwrap_or_else(|| Number::from(0))
}

/// `value` as a YAML manifest that kubectl (go-yaml v2, YAML 1.1) reads back as exactly `value`.
/// A string holding a character go-yaml refuses or reads as a line break (U+0085, U+2028,
/// U+2029, controls, a carriage return), or one that YAML 1.1 would read as something else
/// unquoted (`on`, `012`), is written double-quoted with YAML escapes (`\N`, `\L`, `\P`,
/// `\uXXXX`); the rest as the YAML emitter writes it. The text is read back before it is
/// returned, so a manifest that would not mean `value` is never printed.
pub fn to_manifest(value: &Value) -> Result<String, String> {
    // A stand-in no string of the value holds, for the strings written here.
    let mut prefix = String::from("aws-auth-operator-quoted-");
    while contains_text(value, &prefix) {
        prefix.push('x');
    }
    let mut quoted = Vec::new();
    let masked = mask(value, &prefix, &mut quoted);
    let mut text = serde_yaml::to_string(&masked).map_err(|e| e.to_string())?;
    for (i, q) in quoted.iter().enumerate() {
        text = text.replacen(&stand_in(&prefix, i), q, 1);
    }
    let back = decode(&text).map_err(|e| format!("the manifest does not read back: {e}"))?;
    if back.documents.len() != 1 || back.documents[0] != *value {
        return Err("the manifest does not read back as the object it was made from".into());
    }
    Ok(text)
}

fn stand_in(prefix: &str, i: usize) -> String {
    // Fixed width, so that no stand-in is the start of another.
    format!("{prefix}{i:010}")
}

fn contains_text(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s.contains(needle),
        Value::Array(a) => a.iter().any(|v| contains_text(v, needle)),
        Value::Object(o) => o
            .iter()
            .any(|(k, v)| k.contains(needle) || contains_text(v, needle)),
        _ => false,
    }
}

fn mask(v: &Value, prefix: &str, quoted: &mut Vec<String>) -> Value {
    match v {
        Value::String(s) => Value::String(mask_one(s, prefix, quoted)),
        Value::Array(a) => Value::Array(a.iter().map(|v| mask(v, prefix, quoted)).collect()),
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, v) in o {
                let k = mask_one(k, prefix, quoted);
                out.insert(k, mask(v, prefix, quoted));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn mask_one(s: &str, prefix: &str, quoted: &mut Vec<String>) -> String {
    if needs_double_quotes(s) {
        quoted.push(double_quoted(s));
        stand_in(prefix, quoted.len() - 1)
    } else {
        s.to_string()
    }
}

fn needs_double_quotes(s: &str) -> bool {
    s.chars().any(|c| {
        !goyaml::is_printable(c) || goyaml::is_unicode_break(c) || c == '\r' || c == '\u{feff}'
    }) || resolve_plain(s).is_some()
}

/// A YAML double-quoted scalar of `s`, with the escapes go-yaml v2 reads.
pub fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if !goyaml::is_printable(c) || c == '\u{feff}' => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings YAML readers refuse, fold or type are written double-quoted with escapes, and the
    /// manifest reads back as the object; the rest is the emitter's ordinary YAML.
    #[test]
    fn manifests_read_back_exactly_whatever_their_strings_hold() {
        let hostile = [
            "- rolearn: a\u{2028}b\n",
            "x\u{2029}y\u{85}z",
            "bell\u{7}del\u{7f}c1\u{9f}",
            "crlf\r\nend",
            "\u{feff}bom",
            "\u{fffe}",
            "on",
            "012",
            "~",
            "plain text\nwith lines\n",
            "quote\" and \\ backslash",
        ];
        let data: Map<String, Value> = hostile
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("k{i}"), Value::String(v.to_string())))
            .collect();
        let value = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "data": data});
        let text = to_manifest(&value).unwrap();
        check_characters(&text).unwrap();
        assert!(text.contains(r#""- rolearn: a\Lb\n""#), "{text}");
        assert!(text.contains(r#""x\Py\Nz""#), "{text}");
        assert!(text.contains(r#""bell\u0007del\u007Fc1\u009F""#), "{text}");
        assert!(
            text.contains(r#""on""#) && text.contains(r#""012""#),
            "{text}"
        );
        assert_eq!(decode(&text).unwrap().documents, [value]);
        // A string that holds the stand-in itself stays what it is.
        let tricky =
            serde_json::json!({"a": "aws-auth-operator-quoted-0000000000", "b": "\u{2028}"});
        assert_eq!(
            decode(&to_manifest(&tricky).unwrap()).unwrap().documents,
            [tricky]
        );
    }

    #[test]
    fn yaml11_scalars_are_typed_as_kubectl_types_them() {
        let d = decode(
            "\u{feff}spec:\n  account: 012345678901\n  username: no\n  groups: [On, \"on\", dev]\n  adopt: yes\n---\nx: 1\n",
        )
        .unwrap();
        assert_eq!(d.documents.len(), 2);
        let spec = &d.documents[0]["spec"];
        assert!(spec["account"].is_number());
        assert_eq!(spec["username"], Value::Bool(false));
        assert_eq!(spec["groups"][0], Value::Bool(true));
        assert_eq!(spec["groups"][1], "on");
        assert_eq!(spec["adopt"], Value::Bool(true));
        let t: Vec<_> = d
            .typed
            .iter()
            .map(|t| (t.path.join("."), t.text.as_str(), t.kind))
            .collect();
        assert_eq!(
            t,
            [
                ("spec.account".into(), "012345678901", "number"),
                ("spec.username".into(), "no", "boolean"),
                ("spec.groups.0".into(), "On", "boolean"),
                ("spec.adopt".into(), "yes", "boolean"),
                ("x".into(), "1", "number"),
            ]
        );
    }

    #[test]
    fn deep_nesting_is_refused_with_its_line_not_a_crash() {
        for text in [
            format!("a:\n  b:\n  {}x\n", "- ".repeat(20_000)),
            format!("a: {}\n", "[".repeat(20_000)),
        ] {
            let e = decode(&text).unwrap_err();
            assert!(e.starts_with("line "), "{e}");
            // The scanner's own limit on flow levels may come first.
            assert!(
                e.contains("nested more than 64 deep") || e.contains("recursion limit"),
                "{e}"
            );
        }
        assert!(decode(&format!("a: {}x{}\n", "[".repeat(60), "]".repeat(60))).is_ok());
    }

    #[test]
    fn refused_characters_are_located() {
        let e = decode("a: b\nc: \"d\u{85}e\"\n").unwrap_err();
        assert!(e.starts_with("line 2:") && e.contains("U+0085"), "{e}");
        let e = decode("a: &x 1\nb: *x\n").unwrap_err();
        assert!(e.contains("alias"), "{e}");
    }
}
