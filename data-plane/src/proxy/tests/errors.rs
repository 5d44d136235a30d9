//! Failing upstreams, timeouts and oversize bodies get a clear status and a body naming the
//! problem.

use bytes::Bytes;
use http::Request;
use http_body::Frame;
use http_body_util::StreamBody;

use super::harness::{Harness, PORT, Upstream, request};
use super::simple_config;

#[tokio::test]
async fn refused_upstream_is_503() {
    // A port that was just free: nothing accepts there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let gw = Harness::new(&simple_config(&dead));
    let r = gw.get("/").await;
    assert_eq!(r.status, 503);
    // The body names the route, never the address.
    let text = r.text();
    assert!(
        text.contains("upstream for route all is unreachable"),
        "{text}"
    );
    assert!(!text.contains(&dead), "{text}");
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let up = Upstream::start("u").await;
    let gw = Harness::new(&format!(
        "binds:\n- port: {PORT}\n  listeners:\n  - routes:\n    - name: per-try\n      matches: [{{path: {{pathPrefix: /try}}}}]\n      policies: {{timeout: {{backendRequestTimeout: 200ms}}}}\n      backends: [{{host: \"{a}\"}}]\n    - name: whole\n      policies: {{timeout: {{requestTimeout: 300ms}}}}\n      backends: [{{host: \"{a}\"}}]\n",
        a = up.authority
    ));
    // The upstream takes 3 s; each route's timeout answers first, naming itself.
    for (path, message) in [
        ("/try", "did not answer within 200ms"),
        ("/", "request did not complete within 300ms"),
    ] {
        let r = gw
            .send(request("GET", path, &[("x-fake-delay-ms", "3000")], ""))
            .await;
        assert_eq!(r.status, 504);
        assert!(r.text().contains(message), "{}", r.text());
    }
    assert_eq!(
        gw.metric("agentgateway_requests_total", &["reason=\"Timeout\""]),
        2.0
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let mut up = Upstream::start("u").await;
    let gw = Harness::new(&format!(
        "config: {{maxBodySize: 1KiB}}\n{}",
        simple_config(&up.authority)
    ));
    let r = gw.send(request("POST", "/", &[], &"x".repeat(2048))).await;
    assert_eq!(r.status, 413);
    assert_eq!(
        r.text(),
        "request body is larger than the limit of 1024 bytes"
    );
    assert!(
        up.requests().is_empty(),
        "a declared oversize body never reaches the upstream"
    );

    // Chunked, so the size is only known while streaming.
    let chunks = futures_util::stream::iter(
        (0..4)
            .map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![b'y'; 512])))),
    );
    let chunked = Request::post("/").body(StreamBody::new(chunks)).unwrap();
    assert_eq!(gw.send(chunked).await.status, 413);

    let r = gw.send(request("POST", "/", &[], &"x".repeat(1000))).await;
    assert_eq!(r.status, 200);
}
