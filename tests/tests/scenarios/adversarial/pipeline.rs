//! Attacks on the request pipeline: paths, headers, connections.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate_tests::{FakeUpstream, Proxy, free_port};

/// Sends `head` (request line and headers, without the blank line) as written, on its own
/// connection, and returns the status and body of the answer. A raw socket, because HTTP
/// clients normalise what these attacks depend on.
async fn raw(port: u16, head: &str) -> (u16, String) {
    try_raw(port, head)
        .await
        .unwrap_or_else(|e| panic!("no HTTP answer: {e}"))
}

/// [`raw`], with an error when no HTTP answer comes back.
async fn try_raw(port: u16, head: &str) -> Result<(u16, String), String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("{head}\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer))
        .await
        .map_err(|_| "no answer within 10s".to_string())?
        .map_err(|e| e.to_string())?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {answer:?}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
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

#[tokio::test(flavor = "multi_thread")]
async fn client_forwarded_for_is_replaced_unless_hops_are_trusted() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let proxy = Proxy::start(&super::super::simple_config(port, &up.authority())).await;
    let forwarded = |up: &FakeUpstream| {
        last_headers(up)["x-forwarded-for"]
            .to_str()
            .unwrap()
            .to_string()
    };
    let spoofed = "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6, 1.2.3.4";
    assert_eq!(raw(port, spoofed).await.0, 200);
    assert_eq!(forwarded(&up), "127.0.0.1");
    // One trusted proxy in front: the entry it appended is kept, nothing before it.
    let old = proxy.version().await;
    proxy.write_config(&format!(
        "frontendPolicies:\n  http:\n    xffNumTrustedHops: 1\n{}",
        super::super::simple_config(port, &up.authority())
    ));
    proxy.wait_version_change(&old).await;
    assert_eq!(raw(port, spoofed).await.0, 200);
    assert_eq!(forwarded(&up), "1.2.3.4, 127.0.0.1");
}

/// Whether the proxy closes `conn` within `within` (reading and dropping what it sends).
async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_half_sent_and_idle_connections_are_closed() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let _proxy = Proxy::start(&format!(
        "frontendPolicies:\n  http:\n    headerReadTimeout: 1s\n    http1IdleTimeout: 1s\n    http2IdleTimeout: 1s\n{}",
        super::super::simple_config(port, &up.authority())
    ))
    .await;
    // The h2c client never answers the PING of the graceful GOAWAY: it is dropped after the
    // proxy's 5 s grace.
    let within = Duration::from_secs(10);
    // Nothing sent; too little to tell the protocol; a head that never ends.
    let mut silent = connect(port).await;
    let mut undecided = connect(port).await;
    undecided.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    let mut half = connect(port).await;
    half.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: aaaa")
        .await
        .unwrap();
    // An HTTP/1.1 keep-alive connection after its request.
    let mut kept = connect(port).await;
    kept.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // An h2c connection after its request: preface, empty SETTINGS, then HEADERS (stream 1,
    // END_STREAM | END_HEADERS) with `GET`, `/`, `http` from HPACK's static table and
    // `:authority: a`.
    let mut h2 = connect(port).await;
    let mut frames =
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00".to_vec();
    frames.extend_from_slice(b"\x00\x00\x06\x01\x05\x00\x00\x00\x01\x82\x84\x86\x41\x01a");
    h2.write_all(&frames).await.unwrap();
    for (name, conn) in [
        ("silent", &mut silent),
        ("undecided", &mut undecided),
        ("half-sent head", &mut half),
        ("idle HTTP/1.1", &mut kept),
        ("idle h2c", &mut h2),
    ] {
        assert!(
            closed_within(conn, within).await,
            "{name} connection still open"
        );
    }
    assert_eq!(
        up.requests().len(),
        2,
        "the two complete requests were served"
    );
    // A response in progress is not idle: a stream longer than the idle timeout completes.
    let sse = tollgate_tests::get(format!("http://127.0.0.1:{port}/sse?events=3&gap_ms=800"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(sse.matches("data: event").count(), 3, "{sse}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_per_bind_are_capped() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let _proxy = Proxy::start(&format!(
        "frontendPolicies:\n  tcp:\n    maxConnections: 2\n{}",
        super::super::simple_config(port, &up.authority())
    ))
    .await;
    let first = connect(port).await;
    let _second = connect(port).await;
    // Let the proxy accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut third = connect(port).await;
    assert!(
        closed_within(&mut third, Duration::from_secs(2)).await,
        "a connection past the limit is closed at once"
    );
    drop(first);
    tollgate_tests::eventually(Duration::from_secs(5), || async {
        match try_raw(port, "GET /x HTTP/1.1\r\nHost: a").await {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}
