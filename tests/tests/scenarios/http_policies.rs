//! agentgateway's HTTP route policies through a real proxy: the authority sent upstream
//! (`urlRewrite.authority`), redirects answered by the gateway, and mirrored requests.

use std::time::Duration;

use tollgate_tests::{FakeUpstream, Proxy, free_port};

fn host_seen(up: &FakeUpstream, path: &str) -> String {
    let seen = up.requests();
    let request = seen.iter().find(|r| r.path == path).unwrap();
    request.headers["host"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn authority_rewrites_and_redirects() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let route = |name: &str, prefix: &str, policy: &str, backend: bool| {
        let backends = if backend {
            format!("      backends: [{{host: \"{}\"}}]\n", up.authority())
        } else {
            String::new()
        };
        format!(
            "    - name: {name}\n      matches: [{{path: {{pathPrefix: {prefix}}}}}]\n      policies:\n        {policy}\n{backends}"
        )
    };
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n{}{}{}{}{}{}",
        route(
            "full",
            "/full",
            "urlRewrite: {authority: {full: custom-host-header}, path: {full: /new-path}}",
            true
        ),
        route(
            "port",
            "/port",
            "urlRewrite: {authority: {port: 9999}}",
            true
        ),
        route("auto", "/auto", "urlRewrite: {authority: auto}", true),
        route("none", "/none", "urlRewrite: {authority: none}", true),
        route(
            "https",
            "/old",
            "requestRedirect: {scheme: https, path: {prefix: /new}, status: 301}",
            false
        ),
        route(
            "moved",
            "/moved",
            "requestRedirect: {authority: {host: elsewhere.test}}",
            false
        ),
    );
    let proxy = Proxy::start(&config).await;
    let client = tollgate_tests::http_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| client.get(proxy.url(port, path)).send();

    assert_eq!(get("/full/x").await.unwrap().status(), 200);
    assert_eq!(host_seen(&up, "/new-path"), "custom-host-header");
    assert_eq!(get("/port").await.unwrap().status(), 200);
    assert_eq!(host_seen(&up, "/port"), "127.0.0.1:9999");
    assert_eq!(get("/auto").await.unwrap().status(), 200);
    assert_eq!(host_seen(&up, "/auto"), up.authority());
    assert_eq!(get("/none").await.unwrap().status(), 200);
    assert_eq!(host_seen(&up, "/none"), format!("127.0.0.1:{port}"));

    let resp = get("/old/a?q=1").await.unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(resp.headers()["location"], "https://127.0.0.1/new/a?q=1");
    let resp = get("/moved/b").await.unwrap();
    assert_eq!(resp.status(), 302, "302 when no status is set");
    assert_eq!(
        resp.headers()["location"],
        format!("http://elsewhere.test:{port}/moved/b"),
        "the request's port is kept when neither scheme nor port change"
    );
    let redirected = up.requests().iter().any(|r| r.path.starts_with("/old"));
    assert!(!redirected, "a redirect never reaches a backend");
}

/// agentgateway's `http` example mirrors half of its requests: the share holds within bounds,
/// copies carry the body but not the gateway's key, and a mirror that never answers neither
/// delays nor changes the real response; its failures are only counted.
#[tokio::test(flavor = "multi_thread")]
async fn mirrors_copy_a_share_and_never_touch_the_real_response() {
    let up = FakeUpstream::start("real").await;
    let mirror = FakeUpstream::start("mirror").await;
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: half\n      matches: [{{path: {{pathPrefix: /half}}}}]\n      policies:\n        backendAuth: {{key: gateway-secret}}\n        requestMirror: {{backend: {{host: \"{}\"}}, percentage: .5}}\n      backends: [{{host: \"{}\"}}]\n    - name: silent\n      matches: [{{path: {{pathPrefix: /silent}}}}]\n      policies:\n        requestMirror: {{backend: {{host: \"{silent_addr}\"}}, percentage: 1.0}}\n      backends: [{{host: \"{}\"}}]\n",
        mirror.authority(),
        up.authority(),
        up.authority()
    );
    let proxy = Proxy::start(&config).await;
    let client = tollgate_tests::http();
    const SENT: usize = 200;
    for i in 0..SENT {
        let resp = client
            .post(proxy.url(port, &format!("/half/{i}")))
            .body(format!("body {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let echoed: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            echoed["upstream"], "real",
            "the mirror never answers the client"
        );
    }
    let sent = tollgate_tests::eventually(Duration::from_secs(10), || async {
        let counted = proxy
            .metric(
                "tollgate_mirror_requests_total",
                &["route=\"half\"", "result=\"sent\""],
            )
            .await;
        if counted as usize == mirror.requests().len() {
            Ok(counted as usize)
        } else {
            Err(format!(
                "{counted} counted, {} seen",
                mirror.requests().len()
            ))
        }
    })
    .await;
    // Binomial(200, 0.5): 60..=140 is more than five standard deviations either side.
    assert!((60..=140).contains(&sent), "{sent} of {SENT} mirrored");
    for copy in mirror.requests() {
        let n = copy.path.trim_start_matches("/half/");
        assert_eq!(copy.method, "POST");
        assert_eq!(copy.body, format!("body {n}").as_bytes());
        assert!(copy.headers.get("authorization").is_none(), "{copy:?}");
    }
    let real = up.requests();
    assert_eq!(real.len(), SENT);
    assert!(
        real.iter()
            .all(|r| r.headers["authorization"] == "Bearer gateway-secret")
    );

    // The silent mirror holds every copy until its timeout; the real answers are unaffected.
    let quick = tollgate_tests::http_builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for _ in 0..3 {
        let resp = quick.get(proxy.url(port, "/silent")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    tollgate_tests::eventually(Duration::from_secs(20), || async {
        let failed = proxy
            .metric(
                "tollgate_mirror_requests_total",
                &["route=\"silent\"", "result=\"failed\""],
            )
            .await;
        if failed == 3.0 {
            Ok(())
        } else {
            Err(format!("{failed} failed copies counted"))
        }
    })
    .await;
}

/// `policies.health` on `host` backends: a backend that refuses connections is evicted after
/// its first failure, so the route's other backend takes every later request.
#[tokio::test(flavor = "multi_thread")]
async fn an_unhealthy_host_backend_is_evicted() {
    let live = FakeUpstream::start("live").await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - host: \"{}\"\n      - host: \"{dead_addr}\"\n        policies:\n          health:\n            unhealthyExpression: response.code >= 500\n            eviction: {{duration: 1h}}\n",
        live.authority()
    );
    let proxy = Proxy::start(&config).await;
    let mut failed = 0;
    for _ in 0..40 {
        let resp = tollgate_tests::get(proxy.url(port, "/")).await.unwrap();
        if resp.status() != 200 {
            assert_eq!(resp.status(), 503, "connection refused");
            failed += 1;
        }
    }
    // Half the requests would fail without eviction; with it, only the first sent there.
    assert_eq!(
        failed, 1,
        "{failed} of 40 requests reached the dead backend"
    );
    assert_eq!(live.requests().len(), 39);
}

/// agentgateway's `delegation` example, unchanged but for its addresses: a parent route hands
/// its requests to a route group; what no child matches is a 404, as in agentgateway.
#[tokio::test(flavor = "multi_thread")]
async fn route_groups_serve_the_delegation_example() {
    let (foo, bar, team2) = (
        FakeUpstream::start("foo").await,
        FakeUpstream::start("bar").await,
        FakeUpstream::start("team2").await,
    );
    let example =
        tollgate_tests::workspace_root().join("tests/fixtures/agentgateway/delegation/config.yaml");
    let port = free_port();
    let config = std::fs::read_to_string(example)
        .unwrap()
        .replace("port: 3000", &format!("port: {port}"))
        .replace("127.0.0.1:8080", &foo.authority())
        .replace("127.0.0.1:8081", &bar.authority())
        .replace("127.0.0.1:8082", &team2.authority());
    let proxy = Proxy::start(&config).await;
    let served_by = |path: &'static str| {
        let url = proxy.url(port, path);
        async move {
            let resp = tollgate_tests::get(url).await.unwrap();
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            (status, body["upstream"].as_str().unwrap_or("").to_string())
        }
    };
    assert_eq!(served_by("/anything/team1/foo").await, (200, "foo".into()));
    assert_eq!(
        served_by("/anything/team1/bar/x").await,
        (200, "bar".into())
    );
    assert_eq!(served_by("/anything/team2").await, (200, "team2".into()));
    assert_eq!(served_by("/anything/team1/other").await.0, 404);
    assert_eq!(served_by("/other").await.0, 404);
    let labels = ["route=\"child-foo\"", "status=\"200\""];
    assert_eq!(
        proxy.metric("agentgateway_requests_total", &labels).await,
        1.0
    );
}
