//! What TLS costs on a listener: new connections per second (a full handshake each, no session
//! resumption) and p50/p99 at 1,000 QPS on kept-alive connections, HTTPS against HTTP on the
//! same proxy and upstream; prints ratios. Self-contained: the fake upstream, certificates
//! from rcgen, and the load generated here (no nginx or oha needed).
//!
//! `cargo build --release --bins && target/release/tollgate-bench-tls [SECONDS]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tollgate_tests::tls::{TestCa, https_client};
use tollgate_tests::{FakeUpstream, Proxy, free_port};

/// Clients opening connections at once in the handshake test.
const CONCURRENCY: usize = 32;
const QPS: u64 = 1_000;
const ROUNDS: usize = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let run = Duration::from_secs(seconds);
    let ca = TestCa::new("bench ca");
    let dir = tempfile::tempdir()?;
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    ca.issue("localhost", &["localhost"], 1).write(&cert, &key);
    let up = FakeUpstream::start("bench").await;
    let (http_port, https_port) = (free_port(), free_port());
    let config = format!(
        "config:\n  logging:\n    level: warn\nbinds:\n- port: {http_port}\n  listeners:\n  - routes:\n    - backends: [{{host: '{up}'}}]\n- port: {https_port}\n  listeners:\n  - protocol: HTTPS\n    tls: {{cert: {}, key: {}}}\n    routes:\n    - backends: [{{host: '{up}'}}]\n",
        cert.display(),
        key.display(),
        up = up.authority(),
    );
    let _proxy = Proxy::start(&config).await;
    let http_url = format!("http://localhost:{http_port}/bench");
    let https_url = format!("https://localhost:{https_port}/bench");
    let fresh = |tls: bool| {
        let builder = if tls {
            https_client(&ca.pem, None)
        } else {
            tollgate_tests::http_builder().pool_max_idle_per_host(0)
        };
        builder.build().expect("client")
    };
    let kept = |tls: bool| {
        let builder = if tls {
            https_client(&ca.pem, None).pool_max_idle_per_host(usize::MAX)
        } else {
            tollgate_tests::http_builder()
        };
        builder.build().expect("client")
    };

    println!("{ROUNDS} interleaved rounds of {seconds}s each; medians");
    let (mut conn_http, mut conn_https) = (Vec::new(), Vec::new());
    let (mut lat_http, mut lat_https) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        conn_http.push(connections_per_second(fresh(false), &http_url, run).await);
        conn_https.push(connections_per_second(fresh(true), &https_url, run).await);
        lat_http.push(paced_latency(kept(false), &http_url, run).await);
        lat_https.push(paced_latency(kept(true), &https_url, run).await);
    }
    let (c_http, c_https) = (median(&mut conn_http), median(&mut conn_https));
    println!(
        "new connections/s: HTTP {c_http:.0}, HTTPS {c_https:.0}, HTTPS/HTTP {:.2}",
        c_https / c_http
    );
    let pick = |v: &mut Vec<(f64, f64)>, i: usize| {
        let mut xs: Vec<f64> = v.iter().map(|p| if i == 0 { p.0 } else { p.1 }).collect();
        median(&mut xs)
    };
    let (p50_http, p99_http) = (pick(&mut lat_http, 0), pick(&mut lat_http, 1));
    let (p50_https, p99_https) = (pick(&mut lat_https, 0), pick(&mut lat_https, 1));
    println!(
        "{QPS} QPS kept-alive: HTTP p50 {p50_http:.3} ms p99 {p99_http:.3} ms; HTTPS p50 {p50_https:.3} ms p99 {p99_https:.3} ms; added by TLS p50 {:+.3} ms p99 {:+.3} ms",
        p50_https - p50_http,
        p99_https - p99_http
    );
    Ok(())
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Requests answered per second by CONCURRENCY loops, each request on a new connection.
async fn connections_per_second(client: reqwest::Client, url: &str, run: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, url, done) = (client.clone(), url.to_string(), done.clone());
            tokio::spawn(async move {
                while started.elapsed() < run {
                    if let Ok(r) = client.get(&url).send().await
                        && r.status().is_success()
                        && r.bytes().await.is_ok()
                    {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// p50 and p99 in milliseconds of requests sent at QPS on kept-alive connections.
async fn paced_latency(client: reqwest::Client, url: &str, run: Duration) -> (f64, f64) {
    let samples = Arc::new(Mutex::new(Vec::new()));
    // Warm the pool so handshakes are not measured.
    for _ in 0..32 {
        let _ = client.get(url).send().await;
    }
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / QPS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::new();
    while started.elapsed() < run {
        tick.tick().await;
        let (client, url, samples) = (client.clone(), url.to_string(), samples.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            if let Ok(r) = client.get(&url).send().await
                && r.bytes().await.is_ok()
            {
                samples.lock().push(sent.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut xs = samples.lock().clone();
    xs.sort_by(f64::total_cmp);
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q) as usize];
    (at(0.50), at(0.99))
}
