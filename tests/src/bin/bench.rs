//! `tollgate-bench`: proxy overhead by DESIGN §12's method, printed as ratios to direct.
//!
//! nginx (one worker) answers a fixed 1 KiB `chat.completion` (and an Anthropic SSE stream on
//! `/v1/messages`); `oha` sends a 1 KiB chat request at a fixed rate and at saturation,
//! straight to nginx and through `tollgate` on a `host` route, an `ai` route (OpenAI provider)
//! and a streaming OpenAI -> Anthropic translation, interleaved over several rounds; medians
//! are reported with the proxy's RSS. Two floors run the same plain requests, for the added
//! latency to be read against: nginx as a keep-alive reverse proxy (a lean proxy on this
//! machine) and `tollgate-hyper-proxy` (the gateway's own stack with nothing on it).

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;
use tollgate_tests::bench::{
    Guard, Sample, median, oha, oha_cpu, request_body, routes_config, rss_kib, start_hyper_proxy,
    start_nginx, start_nginx_proxy, start_tollgate,
};
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

fn start_proxy(dir: &Path, port: u16, upstream: u16) -> anyhow::Result<Guard> {
    start_tollgate(dir, "tollgate", &routes_config(port, upstream), port)
}

fn main() -> anyhow::Result<()> {
    let o = parse_args()?;
    let dir = tempfile::tempdir()?;
    let body = dir.path().join("request.json");
    std::fs::write(&body, request_body())?;
    let (up_port, proxy_port) = (free_port(), free_port());
    let (nginx_floor_port, hyper_floor_port) = (free_port(), free_port());
    let _nginx = start_nginx(dir.path(), up_port)?;
    let _nginx_floor = start_nginx_proxy(dir.path(), nginx_floor_port, up_port)?;
    let _hyper_floor = start_hyper_proxy(hyper_floor_port, up_port)?;
    let proxy = start_proxy(dir.path(), proxy_port, up_port)?;
    let stream_body = dir.path().join("stream-request.json");
    let mut streaming: Value = serde_json::from_str(&request_body())?;
    streaming["stream"] = Value::Bool(true);
    std::fs::write(&stream_body, streaming.to_string())?;
    let direct = format!("http://127.0.0.1:{up_port}/v1/chat/completions");
    let direct_sse = format!("http://127.0.0.1:{up_port}/v1/messages");
    let via = |route: &str| format!("http://127.0.0.1:{proxy_port}/{route}/v1/chat/completions");
    let (host, ai, translate, limited) = (via("host"), via("ai"), via("translate"), via("limited"));
    let floor = |port: u16| format!("http://127.0.0.1:{port}/v1/chat/completions");
    let (nginx_floor, hyper_floor) = (floor(nginx_floor_port), floor(hyper_floor_port));
    // (url, body, fixed rate?) in the order they run each round: interleaved direct/proxy.
    let runs: [(&str, &Path, Option<u64>); 13] = [
        (&direct, &body, Some(o.rate)),
        (&host, &body, Some(o.rate)),
        (&ai, &body, Some(o.rate)),
        (&direct, &body, None),
        (&host, &body, None),
        (&ai, &body, None),
        (&direct_sse, &stream_body, None),
        (&translate, &stream_body, None),
        (&limited, &body, None),
        (&nginx_floor, &body, Some(o.rate)),
        (&nginx_floor, &body, None),
        (&hyper_floor, &body, Some(o.rate)),
        (&hyper_floor, &body, None),
    ];
    let pid = proxy.0.id();
    let mut results: Vec<Vec<Sample>> = Vec::new();
    for round in 1..=o.rounds {
        eprintln!("round {round}/{}", o.rounds);
        let mut row = Vec::new();
        for (url, body, rate) in runs {
            oha(url, body, o.warmup, rate)?;
            row.push(oha_cpu(pid, url, body, o.seconds, rate)?);
        }
        results.push(row);
    }
    let pick = |i: usize, f: fn(&Sample) -> f64| median(results.iter().map(|r| f(&r[i])).collect());
    let rps = |s: &Sample| s.rps;
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
        ("nginx proxy (floor), saturation req/s", 3, 10),
        ("hyper proxy (floor), saturation req/s", 3, 12),
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
    for (route, i) in [
        ("host route", 1),
        ("ai route", 2),
        ("nginx proxy", 9),
        ("hyper proxy", 11),
    ] {
        for (name, f) in [
            ("p50", (|s: &Sample| s.p50_ms) as fn(&Sample) -> f64),
            ("p99", |s: &Sample| s.p99_ms),
        ] {
            let (d, p) = (pick(0, f), pick(i, f));
            let label = format!("{route}, {} QPS {name} ms", o.rate);
            println!(
                "{label:<44}{d:>12.3}{p:>12.3}{:>12}",
                format!("+{:.3} ms", p - d)
            );
        }
    }
    let added = |i: usize| pick(i, |s| s.p50_ms) - pick(0, |s| s.p50_ms);
    for (name, floor) in [("nginx", 9), ("hyper", 11)] {
        let label = format!("ai route added p50 / {name} proxy added p50");
        println!("{label:<44}{:>36.2}", added(2) / added(floor));
    }
    let cpu = |s: &Sample| s.cpu_us;
    for (name, i) in [
        ("host route, proxy CPU us/request at rate", 1),
        ("ai route, proxy CPU us/request at rate", 2),
        ("ai route, proxy CPU us/request, saturation", 5),
        ("streaming translation, CPU us/request", 7),
    ] {
        println!("{name:<44}{:>36.1}", pick(i, cpu));
    }
    println!(
        "{:<44}{:>36.3}",
        "plain ai / streaming translation CPU",
        pick(5, cpu) / pick(7, cpu)
    );
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
