//! Username and group templates: the five tokens the authenticator expands, and how it expands them.

pub const ACCOUNT_ID: &str = "{{AccountID}}";
pub const SESSION_NAME: &str = "{{SessionName}}";
pub const SESSION_NAME_RAW: &str = "{{SessionNameRaw}}";
pub const ACCESS_KEY_ID: &str = "{{AccessKeyID}}";
pub const EC2_PRIVATE_DNS_NAME: &str = "{{EC2PrivateDNSName}}";

pub const TOKENS: &[&str] = &[
    ACCOUNT_ID,
    SESSION_NAME,
    SESSION_NAME_RAW,
    ACCESS_KEY_ID,
    EC2_PRIVATE_DNS_NAME,
];

/// The caller facts a template is expanded with.
#[derive(Debug, Clone, Default)]
pub struct Identity<'a> {
    pub account_id: &'a str,
    pub session_name: &'a str,
    pub access_key_id: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "{{{{EC2PrivateDNSName}}}} needs a session name that is an EC2 instance id (i-...), got `{0}`: authentication fails"
    )]
    NotAnInstance(String),
}

/// `^i-(\w{8}|\w{17})$`, the authenticator's instance-id check.
pub fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|id| {
        (id.len() == 8 || id.len() == 17) && id.chars().all(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Expands a template as upstream `renderTemplate` does (plain string replacement, in its order).
/// The EC2 private DNS name needs an EC2 API call, so it is left as a readable placeholder.
pub fn render(template: &str, id: &Identity<'_>) -> Result<String, TemplateError> {
    let mut out = template.to_string();
    if out.contains(EC2_PRIVATE_DNS_NAME) {
        if !is_instance_id(id.session_name) {
            return Err(TemplateError::NotAnInstance(id.session_name.to_string()));
        }
        out = out.replace(
            EC2_PRIVATE_DNS_NAME,
            &format!("<private DNS name of {}>", id.session_name),
        );
    }
    out = out.replace(ACCOUNT_ID, id.account_id);
    out = out.replace(SESSION_NAME, &id.session_name.replace('@', "-"));
    out = out.replace(SESSION_NAME_RAW, id.session_name);
    Ok(out.replace(ACCESS_KEY_ID, id.access_key_id))
}

/// Where `c` first stands twice in a row in `s`: a byte scan (most usernames hold one token, and
/// validation looks at thousands of them).
fn find_pair(s: &str, c: u8) -> Option<usize> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(i) = b[from..].iter().position(|&x| x == c) {
        let i = from + i;
        if b.get(i + 1) == Some(&c) {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// Every `{{...}}` in `s` that is not one of the five tokens, and whether braces are unbalanced.
pub fn unknown_tokens(s: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let mut rest = s;
    while let Some(start) = find_pair(rest, b'{') {
        match find_pair(&rest[start..], b'}') {
            Some(end) => {
                let token = &rest[start..start + end + 2];
                if !TOKENS.contains(&token) {
                    bad.push(token.to_string());
                }
                rest = &rest[start + end + 2..];
            }
            None => {
                bad.push(rest[start..].to_string());
                break;
            }
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_render_template_vectors() {
        let data = include_str!("../../../tests/fixtures/template-render.tsv");
        let mut n = 0;
        for line in data
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let f: Vec<&str> = line.split('\t').collect();
            let id = Identity {
                account_id: f[1],
                session_name: f[2],
                access_key_id: f[3],
            };
            let got = render(f[0], &id);
            if f[4] == "ERROR" {
                assert!(got.is_err(), "{line}");
            } else {
                assert_eq!(got.as_deref(), Ok(f[4]), "{line}");
            }
            n += 1;
        }
        assert_eq!(n, 7);
    }

    #[test]
    fn instance_ids() {
        assert!(is_instance_id("i-0123abcd"));
        assert!(is_instance_id("i-0123456789abcdef0"));
        assert!(!is_instance_id("i-aaaaa"));
        assert!(!is_instance_id("alice"));
    }

    #[test]
    fn unknown_tokens_are_found() {
        assert!(unknown_tokens("admin:{{SessionName}}").is_empty());
        assert_eq!(
            unknown_tokens("a-{{Session}}-{{AccountID}}"),
            ["{{Session}}"]
        );
        assert_eq!(unknown_tokens("a-{{SessionName"), ["{{SessionName"]);
    }
}
