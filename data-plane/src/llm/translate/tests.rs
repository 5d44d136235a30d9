//! Golden tests: `golden/*.json` hold an input, the expected translation and, for streams,
//! the usage the translator must report.

use std::collections::VecDeque;

use serde_json::Value;

use super::*;
use crate::llm::stream::{self, Translate};

fn golden(name: &str) -> Value {
    let path = format!("{}/src/llm/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Runs `translate` on a golden file's `input` (and `model`) and compares with `expected`.
fn check(name: &str, translate: impl Fn(&Value, &str) -> Value) {
    let g = golden(name);
    let out = translate(&g["input"], g["model"].as_str().unwrap_or_default());
    assert_eq!(
        out,
        g["expected"],
        "{name}: {}",
        serde_json::to_string_pretty(&out).unwrap()
    );
}

#[test]
fn requests_and_responses_translate_like_the_goldens() {
    check("completions-request-to-anthropic", |v, m| {
        completions_to_messages(v, m).unwrap()
    });
    check("messages-request-to-openai", |v, m| {
        messages_to_completions(v, m).unwrap()
    });
    check("anthropic-response-to-completion", |v, _| {
        messages_response_to_completion(v, 1_700_000_000).unwrap()
    });
    check("completion-response-to-anthropic", |v, _| {
        completion_to_messages_response(v).unwrap()
    });
}

fn run(tr: &mut dyn Translate, events: &Value) -> Vec<String> {
    let mut out = VecDeque::new();
    for e in events.as_array().unwrap() {
        let data = match &e[1] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        let ev = sse_parse::Event {
            event: e[0].as_str().unwrap_or("message").to_string(),
            data,
            ..Default::default()
        };
        tr.event(&ev, &mut out);
    }
    assert!(tr.core().done, "the stream reached its terminal event");
    out.into_iter()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .collect()
}

#[test]
fn anthropic_stream_to_openai_chunks() {
    let g = golden("anthropic-stream-to-openai");
    let mut tr = stream::AnthropicToOpenAi::new(1_700_000_000);
    let frames = run(&mut tr, &g["events"]);
    let expected: Vec<String> = g["expected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| match v {
            Value::String(s) => format!("data: {s}\n\n"),
            v => format!("data: {v}\n\n"),
        })
        .collect();
    let parse =
        |f: &String| serde_json::from_str::<Value>(f.trim_start_matches("data: ").trim()).ok();
    assert_eq!(
        frames.iter().map(parse).collect::<Vec<_>>(),
        expected.iter().map(parse).collect::<Vec<_>>(),
        "{frames:#?}"
    );
    assert_eq!(frames.last(), expected.last());
    assert_eq!(
        (tr.core().usage.input, tr.core().usage.output),
        (Some(25), Some(15))
    );
}

#[test]
fn openai_stream_to_anthropic_events() {
    let g = golden("openai-stream-to-anthropic");
    let mut tr = stream::OpenAiToAnthropic::default();
    let frames = run(&mut tr, &g["events"]);
    let got: Vec<(String, Value)> = frames
        .iter()
        .map(|f| {
            let (event, data) = f.trim().split_once('\n').unwrap();
            (
                event.trim_start_matches("event: ").to_string(),
                serde_json::from_str(data.trim_start_matches("data: ")).unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, Value)> = g["expected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_str().unwrap().to_string(), e[1].clone()))
        .collect();
    assert_eq!(got, expected, "{got:#?}");
    assert_eq!(
        (tr.core().usage.input, tr.core().usage.output),
        (Some(9), Some(6))
    );
}

#[test]
fn invalid_requests_name_the_problem() {
    let err = completions_to_messages(&serde_json::json!({"model": "x"}), "m").unwrap_err();
    assert!(err.0.contains("messages"), "{err}");
    let err = completions_to_messages(&serde_json::json!({"messages": [{"content": "hi"}]}), "m")
        .unwrap_err();
    assert!(err.0.contains("messages[0]: missing field `role`"), "{err}");
}

#[test]
fn upstream_errors_keep_their_message() {
    let (m, k) = error_parts(br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#);
    assert_eq!(
        (m.as_str(), k.as_str()),
        ("invalid x-api-key", "authentication_error")
    );
    let (m, _) = error_parts(b"upstream exploded");
    assert_eq!(m, "upstream exploded");
    let (m, _) = error_parts(
        br#"[{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}]"#,
    );
    assert_eq!(m, "Quota exceeded");
}

// Regressions kept from fuzzing (`fuzz/regressions/`): each input once crashed a fuzz target.

#[test]
fn stream_options_that_are_not_an_object_are_a_bad_request() {
    use crate::llm::{provider::Format, request::ClientRequest};
    let body = br#"{"messages": [], "stream": true, "stream_options": 1}"#;
    let req = ClientRequest::parse(body).unwrap();
    let err = req
        .upstream_body(Format::OpenAi, Format::OpenAi, "m")
        .unwrap_err();
    assert_eq!(
        err.0,
        "`stream_options` must be an object of at most 256 fields"
    );
    let body = br#"{"messages": [], "stream": true, "stream_options": null}"#;
    let req = ClientRequest::parse(body).unwrap();
    let out = req
        .upstream_body(Format::OpenAi, Format::OpenAi, "m")
        .unwrap();
    let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["stream_options"]["include_usage"], true);
}

#[test]
fn huge_upstream_token_counts_saturate() {
    let max = u64::MAX;
    let resp =
        serde_json::json!({"content": [], "usage": {"input_tokens": max, "output_tokens": 1}});
    let out = messages_response_to_completion(&resp, 0).unwrap();
    assert_eq!(out["usage"]["total_tokens"], max);
    let mut usage = crate::llm::usage::Usage::default();
    crate::llm::usage::probe(&resp.to_string(), &mut usage);
    assert_eq!(usage.total(), max);

    let mut tr = stream::AnthropicToOpenAi::new(0);
    let frames = run(
        &mut tr,
        &serde_json::json!([
            ["message_start", {"type": "message_start", "message": {"usage": {"input_tokens": max}}}],
            ["message_delta", {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 1}}],
            ["message_stop", {"type": "message_stop"}],
        ]),
    );
    assert!(
        frames[0].contains(&format!("\"total_tokens\":{max}")),
        "{frames:?}"
    );
}

#[test]
fn passthrough_keeps_every_line_of_an_event() {
    let ev = |event: &str| sse_parse::Event {
        event: event.to_string(),
        data: "{\"a\":\n1}".to_string(),
        ..Default::default()
    };
    let mut out = VecDeque::new();
    stream::OpenAiPassthrough::default().event(&ev("message"), &mut out);
    stream::AnthropicPassthrough::default().event(&ev("message_delta"), &mut out);
    assert_eq!(out[0], "data: {\"a\":\ndata: 1}\n\n");
    assert_eq!(out[1], "event: message_delta\ndata: {\"a\":\ndata: 1}\n\n");
}
