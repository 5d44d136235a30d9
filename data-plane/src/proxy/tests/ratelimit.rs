//! Local rate limits in the pipeline: exactness under concurrency, 429 details and CORS.

use std::sync::Arc;

use super::harness::{Harness, PORT, Upstream, request};

fn limited(upstream: &str, max: u64) -> String {
    format!(
        "binds:\n- port: {PORT}\n  listeners:\n  - routes:\n    - name: limited\n      policies:\n        cors: {{allowOrigins: [\"http://ui.test\"], allowHeaders: [\"*\"], allowMethods: [GET, POST]}}\n        localRateLimit:\n        - {{maxTokens: {max}, tokensPerFill: 1, fillInterval: 1h, type: requests}}\n      backends: [{{host: \"{upstream}\"}}]\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_of_n_admits_exactly_n_under_concurrency() {
    let mut up = Upstream::start("u").await;
    let gw = Arc::new(Harness::new(&limited(&up.authority, 50)));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..4 {
                statuses.push(gw.get("/x").await.status.as_u16());
            }
            statuses
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        for s in t.await.unwrap() {
            match s {
                200 => ok += 1,
                429 => limited += 1,
                other => panic!("unexpected status {other}"),
            }
        }
    }
    assert_eq!((ok, limited), (50, 206));
    assert_eq!(up.requests().len(), 50);
}

#[tokio::test]
async fn rejections_carry_cors_and_preflights_are_free() {
    let mut up = Upstream::start("u").await;
    let gw = Harness::new(&limited(&up.authority, 1));
    let origin = ("origin", "http://ui.test");
    for _ in 0..5 {
        let pre = gw
            .send(request(
                "OPTIONS",
                "/x",
                &[origin, ("access-control-request-method", "POST")],
                "",
            ))
            .await;
        assert_eq!(pre.status, 200);
        assert_eq!(pre.header("access-control-allow-origin"), "http://ui.test");
    }
    let ok = gw.send(request("GET", "/x", &[origin], "")).await;
    assert_eq!(ok.status, 200, "preflights took no tokens");
    assert_eq!(ok.header("x-ratelimit-remaining"), "0");
    let no = gw.send(request("GET", "/x", &[origin], "")).await;
    assert_eq!(no.status, 429);
    assert_eq!(no.header("access-control-allow-origin"), "http://ui.test");
    assert!(up.requests().iter().all(|r| r.method != "OPTIONS"));
}

#[tokio::test]
async fn requests_refused_by_jwt_auth_spend_no_bucket_tokens() {
    let mut up = Upstream::start("u").await;
    let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
    let config = limited(&up.authority, 1).replace(
        "        localRateLimit:\n",
        &format!("        jwtAuth: {{mode: strict, issuer: i, jwks: '{jwks}'}}\n        localRateLimit:\n"),
    );
    let gw = Harness::new(&config);
    for _ in 0..3 {
        let refused = gw.get("/x").await;
        assert_eq!(refused.status, 401, "jwtAuth runs before localRateLimit");
        assert_eq!(refused.header("www-authenticate"), "Bearer");
        let forged = gw
            .send(request(
                "GET",
                "/x",
                &[("authorization", "Bearer a.b.c")],
                "",
            ))
            .await;
        assert_eq!(forged.status, 401);
    }
    assert_eq!(
        gw.metric(
            "agentgateway_requests_total",
            &["reason=\"Unauthenticated\""]
        ),
        6.0
    );
    assert!(up.requests().is_empty());
    let bucket = gw.runtime().ports[&PORT].listeners[0].routes[0].limits[0].clone();
    assert!(bucket.try_take(1), "the bucket's one token is still there");
}
