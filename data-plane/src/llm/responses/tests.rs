use std::collections::VecDeque;

use serde_json::{Value, json};

use super::stream::AnthropicToResponses;
use super::*;
use crate::llm::stream::{Chain, OpenAiToAnthropic, Translate};

fn template_of(req: &Value) -> Map<String, Value> {
    template(|k| req.get(k).cloned())
}

#[test]
fn a_conversation_with_tools_translates_to_messages() {
    let req = json!({
        "model": "gpt-x",
        "instructions": "Be brief.",
        "input": [
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": [
                {"type": "input_text", "text": "Weather and this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
            ]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "toolu_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call_output", "call_id": "toolu_1", "output": "sunny"},
        ],
        "tools": [
            {"type": "function", "name": "weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"type": "web_search", "external_web_access": false},
            {"type": "namespace", "name": "agents", "tools": [{"type": "function", "name": "spawn", "parameters": {"type": "object"}}]},
        ],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "max_output_tokens": 300,
        "temperature": 0.2,
        "stream": true,
        "store": false,
    });
    let out = to_messages(&req, "claude-x").unwrap();
    assert_eq!(
        out,
        json!({
            "model": "claude-x",
            "system": "Be brief.\nAnswer in French.",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather and this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                ]},
            ],
            "max_tokens": 300,
            "temperature": 0.2,
            "stream": true,
            "tools": [
                {"name": "weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                {"name": "spawn", "input_schema": {"type": "object"}},
            ],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        })
    );
    let plain = to_messages(&json!({"input": "hi"}), "m").unwrap();
    assert_eq!(
        plain,
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_tokens": DEFAULT_MAX_TOKENS})
    );
}

#[test]
fn state_and_hosted_services_are_refused_by_name() {
    for (req, named) in [
        (
            json!({"input": "hi", "previous_response_id": "resp_1"}),
            "`previous_response_id`",
        ),
        (
            json!({"input": "hi", "conversation": "conv_1"}),
            "`conversation`",
        ),
        (json!({"input": "hi", "background": true}), "`background"),
        (
            json!({"input": [{"type": "item_reference", "id": "msg_1"}]}),
            "input[0]: an `item_reference`",
        ),
        (
            json!({"input": "hi", "tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}}),
            "`tool_choice` {\"type\":\"web_search\"}",
        ),
        (
            json!({"input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}}),
            "`text.format` of type `json_schema`",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]}]}),
            "input[0]: an `input_file` translates only as an inline PDF",
        ),
        (
            json!({"model": "m"}),
            "`input` must be a string or an array",
        ),
    ] {
        let err = to_messages(&req, "m").unwrap_err();
        assert!(err.0.contains(named), "{req}: {err}");
    }
}

#[test]
fn an_anthropic_answer_becomes_a_response() {
    let req = json!({"input": "hi", "instructions": "Be brief.", "temperature": 0.5,
        "tools": [{"type": "namespace", "name": "geo", "tools": [{"type": "function", "name": "weather"}]}]});
    let message = json!({
        "id": "msg_01abc", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7},
    });
    let out = from_message(&message, &template_of(&req), 1_700_000_000).unwrap();
    assert_eq!(out["id"], "resp_01abc");
    assert_eq!(out["object"], "response");
    assert_eq!(out["status"], "completed");
    assert_eq!(out["model"], "claude-x");
    assert_eq!(out["instructions"], "Be brief.");
    assert_eq!(out["temperature"], 0.5);
    assert_eq!(out["store"], false);
    assert_eq!(
        out["output"],
        json!([
            {"type": "message", "id": "msg_01abc_0", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}]},
            {"type": "function_call", "id": "fc_9", "call_id": "toolu_9", "name": "weather",
             "namespace": "geo", "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
        ])
    );
    assert_eq!(
        out["usage"],
        json!({"input_tokens": 15, "input_tokens_details": {"cached_tokens": 5},
               "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 22})
    );
    let cut = from_message(
        &json!({"id": "msg_1", "content": [], "stop_reason": "max_tokens"}),
        &template_of(&req),
        0,
    )
    .unwrap();
    assert_eq!(cut["status"], "incomplete");
    assert_eq!(cut["incomplete_details"]["reason"], "max_output_tokens");
}

fn feed(tr: &mut dyn Translate, events: &[(&str, Value)]) -> Vec<(String, Value)> {
    let mut out = VecDeque::new();
    for (name, data) in events {
        let ev = sse_parse::Event {
            event: name.to_string(),
            data: match data {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            },
            ..Default::default()
        };
        tr.event(&ev, &mut out);
    }
    out.iter()
        .map(|frame| {
            let text = std::str::from_utf8(frame).unwrap();
            let (event, data) = text.trim().split_once('\n').unwrap();
            let data: Value = serde_json::from_str(data.trim_start_matches("data: ")).unwrap();
            let event = event.trim_start_matches("event: ").to_string();
            assert_eq!(data["type"], event.as_str(), "{text}");
            (event, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn an_anthropic_stream_becomes_response_events() {
    let mut tr = AnthropicToResponses::new(template_of(&json!({"input": "hi"})), 7);
    let events = feed(
        &mut tr,
        &[
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 12, "output_tokens": 1}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ("ping", json!({"type": "ping"})),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo \"x\""}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {}}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 1}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ],
    );
    assert_eq!(
        names(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let sequence: Vec<u64> = events
        .iter()
        .map(|(_, d)| d["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(sequence, (0..15).collect::<Vec<_>>());
    assert_eq!(events[0].1["response"]["id"], "resp_1");
    assert_eq!(events[0].1["response"]["status"], "in_progress");
    assert_eq!(events[4].1["item_id"], "msg_1_0");
    assert_eq!(events[6].1["text"], "Hello \"x\"");
    assert_eq!(events[12].1["arguments"], "{\"city\":\"Paris\"}");
    let done = &events[14].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][1]["call_id"], "toolu_2");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello \"x\"");
    assert_eq!(done["usage"]["input_tokens"], 12);
    assert_eq!(done["usage"]["output_tokens"], 9);
    assert!(tr.core().done);
    assert_eq!(
        (tr.core().usage.input, tr.core().usage.output),
        (Some(12), Some(9))
    );
}

#[test]
fn an_openai_chat_stream_becomes_response_events_through_messages() {
    let mut tr = Chain::new(
        Box::<OpenAiToAnthropic>::default(),
        Box::new(AnthropicToResponses::new(
            template_of(&json!({"input": "hi"})),
            7,
        )),
    );
    let chunk = |delta: Value, finish: Value| json!({"id": "chatcmpl-1", "model": "gemini-x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    let events = feed(
        &mut tr,
        &[
            (
                "message",
                chunk(json!({"role": "assistant", "content": "Bon"}), Value::Null),
            ),
            (
                "message",
                chunk(json!({"content": "jour\nà vous"}), Value::Null),
            ),
            ("message", chunk(json!({}), json!("stop"))),
            (
                "message",
                json!({"id": "chatcmpl-1", "model": "gemini-x", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}}),
            ),
            ("message", Value::String("[DONE]".into())),
        ],
    );
    let last = &events.last().unwrap().1;
    assert_eq!(last["type"], "response.completed");
    assert_eq!(
        last["response"]["output"][0]["content"][0]["text"],
        "Bonjour\nà vous"
    );
    assert_eq!(last["response"]["usage"]["total_tokens"], 6);
    assert!(tr.core().done);
}

#[test]
fn an_upstream_error_event_ends_the_stream_with_an_error_event() {
    let mut tr = AnthropicToResponses::new(Map::new(), 0);
    let events = feed(
        &mut tr,
        &[(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        )],
    );
    assert_eq!(names(&events), ["error"]);
    assert_eq!(events[0].1["message"], "Overloaded");
    assert!(tr.core().done);
}

#[test]
fn an_endless_answer_ends_with_an_error_instead_of_growing_without_bound() {
    let mut tr = AnthropicToResponses::new(Map::new(), 0);
    let chunk = "x".repeat(1 << 20);
    let mut events = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "usage": {}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for _ in 0..20 {
        events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": chunk}})));
    }
    let out = feed(&mut tr, &events);
    let (last, error) = out.last().unwrap();
    assert_eq!(last, "error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("longer than the gateway holds")
    );
    assert!(tr.core().done);
    let deltas = out
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .count();
    assert_eq!(
        deltas, 15,
        "15 MiB and the item fit in 16 MiB, then the stream ends"
    );
}
