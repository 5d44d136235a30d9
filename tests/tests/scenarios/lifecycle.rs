//! Process lifecycle: startup errors, graceful SIGTERM, several proxies on one machine.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tollgate_tests::proxy::ProxyOptions;
use tollgate_tests::{FakeUpstream, Proxy, free_port};

#[tokio::test(flavor = "multi_thread")]
async fn invalid_config_at_startup_exits_with_the_location() {
    let mut proxy = Proxy::spawn(ProxyOptions {
        config: "binds:\n- port: 1\n  listeners: nope\n",
        ..Default::default()
    });
    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    assert!(!status.success());
    let log = proxy.log();
    assert!(log.contains("config.yaml:3:"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_then_exits_0() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let mut proxy = Proxy::start(&super::simple_config(port, &up.authority())).await;
    let url = proxy.url(port, "/slow");
    let slow = tokio::spawn(async move {
        tollgate_tests::http()
            .get(url)
            .header("x-fake-delay-ms", "1000")
            .send()
            .await
    });
    up.wait_request("/slow").await;
    let status = proxy.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    let resp = slow.await.unwrap().expect("in-flight request completed");
    assert_eq!(resp.status(), 200);
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "no longer accepting"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn listen_ip_lets_replicas_share_ports() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = super::simple_config(port, &up.authority());
    let mut replicas = Vec::new();
    for n in [2, 3] {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, n));
        let p = Proxy::spawn(ProxyOptions {
            config: &config,
            ip,
            ..Default::default()
        });
        p.wait_ready().await;
        replicas.push(p);
    }
    for p in &replicas {
        let r = tollgate_tests::get(p.url(port, "/")).await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(p.admin.ip().to_string().starts_with("127.0.0."));
    }
    assert_eq!(up.requests().len(), 2);
}

/// `--workers N`: N threads named `tollgate-worker-*` serve the client connections, each with
/// its own upstream pool. One client address keeps its connections on one worker (two
/// clients reach the upstream over one connection) until that worker holds more than two
/// connections over the other: eight clients use both workers' pools. With `--workers 0` one
/// shared pool reuses one connection.
#[tokio::test(flavor = "multi_thread")]
async fn connections_are_placed_on_workers_each_with_its_own_upstream_pool() {
    use tollgate_tests::llm::{FakeLlm, Kind};
    for (workers, clients, upstream_connections) in [(2, 2, 1), (2, 8, 2), (0, 8, 1)] {
        let llm = FakeLlm::start(Kind::OpenAi, None).await;
        let port = free_port();
        let config = format!(
            "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - ai: {{name: o, provider: {{openAI: {{model: m}}}}, hostOverride: \"{}\"}}\n",
            llm.authority()
        );
        let proxy = Proxy::spawn(ProxyOptions {
            config: &config,
            args: vec!["--workers".into(), workers.to_string()],
            ..Default::default()
        });
        proxy.wait_ready().await;
        let names: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", proxy.pid()))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("tollgate-worker"))
            .collect();
        assert_eq!(names.len(), workers, "{names:?}");

        // Each client keeps its one connection open; they take turns.
        let clients: Vec<reqwest::Client> = (0..clients).map(|_| tollgate_tests::http()).collect();
        let url = proxy.url(port, "/v1/chat/completions");
        for _ in 0..3 {
            for client in &clients {
                let resp = client
                    .post(&url)
                    .json(&serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                resp.bytes().await.unwrap();
            }
        }
        assert_eq!(
            llm.connections(),
            upstream_connections,
            "--workers {workers}, {} clients",
            clients.len()
        );
    }
}
