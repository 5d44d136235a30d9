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
