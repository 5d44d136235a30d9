//! `tollgate-bench-cp`: config convergence through the control plane over mutual TLS, and
//! apply time under load.
//!
//! One `tollgate-cp` with TLS and client certificates (from `tollgate-cp certs`), three real
//! proxies and N light stream clients (they say hello over the same mutual TLS and ACK every
//! push). After a file write, the time until the three proxies are SYNCED and until every
//! light client has ACKed the new version, for a 10-route rewrite, a one-route edit of a
//! 10,000-route config and a rewrite of all 10,000 routes. Then the time `Gateway::apply`
//! takes to swap in a 10,000-route snapshot in process while requests keep coming, and
//! whether any of them failed.
#![expect(clippy::disallowed_methods, reason = "a benchmark measures wall time")]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tollgate_data_plane::gateway::Gateway;
use tollgate_data_plane::metrics::Metrics;
use tollgate_shared::proto::v1 as pb;
use tollgate_shared::proto::v1::config_stream_client::ConfigStreamClient;
use tollgate_shared::{Snapshot, SnapshotSource, load_str};
use tollgate_tests::upstream::FakeUpstream;
use tollgate_tests::{binary, free_port};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// How often an edit asks the admin API whether the three proxies are SYNCED.
const ADMIN_POLL: Duration = Duration::from_millis(25);

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `routes` routes to `backend`; route `i` sets header `x-tag` to `tag(i)`.
fn config(port: u16, routes: usize, backend: &str, tag: impl Fn(usize) -> String) -> String {
    let mut out = format!(
        "config:\n  logging:\n    level: warn\nbinds:\n- port: {port}\n  listeners:\n  - routes:\n"
    );
    for i in 0..routes {
        out.push_str(&format!(
            "    - name: r{i}\n      matches: [{{path: {{exact: /r{i}}}}}]\n      policies: {{requestHeaderModifier: {{set: [{{name: x-tag, value: \"{}\"}}]}}}}\n      backends: [{{host: \"{backend}\"}}]\n",
            tag(i)
        ));
    }
    out
}

/// The CA, the control plane's certificate and one proxy certificate (identity `bench`, gateway
/// `g`), made by `tollgate-cp certs` as a deploy makes them.
struct Pki(tempfile::TempDir);

impl Pki {
    fn issue() -> anyhow::Result<Pki> {
        let dir = tempfile::tempdir()?;
        let out = Command::new(binary("tollgate-cp"))
            .args(["certs", "--out"])
            .arg(dir.path())
            .args(["--server", "127.0.0.1", "--proxy", "bench=g"])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "tollgate-cp certs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Pki(dir))
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.path().join(file)
    }

    fn read(&self, file: &str) -> anyhow::Result<Vec<u8>> {
        Ok(std::fs::read(self.path(file))?)
    }

    fn client_tls(&self) -> anyhow::Result<ClientTlsConfig> {
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.read("ca.crt")?))
            .identity(Identity::from_pem(
                self.read("bench/tls.crt")?,
                self.read("bench/tls.key")?,
            )))
    }

    /// The admin API shares the stream's certificate.
    fn admin_client(&self) -> anyhow::Result<reqwest::Client> {
        Ok(tollgate_tests::http_builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&self.read("ca.crt")?)?)
            .build()?)
    }
}

/// A light client: takes deltas like a proxy, ACKs every push without applying it, counts the
/// pushes of `target` versions it received.
async fn light_client(
    channel: tonic::transport::Channel,
    id: usize,
    acked: Arc<AtomicUsize>,
    target: Arc<parking_lot::Mutex<String>>,
) {
    let mut client = ConfigStreamClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    let (tx, rx) = mpsc::channel(4);
    let hello = pb::Hello {
        node_id: format!("light-{id}"),
        gateway: "g".into(),
        build: "bench".into(),
        accepts_delta: true,
        accepts_compressed: true,
    };
    let _ = tx
        .send(pb::ProxyMessage {
            kind: Some(pb::proxy_message::Kind::Hello(hello)),
        })
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

/// A control plane, its three proxies and its light clients, all on mutual TLS.
struct Fleet {
    _cp: Guard,
    _proxies: Vec<Guard>,
    file: PathBuf,
    admin: String,
    https: reqwest::Client,
    clients: usize,
    acked: Arc<AtomicUsize>,
    target: Arc<parking_lot::Mutex<String>>,
}

impl Fleet {
    async fn start(pki: &Pki, dir: &Path, first: &str, clients: usize) -> anyhow::Result<Fleet> {
        let file = dir.join("g.yaml");
        std::fs::write(&file, first)?;
        let (grpc, admin) = (
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        );
        let streams = (clients + 3).to_string();
        let cp = Guard(
            Command::new(binary("tollgate-cp"))
                .arg("--config-dir")
                .arg(dir)
                .args(["--listen", &grpc, "--admin-addr", &admin])
                .arg("--tls-cert")
                .arg(pki.path("control-plane/tls.crt"))
                .arg("--tls-key")
                .arg(pki.path("control-plane/tls.key"))
                .arg("--client-ca")
                .arg(pki.path("ca.crt"))
                // Every client holds the one `bench` certificate: room for all of them.
                .args([
                    "--max-streams",
                    &streams,
                    "--max-streams-per-identity",
                    &streams,
                ])
                .stderr(Stdio::null())
                .spawn()?,
        );
        let url = format!("https://{grpc}");
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
                    ])
                    .arg("--control-plane-ca")
                    .arg(pki.path("bench/ca.crt"))
                    .arg("--control-plane-cert")
                    .arg(pki.path("bench/tls.crt"))
                    .arg("--control-plane-key")
                    .arg(pki.path("bench/tls.key"))
                    .args(tollgate_tests::SIDE_LISTENERS_OFF)
                    .stderr(Stdio::null())
                    .spawn()?,
            ));
        }
        let fleet = Fleet {
            _cp: cp,
            _proxies: proxies,
            file,
            admin,
            https: pki.admin_client()?,
            clients,
            acked: Arc::new(AtomicUsize::new(0)),
            target: Arc::new(parking_lot::Mutex::new(version_of(first)?)),
        };
        let mut published = None;
        for _ in 0..400 {
            published = fleet.gateway_version().await;
            if published.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::ensure!(
            published.as_deref() == Some(fleet.target.lock().as_str()),
            "the control plane did not publish the first config"
        );
        // A hundred streams per connection, like a fleet behind a few load balancers.
        let endpoint = Endpoint::from_shared(url)?.tls_config(pki.client_tls()?)?;
        let mut channels = Vec::new();
        for _ in 0..clients.div_ceil(100) {
            channels.push(endpoint.connect().await?);
        }
        for i in 0..clients {
            tokio::spawn(light_client(
                channels[i / 100].clone(),
                i,
                fleet.acked.clone(),
                fleet.target.clone(),
            ));
        }
        let first = fleet.target.lock().clone();
        let start = Instant::now();
        // Every stream SYNCED in the control plane's registry, not only every push received:
        // an edit must not start while the control plane still takes the fleet's ACKs.
        while !(fleet.synced(&first).await >= clients + 3
            && fleet.acked.load(Ordering::Relaxed) >= clients)
        {
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(120),
                "the fleet did not take the first config within 120 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(fleet)
    }

    async fn admin_json(&self, path: &str) -> Option<serde_json::Value> {
        let url = format!("https://{}{path}", self.admin);
        self.https.get(url).send().await.ok()?.json().await.ok()
    }

    async fn gateway_version(&self) -> Option<String> {
        let v = self.admin_json("/api/gateways").await?;
        v["gateways"][0]["version"].as_str().map(str::to_string)
    }

    /// Streams SYNCED on `version`, light clients included.
    async fn synced(&self, version: &str) -> usize {
        let Some(v) = self.admin_json("/api/proxies").await else {
            return 0;
        };
        v["proxies"].as_array().map_or(0, |a| {
            a.iter()
                .filter(|p| p["status"] == "SYNCED" && p["versionAcked"] == version)
                .count()
        })
    }

    /// Writes `text` and times (3 proxies SYNCED, every light client ACKed).
    async fn edit(&self, text: &str) -> anyhow::Result<(Duration, Duration)> {
        let next = version_of(text)?;
        self.acked.store(0, Ordering::Relaxed);
        *self.target.lock() = next.clone();
        let start = Instant::now();
        std::fs::write(&self.file, text)?;
        let (mut real, mut light) = (None, None);
        let mut polled: Option<Instant> = None;
        while real.is_none() || light.is_none() {
            if light.is_none() && self.acked.load(Ordering::Relaxed) >= self.clients {
                light = Some(start.elapsed());
            }
            // The admin API lists every stream (a thousand): asked every ADMIN_POLL, not on
            // every turn, so that measuring does not load the control plane it measures.
            if real.is_none() && polled.is_none_or(|t| t.elapsed() >= ADMIN_POLL) {
                polled = Some(Instant::now());
                if self.synced(&next).await >= 3 {
                    real = Some(start.elapsed());
                }
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(120),
                "no convergence within 120 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok((real.unwrap_or_default(), light.unwrap_or_default()))
    }
}

fn version_of(text: &str) -> anyhow::Result<String> {
    Ok(Snapshot::new(load_str(text, "g.yaml", &tollgate_shared::ProcessEnv)?).version)
}

/// One line of the convergence table; `target` bounds the light clients' figure.
fn row(what: &str, (real, light): (Duration, Duration), target: Option<Duration>) {
    let verdict = target.map_or(String::new(), |t| {
        let ok = if light < t { "met" } else { "NOT met" };
        format!("  target < {} ms: {ok}", t.as_millis())
    });
    println!(
        "{what:<34}{:>14.1}{:>14.1}{verdict}",
        real.as_secs_f64() * 1e3,
        light.as_secs_f64() * 1e3
    );
}

async fn converge(pki: &Pki, clients: usize) -> anyhow::Result<()> {
    // The backend is never called: these proxies take no requests.
    let backend = "127.0.0.1:9";
    let port = free_port();
    let small = tempfile::tempdir()?;
    let fleet = Fleet::start(
        pki,
        small.path(),
        &config(port, 10, backend, |_| "a".into()),
        clients,
    )
    .await?;
    let small_rewrite = fleet
        .edit(&config(port, 10, backend, |_| "b".into()))
        .await?;
    drop(fleet);
    row("10 routes, all rewritten", small_rewrite, None);

    let large = tempfile::tempdir()?;
    let fleet = Fleet::start(
        pki,
        large.path(),
        &config(port, 10_000, backend, |_| "a".into()),
        clients,
    )
    .await?;
    let one = |i: usize| if i == 5_000 { "b".into() } else { "a".into() };
    let edit = fleet.edit(&config(port, 10_000, backend, one)).await?;
    row(
        "10,000 routes, one route edited",
        edit,
        Some(Duration::from_millis(500)),
    );
    let rewrite = fleet
        .edit(&config(port, 10_000, backend, |_| "c".into()))
        .await?;
    row(
        "10,000 routes, all rewritten",
        rewrite,
        Some(Duration::from_millis(1500)),
    );
    Ok(())
}

/// Apply times of a 10,000-route config: the first, the median of 6 reloads, the median of 6
/// reloads while 4 callers send requests in a loop (they share the 2 cores), and the
/// requests of that loop that did not get a 200.
struct ApplyRun {
    first: Duration,
    reload: Duration,
    reload_under_load: Duration,
    requests: usize,
    failed: usize,
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

async fn apply_under_load(routes: usize) -> anyhow::Result<ApplyRun> {
    let upstream = FakeUpstream::start("u").await;
    let port = free_port();
    let gw = Gateway::new(
        "bench",
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        Arc::new(Metrics::new()),
    );
    let source = SnapshotSource::File("bench".into());
    let snapshot = |tag: &'static str| -> anyhow::Result<Snapshot> {
        let text = config(port, routes, &upstream.authority(), |_| tag.into());
        Ok(Snapshot::new(load_str(
            &text,
            "g.yaml",
            &tollgate_shared::ProcessEnv,
        )?))
    };
    let (a, b) = (snapshot("a")?, snapshot("b")?);
    let start = Instant::now();
    gw.apply(a.clone(), source.clone())?;
    let first = start.elapsed();
    let reloads = |gw: &Arc<Gateway>| -> anyhow::Result<Vec<Duration>> {
        let mut times = Vec::new();
        for i in 0..6 {
            let s = if i % 2 == 0 { b.clone() } else { a.clone() };
            let start = Instant::now();
            gw.apply(s, source.clone())?;
            times.push(start.elapsed());
        }
        Ok(times)
    };
    let reload = median(reloads(&gw)?);

    let stop = Arc::new(AtomicBool::new(false));
    let (requests, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut callers = Vec::new();
    for caller in 0..4 {
        let (stop, requests, failed) = (stop.clone(), requests.clone(), failed.clone());
        let client = tollgate_tests::http();
        callers.push(tokio::spawn(async move {
            let mut i = caller;
            while !stop.load(Ordering::Relaxed) {
                let url = format!("http://127.0.0.1:{port}/r{}", i % routes);
                let ok = client
                    .get(url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                requests.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                i += 7919;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reload_under_load = median(reloads(&gw)?);
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.await?;
    }
    Ok(ApplyRun {
        first,
        reload,
        reload_under_load,
        requests: requests.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
    })
}

fn converge_all(clients: usize) -> anyhow::Result<()> {
    let pki = Pki::issue()?;
    println!(
        "file write -> ACKed over mutual TLS, 3 real proxies and {clients} light stream clients on one control plane"
    );
    println!("{:<34}{:>14}{:>14}", "edit", "3 proxies ms", "all light ms");
    tokio::runtime::Runtime::new()?.block_on(converge(&pki, clients))
}

/// `tollgate-bench-cp [CLIENTS]` (default 1,000; 0 measures only the apply).
fn main() -> anyhow::Result<()> {
    let clients: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    if clients > 0 {
        converge_all(clients)?;
    }
    let run = tokio::runtime::Runtime::new()?.block_on(apply_under_load(10_000))?;
    let verdict = if run.reload < Duration::from_millis(50) {
        "met"
    } else {
        "NOT met"
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "Gateway::apply, 10,000 routes: first {:.1} ms, reload (median of 6) {:.1} ms  target < 50 ms: {verdict}",
        ms(run.first),
        ms(run.reload)
    );
    println!(
        "reloads while 4 callers send requests: median {:.1} ms; requests {}, failed {} ({})",
        ms(run.reload_under_load),
        run.requests,
        run.failed,
        if run.failed == 0 {
            "no request failed during apply"
        } else {
            "SOME REQUESTS FAILED"
        }
    );
    Ok(())
}
