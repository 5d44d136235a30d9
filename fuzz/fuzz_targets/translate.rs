//! OpenAI chat completions <-> Anthropic Messages: requests (as the gateway builds the
//! upstream body), responses and error bodies, for any JSON a client or upstream sends.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate_data_plane::llm::provider::Format;
use tollgate_data_plane::llm::translate;
use tollgate_data_plane::llm::usage::{Usage, probe};
use tollgate_data_plane::llm::request::ClientRequest;

const FORMATS: [Format; 2] = [Format::OpenAi, Format::Anthropic];

/// What the gateway sends on must be JSON it can read back.
fn reparses(v: &Value) {
    let text = v.to_string();
    serde_json::from_str::<Value>(&text).expect("translated output is valid JSON");
}

fuzz_target!(|data: &[u8]| {
    let (message, kind) = translate::error_parts(data);
    for client in FORMATS {
        let shaped = match client {
            Format::OpenAi | Format::Responses => translate::openai_error(&message, &kind),
            Format::Anthropic => translate::anthropic_error(&message, "api_error"),
        };
        reparses(&shaped);
    }
    let text = String::from_utf8_lossy(data);
    let mut usage = Usage::default();
    probe(&text, &mut usage);
    let _ = usage.total();

    // A client request, as the request path parses it, to each upstream format.
    if let Ok(req) = ClientRequest::parse(data) {
        for client in FORMATS {
            for upstream in FORMATS {
                if let Ok(body) = req.upstream_body(client, upstream, "fuzz-model") {
                    let body: Value =
                        serde_json::from_slice(&body).expect("the upstream body is valid JSON");
                    assert_eq!(body["model"], "fuzz-model", "the route's model is sent");
                }
            }
        }
    }
    // An upstream answer, translated for a client of the other format.
    let Ok(resp) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(v) = translate::messages_response_to_completion(&resp, 1_700_000_000) {
        reparses(&v);
    }
    if let Ok(v) = translate::completion_to_messages_response(&resp) {
        reparses(&v);
    }
});
