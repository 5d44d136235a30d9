//! `tollgate-bench-mcp [SECONDS]`: `tools/call` round trips through the gateway against the
//! same stdio server called directly, and against the floor of any HTTP hop: a minimal
//! Streamable HTTP MCP server (`tollgate-fake-mcp --http`) without the gateway. All three are
//! driven by rmcp's client (the official Rust SDK), over the same Streamable HTTP client for
//! both HTTP paths.
//!
//! For 1 and 8 concurrent sessions, three interleaved rounds of SECONDS (default 10) each;
//! prints calls/s and p50/p99 per path (medians of the rounds), the throughput ratios, the
//! latency each HTTP path adds to the direct one, and the CPU time per call of the HTTP server
//! and of the gateway (steadier than rates on a shared machine).
#![expect(clippy::disallowed_methods, reason = "a benchmark measures wall time")]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;
use tollgate_tests::bench::{cpu_us, median, seconds_arg};
use tollgate_tests::{binary, free_port};

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy)]
enum Path {
    /// The stdio server, spawned by the client.
    Direct,
    /// The HTTP floor: `tollgate-fake-mcp --http` on this port.
    Http(u16),
    /// The gateway in front of the stdio server.
    Gateway(u16),
}

async fn session(path: Path) -> anyhow::Result<RunningService<RoleClient, ()>> {
    Ok(match path {
        Path::Direct => {
            let mut cmd = tokio::process::Command::new(binary("tollgate-fake-mcp"));
            cmd.arg("bench");
            let (child, _) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::null())
                .spawn()?;
            ().serve(child).await?
        }
        Path::Http(port) | Path::Gateway(port) => {
            let transport = StreamableHttpClientTransport::with_client(
                tollgate_tests::http(),
                StreamableHttpClientTransportConfig::with_uri(format!(
                    "http://127.0.0.1:{port}/mcp"
                )),
            );
            ().serve(transport).await?
        }
    })
}

struct Run {
    calls_per_sec: f64,
    p50: Duration,
    p99: Duration,
    /// CPU time the serving process spent per call, in microseconds (0 for the direct path).
    server_cpu_us: f64,
}

/// Calls for `secs` over `sessions` sessions; `server` is the process serving them, whose CPU
/// time per call is measured (the gateway's excludes its stdio child).
async fn measure(
    path: Path,
    sessions: usize,
    secs: u64,
    server: Option<u32>,
) -> anyhow::Result<Run> {
    let mut clients = Vec::new();
    for _ in 0..sessions {
        clients.push(session(path).await?);
    }
    let cpu_before = server.map_or(0.0, cpu_us);
    let args = json!({"a": 2, "b": 3}).as_object().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = clients
        .iter()
        .map(|c| {
            let peer = c.peer().clone();
            let args = args.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let start = Instant::now();
                    let r = peer
                        .call_tool(CallToolRequestParams::new("add").with_arguments(args.clone()))
                        .await
                        .expect("tools/call");
                    assert_eq!(r.content[0].as_text().map(|t| t.text.as_str()), Some("5"));
                    latencies.push(start.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let server_cpu_us = server.map_or(0.0, |pid| (cpu_us(pid) - cpu_before) / all.len() as f64);
    for c in clients {
        c.cancel().await?;
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Ok(Run {
        calls_per_sec: all.len() as f64 / secs as f64,
        p50: pct(0.50),
        p99: pct(0.99),
        server_cpu_us,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = seconds_arg(10);
    let port = free_port();
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("bench-mcp.yaml");
    std::fs::write(
        &config,
        format!(
            "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: bench\n            stdio: {{cmd: \"{}\", args: [bench]}}\n",
            binary("tollgate-fake-mcp").display()
        ),
    )?;
    let ready = free_port();
    let proxy = Guard(
        Command::new(binary("tollgate"))
            .arg("-f")
            .arg(&config)
            .args(["--admin-addr", "off", "--stats-addr", "off"])
            .args(["--readiness-addr", &format!("127.0.0.1:{ready}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let floor_port = free_port();
    let floor = Guard(
        Command::new(binary("tollgate-fake-mcp"))
            .args(["--http", &floor_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    while tollgate_tests::get(format!("http://127.0.0.1:{ready}/healthz/ready"))
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
        || tokio::net::TcpStream::connect(("127.0.0.1", floor_port))
            .await
            .is_err()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("tools/call round trips, rmcp client, {secs} s x 3 interleaved rounds, medians");
    println!(
        "direct: the stdio server; http: a minimal HTTP MCP server, no gateway (the floor of an HTTP hop); gateway: the gateway in front of the stdio server"
    );
    println!(
        "| sessions | calls/s direct / http / gateway | gateway/direct | http/direct | gateway/http | p50 / p99 direct | p50 / p99 http | p50 / p99 gateway | added p50 http / gateway | gateway over http p50 | server CPU/call http / gateway |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for sessions in [1, 8] {
        let (mut direct, mut http, mut gateway) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            direct.push(measure(Path::Direct, sessions, secs, None).await?);
            let floor = Some(floor.0.id());
            http.push(measure(Path::Http(floor_port), sessions, secs, floor).await?);
            let proxy = Some(proxy.0.id());
            gateway.push(measure(Path::Gateway(port), sessions, secs, proxy).await?);
        }
        let ms = |runs: &[Run], f: fn(&Run) -> Duration| {
            median(runs.iter().map(|r| f(r).as_secs_f64() * 1e3).collect())
        };
        let rate = |runs: &[Run]| median(runs.iter().map(|r| r.calls_per_sec).collect());
        let (d50, d99) = (ms(&direct, |r| r.p50), ms(&direct, |r| r.p99));
        let (h50, h99) = (ms(&http, |r| r.p50), ms(&http, |r| r.p99));
        let (g50, g99) = (ms(&gateway, |r| r.p50), ms(&gateway, |r| r.p99));
        let (d, h, g) = (rate(&direct), rate(&http), rate(&gateway));
        let cpu = |runs: &[Run]| median(runs.iter().map(|r| r.server_cpu_us).collect());
        println!(
            "| {sessions} | {d:.0} / {h:.0} / {g:.0} | {:.3} | {:.3} | {:.3} | {d50:.3} / {d99:.3} ms | {h50:.3} / {h99:.3} ms | {g50:.3} / {g99:.3} ms | +{:.3} / +{:.3} ms | +{:.3} ms | {:.1} / {:.1} µs |",
            g / d,
            h / d,
            g / h,
            h50 - d50,
            g50 - d50,
            g50 - h50,
            cpu(&http),
            cpu(&gateway),
        );
    }
    Ok(())
}
