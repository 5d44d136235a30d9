//! Shared pieces of the load benchmarks: an nginx upstream answering like OpenAI and Anthropic,
//! nginx as the reference reverse proxy, `oha` runs, medians and RSS.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Stops the child when dropped: SIGTERM (nginx stops its workers too; SIGQUIT would be
/// ignored by children of a background shell job), then waits.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

pub fn completion_body() -> String {
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

pub fn request_body() -> String {
    let mut text = String::from("Benchmark request. ");
    while text.len() < 900 {
        text.push_str("please answer briefly ");
    }
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}).to_string()
}

/// An Anthropic Messages SSE stream with about as much text as `completion_body`.
pub fn anthropic_stream_body() -> String {
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

pub fn start_nginx(dir: &Path, port: u16) -> anyhow::Result<Guard> {
    let body = completion_body().replace('\'', "\\'");
    let stream = anthropic_stream_body().replace('\'', "\\'");
    let server = format!(
        "  server {{\n    listen 127.0.0.1:{port};\n    location = /v1/messages {{\n      default_type text/event-stream;\n      return 200 '{stream}';\n    }}\n    location / {{\n      default_type application/json;\n      return 200 '{body}';\n    }}\n  }}\n"
    );
    run_nginx(dir, "nginx", &server, port)
}

/// nginx (one worker) as a keep-alive reverse proxy to `upstream`: the floor a lean proxy sets
/// on this machine, which the gateway's added latency is read against.
pub fn start_nginx_proxy(dir: &Path, port: u16, upstream: u16) -> anyhow::Result<Guard> {
    let server = format!(
        "  upstream up {{ server 127.0.0.1:{upstream}; keepalive 64; }}\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://up;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n"
    );
    run_nginx(dir, "nginx-proxy", &server, port)
}

/// `tollgate-hyper-proxy` on `port` in front of `upstream`: the floor of the gateway's own stack.
pub fn start_hyper_proxy(port: u16, upstream: u16) -> anyhow::Result<Guard> {
    let child = Command::new(crate::binary("tollgate-hyper-proxy"))
        .args([port.to_string(), upstream.to_string()])
        .spawn()
        .context("starting tollgate-hyper-proxy")?;
    wait_port(port)?;
    Ok(Guard(child))
}

/// One nginx worker without logs, serving `http_block` (the contents of `http {}`) on `port`.
fn run_nginx(dir: &Path, name: &str, http_block: &str, port: u16) -> anyhow::Result<Guard> {
    let conf = format!(
        "worker_processes 1;\ndaemon off;\npid {dir}/{name}.pid;\nerror_log stderr warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {dir};\n  proxy_temp_path {dir};\n  fastcgi_temp_path {dir};\n  uwsgi_temp_path {dir};\n  scgi_temp_path {dir};\n{http_block}}}\n",
        dir = dir.display()
    );
    let path = dir.join(format!("{name}.conf"));
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

pub fn wait_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("nothing listens on port {port}")
}

#[derive(Clone, Copy, Default)]
pub struct Sample {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: f64,
    /// CPU time the proxy spent per request, in microseconds (0 when not measured): steadier
    /// than throughput on a shared machine.
    pub cpu_us: f64,
}

/// One oha run; `rate` None = saturation over 32 connections, else fixed QPS over 16.
pub fn oha(url: &str, body: &Path, seconds: u64, rate: Option<u64>) -> anyhow::Result<Sample> {
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
        cpu_us: 0.0,
    })
}

/// CPU time `pid` has used so far, summed over its threads, in microseconds.
pub fn cpu_us(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1000.0
}

/// [`oha`] with the CPU time `pid` spent per request it served.
pub fn oha_cpu(
    pid: u32,
    url: &str,
    body: &Path,
    seconds: u64,
    rate: Option<u64>,
) -> anyhow::Result<Sample> {
    let before = cpu_us(pid);
    let mut sample = oha(url, body, seconds, rate)?;
    let requests = sample.rps * seconds as f64;
    if requests > 0.0 {
        sample.cpu_us = (cpu_us(pid) - before) / requests;
    }
    Ok(sample)
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

pub fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// The benchmarks' proxy config on `port`, every route in front of the nginx on `upstream`:
/// `/host` (a `host` backend), `/limited` (the same with a request limit it never reaches),
/// `/ai` (the OpenAI provider) and `/translate` (the Anthropic provider, so an OpenAI client's
/// stream is translated).
pub fn routes_config(port: u16, upstream: u16) -> String {
    let route = |name: &str, policies: &str, backend: String| {
        format!(
            "    - name: {name}\n      matches: [{{path: {{pathPrefix: /{name}}}}}]\n      policies: {{urlRewrite: {{path: {{prefix: \"\"}}}}{policies}}}\n      backends:\n      - {backend}\n"
        )
    };
    let ai = |kind: &str| {
        format!(
            "ai: {{name: {kind}, provider: {{{kind}: {{model: bench-model}}}}, hostOverride: \"127.0.0.1:{upstream}\"}}"
        )
    };
    let limit =
        ", localRateLimit: [{maxTokens: 1000000000, tokensPerFill: 1000000000, fillInterval: 1s}]";
    format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n{}{}{}{}",
        route("host", "", format!("host: 127.0.0.1:{upstream}")),
        route("limited", limit, format!("host: 127.0.0.1:{upstream}")),
        route("ai", "", ai("openAI")),
        route("translate", "", ai("anthropic")),
    )
}

/// A release `tollgate` serving `config` (written to `dir/name.yaml`) on `port`, with its
/// access log in `dir/name.access.log` and no admin or readiness server.
pub fn start_tollgate(dir: &Path, name: &str, config: &str, port: u16) -> anyhow::Result<Guard> {
    start_proxy_binary(&crate::binary("tollgate"), dir, name, config, port)
}

/// [`start_tollgate`] with another build of the proxy.
pub fn start_proxy_binary(
    bin: &Path,
    dir: &Path,
    name: &str,
    config: &str,
    port: u16,
) -> anyhow::Result<Guard> {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, config)?;
    let log = std::fs::File::create(dir.join(format!("{name}.access.log")))?;
    let child = Command::new(bin)
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
        .arg(format!("127.0.0.1:{}", crate::free_port()))
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} (build it with --release first)", bin.display()))?;
    wait_port(port)?;
    Ok(Guard(child))
}

/// Requests answered per second by `concurrency` loops, each sending `request()` in turn for
/// `run`.
pub async fn requests_per_second<F>(concurrency: usize, run: Duration, request: F) -> f64
where
    F: Fn() -> reqwest::RequestBuilder + Clone + Send + 'static,
{
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (request, done) = (request.clone(), done.clone());
            tokio::spawn(async move {
                while started.elapsed() < run {
                    if let Ok(r) = request().send().await
                        && r.status().is_success()
                        && r.bytes().await.is_ok()
                    {
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    done.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// p50 and p99 in milliseconds of `request()` sent at `qps` for `run` (after 32 requests that
/// warm the client's connections).
pub async fn paced_latency<F>(qps: u64, run: Duration, request: F) -> (f64, f64)
where
    F: Fn() -> reqwest::RequestBuilder + Clone + Send + 'static,
{
    let samples = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    for _ in 0..32 {
        let _ = request().send().await;
    }
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / qps));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    while started.elapsed() < run {
        tick.tick().await;
        let (request, samples) = (request.clone(), samples.clone());
        tasks.push(tokio::spawn(async move {
            let sent = tokio::time::Instant::now();
            if let Ok(r) = request().send().await
                && r.status().is_success()
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
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    xs.sort_by(f64::total_cmp);
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q) as usize];
    (at(0.50), at(0.99))
}

/// The run length in seconds given as the first argument, or `default`.
pub fn seconds_arg(default: u64) -> u64 {
    std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
