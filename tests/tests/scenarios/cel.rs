//! agentgateway's CEL functions and `llm` variables where its examples use them: access-log
//! fields (the Langfuse example's `flattenRecursive(llm.completion.map(...))`, `llm.params`),
//! streamed completions, and an `authorization` rule over `llm.params`.

use serde_json::{Value, json};
use tollgate_tests::{FakeLlm, Kind, Proxy, free_port};

fn config(port: u16, llm: &str, policies: &str) -> String {
    format!(
        "config:\n  logging:\n    format: json\n    fields:\n      add:\n        completion: 'flattenRecursive(llm.completion.map(c, {{\"role\": \"assistant\", \"content\": c}}))'\n        temperature: llm.params.temperature\n        prompt_b64: 'base64.encode(llm.prompt[0].content)'\n        params_json: 'toJson(llm.params)'\nbinds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: llm\n{policies}      backends:\n      - ai:\n          name: openai\n          provider: {{openAI: {{model: gpt-4o}}}}\n          hostOverride: \"{llm}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn access_log_fields_read_the_completion_and_params() {
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let port = free_port();
    let proxy = Proxy::start(&config(port, &openai.authority(), "")).await;
    let http = tollgate_tests::http();
    for stream in [false, true] {
        let resp = http
            .post(proxy.url(port, "/v1/chat/completions"))
            .json(&json!({"model": "m", "temperature": 0.5, "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    let lines = proxy.access_log_json(2).await;
    for line in &lines {
        assert_eq!(line["completion.0.role"], "assistant", "{line}");
        assert_eq!(line["completion.0.content"], "openai says: hi", "{line}");
        assert_eq!(line["temperature"], 0.5, "{line}");
        assert_eq!(line["prompt_b64"], "aGk=", "{line}");
        let params: Value = serde_json::from_str(line["params_json"].as_str().unwrap()).unwrap();
        assert_eq!(params, json!({"temperature": 0.5}));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_authorization_rule_reads_llm_params() {
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let port = free_port();
    let policies = "      policies:\n        authorization:\n          rules:\n          - deny: 'llm.params.temperature > 1.0'\n";
    let proxy = Proxy::start(&config(port, &openai.authority(), policies)).await;
    let http = tollgate_tests::http();
    let status = |temperature: f64| {
        let http = http.clone();
        let url = proxy.url(port, "/v1/chat/completions");
        async move {
            http.post(url)
                .json(&json!({"model": "m", "temperature": temperature,
                    "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status(0.2).await, 200);
    assert_eq!(status(1.5).await, 403);
}
