//! Attacks on the admin API, the Playground, telemetry and what they reveal.

use serde_json::json;
use tollgate_tests::{FakeLlm, FakeUpstream, Kind, Proxy, free_port};

use crate::scenarios::simple_config;

/// Finding 6: 300 made-up HTTP methods are one `OTHER` series, not 300.
#[tokio::test(flavor = "multi_thread")]
async fn made_up_methods_do_not_grow_metrics() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let proxy = Proxy::start(&simple_config(port, &up.authority())).await;
    let client = tollgate_tests::http();
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("X{i}").as_bytes()).unwrap();
        client
            .request(method, proxy.url(port, "/"))
            .send()
            .await
            .unwrap();
    }
    let metrics = proxy.metrics().await;
    assert!(
        !metrics.contains(r#"method="X1""#),
        "a made-up method is a label"
    );
    let other = proxy
        .metric("agentgateway_requests_total", &[r#"method="OTHER""#])
        .await;
    assert_eq!(other, 300.0);
    assert!(
        metrics.len() < 64 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
}

/// Finding 6: 300 made-up models keep the first 32 per route as labels, then `other`.
#[tokio::test(flavor = "multi_thread")]
async fn made_up_models_do_not_grow_metrics() {
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: chat\n      backends:\n      - ai: {{name: o, provider: {{openAI: {{}}}}, hostOverride: \"{}\"}}\n",
        openai.authority()
    );
    let proxy = Proxy::start(&config).await;
    let client = tollgate_tests::http();
    for i in 0..300 {
        let body = json!({"model": format!("made-up-{i}"), "messages": [{"role": "user", "content": "hi"}]});
        let r = client
            .post(proxy.url(port, "/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let metrics = proxy.metrics().await;
    let models: std::collections::HashSet<&str> = metrics
        .lines()
        .filter_map(|l| l.split("gen_ai_request_model=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(models.len(), 33, "32 models and `other`: {models:?}");
    assert!(models.contains("other") && !models.contains("made-up-299"));
    assert!(
        metrics.len() < 1024 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
}

/// Finding 12: a huge `fillInterval` is refused where it is written; before, the proxy took it
/// and `/metrics` and `/api/ratelimits` panicked for every route.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_fill_interval_is_refused_and_metrics_keep_working() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = |interval: &str| {
        format!(
            "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: all\n      policies:\n        localRateLimit:\n        - {{maxTokens: 5, tokensPerFill: 1, fillInterval: {interval}}}\n      backends:\n      - host: {}\n",
            up.authority()
        )
    };
    let proxy = Proxy::start(&config("1s")).await;
    let version = proxy.version().await;
    proxy.write_config(&config("100000000years"));
    proxy.wait_log("config.yaml:8:", 0).await;
    assert!(proxy.log().contains("at most 366d"), "{}", proxy.log());
    assert_eq!(proxy.version().await, version, "the bad config was applied");
    let r = tollgate_tests::get(proxy.url(port, "/")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        proxy
            .metrics()
            .await
            .contains("agentgateway_ratelimit_bucket_tokens")
    );
    let buckets = proxy.admin_json("/api/ratelimits").await;
    assert!(buckets.to_string().contains("\"all\""), "{buckets}");
}

/// Finding 12: CEL sees credential-like headers and query values as `<redacted>`, found by
/// pattern (`x-goog-api-key`, `mcp-session-id`, `x-amz-security-token`, `*-key`, `*-token`,
/// `?key=`, `?sessionId=`), so a logged field cannot leak them.
#[tokio::test(flavor = "multi_thread")]
async fn cel_fields_do_not_reveal_credentials() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = format!(
        "config:\n  logging:\n    format: json\n    fields:\n      add: {{uri: request.uri, pq: request.pathAndQuery, headers: request.headers}}\nbinds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: all\n      backends:\n      - host: {}\n",
        up.authority()
    );
    let proxy = Proxy::start(&config).await;
    let r = tollgate_tests::http()
        .get(proxy.url(port, "/p?key=leak-q1&sessionId=leak-q2&model=kept-m"))
        .header("x-goog-api-key", "leak-h1")
        .header("mcp-session-id", "leak-h2")
        .header("x-amz-security-token", "leak-h3")
        .header("x-custom-key", "leak-h4")
        .header("x-internal-token", "leak-h5")
        .header("x-client", "kept-h")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let log = tollgate_tests::eventually(std::time::Duration::from_secs(5), || async {
        let log = proxy.access_log();
        if log.contains("kept-h") {
            Ok(log)
        } else {
            Err(format!("no access log line yet: {log}"))
        }
    })
    .await;
    assert!(
        log.contains("kept-m") && log.contains("<redacted>"),
        "{log}"
    );
    assert!(!log.contains("leak-"), "a credential was logged: {log}");
}
