//! `tollgate-bench-telemetry`: what tracing and access logs cost.
//!
//! Four proxies on the same nginx upstream (see `tollgate-bench`), differing only in
//! telemetry: off (`logging.level: warn`, no tracing), access logs (text, to a file), tracing
//! at `randomSampling: 1.0` exported over OTLP to an in-process receiver, and both. The `ai`
//! route at saturation and at a fixed rate, interleaved rounds, medians, ratios to "off".
//! Needs `nginx` and `oha` on PATH, and a release build.

use std::path::Path;
use tollgate_tests::bench::{
    Guard, Sample, median, oha, oha_cpu, request_body, start_nginx, start_tollgate,
};
use tollgate_tests::free_port;
use tollgate_tests::otlp::OtlpSink;

const ROUNDS: usize = 3;
const SECONDS: u64 = 10;
const RATE: u64 = 1000;

fn start_proxy(
    dir: &Path,
    name: &str,
    settings: &str,
    upstream: u16,
) -> anyhow::Result<(u16, Guard)> {
    let port = free_port();
    let config = format!(
        "config:\n{settings}binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: ai\n      backends:\n      - ai: {{name: openai, provider: {{openAI: {{model: bench-model}}}}, hostOverride: \"127.0.0.1:{upstream}\"}}\n"
    );
    Ok((port, start_tollgate(dir, name, &config, port)?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let body = dir.path().join("request.json");
    std::fs::write(&body, request_body())?;
    let upstream = free_port();
    let _nginx = start_nginx(dir.path(), upstream)?;
    let sink = OtlpSink::counting("127.0.0.1:0").await;
    let tracing = format!(
        "  tracing: {{otlpEndpoint: \"http://{}\", randomSampling: 1.0}}\n",
        sink.addr
    );
    let quiet = "  logging: {level: warn}\n".to_string();
    let variants = [
        ("off", quiet.clone()),
        ("access logs", String::new()),
        ("tracing 1.0", format!("{quiet}{tracing}")),
        ("logs + tracing", tracing.clone()),
    ];
    let mut proxies = Vec::new();
    for (i, (name, settings)) in variants.iter().enumerate() {
        let (port, guard) = start_proxy(dir.path(), &format!("p{i}"), settings, upstream)?;
        proxies.push((
            *name,
            format!("http://127.0.0.1:{port}/v1/chat/completions"),
            guard,
        ));
    }
    // Per variant: [saturation, fixed rate] samples of each round.
    let mut results: Vec<[Vec<Sample>; 2]> = vec![Default::default(); proxies.len()];
    for round in 1..=ROUNDS {
        eprintln!("round {round}/{ROUNDS}");
        for (i, (_, url, proxy)) in proxies.iter().enumerate() {
            let pid = proxy.0.id();
            oha(url, &body, 2, None)?;
            results[i][0].push(oha_cpu(pid, url, &body, SECONDS, None)?);
            results[i][1].push(oha_cpu(pid, url, &body, SECONDS, Some(RATE))?);
        }
    }
    let pick =
        |i: usize, k: usize, f: fn(&Sample) -> f64| median(results[i][k].iter().map(f).collect());
    println!("\nTelemetry cost on the ai route, {ROUNDS} rounds of {SECONDS} s, medians");
    println!(
        "| variant | saturation req/s | ratio to off | CPU us/request | CPU ratio off/variant | p50 at {RATE} QPS | p99 at {RATE} QPS | errors |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let off_cpu = pick(0, 0, |s| s.cpu_us);
    let off = pick(0, 0, |s| s.rps);
    for (i, (name, _, _)) in proxies.iter().enumerate() {
        let rps = pick(i, 0, |s| s.rps);
        let errors = results[i]
            .iter()
            .flatten()
            .map(|s| s.errors)
            .fold(0.0, f64::max);
        let cpu = pick(i, 0, |s| s.cpu_us);
        println!(
            "| {name} | {rps:.0} | {:.3} | {cpu:.1} | {:.3} | {:.3} ms | {:.3} ms | {errors:.4} |",
            rps / off,
            off_cpu / cpu,
            pick(i, 1, |s| s.p50_ms),
            pick(i, 1, |s| s.p99_ms),
        );
    }
    println!("spans received by the OTLP sink: {}", sink.count());
    Ok(())
}
