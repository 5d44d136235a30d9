//! Issue 14, `apiKey` and `basicAuth`: every rejection reason, the modes, the credential
//! removed before the upstream, keys from `$VAR`s and `keyHash`, the identity in CEL fields,
//! and secrets absent from logs, `/api/config` and error bodies.

use serde_json::Value;
use sha2::{Digest, Sha256};
use tollgate_tests::proxy::{Proxy, ProxyOptions};
use tollgate_tests::upstream::FakeUpstream;
use tollgate_tests::{eventually, free_port};

const ENV_KEY: &str = "sk-client-from-env-4f1c";
const HASHED_KEY: &str = "sk-client-hashed-9b2e";
const LITERAL_KEY: &str = "sk-client-literal-77aa";

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn api_key_config(port: u16, upstream: &str) -> String {
    let route = |name: &str, policy: &str| {
        format!(
            "    - name: {name}\n      matches: [{{path: {{pathPrefix: /{name}}}}}]\n      backends: [{{host: \"{upstream}\"}}]\n      policies:\n        apiKey:\n{policy}"
        )
    };
    let keys = format!(
        "          keys:\n          - {{key: $CLIENT_KEY, metadata: {{group: eng, name: alice}}}}\n          - {{keyHash: 'sha256:{}', metadata: {{group: ops}}}}\n          - {{key: {LITERAL_KEY}}}\n",
        sha256_hex(HASHED_KEY)
    );
    format!(
        "config:\n  logging:\n    format: json\n    fields:\n      add: {{group: apiKey.group, shown: apiKey.key, authenticated: 'apiKey.group != null'}}\nbinds:\n- port: {port}\n  listeners:\n  - routes:\n{}{}{}{}{}",
        route("strict", &format!("          mode: strict\n{keys}")),
        route("optional", &keys),
        route(
            "header",
            &format!(
                "          mode: strict\n          location: {{header: {{name: X-Api-Key}}}}\n{keys}"
            )
        ),
        route(
            "query",
            &format!(
                "          mode: strict\n          location: {{queryParameter: {{name: api_key}}}}\n{keys}"
            )
        ),
        route(
            "cookie",
            &format!(
                "          mode: strict\n          location: {{cookie: {{name: key}}}}\n{keys}"
            )
        ),
    )
}

async fn api_key_proxy() -> (Proxy, FakeUpstream, u16) {
    let upstream = FakeUpstream::start("u").await;
    let port = free_port();
    let config = api_key_config(port, &upstream.authority());
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        env: vec![("CLIENT_KEY", ENV_KEY)],
        ..Default::default()
    });
    proxy.wait_ready().await;
    (proxy, upstream, port)
}

/// Status and body of a GET with `headers`.
async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = tollgate_tests::http().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn access_lines(proxy: &Proxy, at_least: usize) -> Vec<Value> {
    eventually(std::time::Duration::from_secs(5), || async {
        let lines: Vec<Value> = proxy
            .access_log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if lines.len() >= at_least {
            Ok(lines)
        } else {
            Err(format!("{} access log lines", lines.len()))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_identify_callers_and_stay_at_the_gateway() {
    let (proxy, upstream, port) = api_key_proxy().await;
    let bearer = |key: &str| format!("Bearer {key}");
    for (what, key) in [
        ("a $VAR key", ENV_KEY),
        ("a keyHash", HASHED_KEY),
        ("a literal key", LITERAL_KEY),
    ] {
        let (status, body) = get(
            &proxy.url(port, "/strict/ok"),
            &[("authorization", &bearer(key))],
        )
        .await;
        assert_eq!(status, 200, "{what}: {body}");
    }
    let (status, _) = get(&proxy.url(port, "/header/h"), &[("x-api-key", ENV_KEY)]).await;
    assert_eq!(status, 200);
    let (status, _) = get(
        &proxy.url(port, &format!("/query/q?a=1&api_key={ENV_KEY}&b=2")),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = get(
        &proxy.url(port, "/cookie/c"),
        &[("cookie", &format!("theme=dark; key={ENV_KEY}"))],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = get(&proxy.url(port, "/optional/anonymous"), &[]).await;
    assert_eq!(status, 200, "optional: no key passes without identity");

    let seen = upstream.requests();
    assert_eq!(seen.len(), 7);
    for r in &seen {
        assert!(r.headers.get("authorization").is_none(), "{}", r.path);
        assert!(r.headers.get("x-api-key").is_none(), "{}", r.path);
    }
    assert_eq!(seen[4].path, "/query/q?a=1&b=2");
    assert_eq!(seen[5].headers["cookie"], "theme=dark");

    // The metadata reaches CEL at the top level; the key itself is redacted; without a key
    // `apiKey.group` is null.
    let lines = access_lines(&proxy, 7).await;
    assert_eq!(lines[0]["group"], "eng");
    assert_eq!(lines[0]["shown"], "<redacted>");
    assert_eq!(lines[1]["group"], "ops");
    assert_eq!(lines[2]["authenticated"], false, "a key without metadata");
    assert_eq!(lines[6]["authenticated"], false);
    assert!(lines[6].get("group").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_api_key_rejection_is_a_401_that_names_its_reason_and_no_secret_leaks() {
    let (proxy, upstream, port) = api_key_proxy().await;
    let wrong = "sk-wrong-key-0000";
    let bearer = |key: &str| Some(format!("Bearer {key}"));
    let cases = [
        ("/strict/x", None, "unauthorized: missing API key"),
        ("/strict/x", bearer(wrong), "unauthorized: invalid API key"),
        (
            "/strict/x",
            bearer(&sha256_hex(HASHED_KEY)),
            "unauthorized: invalid API key",
        ),
        (
            "/optional/x",
            bearer(wrong),
            "unauthorized: invalid API key",
        ),
        (
            "/header/x",
            bearer(ENV_KEY),
            "unauthorized: missing API key",
        ),
        ("/query/x?api_key=", None, "unauthorized: missing API key"),
    ];
    for (path, authorization, expected) in &cases {
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|a| ("authorization", a.as_str()))
            .collect();
        let (status, body) = get(&proxy.url(port, path), &headers).await;
        assert_eq!(
            (status, body.as_str()),
            (401, *expected),
            "{path} {headers:?}"
        );
    }
    assert!(
        upstream.requests().is_empty(),
        "nothing refused went upstream"
    );
    let refused = proxy
        .metric(
            "agentgateway_requests_total",
            &[r#"route="strict""#, r#"reason="Unauthenticated""#],
        )
        .await;
    assert_eq!(refused, 3.0);

    let config = proxy.admin_json("/api/config").await.to_string();
    assert!(
        config.contains("$CLIENT_KEY"),
        "a $VAR key shows as its reference"
    );
    let _ = access_lines(&proxy, cases.len()).await;
    let everything = format!("{config}{}{}", proxy.log(), proxy.access_log());
    for secret in [
        ENV_KEY,
        HASHED_KEY,
        LITERAL_KEY,
        wrong,
        &sha256_hex(HASHED_KEY),
    ] {
        assert!(!everything.contains(secret), "`{secret}` leaked");
    }
}

const APR1_USER: (&str, &str, &str) = ("ann", "password", "$apr1$abcdefgh$FBwExRW4dCc8aL.OvjpIE1");
const SHA_USER: (&str, &str, &str) = ("sam", "password", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=");
const BCRYPT_PASSWORD: &str = "b-secret-pw-31";

/// `user:hash` lines: a `$2y$` bcrypt user `bea` (cost `cost`), plus the apr1 and SHA users.
fn htpasswd(cost: u32) -> String {
    let bcrypt = bcrypt::hash(BCRYPT_PASSWORD, cost)
        .unwrap()
        .replacen("$2b$", "$2y$", 1);
    format!(
        "# test users\nbea:{bcrypt}\n{}:{}\n{}:{}\n",
        APR1_USER.0, APR1_USER.2, SHA_USER.0, SHA_USER.2
    )
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn basic_auth_config(port: u16, upstream: &str) -> String {
    let route = |name: &str, policy: &str| {
        format!(
            "    - name: {name}\n      matches: [{{path: {{pathPrefix: /{name}}}}}]\n      backends: [{{host: \"{upstream}\"}}]\n      policies:\n        basicAuth:\n          htpasswd: {{file: users/.htpasswd}}\n{policy}"
        )
    };
    format!(
        "config:\n  logging:\n    format: json\n    fields:\n      add: {{user: basicAuth.username, group: apiKey.group}}\nbinds:\n- port: {port}\n  listeners:\n  - routes:\n{}{}{}    - name: open\n      matches: [{{path: {{pathPrefix: /open}}}}]\n      backends: [{{host: \"{upstream}\"}}]\n",
        route(
            "strict",
            "          mode: strict\n          realm: Tollgate Test\n"
        ),
        route("optional", ""),
        route(
            "header",
            "          mode: strict\n          authorizationLocation: {header: {name: x-basic, prefix: 'Basic '}}\n"
        ),
    )
}

struct BasicSetup {
    proxy: Proxy,
    upstream: FakeUpstream,
    port: u16,
    cwd: tempfile::TempDir,
}

async fn basic_auth_proxy(cost: u32) -> BasicSetup {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cwd.path().join("users")).unwrap();
    std::fs::write(cwd.path().join("users/.htpasswd"), htpasswd(cost)).unwrap();
    let upstream = FakeUpstream::start("u").await;
    let port = free_port();
    let config = basic_auth_config(port, &upstream.authority());
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        cwd: Some(cwd.path()),
        ..Default::default()
    });
    proxy.wait_ready().await;
    BasicSetup {
        proxy,
        upstream,
        port,
        cwd,
    }
}

/// Status, `WWW-Authenticate` and body of a GET with `headers`.
async fn challenge(url: &str, headers: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let mut req = tollgate_tests::http().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    tollgate_tests::challenged(req).await
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_accepts_every_htpasswd_scheme_and_the_credentials_stay_at_the_gateway() {
    let s = basic_auth_proxy(4).await;
    for (user, password) in [
        ("bea", BCRYPT_PASSWORD),
        (APR1_USER.0, APR1_USER.1),
        (SHA_USER.0, SHA_USER.1),
    ] {
        let (status, _, body) = challenge(
            &s.proxy.url(s.port, "/strict/ok"),
            &[("authorization", &basic(user, password))],
        )
        .await;
        assert_eq!(status, 200, "{user}: {body}");
    }
    let (status, _, _) = challenge(
        &s.proxy.url(s.port, "/header/ok"),
        &[("x-basic", &basic("bea", BCRYPT_PASSWORD))],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = challenge(&s.proxy.url(s.port, "/optional/anonymous"), &[]).await;
    assert_eq!(
        status, 200,
        "optional: no credentials pass without identity"
    );
    let seen = s.upstream.requests();
    assert_eq!(seen.len(), 5);
    for r in &seen {
        assert!(r.headers.get("authorization").is_none(), "{}", r.path);
        assert!(r.headers.get("x-basic").is_none(), "{}", r.path);
    }

    let lines = access_lines(&s.proxy, 5).await;
    let users: Vec<&str> = lines[..4]
        .iter()
        .map(|l| l["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["bea", "ann", "sam", "bea"]);
    assert!(lines[4].get("user").is_none(), "no identity: null, omitted");
    assert!(lines[0].get("group").is_none(), "no API key: null, omitted");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_basic_auth_rejection_is_a_401_with_the_realm_and_no_secret_leaks() {
    let s = basic_auth_proxy(4).await;
    let wrong = basic("bea", "not-the-password");
    let unknown = basic("nobody", BCRYPT_PASSWORD);
    // A password long enough to cost real time in apr1 is refused before any check.
    let huge = basic("bea", &"p".repeat(4096));
    let cases = [
        (
            "/strict/x",
            Some(huge.as_str()),
            "unauthorized: malformed basic credentials",
        ),
        ("/strict/x", None, "unauthorized: missing basic credentials"),
        (
            "/strict/x",
            Some("Basic !!!"),
            "unauthorized: malformed basic credentials",
        ),
        (
            "/strict/x",
            Some("Basic bm9jb2xvbg=="),
            "unauthorized: malformed basic credentials",
        ),
        (
            "/strict/x",
            Some(wrong.as_str()),
            "unauthorized: invalid username or password",
        ),
        (
            "/strict/x",
            Some(unknown.as_str()),
            "unauthorized: invalid username or password",
        ),
        (
            "/optional/x",
            Some(wrong.as_str()),
            "unauthorized: invalid username or password",
        ),
    ];
    for (path, authorization, expected) in cases {
        let headers: Vec<(&str, &str)> = authorization
            .map(|a| ("authorization", a))
            .into_iter()
            .collect();
        let (status, realm, body) = challenge(&s.proxy.url(s.port, path), &headers).await;
        assert_eq!(
            (status, body.as_str()),
            (401, expected),
            "{path} {authorization:?}"
        );
        let expected_realm = if path.starts_with("/strict") {
            "Basic realm=\"Tollgate Test\""
        } else {
            "Basic realm=\"Restricted\""
        };
        assert_eq!(realm.as_deref(), Some(expected_realm));
    }
    assert!(s.upstream.requests().is_empty());

    let config = s.proxy.admin_json("/api/config").await.to_string();
    assert!(config.contains("users/.htpasswd"), "the file is named");
    let _ = access_lines(&s.proxy, cases.len()).await;
    let everything = format!("{config}{}{}", s.proxy.log(), s.proxy.access_log());
    for secret in [
        BCRYPT_PASSWORD,
        "not-the-password",
        &wrong[6..],
        APR1_USER.2,
        SHA_USER.2,
        "$2y$",
    ] {
        assert!(!everything.contains(secret), "`{secret}` leaked");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_htpasswd_file_is_used_and_a_broken_one_keeps_the_last_users() {
    let s = basic_auth_proxy(4).await;
    let url = s.proxy.url(s.port, "/strict/x");
    let file = s.cwd.path().join("users/.htpasswd");
    let sam = basic(SHA_USER.0, SHA_USER.1);
    assert_eq!(challenge(&url, &[("authorization", &sam)]).await.0, 200);

    // `sam` leaves, `zoe` arrives (`{SHA}` of "zoe-pw").
    std::fs::write(
        &file,
        format!(
            "{}:{}\nzoe:{{SHA}}{}\n",
            APR1_USER.0,
            APR1_USER.2,
            sha1_base64("zoe-pw")
        ),
    )
    .unwrap();
    let zoe = basic("zoe", "zoe-pw");
    eventually(std::time::Duration::from_secs(10), || async {
        match challenge(&url, &[("authorization", &zoe)]).await.0 {
            200 => Ok(()),
            other => Err(format!("zoe got {other}")),
        }
    })
    .await;
    assert_eq!(challenge(&url, &[("authorization", &sam)]).await.0, 401);

    // A broken file is refused; the last good users stay.
    std::fs::write(&file, "zoe:plaintext-password\n").unwrap();
    s.proxy.wait_log("htpasswd file not used", 0).await;
    assert_eq!(challenge(&url, &[("authorization", &zoe)]).await.0, 200);
    assert!(!s.proxy.log().contains("plaintext-password"));
}

fn sha1_base64(password: &str) -> String {
    use base64::Engine;
    use sha1::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(password.as_bytes()))
}

/// The median time of `n` GETs of `url` with `headers`, each expected to answer `status`.
async fn median_latency(url: &str, headers: &[(&str, &str)], status: u16, n: usize) -> f64 {
    let mut took = Vec::new();
    for _ in 0..n {
        #[expect(clippy::disallowed_methods, reason = "latency is wall time")]
        let start = std::time::Instant::now();
        assert_eq!(challenge(url, headers).await.0, status, "{url}");
        took.push(start.elapsed().as_secs_f64());
    }
    took.sort_by(f64::total_cmp);
    took[n / 2]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_wrong_bcrypt_passwords_stalls_neither_other_routes_nor_known_callers() {
    let s = basic_auth_proxy(10).await;
    let strict = s.proxy.url(s.port, "/strict/x");
    let open = s.proxy.url(s.port, "/open/x");
    let good = basic("bea", BCRYPT_PASSWORD);
    // Verified once, the pair is cached: later requests skip bcrypt.
    assert_eq!(challenge(&strict, &[("authorization", &good)]).await.0, 200);
    let baseline = median_latency(&open, &[], 200, 20).await;
    let known_baseline = median_latency(&strict, &[("authorization", &good)], 200, 20).await;

    // 32 callers send wrong passwords until the measurements are done.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..32)
        .map(|i| {
            let (url, stop) = (strict.clone(), stop.clone());
            let wrong = basic("bea", &format!("wrong-{i}"));
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    statuses.push(challenge(&url, &[("authorization", &wrong)]).await.0);
                }
                statuses
            })
        })
        .collect();
    // Under way: the first wrong passwords were refused.
    eventually(std::time::Duration::from_secs(10), || async {
        let refused = s
            .proxy
            .metric(
                "agentgateway_requests_total",
                &[r#"route="strict""#, r#"reason="Unauthenticated""#],
            )
            .await;
        if refused >= 2.0 {
            Ok(())
        } else {
            Err(format!("{refused} refused"))
        }
    })
    .await;
    let during = median_latency(&open, &[], 200, 20).await;
    let known_during = median_latency(&strict, &[("authorization", &good)], 200, 20).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut statuses = Vec::new();
    for f in flood {
        statuses.extend(f.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&401), "{statuses:?}");
    let (open_ratio, known_ratio) = (during / baseline, known_during / known_baseline);
    println!(
        "flood: open route median x{open_ratio:.1}, cached caller median x{known_ratio:.1}; {} wrong passwords refused, {} turned away busy",
        statuses.iter().filter(|s| **s == 401).count(),
        statuses.iter().filter(|s| **s == 503).count()
    );
    assert!(open_ratio < 20.0, "open route slowed x{open_ratio:.1}");
    assert!(known_ratio < 20.0, "cached caller slowed x{known_ratio:.1}");
}

/// A client whose every request carries `authorization` (or none).
fn client_with(authorization: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(value) = authorization {
        headers.insert(reqwest::header::AUTHORIZATION, value.parse().unwrap());
    }
    tollgate_tests::http_builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_session_belongs_to_the_api_key_or_user_that_opened_it() {
    use tollgate_tests::mcp::McpClient;
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join(".htpasswd"), htpasswd(4)).unwrap();
    let port = free_port();
    let base = tollgate_tests::mcp::config(port, &["one"], "", "");
    let policy = |name: &str, policy: &str| {
        let route = base.split("  - routes:\n").nth(1).unwrap();
        route.replacen(
            "    - name: mcp\n",
            &format!(
                "    - name: {name}\n      matches: [{{path: {{pathPrefix: /{name}}}}}]\n      policies:\n        {policy}\n"
            ),
            1,
        )
    };
    let config = format!(
        "{}  - routes:\n{}{}",
        base.split("  - routes:\n").next().unwrap(),
        policy("keyed", "apiKey: {keys: [{key: key-one}, {key: key-two}]}"),
        policy("basic", "basicAuth: {htpasswd: {file: .htpasswd}}"),
    );
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        cwd: Some(cwd.path()),
        ..Default::default()
    });
    proxy.wait_ready().await;
    let ann = basic(APR1_USER.0, APR1_USER.1);
    let sam = basic(SHA_USER.0, SHA_USER.1);
    for (route, owner, others) in [
        ("keyed", "Bearer key-one", ["Bearer key-two", ""]),
        ("basic", ann.as_str(), [sam.as_str(), ""]),
    ] {
        let url = proxy.url(port, &format!("/{route}"));
        let mut opener = McpClient::with_http(&url, client_with(Some(owner)));
        let answer = opener.initialize().await;
        assert!(answer.get("result").is_some(), "{route}: {answer}");
        assert!(!opener.tool_names().await.is_empty());
        // Another identity, or none, does not find the session: 404, as for an unknown one.
        for other in others {
            let mut intruder =
                McpClient::with_http(&url, client_with(Some(other).filter(|o| !o.is_empty())));
            intruder.session = opener.session.clone();
            let resp = intruder
                .post(&serde_json::json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
                .await;
            assert_eq!(resp.status(), 404, "{route}: {other:?}");
        }
    }
}
