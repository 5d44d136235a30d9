//! `tollgate-bench-ab BASELINE [SECONDS]`: this build of the proxy against another one
//! (BASELINE, the path of a `tollgate` binary, e.g. the previous commit's release build).
//!
//! Both serve `tollgate-bench`'s config (its `host` and `ai` routes and streaming OpenAI ->
//! Anthropic translation are measured, access logs on) in front of the nginx upstream of `tollgate-bench`;
//! interleaved rounds, medians. Per route: saturation req/s, the proxy's CPU per request at
//! saturation and p50 at 1,000 QPS, each as this build's ratio to the baseline. CPU per
//! request is the steadiest of the three on a shared machine. Then each proxy's RSS. Needs `nginx` and `oha`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;
use tollgate_tests::bench::{
    Guard, Sample, median, oha, oha_cpu, request_body, routes_config, rss_kib, start_nginx,
    start_proxy_binary,
};
use tollgate_tests::free_port;

const ROUNDS: usize = 3;
const RATE: u64 = 1000;

fn start(bin: &Path, dir: &Path, name: &str, upstream: u16) -> anyhow::Result<(u16, Guard)> {
    let port = free_port();
    let config = routes_config(port, upstream);
    Ok((port, start_proxy_binary(bin, dir, name, &config, port)?))
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let baseline = PathBuf::from(
        args.next()
            .context("usage: tollgate-bench-ab BASELINE [SECONDS]")?,
    );
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let current = tollgate_tests::binary("tollgate");
    let dir = tempfile::tempdir()?;
    let body = dir.path().join("request.json");
    std::fs::write(&body, request_body())?;
    let mut streaming: Value = serde_json::from_str(&request_body())?;
    streaming["stream"] = Value::Bool(true);
    let stream_body = dir.path().join("stream-request.json");
    std::fs::write(&stream_body, streaming.to_string())?;
    let upstream = free_port();
    let _nginx = start_nginx(dir.path(), upstream)?;
    let builds = [
        start(&baseline, dir.path(), "baseline", upstream)?,
        start(&current, dir.path(), "current", upstream)?,
    ];
    let routes = [("host", &body), ("ai", &body), ("translate", &stream_body)];
    // [route][build] -> [saturation, fixed rate] samples of each round.
    let mut samples = vec![[[Vec::<Sample>::new(), Vec::new()], [Vec::new(), Vec::new()]]; 3];
    for round in 1..=ROUNDS {
        eprintln!("round {round}/{ROUNDS}");
        for (r, (route, body)) in routes.iter().enumerate() {
            for (b, (port, proxy)) in builds.iter().enumerate() {
                let url = format!("http://127.0.0.1:{port}/{route}/v1/chat/completions");
                let pid = proxy.0.id();
                oha(&url, body, 2, None)?;
                samples[r][b][0].push(oha_cpu(pid, &url, body, seconds, None)?);
                samples[r][b][1].push(oha(&url, body, seconds, Some(RATE))?);
            }
        }
    }
    println!(
        "\nthis build vs {}, {ROUNDS} rounds of {seconds} s, medians",
        baseline.display()
    );
    println!(
        "| route | req/s base | req/s now | ratio | CPU us/req base | now | ratio base/now | p50 base | p50 now | worst error rate |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (r, (route, _)) in routes.iter().enumerate() {
        let pick = |b: usize, k: usize, f: fn(&Sample) -> f64| {
            median(samples[r][b][k].iter().map(f).collect())
        };
        let (rps0, rps1) = (pick(0, 0, |s| s.rps), pick(1, 0, |s| s.rps));
        let (cpu0, cpu1) = (pick(0, 0, |s| s.cpu_us), pick(1, 0, |s| s.cpu_us));
        let errors = samples[r]
            .iter()
            .flatten()
            .flatten()
            .map(|s| s.errors)
            .fold(0.0, f64::max);
        println!(
            "| {route} | {rps0:.0} | {rps1:.0} | {:.3} | {cpu0:.1} | {cpu1:.1} | {:.3} | {:.3} ms | {:.3} ms | {errors:.4} |",
            rps1 / rps0,
            cpu0 / cpu1,
            pick(0, 1, |s| s.p50_ms),
            pick(1, 1, |s| s.p50_ms),
        );
    }
    let rss = |b: usize| rss_kib(builds[b].1.0.id(), "VmRSS:") as f64 / 1024.0;
    println!(
        "\nproxy RSS after the rounds: baseline {:.1} MiB, this build {:.1} MiB",
        rss(0),
        rss(1)
    );
    Ok(())
}
