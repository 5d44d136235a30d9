//! Attacks on the request pipeline: paths, headers, connections.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate_tests::{FakeUpstream, Proxy, free_port};

/// Sends `head` (request line and headers, without the blank line) as written, on its own
/// connection, and returns the status and body of the answer. A raw socket, because HTTP
/// clients normalise what these attacks depend on.
async fn raw(port: u16, head: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!("{head}\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer))
        .await
        .expect("the proxy answers")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// A route config on `port` with `routes` (YAML list items, indented for `routes:`).
fn config(port: u16, routes: &str) -> String {
    format!("binds:\n- port: {port}\n  listeners:\n  - routes:\n{routes}")
}

/// The headers the upstream saw on its last request.
fn last_headers(up: &FakeUpstream) -> http::HeaderMap {
    up.requests().pop().expect("a request upstream").headers
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_header_cannot_remove_a_header_the_gateway_sets() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let routes = format!(
        "    - policies:\n        requestHeaderModifier:\n          set: [{{name: x-internal-key, value: from-gateway}}]\n      backends: [{{host: \"{}\"}}]\n",
        up.authority()
    );
    let _proxy = Proxy::start(&config(port, &routes)).await;
    let (status, _) = raw(
        port,
        "GET /x HTTP/1.1\r\nHost: a\r\nConnection: x-internal-key\r\nX-Internal-Key: forged",
    )
    .await;
    assert_eq!(status, 200);
    let headers = last_headers(&up);
    let seen: Vec<_> = headers.get_all("x-internal-key").iter().collect();
    assert_eq!(seen, ["from-gateway"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_authorization_is_not_forwarded() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let _proxy = Proxy::start(&super::super::simple_config(port, &up.authority())).await;
    let (status, _) = raw(
        port,
        "GET /x HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic c2VjcmV0OnNlY3JldA==",
    )
    .await;
    assert_eq!(status, 200);
    assert!(last_headers(&up).get("proxy-authorization").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn host_header_does_not_win_over_the_absolute_uri() {
    let public = FakeUpstream::start("public").await;
    let internal = FakeUpstream::start("internal").await;
    let port = free_port();
    let routes = format!(
        "    - name: internal\n      hostnames: [internal.example]\n      backends: [{{host: \"{}\"}}]\n    - name: public\n      hostnames: [public.example]\n      backends: [{{host: \"{}\"}}]\n",
        internal.authority(),
        public.authority()
    );
    let _proxy = Proxy::start(&config(port, &routes)).await;
    let (status, body) = raw(
        port,
        "GET http://public.example/x HTTP/1.1\r\nHost: internal.example",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(public.requests().len(), 1);
    assert!(internal.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn error_bodies_do_not_reveal_upstream_addresses() {
    let closed = format!("127.0.0.1:{}", free_port());
    let port = free_port();
    let routes = format!("    - name: hidden\n      backends: [{{host: \"{closed}\"}}]\n");
    let _proxy = Proxy::start(&config(port, &routes)).await;
    let (status, body) = raw(port, "GET /x HTTP/1.1\r\nHost: a").await;
    assert_eq!(status, 503);
    assert!(body.contains("route hidden"), "{body}");
    assert!(!body.contains(&closed), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_are_normalised_before_route_match() {
    let public = FakeUpstream::start("public").await;
    let admin = FakeUpstream::start("admin").await;
    let port = free_port();
    let routes = format!(
        "    - name: public\n      matches: [{{path: {{pathPrefix: /public}}}}]\n      backends: [{{host: \"{}\"}}]\n    - name: admin\n      matches: [{{path: {{pathPrefix: /admin}}}}]\n      backends: [{{host: \"{}\"}}]\n",
        public.authority(),
        admin.authority()
    );
    let _proxy = Proxy::start(&config(port, &routes)).await;
    // Dot segments, plain or escaped, resolve before the match: the `admin` route (and its
    // policies) gets them, with the normalised path.
    for path in ["/public/../admin/x", "/public/%2e%2E/admin/x"] {
        let (status, body) = raw(port, &format!("GET {path} HTTP/1.1\r\nHost: a")).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let seen: Vec<String> = admin.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(seen, ["/admin/x", "/admin/x"]);
    // An escaped slash may be a separator to the upstream: refused, naming the problem.
    let (status, body) = raw(port, "GET /public/..%2fadmin/x HTTP/1.1\r\nHost: a").await;
    assert_eq!(status, 400);
    assert!(body.contains("escaped slash"), "{body}");
    // Unreserved characters are decoded for the upstream too.
    let (status, _) = raw(port, "GET /public/%61bc HTTP/1.1\r\nHost: a").await;
    assert_eq!(status, 200);
    let seen: Vec<String> = public.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(seen, ["/public/abc"]);
}
