//! `ai` backends end to end: the seed configs (with only `hostOverride` added) against fake
//! OpenAI and Anthropic APIs, translation both ways, streaming, failover and errors.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_tests::proxy::ProxyOptions;
use tollgate_tests::{FakeLlm, Kind, Proxy, free_port, seed_with_overrides};

const OPENAI_KEY: &str = "sk-openai-configured";
const ANTHROPIC_KEY: &str = "sk-ant-configured";

struct Setup {
    proxy: Proxy,
    openai: FakeLlm,
    anthropic: FakeLlm,
}

impl Setup {
    /// Seed file `name` (its port 3000 on 127.0.0.`octet`) with both fakes.
    async fn seed(name: &str, octet: u8, anthropic_key_in_env: &str) -> Setup {
        let openai = FakeLlm::start(Kind::OpenAi, Some(OPENAI_KEY)).await;
        let anthropic = FakeLlm::start(Kind::Anthropic, Some(ANTHROPIC_KEY)).await;
        let config = seed_with_overrides(name, &openai.authority(), &anthropic.authority());
        let proxy = Proxy::spawn(ProxyOptions {
            config: &config,
            ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, octet)),
            env: vec![
                ("OPENAI_API_KEY", OPENAI_KEY),
                ("ANTHROPIC_API_KEY", anthropic_key_in_env),
            ],
            ..Default::default()
        });
        proxy.wait_ready().await;
        Setup {
            proxy,
            openai,
            anthropic,
        }
    }

    fn url(&self, path: &str) -> String {
        self.proxy.url(3000, path)
    }
}

async fn post(url: &str, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = tollgate_tests::http().post(url).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Reads an SSE body into its `data:` payloads (and event names, when present).
async fn sse_events(resp: reqwest::Response) -> Vec<(Option<String>, String)> {
    let mut text = String::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (event, data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn walkthrough_curl_through_anthropic_is_translated() {
    let s = Setup::seed("metrics-testing.yaml", 21, ANTHROPIC_KEY).await;
    // The walkthrough's curl, client credentials included (the gateway replaces them).
    let resp = post(
        &s.url("/v1/chat/completions"),
        json!({"model": "claude-sonnet-4-5", "messages": [
            {"role": "system", "content": "You are a skilled cloud-native network engineer."},
            {"role": "user", "content": "Write me a paragraph containing the best way to think about Istio Ambient Mesh"}
        ]}),
        &[("anthropic-version", "2023-06-01"), ("x-api-key", "client-supplied-key")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "claude-3-5-haiku-latest-20241022");
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("anthropic says: Write me")
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    let seen = s.anthropic.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(seen[0].headers["x-api-key"], ANTHROPIC_KEY);
    assert_eq!(seen[0].headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        seen[0].body["model"], "claude-3-5-haiku-latest",
        "the provider's model replaces the request's"
    );
    assert_eq!(
        seen[0].body["system"],
        "You are a skilled cloud-native network engineer."
    );
    assert_eq!(seen[0].body["max_tokens"], 4096);

    let m = &s.proxy;
    let labels = [
        "gen_ai_token_type=\"input\"",
        "gen_ai_system=\"anthropic\"",
        "gen_ai_request_model=\"claude-3-5-haiku-latest\"",
    ];
    assert_eq!(
        m.metric("agentgateway_gen_ai_client_token_usage_sum", &labels)
            .await,
        usage["prompt_tokens"].as_f64().unwrap()
    );
    assert_eq!(
        m.metric(
            "agentgateway_gen_ai_client_token_usage_count",
            &["gen_ai_token_type=\"output\""]
        )
        .await,
        1.0
    );
    assert_eq!(
        m.metric(
            "agentgateway_gen_ai_server_request_duration_count",
            &["gen_ai_system=\"anthropic\""]
        )
        .await,
        1.0
    );
    let log = s.proxy.log();
    assert!(
        !log.contains(ANTHROPIC_KEY) && !log.contains("client-supplied-key"),
        "no secrets in logs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_completions_from_anthropic_arrive_as_openai_chunks() {
    let s = Setup::seed("metrics-testing.yaml", 22, ANTHROPIC_KEY).await;
    let resp = post(
        &s.url("/v1/chat/completions"),
        json!({"stream": true, "messages": [{"role": "user", "content": "stream me please"}]}),
        &[],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = sse_events(resp).await;
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "anthropic says: stream me please");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["usage"]["completion_tokens"], 5);
    assert_eq!(last["usage"]["prompt_tokens"], 3);
    assert_eq!(s.anthropic.seen()[0].body["stream"], true);
    tollgate_tests::eventually(std::time::Duration::from_secs(5), || async {
        let n = s
            .proxy
            .metric(
                "agentgateway_gen_ai_client_token_usage_sum",
                &["gen_ai_token_type=\"output\""],
            )
            .await;
        if n == 5.0 {
            Ok(())
        } else {
            Err(format!("output tokens {n}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_provider_completions_and_passthrough() {
    let s = Setup::seed("local-rate-limit.yaml", 23, ANTHROPIC_KEY).await;
    // `/v1/models` and `*` are passthrough in this file: forwarded as is, key added. Without
    // usage in the answer, the 1-token bucket is left as it was.
    let models: Value = tollgate_tests::get(s.url("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "fake-model");
    assert_eq!(s.openai.seen()[0].path, "/v1/models");
    assert_eq!(
        s.openai.seen()[0].headers["authorization"],
        format!("Bearer {OPENAI_KEY}")
    );

    let resp = post(
        &s.url("/v1/chat/completions"),
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello!"}]}),
        &[("authorization", "Bearer client-key")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["model"], "gpt-3.5-turbo-2025-08-07");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "openai says: Hello!"
    );
    let seen = s.openai.seen();
    assert_eq!(seen[1].path, "/v1/chat/completions");
    assert_eq!(
        seen[1].headers["authorization"],
        format!("Bearer {OPENAI_KEY}")
    );
    assert_eq!(seen[1].body["model"], "gpt-3.5-turbo");

    // The bucket is empty now: the passthrough paths share it (DESIGN §5).
    let refused = tollgate_tests::get(s.url("/v1/models")).await.unwrap();
    assert_eq!(refused.status(), 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_streams_ask_for_usage() {
    let s = Setup::seed("local-rate-limit.yaml", 24, ANTHROPIC_KEY).await;
    let resp = post(
        &s.url("/v1/chat/completions"),
        json!({"stream": true, "messages": [{"role": "user", "content": "count these words"}]}),
        &[],
    )
    .await;
    let events = sse_events(resp).await;
    assert_eq!(
        s.openai.seen()[0].body["stream_options"]["include_usage"],
        true
    );
    let usage = events
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .find(|c| c["usage"].is_object())
        .unwrap();
    assert_eq!(usage["usage"]["prompt_tokens"], 3);
    assert_eq!(events.last().unwrap().1, "[DONE]");
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_clients_reach_openai_providers() {
    let openai = FakeLlm::start(Kind::OpenAi, Some(OPENAI_KEY)).await;
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - ai:\n          name: oai\n          provider: {{openAI: {{model: gpt-4o-mini}}}}\n          hostOverride: \"{}\"\n          routes: {{/v1/messages: messages, /v1/models: models}}\n      policies: {{backendAuth: {{key: \"$OPENAI_API_KEY\"}}}}\n",
        openai.authority()
    );
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        env: vec![("OPENAI_API_KEY", OPENAI_KEY)],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let url = proxy.url(port, "/v1/messages");
    let body: Value = post(&url, json!({"model": "claude", "max_tokens": 100, "system": "be brief", "messages": [{"role": "user", "content": "hi there"}]}), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"][0]["text"], "openai says: hi there");
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["usage"]["input_tokens"], 4);
    let seen = &openai.seen()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        seen.body["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(seen.body["max_completion_tokens"], 100);

    let resp = post(&url, json!({"max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "stream"}], "tools": [{"name": "lookup", "input_schema": {"type": "object"}}]}), &[]).await;
    let events = sse_events(resp).await;
    let names: Vec<&str> = events.iter().filter_map(|(e, _)| e.as_deref()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start: Value = serde_json::from_str(&events[1].1).unwrap();
    assert_eq!(start["content_block"]["name"], "lookup");
    let delta: Value = serde_json::from_str(&events[4].1).unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");

    // The `models` route type is answered by the gateway.
    let models: Value = tollgate_tests::get(proxy.url(port, "/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "gpt-4o-mini");
    assert_eq!(openai.seen().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_skips_the_provider_with_a_wrong_key() {
    let s = Setup::seed("model-failover.yaml", 25, "fdsfdsfsd").await;
    let url = s.url("/failover/ai/v1/chat/completions");
    let body = json!({"messages": [{"role": "user", "content": "Testing failover"}]});
    let first: Value = post(&url, body.clone(), &[]).await.json().await.unwrap();
    assert_eq!(first["model"], "gpt-5-2025-08-07");
    assert_eq!(s.anthropic.seen().len(), 1, "the primary was tried once");
    assert_eq!(
        s.anthropic.seen()[0].path,
        "/v1/messages",
        "urlRewrite stripped /failover/ai"
    );
    let openai = s.openai.seen();
    assert_eq!(openai[0].headers["x-retry-attempt"], "1");
    for _ in 0..3 {
        let again: Value = post(&url, body.clone(), &[]).await.json().await.unwrap();
        assert_eq!(again["model"], "gpt-5-2025-08-07");
    }
    assert_eq!(
        s.anthropic.seen().len(),
        1,
        "the ejected provider is not called again"
    );
    assert_eq!(s.openai.seen().len(), 4);
    assert_eq!(
        s.proxy
            .metric(
                "agentgateway_retries_total",
                &["route=\"failover-ai\"", "backend=\"primary-model\""]
            )
            .await,
        1.0
    );
    let ok = [
        "route=\"failover-ai\"",
        "backend=\"second-model\"",
        "status=\"200\"",
    ];
    assert_eq!(
        s.proxy.metric("agentgateway_requests_total", &ok).await,
        4.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_clear() {
    let s = Setup::seed("metrics-testing.yaml", 26, ANTHROPIC_KEY).await;
    let url = s.url("/v1/chat/completions");
    let client = tollgate_tests::http();
    let r = client.post(&url).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not JSON"));
    let r = post(&url, json!({"model": "x"}), &[]).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("`messages`"));

    // Upstream errors keep their status, reshaped for the OpenAI client.
    s.anthropic
        .knobs()
        .fail_status
        .store(529, Ordering::Relaxed);
    let r = post(
        &url,
        json!({"messages": [{"role": "user", "content": "hi"}]}),
        &[],
    )
    .await;
    assert_eq!(r.status(), 529);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["message"], "the fake was told to fail");
    assert_eq!(e["error"]["type"], "overloaded_error");
    s.anthropic.knobs().fail_status.store(0, Ordering::Relaxed);

    s.anthropic.knobs().garbage.store(1, Ordering::Relaxed);
    let r = post(
        &url,
        json!({"messages": [{"role": "user", "content": "hi"}]}),
        &[],
    )
    .await;
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("not JSON"));
    s.anthropic.knobs().garbage.store(0, Ordering::Relaxed);

    s.anthropic
        .knobs()
        .break_stream_after
        .store(4, Ordering::Relaxed);
    let r = post(
        &url,
        json!({"stream": true, "messages": [{"role": "user", "content": "a b c d e f"}]}),
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    let events = sse_events(r).await;
    let last: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stream"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_model_anywhere_is_400() {
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - ai: {{name: o, provider: {{openAI: {{}}}}, hostOverride: \"{}\"}}\n",
        openai.authority()
    );
    let proxy = Proxy::start(&config).await;
    let r = post(
        &proxy.url(port, "/v1/chat/completions"),
        json!({"messages": [{"role": "user", "content": "hi"}]}),
        &[],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("model not specified"));
    assert!(openai.seen().is_empty());
}
