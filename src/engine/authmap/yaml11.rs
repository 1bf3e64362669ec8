//! YAML as kubectl decodes manifests (sigs.k8s.io/yaml over go-yaml v2): YAML 1.1, where an
//! unquoted `no`, `On` or `012345678901` is a boolean or a number, not a string. `render` reads
//! grant manifests this way, so the pull-request check agrees with what the API server accepts.
use serde_json::{Map, Number, Value};
use yaml_rust2::scanner::TScalarStyle;

use super::goyaml;
use super::read::{Kind, Node, Resolved, build_tree, resolve_plain};

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

#[cfg(test)]
mod tests {
    use super::*;

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
