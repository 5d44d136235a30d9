//! The route types forwarded to the provider of their own API (Responses, embeddings,
//! Anthropic token counting, `detect`): key and model set, usage read for token limits,
//! metrics and logs, and refusals where a provider does not speak the API.

use serde_json::{Value, json};
use tollgate_tests::post_json as post;
use tollgate_tests::{FakeLlm, Kind, Proxy, eventually, free_port};

const OPENAI_KEY: &str = "sk-openai-test";
const ANTHROPIC_KEY: &str = "sk-ant-test";

/// An SSE body as (event name, data) pairs.
async fn sse_events(resp: reqwest::Response) -> Vec<(String, Value)> {
    let text = tollgate_tests::body_text(resp).await;
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (event, serde_json::from_str(&data).unwrap_or(Value::Null))
        })
        .collect()
}

/// One route of every type to an OpenAI fake (`/openai`) and an Anthropic one
/// (`/anthropic`), each route with a token bucket of `tokens`, and a `detect` route for
/// every other path to the OpenAI fake.
async fn setup(tokens: u64) -> (Proxy, u16, FakeLlm, FakeLlm) {
    let openai = FakeLlm::start(Kind::OpenAi, Some(OPENAI_KEY)).await;
    let anthropic = FakeLlm::start(Kind::Anthropic, Some(ANTHROPIC_KEY)).await;
    let port = free_port();
    let route = |name: &str, kind: &str, model: &str, key: &str, host: String| {
        format!(
            "    - name: {name}\n      matches: [{{path: {{pathPrefix: /{name}}}}}]\n      policies:\n        localRateLimit: [{{maxTokens: {tokens}, tokensPerFill: 1, fillInterval: 1h, type: tokens}}]\n        ai:\n          routes:\n            /v1/responses: responses\n            /v1/embeddings: embeddings\n            /v1/messages/count_tokens: anthropicTokenCount\n            /v1/messages: messages\n      backends:\n      - ai: {{name: {name}, provider: {{{kind}: {{{model}}}}}, hostOverride: \"{host}\", policies: {{backendAuth: {{key: {key}}}}}}}\n"
        )
    };
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n{}{}",
        route("openai", "openAI", "", OPENAI_KEY, openai.authority()),
        route(
            "anthropic",
            "anthropic",
            "model: claude-haiku-4-5",
            ANTHROPIC_KEY,
            anthropic.authority()
        ),
    ) + &format!(
        "    - name: detect\n      policies:\n        ai: {{routes: {{'*': detect}}}}\n      backends:\n      - ai: {{name: detect, provider: {{openAI: {{}}}}, hostOverride: \"{}\", policies: {{backendAuth: {{key: {OPENAI_KEY}}}}}}}\n",
        openai.authority()
    );
    (Proxy::start(&config).await, port, openai, anthropic)
}

async fn tokens_metric(proxy: &Proxy, kind: &str, operation: &str, want: f64) {
    eventually(std::time::Duration::from_secs(5), || async {
        let n = proxy
            .metric(
                "agentgateway_gen_ai_client_token_usage_sum",
                &[
                    &format!("gen_ai_token_type=\"{kind}\""),
                    &format!("gen_ai_operation_name=\"{operation}\""),
                ],
            )
            .await;
        if n == want {
            Ok(())
        } else {
            Err(format!("{kind} {operation} tokens {n}, want {want}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_plain_and_streamed_count_their_usage_and_spend_the_bucket() {
    let (proxy, port, openai, _anthropic) = setup(20).await;
    let url = proxy.url(port, "/openai/v1/responses");

    let resp = post(
        &url,
        json!({"model": "gpt-4.1", "input": "tell me a joke", "previous_response_id": "resp_earlier"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(
        body["output"][0]["content"][0]["text"],
        "openai says: tell me a joke"
    );
    assert_eq!(body["previous_response_id"], "resp_earlier");
    let seen = &openai.seen()[0];
    assert_eq!(seen.path, "/v1/responses");
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {OPENAI_KEY}")
    );
    assert_eq!(seen.body["previous_response_id"], "resp_earlier");
    // 4 words in, 6 out.
    tokens_metric(&proxy, "input", "chat", 4.0).await;
    tokens_metric(&proxy, "output", "chat", 6.0).await;

    let resp = post(
        &url,
        json!({"model": "gpt-4.1", "stream": true, "input": [{"role": "user", "content": [{"type": "input_text", "text": "stream it"}]}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = sse_events(resp).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"response.created"));
    assert_eq!(names.last(), Some(&"response.completed"));
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "openai says: stream it");
    let usage = &events.last().unwrap().1["response"]["usage"];
    assert_eq!(
        (
            usage["input_tokens"].clone(),
            usage["output_tokens"].clone()
        ),
        (json!(2), json!(4))
    );
    tokens_metric(&proxy, "output", "chat", 10.0).await;

    // 16 of the 20 tokens are spent, then the next answer's 10 more: the bucket is empty.
    assert_eq!(
        post(
            &url,
            json!({"model": "gpt-4.1", "input": "one more please"})
        )
        .await
        .status(),
        200
    );
    let refused = post(&url, json!({"model": "gpt-4.1", "input": "and again"})).await;
    assert_eq!(refused.status(), 429);

    let line = eventually(std::time::Duration::from_secs(5), || async {
        proxy
            .access_log()
            .lines()
            .find(|l| l.contains("http.path=/openai/v1/responses"))
            .map(str::to_string)
            .ok_or_else(|| format!("no access log line: {}", proxy.access_log()))
    })
    .await;
    for want in [
        "gen_ai.usage.input_tokens=4",
        "gen_ai.usage.output_tokens=6",
        "gen_ai.request.model=gpt-4.1",
        "gen_ai.response.model=gpt-4.1-2025-04-14",
    ] {
        assert!(line.contains(want), "{want} missing in {line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn embeddings_token_counting_and_detect() {
    let (proxy, port, openai, anthropic) = setup(1000).await;

    let resp = post(
        &proxy.url(port, "/openai/v1/embeddings"),
        json!({"model": "text-embedding-3-small", "input": ["three words here", "two more"]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(openai.seen()[0].path, "/v1/embeddings");
    tokens_metric(&proxy, "input", "embeddings", 5.0).await;

    // Token counting goes to Anthropic with its key and the configured model, and spends
    // nothing: the bucket's level is unchanged.
    let level = || {
        proxy.metric(
            "agentgateway_ratelimit_bucket_tokens",
            &["route=\"anthropic\""],
        )
    };
    let before = level().await;
    assert!(before > 0.0, "the bucket's gauge is found");
    let resp = post(
        &proxy.url(port, "/anthropic/v1/messages/count_tokens"),
        json!({"model": "claude-opus-4-1", "messages": [{"role": "user", "content": "count my four words"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"input_tokens": 4})
    );
    let seen = &anthropic.seen()[0];
    assert_eq!(seen.path, "/v1/messages/count_tokens");
    assert_eq!(seen.headers["x-api-key"], ANTHROPIC_KEY);
    assert_eq!(seen.body["model"], "claude-haiku-4-5");
    tokens_metric(&proxy, "input", "chat", 0.0).await;
    // A message on the same route then spends exactly its own usage (4 + 6 tokens): the
    // gauge moves, and the count before it spent nothing.
    let resp = post(
        &proxy.url(port, "/anthropic/v1/messages"),
        json!({"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "count my four words"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    eventually(std::time::Duration::from_secs(5), || async {
        let now = level().await;
        if now == before - 10.0 {
            Ok(())
        } else {
            Err(format!("level {now}, want {} - 10", before))
        }
    })
    .await;

    // `detect`: the body goes as it is (no usage option added), usage is still read.
    let resp = post(
        &proxy.url(port, "/v1/chat/completions"),
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "detect me"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let seen = openai.seen().pop().unwrap();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.body["model"], "gpt-4o");
    assert!(seen.body.get("stream_options").is_none());
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {OPENAI_KEY}")
    );
    // Counted so far: the message above (4 in, 6 out) and this one (2 in, 4 out).
    tokens_metric(&proxy, "input", "chat", 6.0).await;
    tokens_metric(&proxy, "output", "chat", 10.0).await;
    // A Responses answer through `detect`: its usage shape is read too.
    let resp = post(
        &proxy.url(port, "/v1/responses"),
        json!({"model": "gpt-4.1", "input": "three more words"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    tokens_metric(&proxy, "input", "chat", 9.0).await;
    tokens_metric(&proxy, "output", "chat", 15.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apis_a_provider_does_not_speak_are_refused() {
    let (proxy, port, openai, anthropic) = setup(1000).await;
    let resp = post(
        &proxy.url(port, "/anthropic/v1/embeddings"),
        json!({"model": "claude", "input": "hi"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(text.contains("Anthropic has no embeddings API"), "{text}");
    // What a translation cannot honour is refused, not dropped.
    let resp = post(
        &proxy.url(port, "/anthropic/v1/responses"),
        json!({"model": "claude", "input": "hi", "previous_response_id": "resp_1"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("`previous_response_id` cannot be translated to the upstream's Messages API: the gateway keeps no responses"),
        "{text}"
    );
    let resp = post(
        &proxy.url(port, "/openai/v1/messages/count_tokens"),
        json!({"model": "gpt-4o", "messages": []}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("anthropicTokenCount"));
    assert!(openai.seen().is_empty() && anthropic.seen().is_empty());
}

/// A Responses client on an Anthropic provider: the request becomes a Messages request and
/// the answer (plain or streamed, text or a function call) a Responses one, usage counted.
#[tokio::test(flavor = "multi_thread")]
async fn responses_are_translated_for_an_anthropic_provider() {
    let (proxy, port, _openai, anthropic) = setup(1000).await;
    let url = proxy.url(port, "/anthropic/v1/responses");
    let resp = post(
        &url,
        json!({"model": "gpt-4.1", "instructions": "be brief", "input": "tell me a joke", "max_output_tokens": 50, "temperature": 0.3}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["id"], "resp_fake");
    assert_eq!(body["model"], "claude-haiku-4-5-20241022");
    assert_eq!(body["instructions"], "be brief");
    assert_eq!(body["temperature"], 0.3);
    assert_eq!(
        body["output"][0]["content"][0]["text"],
        "anthropic says: tell me a joke"
    );
    // 4 words in (the instructions are the system prompt: 2 more), 6 out.
    assert_eq!(body["usage"]["input_tokens"], 6);
    assert_eq!(body["usage"]["output_tokens"], 6);
    let seen = anthropic.seen();
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(seen[0].headers["x-api-key"], ANTHROPIC_KEY);
    assert_eq!(seen[0].body["system"], "be brief");
    assert_eq!(seen[0].body["max_tokens"], 50);
    assert_eq!(seen[0].body["model"], "claude-haiku-4-5");
    tokens_metric(&proxy, "input", "chat", 6.0).await;
    tokens_metric(&proxy, "output", "chat", 6.0).await;

    let resp = post(
        &url,
        json!({"model": "x", "input": "stream it", "stream": true}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = sse_events(resp).await;
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "anthropic says: stream it");
    let (last, completed) = events.last().unwrap();
    assert_eq!(last, "response.completed");
    assert_eq!(completed["response"]["usage"]["output_tokens"], 4);
    assert_eq!(anthropic.seen()[1].body["stream"], true);

    // A function tool: its call comes back with Anthropic's id, and the call and its
    // output go back as a tool use and its result.
    let tools = json!([{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]);
    let resp = post(
        &url,
        json!({"model": "x", "input": "look it up", "tools": tools}),
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    let call = &body["output"][0];
    assert_eq!(call["type"], "function_call", "{body}");
    assert_eq!(call["call_id"], "toolu_fake");
    assert_eq!(call["name"], "lookup");
    assert_eq!(call["arguments"], "{\"q\":\"x\"}");
    let resp = post(
        &url,
        json!({"model": "x", "input": [
            {"role": "user", "content": "look it up"},
            call,
            {"type": "function_call_output", "call_id": "toolu_fake", "output": "found it"},
        ]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["output"][0]["content"][0]["text"],
        "anthropic says: found it"
    );
    let sent = &anthropic.seen()[3].body["messages"];
    assert_eq!(sent[1]["content"][0]["type"], "tool_use");
    assert_eq!(sent[2]["content"][0]["tool_use_id"], "toolu_fake");

    // The provider's errors reach the client in OpenAI's shape.
    let resp = post(
        &url,
        json!({"model": "x", "input": [{"type": "function_call_output", "call_id": "toolu_nope", "output": "?"}]}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unexpected `tool_use_id`"),
        "{body}"
    );
}

/// agentgateway's `prompt-enrichment` example on its `responses` route: the prompts go
/// around the input, a text input becoming the user's message.
#[tokio::test(flavor = "multi_thread")]
async fn prompts_enrich_responses_input() {
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - ai: {{name: openai, provider: {{openAI: {{}}}}, hostOverride: \"{}\"}}\n      policies:\n        ai:\n          routes: {{/v1/chat/completions: completions, /v1/responses: responses}}\n          prompts:\n            append: [{{role: system, content: \"Respond with emoji's only\"}}]\n",
        openai.authority()
    );
    let proxy = Proxy::start(&config).await;
    let resp = post(
        &proxy.url(port, "/v1/responses"),
        json!({"model": "gpt-4.1", "instructions": "be kind", "input": "Hello!"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let seen = &openai.seen()[0].body;
    assert_eq!(
        seen["input"],
        json!([
            {"type": "message", "role": "user", "content": "Hello!"},
            {"type": "message", "role": "system", "content": "Respond with emoji's only"}
        ])
    );
    assert_eq!(seen["instructions"], "be kind");
}

/// A Responses stream that breaks ends with a Responses `error` event, and its output is
/// estimated from the text streamed.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_responses_stream_ends_with_an_error_event() {
    let (proxy, port, openai, _anthropic) = setup(1000).await;
    openai
        .knobs()
        .break_stream_after
        .store(6, std::sync::atomic::Ordering::Relaxed);
    let request = json!({"model": "gpt-4.1", "stream": true, "input": "a long answer please"});
    let prompt_estimate = (serde_json::to_vec(&request).unwrap().len() as f64 / 4.0).ceil();
    let resp = post(&proxy.url(port, "/openai/v1/responses"), request).await;
    assert_eq!(resp.status(), 200);
    let events = sse_events(resp).await;
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error", "{events:?}");
    assert_eq!(data["type"], "error");
    assert!(
        data["message"].as_str().unwrap().contains("stream broke"),
        "{data}"
    );
    // The bucket pays the prompt's estimate and the text streamed, a quarter of its bytes.
    let streamed: usize = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap().len())
        .sum();
    assert!(streamed > 0, "{events:?}");
    let want = 1000.0 - prompt_estimate - (streamed as f64 / 4.0).ceil();
    eventually(std::time::Duration::from_secs(5), || async {
        let level = proxy
            .metric(
                "agentgateway_ratelimit_bucket_tokens",
                &["route=\"openai\""],
            )
            .await;
        if level == want {
            Ok(())
        } else {
            Err(format!("bucket at {level}, want {want}"))
        }
    })
    .await;
}

/// The `gemini` provider (agentgateway's telemetry examples): Google AI Studio's
/// OpenAI-compatible API on its own paths with the key as a bearer token, chat clients of
/// either API served through it, `gcp.gemini` in the metrics, and Responses refused.
#[tokio::test(flavor = "multi_thread")]
async fn gemini_is_served_through_its_openai_compatible_api() {
    const GEMINI_KEY: &str = "gemini-test-key";
    let gemini = FakeLlm::start(Kind::Gemini, Some(GEMINI_KEY)).await;
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - ai:\n          name: gemini\n          provider: {{gemini: {{model: gemini-1.5-flash}}}}\n          hostOverride: \"{}\"\n      policies:\n        backendAuth: {{key: {GEMINI_KEY}}}\n        ai:\n          routes: {{/v1/chat/completions: completions, /v1/messages: messages, /v1/responses: responses, /v1/models: passthrough}}\n",
        gemini.authority()
    );
    let proxy = Proxy::start(&config).await;
    let url = |path: &str| proxy.url(port, path);
    let resp = post(
        &url("/v1/chat/completions"),
        json!({"model": "any", "messages": [{"role": "user", "content": "Hello!"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let seen = gemini.seen();
    assert_eq!(seen[0].path, "/v1beta/openai/chat/completions");
    assert_eq!(
        seen[0].headers["authorization"],
        format!("Bearer {GEMINI_KEY}")
    );
    assert_eq!(seen[0].body["model"], "gemini-1.5-flash");

    let resp = post(
        &url("/v1/messages"),
        json!({"model": "any", "max_tokens": 32, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200, "an Anthropic client, translated");
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["type"], "message");

    let models = tollgate_tests::get(url("/v1/models")).await.unwrap();
    assert_eq!(models.status(), 200);
    assert_eq!(gemini.seen().last().unwrap().path, "/v1beta/openai/models");

    // No Responses endpoint: translated to chat completions (through Messages).
    let resp = post(
        &url("/v1/responses"),
        json!({"model": "any", "input": "hi there"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["object"], "response");
    assert_eq!(
        gemini.seen().last().unwrap().path,
        "/v1beta/openai/chat/completions"
    );
    let streamed = post(
        &url("/v1/responses"),
        json!({"model": "any", "input": "hi there", "stream": true}),
    )
    .await;
    let events = sse_events(streamed).await;
    let (last, completed) = events.last().unwrap();
    assert_eq!(last, "response.completed", "{events:?}");
    assert_eq!(
        completed["response"]["output"][0]["content"][0]["text"],
        answer["output"][0]["content"][0]["text"]
    );

    let labels = ["gen_ai_system=\"gcp.gemini\""];
    let tokens = proxy
        .metric("agentgateway_gen_ai_client_token_usage_count", &labels)
        .await;
    assert!(
        tokens >= 2.0,
        "token usage counted under gcp.gemini: {tokens}"
    );
}

/// The `azure` provider: the v1 API's paths or a dated deployment path with `api-version`, the
/// key in `api-key` (not `Authorization`), `azure` in the metrics.
#[tokio::test(flavor = "multi_thread")]
async fn azure_openai_is_called_on_its_paths_with_its_key_header() {
    const AZURE_KEY: &str = "azure-test-key";
    let azure = FakeLlm::start(Kind::Azure, Some(AZURE_KEY)).await;
    let port = free_port();
    let provider = |name: &str, version: &str| {
        format!(
            "            - name: {name}\n              provider: {{azure: {{resourceName: acme, resourceType: openAI, apiVersion: \"{version}\"}}}}\n              hostOverride: \"{}\"\n              backendAuth: {{key: {AZURE_KEY}}}\n",
            azure.authority()
        )
    };
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - matches: [{{path: {{pathPrefix: /v1}}}}]\n      backends:\n      - ai:\n          groups:\n          - providers:\n{}    - matches: [{{path: {{pathPrefix: /dated}}}}]\n      backends:\n      - ai:\n          groups:\n          - providers:\n{}",
        provider("v1", "v1"),
        provider("dated", "2024-10-21")
    );
    let proxy = Proxy::start(&config).await;
    let ask = |path: &str| {
        let url = proxy.url(port, path);
        async move {
            let body =
                json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello!"}]});
            post(&url, body).await
        }
    };
    assert_eq!(ask("/v1/chat/completions").await.status(), 200);
    assert_eq!(ask("/dated/v1/chat/completions").await.status(), 200);
    let seen = azure.seen();
    assert_eq!(seen[0].path, "/openai/v1/chat/completions");
    assert_eq!(seen[0].headers["api-key"], AZURE_KEY);
    assert!(
        seen[0].headers.get("authorization").is_none(),
        "the client's bearer is replaced"
    );
    assert_eq!(
        seen[1].path,
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    );
    let labels = ["gen_ai_system=\"azure\""];
    let tokens = proxy
        .metric("agentgateway_gen_ai_client_token_usage_count", &labels)
        .await;
    assert!(tokens >= 2.0, "token usage counted under azure: {tokens}");
}

/// A failover group of providers that do not all speak every API: each request goes to one
/// that speaks its API, whatever the order.
#[tokio::test(flavor = "multi_thread")]
async fn a_mixed_group_sends_each_api_to_a_provider_that_speaks_it() {
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let anthropic = FakeLlm::start(Kind::Anthropic, None).await;
    let port = free_port();
    let provider = |name: &str, kind: &str, host: String| {
        format!(
            "            - {{name: {name}, provider: {{{kind}: {{}}}}, hostOverride: \"{host}\"}}\n"
        )
    };
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - policies:\n        ai: {{routes: {{/v1/embeddings: embeddings, /v1/messages/count_tokens: anthropicTokenCount, /v1/responses: responses}}}}\n      backends:\n      - ai:\n          groups:\n          - providers:\n{}{}",
        provider("claude", "anthropic", anthropic.authority()),
        provider("gpt", "openAI", openai.authority()),
    );
    let proxy = Proxy::start(&config).await;
    let resp = post(
        &proxy.url(port, "/v1/embeddings"),
        json!({"model": "text-embedding-3-small", "input": "one"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(openai.seen().len(), 1);
    let resp = post(
        &proxy.url(port, "/v1/messages/count_tokens"),
        json!({"model": "claude", "messages": [{"role": "user", "content": "two words"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(anthropic.seen().len(), 1);
    assert_eq!(openai.seen().len(), 1, "not tried with an API it lacks");
}

/// agentgateway's four tracing examples for the `gemini` provider (otel, openllmetry, phoenix,
/// langfuse), unchanged but for where they send: the listener's port, the provider's host (the
/// Gemini fake) and the collector (an OTLP receiver speaking the example's protocol). Each
/// answers with the key from `$GEMINI_API_KEY`, and its CEL span fields reach the collector.
#[tokio::test(flavor = "multi_thread")]
async fn agentgateways_gemini_tracing_examples_serve_against_the_fake() {
    use tollgate_tests::otlp::{OtlpSink, attr};
    const KEY: &str = "gemini-example-key";
    let gemini = FakeLlm::start(Kind::Gemini, Some(KEY)).await;
    // (example, a span attribute its fields add, its value)
    let examples = [
        ("otel", "gen_ai.provider.name", "gcp.gemini"),
        ("openllmetry", "gen_ai.system", "gcp.gemini"),
        ("phoenix", "llm.system", "gcp.gemini"),
        ("langfuse", "gen_ai.usage.prompt_tokens", "2"),
    ];
    for (name, key, want) in examples {
        let path = tollgate_tests::workspace_root().join(format!(
            "tests/fixtures/agentgateway/telemetry/tracing/{name}.yaml"
        ));
        let mut doc: yaml_serde::Value =
            yaml_serde::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let tracing = &mut doc["config"]["tracing"];
        let sink = if tracing["otlpProtocol"].as_str() == Some("http") {
            OtlpSink::start_http("127.0.0.1:0").await
        } else {
            OtlpSink::start("127.0.0.1:0").await
        };
        tracing["otlpEndpoint"] = format!("http://{}", sink.addr).into();
        let port = free_port();
        let bind = &mut doc["binds"][0];
        bind["port"] = u64::from(port).into();
        bind["listeners"][0]["routes"][0]["backends"][0]["ai"]["hostOverride"] =
            gemini.authority().into();
        let config = yaml_serde::to_string(&doc).unwrap();
        let proxy = Proxy::spawn(tollgate_tests::proxy::ProxyOptions {
            config: &config,
            env: vec![("GEMINI_API_KEY", KEY)],
            ..Default::default()
        });
        proxy.wait_ready().await;
        let resp = post(
            &proxy.url(port, "/v1/chat/completions"),
            json!({"model": "any", "messages": [{"role": "user", "content": "Hello examples"}]}),
        )
        .await;
        assert_eq!(resp.status(), 200, "{name}");
        let seen = gemini.seen().pop().unwrap();
        assert_eq!(seen.body["model"], "gemini-1.5-flash", "{name}");
        assert_eq!(seen.headers["authorization"], format!("Bearer {KEY}"));
        let span = sink
            .wait_for(&format!("of {name} with {key}"), |s| {
                attr(s, key).as_deref() == Some(want)
            })
            .await;
        if name != "otel" {
            assert_eq!(
                span.name, "openai.chat",
                "{name}: `span.name` is a field too"
            );
        }
    }
}

#[tokio::test]
async fn upstream_connections_are_reused_across_requests_and_clients() {
    let (proxy, port, openai, _anthropic) = setup(1_000_000).await;
    let url = proxy.url(port, "/openai/v1/chat/completions");
    let chat = |stream: bool| json!({"model": "gpt-4.1", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    // Every request on a fresh client connection; plain answers and streams alike.
    for i in 0..20 {
        let resp = post(&url, chat(i % 2 == 1)).await;
        assert_eq!(resp.status(), 200);
        tollgate_tests::body_text(resp).await;
    }
    assert_eq!(openai.seen().len(), 20);
    // One pool per connection worker (`--workers`, one per core by default).
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        openai.connections() <= workers,
        "the gateway reconnected upstream: {} connections, {workers} workers",
        openai.connections()
    );
}
