//! Matching, rewrites, header modifiers and retries.

use super::harness::{Harness, PORT, Upstream, request};

#[tokio::test]
async fn routes_by_precedence_and_rewrites() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Harness::new(&format!(
        r#"
binds:
- port: {PORT}
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
        a = a.authority,
        b = b.authority
    ));

    let r = gw
        .send(request("GET", "/api/items?x=1", &[("x-drop", "1")], ""))
        .await;
    assert_eq!(r.header("x-from-gateway"), "yes");
    let body = r.json();
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

    assert_eq!(gw.get("/api/exact").await.json()["path"], "/replaced");
    // The exact route is GET-only; a POST falls back to the prefix route.
    let body = gw.send(request("POST", "/api/exact", &[], "")).await.json();
    assert_eq!(body["path"], "/v2/exact");
    // Segment-aware prefix: /apix is not under /api.
    assert_eq!(gw.get("/apix").await.json()["upstream"], "a");
    // Any prefix outranks a regex (Gateway API), so only a POST reaches the regex route.
    let gold = [("x-tier", "gold")];
    let body = gw.send(request("GET", "/r/42", &gold, "")).await.json();
    assert_eq!(body["upstream"], "a");
    let body = gw.send(request("POST", "/r/42", &gold, "")).await.json();
    assert_eq!(body["upstream"], "b");
    let r = gw.send(request("POST", "/r/42", &[], "")).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn unmatched_path_is_404_route_not_found() {
    let mut up = Upstream::start("u").await;
    let gw = Harness::new(&format!(
        "binds:\n- port: {PORT}\n  listeners:\n  - routes:\n    - matches: [{{path: {{exact: /only}}}}]\n      backends: [{{host: \"{}\"}}]\n",
        up.authority
    ));
    let r = gw.get("/other").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "route not found");
    assert!(up.requests().is_empty());
    let reason = gw.metric(
        "agentgateway_requests_total",
        &["reason=\"NotFound\"", "status=\"404\""],
    );
    assert_eq!(reason, 1.0);
}

#[tokio::test]
async fn retries_listed_codes_with_attempt_header() {
    let mut up = Upstream::start("u").await;
    let gw = Harness::new(&format!(
        "binds:\n- port: {PORT}\n  listeners:\n  - routes:\n    - name: r\n      policies: {{retry: {{attempts: 3, codes: [503]}}}}\n      backends: [{{host: \"{}\"}}]\n",
        up.authority
    ));
    let r = gw
        .send(request(
            "POST",
            "/x",
            &[("x-fake-status", "503")],
            "payload",
        ))
        .await;
    assert_eq!(r.status, 503);
    let seen = up.requests();
    assert_eq!(seen.len(), 3, "3 total attempts");
    assert!(seen[0].headers.get("x-retry-attempt").is_none());
    assert_eq!(seen[1].headers["x-retry-attempt"], "1");
    assert_eq!(seen[2].headers["x-retry-attempt"], "2");
    assert!(seen.iter().all(|r| &r.body[..] == b"payload"));
    assert_eq!(
        gw.metric("agentgateway_retries_total", &["route=\"r\""]),
        2.0
    );
}
