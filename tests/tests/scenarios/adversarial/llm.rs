//! Attacks on LLM routes: bodies whose parse costs many times their bytes.

use tollgate_tests::llm::{FakeLlm, Kind};
use tollgate_tests::{Proxy, free_port};

use super::mcp::peak_rss_mib;

/// Finding 1 (LLM half): eight concurrent ~10 MiB completions requests, each a valid request
/// with a huge `[0,0,...]` field, are parsed a few at a time within the process's budget and
/// forwarded; peak RSS stays bounded (it grew by 1.3 GB).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_large_llm_bodies_are_parsed_within_a_budget() {
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let port = free_port();
    let config = format!(
        "config:\n  maxBodySize: 16MiB\nbinds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: llm\n      backends:\n      - ai:\n          name: openai\n          provider: {{openAI: {{model: gpt-4o}}}}\n          hostOverride: \"{}\"\n          routes: {{/v1/chat/completions: completions}}\n",
        openai.authority()
    );
    let proxy = Proxy::start(&config).await;
    let url = proxy.url(port, "/v1/chat/completions");
    let before = peak_rss_mib(&proxy);
    let mut body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"x":[0"#.to_vec();
    while body.len() < 10 * 1024 * 1024 - 16 {
        body.extend_from_slice(b",0");
    }
    body.extend_from_slice(b"]}");
    let body = bytes::Bytes::from(body);
    let post = || {
        let req = tollgate_tests::http()
            .post(&url)
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
    let answers = futures_util::future::join_all((0..8).map(|_| post())).await;
    let after = peak_rss_mib(&proxy);
    eprintln!("peak RSS of the proxy: {before} MiB before, {after} MiB after 8 x 10 MiB bodies");
    for (status, text) in answers {
        assert_eq!(status, 200, "{text}");
    }
    assert!(
        after < before + 800,
        "peak RSS grew from {before} to {after} MiB"
    );
}
