//! IAM role trust policies for IAM roles for service accounts: does the policy let a
//! ServiceAccount's token (issued by the cluster's OIDC issuer, audience sts.amazonaws.com)
//! assume the role, and if not, which part is wrong. Pure.
use serde_json::Value;

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
    let candidates: Vec<&Value> = statements
        .into_iter()
        .filter(|s| s["Effect"] == "Allow" && allows_action(&s["Action"]))
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
        let result = if federated.contains(&e.provider_arn) {
            check_conditions(s, e)
        } else {
            Err(wrong_provider(&federated, e))
        };
        match result {
            Ok(w) => return Ok(w),
            // Prefer what is wrong in a statement that names the right provider.
            Err(p) if federated.contains(&e.provider_arn) => return Err(p),
            Err(p) => {
                first_problem.get_or_insert(p);
            }
        }
    }
    Err(first_problem.expect("at least one candidate"))
}

fn allows_action(a: &Value) -> bool {
    strings(a).iter().any(|x| {
        let x = x.to_ascii_lowercase();
        x == "sts:assumerolewithwebidentity" || x == "sts:*" || x == "*"
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
    let mut sub: Vec<(&str, &str)> = Vec::new();
    let mut aud: Vec<(&str, &str)> = Vec::new();
    if let Some(ops) = s["Condition"].as_object() {
        for (op, keys) in ops {
            let Some(keys) = keys.as_object() else {
                continue;
            };
            for (key, values) in keys {
                let (prefix, field) = match key.rsplit_once(':') {
                    Some(x) => x,
                    None => continue,
                };
                if !matches!(field, "sub" | "aud") {
                    continue;
                }
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
                target.extend(strings(values).into_iter().map(|v| (op.as_str(), v)));
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
    if !sub.iter().any(|(op, v)| condition_holds(op, v, &subject)) {
        return Err(Problem {
            what: sub_mismatch(&sub, e),
            fix,
        });
    }
    if aud.is_empty() {
        warnings.push(format!(
            "no {}:aud condition; add \"{}:aud\": \"{}\"",
            e.issuer_hostpath, e.issuer_hostpath, e.audience
        ));
    } else if !aud.iter().any(|(op, v)| condition_holds(op, v, e.audience)) {
        let values: Vec<&str> = aud.iter().map(|(_, v)| *v).collect();
        return Err(Problem {
            what: format!(
                "the {}:aud condition allows {}, not {}",
                e.issuer_hostpath,
                values.join(", "),
                e.audience
            ),
            fix,
        });
    }
    Ok(warnings)
}

fn condition_holds(op: &str, value: &str, actual: &str) -> bool {
    match op {
        "StringEquals" => value == actual,
        "StringEqualsIgnoreCase" => value.eq_ignore_ascii_case(actual),
        "StringLike" => crate::engine::glob::matches(value, actual),
        _ => false,
    }
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
            let ns_ok = condition_holds(op, ns, e.namespace) || *ns == e.namespace;
            let sa_ok = condition_holds(op, sa, e.service_account) || *sa == e.service_account;
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
