//! An Anthropic Messages stream turned into Responses API events, one upstream event at a
//! time: each text block becomes a `message` item, each tool use a `function_call` item.

use std::collections::VecDeque;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use sse_parse::Event;

use super::{
    anthropic_counts, function_item, function_item_id, item_id, message_item, namespace_of,
    response, response_id,
};
use crate::llm::stream::{Core, Translate, named_frame, responses_error_frame, text_delta};
use crate::llm::usage::{probe_value, streamed_text_value};

/// An output item being streamed or done.
enum Item {
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: Value,
        name: Value,
        namespace: Option<Value>,
        arguments: String,
    },
}

impl Item {
    fn value(&self, status: &str) -> Value {
        match self {
            Item::Message { id, text } => message_item(id, text, status),
            Item::Call {
                call_id,
                name,
                namespace,
                arguments,
                ..
            } => {
                let arguments = if arguments.is_empty() {
                    "{}"
                } else {
                    arguments
                };
                function_item(call_id, name, namespace.as_ref(), arguments, status)
            }
        }
    }
}

/// The most an answer may hold of text, arguments and items: the final events repeat them
/// whole, so a translated stream keeps them, but an upstream that never stops must not grow
/// the gateway's memory without bound.
const MAX_HELD: usize = 16 << 20;

/// What one output item counts against [`MAX_HELD`] beside its text.
const ITEM_COST: usize = 256;

pub struct AnthropicToResponses {
    core: Core,
    template: Map<String, Value>,
    created: u64,
    id: String,
    model: Value,
    sequence: u64,
    items: Vec<Item>,
    /// Anthropic block index -> output index, for blocks that have an item.
    blocks: Vec<(u64, usize)>,
    stop_reason: Option<String>,
    /// Anthropic's input counts from `message_start`, kept for the final usage.
    counts: (u64, u64, u64),
    /// Bytes held for the final events, at most [`MAX_HELD`].
    held: usize,
}

impl AnthropicToResponses {
    pub fn new(template: Map<String, Value>, created: u64) -> Self {
        AnthropicToResponses {
            core: Core::default(),
            template,
            created,
            id: String::new(),
            model: Value::Null,
            sequence: 0,
            items: Vec::new(),
            blocks: Vec::new(),
            stop_reason: None,
            counts: (0, 0, 0),
            held: 0,
        }
    }

    /// Writes event `kind` with `fields` and the next sequence number.
    fn emit(&mut self, kind: &str, mut fields: Value, out: &mut VecDeque<Bytes>) {
        fields["type"] = Value::String(kind.into());
        fields["sequence_number"] = self.sequence.into();
        self.sequence += 1;
        out.push_back(named_frame(kind, &fields));
    }

    fn output_index(&self, block: u64) -> Option<usize> {
        self.blocks
            .iter()
            .find(|(b, _)| *b == block)
            .map(|(_, i)| *i)
    }

    fn snapshot(&self, status: (&str, Value), item_status: &str) -> Value {
        let output = self.items.iter().map(|i| i.value(item_status)).collect();
        let usage = (status.0 != "in_progress").then(|| {
            let (input, cached, output) = self.counts;
            super::usage(input, cached, output)
        });
        response(
            &self.template,
            &self.id,
            self.created,
            &self.model,
            status,
            output,
            usage,
        )
    }

    /// Counts `bytes` more held; past [`MAX_HELD`] the stream ends with an error event.
    fn hold(&mut self, bytes: usize, out: &mut VecDeque<Bytes>) -> bool {
        self.held = self.held.saturating_add(bytes);
        if self.held <= MAX_HELD || self.core.done {
            return !self.core.done;
        }
        let message = format!("the answer is longer than the gateway holds ({MAX_HELD} bytes)");
        out.push_back(responses_error_frame(&message, self.sequence));
        self.core.done = true;
        false
    }

    /// The hot path: one text delta, written without a JSON tree.
    fn text_delta(&mut self, index: usize, text: &str, out: &mut VecDeque<Bytes>) {
        if !self.hold(text.len(), out) {
            return;
        }
        let Some(Item::Message { id, text: all }) = self.items.get_mut(index) else {
            return;
        };
        all.push_str(text);
        let (id, text, seq) = (Value::from(id.as_str()), Value::from(text), self.sequence);
        self.sequence += 1;
        out.push_back(Bytes::from(format!(
            "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"item_id\":{id},\"output_index\":{index},\"content_index\":0,\"delta\":{text},\"logprobs\":[],\"sequence_number\":{seq}}}\n\n"
        )));
    }

    fn start_block(&mut self, block: u64, content: &Value, out: &mut VecDeque<Bytes>) {
        if !self.hold(ITEM_COST, out) {
            return;
        }
        let index = self.items.len();
        let item = match content["type"].as_str() {
            Some("text") => Item::Message {
                id: item_id(&self.id, index),
                text: String::new(),
            },
            Some("tool_use") => Item::Call {
                id: function_item_id(&content["id"]),
                call_id: content["id"].clone(),
                name: content["name"].clone(),
                namespace: namespace_of(&self.template, &content["name"]),
                arguments: String::new(),
            },
            // Thinking is not asked for; other blocks have no Responses item.
            _ => return,
        };
        let value = item.value("in_progress");
        let is_message = matches!(item, Item::Message { .. });
        self.items.push(item);
        self.blocks.push((block, index));
        if is_message {
            let mut added = value.clone();
            added["content"] = json!([]);
            self.emit(
                "response.output_item.added",
                json!({"output_index": index, "item": added}),
                out,
            );
            self.emit(
                "response.content_part.added",
                json!({"item_id": value["id"], "output_index": index, "content_index": 0,
                       "part": {"type": "output_text", "text": "", "annotations": []}}),
                out,
            );
        } else {
            self.emit(
                "response.output_item.added",
                json!({"output_index": index, "item": value}),
                out,
            );
        }
    }

    fn stop_block(&mut self, index: usize, out: &mut VecDeque<Bytes>) {
        let done = self.items[index].value("completed");
        match &self.items[index] {
            Item::Message { id, text } => {
                let (id, text) = (Value::from(id.as_str()), Value::from(text.as_str()));
                self.emit(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
                    out,
                );
                self.emit(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                           "part": {"type": "output_text", "text": text, "annotations": []}}),
                    out,
                );
            }
            Item::Call { name, .. } => {
                let name = name.clone();
                self.emit(
                    "response.function_call_arguments.done",
                    json!({"item_id": done["id"], "output_index": index, "name": name, "arguments": done["arguments"]}),
                    out,
                );
            }
        }
        self.emit(
            "response.output_item.done",
            json!({"output_index": index, "item": done}),
            out,
        );
    }
}

impl Translate for AnthropicToResponses {
    fn event(&mut self, ev: &Event, out: &mut VecDeque<Bytes>) {
        match ev.event.as_str() {
            "ping" => return,
            "content_block_delta" => {
                if let Some((index, text)) = text_delta(&ev.data) {
                    self.core.text += text.len();
                    if let Some(item) = self.output_index(index) {
                        self.text_delta(item, &text, out);
                    }
                    return;
                }
            }
            _ => {}
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            return;
        };
        self.core.text += streamed_text_value(&v);
        let block = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match v["type"].as_str().unwrap_or(&ev.event) {
            "message_start" => {
                probe_value(&v, &mut self.core.usage);
                let message = &v["message"];
                self.id = response_id(message["id"].as_str().unwrap_or_default());
                self.model = message["model"].clone();
                self.counts = anthropic_counts(&message["usage"]);
                let created = self.snapshot(("in_progress", Value::Null), "in_progress");
                self.emit(
                    "response.created",
                    json!({"response": created.clone()}),
                    out,
                );
                self.emit("response.in_progress", json!({"response": created}), out);
            }
            "content_block_start" => self.start_block(block, &v["content_block"], out),
            "content_block_delta" => {
                let Some(index) = self.output_index(block) else {
                    return;
                };
                let delta = &v["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => {
                        self.text_delta(index, delta["text"].as_str().unwrap_or(""), out);
                    }
                    Some("input_json_delta") => {
                        let part = delta["partial_json"].as_str().unwrap_or("");
                        if !self.hold(part.len(), out) {
                            return;
                        }
                        let Some(Item::Call { id, arguments, .. }) = self.items.get_mut(index)
                        else {
                            return;
                        };
                        arguments.push_str(part);
                        let id = Value::from(id.as_str());
                        self.emit(
                            "response.function_call_arguments.delta",
                            json!({"item_id": id, "output_index": index, "delta": part}),
                            out,
                        );
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(index) = self.output_index(block) {
                    self.stop_block(index, out);
                }
            }
            "message_delta" => {
                probe_value(&v, &mut self.core.usage);
                if let Some(reason) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.into());
                }
                // A final count replaces the start's; output arrives only here.
                let (input, cached, output) = anthropic_counts(&v["usage"]);
                if v["usage"].get("input_tokens").is_some() {
                    self.counts.0 = input;
                    self.counts.1 = cached;
                }
                self.counts.2 = output;
            }
            "message_stop" => {
                let status = super::status(self.stop_reason.as_deref());
                let kind = if status.0 == "completed" {
                    "response.completed"
                } else {
                    "response.incomplete"
                };
                let response = self.snapshot(status, "completed");
                self.emit(kind, json!({"response": response}), out);
                self.core.done = true;
            }
            "error" => {
                let message = v["error"]["message"].as_str().unwrap_or("upstream error");
                out.push_back(responses_error_frame(message, self.sequence));
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
        Some(responses_error_frame(message, self.sequence))
    }
}
