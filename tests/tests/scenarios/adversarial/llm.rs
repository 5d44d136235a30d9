//! Attacks on LLM routes: bodies whose parse costs many times their bytes.

use tollgate_tests::llm::{FakeLlm, Kind};
use tollgate_tests::{Proxy, free_port};

use super::mcp::peak_rss_mib;

/// Finding 1 (LLM half): eight concurrent ~10 MiB requests, each valid with a huge `[0,0,...]`
/// field, are forwarded with bounded peak RSS (it grew by 1.3 GB): a request already in the
/// upstream's format is read as raw fields, never a tree; one translated for another API is
/// parsed a few at a time within the process's budget.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_large_llm_bodies_are_parsed_within_a_budget() {
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let port = free_port();
    let config = format!(
        "config:\n  maxBodySize: 16MiB\nbinds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: llm\n      backends:\n      - ai:\n          name: openai\n          provider: {{openAI: {{model: gpt-4o}}}}\n          hostOverride: \"{}\"\n          routes: {{/v1/chat/completions: completions, /v1/messages: messages}}\n",
        openai.authority()
    );
    let proxy = Proxy::start(&config).await;
    let mut body =
        br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"x":[0"#
            .to_vec();
    while body.len() < 10 * 1024 * 1024 - 16 {
        body.extend_from_slice(b",0");
    }
    body.extend_from_slice(b"]}");
    let body = bytes::Bytes::from(body);
    let post = |path: &'static str| {
        let req = tollgate_tests::http()
            .post(proxy.url(port, path))
            .header("content-type", "application/json")
            .body(body.clone());
        async move {
            let resp = req.send().await.expect("an answer");
            (
                resp.status().as_u16(),
                resp.text().await.unwrap_or_default(),
            )
        }
    };
    let before = peak_rss_mib(&proxy);
    let same_format =
        futures_util::future::join_all((0..8).map(|_| post("/v1/chat/completions"))).await;
    let raw = peak_rss_mib(&proxy);
    let translated = futures_util::future::join_all((0..8).map(|_| post("/v1/messages"))).await;
    let tree = peak_rss_mib(&proxy);
    eprintln!(
        "peak RSS of the proxy: {before} MiB before, {raw} MiB after 8 x 10 MiB bodies in the \
         upstream's format, {tree} MiB after 8 more translated"
    );
    for (status, text) in same_format.into_iter().chain(translated) {
        assert_eq!(status, 200, "{text}");
    }
    assert!(
        raw < before + 300,
        "peak RSS grew from {before} to {raw} MiB"
    );
    assert!(
        tree < before + 800,
        "peak RSS grew from {before} to {tree} MiB"
    );
}
