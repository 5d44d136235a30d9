//! `tollgate-fake-llm`: the fake OpenAI and Anthropic APIs as a process, for the Python SDK
//! interop tests. Prints `{"openai": ADDR, "anthropic": ADDR}` on one line, then serves until
//! its standard input closes.

use tollgate_tests::{FakeLlm, Kind};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut openai_key, mut anthropic_key) = (None, None);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--openai-key" => openai_key = args.next(),
            "--anthropic-key" => anthropic_key = args.next(),
            other => {
                eprintln!("unknown flag {other}; flags: --openai-key K --anthropic-key K");
                std::process::exit(2);
            }
        }
    }
    let openai = FakeLlm::start(Kind::OpenAi, openai_key.as_deref()).await;
    let anthropic = FakeLlm::start(Kind::Anthropic, anthropic_key.as_deref()).await;
    println!(
        "{}",
        serde_json::json!({"openai": openai.authority(), "anthropic": anthropic.authority()})
    );
    // Serve until the parent closes our stdin (or kills us).
    let _ =
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
            .await;
}
