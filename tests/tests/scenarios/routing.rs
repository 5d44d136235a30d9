//! Requests through a real proxy: matching, rewrites, headers, streaming, retries, admin.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tollgate_tests::{FakeUpstream, Proxy, free_port, proxy::ProxyOptions};

async fn json(resp: reqwest::Response) -> Value {
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_by_precedence_and_rewrites() {
    let a = FakeUpstream::start("a").await;
    let b = FakeUpstream::start("b").await;
    let port = free_port();
    let config = format!(
        r#"
binds:
- port: {port}
  listeners:
  - routes:
    - name: fallback
      matches: [{{path: {{pathPrefix: /}}, method: GET}}]
      backends: [{{host: "{a}"}}]
    - name: api
      matches: [{{path: {{pathPrefix: /api}}}}]
      policies:
        urlRewrite: {{path: {{prefix: /v2}}}}
        requestHeaderModifier:
          set: [{{name: x-set, value: s}}]
          add: [{{name: x-added, value: a}}]
          remove: [x-drop]
        responseHeaderModifier:
          set: [{{name: x-from-gateway, value: "yes"}}]
      backends: [{{host: "{b}"}}]
    - name: exact
      matches: [{{path: {{exact: /api/exact}}, method: GET}}]
      policies:
        urlRewrite: {{path: {{full: /replaced}}}}
      backends: [{{host: "{b}"}}]
    - name: by-header
      matches: [{{path: {{regex: "/r/[0-9]+"}}, headers: [{{name: x-tier, value: {{exact: gold}}}}]}}]
      backends: [{{host: "{b}"}}]
"#,
        a = a.authority(),
        b = b.authority()
    );
    let proxy = Proxy::start(&config).await;
    let client = tollgate_tests::http();

    let r = client
        .get(proxy.url(port, "/api/items?x=1"))
        .header("x-drop", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-from-gateway"], "yes");
    let body = json(r).await;
    assert_eq!(body["upstream"], "b");
    assert_eq!(body["path"], "/v2/items?x=1");
    assert_eq!(body["headers"]["x-set"], "s");
    assert_eq!(body["headers"]["x-added"], "a");
    assert!(body["headers"].get("x-drop").is_none());
    assert!(
        body["headers"]["x-forwarded-for"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1")
    );

    let body = json(
        client
            .get(proxy.url(port, "/api/exact"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["path"], "/replaced");
    // The exact route is GET-only; a POST falls back to the prefix route.
    let body = json(
        client
            .post(proxy.url(port, "/api/exact"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["path"], "/v2/exact");
    // Segment-aware prefix: /apix is not under /api.
    let body = json(client.get(proxy.url(port, "/apix")).send().await.unwrap()).await;
    assert_eq!(body["upstream"], "a");
    // Any prefix outranks a regex (Gateway API), so only a POST reaches the regex route.
    let body = json(
        client
            .get(proxy.url(port, "/r/42"))
            .header("x-tier", "gold")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["upstream"], "a");
    let body = json(
        client
            .post(proxy.url(port, "/r/42"))
            .header("x-tier", "gold")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["upstream"], "b");
    let r = client.post(proxy.url(port, "/r/42")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn unmatched_path_is_404_route_not_found() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - matches: [{{path: {{exact: /only}}}}]\n      backends: [{{host: \"{}\"}}]\n",
        up.authority()
    );
    let proxy = Proxy::start(&config).await;
    let r = tollgate_tests::get(proxy.url(port, "/other"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), "route not found");
    assert!(up.requests().is_empty());
    let reason = proxy
        .metric(
            "agentgateway_requests_total",
            &["reason=\"NotFound\"", "status=\"404\""],
        )
        .await;
    assert_eq!(reason, 1.0);
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
async fn retries_listed_codes_with_attempt_header() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: r\n      policies: {{retry: {{attempts: 3, codes: [503]}}}}\n      backends: [{{host: \"{}\"}}]\n",
        up.authority()
    );
    let proxy = Proxy::start(&config).await;
    let r = tollgate_tests::http()
        .post(proxy.url(port, "/x"))
        .header("x-fake-status", "503")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let seen = up.requests();
    assert_eq!(seen.len(), 3, "3 total attempts");
    assert!(seen[0].headers.get("x-retry-attempt").is_none());
    assert_eq!(seen[1].headers["x-retry-attempt"], "1");
    assert_eq!(seen[2].headers["x-retry-attempt"], "2");
    assert!(seen.iter().all(|r| &r.body[..] == b"payload"));
    assert_eq!(
        proxy
            .metric("agentgateway_retries_total", &["route=\"r\""])
            .await,
        2.0
    );
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
