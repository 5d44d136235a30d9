//! Bad input and failing upstreams get a clear status and a body that names the problem.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_tests::{FakeUpstream, Proxy, free_port};

#[tokio::test(flavor = "multi_thread")]
async fn refused_upstream_is_503() {
    let dead = format!("127.0.0.1:{}", free_port());
    let port = free_port();
    let proxy = Proxy::start(&super::simple_config(port, &dead)).await;
    let r = tollgate_tests::get(proxy.url(port, "/")).await.unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(
        body.contains(&format!("upstream {dead} is unreachable")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_upstream_is_504() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: per-try\n      matches: [{{path: {{pathPrefix: /try}}}}]\n      policies: {{timeout: {{backendRequestTimeout: 200ms}}}}\n      backends: [{{host: \"{a}\"}}]\n    - name: whole\n      policies: {{timeout: {{requestTimeout: 300ms}}}}\n      backends: [{{host: \"{a}\"}}]\n",
        a = up.authority()
    );
    let proxy = Proxy::start(&config).await;
    // The upstream takes 3 s; each route's timeout answers first, naming itself.
    for (path, message) in [
        ("/try", "did not answer within 200ms"),
        ("/", "request did not complete within 300ms"),
    ] {
        let r = tollgate_tests::http()
            .get(proxy.url(port, path))
            .header("x-fake-delay-ms", "3000")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 504);
        let body = r.text().await.unwrap();
        assert!(body.contains(message), "{body}");
    }
    assert_eq!(
        proxy
            .metric("agentgateway_requests_total", &["reason=\"Timeout\""])
            .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_the_limit_are_413() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = format!(
        "config: {{maxBodySize: 1KiB}}\n{}",
        super::simple_config(port, &up.authority())
    );
    let proxy = Proxy::start(&config).await;
    let client = tollgate_tests::http();
    let r = client
        .post(proxy.url(port, "/"))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.text().await.unwrap(),
        "request body is larger than the limit of 1024 bytes"
    );
    assert!(
        up.requests().is_empty(),
        "a declared oversize body never reaches the upstream"
    );

    // Chunked, so the size is only known while streaming.
    let chunks =
        futures_util::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 512])));
    let r = client
        .post(proxy.url(port, "/"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let r = client
        .post(proxy.url(port, "/"))
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn raw_exchange(addr: &str, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_http_and_huge_headers_are_refused() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let proxy = Proxy::start(&super::simple_config(port, &up.authority())).await;
    let addr = format!("127.0.0.1:{port}");
    let answer = raw_exchange(&addr, b"NOT HTTP AT ALL\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let huge = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let answer = raw_exchange(&addr, huge.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(up.requests().is_empty());
    // The proxy is still fine.
    assert_eq!(
        tollgate_tests::get(proxy.url(port, "/"))
            .await
            .unwrap()
            .status(),
        200
    );
}
