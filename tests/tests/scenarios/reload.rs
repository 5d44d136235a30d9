//! Live reload of a standalone proxy: edits apply atomically, broken edits change nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tollgate_tests::{FakeUpstream, Proxy, eventually, free_port};

fn two_routes(port: u16, a: &str, b: &str, b_path: &str) -> String {
    format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: a\n      backends: [{{host: \"{a}\"}}]\n    - name: b\n      matches: [{{path: {{pathPrefix: {b_path}}}}}]\n      backends: [{{host: \"{b}\"}}]\n"
    )
}

async fn upstream_of(url: &str) -> Result<String, String> {
    let r = tollgate_tests::get(url).await.map_err(|e| e.to_string())?;
    let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    Ok(v["upstream"].as_str().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_in_place_and_by_rename_apply() {
    let (a, b) = (
        FakeUpstream::start("a").await,
        FakeUpstream::start("b").await,
    );
    let port = free_port();
    let proxy = Proxy::start(&two_routes(port, &a.authority(), &b.authority(), "/b")).await;
    let url = proxy.url(port, "/new/x");
    assert_eq!(upstream_of(&url).await.unwrap(), "a");
    let v1 = proxy.version().await;

    #[expect(
        clippy::disallowed_methods,
        reason = "the test measures reload latency in wall time"
    )]
    let written = Instant::now();
    proxy.write_config(&two_routes(port, &a.authority(), &b.authority(), "/new"));
    eventually(Duration::from_secs(5), || async {
        match upstream_of(&url).await? {
            u if u == "b" => Ok(()),
            u => Err(format!("still {u}")),
        }
    })
    .await;
    println!(
        "reload latency (in-place write -> new route served): {:?}",
        written.elapsed()
    );
    let v2 = proxy.wait_version_change(&v1).await;

    proxy.replace_config(&two_routes(port, &a.authority(), &b.authority(), "/other"));
    eventually(Duration::from_secs(5), || async {
        match upstream_of(&url).await? {
            u if u == "a" => Ok(()),
            u => Err(format!("still {u}")),
        }
    })
    .await;
    proxy.wait_version_change(&v2).await;
    assert_eq!(
        proxy
            .metric("agentgateway_config_reloads_total", &["result=\"success\""])
            .await,
        3.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn configmap_symlink_swaps_apply() {
    let (a, b) = (
        FakeUpstream::start("a").await,
        FakeUpstream::start("b").await,
    );
    let port = free_port();
    let proxy = Proxy::start(&two_routes(port, &a.authority(), &b.authority(), "/b")).await;
    let dir = proxy.dir.path();
    let url = proxy.url(port, "/swap");

    // Kubernetes layout: config.yaml -> ..data/config.yaml, ..data -> ..<timestamp>/.
    let write_generation = |name: &str, text: &str| {
        let gen_dir = dir.join(name);
        std::fs::create_dir(&gen_dir).unwrap();
        std::fs::write(gen_dir.join("config.yaml"), text).unwrap();
        let tmp = dir.join("..data_tmp");
        std::os::unix::fs::symlink(name, &tmp).unwrap();
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
    };
    write_generation(
        "..gen1",
        &two_routes(port, &a.authority(), &b.authority(), "/b"),
    );
    let link_tmp = dir.join("config.yaml.tmp");
    std::os::unix::fs::symlink("..data/config.yaml", &link_tmp).unwrap();
    std::fs::rename(&link_tmp, &proxy.config_path).unwrap();
    assert_eq!(upstream_of(&url).await.unwrap(), "a");

    write_generation(
        "..gen2",
        &two_routes(port, &a.authority(), &b.authority(), "/swap"),
    );
    eventually(Duration::from_secs(5), || async {
        match upstream_of(&url).await? {
            u if u == "b" => Ok(()),
            u => Err(format!("still {u}")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_edit_keeps_the_last_good_config() {
    let (a, b) = (
        FakeUpstream::start("a").await,
        FakeUpstream::start("b").await,
    );
    let port = free_port();
    let good = two_routes(port, &a.authority(), &b.authority(), "/b");
    let proxy = Proxy::start(&good).await;
    let version = proxy.version().await;

    proxy.write_config(&good.replace("pathPrefix: /b", "pathPrefx: /b"));
    eventually(Duration::from_secs(5), || async {
        let failed = proxy
            .metric("agentgateway_config_reloads_total", &["result=\"failure\""])
            .await;
        if failed == 1.0 {
            Ok(())
        } else {
            Err(format!("failures {failed}"))
        }
    })
    .await;
    assert_eq!(
        proxy.metric("agentgateway_config_synchronized", &[]).await,
        0.0
    );
    assert_eq!(
        proxy.version().await,
        version,
        "the broken config was not applied"
    );
    assert_eq!(upstream_of(&proxy.url(port, "/b/1")).await.unwrap(), "b");
    let log = proxy.log();
    assert!(
        log.contains("config.yaml:8:"),
        "error names the line: {log}"
    );
    assert!(log.contains("did you mean `pathPrefix`"), "{log}");

    // A file emptied in place (an editor, a failed copy) is refused too: every listener stays.
    proxy.write_config("# truncated\n");
    eventually(Duration::from_secs(5), || async {
        let failed = proxy
            .metric("agentgateway_config_reloads_total", &["result=\"failure\""])
            .await;
        if failed == 2.0 {
            Ok(())
        } else {
            Err(format!("failures {failed}"))
        }
    })
    .await;
    assert_eq!(upstream_of(&proxy.url(port, "/b/1")).await.unwrap(), "b");
    assert!(proxy.log().contains("the file is empty"));

    proxy.write_config(&good.replace("/b", "/fixed"));
    proxy.wait_version_change(&version).await;
    assert_eq!(
        proxy.metric("agentgateway_config_synchronized", &[]).await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ports_added_and_removed_while_kept_connections_survive() {
    let up = FakeUpstream::start("u").await;
    let (kept, added) = (free_port(), free_port());
    let one = super::simple_config(kept, &up.authority());
    let proxy = Proxy::start(&one).await;

    // A keep-alive connection on the kept port, used before and after the reload.
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", kept))
        .await
        .unwrap();
    let mut conn = BufReader::new(stream);
    assert_eq!(raw_get(&mut conn, "/before").await, 200);

    let both = format!(
        "{one}- port: {added}\n  listeners:\n  - routes:\n    - backends: [{{host: \"{}\"}}]\n",
        up.authority()
    );
    let v1 = proxy.version().await;
    proxy.write_config(&both);
    proxy.wait_version_change(&v1).await;
    assert_eq!(
        tollgate_tests::get(proxy.url(added, "/"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        raw_get(&mut conn, "/after-add").await,
        200,
        "same connection still served"
    );

    let only_added = super::simple_config(added, &up.authority());
    let v2 = proxy.version().await;
    proxy.write_config(&only_added);
    proxy.wait_version_change(&v2).await;
    eventually(Duration::from_secs(5), || async {
        match tokio::net::TcpStream::connect(("127.0.0.1", kept)).await {
            Err(_) => Ok(()),
            Ok(_) => Err("removed port still accepts".to_string()),
        }
    })
    .await;
    assert_eq!(
        tollgate_tests::get(proxy.url(added, "/"))
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Sends a keep-alive GET on an open connection and returns the status.
async fn raw_get(conn: &mut BufReader<tokio::net::TcpStream>, path: &str) -> u16 {
    let req = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
    conn.get_mut().write_all(req.as_bytes()).await.unwrap();
    let mut status_line = String::new();
    conn.read_line(&mut status_line).await.unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await.unwrap();
    status_line.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn in_flight_requests_finish_on_their_config_and_none_fail_during_reloads() {
    let (a, b) = (
        FakeUpstream::start("a").await,
        FakeUpstream::start("b").await,
    );
    let port = free_port();
    let proxy = Arc::new(Proxy::start(&super::simple_config(port, &a.authority())).await);

    let url = proxy.url(port, "/slow");
    let slow = tokio::spawn(async move {
        let r = tollgate_tests::http()
            .get(url)
            .header("x-fake-delay-ms", "1500")
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        v["upstream"].as_str().unwrap().to_string()
    });
    a.wait_request("/slow").await;

    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
        let url = proxy.url(port, "/x");
        load.push(tokio::spawn(async move {
            let client = tollgate_tests::http();
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for i in 0..10 {
        let target = if i % 2 == 0 {
            b.authority()
        } else {
            a.authority()
        };
        let v = proxy.version().await;
        proxy.write_config(&super::simple_config(port, &target));
        proxy.wait_version_change(&v).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    assert_eq!(
        slow.await.unwrap(),
        "a",
        "the in-flight request kept its config"
    );
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("requests during 10 reloads: {ok} ok, {failed} failed");
    assert!(ok > 0);
    assert_eq!(failed, 0);
}
