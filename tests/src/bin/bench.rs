//! `tollgate-bench`: proxy overhead by DESIGN §12's method, printed as ratios to direct.
//!
//! nginx (one worker) answers a fixed 1 KiB `chat.completion` (and an Anthropic SSE stream on
//! `/v1/messages`); `oha` sends a 1 KiB chat request at a fixed rate and at saturation,
//! straight to nginx and through `tollgate` on a `host` route, an `ai` route (OpenAI provider)
//! and a streaming OpenAI -> Anthropic translation, interleaved over several rounds; medians
//! are reported with the proxy's RSS.

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

/// Stops the child when dropped: SIGQUIT (nginx stops its workers too), then waits.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.0.id().to_string()])
            .status();
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

/// An Anthropic Messages SSE stream with about as much text as `completion_body`.
fn anthropic_stream_body() -> String {
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut out = ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}),
    );
    out += &ev(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    );
    for i in 0..16 {
        out += &ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": format!("lorem ipsum dolor {i} ")}}),
        );
    }
    out += &ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    );
    out += &ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 64}}),
    );
    out += &ev("message_stop", json!({"type": "message_stop"}));
    out
}

fn start_nginx(dir: &Path, port: u16) -> anyhow::Result<Guard> {
    let body = completion_body().replace('\'', "\\'");
    let stream = anthropic_stream_body().replace('\'', "\\'");
    let conf = format!(
        "worker_processes 1;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log stderr warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {dir};\n  proxy_temp_path {dir};\n  fastcgi_temp_path {dir};\n  uwsgi_temp_path {dir};\n  scgi_temp_path {dir};\n  server {{\n    listen 127.0.0.1:{port};\n    location = /v1/messages {{\n      default_type text/event-stream;\n      return 200 '{stream}';\n    }}\n    location / {{\n      default_type application/json;\n      return 200 '{body}';\n    }}\n  }}\n}}\n",
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
    let route = |name: &str, backend: String| {
        format!(
            "    - name: {name}\n      matches: [{{path: {{pathPrefix: /{name}}}}}]\n      policies: {{urlRewrite: {{path: {{prefix: \"\"}}}}}}\n      backends:\n      - {backend}\n"
        )
    };
    let ai = |kind: &str| {
        format!(
            "ai: {{name: {kind}, provider: {{{kind}: {{model: bench-model}}}}, hostOverride: \"127.0.0.1:{upstream}\"}}"
        )
    };
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n{}{}{}{}",
        route("host", format!("host: 127.0.0.1:{upstream}")),
        route("limited", format!("host: 127.0.0.1:{upstream}")),
        route("ai", ai("openAI")),
        route("translate", ai("anthropic")),
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
    let stream_body = dir.path().join("stream-request.json");
    let mut streaming: Value = serde_json::from_str(&request_body())?;
    streaming["stream"] = Value::Bool(true);
    std::fs::write(&stream_body, streaming.to_string())?;
    let direct = format!("http://127.0.0.1:{up_port}/v1/chat/completions");
    let direct_sse = format!("http://127.0.0.1:{up_port}/v1/messages");
    let via = |route: &str| format!("http://127.0.0.1:{proxy_port}/{route}/v1/chat/completions");
    let (host, ai, translate, limited) = (via("host"), via("ai"), via("translate"), via("limited"));
    // (url, body, fixed rate?) in the order they run each round: interleaved direct/proxy.
    let runs: [(&str, &Path, Option<u64>); 9] = [
        (&direct, &body, Some(o.rate)),
        (&host, &body, Some(o.rate)),
        (&ai, &body, Some(o.rate)),
        (&direct, &body, None),
        (&host, &body, None),
        (&ai, &body, None),
        (&direct_sse, &stream_body, None),
        (&translate, &stream_body, None),
        (&limited, &body, None),
    ];
    let mut results: Vec<Vec<Sample>> = Vec::new();
    for round in 1..=o.rounds {
        eprintln!("round {round}/{}", o.rounds);
        let mut row = Vec::new();
        for (url, body, rate) in runs {
            oha(url, body, o.warmup, rate)?;
            row.push(oha(url, body, o.seconds, rate)?);
        }
        results.push(row);
    }
    let pick = |i: usize, f: fn(&Sample) -> f64| median(results.iter().map(|r| f(&r[i])).collect());
    let rps = |s: &Sample| s.rps;
    let pid = proxy.0.id();
    println!(
        "\nTollgate vs direct (nginx), {} rounds of {} s, medians",
        o.rounds, o.seconds
    );
    println!(
        "{:<44}{:>12}{:>12}{:>12}",
        "", "direct", "tollgate", "ratio"
    );
    for (name, d, p) in [
        ("host route, saturation req/s", 3, 4),
        ("ai route (OpenAI), saturation req/s", 3, 5),
        ("OpenAI->Anthropic streaming, saturation req/s", 6, 7),
    ] {
        let (d, p) = (pick(d, rps), pick(p, rps));
        println!("{name:<44}{d:>12.0}{p:>12.0}{:>12.3}", p / d);
    }
    let limited_vs_host = pick(8, rps) / pick(4, rps);
    println!(
        "{:<44}{:>36.3}",
        "host route with a rate limit / without", limited_vs_host
    );
    let stream_vs_plain = pick(7, rps) / pick(5, rps);
    println!(
        "{:<44}{:>36.3}",
        "streaming translation / plain ai completions", stream_vs_plain
    );
    for (route, i) in [("host", 1), ("ai", 2)] {
        for (name, f) in [
            ("p50", (|s: &Sample| s.p50_ms) as fn(&Sample) -> f64),
            ("p99", |s: &Sample| s.p99_ms),
        ] {
            let (d, p) = (pick(0, f), pick(i, f));
            let label = format!("{route} route, {} QPS {name} ms", o.rate);
            println!(
                "{label:<44}{d:>12.3}{p:>12.3}{:>12}",
                format!("+{:.3} ms", p - d)
            );
        }
    }
    let errors = results
        .iter()
        .flat_map(|r| r.iter().map(|s| s.errors))
        .fold(0.0, f64::max);
    println!("{:<44}{:>36.4}", "error rate (worst run)", errors);
    println!(
        "{:<44}{:>26.1} MiB (peak {:.1} MiB)",
        "proxy RSS after saturation",
        rss_kib(pid, "VmRSS:") as f64 / 1024.0,
        rss_kib(pid, "VmHWM:") as f64 / 1024.0
    );
    Ok(())
}
