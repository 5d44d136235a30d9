//! One control plane, three proxies on 127.0.0.2-4: edits converge, broken edits are not
//! pushed, a proxy-side rejection shows as ERROR, a control-plane restart changes nothing.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tollgate_shared::compress::decompress;
use tollgate_shared::proto::v1 as pb;
use tollgate_shared::proto::v1::config_stream_client::ConfigStreamClient;
use tollgate_tests::proxy::ProxyOptions;
use tollgate_tests::{ControlPlane, FakeUpstream, Proxy, eventually, free_port};

fn edge(port: u16, upstream: &str, tag: &str, auth: bool) -> String {
    let auth = if auth {
        "        backendAuth: {key: \"$TOLLGATE_TEST_ONLY_SOME\"}\n"
    } else {
        ""
    };
    format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: api\n      policies:\n{auth}        localRateLimit: [{{maxTokens: 1000, tokensPerFill: 1, fillInterval: 1h}}]\n        requestHeaderModifier: {{set: {{x-tag: \"{tag}\"}}}}\n      backends: [{{host: \"{upstream}\"}}]\n"
    )
}

async fn tag(proxy: &Proxy, port: u16) -> Result<String, String> {
    let r = tollgate_tests::get(proxy.url(port, "/"))
        .await
        .map_err(|e| e.to_string())?;
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    Ok(v["headers"]["x-tag"].as_str().unwrap_or("").to_string())
}

async fn all_serve(proxies: &[Proxy], port: u16, want: &str) {
    for p in proxies {
        eventually(Duration::from_secs(10), || async {
            match tag(p, port).await? {
                t if t == want => Ok(()),
                t => Err(format!(
                    "{} serves {t}, want {want}; log:\n{}",
                    p.ip,
                    p.log()
                )),
            }
        })
        .await;
    }
}

async fn proxy_statuses(cp: &ControlPlane) -> Vec<(String, String)> {
    let v = cp.json("/api/proxies").await;
    let mut out: Vec<(String, String)> = v["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["address"].as_str().unwrap_or("").to_string(),
                p["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn gateway_version(cp: &ControlPlane) -> String {
    cp.json("/api/gateways").await["gateways"][0]["version"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_stream_to_three_proxies() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let mut cp =
        ControlPlane::start(&[("edge.yaml", &edge(port, &up.authority(), "v1", false))]).await;
    let url = cp.url();
    let proxies: Vec<Proxy> = (2..=4)
        .map(|n| {
            let env = if n == 4 {
                vec![]
            } else {
                vec![("TOLLGATE_TEST_ONLY_SOME", "secret-on-some")]
            };
            Proxy::spawn(ProxyOptions {
                ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)),
                env,
                control_plane: Some((&url, "edge")),
                args: vec!["--allow-env".into(), "TOLLGATE_TEST_ONLY_SOME".into()],
                ..Default::default()
            })
        })
        .collect();
    for p in &proxies {
        p.wait_ready().await;
    }
    all_serve(&proxies, port, "v1").await;
    let proxies = Arc::new(proxies);

    // Traffic throughout: no request may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic = {
        let (proxies, stop, ok, failed) =
            (proxies.clone(), stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let client = tollgate_tests::http();
            while !stop.load(Ordering::Relaxed) {
                for p in proxies.iter() {
                    match client.get(p.url(port, "/")).send().await {
                        Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // An edit converges on every proxy; all report SYNCED.
    cp.write("edge.yaml", &edge(port, &up.authority(), "v2", false));
    all_serve(&proxies, port, "v2").await;
    eventually(Duration::from_secs(10), || async {
        let s = proxy_statuses(&cp).await;
        if s.len() == 3 && s.iter().all(|(_, st)| st == "SYNCED") {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    let v2 = gateway_version(&cp).await;

    // A broken edit is not pushed, and its location is reported.
    cp.write(
        "edge.yaml",
        &edge(port, &up.authority(), "v2", false).replace("localRateLimit", "localRateLimt"),
    );
    eventually(Duration::from_secs(10), || async {
        let g = cp.json("/api/gateways").await;
        let err = &g["gateways"][0]["lastError"][0];
        if err["line"] == 7
            && err["message"]
                .as_str()
                .is_some_and(|m| m.contains("did you mean `localRateLimit`"))
        {
            Ok(())
        } else {
            Err(format!("{g}"))
        }
    })
    .await;
    assert_eq!(gateway_version(&cp).await, v2);
    assert!(proxy_statuses(&cp).await.iter().all(|(_, s)| s == "SYNCED"));
    // Nor is an emptied file: pushed, it would remove every proxy's listeners.
    cp.write("edge.yaml", "");
    eventually(Duration::from_secs(10), || async {
        let g = cp.json("/api/gateways").await;
        let message = g["gateways"][0]["lastError"][0]["message"].as_str();
        if message.is_some_and(|m| m.contains("the file is empty")) {
            Ok(())
        } else {
            Err(format!("{g}"))
        }
    })
    .await;
    assert_eq!(gateway_version(&cp).await, v2);
    all_serve(&proxies, port, "v2").await;

    // A snapshot one proxy cannot apply (its environment lacks the key): ERROR for that proxy,
    // which keeps serving v2; the others move to v3.
    cp.write("edge.yaml", &edge(port, &up.authority(), "v3", true));
    all_serve(&proxies[..2], port, "v3").await;
    let lone = &proxies[2];
    eventually(Duration::from_secs(10), || async {
        let v = cp.json("/api/proxies").await;
        let err = v["proxies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["status"] == "ERROR")
            .cloned();
        match err {
            Some(p)
                if p["lastNack"]
                    .as_str()
                    .is_some_and(|m| m.contains("TOLLGATE_TEST_ONLY_SOME")) =>
            {
                Ok(())
            }
            _ => Err(format!("{v}")),
        }
    })
    .await;
    assert_eq!(tag(lone, port).await.unwrap(), "v2");
    let config = cp.json("/api/gateways/edge/config").await.to_string();
    assert!(config.contains("$TOLLGATE_TEST_ONLY_SOME") && !config.contains("secret-on-some"));

    // Control plane down: everyone keeps serving. Back up: same version, no bucket refilled.
    let v3 = gateway_version(&cp).await;
    let level = |p: &Proxy| {
        let p = p.admin;
        async move {
            let v: Value = tollgate_tests::get(format!("http://{p}/api/ratelimits"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["buckets"][0]["level"].as_u64().unwrap()
        }
    };
    let before = level(&proxies[0]).await;
    assert!(before < 1000, "traffic used the bucket");
    let lost = "config stream lost";
    let seen_before: Vec<usize> = proxies
        .iter()
        .map(|p| p.log().matches(lost).count())
        .collect();
    cp.kill().await;
    for (p, before) in proxies.iter().zip(seen_before) {
        p.wait_log(lost, before).await;
    }
    all_serve(&proxies[..2], port, "v3").await;
    cp.restart().await;
    assert_eq!(gateway_version(&cp).await, v3, "versions survive a restart");
    eventually(Duration::from_secs(20), || async {
        let s = proxy_statuses(&cp).await;
        let synced = s.iter().filter(|(_, st)| st == "SYNCED").count();
        if s.len() == 3 && synced == 2 {
            Ok(())
        } else {
            Err(format!("{s:?}; cp log:\n{}", cp.log()))
        }
    })
    .await;
    assert!(
        level(&proxies[0]).await <= before,
        "a resync never refills a bucket"
    );

    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("requests during the control-plane scenario: {ok} ok, {failed} failed");
    assert!(ok > 0);
    assert_eq!(failed, 0);

    // A proxy (re)started now gets the current snapshot; readiness waits for it.
    let late = Proxy::spawn(ProxyOptions {
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5)),
        env: vec![("TOLLGATE_TEST_ONLY_SOME", "secret-on-some")],
        control_plane: Some((&url, "edge")),
        args: vec!["--allow-env".into(), "TOLLGATE_TEST_ONLY_SOME".into()],
        ..Default::default()
    });
    late.wait_ready().await;
    assert_eq!(tag(&late, port).await.unwrap(), "v3");
    assert_eq!(late.version().await, v3);
}

/// A gateway no file defines is refused (nothing is kept for it); the proxy retries, not
/// ready, until the file appears.
#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_before_its_gateway_exists_is_not_ready() {
    let cp = ControlPlane::start(&[]).await;
    let url = cp.url();
    let proxy = Proxy::spawn(ProxyOptions {
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6)),
        control_plane: Some((&url, "later")),
        ..Default::default()
    });
    let ready = format!("http://{}/healthz/ready", proxy.readiness);
    eventually(Duration::from_secs(10), || async {
        match tollgate_tests::get(&ready).await {
            Ok(r) if r.status() == 503 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Not ready from the start; the refusal comes with the first attempt.
    proxy.wait_log("no file defines gateway `later`", 0).await;
    assert!(proxy_statuses(&cp).await.is_empty());

    let up = FakeUpstream::start("u").await;
    let port = free_port();
    cp.write("later.yaml", &edge(port, &up.authority(), "first", false));
    proxy.wait_ready().await;
    assert_eq!(tag(&proxy, port).await.unwrap(), "first");
}

/// A stream client that says hello (as a proxy older than deltas) and then never reads.
async fn stuck_client(
    url: &str,
    gateway: &str,
) -> (
    tokio::sync::mpsc::Sender<pb::ProxyMessage>,
    tonic::Streaming<pb::ServerMessage>,
) {
    raw_stream(url, gateway, "stuck", false).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_proxy_delays_nobody_and_a_port_conflict_is_a_nack() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let cp = ControlPlane::start(&[("g.yaml", &edge(port, &up.authority(), "t0", false))]).await;
    let url = cp.url();
    let _stuck = stuck_client(&url, "g").await;
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7));
    let proxy = Proxy::spawn(ProxyOptions {
        ip,
        control_plane: Some((&url, "g")),
        ..Default::default()
    });
    proxy.wait_ready().await;
    for i in 1..=5 {
        let want = format!("t{i}");
        cp.write("g.yaml", &edge(port, &up.authority(), &want, false));
        all_serve(std::slice::from_ref(&proxy), port, &want).await;
    }

    // A port this proxy cannot bind: NACKed with the reason, the old config keeps serving.
    let busy = std::net::TcpListener::bind((ip, 0)).unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let two_ports = format!(
        "{}- port: {busy_port}\n  listeners:\n  - routes:\n    - backends: [{{host: \"{}\"}}]\n",
        edge(port, &up.authority(), "t6", false),
        up.authority()
    );
    cp.write("g.yaml", &two_ports);
    eventually(Duration::from_secs(10), || async {
        let v = cp.json("/api/proxies").await;
        let nack = v["proxies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["nodeId"] != "stuck")
            .map(|p| p["lastNack"].clone());
        match nack {
            Some(Value::String(m))
                if m.contains("cannot listen on") && m.contains(&busy_port.to_string()) =>
            {
                Ok(())
            }
            _ => Err(format!("{v}")),
        }
    })
    .await;
    assert_eq!(tag(&proxy, port).await.unwrap(), "t5");
}

#[tokio::test(flavor = "multi_thread")]
async fn acks_count_only_with_the_current_nonce() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let cp = ControlPlane::start(&[("n.yaml", &edge(port, &up.authority(), "a", false))]).await;
    let (tx, mut inbound) = stuck_client(&cp.url(), "n").await;
    let push = match inbound.message().await.unwrap().unwrap().kind {
        Some(pb::server_message::Kind::Push(p)) => p,
        other => panic!("expected a push, got {other:?}"),
    };
    let status = || async { proxy_statuses(&cp).await[0].1.clone() };
    assert_eq!(status().await, "STALE", "sent, not yet acknowledged");
    let reply = |kind| pb::ProxyMessage { kind: Some(kind) };
    let stale = pb::Ack {
        version: push.version.clone(),
        nonce: format!("{}-old", push.nonce),
    };
    tx.send(reply(pb::proxy_message::Kind::Ack(stale)))
        .await
        .unwrap();
    tollgate_tests::settle(Duration::from_millis(300)).await;
    assert_eq!(status().await, "STALE", "a stale nonce is ignored");
    let ack = pb::Ack {
        version: push.version.clone(),
        nonce: push.nonce.clone(),
    };
    tx.send(reply(pb::proxy_message::Kind::Ack(ack)))
        .await
        .unwrap();
    eventually(Duration::from_secs(5), || async {
        match status().await {
            s if s == "SYNCED" => Ok(()),
            s => Err(s),
        }
    })
    .await;
    let v = cp.json("/api/proxies").await;
    assert_eq!(v["proxies"][0]["versionAcked"], Value::String(push.version));
    let metrics = tollgate_tests::get(format!("http://{}/metrics", cp.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("tollgate_cp_acks_total 1"), "{metrics}");
    assert!(
        metrics.contains("tollgate_cp_push_to_ack_seconds_count 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_file_is_gateway_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("whatever.yaml");
    std::fs::write(&file, edge(free_port(), "127.0.0.1:9", "x", false)).unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let grpc = format!("127.0.0.1:{}", free_port());
    let _cp = tokio::process::Command::new(tollgate_tests::binary("tollgate-cp"))
        .arg("-f")
        .arg(&file)
        .args(["--listen", &grpc, "--admin-addr", &admin, "--insecure"])
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(10), || async {
        let v: Value = tollgate_tests::get(format!("http://{admin}/api/gateways"))
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        match v["gateways"][0]["name"].as_str() {
            Some("default") if v["gateways"][0]["version"].is_string() => Ok(()),
            _ => Err(v.to_string()),
        }
    })
    .await;
}

/// Callers' buckets of keyed limits reach the control plane: identity names as they are,
/// other keys (an address) as a short hash.
#[tokio::test(flavor = "multi_thread")]
async fn callers_buckets_are_reported_with_names_or_hashes() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: api\n      policies:\n        localRateLimit:\n        - {{maxTokens: 100, tokensPerFill: 1, fillInterval: 1h, key: 'request.headers[\"x-user\"]'}}\n        - {{maxTokens: 100, tokensPerFill: 1, fillInterval: 1h, key: source.address}}\n      backends: [{{host: \"{}\"}}]\n",
        up.authority()
    );
    let cp = ControlPlane::start(&[("edge.yaml", &config)]).await;
    let url = cp.url();
    let proxy = Proxy::spawn(ProxyOptions {
        control_plane: Some((&url, "edge")),
        ..Default::default()
    });
    proxy.wait_ready().await;
    eventually(Duration::from_secs(10), || async {
        let resp = tollgate_tests::http()
            .get(proxy.url(port, "/"))
            .header("x-user", "alice")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        (resp.status() == 200)
            .then_some(())
            .ok_or("not serving".to_string())
    })
    .await;
    let keys = eventually(Duration::from_secs(15), || async {
        let v = cp.json("/api/proxies").await;
        let keys: Vec<String> = v["proxies"][0]["buckets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["level"] == 99)
            .filter_map(|b| Some(b["key"].as_str()?.to_string()))
            .collect();
        if keys.len() == 2 {
            Ok(keys)
        } else {
            Err(format!("{v}"))
        }
    })
    .await;
    // A header's value is not an identity name: hashed like the address.
    assert!(keys.iter().all(|k| k.starts_with("sha256:")), "{keys:?}");
    assert!(!cp.json("/api/proxies").await.to_string().contains("alice"));
}

/// 200 routes to `upstream`; route `r100` sets `x-tag: <edited>`.
fn two_hundred_routes(port: u16, upstream: &str, edited: &str) -> String {
    let mut out = format!("binds:\n- port: {port}\n  listeners:\n  - routes:\n");
    for i in 0..200 {
        let tag = if i == 100 { edited } else { "same" };
        out.push_str(&format!(
            "    - name: r{i}\n      matches: [{{path: {{exact: /r{i}}}}}]\n      policies: {{requestHeaderModifier: {{set: [{{name: x-tag, value: \"{tag}\"}}]}}}}\n      backends: [{{host: \"{upstream}\"}}]\n"
        ));
    }
    out
}

/// A raw stream whose hello is a proxy of this build (`current`: it takes deltas and
/// compressed pushes) or an older one (plain full pushes only).
async fn raw_stream(
    url: &str,
    gateway: &str,
    node: &str,
    current: bool,
) -> (
    tokio::sync::mpsc::Sender<pb::ProxyMessage>,
    tonic::Streaming<pb::ServerMessage>,
) {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let hello = pb::Hello {
        node_id: node.into(),
        gateway: gateway.into(),
        build: "test".into(),
        accepts_delta: current,
        accepts_compressed: current,
    };
    tx.send(pb::ProxyMessage {
        kind: Some(pb::proxy_message::Kind::Hello(hello)),
    })
    .await
    .unwrap();
    let inbound = ConfigStreamClient::new(channel)
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, inbound)
}

async fn next_push(inbound: &mut tonic::Streaming<pb::ServerMessage>) -> pb::Push {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .expect("a push within 10 s")
            .unwrap()
            .unwrap();
        if let Some(pb::server_message::Kind::Push(p)) = msg.kind {
            return p;
        }
    }
}

async fn ack(tx: &tokio::sync::mpsc::Sender<pb::ProxyMessage>, push: &pb::Push) {
    let ack = pb::Ack {
        version: push.version.clone(),
        nonce: push.nonce.clone(),
    };
    tx.send(pb::ProxyMessage {
        kind: Some(pb::proxy_message::Kind::Ack(ack)),
    })
    .await
    .unwrap();
}

async fn wait_acked(cp: &ControlPlane, node: &str, version: &str) {
    eventually(Duration::from_secs(10), || async {
        let v = cp.json("/api/proxies").await;
        let acked = v["proxies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["nodeId"] == node && p["versionAcked"] == version);
        if acked { Ok(()) } else { Err(format!("{v}")) }
    })
    .await;
}

/// Issue 17: an edit reaches a proxy that takes deltas as a delta from the version it ACKed,
/// rebuilding exactly the bytes an older proxy gets in full; its full pushes come compressed
/// and decompress to those bytes too; a resync answers with a full push; no delta goes to a
/// stream whose ACKed version is not the delta's base; a real proxy applies compressed pushes
/// and deltas and serves the edit.
#[tokio::test(flavor = "multi_thread")]
async fn edits_travel_as_deltas_that_rebuild_the_full_config() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = |tag: &str| two_hundred_routes(port, &up.authority(), tag);
    let cp = ControlPlane::start(&[("d.yaml", &config("v1"))]).await;
    let url = cp.url();
    let proxy = Proxy::spawn(ProxyOptions {
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)),
        control_plane: Some((&url, "d")),
        ..Default::default()
    });
    proxy.wait_ready().await;
    let (tx, mut deltas) = raw_stream(&url, "d", "new", true).await;
    let (_old_tx, mut full) = raw_stream(&url, "d", "old", false).await;

    let first = next_push(&mut deltas).await;
    assert!(first.delta.is_none(), "the first push on a stream is full");
    assert!(
        first.config.is_empty(),
        "a compressed push carries no plain config"
    );
    let first_plain = next_push(&mut full).await;
    assert!(
        first_plain.compressed.is_none(),
        "an older proxy gets it plain"
    );
    let compressed = first.compressed.as_ref().expect("compressed");
    assert!(compressed.lz4.len() * 3 < first_plain.config.len());
    let first_config = decompress(compressed).unwrap();
    assert_eq!(first_config, first_plain.config, "compressed = plain");
    ack(&tx, &first).await;
    wait_acked(&cp, "new", &first.version).await;

    cp.write("d.yaml", &config("v2"));
    let edit = next_push(&mut deltas).await;
    let whole = next_push(&mut full).await;
    assert_eq!(edit.version, whole.version);
    assert!(whole.delta.is_none(), "an older proxy gets the config");
    assert!(edit.config.is_empty(), "a delta push carries no config");
    let delta = edit.delta.clone().expect("a delta from the ACKed version");
    assert_eq!(delta.base_version, first.version);
    assert!(
        prost::Message::encoded_len(&delta) * 10 < whole.config.len(),
        "one route's edit is a small delta"
    );
    assert!(
        edit.compressed.is_none(),
        "a delta push is not also compressed"
    );
    let rebuilt = tollgate_shared::delta::apply(&first_config, &delta).unwrap();
    assert_eq!(rebuilt, whole.config, "delta applied = full applied");

    // A proxy that cannot apply it asks again: the same version comes in full.
    let resync = pb::Resync {
        nonce: edit.nonce.clone(),
        reason: "test".into(),
    };
    tx.send(pb::ProxyMessage {
        kind: Some(pb::proxy_message::Kind::Resync(resync)),
    })
    .await
    .unwrap();
    let again = next_push(&mut deltas).await;
    assert_eq!(again.version, whole.version);
    assert_ne!(again.nonce, edit.nonce);
    assert!(again.delta.is_none());
    assert_eq!(
        decompress(again.compressed.as_ref().unwrap()).unwrap(),
        whole.config
    );

    // Not ACKed: the next edit's delta has no base on this stream, so it comes in full.
    cp.write("d.yaml", &config("v3"));
    let unacked = next_push(&mut deltas).await;
    assert!(
        unacked.delta.is_none(),
        "{:?}",
        unacked.delta.map(|d| d.base_version)
    );
    ack(&tx, &unacked).await;
    wait_acked(&cp, "new", &unacked.version).await;
    cp.write("d.yaml", &config("v4"));
    let resumed = next_push(&mut deltas).await;
    assert_eq!(
        resumed.delta.map(|d| d.base_version),
        Some(unacked.version),
        "deltas resume once a version is ACKed"
    );

    // The real proxy took every edit (deltas after its first push) and serves the last.
    eventually(Duration::from_secs(10), || async {
        let r = tollgate_tests::get(proxy.url(port, "/r100"))
            .await
            .map_err(|e| e.to_string())?;
        let v: Value = r.json().await.map_err(|e| e.to_string())?;
        match v["headers"]["x-tag"].as_str() {
            Some("v4") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let log = cp.log();
    assert!(
        log.matches("asked for a full push").count() <= 1,
        "no resync but the test's own: {log}"
    );
}
