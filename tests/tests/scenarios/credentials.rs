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
    let cases: [(&str, Vec<(&str, String)>, &str); 6] = [
        ("/strict/x", vec![], "unauthorized: missing API key"),
        (
            "/strict/x",
            vec![("authorization", format!("Bearer {wrong}"))],
            "unauthorized: invalid API key",
        ),
        (
            "/strict/x",
            vec![(
                "authorization",
                format!("Bearer {}", sha256_hex(HASHED_KEY)),
            )],
            "unauthorized: invalid API key",
        ),
        (
            "/optional/x",
            vec![("authorization", format!("Bearer {wrong}"))],
            "unauthorized: invalid API key",
        ),
        (
            "/header/x",
            vec![("authorization", format!("Bearer {ENV_KEY}"))],
            "unauthorized: missing API key",
        ),
        ("/query/x?api_key=", vec![], "unauthorized: missing API key"),
    ];
    for (path, headers, expected) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
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
