//! What TLS costs on a listener: new connections per second (a full handshake each, no session
//! resumption) and p50/p99 at 1,000 QPS on kept-alive connections, HTTPS against HTTP on the
//! same proxy and upstream; prints ratios. Self-contained: the fake upstream, certificates
//! from rcgen, and the load generated here (no nginx or oha needed).
//!
//! `cargo build --release --bins && target/release/tollgate-bench-tls [SECONDS]`

use std::time::Duration;

use tollgate_tests::bench::{median, paced_latency, requests_per_second, seconds_arg};
use tollgate_tests::tls::{TestCa, https_client};
use tollgate_tests::{FakeUpstream, Proxy, free_port};

/// Clients opening connections at once in the handshake test.
const CONCURRENCY: usize = 32;
const QPS: u64 = 1_000;
const ROUNDS: usize = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = seconds_arg(5);
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
    let get = |client: reqwest::Client, url: &str| {
        let url = url.to_string();
        move || client.get(&url)
    };
    for _ in 0..ROUNDS {
        // A fresh client per request loop: every request opens a connection.
        conn_http.push(requests_per_second(CONCURRENCY, run, get(fresh(false), &http_url)).await);
        conn_https.push(requests_per_second(CONCURRENCY, run, get(fresh(true), &https_url)).await);
        lat_http.push(paced_latency(QPS, run, get(kept(false), &http_url)).await);
        lat_https.push(paced_latency(QPS, run, get(kept(true), &https_url)).await);
    }
    let (c_http, c_https) = (median(conn_http), median(conn_https));
    println!(
        "new connections/s: HTTP {c_http:.0}, HTTPS {c_https:.0}, HTTPS/HTTP {:.2}",
        c_https / c_http
    );
    let pick = |v: &mut Vec<(f64, f64)>, i: usize| {
        median(v.iter().map(|p| if i == 0 { p.0 } else { p.1 }).collect())
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
