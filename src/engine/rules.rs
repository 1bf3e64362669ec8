//! The rules of a grant that need no other object, in one place: the operator's validator
//! ([`crate::engine::validate`]) reports their messages, and the CRD carries each as a CEL
//! validation rule (`x-kubernetes-validations`) with the same message, so that the API server
//! refuses a bad grant itself, with the operator stopped. `tests/cel_rules.rs` checks on a real
//! API server that the two refuse the same grants with the same words.
//!
//! Messages never echo the refused value (the API server shows a CEL error without it, and a value
//! may be long or hold control characters); a fix derived from the value (the role ARN without its
//! path) is echoed, built by the same steps on both sides.
use serde_json::{Value, json};

use crate::engine::authmap::arn::PARTITIONS;
use crate::engine::authmap::template::TOKENS;

// --- spec as a whole ---------------------------------------------------------------------------
pub const BOTH: &str = "set either arn (an IAM user or role) or account, not both";
pub const NEITHER: &str =
    "set arn (an IAM user or role ARN) with username, or account (a 12-digit AWS account id)";

// --- spec.account ------------------------------------------------------------------------------
pub const ACCOUNT_DIGITS: &str =
    "is not a 12-digit AWS account id; write it in quotes, e.g. account: \"111122223333\"";
pub const ACCOUNT_ONLY: &str = "an account grant maps every principal of the account to its own ARN with no groups; remove username and groups, or grant a role or user with arn instead";

// --- spec.arn, in the order they are checked ---------------------------------------------------
pub const ARN_CONTROL: &str = "contains a control or format character; remove it";
pub const ARN_WHITESPACE: &str =
    "contains whitespace, which EKS keeps verbatim so it never matches; remove it";
pub const NOT_AN_ARN: &str =
    "is not an ARN: expected arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE";
pub const IAM_GROUP: &str = "names an IAM group; IAM groups cannot be mapped: grant each user, or a role the group's members assume";
pub const NOT_A_PRINCIPAL: &str = "names neither an IAM user nor an IAM role; aws-auth maps only IAM users, IAM roles and accounts";
pub const NO_SESSION: &str = "is an assumed-role ARN without a session name; grant the role: arn:PARTITION:iam::ACCOUNT:role/NAME";
pub const ARN_ACCOUNT: &str = "the account in the ARN is not a 12-digit AWS account id";
pub const ARN_REGION: &str =
    "IAM ARNs have no region; remove it: arn:PARTITION:iam::ACCOUNT:role/NAME or user/NAME";
pub const IAM_NAME: &str =
    "the name in the ARN is not a valid IAM name (1-64 characters of letters, digits and +=,.@_-)";
/// Followed by the role's ARN.
pub const ASSUMED_ROLE: &str =
    "is an STS assumed-role session ARN, which changes every session; grant the role: use ";
/// Followed by the ARN without the path.
pub const ROLE_PATH: &str = "role ARN has a path; EKS matches roles without it: use ";
pub const USER_PATH: &str =
    "the user path in the ARN is not a valid IAM path (printable ASCII segments between slashes)";
/// Around the account id: `ROOT_USER` + account + `ROOT_USER_END`.
pub const ROOT_USER: &str =
    "is the account root user; to admit every principal of the account use account: \"";
pub const ROOT_USER_END: &str = "\" instead of arn";
pub const FEDERATED_USER: &str =
    "is an STS federated-user session; grant the IAM user or role that calls GetFederationToken";

// --- spec.username and spec.groups -------------------------------------------------------------
pub const USERNAME_EMPTY: &str = "must not be empty: give the Kubernetes username this principal gets, e.g. username: alice or username: \"admin:{{SessionName}}\", or leave it out to let EKS access entries generate one";
/// aws-auth maps no principal without a username; access entries generate one.
pub const USERNAME_FOR_AWS_AUTH: &str = "spec.username is needed for aws-auth, which maps a principal only with a username (EKS access entries generate one when it is left out): give one, e.g. username: alice or username: \"admin:{{SessionName}}\"";
pub const EMPTY_ITEM: &str = "must not contain empty strings; remove the empty item";
pub const TEXT_CONTROL: &str =
    "contains a control or format character; Kubernetes names in aws-auth must not: remove it";
pub const TEXT_WHITESPACE: &str = "contains whitespace; Kubernetes names in aws-auth must not";
pub const EC2_ONLY_FOR_NODES: &str = "{{EC2PrivateDNSName}} works only for EC2 node roles (a role grant whose groups include system:nodes); for anything else authentication fails; use {{SessionName}}";

/// `{{...}}` that is none of the template tokens.
pub fn unknown_token() -> String {
    format!(
        "contains a {{{{...}}}} that is not a template token EKS knows, so it would stay literal text; use one of {}",
        TOKENS.join(", ")
    )
}

pub fn unknown_partition() -> String {
    format!(
        "has a partition EKS does not know; use one of {}",
        PARTITIONS.join(", ")
    )
}

// --- the same rules in CEL ---------------------------------------------------------------------

/// Characters [`crate::engine::authmap::needs_escape`] escapes (`\p{Cc}` is Rust's `is_control`).
const CONTROL_RE: &str =
    r"[\p{Cc}\x{2028}\x{2029}\x{200B}-\x{200F}\x{202A}-\x{202E}\x{2066}-\x{2069}\x{FEFF}]";
/// Rust's `char::is_whitespace` (the Unicode White_Space property).
const WHITESPACE_RE: &str = r"[\t-\r\x{85}\p{Z}]";
/// What a fallback message names in place of the role's ARN.
const ROLE_FORM: &str = "arn:PARTITION:iam::ACCOUNT:role/NAME";
const NAME_RE: &str = "[A-Za-z0-9+=,.@_-]{1,64}";

/// Where a rule sits: a field's own rules go on the field (`self` is its value), which the API
/// server ratchets (an old grant's unchanged value does not block its status); a rule across
/// fields sits on the spec and names its field with `fieldPath`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    Spec(&'static str),
    Arn,
    Account,
    Username,
    GroupItem,
}

/// One CEL rule: `pass` holds for a value the rule accepts.
struct Cel {
    at: At,
    pass: String,
    message: CelMessage,
}

enum CelMessage {
    Fixed(String),
    /// A CEL expression, and the fixed message the API server falls back to.
    Expr(String, String),
}

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn fixed(s: &str) -> CelMessage {
    CelMessage::Fixed(s.to_string())
}

/// `rules` (all at one place) as a chain: each fires only when the ones before it pass, so the API
/// server reports the first rule broken, as the operator does.
fn chain(at: At, guard: Option<&str>, rules: Vec<(String, CelMessage)>) -> Vec<Cel> {
    let mut before: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (pass, message) in rules {
        let mut cond: Vec<String> = guard.iter().map(|g| format!("!({g})")).collect();
        if !before.is_empty() {
            cond.push(format!("!({})", before.join(" && ")));
        }
        cond.push(format!("({pass})"));
        out.push(Cel {
            at,
            pass: cond.join(" || "),
            message,
        });
        before.push(format!("({pass})"));
    }
    out
}

/// The ARN rules, on `spec.arn`: its shape first, then the forms EKS never matches.
fn arn_rules() -> Vec<Cel> {
    let mut rules = arn_shape_rules();
    rules.extend(arn_form_rules());
    chain(At::Arn, None, rules)
}

/// `self.matches(re)`, for the ARN rules.
fn arn_matches(re: &str) -> String {
    format!("self.matches({})", q(re))
}

/// An ARN's shape: characters, partition, service, principal kind, account, region.
fn arn_shape_rules() -> Vec<(String, CelMessage)> {
    let a = "self";
    let m = arn_matches;
    let partitions = PARTITIONS.join("|");
    let principal = "(iam:[^:]*:[^:]*:(role|user|root)(/|$)|sts:[^:]*:[^:]*:(federated-user|assumed-role)(/|$))";
    vec![
        (format!("!{}", m(CONTROL_RE)), fixed(ARN_CONTROL)),
        (format!("!{}", m(WHITESPACE_RE)), fixed(ARN_WHITESPACE)),
        (m("^arn:([^:]*:){4}"), fixed(NOT_AN_ARN)),
        (
            m(&format!("^arn:({partitions}):")),
            CelMessage::Fixed(unknown_partition()),
        ),
        (
            format!(
                "{} || !{a}.contains(':group/')",
                m(&format!("^arn:[^:]*:{principal}"))
            ),
            fixed(IAM_GROUP),
        ),
        (
            m(&format!("^arn:[^:]*:{principal}")),
            fixed(NOT_A_PRINCIPAL),
        ),
        (
            format!(
                "!{} || {}",
                m("^arn:[^:]*:sts:[^:]*:[^:]*:assumed-role(/|$)"),
                m("^arn:[^:]*:sts:[^:]*:[^:]*:assumed-role/.*/")
            ),
            fixed(NO_SESSION),
        ),
        (m("^arn:[^:]*:[^:]*:[^:]*:[0-9]{12}:"), fixed(ARN_ACCOUNT)),
        (
            format!("!{}", m("^arn:[^:]*:iam:[^:]+:")),
            fixed(ARN_REGION),
        ),
    ]
}

/// The principal forms aws-auth never matches as written (names, sessions, role paths, root,
/// federated users); where the fix depends on the ARN, the message is built from it.
fn arn_form_rules() -> Vec<(String, CelMessage)> {
    use CelMessage::Expr;
    let a = "self";
    let m = arn_matches;
    let head = format!("'arn:' + {a}.split(':')[1] + ':iam::' + {a}.split(':')[4] + ':role/'");
    let segment = |from_end: usize| format!("{a}.split('/')[size({a}.split('/')) - {from_end}]");
    let named = "^arn:[^:]*:(iam:[^:]*:[^:]*:(role|user)(/|$)|sts:[^:]*:[^:]*:assumed-role(/|$))";
    vec![
        (
            format!(
                "!{} || {} || {}",
                m(named),
                m(&format!(
                    "^arn:[^:]*:iam:[^:]*:[^:]*:(role|user)/(.*/)?{NAME_RE}$"
                )),
                m(&format!(
                    "^arn:[^:]*:sts:[^:]*:[^:]*:assumed-role/(.*/)?{NAME_RE}/[^/]*$"
                ))
            ),
            fixed(IAM_NAME),
        ),
        (
            format!("!{}", m("^arn:[^:]*:sts:[^:]*:[^:]*:assumed-role/")),
            Expr(
                format!("{} + {head} + {}", q(ASSUMED_ROLE), segment(2)),
                format!("{ASSUMED_ROLE}{ROLE_FORM}"),
            ),
        ),
        (
            format!("!{}", m("^arn:[^:]*:iam:[^:]*:[^:]*:role/.*/")),
            Expr(
                format!("{} + {head} + {}", q(ROLE_PATH), segment(1)),
                format!("{ROLE_PATH}{ROLE_FORM}"),
            ),
        ),
        (
            format!(
                "!{} || {}",
                m("^arn:[^:]*:iam:[^:]*:[^:]*:user(/|$)"),
                m(&format!(
                    "^arn:[^:]*:iam:[^:]*:[^:]*:user/([!-.0-~]+/)*{NAME_RE}$"
                ))
            ),
            fixed(USER_PATH),
        ),
        (
            format!("!{}", m("^arn:[^:]*:iam:[^:]*:[^:]*:root(/|$)")),
            Expr(
                format!(
                    "{} + {a}.split(':')[4] + {}",
                    q(ROOT_USER),
                    q(ROOT_USER_END)
                ),
                format!("{ROOT_USER}ACCOUNT{ROOT_USER_END}"),
            ),
        ),
        (
            format!("!{}", m("^arn:[^:]*:sts:[^:]*:[^:]*:federated-user(/|$)")),
            fixed(FEDERATED_USER),
        ),
    ]
}

/// The text rules of a username or a group (`self`), in the operator's order.
fn text_rules(at: At, first: Option<(String, CelMessage)>) -> Vec<Cel> {
    let tokens = TOKENS.iter().map(|t| q(t)).collect::<Vec<_>>().join(", ");
    let rules = first.into_iter().chain([
        (
            format!("!self.matches({})", q(CONTROL_RE)),
            fixed(TEXT_CONTROL),
        ),
        (
            format!("!self.matches({})", q(WHITESPACE_RE)),
            fixed(TEXT_WHITESPACE),
        ),
        // A token runs from `{{` to the first `}}` after it, or to the end when none follows.
        (
            format!(
                "self.findAll({}).all(t, t in [{tokens}])",
                q(r"(?s)\{\{(?:.*?\}\}|.*$)")
            ),
            CelMessage::Fixed(unknown_token()),
        ),
    ]);
    chain(at, None, rules.collect())
}

/// Whether the grant is a role's with `system:nodes` among its groups (where
/// `{{EC2PrivateDNSName}}` expands).
const NODE_ROLE: &str = "(self.arn.matches('^arn:[^:]*:(iam:[^:]*:[^:]*:role/|sts:[^:]*:[^:]*:assumed-role/)') && has(self.groups) && 'system:nodes' in self.groups)";

/// The rules across fields, on the spec.
fn spec_rules() -> Vec<Cel> {
    let arn_grant = "has(self.arn) && !has(self.account)";
    let ec2 = q(crate::engine::authmap::template::EC2_PRIVATE_DNS_NAME);
    let rule = |field, pass: String, message: &str| Cel {
        at: At::Spec(field),
        pass,
        message: fixed(message),
    };
    vec![
        rule(
            "spec",
            "!(has(self.arn) && has(self.account))".into(),
            BOTH,
        ),
        rule(
            "spec",
            "has(self.arn) || has(self.account)".into(),
            NEITHER,
        ),
        rule(
            "spec.account",
            "!has(self.account) || has(self.arn) || (!has(self.username) && (!has(self.groups) || size(self.groups) == 0))".into(),
            ACCOUNT_ONLY,
        ),
        rule(
            "spec.username",
            format!("!({arn_grant}) || !has(self.username) || self.username != ''"),
            USERNAME_EMPTY,
        ),
        rule(
            "spec.username",
            format!(
                "!({arn_grant}) || !has(self.username) || !self.username.contains({ec2}) || {NODE_ROLE}"
            ),
            EC2_ONLY_FOR_NODES,
        ),
        rule(
            "spec.groups",
            format!(
                "!({arn_grant}) || !has(self.groups) || !self.groups.exists(g, g.contains({ec2})) || {NODE_ROLE}"
            ),
            EC2_ONLY_FOR_NODES,
        ),
    ]
}

fn rules_json<'a>(rules: impl Iterator<Item = &'a Cel>) -> Value {
    let rules: Vec<Value> = rules
        .map(|c| {
            let mut rule = json!({ "rule": c.pass });
            match &c.message {
                CelMessage::Fixed(m) => rule["message"] = m.clone().into(),
                CelMessage::Expr(e, fallback) => {
                    rule["messageExpression"] = e.clone().into();
                    rule["message"] = fallback.clone().into();
                }
            }
            if let At::Spec(field) = c.at
                && let Some(path) = field.strip_prefix("spec").filter(|p| !p.is_empty())
            {
                rule["fieldPath"] = path.into();
            }
            rule
        })
        .collect();
    Value::Array(rules)
}

/// Adds every rule above to the spec's schema as `x-kubernetes-validations`, each where it sits.
pub fn attach(spec: &mut serde_json::Map<String, Value>) {
    let mut all: Vec<Cel> = spec_rules();
    all.extend(arn_rules());
    all.extend(chain(
        At::Account,
        None,
        vec![("self.matches('^[0-9]{12}$')".into(), fixed(ACCOUNT_DIGITS))],
    ));
    all.extend(text_rules(At::Username, None));
    all.extend(text_rules(
        At::GroupItem,
        Some(("self != ''".into(), fixed(EMPTY_ITEM))),
    ));
    let at = |place: At| rules_json(all.iter().filter(|c| c.at == place));
    let key = "x-kubernetes-validations";
    let props = spec
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .expect("the spec has properties");
    props["arn"][key] = at(At::Arn);
    props["account"][key] = at(At::Account);
    props["username"][key] = at(At::Username);
    props["groups"]["items"][key] = at(At::GroupItem);
    let across = rules_json(all.iter().filter(|c| matches!(c.at, At::Spec(_))));
    spec.insert(key.into(), across);
}
