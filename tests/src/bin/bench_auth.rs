//! What client authentication costs: the same route without authentication and behind each
//! kind (a JWT checked with an ES256 or an Ed25519 key, an API key, basic credentials whose
//! bcrypt check is cached after the first request, a JWT plus an `authorization` rule), at
//! saturation and at 1,000 QPS on kept-alive connections; prints ratios and added latency
//! against the route without it. Self-contained: the fake upstream, keys from rcgen, the load
//! generated here.
//!
//! `cargo build --release --bins && target/release/tollgate-bench-auth [SECONDS]`

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tollgate_tests::bench::{median, paced_latency, requests_per_second, seconds_arg};
use tollgate_tests::{FakeUpstream, Proxy, free_port};

const CONCURRENCY: usize = 32;
const QPS: u64 = 1_000;
const ROUNDS: usize = 3;
const ISSUER: &str = "https://idp.bench";
const API_KEY: &str = "sk-bench-client-key";
const PASSWORD: &str = "bench-password";

/// A signing key, its public JWK (with `kid`) and a token valid for an hour.
fn signed(alg: Algorithm, kid: &str) -> anyhow::Result<(serde_json::Value, String)> {
    let pair = match alg {
        Algorithm::EdDSA => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?,
        _ => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
    };
    let pem = pair.serialize_pem();
    let signing = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes())?,
        _ => EncodingKey::from_ec_pem(pem.as_bytes())?,
    };
    let raw = pair.public_key_raw();
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let jwk = match alg {
        Algorithm::EdDSA => json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(raw)}),
        _ => json!({"kty": "EC", "crv": "P-256", "kid": kid,
            "x": b64(&raw[1..33]), "y": b64(&raw[33..])}),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    let claims = json!({"iss": ISSUER, "sub": "bench", "aud": "api",
        "exp": jsonwebtoken::get_current_timestamp() + 3600});
    Ok((jwk, jsonwebtoken::encode(&header, &claims, &signing)?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = seconds_arg(5);
    let run = Duration::from_secs(seconds);
    let (es_jwk, es_token) = signed(Algorithm::ES256, "es")?;
    let (ed_jwk, ed_token) = signed(Algorithm::EdDSA, "ed")?;
    let jwks = json!({"keys": [es_jwk, ed_jwk]}).to_string();
    let up = FakeUpstream::start("bench").await;
    let port = free_port();
    let route = |name: &str, policies: &str| {
        format!(
            "    - name: {name}\n      matches: [{{path: {{pathPrefix: /{name}}}}}]\n      backends: [{{host: '{}'}}]\n{policies}",
            up.authority()
        )
    };
    let jwt_policy =
        format!("jwtAuth: {{mode: strict, issuer: '{ISSUER}', audiences: [api], jwks: '{jwks}'}}");
    let dir = tempfile::tempdir()?;
    let htpasswd = dir.path().join("users.htpasswd");
    std::fs::write(
        &htpasswd,
        format!("bench:{}\n", bcrypt::hash(PASSWORD, bcrypt::DEFAULT_COST)?),
    )?;
    let policies = |lines: &[String]| {
        let mut text = String::from("      policies:\n");
        for line in lines {
            text.push_str(&format!("        {line}\n"));
        }
        text
    };
    let config = format!(
        "config:\n  logging:\n    level: warn\nbinds:\n- port: {port}\n  listeners:\n  - routes:\n{}{}{}{}{}",
        route("none", ""),
        route("jwt", &policies(std::slice::from_ref(&jwt_policy))),
        route(
            "apikey",
            &policies(&[format!(
                "apiKey: {{mode: strict, keys: [{{key: {API_KEY}, metadata: {{group: bench}}}}]}}"
            )])
        ),
        route(
            "basic",
            &policies(&[format!(
                "basicAuth: {{mode: strict, htpasswd: {{file: '{}'}}}}",
                htpasswd.display()
            )])
        ),
        route(
            "authz",
            &policies(&[
                jwt_policy,
                "authorization: {rules: ['jwt.sub == \"bench\" && cidr(\"127.0.0.0/8\").containsIP(source.address)']}".to_string(),
            ])
        ),
    );
    let _proxy = Proxy::start(&config).await;
    let client = tollgate_tests::http_builder()
        .pool_max_idle_per_host(usize::MAX)
        .build()?;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("bench:{PASSWORD}"))
    );
    // (name, path, Authorization header)
    let variants = [
        ("no authentication", "none", None),
        ("jwtAuth ES256", "jwt", Some(format!("Bearer {es_token}"))),
        ("jwtAuth EdDSA", "jwt", Some(format!("Bearer {ed_token}"))),
        ("apiKey", "apikey", Some(format!("Bearer {API_KEY}"))),
        ("basicAuth (bcrypt, cached)", "basic", Some(basic)),
        (
            "jwtAuth ES256 + authorization rule",
            "authz",
            Some(format!("Bearer {es_token}")),
        ),
    ];
    let request = |path: &str, authorization: &Option<String>| {
        let (client, authorization) = (client.clone(), authorization.clone());
        let url = format!("http://127.0.0.1:{port}/{path}/bench");
        move || {
            let req = client.get(&url);
            match &authorization {
                Some(value) => req.header("authorization", value),
                None => req,
            }
        }
    };
    for (name, path, token) in &variants {
        let status = request(path, token)().send().await?.status();
        anyhow::ensure!(status.is_success(), "{name}: {status}");
    }
    let mut saturation = vec![Vec::new(); variants.len()];
    let mut latency = vec![Vec::new(); variants.len()];
    for round in 1..=ROUNDS {
        eprintln!("round {round}/{ROUNDS}");
        for (i, (_, path, token)) in variants.iter().enumerate() {
            saturation[i].push(requests_per_second(CONCURRENCY, run, request(path, token)).await);
            latency[i].push(paced_latency(QPS, run, request(path, token)).await);
        }
    }
    let rps: Vec<f64> = saturation.into_iter().map(median).collect();
    let p50: Vec<f64> = latency
        .iter()
        .map(|l| median(l.iter().map(|s| s.0).collect()))
        .collect();
    let p99: Vec<f64> = latency
        .iter()
        .map(|l| median(l.iter().map(|s| s.1).collect()))
        .collect();
    println!("\nClient authentication cost, {ROUNDS} interleaved rounds of {seconds} s, medians");
    println!(
        "| variant | saturation req/s | ratio | p50 at {QPS} QPS | p99 | added p50 | added p99 |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (i, (name, _, _)) in variants.iter().enumerate() {
        println!(
            "| {name} | {:.0} | {:.2} | {:.3} ms | {:.3} ms | {:+.3} ms | {:+.3} ms |",
            rps[i],
            rps[i] / rps[0],
            p50[i],
            p99[i],
            p50[i] - p50[0],
            p99[i] - p99[0]
        );
    }
    Ok(())
}
