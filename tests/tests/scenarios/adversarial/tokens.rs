//! Attacks on token-type rate limits: paths, disconnects and concurrency that used to dodge
//! the bucket.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_tests::llm::{FakeLlm, Kind};
use tollgate_tests::{Proxy, eventually, free_port};

/// An OpenAI route like the walkthrough's: completions, everything else passed through, and a
/// token bucket of `max` tokens.
fn config(port: u16, upstream: &str, max: u64) -> String {
    format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: llm\n      backends:\n      - ai:\n          name: openai\n          provider: {{openAI: {{model: gpt-4o}}}}\n          hostOverride: \"{upstream}\"\n          routes: {{/v1/chat/completions: completions, '*': passthrough}}\n      policies:\n        localRateLimit: [{{maxTokens: {max}, tokensPerFill: 1, fillInterval: 1h, type: tokens}}]\n"
    )
}

/// Tokens left in the route's only bucket.
async fn level(proxy: &Proxy) -> u64 {
    proxy.admin_json("/api/ratelimits").await["buckets"][0]["level"]
        .as_u64()
        .expect("a bucket level")
}

async fn post(url: &str, body: Value) -> reqwest::Response {
    tollgate_tests::http()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("an answer")
}

#[tokio::test(flavor = "multi_thread")]
async fn passthrough_paths_are_limited_and_debited_by_the_token_bucket() {
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let port = free_port();
    let proxy = Proxy::start(&config(port, &openai.authority(), 1000)).await;
    let embeddings = proxy.url(port, "/v1/embeddings");

    // Passthrough usage in a known format is debited: five words, five tokens.
    let r = post(
        &embeddings,
        json!({"model": "e", "input": "one two three four five"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await;
    assert_eq!(level(&proxy).await, 1000 - 5);

    // Once the bucket is empty, passthrough paths are refused like completions.
    let words = "w ".repeat(1000);
    let r = post(&embeddings, json!({"model": "e", "input": words})).await;
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await;
    assert_eq!(level(&proxy).await, 0);
    let r = post(&embeddings, json!({"model": "e", "input": "again"})).await;
    assert_eq!(
        r.status(),
        429,
        "a passthrough path dodged the empty bucket"
    );
    let r = post(
        &proxy.url(port, "/v1/chat/completions"),
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        openai.seen().len(),
        2,
        "refused requests never went upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn leaving_before_the_usage_chunk_still_debits_the_stream() {
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    openai.knobs().hold_usage_ms.store(3000, Ordering::Relaxed);
    let port = free_port();
    let proxy = Proxy::start(&config(port, &openai.authority(), 1000)).await;
    let words = "w ".repeat(200);
    let r = post(
        &proxy.url(port, "/v1/chat/completions"),
        json!({"stream": true, "messages": [{"role": "user", "content": words}]}),
    )
    .await;
    assert_eq!(r.status(), 200);

    // Read up to the last text chunk (its finish reason), then leave before the usage chunk.
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"finish_reason\":\"stop\"") {
        let chunk = body.next().await.expect("more chunks").expect("a chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(body);

    // About 100 prompt tokens (its bytes / 4) and 100 streamed ones: both are debited.
    eventually(Duration::from_secs(5), || async {
        let l = level(&proxy).await;
        if l <= 1000 - 200 {
            Ok(())
        } else {
            Err(format!("level {l}: the stream went undebited"))
        }
    })
    .await;
}

/// The usage a finished OpenAI stream reports: prompt plus completion tokens.
fn streamed_usage(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|v| v["usage"]["total_tokens"].as_u64())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_streams_overshoot_the_bucket_by_at_most_one_estimate() {
    const BUCKET: u64 = 1000;
    const CLIENTS: usize = 64;
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let port = free_port();
    let proxy = Proxy::start(&config(port, &openai.authority(), BUCKET)).await;
    let url = proxy.url(port, "/v1/chat/completions");
    // 20 words in, 22 out (the fake counts words); estimated as the body's bytes / 4 + 30.
    let body = json!({"stream": true, "max_tokens": 30, "messages": [{"role": "user", "content": "word ".repeat(20)}]});
    let estimate = body.to_string().len().div_ceil(4) as u64 + 30;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (url, body, barrier) = (url.clone(), body.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let r = post(&url, body).await;
                let status = r.status().as_u16();
                let text = r.text().await.expect("a whole answer");
                (status, streamed_usage(&text))
            })
        })
        .collect();
    let mut debited = 0;
    let mut admitted = 0;
    for c in clients {
        let (status, usage) = c.await.expect("a client");
        match status {
            200 => {
                admitted += 1;
                debited += usage.expect("usage at the end of an admitted stream");
            }
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    eprintln!(
        "{CLIENTS} concurrent streams on a {BUCKET}-token bucket: {admitted} admitted, \
         {debited} tokens used (estimate per request {estimate})"
    );
    assert!(
        debited <= BUCKET + estimate,
        "{admitted} streams used {debited} tokens of a {BUCKET}-token bucket"
    );
    assert!(admitted > 0);
}
