//! Attacks on the admin API, the Playground, telemetry and what they reveal.

use serde_json::json;
use tollgate_tests::proxy::ProxyOptions;
use tollgate_tests::{FakeLlm, FakeUpstream, Kind, Proxy, free_port};

use crate::scenarios::simple_config;

/// Finding 6: 300 made-up HTTP methods are one `OTHER` series, not 300.
#[tokio::test(flavor = "multi_thread")]
async fn made_up_methods_do_not_grow_metrics() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let proxy = Proxy::start(&simple_config(port, &up.authority())).await;
    let client = tollgate_tests::http();
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("X{i}").as_bytes()).unwrap();
        client
            .request(method, proxy.url(port, "/"))
            .send()
            .await
            .unwrap();
    }
    let metrics = proxy.metrics().await;
    assert!(
        !metrics.contains(r#"method="X1""#),
        "a made-up method is a label"
    );
    let other = proxy
        .metric("agentgateway_requests_total", &[r#"method="OTHER""#])
        .await;
    assert_eq!(other, 300.0);
    assert!(
        metrics.len() < 64 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
}

/// Finding 6: 300 made-up models keep the first 32 per route as labels, then `other`.
#[tokio::test(flavor = "multi_thread")]
async fn made_up_models_do_not_grow_metrics() {
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: chat\n      backends:\n      - ai: {{name: o, provider: {{openAI: {{}}}}, hostOverride: \"{}\"}}\n",
        openai.authority()
    );
    let proxy = Proxy::start(&config).await;
    let client = tollgate_tests::http();
    for i in 0..300 {
        let body = json!({"model": format!("made-up-{i}"), "messages": [{"role": "user", "content": "hi"}]});
        let r = client
            .post(proxy.url(port, "/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let metrics = proxy.metrics().await;
    let models: std::collections::HashSet<&str> = metrics
        .lines()
        .filter_map(|l| l.split("gen_ai_request_model=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(models.len(), 33, "32 models and `other`: {models:?}");
    assert!(models.contains("other") && !models.contains("made-up-299"));
    assert!(
        metrics.len() < 1024 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
}

/// Finding 12: a huge `fillInterval` is refused where it is written; before, the proxy took it
/// and `/metrics` and `/api/ratelimits` panicked for every route.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_fill_interval_is_refused_and_metrics_keep_working() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = |interval: &str| {
        format!(
            "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: all\n      policies:\n        localRateLimit:\n        - {{maxTokens: 5, tokensPerFill: 1, fillInterval: {interval}}}\n      backends:\n      - host: {}\n",
            up.authority()
        )
    };
    let proxy = Proxy::start(&config("1s")).await;
    let version = proxy.version().await;
    proxy.write_config(&config("100000000years"));
    proxy.wait_log("config.yaml:8:", 0).await;
    assert!(proxy.log().contains("at most 366d"), "{}", proxy.log());
    assert_eq!(proxy.version().await, version, "the bad config was applied");
    let r = tollgate_tests::get(proxy.url(port, "/")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        proxy
            .metrics()
            .await
            .contains("agentgateway_ratelimit_bucket_tokens")
    );
    let buckets = proxy.admin_json("/api/ratelimits").await;
    assert!(buckets.to_string().contains("\"all\""), "{buckets}");
}

/// Finding 12: CEL sees credential-like headers and query values as `<redacted>`, found by
/// pattern (`x-goog-api-key`, `mcp-session-id`, `x-amz-security-token`, `*-key`, `*-token`,
/// `?key=`, `?sessionId=`), so a logged field cannot leak them.
#[tokio::test(flavor = "multi_thread")]
async fn cel_fields_do_not_reveal_credentials() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = format!(
        "config:\n  logging:\n    format: json\n    fields:\n      add: {{uri: request.uri, pq: request.pathAndQuery, headers: request.headers}}\nbinds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: all\n      backends:\n      - host: {}\n",
        up.authority()
    );
    let proxy = Proxy::start(&config).await;
    let r = tollgate_tests::http()
        .get(proxy.url(port, "/p?key=leak-q1&sessionId=leak-q2&model=kept-m"))
        .header("x-goog-api-key", "leak-h1")
        .header("mcp-session-id", "leak-h2")
        .header("x-amz-security-token", "leak-h3")
        .header("x-custom-key", "leak-h4")
        .header("x-internal-token", "leak-h5")
        .header("x-client", "kept-h")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let log = tollgate_tests::eventually(std::time::Duration::from_secs(5), || async {
        let log = proxy.access_log();
        if log.contains("kept-h") {
            Ok(log)
        } else {
            Err(format!("no access log line yet: {log}"))
        }
    })
    .await;
    assert!(
        log.contains("kept-m") && log.contains("<redacted>"),
        "{log}"
    );
    assert!(!log.contains("leak-"), "a credential was logged: {log}");
}

/// Finding 8: a rebound DNS name gets 403 from the admin server and the Playground; its own
/// address, `localhost` and `config.adminHosts` names are served, with CSP and `nosniff`.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_server_answers_only_to_its_own_names() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = format!(
        "config:\n  adminHosts: [gw.internal.example]\n{}",
        simple_config(port, &up.authority())
    );
    let proxy = Proxy::start(&config).await;
    let client = tollgate_tests::http();
    let admin = |path: &str| format!("http://{}{path}", proxy.admin);
    for path in ["/api/config", "/ui", "/api/mcp/sessions"] {
        let r = client
            .get(admin(path))
            .header(
                "host",
                format!("rebound.attacker.example:{}", proxy.admin.port()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert!(r.text().await.unwrap().contains("config.adminHosts"));
    }
    for host in ["localhost:15000", "gw.internal.example", "LOCALHOST"] {
        let r = client
            .get(admin("/api/config"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
    }
    let r = client.get(admin("/ui")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let r = client.get(admin("/api/config")).send().await.unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

/// Finding 8: with a token the admin API wants it as a bearer token; the Playground's page
/// still loads (it has a field for the token).
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_token_guards_the_api() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = simple_config(port, &up.authority());
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        env: vec![("TOLLGATE_ADMIN_TOKEN", "admin-secret-1")],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let client = tollgate_tests::http();
    let url = format!("http://{}/api/config", proxy.admin);
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("--admin-token-file"));
    let r = client.get(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .get(&url)
        .bearer_auth("admin-secret-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ui = client
        .get(format!("http://{}/ui", proxy.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("id=\"admin-token\""));
}

/// Finding 8: an admin address that is not loopback needs a token, or the proxy does not start.
#[tokio::test(flavor = "multi_thread")]
async fn a_public_admin_address_without_a_token_is_refused() {
    let up = FakeUpstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, simple_config(free_port(), &up.authority())).unwrap();
    let out = tokio::process::Command::new(tollgate_tests::binary("tollgate"))
        .arg("-f")
        .arg(&file)
        .args([
            "--listen-ip",
            "127.0.0.1",
            "--stats-addr",
            "off",
            "--readiness-addr",
            "off",
        ])
        .arg("--admin-addr")
        .arg(format!("0.0.0.0:{}", free_port()))
        .env_remove("TOLLGATE_ADMIN_TOKEN")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), out)
        .await
        .expect("the proxy started instead of refusing")
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--admin-token-file"), "{stderr}");
}

/// A config with credentials outside `backendAuth`: header values (one from `$VAR`), stdio
/// arguments, a remote MCP URL with user info and a key in its query.
fn config_with_credentials(port: u16) -> String {
    format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: tools\n      policies:\n        requestHeaderModifier:\n          set:\n          - {{name: x-internal-key, value: \"${{HDR_KEY:-leak-env-1}}\"}}\n          - {{name: authorization, value: \"Bearer leak-lit-2\"}}\n          - {{name: x-team, value: kept-team}}\n      backends:\n      - mcp:\n          targets:\n          - name: local\n            stdio: {{cmd: server, args: [\"--token=leak-arg-3\", \"--api-key\", \"leak-arg-4\", kept-arg]}}\n          - name: remote\n            mcp: {{host: \"http://bob:leak-pw-5@127.0.0.1:9/mcp?key=leak-q-6&region=kept-q\"}}\n"
    )
}

/// Finding 7: the proxy's `/api/config` and the control plane's gateway config show `$VAR`
/// references and `<redacted>`, never the credentials.
#[tokio::test(flavor = "multi_thread")]
async fn config_dumps_do_not_reveal_credentials() {
    let port = free_port();
    let config = config_with_credentials(port);
    let proxy = Proxy::start(&config).await;
    let dump = proxy.admin_json("/api/config").await.to_string();
    let cp = tollgate_tests::ControlPlane::start(&[("edge.yaml", &config)]).await;
    let cp_dump = cp.json("/api/gateways/edge/config").await.to_string();
    for dump in [dump, cp_dump] {
        assert!(
            dump.contains("${HDR_KEY:-leak-env-1}") || dump.contains("HDR_KEY"),
            "{dump}"
        );
        for kept in ["kept-team", "kept-arg", "kept-q", "127.0.0.1:9/mcp"] {
            assert!(dump.contains(kept), "{kept} missing: {dump}");
        }
        let without_refs = dump.replace("${HDR_KEY:-leak-env-1}", "");
        assert!(
            !without_refs.contains("leak-"),
            "a credential is shown: {dump}"
        );
    }
}

/// Finding 7: a config error about a URL does not repeat its credentials.
#[tokio::test(flavor = "multi_thread")]
async fn config_errors_do_not_reveal_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    let config = "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: remote\n            mcp: {host: \"http://bob:leak-pw@[::1/mcp?token=leak-q\"}\n";
    std::fs::write(&file, config).unwrap();
    let out = std::process::Command::new(tollgate_tests::binary("tollgate"))
        .args(["check", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("invalid URL"), "{stderr}");
    assert!(!stderr.contains("leak-"), "{stderr}");
}
