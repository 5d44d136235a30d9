//! The `bedrock` provider against a fake Bedrock runtime that verifies SigV4 itself: chat
//! completions and Messages clients (plain, streamed, tools), keys from the config, the
//! environment or a profile file, session tokens, AWS errors reshaped, failover, and secrets
//! kept out of `/api/config` and logs.

use serde_json::{Value, json};
use tollgate_tests::bedrock::{ANSWER, AwsKeys, FakeBedrock};
use tollgate_tests::proxy::ProxyOptions;
use tollgate_tests::{FakeLlm, Kind, Proxy, free_port};
use tollgate_tests::{body_text as text, post_json as post};

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const KEY_ID: &str = "AKIDTOLLGATETEST";
const SECRET: &str = "bedrock-secret-0123456789/abcdefXYZ";
const TOKEN: &str = "session-token-for-tests";

fn keys(session_token: Option<&str>) -> AwsKeys {
    AwsKeys {
        access_key_id: KEY_ID.into(),
        secret_access_key: SECRET.into(),
        session_token: session_token.map(str::to_string),
        region: "us-west-2".into(),
    }
}

/// One route with chat completions and Messages to a Bedrock provider authenticated by `auth`
/// (a `backendAuth` value).
fn config(port: u16, fake: &FakeBedrock, auth: &str) -> String {
    format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - ai:\n          name: bedrock\n          provider: {{bedrock: {{region: us-west-2, model: \"{MODEL}\", guardrailIdentifier: gr-test, guardrailVersion: \"3\"}}}}\n          hostOverride: \"{}\"\n      policies:\n        backendAuth: {auth}\n        ai:\n          routes: {{/v1/chat/completions: completions, /v1/messages: messages, /v1/responses: responses}}\n",
        fake.authority()
    )
}

fn chat(stream: bool) -> Value {
    json!({"model": "any", "stream": stream, "messages": [{"role": "user", "content": "Hello there Bedrock"}]})
}

/// Chat completions, plain, streamed and with tools, reach Converse signed (with the session
/// token), the guardrail in the body; the answers come back in OpenAI's format with usage,
/// and the metrics carry `aws.bedrock`.
#[tokio::test(flavor = "multi_thread")]
async fn chat_completions_reach_bedrock_signed() {
    let fake = FakeBedrock::start(keys(Some(TOKEN))).await;
    let port = free_port();
    let auth = format!(
        "{{aws: {{accessKeyId: {KEY_ID}, secretAccessKey: \"{SECRET}\", sessionToken: {TOKEN}}}}}"
    );
    let proxy = Proxy::start(&config(port, &fake, &auth)).await;
    let url = proxy.url(port, "/v1/chat/completions");

    let resp = post(&url, chat(false)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], ANSWER);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    assert_eq!(body["usage"]["completion_tokens"], 4);
    let seen = &fake.seen()[0];
    assert_eq!(seen.model, MODEL);
    assert!(!seen.stream);
    assert_eq!(seen.headers["x-amz-security-token"], TOKEN);
    assert!(seen.headers.get("x-api-key").is_none());
    assert_eq!(
        seen.body["guardrailConfig"],
        json!({"guardrailIdentifier": "gr-test", "guardrailVersion": "3", "trace": "enabled"})
    );
    assert_eq!(
        seen.body["messages"],
        json!([{"role": "user", "content": [{"text": "Hello there Bedrock"}]}])
    );

    let sse = text(post(&url, chat(true)).await).await;
    let content: String = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, ANSWER, "{sse}");
    assert!(sse.contains(r#""finish_reason":"stop""#), "{sse}");
    assert!(sse.trim_end().ends_with("data: [DONE]"), "{sse}");
    assert!(fake.seen()[1].stream);

    let tools = json!({
        "model": "any",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    });
    let body: Value = post(&url, tools.clone()).await.json().await.unwrap();
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        fake.seen()[2].body["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );
    let mut streamed = tools;
    streamed["stream"] = true.into();
    let sse = text(post(&url, streamed).await).await;
    assert!(sse.contains(r#""name":"get_weather""#), "{sse}");
    assert!(sse.contains(r#""finish_reason":"tool_calls""#), "{sse}");

    let tokens = proxy
        .metric(
            "agentgateway_gen_ai_client_token_usage_count",
            &["gen_ai_system=\"aws.bedrock\""],
        )
        .await;
    assert!(tokens >= 8.0, "token usage under aws.bedrock: {tokens}");
}

/// Messages clients get Anthropic's format, plain and streamed, from Bedrock.
#[tokio::test(flavor = "multi_thread")]
async fn messages_clients_reach_bedrock() {
    let fake = FakeBedrock::start(keys(None)).await;
    let port = free_port();
    let auth = format!("{{aws: {{accessKeyId: {KEY_ID}, secretAccessKey: \"{SECRET}\"}}}}");
    let proxy = Proxy::start(&config(port, &fake, &auth)).await;
    let url = proxy.url(port, "/v1/messages");
    let request = |stream: bool| {
        json!({"model": "any", "max_tokens": 64, "stream": stream, "system": "Be brief",
               "messages": [{"role": "user", "content": "Hello there"}]})
    };
    let body: Value = post(&url, request(false)).await.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"][0], json!({"type": "text", "text": ANSWER}));
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 4, "output_tokens": 4})
    );
    assert_eq!(body["model"], MODEL);
    let seen = &fake.seen()[0];
    assert_eq!(seen.body["system"], json!([{"text": "Be brief"}]));
    assert_eq!(seen.body["inferenceConfig"], json!({"maxTokens": 64}));
    assert!(seen.headers.get("x-amz-security-token").is_none());

    let sse = text(post(&url, request(true)).await).await;
    let names: Vec<&str> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{sse}"
    );
    assert!(
        sse.contains(r#""usage":{"input_tokens":4,"output_tokens":4}"#),
        "{sse}"
    );
}

/// A Responses client on Bedrock: translated to Messages, then Converse, signed; the answer
/// (plain or streamed, text or a function call) comes back as a Responses one.
#[tokio::test(flavor = "multi_thread")]
async fn responses_clients_reach_bedrock() {
    let fake = FakeBedrock::start(keys(None)).await;
    let port = free_port();
    let auth = format!("{{aws: {{accessKeyId: {KEY_ID}, secretAccessKey: \"{SECRET}\"}}}}");
    let proxy = Proxy::start(&config(port, &fake, &auth)).await;
    let url = proxy.url(port, "/v1/responses");
    let body: Value = post(
        &url,
        json!({"model": "any", "instructions": "Be brief", "input": "Hello there", "max_output_tokens": 64}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["object"], "response", "{body}");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["output"][0]["content"][0]["text"], ANSWER);
    assert_eq!(body["usage"]["input_tokens"], 4);
    assert_eq!(body["usage"]["output_tokens"], 4);
    let seen = &fake.seen()[0];
    assert!(!seen.stream, "Converse, not ConverseStream");
    assert_eq!(seen.body["system"], json!([{"text": "Be brief"}]));
    assert_eq!(seen.body["inferenceConfig"], json!({"maxTokens": 64}));

    let sse = text(
        post(
            &url,
            json!({"model": "any", "input": "Hello there", "stream": true}),
        )
        .await,
    )
    .await;
    let names: Vec<&str> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"response.created"), "{sse}");
    assert_eq!(names.last(), Some(&"response.completed"), "{sse}");
    assert!(sse.contains(r#""output_tokens":4"#), "{sse}");
    assert!(fake.seen()[1].stream, "ConverseStream");

    let tools = json!([{"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let body: Value = post(
        &url,
        json!({"model": "any", "input": "Weather?", "tools": tools}),
    )
    .await
    .json()
    .await
    .unwrap();
    let call = &body["output"][0];
    assert_eq!(call["type"], "function_call", "{body}");
    assert_eq!(call["call_id"], "tooluse_1");
    assert_eq!(call["arguments"], r#"{"city":"Paris"}"#);
}

/// A wrong secret: the fake's signature check fails and its 403 reaches the client reshaped
/// for its format. A missing session token is refused too.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_signature_is_a_reshaped_403() {
    let fake = FakeBedrock::start(keys(Some(TOKEN))).await;
    let port = free_port();
    let wrong = format!(
        "{{aws: {{accessKeyId: {KEY_ID}, secretAccessKey: wrong-secret, sessionToken: {TOKEN}}}}}"
    );
    let proxy = Proxy::start(&config(port, &fake, &wrong)).await;
    let resp = post(&proxy.url(port, "/v1/chat/completions"), chat(false)).await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("InvalidSignatureException: The request signature we calculated"),
        "{body}"
    );
    let resp = post(
        &proxy.url(port, "/v1/messages"),
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "permission_error");

    let no_token = format!("{{aws: {{accessKeyId: {KEY_ID}, secretAccessKey: \"{SECRET}\"}}}}");
    let port = free_port();
    let proxy = Proxy::start(&config(port, &fake, &no_token)).await;
    let resp = post(&proxy.url(port, "/v1/chat/completions"), chat(false)).await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("security token"),
        "{body}"
    );
}

/// `backendAuth: {aws: {}}` reads the proxy's environment, else its profile file; the keys
/// written with `$VAR` are resolved by the proxy and never shown in `/api/config` or logs.
#[tokio::test(flavor = "multi_thread")]
async fn keys_from_the_environment_a_profile_file_or_variables() {
    let fake = FakeBedrock::start(keys(Some(TOKEN))).await;
    let ok = |proxy: &Proxy, port| {
        let url = proxy.url(port, "/v1/chat/completions");
        async move {
            let resp = post(&url, chat(false)).await;
            let status = resp.status();
            (status, resp.text().await.unwrap())
        }
    };
    // The environment.
    let port = free_port();
    let config_text = config(port, &fake, "{aws: {}}");
    let env = vec![
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_SESSION_TOKEN", TOKEN),
    ];
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config_text,
        env,
        ..Default::default()
    });
    proxy.wait_ready().await;
    let (status, body) = ok(&proxy, port).await;
    assert_eq!(status, 200, "{body}");
    drop(proxy);

    // A profile file, the profile chosen by AWS_PROFILE.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        format!("[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n[ci]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\naws_session_token = {TOKEN}\n"),
    )
    .unwrap();
    let port = free_port();
    let config_text = config(port, &fake, "{aws: {}}");
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config_text,
        env: vec![
            ("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap()),
            ("AWS_PROFILE", "ci"),
        ],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let (status, body) = ok(&proxy, port).await;
    assert_eq!(status, 200, "{body}");
    drop(proxy);

    // No keys anywhere: the client is told how to provide them, nothing is sent.
    let before = fake.seen().len();
    let port = free_port();
    let config_text = config(port, &fake, "{aws: {}}");
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config_text,
        env: vec![
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
            ("HOME", "/nonexistent"),
        ],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let (status, body) = ok(&proxy, port).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("AWS_ACCESS_KEY_ID"), "{body}");
    assert_eq!(fake.seen().len(), before);
    drop(proxy);

    // Explicit keys from variables: resolved by the proxy, shown only as references.
    let port = free_port();
    let config_text = config(
        port,
        &fake,
        "{aws: {accessKeyId: $BEDROCK_KEY_ID, secretAccessKey: $BEDROCK_SECRET, sessionToken: \"${BEDROCK_TOKEN}\"}}",
    );
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config_text,
        env: vec![
            ("BEDROCK_KEY_ID", KEY_ID),
            ("BEDROCK_SECRET", SECRET),
            ("BEDROCK_TOKEN", TOKEN),
        ],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let (status, body) = ok(&proxy, port).await;
    assert_eq!(status, 200, "{body}");
    let dump = proxy.admin_json("/api/config").await.to_string();
    assert!(dump.contains("$BEDROCK_SECRET"), "{dump}");
    for secret in [SECRET, TOKEN] {
        assert!(!dump.contains(secret), "{secret} in /api/config");
        assert!(!proxy.log().contains(secret), "{secret} in the log");
        assert!(
            !proxy.access_log().contains(secret),
            "{secret} in the access log"
        );
    }
}

/// A throttled Bedrock fails over to the next group's OpenAI provider; an exception inside a
/// stream ends it with the client's error frame.
#[tokio::test(flavor = "multi_thread")]
async fn throttled_bedrock_fails_over_and_stream_exceptions_end_streams() {
    let fake = FakeBedrock::start(keys(None)).await;
    let openai = FakeLlm::start(Kind::OpenAi, Some("sk-openai")).await;
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - ai:\n          groups:\n          - providers:\n            - name: bedrock\n              provider: {{bedrock: {{region: us-west-2, model: \"{MODEL}\"}}}}\n              hostOverride: \"{}\"\n              backendAuth: {{aws: {{accessKeyId: {KEY_ID}, secretAccessKey: \"{SECRET}\"}}}}\n          - providers:\n            - name: openai\n              provider: {{openAI: {{model: gpt-4o-mini}}}}\n              hostOverride: \"{}\"\n              backendAuth: {{key: sk-openai}}\n      policies:\n        retry: {{attempts: 2, codes: [429, 503]}}\n        ai:\n          routes: {{/v1/chat/completions: completions, /v1/messages: messages, /v1/responses: responses}}\n",
        fake.authority(),
        openai.authority()
    );
    let proxy = Proxy::start(&config).await;
    let url = proxy.url(port, "/v1/chat/completions");

    let body: Value = post(&url, chat(false)).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], ANSWER, "{body}");

    fake.knobs()
        .stream_exception
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let sse = text(post(&url, chat(true)).await).await;
    let last = sse
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.contains("throttlingException") && last.contains(r#""error""#),
        "{sse}"
    );
    let sse = text(
        post(
            &proxy.url(port, "/v1/messages"),
            json!({"model": "m", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await,
    )
    .await;
    assert!(
        sse.contains("event: error") && sse.contains("throttlingException"),
        "{sse}"
    );

    fake.knobs()
        .fail_status
        .store(429, std::sync::atomic::Ordering::Relaxed);
    let resp = post(&url, chat(false)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("openai says"),
        "answered by OpenAI: {body}"
    );
    assert_eq!(openai.seen().len(), 1);
    let last = fake.seen().len();
    assert!(last >= 4, "Bedrock was tried first");
}
