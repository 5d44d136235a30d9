//! Issue 14, `jwtAuth`: tokens minted here with generated RSA, EC and Ed25519 keys, JWKS from a
//! file and inline; every rejection reason; the modes; the token never reaches the upstream or
//! a log; the claims in CEL fields.

use jsonwebtoken::{Algorithm, EncodingKey, Header, get_current_timestamp};
use serde_json::{Value, json};
use tollgate_tests::mcp::McpClient;
use tollgate_tests::proxy::{Proxy, ProxyOptions};
use tollgate_tests::upstream::FakeUpstream;
use tollgate_tests::{eventually, free_port};

use super::keys::{TestKey, jwks};

const ISSUER: &str = "https://idp.test";
const OTHER_ISSUER: &str = "https://other.test";

/// Claims valid for ten minutes, with `extra` merged in.
fn claims(extra: Value) -> Value {
    let mut c = json!({"iss": ISSUER, "sub": "alice", "aud": "api",
        "exp": get_current_timestamp() + 600, "groups": ["eng"]});
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    c
}

fn config(port: u16, upstream: &str, inline: &str) -> String {
    let file_provider = format!(
        "- issuer: {ISSUER}\n            audiences: [api]\n            jwks: {{file: keys/jwks.json}}\n            jwtValidationOptions: {{requiredClaims: [sub]}}"
    );
    let route = |name: &str, prefix: &str, extra: &str| {
        format!(
            "    - name: {name}\n      matches: [{{path: {{pathPrefix: {prefix}}}}}]\n      backends: [{{host: \"{upstream}\"}}]\n      policies:\n        jwtAuth:\n{extra}          providers:\n          {file_provider}\n          - issuer: {OTHER_ISSUER}\n            jwks: '{inline}'\n"
        )
    };
    format!(
        "config:\n  logging:\n    format: json\n    fields:\n      add: {{user: jwt.sub, authenticated: 'jwt.sub != null', group: 'jwt.groups[0]', uri: request.uri, echo: 'request.headers[\"x-id\"]'}}\nbinds:\n- port: {port}\n  listeners:\n  - routes:\n{}{}{}{}{}",
        route("strict", "/strict", "          mode: strict\n"),
        route("optional", "/optional", ""),
        route("permissive", "/permissive", "          mode: permissive\n"),
        route(
            "query",
            "/query",
            "          mode: strict\n          location: {queryParameter: {name: access_token}}\n"
        ),
        route(
            "cookie",
            "/cookie",
            "          mode: strict\n          location: {cookie: {name: id}}\n"
        ),
    )
}

struct Setup {
    proxy: Proxy,
    upstream: FakeUpstream,
    port: u16,
    rsa: TestKey,
    ec: TestKey,
    ed: TestKey,
    _cwd: tempfile::TempDir,
}

async fn setup() -> Setup {
    let (rsa, ec, ed) = (
        TestKey::rsa("rsa"),
        TestKey::ec("ec"),
        TestKey::ed25519("ed"),
    );
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cwd.path().join("keys")).unwrap();
    std::fs::write(cwd.path().join("keys/jwks.json"), jwks(&[&rsa, &ec])).unwrap();
    let upstream = FakeUpstream::start("u").await;
    let port = free_port();
    let config = config(port, &upstream.authority(), &jwks(&[&ed]));
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        cwd: Some(cwd.path()),
        ..Default::default()
    });
    proxy.wait_ready().await;
    Setup {
        proxy,
        upstream,
        port,
        rsa,
        ec,
        ed,
        _cwd: cwd,
    }
}

async fn call(s: &Setup, path: &str, bearer: Option<&str>) -> (u16, Option<String>, String) {
    let mut req = tollgate_tests::http().get(s.proxy.url(s.port, path));
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    tollgate_tests::challenged(req).await
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_of_every_key_type_pass_and_the_credential_stays_at_the_gateway() {
    let s = setup().await;
    let ed_claims = claims(json!({"iss": OTHER_ISSUER, "sub": "bob"}));
    let mut minted = vec![
        ("RS256 from the JWKS file", s.rsa.token(&claims(json!({})))),
        (
            "PS256, same RSA key",
            s.rsa.sign(Algorithm::PS256, &claims(json!({}))),
        ),
        ("ES256 from the JWKS file", s.ec.token(&claims(json!({})))),
        ("EdDSA, inline JWKS", s.ed.token(&ed_claims)),
    ];
    for (what, token) in &minted {
        let (status, _, body) = call(&s, "/strict/ok", Some(token)).await;
        assert_eq!(status, 200, "{what}: {body}");
    }
    let seen = s.upstream.requests();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter()
            .all(|r| r.headers.get("authorization").is_none()),
        "the bearer token is removed before the upstream"
    );

    // A query parameter and a cookie are removed too; other parameters and cookies stay.
    let token = s.ec.token(&claims(json!({})));
    let resp = tollgate_tests::http()
        .get(
            s.proxy
                .url(s.port, &format!("/query/q?a=1&access_token={token}&b=2")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = tollgate_tests::http()
        .get(s.proxy.url(s.port, "/cookie/c"))
        .header("cookie", format!("theme=dark; id={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = s.upstream.requests();
    assert_eq!(seen[4].path, "/query/q?a=1&b=2");
    assert_eq!(seen[5].headers["cookie"], "theme=dark");
    minted.push(("query and cookie", token.clone()));

    // The claims reach CEL; without identity `jwt.sub` is null: `authenticated` is false.
    // A JWT in a header the policy does not read stays (it is not this route's credential),
    // but CEL shows it redacted, as any JWT-shaped value.
    let resp = tollgate_tests::http()
        .get(s.proxy.url(s.port, "/optional/anonymous"))
        .header("x-id", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let lines: Vec<Value> = eventually(std::time::Duration::from_secs(5), || async {
        let lines: Vec<Value> = s
            .proxy
            .access_log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if lines.len() >= 7 {
            Ok(lines)
        } else {
            Err(format!("{} access log lines", lines.len()))
        }
    })
    .await;
    assert_eq!(lines[0]["user"], "alice");
    assert_eq!(lines[0]["authenticated"], true);
    assert_eq!(lines[0]["group"], "eng");
    assert_eq!(lines[3]["user"], "bob");
    let anonymous = &lines[6];
    assert_eq!(anonymous["authenticated"], false, "{anonymous}");
    assert!(anonymous.get("user").is_none(), "null fields are omitted");
    assert_eq!(anonymous["echo"], "<redacted>");

    let logs = format!("{}{}", s.proxy.access_log(), s.proxy.log());
    for (what, token) in &minted {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature), "{what}: the token is logged");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rejection_is_a_401_that_names_its_reason() {
    let s = setup().await;
    let now = get_current_timestamp();
    let stranger = TestKey::ec("ec");
    let cases = [
        (
            s.ec.token(&claims(json!({"exp": now - 300}))),
            "token expired",
        ),
        (
            s.ec.token(&claims(json!({"nbf": now + 300}))),
            "token not yet valid",
        ),
        (stranger.token(&claims(json!({}))), "bad token signature"),
        (
            s.ec.token(&claims(json!({"aud": "other"}))),
            "wrong token audience",
        ),
        (
            s.ec.token(&claims(json!({"iss": "https://evil.test"}))),
            "unknown token issuer",
        ),
        (
            TestKey::ec("unknown-kid").token(&claims(json!({}))),
            "unknown token key",
        ),
        (
            s.ec.token(&json!({"iss": ISSUER, "aud": "api", "exp": now + 600})),
            "token is missing the claim `sub`",
        ),
        (
            {
                let secret = EncodingKey::from_secret(b"public-key-as-secret").unwrap();
                jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(json!({})), &secret)
                    .unwrap()
            },
            "token algorithm not accepted",
        ),
        ("not.a.jwt".to_string(), "malformed token"),
    ];
    for (token, reason) in &cases {
        for route in ["/strict/x", "/optional/x"] {
            let (status, challenge, body) = call(&s, route, Some(token)).await;
            assert_eq!(status, 401, "{route} {reason}: {body}");
            assert_eq!(challenge.as_deref(), Some("Bearer error=\"invalid_token\""));
            assert_eq!(body, format!("unauthorized: {reason}"));
            assert!(!body.contains(token.as_str()));
        }
        // Permissive never refuses; the request goes on without identity.
        assert_eq!(
            call(&s, "/permissive/x", Some(token)).await.0,
            200,
            "{reason}"
        );
    }
    let (status, challenge, body) = call(&s, "/strict/x", None).await;
    assert_eq!((status, challenge.as_deref()), (401, Some("Bearer")));
    assert_eq!(body, "unauthorized: missing token");
    assert_eq!(call(&s, "/optional/x", None).await.0, 200);
    assert_eq!(
        s.upstream.requests().len(),
        cases.len() + 1,
        "only permissive and anonymous optional requests went upstream"
    );
    let count = s
        .proxy
        .metric(
            "agentgateway_requests_total",
            &[r#"route="strict""#, r#"reason="Unauthenticated""#],
        )
        .await;
    assert_eq!(count, (cases.len() + 1) as f64);
}

#[tokio::test]
async fn an_unreadable_jwks_file_rejects_the_config() {
    let port = free_port();
    let upstream = FakeUpstream::start("u").await;
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends: [{{host: \"{}\"}}]\n      policies:\n        jwtAuth: {{issuer: i, jwks: {{file: missing/jwks.json}}}}\n",
        upstream.authority()
    );
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        ..Default::default()
    });
    proxy.wait_log("missing/jwks.json", 0).await;
    assert!(
        tollgate_tests::get(proxy.url(port, "/")).await.is_err(),
        "nothing is served"
    );
}

/// A client whose every request carries `token` as a bearer token (or none).
fn client_as(token: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
    }
    tollgate_tests::http_builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_session_belongs_to_the_identity_that_opened_it() {
    let key = TestKey::ec("ec");
    let port = free_port();
    let policy = format!(
        "    - name: mcp\n      policies:\n        jwtAuth: {{issuer: {ISSUER}, jwks: '{}'}}\n",
        jwks(&[&key])
    );
    let config =
        tollgate_tests::mcp::config(port, &["one"], "", "").replace("    - name: mcp\n", &policy);
    let proxy = Proxy::start(&config).await;
    let url = proxy.url(port, "/mcp");
    let alice = key.token(&claims(json!({})));
    let mut opener = McpClient::with_http(&url, client_as(Some(&alice)));
    let answer = opener.initialize().await;
    assert!(answer.get("result").is_some(), "{answer}");
    assert!(!opener.tool_names().await.is_empty());

    // A refreshed token of the same subject is the same caller.
    let refreshed = key.token(&claims(json!({"exp": get_current_timestamp() + 900})));
    let mut again = McpClient::with_http(&url, client_as(Some(&refreshed)));
    again.session = opener.session.clone();
    assert!(!again.tool_names().await.is_empty());

    // Another identity, or none, does not find the session: 404, as for an unknown one.
    let bob = key.token(&claims(json!({"sub": "bob"})));
    for (who, token) in [("bob", Some(bob.as_str())), ("anonymous", None)] {
        let mut other = McpClient::with_http(&url, client_as(token));
        other.session = opener.session.clone();
        let resp = other
            .post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
            .await;
        assert_eq!(resp.status(), 404, "{who}");
    }
}
