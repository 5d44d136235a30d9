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
fn peak_rss_mib(proxy: &Proxy) -> u64 {
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
