//! What looks like a credential, decided in one place for everything that shows config or
//! request values: the admin APIs of proxy and control plane, config errors, CEL fields.

/// What is shown instead of a credential.
pub const REDACTED: &str = "<redacted>";

/// Header names that carry credentials without saying so.
const CREDENTIAL_HEADERS: [&str; 4] = [
    "cookie",
    "set-cookie",
    "x-amz-security-token",
    "mcp-session-id",
];

/// Words that mark a header, query parameter or flag name as a credential (`x-goog-api-key`,
/// `x-auth-token`, `?sessionId=`, `--api-key`).
const CREDENTIAL_WORDS: [&str; 9] = [
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "auth",
    "session",
    "signature",
    "credential",
];

/// Prefixes of well-known key formats and of credential-bearing header values.
const CREDENTIAL_PREFIXES: [&str; 11] = [
    "bearer ",
    "basic ",
    "sk-",
    "sk_",
    "ghp_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "aiza",
    // A JWT: base64url of `{"`.
    "eyj",
];

/// Whether a header, query parameter or flag name looks like it names a credential.
pub fn is_credential_name(name: &str) -> bool {
    let name = name.trim_start_matches('-').to_ascii_lowercase();
    CREDENTIAL_HEADERS.contains(&name.as_str()) || CREDENTIAL_WORDS.iter().any(|w| name.contains(w))
}

/// Whether a value looks like a credential by its form (`Bearer …`, `sk-…`).
pub fn looks_like_credential(value: &str) -> bool {
    let value = value.trim_start().to_ascii_lowercase();
    // A JWT after a scheme of any name (`JWT eyJ…`, `Token eyJ…`).
    let last_word = value.rsplit(char::is_whitespace).next().unwrap_or_default();
    CREDENTIAL_PREFIXES.iter().any(|p| value.starts_with(p)) || last_word.starts_with("eyj")
}

/// A query string with credential-like values (by parameter name or by form) redacted.
pub fn query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if is_credential_name(name) || looks_like_credential(value) => {
                format!("{name}={REDACTED}")
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A URL (or anything written where one was expected) without user info and with
/// credential-like query values redacted.
pub fn url(url: &str) -> String {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (url, None),
    };
    let (base, q) = match before_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_fragment, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = match base[authority_start..authority_end].rfind('@') {
        Some(at) => format!(
            "{}{REDACTED}@{}",
            &base[..authority_start],
            &base[authority_start + at + 1..]
        ),
        None => base.to_string(),
    };
    if let Some(q) = q {
        out.push('?');
        out.push_str(&query(q));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Command-line arguments with credentials redacted: the value of a credential-named flag,
/// variable or header (`--token=…`, `--api-key …`, `API_KEY=…`, `Authorization: …`),
/// credential-looking values, and URLs' user info and keys.
pub fn args(args: &[String]) -> Vec<String> {
    let mut after_credential_flag = false;
    args.iter()
        .map(|arg| {
            // `NAME=value` or a header `Name: value`, split where the value starts.
            let named = arg
                .find(['=', ':'])
                .map(|at| (&arg[..at], &arg[at..at + 1]));
            let shown = match named {
                _ if after_credential_flag || looks_like_credential(arg) => REDACTED.to_string(),
                _ if arg.contains("://") => url(arg),
                Some((name, "=")) if is_credential_field(name) => format!("{name}={REDACTED}"),
                Some((name, _)) if is_credential_field(name) => format!("{name}: {REDACTED}"),
                _ => arg.clone(),
            };
            after_credential_flag =
                arg.starts_with('-') && !arg.contains('=') && is_credential_name(arg);
            shown
        })
        .collect()
}

/// A flag, variable or header name (no spaces) that names a credential: `--token`, `API_KEY`,
/// `Authorization`.
fn is_credential_field(name: &str) -> bool {
    !name.is_empty() && !name.contains(char::is_whitespace) && is_credential_name(name)
}

/// Serializes a URL redacted (`#[serde(serialize_with)]`).
pub fn serialize_url<S: serde::Serializer>(value: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&url(value))
}

/// Serializes arguments redacted (`#[serde(serialize_with)]`).
pub fn serialize_args<S: serde::Serializer>(value: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(args(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_by_pattern() {
        for name in [
            "authorization",
            "x-goog-api-key",
            "mcp-session-id",
            "x-amz-security-token",
            "x-custom-key",
            "x-internal-token",
            "--api-key",
            "sessionId",
        ] {
            assert!(is_credential_name(name), "{name}");
        }
        for name in ["content-type", "x-client", "model", "--port"] {
            assert!(!is_credential_name(name), "{name}");
        }
    }

    #[test]
    fn jwt_shaped_values_are_credentials_whatever_their_name() {
        assert!(looks_like_credential(
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"
        ));
        assert!(looks_like_credential("JWT eyJhbGciOiJFUzI1NiJ9.e30.c2ln"));
        assert!(!looks_like_credential("text/plain"));
        assert_eq!(
            query("id=eyJhbGciOiJFUzI1NiJ9.e30.c2ln&x=1"),
            "id=<redacted>&x=1"
        );
    }

    #[test]
    fn urls_lose_user_info_and_keys() {
        assert_eq!(
            url("https://bob:pw@mcp.example/v1?token=t1&x=1#f"),
            "https://<redacted>@mcp.example/v1?token=<redacted>&x=1#f"
        );
        assert_eq!(url("http://h:1/mcp"), "http://h:1/mcp");
        assert_eq!(url("not a url ?key=k"), "not a url ?key=<redacted>");
    }

    #[test]
    fn args_lose_flag_values_and_keys() {
        let given: Vec<String> = [
            "server.js",
            "--token=t1",
            "--api-key",
            "k1",
            "sk-live-1",
            "--port",
            "80",
            "https://u:p@h/x",
            "https://u:p@h/auth?x=1",
            "--header",
            "Authorization: Bearer t2",
            "X-Api-Key:k2==",
            "API_KEY=k3",
            "Accept: text/plain",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            args(&given),
            [
                "server.js",
                "--token=<redacted>",
                "--api-key",
                "<redacted>",
                "<redacted>",
                "--port",
                "80",
                "https://<redacted>@h/x",
                "https://<redacted>@h/auth?x=1",
                "--header",
                "Authorization: <redacted>",
                "X-Api-Key: <redacted>",
                "API_KEY=<redacted>",
                "Accept: text/plain",
            ]
        );
    }
}
