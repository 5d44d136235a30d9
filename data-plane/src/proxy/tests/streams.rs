//! Upstream event streams: what an LLM provider streams is read with bounded memory.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http_body_util::BodyExt;

use super::harness::{self, Harness, request};
use crate::http::sse::MAX_SSE_EVENT;

/// A provider that streams one line that never ends: the gateway must cut its event at
/// `MAX_SSE_EVENT` and tell the client, not buffer it for ever.
#[tokio::test]
async fn an_endless_upstream_line_is_cut_and_reported() {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let endless = axum::Router::new().fallback(move || {
        let chunk = chunk.clone();
        async move {
            let data =
                stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"data: ")) })
                    .chain(stream::repeat_with(move || Ok(chunk.clone())));
            http::Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(data))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, endless).await });
    let gateway = Harness::new(&format!(
        "binds:\n- port: {}\n  listeners:\n  - routes:\n    - backends:\n      - ai: {{name: o, provider: {{openAI: {{model: m}}}}, hostOverride: \"{upstream}\"}}\n",
        harness::PORT
    ));
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let resp = gateway
        .respond(request(
            "POST",
            "/v1/chat/completions",
            &[("content-type", "application/json")],
            body,
        ))
        .await;
    assert_eq!(resp.status(), 200);
    let read = tokio::time::timeout(Duration::from_secs(60), resp.into_body().collect())
        .await
        .expect("the stream ends once the line passes the limit")
        .expect("a readable body")
        .to_bytes();
    let text = String::from_utf8_lossy(&read);
    assert!(
        text.contains(&format!("event exceeded {MAX_SSE_EVENT} bytes")),
        "{text}"
    );
}
