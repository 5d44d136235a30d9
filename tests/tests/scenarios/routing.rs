//! Requests through a real proxy process: streaming, large bodies, the admin API.
//! (Matching, rewrites and retries are tested in-process: data-plane `proxy::tests`.)

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tollgate_tests::{FakeUpstream, Proxy, free_port, proxy::ProxyOptions};

async fn json(resp: reqwest::Response) -> Value {
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_flows_event_by_event() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let proxy = Proxy::start(&super::simple_config(port, &up.authority())).await;
    #[expect(
        clippy::disallowed_methods,
        reason = "the test measures a timeout in wall time"
    )]
    let started = Instant::now();
    let resp = tollgate_tests::get(proxy.url(port, "/sse?events=3&gap_ms=700"))
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert_eq!(&first[..], b"data: event 0\n\n");
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let total = started.elapsed();
    assert_eq!(
        String::from_utf8(rest).unwrap(),
        "data: event 1\n\ndata: event 2\n\n"
    );
    // The first event arrived well before the stream (1.4 s of gaps) ended: not buffered.
    assert!(
        total - first_at >= Duration::from_millis(1200),
        "first {first_at:?}, total {total:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn large_bodies_stream_through() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let proxy = Proxy::start(&super::simple_config(port, &up.authority())).await;
    let body = vec![b'x'; 5 * 1024 * 1024];
    let r = tollgate_tests::http()
        .post(proxy.url(port, "/upload"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["bodyLength"], 5 * 1024 * 1024);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_shows_config_without_secrets() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - policies:\n        backendAuth: {{key: $UPSTREAM_TOKEN}}\n      backends: [{{host: \"{}\"}}]\n",
        up.authority()
    );
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        env: vec![("UPSTREAM_TOKEN", "super-secret-value")],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let body = json(tollgate_tests::get(proxy.url(port, "/")).await.unwrap()).await;
    assert_eq!(
        body["headers"]["authorization"],
        "Bearer super-secret-value"
    );

    let text = tollgate_tests::get(format!("http://{}/api/config", proxy.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("super-secret-value"), "{text}");
    let cfg: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        cfg["config"]["binds"][0]["listeners"][0]["routes"][0]["policies"]["backendAuth"]["key"],
        "$UPSTREAM_TOKEN"
    );
    assert!(cfg["source"].as_str().unwrap().ends_with("config.yaml"));
    assert_eq!(cfg["version"].as_str().unwrap().len(), 16);
    assert!(cfg["appliedAt"].as_str().unwrap().ends_with('Z'));
    assert!(!proxy.log().contains("super-secret-value"));

    let ok = tollgate_tests::get(format!("http://{}/healthz", proxy.admin))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let labels = [
        "route=\"route0\"",
        "listener=\"listener0\"",
        "gateway=\"default\"",
        "status=\"200\"",
        "method=\"GET\"",
        "reason=\"Upstream\"",
    ];
    assert_eq!(
        proxy.metric("agentgateway_requests_total", &labels).await,
        1.0
    );
    assert_eq!(
        proxy
            .metric("agentgateway_request_duration_seconds_count", &labels)
            .await,
        1.0
    );
}

/// agentgateway's `directResponse` routes (its `traffic-http` example): answered by the gateway
/// with no backend, after the route's authorization.
#[tokio::test(flavor = "multi_thread")]
async fn direct_responses_answer_without_a_backend_after_authorization() {
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: direct-response\n      matches: [{{path: {{pathPrefix: /direct}}}}]\n      policies:\n        directResponse: {{body: \"hello!\", status: 200}}\n        responseHeaderModifier: {{set: {{x-served-by: gateway}}}}\n    - name: ip-rules\n      matches: [{{path: {{pathPrefix: /ips}}}}]\n      policies:\n        authorization:\n          rules:\n          - |\n            cidr(\"10.0.0.0/8\").containsIP(source.address)\n        directResponse: {{body: \"hello!\", status: 200}}\n"
    );
    let proxy = Proxy::start(&config).await;
    let resp = tollgate_tests::get(proxy.url(port, "/direct/x"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(
        resp.headers()["x-served-by"],
        "gateway",
        "the route's modifier applies"
    );
    assert_eq!(resp.text().await.unwrap(), "hello!");
    // 127.0.0.1 is outside 10.0.0.0/8: the rule refuses before the direct response.
    let resp = tollgate_tests::get(proxy.url(port, "/ips")).await.unwrap();
    assert_eq!(resp.status(), 403);
}

/// The README's first command: `examples/quickstart.yaml`, unchanged, with no key and no
/// network, answers on every route: the welcome text, an LLM error that says what to set, and
/// the Playground.
#[tokio::test(flavor = "multi_thread")]
async fn the_quickstart_answers_on_every_route_without_keys() {
    let path = tollgate_tests::workspace_root().join("examples/quickstart.yaml");
    let config = std::fs::read_to_string(path).unwrap();
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 60)),
        env: vec![("OPENAI_API_KEY", "")],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let welcome = tollgate_tests::get(proxy.url(3000, "/")).await.unwrap();
    assert_eq!(welcome.status(), 200);
    assert!(
        welcome
            .text()
            .await
            .unwrap()
            .contains("Tollgate is running")
    );
    let llm = tollgate_tests::http()
        .post(proxy.url(3000, "/v1/chat/completions"))
        .json(&serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(llm.status(), 503);
    let text = llm.text().await.unwrap();
    assert!(text.contains("set OPENAI_API_KEY"), "{text}");
    let ui = tollgate_tests::get(format!("http://{}/ui", proxy.admin))
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
}
