//! What SigV4 signing adds to a Bedrock request: the gateway's per-attempt signing
//! (`llm::bedrock::sign_request`, explicit keys and a session token) against building the
//! same request unsigned, for a small and a large Converse body, in the same run; prints
//! nanoseconds per request and the ratio.
//!
//! `cargo build --release -p tollgate-tests --bin tollgate-bench-sigv4 && target/release/tollgate-bench-sigv4 [ITERATIONS]`

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use tollgate_data_plane::llm::bedrock::sign_request;
use tollgate_shared::config::model::{AiProvider, AwsAuth, AwsKeys, Bedrock, Provider, Secret};

fn provider() -> AiProvider {
    AiProvider {
        bedrock: Some(Bedrock {
            region: "us-east-1".into(),
            guardrail_identifier: None,
            guardrail_version: None,
        }),
        ..AiProvider::named("bedrock", Provider::Bedrock)
    }
}

fn request(body: &Bytes) -> http::Request<Bytes> {
    http::Request::post(
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
    )
    .header("content-type", "application/json")
    .header("user-agent", "bench")
    .body(body.clone())
    .expect("a valid request")
}

/// Nanoseconds per call of `f` over `n` calls.
#[expect(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let secret = |s: &str| Secret::new(s.to_string(), None);
    let auth = AwsAuth {
        keys: Some(AwsKeys {
            access_key_id: secret("AKIDBENCH"),
            secret_access_key: secret("bench-secret-access-key"),
            session_token: Some(secret("bench-session-token")),
        }),
        region: None,
    };
    let provider = provider();
    println!("SigV4 signing per Bedrock request, {n} iterations each");
    for size in [1_024usize, 64 * 1024] {
        let text = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"text":"{}"}}]}}]}}"#,
            "x".repeat(size)
        );
        let body = Bytes::from(text);
        // Warm up both paths.
        for _ in 0..1_000 {
            let mut req = request(&body);
            sign_request(&mut req, &body, &auth, &provider).expect("signs");
        }
        let unsigned = per_call(n, || {
            black_box(request(black_box(&body)));
        });
        let signed = per_call(n, || {
            let mut req = request(black_box(&body));
            sign_request(&mut req, &body, &auth, &provider).expect("signs");
            black_box(req);
        });
        println!(
            "body {:>6} B: unsigned {:>9.0} ns, signed {:>9.0} ns, signing adds {:>8.0} ns ({:.1}x the unsigned build)",
            body.len(),
            unsigned,
            signed,
            signed - unsigned,
            signed / unsigned
        );
    }
}
