//! `policies.ai` request edits through a real proxy, as the fake providers see them:
//! agentgateway's `prompts` (its `prompt-enrichment` example), `modelAliases`, `defaults` and
//! `overrides`, on a provider of the client's API and on one it is translated to.

use serde_json::{Value, json};
use tollgate_tests::{FakeLlm, Kind, Proxy, free_port};

#[tokio::test(flavor = "multi_thread")]
async fn prompts_aliases_defaults_and_overrides_reach_the_provider() {
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let anthropic = FakeLlm::start(Kind::Anthropic, None).await;
    let port = free_port();
    let policy = "      policies:\n        ai:\n          routes: {/v1/chat/completions: completions}\n          prompts:\n            prepend: [{role: system, content: You are terse.}]\n            append: [{role: system, content: \"Respond with emoji's only\"}]\n          modelAliases: {fast: gpt-4o-mini, \"claude-*\": claude-haiku-4-5}\n          defaults: {temperature: 0.2, max_tokens: 64}\n          overrides: {user: gateway, metadata: {team: [a, b]}}\n";
    let route = |prefix: &str, name: &str, kind: &str, host: String| {
        format!(
            "    - matches: [{{path: {{pathPrefix: {prefix}}}}}]\n{policy}      backends:\n      - ai: {{name: {name}, provider: {{{kind}: {{}}}}, hostOverride: \"{host}\"}}\n"
        )
    };
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n{}{}",
        route("/openai", "openai", "openAI", openai.authority()),
        route(
            "/anthropic",
            "anthropic",
            "anthropic",
            anthropic.authority()
        ),
    );
    let proxy = Proxy::start(&config).await;
    let ask = |prefix: &str, model: &str| {
        tollgate_tests::http()
            .post(proxy.url(port, &format!("{prefix}/v1/chat/completions")))
            .json(&json!({
                "model": model,
                "temperature": 0.9,
                "user": "client",
                "messages": [{"role": "user", "content": "Hello!"}]
            }))
            .send()
    };

    assert_eq!(ask("/openai", "fast").await.unwrap().status(), 200);
    let body: Value = openai.seen()[0].body.clone();
    assert_eq!(body["model"], "gpt-4o-mini", "an exact alias");
    assert_eq!(
        body["temperature"], 0.9,
        "a default never replaces the client's"
    );
    assert_eq!(
        body["max_tokens"], 64,
        "a default fills what the client left out"
    );
    assert_eq!(body["user"], "gateway", "an override replaces the client's");
    assert_eq!(body["metadata"], json!({"team": ["a", "b"]}));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello!"},
            {"role": "system", "content": "Respond with emoji's only"}
        ])
    );

    // Translated to Anthropic's API: system prompts join `system`, around the client's.
    assert_eq!(
        ask("/anthropic", "claude-sonnet-4").await.unwrap().status(),
        200
    );
    let body: Value = anthropic.seen()[0].body.clone();
    assert_eq!(body["model"], "claude-haiku-4-5", "a pattern alias");
    assert_eq!(body["max_tokens"], 64);
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["role"], "user");
    let system = serde_json::to_string(&body["system"]).unwrap();
    let (terse, emoji) = (
        system.find("You are terse.").unwrap(),
        system.find("emoji's only").unwrap(),
    );
    assert!(terse < emoji, "{system}");
}
