//! `tollgate-bench-cp`: config convergence through the control plane, and apply time.
//!
//! For configs of 10 and 10,000 routes: one `tollgate-cp`, three real proxies and N light
//! stream clients (they say hello and ACK every push); after a file write, the time until the
//! three proxies are SYNCED and until every light client has ACKed the new version. Then the
//! time `Gateway::apply` takes to swap in a 10,000-route snapshot in process.
#![expect(clippy::disallowed_methods, reason = "a benchmark measures wall time")]

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tollgate_data_plane::gateway::Gateway;
use tollgate_data_plane::metrics::Metrics;
use tollgate_shared::proto::v1 as pb;
use tollgate_shared::proto::v1::config_stream_client::ConfigStreamClient;
use tollgate_shared::{Snapshot, SnapshotSource, load_str};
use tollgate_tests::{binary, free_port};

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(port: u16, routes: usize, tag: &str) -> String {
    let mut out = format!("binds:\n- port: {port}\n  listeners:\n  - routes:\n");
    for i in 0..routes {
        out.push_str(&format!(
            "    - name: r{i}\n      matches: [{{path: {{exact: /r{i}}}}}]\n      policies: {{requestHeaderModifier: {{set: [{{name: x-tag, value: \"{tag}\"}}]}}}}\n      backends: [{{host: \"127.0.0.1:9\"}}]\n"
        ));
    }
    out
}

async fn proxies_synced(admin: &str, version: &str, want: usize) -> bool {
    let Ok(r) = tollgate_tests::get(format!("http://{admin}/api/proxies")).await else {
        return false;
    };
    let Ok(v) = r.json::<serde_json::Value>().await else {
        return false;
    };
    let synced = v["proxies"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| p["status"] == "SYNCED" && p["versionAcked"] == version)
                .count()
        })
        .unwrap_or(0);
    synced >= want
}

async fn gateway_version(admin: &str) -> Option<String> {
    let v: serde_json::Value = tollgate_tests::get(format!("http://{admin}/api/gateways"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["gateways"][0]["version"].as_str().map(str::to_string)
}

/// A light client: ACKs every push, counts the pushes of `target` versions it received.
async fn light_client(
    channel: tonic::transport::Channel,
    id: usize,
    acked: Arc<AtomicUsize>,
    target: Arc<parking_lot::Mutex<String>>,
) {
    let mut client = ConfigStreamClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    let (tx, rx) = mpsc::channel(4);
    let _ = tx
        .send(tollgate_tests::control_plane::hello(
            &format!("light-{id}"),
            "g",
            "bench",
        ))
        .await;
    let Ok(resp) = client.stream(ReceiverStream::new(rx)).await else {
        return;
    };
    let mut inbound = resp.into_inner();
    while let Ok(Some(msg)) = inbound.message().await {
        if let Some(pb::server_message::Kind::Push(p)) = msg.kind {
            let ack = pb::Ack {
                version: p.version.clone(),
                nonce: p.nonce,
            };
            let _ = tx
                .send(pb::ProxyMessage {
                    kind: Some(pb::proxy_message::Kind::Ack(ack)),
                })
                .await;
            if *target.lock() == p.version {
                acked.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn converge(routes: usize, clients: usize) -> anyhow::Result<(Duration, Duration)> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    std::fs::write(dir.path().join("g.yaml"), config(port, routes, "a"))?;
    let (grpc, admin) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let streams = (clients + 3).to_string();
    let _cp = Guard(
        Command::new(binary("tollgate-cp"))
            .arg("--config-dir")
            .arg(dir.path())
            .args(["--listen", &grpc, "--admin-addr", &admin, "--insecure"])
            // Every client is `anonymous` without credentials: room for all of them.
            .args([
                "--max-streams",
                &streams,
                "--max-streams-per-identity",
                &streams,
            ])
            .stderr(Stdio::null())
            .spawn()?,
    );
    let url = format!("http://{grpc}");
    let mut proxies = Vec::new();
    for n in 2..=4u8 {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)).to_string();
        proxies.push(Guard(
            Command::new(binary("tollgate"))
                .args([
                    "--control-plane",
                    &url,
                    "--gateway",
                    "g",
                    "--listen-ip",
                    &ip,
                    "--insecure-control-plane",
                ])
                .args([
                    "--admin-addr",
                    "off",
                    "--stats-addr",
                    "off",
                    "--readiness-addr",
                    "off",
                ])
                .stderr(Stdio::null())
                .spawn()?,
        ));
    }
    let mut first = None;
    for _ in 0..400 {
        first = gateway_version(&admin).await;
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let first = first.ok_or_else(|| anyhow::anyhow!("the control plane published nothing"))?;
    let acked = Arc::new(AtomicUsize::new(0));
    let target = Arc::new(parking_lot::Mutex::new(first.clone()));
    // A hundred streams per connection, like a fleet behind a few load balancers.
    let mut channels = Vec::new();
    for _ in 0..clients.div_ceil(100) {
        channels.push(
            tonic::transport::Endpoint::from_shared(url.clone())?
                .connect()
                .await?,
        );
    }
    for i in 0..clients {
        tokio::spawn(light_client(
            channels[i / 100].clone(),
            i,
            acked.clone(),
            target.clone(),
        ));
    }
    while !(proxies_synced(&admin, &first, 3).await && acked.load(Ordering::Relaxed) >= clients) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The measured edit.
    let edited = config(port, routes, "b");
    let next =
        tollgate_shared::Snapshot::new(load_str(&edited, "g.yaml", &tollgate_shared::ProcessEnv)?)
            .version;
    acked.store(0, Ordering::Relaxed);
    *target.lock() = next.clone();
    let start = Instant::now();
    std::fs::write(dir.path().join("g.yaml"), edited)?;
    let (mut real, mut light) = (None, None);
    while real.is_none() || light.is_none() {
        if light.is_none() && acked.load(Ordering::Relaxed) >= clients {
            light = Some(start.elapsed());
        }
        if real.is_none() && proxies_synced(&admin, &next, 3).await {
            real = Some(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(120) {
            anyhow::bail!("no convergence within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok((real.unwrap_or_default(), light.unwrap_or_default()))
}

fn apply_time(routes: usize) -> anyhow::Result<(Duration, Duration)> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let port = free_port();
        let gw = Gateway::new(
            "bench",
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            Arc::new(Metrics::new()),
        );
        let source = SnapshotSource::File("bench".into());
        let a = Snapshot::new(load_str(
            &config(port, routes, "a"),
            "a",
            &tollgate_shared::ProcessEnv,
        )?);
        let b = Snapshot::new(load_str(
            &config(port, routes, "b"),
            "b",
            &tollgate_shared::ProcessEnv,
        )?);
        let start = Instant::now();
        gw.apply(a.clone(), source.clone())?;
        let first = start.elapsed();
        let mut reloads = Vec::new();
        for i in 0..5 {
            let s = if i % 2 == 0 { b.clone() } else { a.clone() };
            let start = Instant::now();
            gw.apply(s, source.clone())?;
            reloads.push(start.elapsed());
        }
        reloads.sort();
        Ok((first, reloads[reloads.len() / 2]))
    })
}

fn main() -> anyhow::Result<()> {
    let clients: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    println!(
        "file write -> ACKed, 3 real proxies and {clients} light stream clients on one control plane"
    );
    println!(
        "{:<10}{:>22}{:>26}",
        "routes", "3 proxies SYNCED (ms)", "all light clients (ms)"
    );
    for routes in [10, 10_000] {
        let rt = tokio::runtime::Runtime::new()?;
        let (real, light) = rt.block_on(converge(routes, clients))?;
        println!(
            "{routes:<10}{:>22.1}{:>26.1}",
            real.as_secs_f64() * 1e3,
            light.as_secs_f64() * 1e3
        );
    }
    let (first, reload) = apply_time(10_000)?;
    println!(
        "Gateway::apply, 10,000 routes: first {:.1} ms, reload (median of 5) {:.1} ms",
        first.as_secs_f64() * 1e3,
        reload.as_secs_f64() * 1e3
    );
    Ok(())
}
