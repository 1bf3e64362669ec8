//! IAM role trust policies for IAM roles for service accounts: does the policy let a
//! ServiceAccount's token (issued by the cluster's OIDC issuer, audience sts.amazonaws.com)
//! assume the role, and if not, which part is wrong. Pure.
use serde_json::Value;

use crate::engine::glob;

/// What a working policy must allow.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// `arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID`
    pub provider_arn: &'a str,
    /// The issuer without `https://`: the prefix of the condition keys.
    pub issuer_hostpath: &'a str,
    pub namespace: &'a str,
    pub service_account: &'a str,
    pub audience: &'a str,
}

impl Expected<'_> {
    pub fn subject(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }

    /// A statement that works, for the fix.
    pub fn statement(&self) -> String {
        serde_json::json!({
            "Effect": "Allow",
            "Principal": {"Federated": self.provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{}:sub", self.issuer_hostpath): self.subject(),
                format!("{}:aud", self.issuer_hostpath): self.audience,
            }}
        })
        .to_string()
    }
}

/// Why the policy does not let the token in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub what: String,
    pub fix: String,
}

/// The verdict: allowed (with warnings), or the problem of the statement that came closest.
/// Evaluated as IAM evaluates one policy (ARCHITECTURE.md lists the rules and their sources): an
/// explicit Deny that applies wins over every Allow; otherwise an Allow must apply, with its
/// action (`Action` with `*`/`?`, or `NotAction`), its principal and all its conditions.
pub fn evaluate(policy: &str, e: &Expected) -> Result<Vec<String>, Problem> {
    let doc: Value = serde_json::from_str(policy).map_err(|err| Problem {
        what: format!("the trust policy is not valid JSON ({err})"),
        fix: format!("write a statement like {}", e.statement()),
    })?;
    let statements: Vec<&Value> = match &doc["Statement"] {
        Value::Array(a) => a.iter().collect(),
        s @ Value::Object(_) => vec![s],
        _ => Vec::new(),
    };
    let mut warnings = Vec::new();
    for (i, s) in statements.iter().enumerate() {
        if s["Effect"] != "Deny" {
            continue;
        }
        match deny_applies(s, e) {
            Ok(false) => {}
            Ok(true) => {
                return Err(Problem {
                    what: format!(
                        "statement {} denies sts:AssumeRoleWithWebIdentity to {}: an explicit Deny overrides every Allow",
                        i + 1,
                        e.subject()
                    ),
                    fix: format!(
                        "remove that Deny, or narrow its condition so that it does not match {}",
                        e.subject()
                    ),
                });
            }
            Err(why) => warnings.push(format!(
                "statement {} is a Deny whose {why} is not evaluated here: if it matches, STS refuses",
                i + 1
            )),
        }
    }
    let candidates: Vec<&Value> = statements
        .into_iter()
        .filter(|s| s["Effect"] == "Allow" && action_applies(s))
        .collect();
    if candidates.is_empty() {
        return Err(Problem {
            what: "no statement allows sts:AssumeRoleWithWebIdentity".into(),
            fix: format!("add the statement {}", e.statement()),
        });
    }
    let mut first_problem = None;
    for s in &candidates {
        let federated = strings(&s["Principal"]["Federated"]);
        let result = match principal_applies(s, e) {
            Some(true) => check_conditions(s, e),
            Some(false) => Err(wrong_provider(&federated, e)),
            None => Err(Problem {
                what: "the statement allowing sts:AssumeRoleWithWebIdentity uses NotPrincipal, which is not evaluated here (IAM advises against it with Allow)".into(),
                fix: format!("name the provider in Principal: {}", e.statement()),
            }),
        };
        match result {
            Ok(w) => {
                warnings.extend(w);
                return Ok(warnings);
            }
            // Prefer what is wrong in a statement that names the right provider.
            Err(p) if federated.contains(&e.provider_arn) => return Err(p),
            Err(p) => {
                first_problem.get_or_insert(p);
            }
        }
    }
    Err(first_problem.expect("at least one candidate"))
}

/// The action the token asks for.
const ACTION: &str = "sts:assumerolewithwebidentity";

/// `Action` (or `NotAction`) covers the request: IAM action names are case-insensitive and take
/// `*` and `?` wildcards.
fn action_applies(s: &Value) -> bool {
    let covers = |v: &Value| {
        strings(v)
            .iter()
            .any(|p| glob::matches(&p.to_ascii_lowercase(), ACTION))
    };
    match (s.get("Action"), s.get("NotAction")) {
        (Some(a), _) => covers(a),
        (None, Some(n)) => !covers(n),
        (None, None) => false,
    }
}

/// Whether the statement's principal is the cluster's provider: `Principal` names it (or `*`);
/// `NotPrincipal` is evaluated only for a Deny (None for an Allow).
fn principal_applies(s: &Value, e: &Expected) -> Option<bool> {
    let names = |p: &Value| {
        p == "*"
            || strings(&p["Federated"]).contains(&e.provider_arn)
            || strings(&p["AWS"]).contains(&"*")
    };
    match (s.get("Principal"), s.get("NotPrincipal")) {
        (Some(p), _) => Some(names(p)),
        (None, Some(n)) if s["Effect"] == "Deny" => Some(!names(n)),
        _ => None,
    }
}

/// Whether a Deny statement applies to the request; Err names what could not be evaluated.
fn deny_applies(s: &Value, e: &Expected) -> Result<bool, String> {
    if !action_applies(s) || principal_applies(s, e) != Some(true) {
        return Ok(false);
    }
    let Some(ops) = s.get("Condition").and_then(Value::as_object) else {
        return Ok(true);
    };
    // Every operator and every key must hold (AND); any value of a key may (OR).
    for (op, keys) in ops {
        let Some(keys) = keys.as_object() else {
            return Err(format!("condition {op}"));
        };
        for (key, values) in keys {
            let actual = context_value(key, e).ok_or_else(|| format!("condition key {key}"))?;
            match op_holds(op, &strings(values), &actual) {
                Some(true) => {}
                Some(false) => return Ok(false),
                None => return Err(format!("condition operator {op}")),
            }
        }
    }
    Ok(true)
}

/// The request's value of a condition key the doctor knows: the token's `sub` and `aud`.
fn context_value(key: &str, e: &Expected) -> Option<String> {
    let (prefix, field) = key.rsplit_once(':')?;
    if prefix != e.issuer_hostpath {
        return None;
    }
    match field {
        "sub" => Some(e.subject()),
        "aud" => Some(e.audience.to_string()),
        _ => None,
    }
}

/// One condition operator over a single-valued key (None: an operator not evaluated here). The
/// `ForAnyValue:`/`ForAllValues:` qualifiers reduce to the plain operator for one value, and
/// `...IfExists` to it for a key the request always has.
fn op_holds(op: &str, values: &[&str], actual: &str) -> Option<bool> {
    let op = op
        .strip_prefix("ForAnyValue:")
        .or_else(|| op.strip_prefix("ForAllValues:"))
        .unwrap_or(op);
    let op = op.strip_suffix("IfExists").unwrap_or(op);
    let any = |f: &dyn Fn(&str) -> bool| values.iter().any(|v| f(v));
    Some(match op {
        "StringEquals" => any(&|v| v == actual),
        "StringNotEquals" => !any(&|v| v == actual),
        "StringEqualsIgnoreCase" => any(&|v| v.eq_ignore_ascii_case(actual)),
        "StringNotEqualsIgnoreCase" => !any(&|v| v.eq_ignore_ascii_case(actual)),
        "StringLike" => any(&|v| glob::matches(v, actual)),
        "StringNotLike" => !any(&|v| glob::matches(v, actual)),
        _ => return None,
    })
}

/// A string or a list of strings.
fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Names the part of the provider ARN that differs: account, region, issuer id.
fn wrong_provider(federated: &[&str], e: &Expected) -> Problem {
    let fix = format!(
        "set Principal.Federated to {} (the cluster's IAM OIDC provider)",
        e.provider_arn
    );
    let Some(other) = federated.first() else {
        return Problem {
            what:
                "the statement allowing sts:AssumeRoleWithWebIdentity names no Federated principal"
                    .into(),
            fix,
        };
    };
    let split = |arn: &str| -> Option<(String, String)> {
        let rest = arn.split_once(":iam::")?.1;
        let (account, path) = rest.split_once(":oidc-provider/")?;
        Some((account.to_string(), path.to_string()))
    };
    let what = match (split(other), split(e.provider_arn)) {
        (Some((a, _)), Some((want, _))) if a != want => format!(
            "Principal.Federated is the OIDC provider of account {a}; the cluster's provider is in account {want}"
        ),
        (Some((_, p)), Some((_, want))) => {
            let region = |p: &str| p.split('.').nth(2).map(str::to_string);
            let id = |p: &str| p.rsplit('/').next().map(str::to_string);
            if region(&p) != region(&want) {
                format!(
                    "Principal.Federated names an issuer in region {}, the cluster's is in {}",
                    region(&p).unwrap_or_default(),
                    region(&want).unwrap_or_default()
                )
            } else if id(&p) != id(&want) {
                format!(
                    "Principal.Federated names issuer id {}, the cluster's issuer id is {} (another cluster's provider?)",
                    id(&p).unwrap_or_default(),
                    id(&want).unwrap_or_default()
                )
            } else {
                format!("Principal.Federated is {other}, not {}", e.provider_arn)
            }
        }
        _ => format!("Principal.Federated is {other}, which is not an IAM OIDC provider ARN"),
    };
    Problem { what, fix }
}

/// `sub` and `aud` conditions of a statement naming the right provider.
fn check_conditions(s: &Value, e: &Expected) -> Result<Vec<String>, Problem> {
    let subject = e.subject();
    let fix = format!("use the condition {}", e.statement());
    let mut warnings = Vec::new();
    // Per key, each operator with its values: all operators must hold, any value of one may.
    let mut sub: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut aud: Vec<(&str, Vec<&str>)> = Vec::new();
    if let Some(ops) = s["Condition"].as_object() {
        for (op, keys) in ops {
            let Some(keys) = keys.as_object() else {
                continue;
            };
            for (key, values) in keys {
                let Some((prefix, field @ ("sub" | "aud"))) = key.rsplit_once(':') else {
                    warnings.push(format!(
                        "the condition {op} on {key} is not evaluated here: STS also requires it to hold"
                    ));
                    continue;
                };
                if prefix != e.issuer_hostpath {
                    return Err(Problem {
                        what: format!(
                            "the condition key {key} names issuer {prefix}, not the cluster's {}",
                            e.issuer_hostpath
                        ),
                        fix,
                    });
                }
                let target = if field == "sub" { &mut sub } else { &mut aud };
                target.push((op.as_str(), strings(values)));
            }
        }
    }
    if sub.is_empty() {
        return Err(Problem {
            what: format!(
                "no {}:sub condition: any ServiceAccount of the cluster could assume the role",
                e.issuer_hostpath
            ),
            fix,
        });
    }
    let not_evaluated = |op: &str, key: &str| Problem {
        what: format!(
            "the condition operator {op} on {}:{key} is not evaluated here",
            e.issuer_hostpath
        ),
        fix: format!("use StringEquals or StringLike: {}", e.statement()),
    };
    match failing(&sub, &subject) {
        None => {}
        Some(Err(op)) => return Err(not_evaluated(op, "sub")),
        Some(Ok((op, values))) => {
            let pairs: Vec<(&str, &str)> = values.iter().map(|v| (op, *v)).collect();
            return Err(Problem {
                what: if pairs.is_empty() {
                    format!(
                        "the {op} condition on {}:sub has no value",
                        e.issuer_hostpath
                    )
                } else {
                    sub_mismatch(&pairs, e)
                },
                fix,
            });
        }
    }
    if aud.is_empty() {
        warnings.push(format!(
            "no {}:aud condition; add \"{}:aud\": \"{}\"",
            e.issuer_hostpath, e.issuer_hostpath, e.audience
        ));
    }
    match failing(&aud, e.audience) {
        None => {}
        Some(Err(op)) => return Err(not_evaluated(op, "aud")),
        Some(Ok((op, values))) => {
            let negated = if op.contains("Not") { " (negated)" } else { "" };
            return Err(Problem {
                what: format!(
                    "the {}:aud condition allows {}{negated}, not {}",
                    e.issuer_hostpath,
                    values.join(", "),
                    e.audience
                ),
                fix,
            });
        }
    }
    Ok(warnings)
}

/// The first operator that does not hold for `actual` (Err: one not evaluated here).
fn failing<'c, 'v>(
    conds: &'c [(&'v str, Vec<&'v str>)],
    actual: &str,
) -> Option<Result<(&'v str, &'c [&'v str]), &'v str>> {
    conds
        .iter()
        .find_map(|(op, values)| match op_holds(op, values, actual) {
            Some(true) => None,
            Some(false) => Some(Ok((*op, values.as_slice()))),
            None => Some(Err(*op)),
        })
}

/// Says which part of `system:serviceaccount:NS:SA` the policy gets wrong.
fn sub_mismatch(sub: &[(&str, &str)], e: &Expected) -> String {
    let (op, value) = sub[0];
    let key = format!("{}:sub", e.issuer_hostpath);
    if op == "StringEquals" && value.contains(['*', '?']) {
        return format!(
            "{op} compares literally, so the wildcard in {key} = \"{value}\" matches nothing: use StringLike for wildcards"
        );
    }
    let parts: Vec<&str> = value.split(':').collect();
    match parts.as_slice() {
        ["system", "serviceaccount", ns, sa] => {
            let ns_ok = op_holds(op, &[ns], e.namespace) == Some(true) || *ns == e.namespace;
            let sa_ok =
                op_holds(op, &[sa], e.service_account) == Some(true) || *sa == e.service_account;
            match (ns_ok, sa_ok) {
                (false, true) => format!(
                    "{key} allows namespace {ns}, not {} (\"{value}\")",
                    e.namespace
                ),
                (true, false) => format!(
                    "{key} allows ServiceAccount {sa}, not {} (\"{value}\")",
                    e.service_account
                ),
                _ => format!("{key} allows \"{value}\", not \"{}\"", e.subject()),
            }
        }
        _ => format!(
            "{key} is \"{value}\", which is not of the form system:serviceaccount:NAMESPACE:NAME"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTPATH: &str = "oidc.eks.us-east-1.amazonaws.com/id/ABCDEF";
    const PROVIDER: &str =
        "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABCDEF";

    fn expected() -> Expected<'static> {
        Expected {
            provider_arn: PROVIDER,
            issuer_hostpath: HOSTPATH,
            namespace: "shop",
            service_account: "cart",
            audience: "sts.amazonaws.com",
        }
    }

    fn policy(provider: &str, op: &str, sub: &str, aud: Option<&str>) -> String {
        let mut cond = serde_json::json!({ op: { format!("{HOSTPATH}:sub"): sub } });
        if let Some(a) = aud {
            cond[op][format!("{HOSTPATH}:aud")] = a.into();
        }
        serde_json::json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Federated": provider},
            "Action": "sts:AssumeRoleWithWebIdentity", "Condition": cond
        }]})
        .to_string()
    }

    #[test]
    fn the_documented_policy_allows() {
        let e = expected();
        assert!(
            evaluate(&e.statement(), &e).is_err(),
            "a bare statement is no policy"
        );
        let p = policy(
            PROVIDER,
            "StringEquals",
            "system:serviceaccount:shop:cart",
            Some("sts.amazonaws.com"),
        );
        assert_eq!(evaluate(&p, &e), Ok(vec![]));
        let p = policy(PROVIDER, "StringLike", "system:serviceaccount:shop:*", None);
        let w = evaluate(&p, &e).unwrap();
        assert!(w[0].contains("no oidc.eks.us-east-1.amazonaws.com/id/ABCDEF:aud condition"));
    }

    fn with_statements(extra: &[Value]) -> String {
        let mut doc: Value = serde_json::from_str(&policy(
            PROVIDER,
            "StringEquals",
            "system:serviceaccount:shop:cart",
            Some("sts.amazonaws.com"),
        ))
        .unwrap();
        doc["Statement"]
            .as_array_mut()
            .unwrap()
            .extend(extra.iter().cloned());
        doc.to_string()
    }

    /// An explicit Deny that applies (action, principal, every condition) wins over any Allow;
    /// one that does not apply, or names another ServiceAccount, changes nothing.
    #[test]
    fn an_explicit_deny_overrides_every_allow() {
        let e = expected();
        let deny = |cond: Value| {
            serde_json::json!({"Effect": "Deny", "Principal": {"Federated": PROVIDER},
                "Action": "sts:AssumeRoleWithWebIdentity", "Condition": cond})
        };
        let sub = format!("{HOSTPATH}:sub");
        let every_sa =
            deny(serde_json::json!({"StringLike": {&sub: "system:serviceaccount:shop:*"}}));
        let p = evaluate(&with_statements(&[every_sa]), &e).unwrap_err();
        assert!(
            p.what.contains("statement 2 denies") && p.what.contains("explicit Deny overrides"),
            "{}",
            p.what
        );
        // Unconditional, by wildcard action, by NotPrincipal: all deny.
        let bare = serde_json::json!({"Effect": "Deny", "Principal": "*", "Action": "sts:*"});
        assert!(evaluate(&with_statements(&[bare]), &e).is_err());
        let not_principal = serde_json::json!({"Effect": "Deny",
            "NotPrincipal": {"Federated": "arn:aws:iam::111122223333:oidc-provider/other"},
            "Action": "sts:AssumeRoleWith*"});
        assert!(evaluate(&with_statements(&[not_principal]), &e).is_err());
        // Another ServiceAccount, a negated condition that excludes ours, another action: allowed.
        let other =
            deny(serde_json::json!({"StringEquals": {&sub: "system:serviceaccount:shop:other"}}));
        let not_ours =
            deny(serde_json::json!({"StringNotEquals": {&sub: "system:serviceaccount:shop:cart"}}));
        let other_action =
            serde_json::json!({"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"});
        let not_action = serde_json::json!({"Effect": "Deny", "Principal": "*",
            "NotAction": "sts:AssumeRoleWith*"});
        assert_eq!(
            evaluate(
                &with_statements(&[other, not_ours, other_action, not_action]),
                &e
            ),
            Ok(vec![])
        );
        // A Deny on a key not evaluated here is said so.
        let unknown = deny(serde_json::json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}));
        let w = evaluate(&with_statements(&[unknown]), &e).unwrap();
        assert!(
            w[0].contains("statement 2 is a Deny") && w[0].contains("not evaluated"),
            "{w:?}"
        );
    }

    /// Action values take `*` and `?` and any case; NotAction allows every other action.
    #[test]
    fn actions_match_with_wildcards_and_not_action() {
        let e = expected();
        let allow = |action: Value| {
            let mut p: Value = serde_json::from_str(&policy(
                PROVIDER,
                "StringEquals",
                "system:serviceaccount:shop:cart",
                Some("sts.amazonaws.com"),
            ))
            .unwrap();
            let s = &mut p["Statement"][0];
            s.as_object_mut().unwrap().remove("Action");
            for (k, v) in action.as_object().unwrap() {
                s[k] = v.clone();
            }
            evaluate(&p.to_string(), &e)
        };
        for ok in [
            serde_json::json!({"Action": "sts:AssumeRoleWith*"}),
            serde_json::json!({"Action": ["s3:GetObject", "STS:assumerolewithwebidentity"]}),
            serde_json::json!({"Action": "sts:AssumeRoleWith?ebIdentity"}),
            serde_json::json!({"Action": "*"}),
            serde_json::json!({"NotAction": "sts:AssumeRole"}),
        ] {
            assert_eq!(allow(ok.clone()), Ok(vec![]), "{ok}");
        }
        for refused in [
            serde_json::json!({"Action": "sts:AssumeRole"}),
            serde_json::json!({"Action": "sts:AssumeRoleWithSAML"}),
            serde_json::json!({"NotAction": "sts:*"}),
        ] {
            let p = allow(refused.clone()).unwrap_err();
            assert!(
                p.what.contains("no statement allows"),
                "{refused}: {}",
                p.what
            );
        }
    }

    /// Every operator of a condition must hold; negated operators exclude their values.
    #[test]
    fn conditions_hold_together() {
        let e = expected();
        let sub = format!("{HOSTPATH}:sub");
        let doc = |cond: Value| {
            serde_json::json!({"Statement": [{"Effect": "Allow", "Principal": {"Federated": PROVIDER},
                "Action": "sts:AssumeRoleWithWebIdentity", "Condition": cond}]})
            .to_string()
        };
        let both = doc(serde_json::json!({
            "StringLike": {&sub: "system:serviceaccount:shop:*"},
            "StringNotEquals": {&sub: "system:serviceaccount:shop:cart"}
        }));
        assert!(evaluate(&both, &e).is_err());
        let fine = doc(serde_json::json!({
            "StringLike": {&sub: "system:serviceaccount:shop:*"},
            "ForAnyValue:StringNotEqualsIfExists": {&sub: "system:serviceaccount:shop:admin"},
            "StringEquals": {format!("{HOSTPATH}:amr"): "authenticated"}
        }));
        let w = evaluate(&fine, &e).unwrap();
        assert!(
            w.iter().any(|w| w.contains(":amr is not evaluated")),
            "{w:?}"
        );
    }

    #[test]
    fn each_wrong_part_is_named() {
        let e = expected();
        let case = |p: String| evaluate(&p, &e).unwrap_err().what;
        let aud = Some("sts.amazonaws.com");
        assert!(
            case(policy(
                PROVIDER,
                "StringEquals",
                "system:serviceaccount:web:cart",
                aud
            ))
            .contains("allows namespace web, not shop")
        );
        assert!(
            case(policy(
                PROVIDER,
                "StringEquals",
                "system:serviceaccount:shop:checkout",
                aud
            ))
            .contains("allows ServiceAccount checkout, not cart")
        );
        assert!(
            case(policy(
                PROVIDER,
                "StringEquals",
                "system:serviceaccount:shop:*",
                aud
            ))
            .contains("StringEquals compares literally")
        );
        assert!(
            case(policy(
                &PROVIDER.replace("111122223333", "444455556666"),
                "StringEquals",
                "system:serviceaccount:shop:cart",
                aud
            ))
            .contains("account 444455556666")
        );
        assert!(
            case(policy(
                &PROVIDER.replace("ABCDEF", "XYZ"),
                "StringEquals",
                "system:serviceaccount:shop:cart",
                aud
            ))
            .contains("issuer id XYZ")
        );
        assert!(
            case(policy(
                &PROVIDER.replace("us-east-1", "eu-west-1"),
                "StringEquals",
                "system:serviceaccount:shop:cart",
                aud
            ))
            .contains("region eu-west-1")
        );
        assert!(
            case(policy(
                PROVIDER,
                "StringEquals",
                "system:serviceaccount:shop:cart",
                Some("sts.amazonaws.com.cn")
            ))
            .contains("aud condition allows sts.amazonaws.com.cn")
        );
        let no_action = r#"{"Statement": {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}}"#;
        let p = evaluate(no_action, &e).unwrap_err();
        assert!(
            p.what
                .contains("no statement allows sts:AssumeRoleWithWebIdentity")
        );
        assert!(
            p.fix.contains("system:serviceaccount:shop:cart"),
            "{}",
            p.fix
        );
        let other_key = policy(
            PROVIDER,
            "StringEquals",
            "system:serviceaccount:shop:cart",
            aud,
        )
        .replace("id/ABCDEF:sub", "id/OTHER:sub");
        assert!(case(other_key).contains("names issuer oidc.eks.us-east-1.amazonaws.com/id/OTHER"));
    }
}
