//! `tollgate-fake-llm`: the fake OpenAI and Anthropic APIs as a process, for the Python SDK
//! interop tests. Prints `{"openai": ADDR, "anthropic": ADDR}` on one line (with
//! `--google-public-key PEM_FILE`, also a Google token endpoint accepting that service
//! account's assertions, `google_token_uri`, and a Vertex fake taking its tokens, `vertex`; with
//! `--aws-key-id`/`--aws-secret`, `"bedrock"`: a fake Bedrock in `us-east-1` checking
//! signatures made with those keys), then serves until its standard input closes.

use serde_json::json;
use tollgate_tests::bedrock::{AwsKeys, FakeBedrock};
use tollgate_tests::cloud::{Client, FakeTokenEndpoint};
use tollgate_tests::{FakeLlm, Kind};

/// The service account the interop tests write a credential file for.
const CLIENT_EMAIL: &str = "interop@tollgate-interop.iam.gserviceaccount.com";

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut openai_key, mut anthropic_key, mut google_key) = (None, None, None);
    let (mut aws_key_id, mut aws_secret) = (None, None);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--openai-key" => openai_key = args.next(),
            "--anthropic-key" => anthropic_key = args.next(),
            "--google-public-key" => google_key = args.next(),
            "--aws-key-id" => aws_key_id = args.next(),
            "--aws-secret" => aws_secret = args.next(),
            other => {
                eprintln!(
                    "unknown flag {other}; flags: --openai-key K --anthropic-key K --google-public-key PEM_FILE --aws-key-id ID --aws-secret S"
                );
                std::process::exit(2);
            }
        }
    }
    let openai = FakeLlm::start(Kind::OpenAi, openai_key.as_deref()).await;
    let anthropic = FakeLlm::start(Kind::Anthropic, anthropic_key.as_deref()).await;
    let mut addrs = json!({"openai": openai.authority(), "anthropic": anthropic.authority()});
    let mut google = None;
    if let Some(pem) = google_key {
        let pem = std::fs::read(&pem).expect("the public key file");
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(&pem).expect("an RSA public key PEM");
        let endpoint = FakeTokenEndpoint::start(Client::Google {
            client_email: CLIENT_EMAIL.into(),
            key,
        })
        .await;
        let vertex = FakeLlm::start_with_tokens(Kind::Vertex, endpoint.book()).await;
        addrs["google_token_uri"] = json!(endpoint.google_token_uri());
        addrs["google_client_email"] = json!(CLIENT_EMAIL);
        addrs["vertex"] = json!(vertex.authority());
        google = Some((endpoint, vertex));
    }
    let bedrock = match (aws_key_id, aws_secret) {
        (Some(access_key_id), Some(secret_access_key)) => Some(
            FakeBedrock::start(AwsKeys {
                access_key_id,
                secret_access_key,
                session_token: None,
                region: "us-east-1".into(),
            })
            .await,
        ),
        _ => None,
    };
    if let Some(b) = &bedrock {
        addrs["bedrock"] = b.authority().into();
    }
    println!("{addrs}");
    // Serve until the parent closes our stdin (or kills us).
    let _ =
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
            .await;
    drop(google);
}
