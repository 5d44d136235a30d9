//! Local rate limits through a real proxy: the walkthrough's token limit and 429 details,
//! reloads that never refill, the admin API and metrics. (Exactness under concurrency and
//! CORS on rejections are tested in-process: data-plane `proxy::tests`.)

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_tests::proxy::ProxyOptions;
use tollgate_tests::{
    FakeLlm, FakeUpstream, Kind, Proxy, eventually, free_port, seed_with_overrides, with_overrides,
    workspace_root,
};

fn limited(port: u16, upstream: &str, extra_route: &str, max: u64) -> String {
    format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: limited\n      policies:\n        cors: {{allowOrigins: [\"http://ui.test\"], allowHeaders: [\"*\"], allowMethods: [GET, POST]}}\n        localRateLimit:\n        - {{maxTokens: {max}, tokensPerFill: 1, fillInterval: 1h, type: requests}}\n      backends: [{{host: \"{upstream}\"}}]\n{extra_route}"
    )
}

async fn walkthrough(config: String, octet: u8, path: &str, body: Value) {
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, octet)),
        env: vec![("OPENAI_API_KEY", "sk-o"), ("ANTHROPIC_API_KEY", "sk-a")],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let client = tollgate_tests::http();
    let first = client
        .post(proxy.url(3000, path))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit"], "1");
    let _ = first.bytes().await;
    let second = client
        .post(proxy.url(3000, path))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["content-type"], "text/plain");
    assert_eq!(second.headers()["x-ratelimit-remaining"], "0");
    let reset: u64 = second.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=100).contains(&reset), "reset {reset}");
    assert_eq!(
        second.headers()["retry-after"].to_str().unwrap(),
        reset.to_string()
    );
    assert_eq!(second.text().await.unwrap(), "rate limit exceeded");
    assert_eq!(
        proxy
            .metric(
                "agentgateway_requests_total",
                &["reason=\"RateLimit\"", "status=\"429\""]
            )
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn walkthrough_openai_token_limit() {
    let openai = FakeLlm::start(Kind::OpenAi, Some("sk-o")).await;
    let config = seed_with_overrides("local-rate-limit.yaml", &openai.authority(), "unused:1");
    let body =
        json!({"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Hello!"}]});
    walkthrough(config, 31, "/v1/chat/completions", body).await;
    assert_eq!(
        openai.seen().len(),
        1,
        "the rejected request never reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn walkthrough_anthropic_token_limit_fixed_copy() {
    let anthropic = FakeLlm::start(Kind::Anthropic, Some("sk-a")).await;
    let path = workspace_root().join("examples/local-rate-limit-anthropic.yaml");
    let config = with_overrides(&path, "unused:1", &anthropic.authority());
    let body = json!({"model": "x", "max_tokens": 50, "messages": [{"role": "user", "content": "Hello!"}]});
    walkthrough(config, 32, "/v1/messages", body).await;
    assert_eq!(anthropic.seen().len(), 1);
}

async fn status(proxy: &Proxy, port: u16) -> u16 {
    tollgate_tests::get(proxy.url(port, "/x"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn reloads_never_refill_buckets() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let other = format!(
        "    - name: other\n      matches: [{{path: {{pathPrefix: /other}}}}]\n      backends: [{{host: \"{}\"}}]\n",
        up.authority()
    );
    let proxy = Proxy::start(&limited(port, &up.authority(), "", 2)).await;
    assert_eq!(status(&proxy, port).await, 200);
    assert_eq!(status(&proxy, port).await, 200);
    assert_eq!(status(&proxy, port).await, 429);

    // An unrelated edit: still limited.
    let v = proxy.version().await;
    proxy.write_config(&limited(port, &up.authority(), &other, 2));
    let v = proxy.wait_version_change(&v).await;
    assert_eq!(status(&proxy, port).await, 429);

    // A larger maximum keeps the level (0): still limited, and the admin API shows it.
    proxy.write_config(&limited(port, &up.authority(), &other, 5));
    let v = proxy.wait_version_change(&v).await;
    assert_eq!(status(&proxy, port).await, 429);
    let buckets = proxy.admin_json("/api/ratelimits").await;
    let b = &buckets["buckets"][0];
    assert_eq!(
        (
            b["route"].as_str(),
            b["maxTokens"].as_u64(),
            b["level"].as_u64()
        ),
        (Some("limited"), Some(5), Some(0))
    );
    assert_eq!(
        (
            b["listener"].as_str(),
            b["position"].as_u64(),
            b["type"].as_str()
        ),
        (Some("listener0"), Some(0), Some("requests"))
    );
    assert_eq!(b["fillInterval"], "1h");
    assert!(b["secondsToRefill"].as_u64().unwrap() <= 3600);
    let gauge = proxy
        .metric(
            "agentgateway_ratelimit_bucket_tokens",
            &["route=\"limited\"", "type=\"requests\""],
        )
        .await;
    assert_eq!(gauge, 0.0);

    // The route removed: its bucket is gone.
    let only_other = format!("binds:\n- port: {port}\n  listeners:\n  - routes:\n{other}");
    proxy.write_config(&only_other);
    proxy.wait_version_change(&v).await;
    assert_eq!(
        proxy.admin_json("/api/ratelimits").await["buckets"],
        json!([])
    );
    assert!(
        !proxy
            .metrics()
            .await
            .contains("agentgateway_ratelimit_bucket_tokens{")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_limits_debit_actual_usage_also_when_the_client_leaves() {
    let anthropic = FakeLlm::start(Kind::Anthropic, None).await;
    anthropic
        .knobs()
        .delay_ms
        .store(0, std::sync::atomic::Ordering::Relaxed);
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: llm\n      backends:\n      - ai: {{name: a, provider: {{anthropic: {{model: m}}}}, hostOverride: \"{}\"}}\n      policies:\n        localRateLimit: [{{maxTokens: 1000, tokensPerFill: 1, fillInterval: 1h, type: tokens}}]\n",
        anthropic.authority()
    );
    let proxy = Proxy::start(&config).await;
    let url = proxy.url(port, "/v1/chat/completions");
    let client = tollgate_tests::http();
    let level = || async {
        proxy.admin_json("/api/ratelimits").await["buckets"][0]["level"]
            .as_u64()
            .unwrap()
    };

    // "one two three": 3 input tokens; answer "anthropic says: one two three": 5 output.
    let r = client
        .post(&url)
        .json(&json!({"messages": [{"role": "user", "content": "one two three"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(level().await, 1000 - 8);

    // A stream the client abandons after its first chunk is still debited.
    let words = "w ".repeat(200);
    let r = client
        .post(&url)
        .json(&json!({"stream": true, "messages": [{"role": "user", "content": words}]}))
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    let _ = body.next().await;
    drop(body);
    eventually(Duration::from_secs(5), || async {
        let l = level().await;
        if l <= 992 - 200 {
            Ok(())
        } else {
            Err(format!("level {l}"))
        }
    })
    .await;
}

/// `localRateLimit[].key` (Tollgate's extension): one bucket per caller, exact under
/// concurrency, bounded with new callers overflowing into one shared bucket, listed by the
/// admin API (identity names shown, other values hashed), kept across reloads.
#[tokio::test(flavor = "multi_thread")]
async fn per_caller_buckets_are_exact_bounded_and_kept_across_reloads() {
    use super::keys::TestKey;
    let key = TestKey::ec("k");
    let upstream = FakeUpstream::start("u").await;
    let port = free_port();
    let jwks = super::keys::jwks(&[&key]);
    let config = |max: u64| {
        format!(
            "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: keyed\n      policies:\n        jwtAuth: {{issuer: idp, jwks: '{jwks}'}}\n        localRateLimit:\n        - {{maxTokens: {max}, tokensPerFill: 1, fillInterval: 1h, key: jwt.sub, maxKeys: 2}}\n        - {{maxTokens: 1000, tokensPerFill: 1, fillInterval: 1h, key: source.address}}\n      backends: [{{host: \"{}\"}}]\n",
            upstream.authority()
        )
    };
    let proxy = Proxy::start(&config(3)).await;
    let token = |sub: &str| {
        key.token(&json!({"iss": "idp", "sub": sub,
            "exp": jsonwebtoken::get_current_timestamp() + 600}))
    };
    let burst = |bearer: Option<String>| {
        let url = proxy.url(port, "/r");
        async move {
            let requests = (0..10).map(|_| {
                let mut req = tollgate_tests::http().get(&url);
                if let Some(t) = &bearer {
                    req = req.bearer_auth(t);
                }
                async move { req.send().await.unwrap().status().as_u16() }
            });
            let codes = futures_util::future::join_all(requests).await;
            codes.iter().filter(|c| **c == 200).count()
        }
    };
    // Concurrent bursts: each caller gets exactly its own budget.
    let (alice, bob, anonymous) = tokio::join!(
        burst(Some(token("alice"))),
        burst(Some(token("bob"))),
        burst(None)
    );
    assert_eq!(
        (alice, bob, anonymous),
        (3, 3, 3),
        "anonymous callers share one bucket"
    );
    // Two callers have buckets (maxKeys 2), neither full: a third overflows into a shared one.
    assert_eq!(burst(Some(token("carol"))).await, 3);
    assert_eq!(
        burst(Some(token("dave"))).await,
        0,
        "carol spent the overflow bucket"
    );

    let listed = proxy.admin_json("/api/ratelimits").await;
    let keys: Vec<&str> = listed["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["position"] == 0)
        .map(|b| b["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["<null>", "<overflow>", "alice", "bob"]);
    let addresses: Vec<&str> = listed["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["position"] == 1 && b["key"].as_str().unwrap().starts_with("sha256:"))
        .map(|b| b["key"].as_str().unwrap())
        .collect();
    assert_eq!(addresses.len(), 1, "{listed}");
    assert!(
        !listed.to_string().contains("127.0.0.1"),
        "addresses are hashed: {listed}"
    );
    assert_eq!(
        proxy
            .metric(
                "tollgate_ratelimit_keys",
                &["route=\"keyed\"", "position=\"0\""]
            )
            .await,
        2.0
    );

    // A reload with a larger bucket keeps each caller's level: alice stays spent.
    let version = proxy.version().await;
    proxy.replace_config(&config(4));
    proxy.wait_version_change(&version).await;
    assert_eq!(burst(Some(token("alice"))).await, 0);
    assert_eq!(
        burst(Some(token("erin"))).await,
        0,
        "the overflow bucket is spent too"
    );
}
