//! SSE streams, translated event by event (never buffered whole), with usage tracking.
//!
//! Each direction is a small state machine fed one upstream event at a time; it writes the
//! client's frames into a queue. Usage is reported when the stream ends, fails, or is dropped
//! because the client went away.

use std::collections::VecDeque;

use bytes::Bytes;
use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Value, json};
use sse_parse::Event;

use super::provider::Format;
use super::translate::{anthropic_error, finish_reason, openai_error, stop_reason};
use super::usage::{Usage, probe, probe_value, streamed_text_value};

/// One direction of stream handling.
pub trait Translate: Send {
    fn event(&mut self, ev: &Event, out: &mut VecDeque<Bytes>);
    fn core(&self) -> &Core;
    /// Whether the translator counts the generated text it reads in [`Core::text`] (else
    /// the stream measures each event itself, a parse of its own).
    fn counts_text(&self) -> bool {
        false
    }
    /// The frame telling the client the stream broke, in its format (none when unknown).
    fn error_frame(&self, message: &str) -> Option<Bytes>;
}

/// What every direction tracks: usage so far, and whether the terminal event came.
#[derive(Default)]
pub struct Core {
    pub usage: Usage,
    pub done: bool,
    /// Bytes of generated text read so far, by translators that count it.
    pub text: usize,
}

/// The final frame of a stream that broke or ended early, in the client's format.
pub fn error_frame(client: Format, message: &str) -> Bytes {
    match client {
        Format::OpenAi => data_frame(&openai_error(message, "api_error")),
        Format::Anthropic => named_frame("error", &anthropic_error(message, "api_error")),
        Format::Responses => responses_error_frame(message, 0),
    }
}

/// A Responses API `error` event.
pub fn responses_error_frame(message: &str, sequence: u64) -> Bytes {
    let error = json!({"type": "error", "code": "api_error", "message": message, "param": null, "sequence_number": sequence});
    named_frame("error", &error)
}

fn data_frame(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

pub fn named_frame(name: &str, v: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {v}\n\n"))
}

const DONE: &str = "data: [DONE]\n\n";

/// An upstream event written again, one `data:` line per line of its data, so that an event
/// of several lines reaches the client whole.
fn passthrough_frame(event: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 32);
    if let Some(name) = event {
        out.push_str("event: ");
        out.push_str(name);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// OpenAI upstream, OpenAI client: forwarded as is, usage observed.
#[derive(Default)]
pub struct OpenAiPassthrough {
    core: Core,
}

impl Translate for OpenAiPassthrough {
    fn event(&mut self, ev: &Event, out: &mut VecDeque<Bytes>) {
        if ev.data.trim() == "[DONE]" {
            self.core.done = true;
            out.push_back(Bytes::from_static(DONE.as_bytes()));
            return;
        }
        probe(&ev.data, &mut self.core.usage);
        out.push_back(passthrough_frame(None, &ev.data));
    }

    fn core(&self) -> &Core {
        &self.core
    }

    fn error_frame(&self, message: &str) -> Option<Bytes> {
        Some(error_frame(Format::OpenAi, message))
    }
}

/// Anthropic upstream, Anthropic client: forwarded as is, usage observed.
#[derive(Default)]
pub struct AnthropicPassthrough {
    core: Core,
}

impl Translate for AnthropicPassthrough {
    fn event(&mut self, ev: &Event, out: &mut VecDeque<Bytes>) {
        match ev.event.as_str() {
            "message_start" | "message_delta" => probe(&ev.data, &mut self.core.usage),
            "message_stop" => self.core.done = true,
            _ => {}
        }
        out.push_back(passthrough_frame(Some(&ev.event), &ev.data));
    }

    fn core(&self) -> &Core {
        &self.core
    }

    fn error_frame(&self, message: &str) -> Option<Bytes> {
        Some(error_frame(Format::Anthropic, message))
    }
}

/// An API the gateway forwards unchanged and only reads usage from (`responses`, `detect`):
/// the last event is OpenAI's `[DONE]`, Anthropic's `message_stop` or a Responses
/// `response.completed` (or `.failed`, `.incomplete`).
pub struct Observed {
    core: Core,
    /// Responses clients get an `error` event when the stream breaks; `detect` ones nothing,
    /// their format being unknown.
    responses: bool,
    sequence: u64,
}

impl Observed {
    pub fn new(responses: bool) -> Observed {
        Observed {
            core: Core::default(),
            responses,
            sequence: 0,
        }
    }
}

/// Just an event's `type`, for events that came without an SSE event name.
#[derive(Deserialize)]
struct TypeProbe<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

impl Translate for Observed {
    fn event(&mut self, ev: &Event, out: &mut VecDeque<Bytes>) {
        self.sequence += 1;
        let data = ev.data.trim();
        let named = (ev.event != "message").then_some(ev.event.as_str());
        let kind = match named {
            Some(name) => Some(Cow::Borrowed(name)),
            None if data.starts_with('{') => serde_json::from_str::<TypeProbe<'_>>(data)
                .ok()
                .and_then(|t| t.kind),
            None => None,
        };
        probe(data, &mut self.core.usage);
        self.core.done = data == "[DONE]"
            || kind.as_deref().is_some_and(|k| {
                matches!(
                    k,
                    "message_stop"
                        | "response.completed"
                        | "response.failed"
                        | "response.incomplete"
                )
            });
        out.push_back(passthrough_frame(named, &ev.data));
    }

    fn core(&self) -> &Core {
        &self.core
    }

    fn error_frame(&self, message: &str) -> Option<Bytes> {
        self.responses
            .then(|| responses_error_frame(message, self.sequence))
    }
}

/// Two directions in a row (OpenAI chat -> Messages -> Responses): the first one's frames
/// are read back as the second one's events.
pub struct Chain {
    first: Box<dyn Translate>,
    second: Box<dyn Translate>,
    between: VecDeque<Bytes>,
}

impl Chain {
    pub fn new(first: Box<dyn Translate>, second: Box<dyn Translate>) -> Self {
        Chain {
            first,
            second,
            between: VecDeque::new(),
        }
    }
}

/// The events of frames this module wrote: `event:` and `data:` lines, a blank line after each.
fn frame_events(frame: &[u8]) -> impl Iterator<Item = Event> + '_ {
    let text = std::str::from_utf8(frame).unwrap_or_default();
    text.split("\n\n").filter(|e| !e.is_empty()).map(|e| {
        let mut ev = Event {
            event: "message".into(),
            ..Event::default()
        };
        let mut data = Vec::new();
        for line in e.lines() {
            if let Some(name) = line.strip_prefix("event: ") {
                ev.event = name.into();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push(d);
            }
        }
        ev.data = data.join("\n");
        ev
    })
}

impl Translate for Chain {
    fn event(&mut self, ev: &Event, out: &mut VecDeque<Bytes>) {
        self.first.event(ev, &mut self.between);
        while let Some(frame) = self.between.pop_front() {
            for inner in frame_events(&frame) {
                self.second.event(&inner, out);
            }
        }
    }

    fn core(&self) -> &Core {
        self.second.core()
    }

    fn counts_text(&self) -> bool {
        self.second.counts_text()
    }

    fn error_frame(&self, message: &str) -> Option<Bytes> {
        self.second.error_frame(message)
    }
}

/// Anthropic upstream, OpenAI client: `chat.completion.chunk`s, then `[DONE]`.
pub struct AnthropicToOpenAi {
    core: Core,
    id: String,
    created: u64,
    role_sent: bool,
    /// Anthropic block index -> OpenAI tool call index.
    tools: Vec<(u64, usize)>,
    args_streamed: Vec<bool>,
    /// The JSON every text chunk starts with, built once per stream.
    prefix: Option<String>,
}

impl AnthropicToOpenAi {
    pub fn new(created: u64) -> Self {
        AnthropicToOpenAi {
            core: Core::default(),
            id: String::new(),
            created,
            role_sent: false,
            tools: Vec::new(),
            args_streamed: Vec::new(),
            prefix: None,
        }
    }

    fn chunk(&mut self, mut delta: Value, finish: Option<&str>, usage: Option<Value>) -> Value {
        if !self.role_sent {
            delta["role"] = json!("assistant");
            self.role_sent = true;
        }
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.core.usage.response_model.clone().unwrap_or_default(),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        if let Some(u) = usage {
            chunk["usage"] = u;
        }
        chunk
    }

    fn tool_index(&self, block: u64) -> Option<usize> {
        self.tools
            .iter()
            .find(|(b, _)| *b == block)
            .map(|(_, i)| *i)
    }
}

/// A `content_block_delta` event, parsed without building a JSON tree.
#[derive(Deserialize)]
struct BlockDelta<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow)]
    delta: DeltaBody<'a>,
}

/// The block index and text of a `content_block_delta` event's data when it is a text delta:
/// the hot path of every stream translated from Anthropic.
pub fn text_delta(data: &str) -> Option<(u64, Cow<'_, str>)> {
    let BlockDelta { index, delta } = serde_json::from_str(data).ok()?;
    (delta.kind == "text_delta").then_some((index, delta.text?))
}

#[derive(Deserialize)]
struct DeltaBody<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

impl AnthropicToOpenAi {
    /// The hot path: one text delta straight to one chunk, no JSON tree either way.
    fn text_chunk(&mut self, text: &str) -> Bytes {
        let role = if self.role_sent {
            ""
        } else {
            r#","role":"assistant""#
        };
        self.role_sent = true;
        let (id, created) = (&self.id, self.created);
        let model = self
            .core
            .usage
            .response_model
            .as_deref()
            .unwrap_or_default();
        let prefix = self.prefix.get_or_insert_with(|| {
            let (id, model) = (Value::from(id.as_str()), Value::from(model));
            format!(r#"data: {{"id":{id},"object":"chat.completion.chunk","created":{created},"model":{model},"choices":[{{"index":0,"delta":{{"content":"#)
        });
        let text = Value::from(text);
        Bytes::from(format!(
            "{prefix}{text}{role}}},\"finish_reason\":null}}]}}\n\n"
        ))
    }
}

impl Translate for AnthropicToOpenAi {
    fn event(&mut self, ev: &Event, out: &mut VecDeque<Bytes>) {
        match ev.event.as_str() {
            "ping" => return,
            "content_block_delta" => {
                if let Some((_, text)) = text_delta(&ev.data) {
                    self.core.text += text.len();
                    let chunk = self.text_chunk(&text);
                    out.push_back(chunk);
                    return;
                }
            }
            _ => {}
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            return;
        };
        probe_value(&v, &mut self.core.usage);
        self.core.text += streamed_text_value(&v);
        let block = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match v["type"].as_str().unwrap_or(&ev.event) {
            "message_start" => {
                self.id = v
                    .pointer("/message/id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
            }
            "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                let index = self.tools.len();
                self.tools.push((block, index));
                self.args_streamed.push(false);
                let cb = &v["content_block"];
                let delta = json!({"tool_calls": [{"index": index, "id": cb["id"], "type": "function", "function": {"name": cb["name"], "arguments": ""}}]});
                let c = self.chunk(delta, None, None);
                out.push_back(data_frame(&c));
            }
            "content_block_delta" => {
                let d = &v["delta"];
                let delta = match d["type"].as_str() {
                    Some("text_delta") => json!({"content": d["text"]}),
                    Some("input_json_delta") => {
                        let Some(index) = self.tool_index(block) else {
                            return;
                        };
                        self.args_streamed[index] = true;
                        json!({"tool_calls": [{"index": index, "function": {"arguments": d["partial_json"]}}]})
                    }
                    Some("thinking_delta") => json!({"reasoning_content": d["thinking"]}),
                    _ => return,
                };
                let c = self.chunk(delta, None, None);
                out.push_back(data_frame(&c));
            }
            "content_block_stop" => {
                if let Some(index) = self.tool_index(block).filter(|i| !self.args_streamed[*i]) {
                    let delta =
                        json!({"tool_calls": [{"index": index, "function": {"arguments": "{}"}}]});
                    let c = self.chunk(delta, None, None);
                    out.push_back(data_frame(&c));
                }
            }
            "message_delta" => {
                let reason =
                    finish_reason(v["delta"]["stop_reason"].as_str().unwrap_or("end_turn"));
                let (i, o) = (
                    self.core.usage.input.unwrap_or(0),
                    self.core.usage.output.unwrap_or(0),
                );
                let usage = json!({"prompt_tokens": i, "completion_tokens": o, "total_tokens": i.saturating_add(o)});
                let c = self.chunk(json!({}), Some(reason), Some(usage));
                out.push_back(data_frame(&c));
            }
            "message_stop" => {
                self.core.done = true;
                out.push_back(Bytes::from_static(DONE.as_bytes()));
            }
            "error" => {
                let message = v["error"]["message"].as_str().unwrap_or("upstream error");
                let kind = v["error"]["type"].as_str().unwrap_or("api_error");
                out.push_back(data_frame(&openai_error(message, kind)));
                self.core.done = true;
            }
            _ => {}
        }
    }

    fn core(&self) -> &Core {
        &self.core
    }

    fn counts_text(&self) -> bool {
        true
    }

    fn error_frame(&self, message: &str) -> Option<Bytes> {
        Some(error_frame(Format::OpenAi, message))
    }
}

/// OpenAI upstream, Anthropic client: Messages stream events.
#[derive(Default)]
pub struct OpenAiToAnthropic {
    core: Core,
    started: bool,
    /// Index and kind of the open content block.
    open: Option<(usize, Open)>,
    next_block: usize,
    /// OpenAI tool call index -> Anthropic block index.
    tool_blocks: Vec<(u64, usize)>,
    stop: Option<&'static str>,
}

#[derive(Clone, Copy, PartialEq)]
enum Open {
    Text,
    Tool(u64),
}

impl OpenAiToAnthropic {
    fn close(&mut self, out: &mut VecDeque<Bytes>) {
        if let Some((index, _)) = self.open.take() {
            out.push_back(named_frame(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    fn open_block(&mut self, kind: Open, block: Value, out: &mut VecDeque<Bytes>) -> usize {
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((index, kind));
        out.push_back(named_frame(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    fn finish(&mut self, out: &mut VecDeque<Bytes>) {
        self.close(out);
        let usage = json!({"input_tokens": self.core.usage.input.unwrap_or(0), "output_tokens": self.core.usage.output.unwrap_or(0)});
        out.push_back(named_frame(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": self.stop.unwrap_or("end_turn"), "stop_sequence": Value::Null}, "usage": usage}),
        ));
        out.push_back(named_frame(
            "message_stop",
            &json!({"type": "message_stop"}),
        ));
        self.core.done = true;
    }
}

impl Translate for OpenAiToAnthropic {
    fn event(&mut self, ev: &Event, out: &mut VecDeque<Bytes>) {
        if ev.data.trim() == "[DONE]" {
            self.finish(out);
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            return;
        };
        if let Some(e) = v.get("error") {
            let message = e["message"].as_str().unwrap_or("upstream error");
            out.push_back(named_frame("error", &anthropic_error(message, "api_error")));
            self.core.done = true;
            return;
        }
        probe_value(&v, &mut self.core.usage);
        self.core.text += streamed_text_value(&v);
        if !self.started {
            self.started = true;
            out.push_back(named_frame("message_start", &json!({"type": "message_start", "message": {
                "id": v["id"], "type": "message", "role": "assistant",
                "model": v["model"], "content": [], "stop_reason": Value::Null, "stop_sequence": Value::Null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }})));
        }
        let Some(choice) = v.pointer("/choices/0") else {
            return;
        };
        let delta = &choice["delta"];
        if let Some(text) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            let index = match self.open {
                Some((i, Open::Text)) => i,
                _ => self.open_block(Open::Text, json!({"type": "text", "text": ""}), out),
            };
            out.push_back(named_frame(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
            ));
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let tool = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let index = match self.tool_blocks.iter().find(|(t, _)| *t == tool) {
                Some((_, i)) if self.open == Some((*i, Open::Tool(tool))) => *i,
                _ => {
                    let block = json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": {}});
                    let i = self.open_block(Open::Tool(tool), block, out);
                    self.tool_blocks.push((tool, i));
                    i
                }
            };
            if let Some(args) = call["function"]
                .get("arguments")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            {
                out.push_back(named_frame(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": args}}),
                ));
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop = Some(stop_reason(reason));
            self.close(out);
        }
    }

    fn core(&self) -> &Core {
        &self.core
    }

    fn counts_text(&self) -> bool {
        true
    }

    fn error_frame(&self, message: &str) -> Option<Bytes> {
        Some(error_frame(Format::Anthropic, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> Event {
        Event {
            event: name.into(),
            data: data.into(),
            id: String::new(),
            retry: None,
        }
    }

    #[test]
    fn observed_streams_pass_unchanged_and_end_on_each_apis_last_event() {
        let mut responses = Observed::new(true);
        let mut out = VecDeque::new();
        responses.event(
            &event(
                "response.created",
                r#"{"type":"response.created","response":{"model":"m"}}"#,
            ),
            &mut out,
        );
        assert!(!responses.core().done);
        responses.event(
            &event(
                "response.completed",
                r#"{"type":"response.completed","response":{"model":"m","usage":{"input_tokens":2,"output_tokens":3}}}"#,
            ),
            &mut out,
        );
        assert!(responses.core().done);
        assert_eq!(responses.core().usage.total(), 5);
        assert!(out[0].starts_with(b"event: response.created\ndata: {"));
        let error = responses.error_frame("cut").unwrap();
        assert!(error.starts_with(b"event: error\ndata: {"), "{error:?}");

        // `detect`: unnamed events are told by their `type` or `[DONE]`; no error frame.
        for last in [r#"{"type":"message_stop"}"#, "[DONE]"] {
            let mut detect = Observed::new(false);
            detect.event(&event("message", r#"{"type":"ping"}"#), &mut out);
            assert!(!detect.core().done);
            detect.event(&event("message", last), &mut out);
            assert!(detect.core().done, "{last}");
            assert!(detect.error_frame("cut").is_none());
        }
        assert_eq!(out.back().unwrap().as_ref(), b"data: [DONE]\n\n");
    }

    /// Translators that count text themselves count what a parse of each event would.
    #[test]
    fn counted_text_matches_each_events_measure() {
        let anthropic = [
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":3}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello \u00e9"}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        let openai = [
            r#"{"id":"c","model":"g","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi there"}}]}"#,
            r#"{"id":"c","model":"g","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","function":{"name":"f","arguments":"{\"b\""}}]}}]}"#,
            r#"{"id":"c","model":"g","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ];
        let cases: [(Box<dyn Translate>, Vec<Event>); 3] = [
            (
                Box::new(AnthropicToOpenAi::new(0)),
                anthropic.iter().map(|(n, d)| event(n, d)).collect(),
            ),
            (
                Box::new(crate::llm::responses::stream::AnthropicToResponses::new(
                    Default::default(),
                    0,
                )),
                anthropic.iter().map(|(n, d)| event(n, d)).collect(),
            ),
            (
                Box::new(OpenAiToAnthropic::default()),
                openai.iter().map(|d| event("message", d)).collect(),
            ),
        ];
        for (mut translator, events) in cases {
            assert!(translator.counts_text());
            let mut out = VecDeque::new();
            let mut measured = 0;
            for ev in &events {
                measured += crate::llm::usage::streamed_text(&ev.data);
                translator.event(ev, &mut out);
            }
            assert!(measured > 0);
            assert_eq!(translator.core().text, measured);
        }
    }
}
