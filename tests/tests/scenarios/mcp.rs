//! The MCP gateway: stdio children behind Streamable HTTP and SSE, multiplexing, session
//! lifecycle (delete, idle TTL, limit, crash and respawn), reloads, CORS and shutdown.

use std::time::Duration;

use serde_json::{Value, json};
use tollgate_tests::mcp::{self, EventStream, McpClient, SseSession, alive};
use tollgate_tests::{Proxy, eventually, free_port};

/// The child pids of every target of the proxy's sessions.
async fn child_pids(proxy: &Proxy) -> Vec<u64> {
    let sessions = proxy.admin_json("/api/mcp/sessions").await;
    sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["targets"].as_array().unwrap().clone())
        .filter_map(|t| t["pid"].as_u64())
        .collect()
}

async fn wait_dead(pids: &[u64]) {
    eventually(Duration::from_secs(5), || async {
        match pids.iter().find(|p| alive(**p)) {
            Some(p) => Err(format!("pid {p} still alive")),
            None => Ok(()),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_stdio_targets_are_multiplexed_over_streamable_http() {
    let port = free_port();
    let proxy = Proxy::start(&mcp::config(port, &["one", "two"], "", "")).await;
    let mut c = McpClient::connect(&proxy.url(port, "/mcp")).await;

    let mut tools = c.tool_names().await;
    tools.sort();
    let expected: Vec<String> = ["one", "two"]
        .iter()
        .flat_map(|t| {
            ["add", "announce", "crash", "echo", "flood", "pid", "sleep"]
                .map(|n| format!("{t}_{n}"))
        })
        .collect();
    assert_eq!(tools, expected);
    assert_eq!(
        c.call_text("two_echo", json!({"text": "hi"})).await,
        "two: hi"
    );
    assert_eq!(c.call_text("one_add", json!({"a": 2, "b": 3})).await, "5");

    let resources = c.request("resources/list", json!({})).await;
    let mut uris: Vec<&str> = resources["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    uris.sort();
    assert_eq!(uris, ["one+memo://one", "two+memo://two"]);
    let read = c
        .request("resources/read", json!({"uri": "two+memo://two"}))
        .await;
    assert_eq!(read["result"]["contents"][0]["text"], "memo of two");
    assert_eq!(read["result"]["contents"][0]["uri"], "memo://two");

    // A name the target does not know is no label: clients cannot mint series.
    let made_up = c.call("one_no-such-tool", json!({})).await;
    assert!(
        made_up.get("error").is_some() || made_up["result"]["isError"] == true,
        "{made_up}"
    );
    assert!(!proxy.metrics().await.contains("no-such-tool"));
    let unknown = c.call("three_add", json!({"a": 1, "b": 1})).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("three_add")
    );

    // One child per target, visible in the admin API; the metric names method, server, tool.
    let pids = child_pids(&proxy).await;
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| alive(*p)));
    let calls = proxy
        .metric(
            "agentgateway_mcp_requests_total",
            &[
                r#"method="tools/call""#,
                r#"server="two""#,
                r#"resource="echo""#,
            ],
        )
        .await;
    assert_eq!(calls, 1.0);

    // A second client gets its own children.
    let mut other = McpClient::connect(&proxy.url(port, "/mcp")).await;
    let first_pid = c.call_text("one_pid", json!({})).await;
    let other_pid = other.call_text("one_pid", json!({})).await;
    assert_ne!(first_pid, other_pid);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_target_keeps_its_names_unless_prefix_mode_is_always() {
    let port = free_port();
    let proxy = Proxy::start(&mcp::config(port, &["solo"], "", "")).await;
    let mut c = McpClient::connect(&proxy.url(port, "/")).await;
    assert!(c.tool_names().await.contains(&"add".to_string()));
    assert_eq!(c.call_text("echo", json!({"text": "x"})).await, "solo: x");

    let port = free_port();
    let config = mcp::config(port, &["solo"], "          prefixMode: always\n", "");
    let proxy = Proxy::start(&config).await;
    let mut c = McpClient::connect(&proxy.url(port, "/")).await;
    assert!(c.tool_names().await.contains(&"solo_add".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_statuses() {
    let port = free_port();
    let proxy = Proxy::start(&mcp::config(port, &["one"], "", "")).await;
    let url = proxy.url(port, "/mcp");
    let http = tollgate_tests::http();
    let init = mcp::initialize_request();

    let resp = http
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 406);
    assert!(resp.text().await.unwrap().contains("text/event-stream"));

    let resp = http
        .post(&url)
        .header("content-type", "text/plain")
        .header("accept", mcp::ACCEPT)
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);

    let c = McpClient::new(&url);
    let resp = c
        .post(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("Mcp-Session-Id"));

    let mut stale = McpClient::new(&url);
    stale.session = Some("no-such-session".into());
    let resp = stale
        .post(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}))
        .await;
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().contains("no-such-session"));

    let resp = http
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", mcp::ACCEPT)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("invalid JSON-RPC"));

    let mut client = McpClient::connect(&url).await;
    let ok = client.request("ping", json!({})).await;
    assert!(ok.get("result").is_some(), "{ok}");
    let resp = http
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", mcp::ACCEPT)
        .header("mcp-session-id", client.session.clone().unwrap())
        .header("mcp-protocol-version", "1999-01-01")
        .body(r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("MCP-Protocol-Version"));
    assert_eq!(client.delete().await.status(), 200);

    let resp = http.put(&url).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert!(resp.headers()["allow"].to_str().unwrap().contains("DELETE"));

    // The session-less 2026-07-28 probe gets a JSON-RPC error, on which clients fall back.
    let mut probe = McpClient::new(&url);
    let answer = probe
        .request(
            "server/discover",
            json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
        )
        .await;
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
    assert!(probe.session.is_none());
    assert_eq!(
        proxy.admin_json("/api/mcp/sessions").await["sessions"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_sse_serves_a_session_for_the_life_of_its_stream() {
    let port = free_port();
    let proxy = Proxy::start(&mcp::config(port, &["one", "two"], "", "")).await;
    let base = format!("http://127.0.0.1:{port}");
    let mut s = SseSession::open(&base, "/sse").await;
    assert!(s.endpoint.contains("/sse?sessionId="), "{}", s.endpoint);
    let init = s
        .send(
            "initialize",
            Some(json!({"protocolVersion": "2024-11-05", "capabilities": {},
                "clientInfo": {"name": "sse-test", "version": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    s.send("notifications/initialized", None).await;
    let answer = s
        .send(
            "tools/call",
            Some(json!({"name": "one_add", "arguments": {"a": 40, "b": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(answer["result"]["content"][0]["text"], "42");
    let sessions = proxy.admin_json("/api/mcp/sessions").await;
    assert_eq!(sessions["sessions"][0]["transport"], "sse");
    let pids = child_pids(&proxy).await;
    assert_eq!(pids.len(), 2);

    let endpoint = s.endpoint.clone();
    drop(s);
    wait_dead(&pids).await;
    let resp = tollgate_tests::http()
        .post(&endpoint)
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_child_fails_its_calls_and_the_next_call_respawns_it() {
    let port = free_port();
    let proxy = Proxy::start(&mcp::config(port, &["one", "two"], "", "")).await;
    let url = proxy.url(port, "/mcp");
    let mut c = McpClient::connect(&url).await;
    let before: u64 = c.call_text("one_pid", json!({})).await.parse().unwrap();

    // A slow call in flight when its child dies gets a JSON-RPC error, not a hang.
    let mut slow = McpClient::new(&url);
    slow.session = c.session.clone();
    let in_flight =
        tokio::spawn(async move { slow.call("one_sleep", json!({"ms": 20_000})).await });
    proxy.wait_log("one sleeping 20000 ms", 0).await;
    let crash = c.call("one_crash", json!({})).await;
    assert_eq!(crash["error"]["code"], -32603, "{crash}");
    let slow_answer = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the in-flight call ends")
        .unwrap();
    assert_eq!(slow_answer["error"]["code"], -32603, "{slow_answer}");
    assert!(!alive(before));

    // Same session, new child, initialize replayed; the other target was untouched.
    let after: u64 = c.call_text("one_pid", json!({})).await.parse().unwrap();
    assert_ne!(before, after);
    assert_eq!(
        c.call_text("two_echo", json!({"text": "still"})).await,
        "two: still"
    );
    let sessions = proxy.admin_json("/api/mcp/sessions").await;
    let one = &sessions["sessions"][0]["targets"][0];
    assert_eq!(one["restarts"], 1);
    assert_eq!(one["pid"], after);
    assert!(
        proxy.log().contains("one crashing on request"),
        "child stderr is logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_writing_past_the_line_bound_is_cut_off_and_restarted() {
    let port = free_port();
    let proxy = Proxy::start(&mcp::config(port, &["one"], "", "")).await;
    let mut c = McpClient::connect(&proxy.url(port, "/mcp")).await;
    let before: u64 = c.call_text("pid", json!({})).await.parse().unwrap();
    let flood = c.call("flood", json!({})).await;
    assert_eq!(flood["error"]["code"], -32603, "{flood}");
    let message = flood["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("MCP target `one` wrote a message over 8 MiB"),
        "{message}"
    );
    let after: u64 = c.call_text("pid", json!({})).await.parse().unwrap();
    assert_ne!(before, after, "the next call runs in a new child");
    wait_dead(&[before]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_and_idle_sessions_take_their_children_with_them() {
    let port = free_port();
    let settings = "config:\n  mcp: {sessionTtl: 1s}\n";
    let proxy = Proxy::start(&mcp::config(port, &["one"], "", settings)).await;
    let url = proxy.url(port, "/mcp");

    let c = McpClient::connect(&url).await;
    let pids = child_pids(&proxy).await;
    let resp = c.delete().await;
    assert_eq!(resp.status(), 200);
    wait_dead(&pids).await;
    let resp = c
        .post(&json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}))
        .await;
    assert_eq!(resp.status(), 404);

    // An idle session is closed after its TTL; a busy one is not.
    let mut idle = McpClient::connect(&url).await;
    let idle_pid: u64 = idle.call_text("pid", json!({})).await.parse().unwrap();
    let mut busy = McpClient::connect(&url).await;
    let busy_answer = busy.call_text("sleep", json!({"ms": 2500})).await;
    assert_eq!(busy_answer, "slept 2500 ms");
    wait_dead(&[idle_pid]).await;
    let resp = idle
        .post(&json!({"jsonrpc": "2.0", "id": 6, "method": "ping"}))
        .await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_and_children_past_their_limits_get_503() {
    let port = free_port();
    let settings = "config:\n  mcp: {maxSessions: 1}\n";
    let proxy = Proxy::start(&mcp::config(port, &["one"], "", settings)).await;
    let url = proxy.url(port, "/mcp");
    let first = McpClient::connect(&url).await;
    let resp = McpClient::new(&url).post(&mcp::initialize_request()).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.text().await.unwrap().contains("maxSessions"));
    first.delete().await;
    McpClient::connect(&url).await;

    // Two targets per session, three children allowed: the second session does not fit.
    let port = free_port();
    let settings = "config:\n  mcp: {maxChildren: 3}\n";
    let proxy = Proxy::start(&mcp::config(port, &["one", "two"], "", settings)).await;
    let url = proxy.url(port, "/mcp");
    let _first = McpClient::connect(&url).await;
    let resp = McpClient::new(&url).post(&mcp::initialize_request()).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.text().await.unwrap().contains("maxChildren"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_survive_reloads_until_their_target_changes() {
    let port = free_port();
    let config = mcp::config(port, &["one", "two"], "", "");
    let proxy = Proxy::start(&config).await;
    let url = proxy.url(port, "/mcp");
    let mut c = McpClient::connect(&url).await;
    let pid: u64 = c.call_text("one_pid", json!({})).await.parse().unwrap();

    // An unrelated change: the session and its children stay.
    let v1 = proxy.version().await;
    let other = free_port();
    proxy.replace_config(&format!(
        "{config}- port: {other}\n  listeners:\n  - routes:\n    - backends:\n      - host: 127.0.0.1:9\n"
    ));
    let v2 = proxy.wait_version_change(&v1).await;
    assert_eq!(c.call_text("one_pid", json!({})).await, pid.to_string());

    // Target `two` changes (new args): the session closes and its children go.
    let pids = child_pids(&proxy).await;
    let changed = config.replace("args: [two]", "args: [two, changed]");
    proxy.replace_config(&changed);
    proxy.wait_version_change(&v2).await;
    wait_dead(&pids).await;
    let resp = c
        .post(&json!({"jsonrpc": "2.0", "id": 7, "method": "ping"}))
        .await;
    assert_eq!(resp.status(), 404);
    let mut fresh = McpClient::connect(&url).await;
    assert_eq!(
        fresh.call_text("two_echo", json!({"text": "new"})).await,
        "two: new"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_lets_in_flight_calls_finish_before_closing() {
    let port = free_port();
    let config = mcp::config(port, &["one"], "", "");
    let proxy = Proxy::start(&config).await;
    let url = proxy.url(port, "/mcp");
    let mut c = McpClient::connect(&url).await;
    let pids = child_pids(&proxy).await;
    let call = tokio::spawn(async move { c.call_text("sleep", json!({"ms": 1500})).await });
    proxy.wait_mcp_in_flight(1).await;
    let v1 = proxy.version().await;
    proxy.replace_config(&config.replace("args: [one]", "args: [one, v2]"));
    proxy.wait_version_change(&v1).await;
    assert_eq!(call.await.unwrap(), "slept 1500 ms");
    wait_dead(&pids).await;
}

/// An MCP config whose first target cannot start.
fn with_broken_target(port: u16, extra_backend: &str) -> String {
    let broken = "          - name: broken\n            stdio: {cmd: /nonexistent/mcp-server}\n";
    mcp::config(port, &["one"], extra_backend, "")
        .replace("targets:\n", &format!("targets:\n{broken}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_target_is_skipped_unless_fail_closed() {
    let port = free_port();
    let proxy = Proxy::start(&with_broken_target(port, "")).await;
    let mut c = McpClient::connect(&proxy.url(port, "/mcp")).await;
    let tools = c.tool_names().await;
    assert!(tools.contains(&"one_add".to_string()), "{tools:?}");
    assert!(!tools.iter().any(|t| t.starts_with("broken_")));
    let failures = proxy
        .metric(
            "tollgate_mcp_target_failures_total",
            &[r#"server="broken""#],
        )
        .await;
    assert!(failures >= 1.0);
    assert!(proxy.log().contains("/nonexistent/mcp-server"));

    let port = free_port();
    let proxy = Proxy::start(&with_broken_target(
        port,
        "          failureMode: failClosed\n",
    ))
    .await;
    let mut c = McpClient::new(&proxy.url(port, "/mcp"));
    let answer: Value = c.initialize().await;
    assert_eq!(answer["error"]["code"], -32603, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broken")
    );
    assert_eq!(
        proxy.admin_json("/api/mcp/sessions").await["sessions"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn browsers_may_send_and_read_the_session_header() {
    let port = free_port();
    let cors = "      policies:\n        cors:\n          allowOrigins: ['*']\n          allowHeaders: [mcp-protocol-version, content-type, cache-control, accept]\n          allowMethods: [GET, POST, OPTIONS]\n";
    let config = mcp::config(port, &["one"], "", "")
        .replace("      backends:\n", &format!("{cors}      backends:\n"));
    let proxy = Proxy::start(&config).await;
    let url = proxy.url(port, "/mcp");
    let http = tollgate_tests::http();
    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://127.0.0.1:15000")
        .header("access-control-request-method", "DELETE")
        .header(
            "access-control-request-headers",
            "mcp-session-id,content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(allowed.contains("mcp-session-id"), "{allowed}");
    let methods = preflight.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(methods.contains("DELETE"), "{methods}");

    let resp = http
        .post(&url)
        .header("origin", "http://127.0.0.1:15000")
        .header("content-type", "application/json")
        .header("accept", mcp::ACCEPT)
        .json(&mcp::initialize_request())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let exposed = resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(exposed.contains("mcp-session-id"), "{exposed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_leaves_no_child_behind() {
    let port = free_port();
    let mut proxy = Proxy::start(&mcp::config(port, &["one", "two"], "", "")).await;
    let url = proxy.url(port, "/mcp");
    let _a = McpClient::connect(&url).await;
    let _b = McpClient::connect(&url).await;
    let pids = child_pids(&proxy).await;
    assert_eq!(pids.len(), 4);
    let status = proxy.terminate().await;
    assert!(status.success(), "{status:?}");
    wait_dead(&pids).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_mcp_settings_value_is_rejected_with_its_location() {
    let port = free_port();
    let config = mcp::config(
        port,
        &["one"],
        "",
        "config:\n  mcp: {sessionTtl: soon, maxSessions: 0, maxChildren: 0}\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcp.yaml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(tollgate_tests::binary("tollgate"))
        .args(["check", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains("mcp.yaml:2:") && err.contains("sessionTtl"),
        "{err}"
    );
    assert!(
        err.contains("maxSessions") && err.contains("maxChildren"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_survive_control_plane_pushes_and_are_reported() {
    use std::net::{IpAddr, Ipv4Addr};
    use tollgate_tests::ControlPlane;
    use tollgate_tests::proxy::ProxyOptions;

    let port = free_port();
    let config = mcp::config(port, &["one", "two"], "", "");
    let cp = ControlPlane::start(&[("mcp.yaml", &config)]).await;
    let url = cp.url();
    let proxy = Proxy::spawn(ProxyOptions {
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 31)),
        control_plane: Some((&url, "mcp")),
        args: vec![
            "--allow-command".into(),
            tollgate_tests::binary("tollgate-fake-mcp")
                .display()
                .to_string(),
        ],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let mut c = McpClient::connect(&proxy.url(port, "/mcp")).await;
    let pid = c.call_text("one_pid", json!({})).await;
    eventually(Duration::from_secs(10), || async {
        let proxies = cp.json("/api/proxies").await;
        match proxies["proxies"][0]["mcpSessions"].as_u64() {
            Some(1) => Ok(()),
            other => Err(format!("mcpSessions {other:?}")),
        }
    })
    .await;

    let v1 = proxy.version().await;
    let other = free_port();
    cp.write(
        "mcp.yaml",
        &format!("{config}- port: {other}\n  listeners:\n  - routes:\n    - backends: [{{host: \"127.0.0.1:9\"}}]\n"),
    );
    proxy.wait_version_change(&v1).await;
    assert_eq!(c.call_text("one_pid", json!({})).await, pid);
}

#[tokio::test(flavor = "multi_thread")]
async fn target_notifications_arrive_on_the_session_event_stream() {
    let port = free_port();
    let proxy = Proxy::start(&mcp::config(port, &["one", "two"], "", "")).await;
    let mut c = McpClient::connect(&proxy.url(port, "/mcp")).await;
    let resp = c.open_stream().await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut stream = EventStream::new(resp);
    assert_eq!(
        c.open_stream().await.status(),
        409,
        "one stream per session"
    );

    assert_eq!(c.call_text("two_announce", json!({})).await, "announced");
    let note = stream.next_message().await;
    assert_eq!(note["method"], "notifications/tools/list_changed", "{note}");
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_targets_over_streamable_http_and_legacy_sse() {
    // Gateway A serves a stdio server; gateway B reaches it as two remote targets.
    let a_port = free_port();
    let a = Proxy::start(&mcp::config(a_port, &["one"], "", "")).await;
    let b_port = free_port();
    let b = Proxy::start(&format!(
        "binds:\n- port: {b_port}\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: streamable\n            mcp: {{host: \"127.0.0.1:{a_port}\"}}\n          - name: legacy\n            sse: {{host: \"http://127.0.0.1:{a_port}/sse\"}}\n"
    ))
    .await;
    let mut c = McpClient::connect(&b.url(b_port, "/mcp")).await;
    let tools = c.tool_names().await;
    assert!(tools.contains(&"streamable_add".to_string()), "{tools:?}");
    assert!(tools.contains(&"legacy_add".to_string()), "{tools:?}");
    assert_eq!(
        c.call_text("streamable_add", json!({"a": 1, "b": 2})).await,
        "3"
    );
    assert_eq!(
        c.call_text("legacy_echo", json!({"text": "old"})).await,
        "one: old"
    );

    let sessions = a.admin_json("/api/mcp/sessions").await;
    let mut transports: Vec<&str> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["transport"].as_str().unwrap())
        .collect();
    transports.sort();
    assert_eq!(transports, ["sse", "streamableHttp"]);
    let b_sessions = b.admin_json("/api/mcp/sessions").await;
    assert_eq!(b_sessions["sessions"][0]["targets"][0]["kind"], "mcp");
    assert_eq!(b_sessions["sessions"][0]["targets"][1]["kind"], "sse");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abandoned_call_does_not_keep_its_session_busy() {
    let port = free_port();
    let proxy = Proxy::start(&mcp::config(port, &["one"], "", "")).await;
    let mut c = McpClient::connect(&proxy.url(port, "/mcp")).await;
    let mut slow = McpClient::new(&proxy.url(port, "/mcp"));
    slow.session = c.session.clone();
    let call = tokio::spawn(async move { slow.call("sleep", json!({"ms": 20_000})).await });
    proxy.wait_mcp_in_flight(1).await;
    call.abort(); // the client gives up: its connection closes
    proxy.wait_mcp_in_flight(0).await;
    assert_eq!(
        c.call_text("echo", json!({"text": "still"})).await,
        "one: still"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_sse_session_has_a_bound_on_requests_in_progress() {
    let port = free_port();
    let _proxy = Proxy::start(&mcp::config(port, &["one"], "", "")).await;
    let mut s = SseSession::open(&format!("http://127.0.0.1:{port}"), "/sse").await;
    s.send(
        "initialize",
        Some(json!({"protocolVersion": "2024-11-05", "capabilities": {},
            "clientInfo": {"name": "busy", "version": "1"}})),
    )
    .await
    .unwrap();
    let http = tollgate_tests::http();
    let mut statuses = Vec::new();
    for id in 0..70 {
        let resp = http
            .post(&s.endpoint)
            .header("content-type", "application/json")
            .json(
                &json!({"jsonrpc": "2.0", "id": 1000 + id, "method": "tools/call",
                "params": {"name": "sleep", "arguments": {"ms": 3000}}}),
            )
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        64,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        6,
        "{statuses:?}"
    );
}
