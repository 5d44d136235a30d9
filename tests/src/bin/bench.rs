//! `tollgate-bench`: proxy overhead by DESIGN §12's method, printed as ratios to direct.
//!
//! nginx (one worker) answers a fixed 1 KiB `chat.completion`; `oha` sends a 1 KiB chat
//! request at a fixed rate and at saturation, straight to nginx and through `tollgate`,
//! interleaved over several rounds; medians are reported with the proxy's peak RSS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tollgate_tests::free_port;

struct Opts {
    rounds: usize,
    seconds: u64,
    warmup: u64,
    rate: u64,
}

fn parse_args() -> anyhow::Result<Opts> {
    let mut o = Opts {
        rounds: 3,
        seconds: 15,
        warmup: 3,
        rate: 1000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || -> anyhow::Result<u64> {
            args.next()
                .context("flag needs a value")?
                .parse()
                .context("not a number")
        };
        match flag.as_str() {
            "--rounds" => o.rounds = value()? as usize,
            "--seconds" => o.seconds = value()?,
            "--warmup" => o.warmup = value()?,
            "--rate" => o.rate = value()?,
            other => {
                bail!("unknown flag {other}; flags: --rounds N --seconds S --warmup S --rate QPS")
            }
        }
    }
    Ok(o)
}

/// Kills the child when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn completion_body() -> String {
    let mut content = String::from("Tollgate benchmark answer. ");
    let mut answer = json!({});
    while answer.to_string().len() < 1024 {
        content.push_str("lorem ipsum ");
        answer = json!({
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 25, "completion_tokens": 180, "total_tokens": 205}
        });
    }
    answer.to_string()
}

fn request_body() -> String {
    let mut text = String::from("Benchmark request. ");
    while text.len() < 900 {
        text.push_str("please answer briefly ");
    }
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}).to_string()
}

fn start_nginx(dir: &Path, port: u16) -> anyhow::Result<Guard> {
    let body = completion_body().replace('\'', "\\'");
    let conf = format!(
        "worker_processes 1;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log stderr warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {dir};\n  proxy_temp_path {dir};\n  fastcgi_temp_path {dir};\n  uwsgi_temp_path {dir};\n  scgi_temp_path {dir};\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      default_type application/json;\n      return 200 '{body}';\n    }}\n  }}\n}}\n",
        dir = dir.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&path)
        .stderr(Stdio::null())
        .spawn()
        .context("starting nginx (apt-get install nginx-light)")?;
    wait_port(port)?;
    Ok(Guard(child))
}

fn start_proxy(dir: &Path, port: u16, upstream: u16) -> anyhow::Result<Guard> {
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: bench\n      backends:\n      - host: 127.0.0.1:{upstream}\n"
    );
    let path = dir.join("tollgate.yaml");
    std::fs::write(&path, config)?;
    let exe = std::env::current_exe()?;
    let bin: PathBuf = exe.parent().context("exe dir")?.join("tollgate");
    let child = Command::new(&bin)
        .arg("-f")
        .arg(&path)
        .args([
            "--listen-ip",
            "127.0.0.1",
            "--admin-addr",
            "off",
            "--readiness-addr",
            "off",
        ])
        .arg("--stats-addr")
        .arg(format!("127.0.0.1:{}", free_port()))
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} (build it with --release first)", bin.display()))?;
    wait_port(port)?;
    Ok(Guard(child))
}

fn wait_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("nothing listens on port {port}")
}

#[derive(Clone, Copy, Default)]
struct Sample {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: f64,
}

/// One oha run; `rate` None = saturation over 32 connections, else fixed QPS over 16.
fn oha(url: &str, body: &Path, seconds: u64, rate: Option<u64>) -> anyhow::Result<Sample> {
    let mut cmd = Command::new("oha");
    cmd.args([
        "--no-tui",
        "--output-format",
        "json",
        "-m",
        "POST",
        "-H",
        "content-type: application/json",
    ])
    .arg("-D")
    .arg(body)
    .arg("-z")
    .arg(format!("{seconds}s"));
    match rate {
        Some(q) => cmd.args(["-c", "16", "-q", &q.to_string(), "--latency-correction"]),
        None => cmd.args(["-c", "32"]),
    };
    let out = cmd
        .arg(url)
        .output()
        .context("running oha (cargo install oha --locked)")?;
    if !out.status.success() {
        bail!("oha failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("oha JSON")?;
    let ms = |key: &str| v["latencyPercentiles"][key].as_f64().unwrap_or(f64::NAN) * 1000.0;
    let total = v["summary"]["successRate"].as_f64().unwrap_or(0.0);
    Ok(Sample {
        rps: v["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        p50_ms: ms("p50"),
        p99_ms: ms("p99"),
        errors: 1.0 - total,
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let o = parse_args()?;
    let dir = tempfile::tempdir()?;
    let body = dir.path().join("request.json");
    std::fs::write(&body, request_body())?;
    let (up_port, proxy_port) = (free_port(), free_port());
    let _nginx = start_nginx(dir.path(), up_port)?;
    let proxy = start_proxy(dir.path(), proxy_port, up_port)?;
    let direct = format!("http://127.0.0.1:{up_port}/v1/chat/completions");
    let through = format!("http://127.0.0.1:{proxy_port}/v1/chat/completions");

    let mut results: Vec<[Sample; 4]> = Vec::new();
    for round in 1..=o.rounds {
        eprintln!("round {round}/{}", o.rounds);
        let mut row = [Sample::default(); 4];
        for (i, (url, rate)) in [
            (&direct, Some(o.rate)),
            (&through, Some(o.rate)),
            (&direct, None),
            (&through, None),
        ]
        .into_iter()
        .enumerate()
        {
            oha(url, &body, o.warmup, rate)?;
            row[i] = oha(url, &body, o.seconds, rate)?;
        }
        results.push(row);
    }
    let pick = |i: usize, f: fn(&Sample) -> f64| median(results.iter().map(|r| f(&r[i])).collect());
    let pid = proxy.0.id();
    println!(
        "\nTollgate vs direct (nginx), {} rounds of {} s, medians",
        o.rounds, o.seconds
    );
    println!(
        "{:<34}{:>12}{:>12}{:>12}",
        "", "direct", "tollgate", "ratio"
    );
    let sat = (pick(2, |s| s.rps), pick(3, |s| s.rps));
    println!(
        "{:<34}{:>12.0}{:>12.0}{:>12.3}",
        "saturation (32 conns) req/s",
        sat.0,
        sat.1,
        sat.1 / sat.0
    );
    for (name, f) in [
        ("p50", (|s: &Sample| s.p50_ms) as fn(&Sample) -> f64),
        ("p99", |s: &Sample| s.p99_ms),
    ] {
        let (d, p) = (pick(0, f), pick(1, f));
        println!(
            "{:<34}{:>12.3}{:>12.3}{:>12}",
            format!("{} QPS {name} ms", o.rate),
            d,
            p,
            format!("+{:.3} ms", p - d)
        );
    }
    let errors = results
        .iter()
        .map(|r| r[1].errors.max(r[3].errors))
        .fold(0.0, f64::max);
    println!("{:<34}{:>36.4}", "proxy error rate (worst run)", errors);
    println!(
        "{:<34}{:>30.1} MiB (peak {:.1} MiB)",
        "proxy RSS after saturation",
        rss_kib(pid, "VmRSS:") as f64 / 1024.0,
        rss_kib(pid, "VmHWM:") as f64 / 1024.0
    );
    Ok(())
}
