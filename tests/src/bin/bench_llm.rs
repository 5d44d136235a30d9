//! What translation between LLM APIs costs: each client API (chat completions, Messages,
//! Responses), plain and streamed, served by a provider of its own API (pass-through) and by
//! one of another API (translated), at saturation; prints each translation's ratio to the
//! pass-through of the same client API. Self-contained: the fake providers (Bedrock's checks
//! each SigV4 signature) run in-process and answer short texts, so the ratios are mostly the
//! gateway's work.
//!
//! `cargo build --release --bins && target/release/tollgate-bench-llm [SECONDS]`

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tollgate_tests::bedrock::{AwsKeys, FakeBedrock};
use tollgate_tests::bench::{median, requests_per_second, seconds_arg};
use tollgate_tests::{FakeLlm, Kind, Proxy, free_port};

const CONCURRENCY: usize = 32;
const ROUNDS: usize = 3;
const AWS_KEY_ID: &str = "AKIDBENCH";
const AWS_SECRET: &str = "bench-secret";

/// A client API: its path and a request body.
struct Api {
    name: &'static str,
    path: &'static str,
    body: fn(bool) -> Value,
}

const APIS: [Api; 3] = [
    Api {
        name: "chat completions",
        path: "/v1/chat/completions",
        body: |stream| {
            json!({"model": "m", "stream": stream, "max_tokens": 64,
                "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "tell me about the weather in Paris today"}]})
        },
    },
    Api {
        name: "Messages",
        path: "/v1/messages",
        body: |stream| {
            json!({"model": "m", "stream": stream, "max_tokens": 64, "system": "be brief",
                "messages": [{"role": "user", "content": "tell me about the weather in Paris today"}]})
        },
    },
    Api {
        name: "Responses",
        path: "/v1/responses",
        body: |stream| {
            json!({"model": "m", "stream": stream, "max_output_tokens": 64, "instructions": "be brief",
                "input": "tell me about the weather in Paris today"})
        },
    },
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = seconds_arg(5);
    let run = Duration::from_secs(seconds);
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let anthropic = FakeLlm::start(Kind::Anthropic, None).await;
    let gemini = FakeLlm::start(Kind::Gemini, None).await;
    for fake in [&openai, &anthropic, &gemini] {
        fake.knobs().forget.store(true, Ordering::Relaxed);
        fake.knobs().unpaced.store(true, Ordering::Relaxed);
    }
    let bedrock = FakeBedrock::start(AwsKeys {
        access_key_id: AWS_KEY_ID.into(),
        secret_access_key: AWS_SECRET.into(),
        session_token: None,
        region: "us-east-1".into(),
    })
    .await;
    bedrock.knobs().forget.store(true, Ordering::Relaxed);
    let port = free_port();
    // `provider` is the provider's YAML, `extra` more of the backend's fields.
    let route = |name: &str, provider: &str, host: String, extra: &str| {
        format!(
            "    - name: {name}\n      matches: [{{path: {{pathPrefix: /{name}/}}}}]\n      policies:\n        urlRewrite: {{path: {{prefix: /}}}}\n        ai: {{routes: {{/v1/chat/completions: completions, /v1/messages: messages, /v1/responses: responses}}}}\n      backends:\n      - ai: {{name: {name}, provider: {{{provider}}}, hostOverride: \"{host}\"{extra}}}\n"
        )
    };
    let signed = format!(
        ", policies: {{backendAuth: {{aws: {{accessKeyId: {AWS_KEY_ID}, secretAccessKey: {AWS_SECRET}}}}}}}"
    );
    let config = format!(
        "config:\n  logging:\n    level: warn\nbinds:\n- port: {port}\n  listeners:\n  - routes:\n{}{}{}{}",
        route("openai", "openAI: {}", openai.authority(), ""),
        route("anthropic", "anthropic: {}", anthropic.authority(), ""),
        route("gemini", "gemini: {}", gemini.authority(), ""),
        route(
            "bedrock",
            "bedrock: {region: us-east-1, model: anthropic.claude-3-haiku-20240307-v1:0}",
            bedrock.authority(),
            &signed
        ),
    );
    let _proxy = Proxy::start(&config).await;
    let client = tollgate_tests::http_builder()
        .pool_max_idle_per_host(usize::MAX)
        .build()?;
    // (client API, stream, upstream route, whether it is the pass-through baseline)
    let mut variants = Vec::new();
    for (a, api) in APIS.iter().enumerate() {
        for stream in [false, true] {
            let own = match api.name {
                "Messages" => "anthropic",
                _ => "openai",
            };
            variants.push((a, stream, own, true));
            for other in ["openai", "anthropic"].into_iter().filter(|o| *o != own) {
                variants.push((a, stream, other, false));
            }
            if api.name == "Responses" {
                variants.push((a, stream, "gemini", false));
            }
            variants.push((a, stream, "bedrock", false));
        }
    }
    let request = |a: usize, stream: bool, upstream: &str| {
        let client = client.clone();
        let url = format!("http://127.0.0.1:{port}/{upstream}{}", APIS[a].path);
        let body = (APIS[a].body)(stream).to_string();
        move || {
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone())
        }
    };
    for &(a, stream, upstream, _) in &variants {
        let resp = request(a, stream, upstream)().send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "{} -> {upstream}: {status} {text}",
            APIS[a].name
        );
    }
    let mut saturation = vec![Vec::new(); variants.len()];
    for round in 1..=ROUNDS {
        eprintln!("round {round}/{ROUNDS}");
        for (i, &(a, stream, upstream, _)) in variants.iter().enumerate() {
            saturation[i]
                .push(requests_per_second(CONCURRENCY, run, request(a, stream, upstream)).await);
        }
    }
    let rps: Vec<f64> = saturation.into_iter().map(median).collect();
    println!(
        "\nTranslation cost, {ROUNDS} interleaved rounds of {seconds} s, {CONCURRENCY} connections, medians"
    );
    println!("| client API | mode | upstream | saturation req/s | ratio to pass-through |");
    println!("| --- | --- | --- | --- | --- |");
    let mut baseline = 0.0;
    for (i, &(a, stream, upstream, own)) in variants.iter().enumerate() {
        if own {
            baseline = rps[i];
        }
        let how = if own {
            "pass-through"
        } else if upstream == "gemini" {
            "translated via Messages"
        } else if upstream == "bedrock" {
            "translated, SigV4-signed"
        } else {
            "translated"
        };
        println!(
            "| {} | {} | {upstream} ({how}) | {:.0} | {:.2} |",
            APIS[a].name,
            if stream { "stream" } else { "plain" },
            rps[i],
            rps[i] / baseline
        );
    }
    Ok(())
}
