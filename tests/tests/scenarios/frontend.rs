//! `frontendPolicies` (HTTP limits, connection lifetime, PROXY protocol, network
//! authorization, agentgateway's `tracing` and `accessLog` spellings) and trace export over OTLP/HTTP and to `https://` collectors, with
//! real processes.

use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_tests::otlp::{OtlpLogSink, OtlpSink, attr, log_attr};
use tollgate_tests::proxy::ProxyOptions;
use tollgate_tests::{FakeUpstream, Proxy, eventually, free_port};

/// One route to `upstream` on `port`, after `head` (top-level sections).
fn config(head: &str, port: u16, upstream: &str) -> String {
    format!(
        "{head}binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: api\n      backends: [{{host: \"{upstream}\"}}]\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn traces_are_exported_over_otlp_http_with_the_configured_path_and_headers() {
    let sink = OtlpSink::start_http("127.0.0.1:0").await;
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let head = format!(
        "config:\n  tracing:\n    otlpEndpoint: http://{}/api/public/otel/v1/traces\n    otlpProtocol: http\n    headers:\n      Authorization: Basic b3RlbC1zZWNyZXQ=\n    randomSampling: true\n",
        sink.addr
    );
    let proxy = Proxy::start(&config(&head, port, &up.authority())).await;
    let resp = tollgate_tests::get(proxy.url(port, "/traced"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let span = sink
        .wait_for("server span", |s| s.kind == SpanKind::Server as i32)
        .await;
    assert_eq!(attr(&span, "url.path").as_deref(), Some("/traced"));
    let export = sink.exports().remove(0);
    assert_eq!(export.path, "/api/public/otel/v1/traces");
    assert_eq!(
        export.headers["authorization"], "Basic b3RlbC1zZWNyZXQ=",
        "the configured header goes with each export"
    );
    let dump = proxy.admin_json("/api/config").await.to_string();
    assert!(!dump.contains("b3RlbC1zZWNyZXQ="), "{dump}");
    assert!(!proxy.log().contains("b3RlbC1zZWNyZXQ="));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_collector_gets_a_tls_exporter_rather_than_no_tracing() {
    let up = FakeUpstream::start("u").await;
    for protocol in ["grpc", "http"] {
        let port = free_port();
        let head = format!(
            "config:\n  tracing:\n    otlpEndpoint: https://127.0.0.1:{}\n    otlpProtocol: {protocol}\n    randomSampling: true\n",
            free_port()
        );
        let proxy = Proxy::start(&config(&head, port, &up.authority())).await;
        let resp = tollgate_tests::get(proxy.url(port, "/")).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            !proxy.log().contains("cannot set up OTLP tracing"),
            "{protocol}: {}",
            proxy.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn frontend_tracing_exports_to_its_host_with_attributes_and_removals() {
    let sink = OtlpSink::start("127.0.0.1:0").await;
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let head = format!(
        "frontendPolicies:\n  tracing:\n    host: {}\n    randomSampling: true\n    attributes:\n      tenant: 'request.headers[\"x-tenant\"]'\n    remove: [client.address]\n",
        sink.addr
    );
    let proxy = Proxy::start(&config(&head, port, &up.authority())).await;
    let resp = tollgate_tests::http()
        .get(proxy.url(port, "/frontend"))
        .header("x-tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let span = sink
        .wait_for("server span", |s| s.kind == SpanKind::Server as i32)
        .await;
    assert_eq!(attr(&span, "tenant").as_deref(), Some("acme"));
    assert_eq!(attr(&span, "client.address"), None);
}

/// What the proxy answers to `request` sent on a fresh connection.
async fn raw_exchange(port: u16, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut buf = vec![0; 4096];
    // A closed (or reset) connection answers nothing.
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("an answer or a close")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn header_count_and_buffer_limits_answer_431_and_413() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let head = "frontendPolicies:\n  http:\n    http1MaxHeaders: 8\n    maxBufferSize: 1KiB\n";
    let proxy = Proxy::start(&config(head, port, &up.authority())).await;
    let few = "GET / HTTP/1.1\r\nhost: x\r\nx-1: a\r\nconnection: close\r\n\r\n";
    assert!(
        raw_exchange(port, few.as_bytes())
            .await
            .starts_with("HTTP/1.1 200")
    );
    let many: String = (0..12).map(|i| format!("x-{i}: a\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nhost: x\r\n{many}\r\n");
    let answer = raw_exchange(port, many.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    let http = tollgate_tests::http();
    let small = http.post(proxy.url(port, "/up")).body(vec![b'a'; 512]);
    assert_eq!(small.send().await.unwrap().status(), 200);
    let large = http.post(proxy.url(port, "/up")).body(vec![b'a'; 4096]);
    assert_eq!(large.send().await.unwrap().status(), 413);
    assert_eq!(
        up.requests().len(),
        2,
        "the refused requests never reach the upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_is_closed_after_max_connection_duration() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let head = "frontendPolicies:\n  http:\n    maxConnectionDuration: 1s\n";
    let _proxy = Proxy::start(&config(head, port, &up.authority())).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // A kept-alive connection with nothing in progress: the server closes it at 1s, long
    // before http1IdleTimeout (10 minutes).
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if stream.read(&mut buf).await.unwrap_or(0) == 0 {
                break;
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the connection outlived maxConnectionDuration"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn access_log_filter_add_and_remove_in_the_frontend_spelling() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let head = "config:\n  logging: {format: json}\nfrontendPolicies:\n  accessLog:\n    filter: 'response.code >= 400'\n    add: {tenant: 'request.headers[\"x-tenant\"]'}\n    remove: [src.addr]\n";
    let proxy = Proxy::start(&config(head, port, &up.authority())).await;
    let http = tollgate_tests::http();
    for status in ["200", "404"] {
        let resp = http
            .get(proxy.url(port, "/logged"))
            .header("x-tenant", "acme")
            .header("x-fake-status", status)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_str(), status);
    }
    let line: Value = eventually(Duration::from_secs(5), || async {
        let log = proxy.access_log();
        log.lines()
            .next()
            .map(|l| serde_json::from_str(l).unwrap())
            .ok_or_else(|| "no access log line".to_string())
    })
    .await;
    assert_eq!(line["http.status"], 404);
    assert_eq!(line["tenant"], "acme");
    assert!(line.get("src.addr").is_none(), "removed");
    tollgate_tests::settle(Duration::from_millis(300)).await;
    assert_eq!(
        proxy.access_log().lines().count(),
        1,
        "the 200 was filtered out"
    );
}

/// A PROXY v2 header for a TCP over IPv4 connection from `client`.
fn proxy_v2(client: std::net::SocketAddrV4, port: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend([0x21, 0x11, 0, 12]);
    header.extend(client.ip().octets());
    header.extend([127, 0, 0, 1]);
    header.extend(client.port().to_be_bytes());
    header.extend(port.to_be_bytes());
    header
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_protocol_names_the_client_and_strict_mode_needs_the_header() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let head = "config:\n  logging:\n    format: json\n    fields:\n      add: {client: source.address, raw: source.rawAddress}\nfrontendPolicies:\n  proxyProtocol: {version: all}\n";
    let proxy = Proxy::start(&config(head, port, &up.authority())).await;
    let request = "GET /pp HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let v1 = format!("PROXY TCP4 203.0.113.7 10.0.0.1 51000 {port}\r\n{request}");
    let answer = raw_exchange(port, v1.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut v2 = proxy_v2("198.51.100.9:52000".parse().unwrap(), port);
    v2.extend(request.as_bytes());
    let answer = raw_exchange(port, &v2).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let lines = proxy.access_log_json(2).await;
    assert_eq!(lines[0]["src.addr"], "203.0.113.7:51000");
    assert_eq!(lines[0]["client"], "203.0.113.7");
    assert_eq!(lines[0]["raw"], "127.0.0.1");
    assert_eq!(lines[1]["client"], "198.51.100.9");
    let forwarded: Vec<_> = up
        .requests()
        .iter()
        .map(|r| r.headers["x-forwarded-for"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(forwarded, ["203.0.113.7", "198.51.100.9"]);

    // Strict (the default): a connection without the header is closed unanswered.
    let answer = raw_exchange(port, request.as_bytes()).await;
    assert_eq!(answer, "", "no answer without a PROXY header");
    assert_eq!(up.requests().len(), 2);

    // version v1 refuses a v2 header; optional mode serves a connection without one.
    let port = free_port();
    let head = "frontendPolicies:\n  proxyProtocol: {version: v1, mode: optional}\n";
    let _proxy = Proxy::start(&config(head, port, &up.authority())).await;
    let mut v2 = proxy_v2("198.51.100.9:52000".parse().unwrap(), port);
    v2.extend(request.as_bytes());
    assert_eq!(raw_exchange(port, &v2).await, "");
    let answer = raw_exchange(port, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn network_authorization_closes_a_refused_sources_connection() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let head = "frontendPolicies:\n  proxyProtocol: {version: v1, mode: optional}\n  networkAuthorization:\n    rules:\n    - 'cidr(\"127.0.0.0/8\").containsIP(source.rawAddress)'\n    - deny: 'source.address == \"203.0.113.66\"'\n";
    let _proxy = Proxy::start(&config(head, port, &up.authority())).await;
    let request = "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let denied = format!("PROXY TCP4 203.0.113.66 10.0.0.1 51000 {port}\r\n{request}");
    assert_eq!(raw_exchange(port, denied.as_bytes()).await, "");
    let allowed = format!("PROXY TCP4 203.0.113.7 10.0.0.1 51000 {port}\r\n{request}");
    let answer = raw_exchange(port, allowed.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        tollgate_tests::get(format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert_eq!(
        up.requests().len(),
        2,
        "the refused connection sent nothing upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn access_logs_are_exported_as_otlp_log_records() {
    let sink = OtlpLogSink::start("127.0.0.1:0").await;
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let head = format!(
        "frontendPolicies:\n  accessLog:\n    add: {{tenant: 'request.headers[\"x-tenant\"]'}}\n    otlp:\n      host: {}\n",
        sink.addr
    );
    let proxy = Proxy::start(&config(&head, port, &up.authority())).await;
    let resp = tollgate_tests::http()
        .get(proxy.url(port, "/exported"))
        .header("x-tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let record = sink
        .wait_for("for /exported", |r| {
            log_attr(r, "http.path").as_deref() == Some("/exported")
        })
        .await;
    assert_eq!(record.severity_text, "info");
    assert_eq!(log_attr(&record, "tenant").as_deref(), Some("acme"));
    assert_eq!(log_attr(&record, "http.status").as_deref(), Some("200"));
    assert_eq!(log_attr(&record, "route").as_deref(), Some("api"));
    assert!(
        proxy.access_log().contains("/exported"),
        "stdout keeps its line"
    );
}

/// The status of a GET over HTTP/2 (prior knowledge) carrying a `size`-byte header, or the
/// error the connection gave.
async fn h2_get_with_header(port: u16, size: usize) -> Result<u16, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://127.0.0.1:{port}/h2"))
        .header("x-big", "a".repeat(size))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_header_list_limit_refuses_larger_headers() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let head = "frontendPolicies:\n  http:\n    http2MaxHeaderSize: 2048\n    http2WindowSize: 65535\n    http2FrameSize: 32768\n    http2KeepaliveInterval: 10s\n";
    let _proxy = Proxy::start(&config(head, port, &up.authority())).await;
    assert_eq!(h2_get_with_header(port, 100).await, Ok(200));
    let refused = h2_get_with_header(port, 4096).await;
    assert_eq!(
        refused,
        Ok(431),
        "h2 answers a header list over the limit with 431"
    );
    assert_eq!(
        up.requests().len(),
        1,
        "the large header never reached the upstream"
    );
}

/// `frontendPolicies.tracing.resources` (CEL, evaluated once) name the exporting service, and
/// `policies.requestHeaderModifier` sets the export's headers (a SaaS collector's key).
#[tokio::test(flavor = "multi_thread")]
async fn frontend_tracing_resources_and_export_headers() {
    let sink = OtlpSink::start_http("127.0.0.1:0").await;
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let head = format!(
        "frontendPolicies:\n  tracing:\n    host: {}\n    protocol: http\n    randomSampling: true\n    resources:\n      service.name: '\"edge-\" + \"gateway\"'\n      deployment.environment: '\"test\"'\n    policies:\n      requestHeaderModifier:\n        set: {{x-api-key: $COLLECTOR_KEY}}\n",
        sink.addr
    );
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config(&head, port, &up.authority()),
        env: vec![("COLLECTOR_KEY", "collector-secret")],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let resp = tollgate_tests::get(proxy.url(port, "/r")).await.unwrap();
    assert_eq!(resp.status(), 200);
    sink.wait_for("server span", |s| s.kind == SpanKind::Server as i32)
        .await;
    let export = sink.exports().remove(0);
    assert_eq!(export.path, "/v1/traces");
    assert_eq!(export.headers["x-api-key"], "collector-secret");
    let resource: std::collections::HashMap<_, _> = export.resource.into_iter().collect();
    assert_eq!(resource["service.name"], "edge-gateway");
    assert_eq!(resource["deployment.environment"], "test");
    let dump = proxy.admin_json("/api/config").await.to_string();
    assert!(!dump.contains("collector-secret"), "{dump}");
}

/// The HTTP/2 settings a client is told and the keepalive PINGs it gets, read off the wire:
/// `http2WindowSize` and `http2FrameSize` in the server's SETTINGS, `http2ConnectionWindowSize`
/// as its first connection WINDOW_UPDATE, and a PING after `http2KeepaliveInterval` idle.
#[tokio::test(flavor = "multi_thread")]
async fn http2_windows_frame_size_and_keepalive_pings_reach_the_wire() {
    const SETTINGS: u8 = 0x4;
    const PING: u8 = 0x6;
    const WINDOW_UPDATE: u8 = 0x8;
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let head = "frontendPolicies:\n  http:\n    http2WindowSize: 1048576\n    http2ConnectionWindowSize: 2097152\n    http2FrameSize: 32768\n    http2KeepaliveInterval: 1s\n    http2KeepaliveTimeout: 10s\n";
    let _proxy = Proxy::start(&config(head, port, &up.authority())).await;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // The client preface and an empty SETTINGS frame.
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]);
    conn.write_all(&hello).await.unwrap();
    let (mut settings, mut window_update, mut pinged) = (Vec::new(), None, false);
    let read_frames = async {
        while !pinged {
            let mut header = [0u8; 9];
            conn.read_exact(&mut header).await.unwrap();
            let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let (kind, flags) = (header[3], header[4]);
            let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
            let mut payload = vec![0u8; len];
            conn.read_exact(&mut payload).await.unwrap();
            match kind {
                SETTINGS if flags & 1 == 0 => {
                    for pair in payload.chunks(6) {
                        let id = u16::from_be_bytes([pair[0], pair[1]]);
                        let value = u32::from_be_bytes([pair[2], pair[3], pair[4], pair[5]]);
                        settings.push((id, value));
                    }
                    // Acknowledge, as a client must.
                    conn.write_all(&[0, 0, 0, SETTINGS, 1, 0, 0, 0, 0])
                        .await
                        .unwrap();
                }
                WINDOW_UPDATE if stream == 0 && window_update.is_none() => {
                    let increment =
                        u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                    window_update = Some(increment & 0x7fff_ffff);
                }
                PING if flags & 1 == 0 => pinged = true,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_frames)
        .await
        .expect("a keepalive PING within 10 s of an idle connection");
    assert!(
        settings.contains(&(0x4, 1_048_576)),
        "INITIAL_WINDOW_SIZE: {settings:?}"
    );
    assert!(
        settings.contains(&(0x5, 32_768)),
        "MAX_FRAME_SIZE: {settings:?}"
    );
    assert_eq!(
        window_update,
        Some(2_097_152 - 65_535),
        "the connection window"
    );
}
