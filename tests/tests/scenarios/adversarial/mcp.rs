//! Attacks on MCP routes: foreign origins, session and child exhaustion, inherited secrets.

use std::time::Duration;

use tollgate_tests::mcp::{self, McpClient};
use tollgate_tests::proxy::ProxyOptions;
use tollgate_tests::{Proxy, binary, eventually, free_port};

/// Finding 3: a stdio child gets `PATH`, `HOME`, locale, temp dir, its `env` and the names in
/// `inheritEnv`; the gateway's own secrets stay out of its reach.
#[tokio::test(flavor = "multi_thread")]
async fn stdio_children_do_not_inherit_the_gateway_environment() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("env.txt");
    let script = format!(
        "env > '{}'; exec '{}' one",
        dump.display(),
        binary("tollgate-fake-mcp").display()
    );
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: mcp\n      backends:\n      - mcp:\n          targets:\n          - name: one\n            stdio:\n              cmd: /bin/sh\n              args: [-c, {script:?}]\n              env: {{TARGET_OWN: own-value}}\n              inheritEnv: [ASKED_FOR]\n"
    );
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        env: vec![
            ("OPENAI_API_KEY", "sk-gateway-secret"),
            ("ASKED_FOR", "asked-value"),
            ("LC_ALL", "C.UTF-8"),
        ],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let mut c = McpClient::connect(&proxy.url(port, "/mcp")).await;
    assert_eq!(
        c.call_text("echo", serde_json::json!({"text": "x"})).await,
        "one: x"
    );

    let env = eventually(Duration::from_secs(5), || async {
        std::fs::read_to_string(&dump).map_err(|e| e.to_string())
    })
    .await;
    assert!(!env.contains("sk-gateway-secret"), "{env}");
    assert!(!env.contains("RUST_LOG="), "{env}");
    for wanted in [
        "TARGET_OWN=own-value",
        "ASKED_FOR=asked-value",
        "LC_ALL=C.UTF-8",
        "PATH=",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(wanted)),
            "{wanted}: {env}"
        );
    }
}

/// The proxy's peak resident memory so far (`VmHWM`), in MiB.
pub(super) fn peak_rss_mib(proxy: &Proxy) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

/// Finding 1 (MCP half): eight concurrent 10 MiB `[0,0,...]` POSTs without a session are
/// refused before they are read or parsed (413 naming the limit); a made-up session is 404
/// unread. Peak RSS stays bounded (it was over a gigabyte).
#[tokio::test(flavor = "multi_thread")]
async fn large_sessionless_mcp_bodies_are_refused_unread() {
    let port = free_port();
    let proxy = Proxy::start(&mcp::config(port, &["one"], "", "")).await;
    let url = proxy.url(port, "/mcp");
    let before = peak_rss_mib(&proxy);
    let mut body = vec![b'['];
    while body.len() < 10 * 1024 * 1024 - 16 {
        body.extend_from_slice(b"0,");
    }
    body.extend_from_slice(b"0]");
    let body = bytes::Bytes::from(body);
    let post = |session: Option<&'static str>| {
        let mut req = tollgate_tests::http()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", mcp::ACCEPT)
            .body(body.clone());
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        async move {
            match req.send().await {
                Ok(resp) => Some((
                    resp.status().as_u16(),
                    resp.text().await.unwrap_or_default(),
                )),
                // Refused before the body was sent: the connection may close under the upload.
                Err(_) => None,
            }
        }
    };
    let answers = futures_util::future::join_all((0..8).map(|_| post(None))).await;
    let bogus = post(Some("0123456789abcdef")).await;
    let after = peak_rss_mib(&proxy);
    eprintln!("peak RSS of the proxy: {before} MiB before, {after} MiB after 8 x 10 MiB bodies");
    for (status, text) in answers.into_iter().flatten() {
        assert_eq!(status, 413, "{text}");
        assert!(text.contains("Mcp-Session-Id"), "{text}");
    }
    if let Some((status, text)) = bogus {
        assert_eq!(status, 404, "{text}");
    }
    assert!(
        after < before + 64,
        "peak RSS grew from {before} to {after} MiB"
    );
    // Established sessions are unaffected.
    let mut c = McpClient::connect(&url).await;
    assert_eq!(
        c.call_text("echo", serde_json::json!({"text": "x"})).await,
        "one: x"
    );
}

/// The pids of the stdio children of the proxy's sessions, by session id.
async fn session_children(proxy: &Proxy) -> Vec<(String, Vec<u64>)> {
    let sessions = proxy.admin_json("/api/mcp/sessions").await;
    sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let pids = s["targets"].as_array().unwrap().iter();
            let pids = pids.filter_map(|t| t["pid"].as_u64()).collect();
            (s["session"].as_str().unwrap().to_string(), pids)
        })
        .collect()
}

/// An `initialize` from `local` (a loopback address of the client's choosing): the status and
/// the session id, if any.
async fn initialize_from(url: &str, local: std::net::IpAddr) -> (u16, String, Option<String>) {
    let resp = tollgate_tests::http_builder()
        .local_address(local)
        .build()
        .unwrap()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", mcp::ACCEPT)
        .json(&mcp::initialize_request())
        .send()
        .await
        .unwrap();
    let session = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    (resp.status().as_u16(), resp.text().await.unwrap(), session)
}

/// Finding 4: one client address cannot hold more than `maxSessionsPerClient` sessions (503
/// naming the setting) while other addresses and established sessions keep working; sessions
/// that make no call after `initialize` are closed after `unusedSessionTtl`, children included.
#[tokio::test(flavor = "multi_thread")]
async fn one_client_cannot_exhaust_sessions_and_unused_ones_expire() {
    let port = free_port();
    let settings = "config:\n  mcp:\n    maxSessionsPerClient: 3\n    unusedSessionTtl: 2s\n";
    let proxy = Proxy::start(&mcp::config(port, &["one"], "", settings)).await;
    let url = proxy.url(port, "/mcp");
    let here: std::net::IpAddr = [127, 0, 0, 1].into();

    let mut established = McpClient::connect(&url).await;
    assert_eq!(
        established
            .call_text("echo", serde_json::json!({"text": "a"}))
            .await,
        "one: a"
    );
    for _ in 0..2 {
        let (status, text, _) = initialize_from(&url, here).await;
        assert_eq!(status, 200, "{text}");
    }
    let (status, text, _) = initialize_from(&url, here).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("config.mcp.maxSessionsPerClient"), "{text}");
    // Another address is not locked out, and the established session still works.
    let (status, text, other) = initialize_from(&url, [127, 0, 0, 2].into()).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        established
            .call_text("echo", serde_json::json!({"text": "b"}))
            .await,
        "one: b"
    );

    // The sessions that made no call are closed after unusedSessionTtl, with their children.
    let unused: Vec<u64> = session_children(&proxy)
        .await
        .into_iter()
        .filter(|(id, _)| Some(id) != established.session.as_ref())
        .flat_map(|(_, pids)| pids)
        .collect();
    assert_eq!(unused.len(), 3, "two from here, one from 127.0.0.2");
    eventually(Duration::from_secs(10), || async {
        let left = session_children(&proxy).await;
        match left.len() {
            1 => Ok(()),
            n => Err(format!("{n} sessions left")),
        }
    })
    .await;
    eventually(Duration::from_secs(5), || async {
        match unused.iter().find(|p| mcp::alive(**p)) {
            Some(p) => Err(format!("child {p} of an expired session still runs")),
            None => Ok(()),
        }
    })
    .await;
    assert!(other.is_some());
    assert_eq!(
        established
            .call_text("echo", serde_json::json!({"text": "c"}))
            .await,
        "one: c"
    );
    let (status, text, _) = initialize_from(&url, here).await;
    assert_eq!(status, 200, "{text}");
}

/// An `initialize` with these extra headers: the status and body.
async fn initialize_with(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = tollgate_tests::http()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", mcp::ACCEPT)
        .json(&mcp::initialize_request());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Finding 2: a browser `Origin` the route's CORS does not allow gets 403 (the admin server's
/// own origin, the Playground's, is allowed; no `Origin` is unaffected), and over loopback a
/// `Host` that is not a loopback name gets 403 (DNS rebinding).
#[tokio::test(flavor = "multi_thread")]
async fn foreign_origins_and_rebound_hosts_cannot_reach_mcp_routes() {
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: mcp\n      policies:\n        cors: {{allowOrigins: ['http://ok.test'], allowHeaders: ['*']}}\n      backends:\n      - mcp:\n          targets:\n{}",
        mcp::fake_target("one")
    );
    let proxy = Proxy::start(&config).await;
    let url = proxy.url(port, "/mcp");
    let admin_origin = format!("http://{}", proxy.admin);

    let (status, text) = initialize_with(&url, &[("origin", "http://evil.test")]).await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("http://evil.test") && text.contains("cors.allowOrigins"),
        "{text}"
    );
    let rebound = format!("evil.test:{port}");
    let (status, text) = initialize_with(&url, &[("host", &rebound)]).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("DNS rebinding"), "{text}");

    let localhost = format!("localhost:{port}");
    for headers in [
        vec![],
        vec![("origin", "http://ok.test")],
        vec![("origin", admin_origin.as_str())],
        vec![("host", localhost.as_str())],
    ] {
        let (status, text) = initialize_with(&url, &headers).await;
        assert_eq!(status, 200, "{headers:?}: {text}");
    }
}

/// Finding 2: `allowOrigins: ['*']` with `allowCredentials: true` stays valid, but `check` warns.
#[test]
fn check_warns_about_any_origin_with_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    let config = "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - name: open\n      policies:\n        cors: {allowOrigins: ['*'], allowCredentials: true}\n      backends:\n      - host: 127.0.0.1:9\n";
    std::fs::write(&file, config).unwrap();
    let out = std::process::Command::new(binary("tollgate"))
        .arg("check")
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("route `open`"),
        "{stderr}"
    );
    assert!(stderr.contains("allowCredentials"), "{stderr}");
}

/// Finding 12 (and 7's MCP part): remote targets' redirects are not followed, and the JSON-RPC
/// error a client gets names the target, never its URL or the credentials in it.
#[tokio::test(flavor = "multi_thread")]
async fn remote_targets_do_not_follow_redirects_or_leak_their_urls() {
    let elsewhere = tollgate_tests::FakeUpstream::start("elsewhere").await;
    let location = format!("http://{}/mcp", elsewhere.authority());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirector = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || {
        let location = location.clone();
        async move {
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [("location", location)],
            )
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let port = free_port();
    let secret = "s3cret-token";
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: mcp\n      backends:\n      - mcp:\n          targets:\n          - name: remote\n            mcp: {{host: 'http://user:{secret}@{redirector}/mcp?token={secret}'}}\n          - name: legacy\n            sse: {{host: 'http://{redirector}/sse?token={secret}'}}\n"
    );
    let proxy = Proxy::start(&config).await;
    let (status, text) = initialize_with(&proxy.url(port, "/mcp"), &[]).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("`remote`") && text.contains("`legacy`"),
        "{text}"
    );
    assert!(!text.contains(secret), "{text}");
    assert!(!text.contains(&redirector.to_string()), "{text}");
    assert!(elsewhere.requests().is_empty(), "a redirect was followed");
}

/// Finding 12: remote targets whose event stream never ends a line are cut off at the SSE
/// bounds (8 MiB an event), not buffered: the session starts without them and the proxy's
/// memory stays flat while the servers would send 256 MiB each.
#[tokio::test(flavor = "multi_thread")]
async fn remote_targets_cannot_send_unbounded_events() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use futures_util::StreamExt;
    const ENDLESS: u64 = 256 * 1024 * 1024;
    let sent = Arc::new(AtomicU64::new(0));
    let endless_line = {
        let sent = sent.clone();
        move || {
            let sent = sent.clone();
            let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
            let head = futures_util::stream::iter([Ok::<_, std::io::Error>(
                bytes::Bytes::from_static(b"data: "),
            )]);
            let tail = futures_util::stream::repeat_with(move || {
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Ok(chunk.clone())
            })
            .take((ENDLESS / (64 * 1024)) as usize);
            (
                [("content-type", "text/event-stream")],
                axum::body::Body::from_stream(head.chain(tail)),
            )
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let (post, get) = (endless_line.clone(), endless_line);
    let app = axum::Router::new()
        .route("/mcp", axum::routing::post(move || async move { post() }))
        .route("/sse", axum::routing::get(move || async move { get() }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: mcp\n      backends:\n      - mcp:\n          targets:\n          - name: remote\n            mcp: {{host: 'http://{server}/mcp'}}\n          - name: legacy\n            sse: {{host: 'http://{server}/sse'}}\n"
    );
    let proxy = Proxy::start(&config).await;
    let before = peak_rss_mib(&proxy);
    let (status, text) = initialize_with(&proxy.url(port, "/mcp"), &[]).await;
    let after = peak_rss_mib(&proxy);
    eprintln!("peak RSS of the proxy: {before} MiB before, {after} MiB after two endless events");
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("`remote`") && text.contains("`legacy`"),
        "{text}"
    );
    // Each client holds at most one event's buffers (growing by doubling) before it gives up.
    assert!(
        after < before + 128,
        "peak RSS grew from {before} to {after} MiB"
    );
    assert!(
        sent.load(Ordering::Relaxed) < ENDLESS,
        "the servers' whole streams were read"
    );
}

/// Finding 12: the legacy SSE POST takes only JSON (415 otherwise), and session ids, which grant
/// access to a session, never appear in the proxy's logs (a short hash does).
#[tokio::test(flavor = "multi_thread")]
async fn legacy_posts_need_json_and_session_ids_are_not_logged() {
    let port = free_port();
    let proxy = Proxy::start(&mcp::config(port, &["one"], "", "")).await;
    let base = format!("http://127.0.0.1:{port}");
    let mut sse = mcp::SseSession::open(&base, "/sse").await;
    let resp = tollgate_tests::http()
        .post(&sse.endpoint)
        .header("content-type", "text/plain")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert!(sse.send("ping", None).await.is_some());

    let mut c = McpClient::connect(&proxy.url(port, "/mcp")).await;
    assert_eq!(
        c.call_text("echo", serde_json::json!({"text": "x"})).await,
        "one: x"
    );
    let id = c.session.clone().unwrap();
    assert_eq!(c.delete().await.status(), 200);
    let hash = mcp::session_log_id(&id);
    eventually(Duration::from_secs(5), || async {
        let logs = proxy.log() + &proxy.access_log();
        match logs.contains(&hash) {
            true => Ok(logs),
            false => Err(format!("no line names session {hash}")),
        }
    })
    .await;
    let logs = proxy.log() + &proxy.access_log();
    assert!(!logs.contains(&id), "the session id was logged: {logs}");
}

/// Finding 1 (MCP half): a session holder's messages are bounded by `config.mcp.maxBodySize`
/// (1 MiB; over it 413 unread), and the bytes of messages held at once across the process are
/// capped, so sixteen concurrent 1 MiB messages (a parsed message costs ~100 times its bytes)
/// keep peak RSS bounded whatever the concurrency.
#[tokio::test(flavor = "multi_thread")]
async fn session_messages_are_bounded_in_size_and_in_total() {
    let port = free_port();
    let proxy = Proxy::start(&mcp::config(port, &["one"], "", "")).await;
    let c = McpClient::connect(&proxy.url(port, "/mcp")).await;
    let before = peak_rss_mib(&proxy);
    let body = |size: usize| {
        let head = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"#;
        let mut body = head.as_bytes().to_vec();
        body.push(b'[');
        while body.len() < size - 16 {
            body.extend_from_slice(b"0,");
        }
        body.extend_from_slice(b"0]}}}");
        bytes::Bytes::from(body)
    };
    for (size, expected, count) in [(1024 * 1024 + 64, 413, 8), (1024 * 1024 - 64, 200, 16)] {
        let body = body(size);
        let posts = (0..count).map(|_| {
            let req = tollgate_tests::http()
                .post(&c.url)
                .header("content-type", "application/json")
                .header("accept", mcp::ACCEPT)
                .header("mcp-session-id", c.session.as_deref().unwrap())
                .body(body.clone());
            async move { req.send().await.map(|r| r.status().as_u16()).ok() }
        });
        for status in futures_util::future::join_all(posts)
            .await
            .into_iter()
            .flatten()
        {
            assert_eq!(status, expected, "{size} bytes");
        }
    }
    let after = peak_rss_mib(&proxy);
    eprintln!("peak RSS of the proxy: {before} MiB before, {after} MiB after 16 x 1 MiB messages");
    assert!(
        after < before + 384,
        "peak RSS grew from {before} to {after} MiB"
    );

    // Two slow calls with 1 MiB messages take the whole budget; small messages do not wait.
    let mut slow = r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":3000,"pad":"#.as_bytes().to_vec();
    slow.push(b'"');
    slow.resize(1_048_000 - 4, b'x');
    slow.extend_from_slice(b"\"}}}");
    let slow = bytes::Bytes::from(slow);
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let req = tollgate_tests::http()
                .post(&c.url)
                .header("content-type", "application/json")
                .header("accept", mcp::ACCEPT)
                .header("mcp-session-id", c.session.as_deref().unwrap())
                .body(slow.clone());
            tokio::spawn(async move { req.send().await.unwrap().text().await.unwrap() })
        })
        .collect();
    proxy.wait_mcp_in_flight(2).await;
    let mut c = c;
    let quick = tokio::time::timeout(
        Duration::from_secs(2),
        c.call_text("echo", serde_json::json!({"text": "quick"})),
    );
    assert_eq!(quick.await.expect("a small call waited"), "one: quick");
    for call in calls {
        let answer = call.await.unwrap();
        assert!(answer.contains("slept 3000 ms"), "{answer}");
    }
}

/// Finding 4: the stdio children one client address may run are bounded too
/// (`maxChildrenPerClient`), independently of its session count.
#[tokio::test(flavor = "multi_thread")]
async fn one_client_cannot_start_unbounded_children() {
    let port = free_port();
    let settings = "config:\n  mcp:\n    maxChildrenPerClient: 3\n";
    let proxy = Proxy::start(&mcp::config(port, &["one", "two"], "", settings)).await;
    let url = proxy.url(port, "/mcp");
    let (status, text, _) = initialize_from(&url, [127, 0, 0, 1].into()).await;
    assert_eq!(status, 200, "{text}");
    let (status, text, _) = initialize_from(&url, [127, 0, 0, 1].into()).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("config.mcp.maxChildrenPerClient"), "{text}");
    let (status, text, _) = initialize_from(&url, [127, 0, 0, 2].into()).await;
    assert_eq!(status, 200, "{text}");
}
