//! Attacks on MCP routes: foreign origins, session and child exhaustion, inherited secrets.

use std::time::Duration;

use tollgate_tests::mcp::McpClient;
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
