//! YAML 1.1 plain-scalar resolution as go-yaml v2 does it: what an unquoted value is when it is
//! not a string (`yes` is a boolean, `0x1F` a number, `~` null).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    Null,
    Bool,
    Int,
    Float,
    /// `.inf`/`.nan`: the JSON conversion fails and the whole key is dropped.
    Unrepresentable,
    /// Looks like a YAML timestamp; libraries disagree on whether it stays a string.
    Timestamp,
}

impl Resolved {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Resolved::Null => "null",
            Resolved::Bool => "boolean",
            Resolved::Int => "number",
            Resolved::Float => "number",
            Resolved::Unrepresentable => "float",
            Resolved::Timestamp => "timestamp",
        }
    }
}

/// What a plain scalar is in YAML 1.1 when it is not a string (`None`: a string).
pub(crate) fn resolve_plain(s: &str) -> Option<Resolved> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Resolved::Null),
        "y" | "Y" | "yes" | "Yes" | "YES" | "n" | "N" | "no" | "No" | "NO" | "true" | "True"
        | "TRUE" | "false" | "False" | "FALSE" | "on" | "On" | "ON" | "off" | "Off" | "OFF" => {
            return Some(Resolved::Bool);
        }
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF"
        | "-.inf" | "-.Inf" | "-.INF" => return Some(Resolved::Unrepresentable),
        _ => {}
    }
    let first = s.as_bytes()[0];
    if first == b'.' {
        return s.parse::<f64>().is_ok().then_some(Resolved::Float);
    }
    if !(first.is_ascii_digit() || first == b'+' || first == b'-') {
        return None;
    }
    if looks_like_timestamp(s) {
        return Some(Resolved::Timestamp);
    }
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    if is_go_int(&plain) {
        return Some(Resolved::Int);
    }
    if is_yaml_float(&plain) {
        return Some(Resolved::Float);
    }
    None
}

/// `YYYY-...` with a digit after the dash: conservative, so the reader flags rather than guesses.
fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 6 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[5].is_ascii_digit()
}

/// Go's `strconv.ParseInt(s, 0, 64)` / `ParseUint` syntax (any size: overflow becomes a float).
fn is_go_int(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits = |d: &str, radix| !d.is_empty() && d.chars().all(|c| c.is_digit(radix));
    if let Some(d) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        digits(d, 16)
    } else if let Some(d) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        digits(d, 8)
    } else if let Some(d) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        digits(d, 2)
    } else {
        digits(s, 10)
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let all_digits = |d: &str| d.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => !frac.is_empty() && all_digits(frac),
        Some((int, frac)) => !int.is_empty() && all_digits(int) && all_digits(frac),
        None => !mantissa.is_empty() && all_digits(mantissa),
    };
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exp_ok
}
