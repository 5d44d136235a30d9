//! Malformed HTTP and oversize heads are refused by the proxy's own HTTP server.
//! (Error bodies, timeouts and body limits are tested in-process: data-plane `proxy::tests`.)

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_tests::{FakeUpstream, Proxy, free_port};

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
