//! ConverseStream's AWS event-stream frames -> Anthropic SSE events, so the existing stream
//! translators serve every client format. Frames are bounded; nothing else is buffered.

use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Buf, BytesMut};
use serde_json::{Value, json};

use super::converse::{stop_reason, usage};

/// Largest event-stream frame accepted (ConverseStream's are a few kilobytes).
pub const MAX_FRAME: usize = 1024 * 1024;

/// Smallest frame: prelude (12 bytes) and message CRC (4).
const MIN_FRAME: usize = 16;

/// Splits a byte stream into event-stream messages, CRCs checked.
#[derive(Default)]
pub struct Frames {
    buffer: BytesMut,
}

impl Frames {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete message, `Ok(None)` until one is buffered whole.
    pub fn next_message(&mut self) -> Result<Option<Message>, String> {
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let total = (&self.buffer[..4]).get_u32() as usize;
        if !(MIN_FRAME..=MAX_FRAME).contains(&total) {
            return Err(format!("an event-stream frame of {total} bytes"));
        }
        if self.buffer.len() < total {
            return Ok(None);
        }
        let frame = self.buffer.split_to(total).freeze();
        aws_smithy_eventstream::frame::read_message_from(frame)
            .map(Some)
            .map_err(|e| format!("a malformed event-stream frame: {e}"))
    }

    /// Bytes of a frame not received whole.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }
}

fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}

/// One ConverseStream turned into Anthropic events.
pub struct ToAnthropic {
    id: String,
    model: String,
    started: bool,
    /// Content blocks opened (by Converse index) and not stopped yet.
    open: Vec<u64>,
    stop: Option<&'static str>,
    pub finished: bool,
}

impl ToAnthropic {
    pub fn new(id: String, model: String) -> ToAnthropic {
        ToAnthropic {
            id,
            model,
            started: false,
            open: Vec::new(),
            stop: None,
            finished: false,
        }
    }

    /// The SSE frames for one message; `Err` for an exception, which ends the stream.
    pub fn message(&mut self, m: &Message, out: &mut Vec<u8>) -> Result<(), String> {
        match header(m, ":message-type") {
            Some("event") => {}
            Some("exception") => {
                let kind = header(m, ":exception-type").unwrap_or("exception");
                return Err(format!("{kind}: {}", payload_message(m.payload())));
            }
            Some("error") => {
                let code = header(m, ":error-code").unwrap_or("error");
                let message = header(m, ":error-message").unwrap_or_default();
                return Err(format!("{code}: {message}"));
            }
            other => return Err(format!("an event-stream message of type {other:?}")),
        }
        let event = header(m, ":event-type").unwrap_or_default();
        let v: Value = serde_json::from_slice(m.payload())
            .map_err(|e| format!("the `{event}` event is not JSON: {e}"))?;
        self.start(out);
        let index = v["contentBlockIndex"].as_u64().unwrap_or(0);
        match event {
            "contentBlockStart" => {
                if let Some(tool) = v.pointer("/start/toolUse") {
                    let block = json!({"type": "tool_use", "id": tool["toolUseId"], "name": tool["name"], "input": {}});
                    self.open_block(index, block, out);
                }
            }
            "contentBlockDelta" => {
                let d = &v["delta"];
                let (block, delta) = if let Some(text) = d.get("text") {
                    (
                        json!({"type": "text", "text": ""}),
                        json!({"type": "text_delta", "text": text}),
                    )
                } else if let Some(input) = d.pointer("/toolUse/input") {
                    (
                        json!({"type": "tool_use", "input": {}}),
                        json!({"type": "input_json_delta", "partial_json": input}),
                    )
                } else if let Some(r) = d.get("reasoningContent") {
                    let delta = match (r.get("text"), r.get("signature")) {
                        (Some(t), _) => json!({"type": "thinking_delta", "thinking": t}),
                        (None, Some(s)) => json!({"type": "signature_delta", "signature": s}),
                        (None, None) => return Ok(()),
                    };
                    (json!({"type": "thinking", "thinking": ""}), delta)
                } else {
                    return Ok(());
                };
                if !self.open.contains(&index) {
                    self.open_block(index, block, out);
                }
                frame(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": delta}),
                );
            }
            "contentBlockStop" => {
                self.open.retain(|i| *i != index);
                frame(
                    out,
                    "content_block_stop",
                    &json!({"type": "content_block_stop", "index": index}),
                );
            }
            "messageStop" => {
                self.stop = Some(stop_reason(v["stopReason"].as_str().unwrap_or_default()));
            }
            "metadata" => self.finish(&usage(&v["usage"]), out),
            _ => {}
        }
        Ok(())
    }

    /// The stream's end: a stream that stopped without its `metadata` still ends properly.
    pub fn end(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        if self.finished {
            return Ok(());
        }
        if self.stop.is_none() {
            return Err("the event stream ended before `messageStop`".into());
        }
        self.finish(&json!({"output_tokens": 0}), out);
        Ok(())
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0}
        });
        frame(
            out,
            "message_start",
            &json!({"type": "message_start", "message": message}),
        );
    }

    fn open_block(&mut self, index: u64, block: Value, out: &mut Vec<u8>) {
        self.open.push(index);
        frame(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
    }

    fn finish(&mut self, usage: &Value, out: &mut Vec<u8>) {
        let delta = json!({"stop_reason": self.stop.unwrap_or("end_turn"), "stop_sequence": null});
        frame(
            out,
            "message_delta",
            &json!({"type": "message_delta", "delta": delta, "usage": usage}),
        );
        frame(out, "message_stop", &json!({"type": "message_stop"}));
        self.finished = true;
    }
}

/// An exception's `{"message": ...}` (AWS spells it `Message` at times).
fn payload_message(payload: &[u8]) -> String {
    let v: Value = serde_json::from_slice(payload).unwrap_or_default();
    v.get("message")
        .or_else(|| v.get("Message"))
        .and_then(Value::as_str)
        .map_or_else(
            || String::from_utf8_lossy(payload).into_owned(),
            str::to_string,
        )
}

fn frame(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(format!("event: {name}\ndata: {data}\n\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// One event-stream message, as Bedrock writes them.
    fn encode(message_type: &str, kind: &str, payload: &Value) -> Bytes {
        use aws_smithy_types::event_stream::Header;
        let kind_header = if message_type == "exception" {
            ":exception-type"
        } else {
            ":event-type"
        };
        let message = Message::new(Bytes::from(payload.to_string()))
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String(message_type.to_string().into()),
            ))
            .add_header(Header::new(
                kind_header,
                HeaderValue::String(kind.to_string().into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ));
        let mut out = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(&message, &mut out)
            .expect("a small message encodes");
        Bytes::from(out)
    }

    fn run(frames: &[Bytes]) -> (String, Result<(), String>) {
        let mut split = Frames::default();
        let mut t = ToAnthropic::new("msg_1".into(), "m".into());
        let mut out = Vec::new();
        // Fed a byte at a time: frames are found whatever the chunking.
        let all: Vec<u8> = frames.iter().flat_map(|f| f.to_vec()).collect();
        for b in all {
            split.push(&[b]);
            while let Some(m) = split.next_message().unwrap() {
                if let Err(e) = t.message(&m, &mut out) {
                    return (String::from_utf8(out).unwrap(), Err(e));
                }
            }
        }
        let end = t.end(&mut out);
        (String::from_utf8(out).unwrap(), end)
    }

    #[test]
    fn text_and_tool_use_become_anthropic_events() {
        let (sse, end) = run(&[
            encode("event", "messageStart", &json!({"role": "assistant"})),
            encode(
                "event",
                "contentBlockDelta",
                &json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
            ),
            encode(
                "event",
                "contentBlockStop",
                &json!({"contentBlockIndex": 0}),
            ),
            encode(
                "event",
                "contentBlockStart",
                &json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "get"}}}),
            ),
            encode(
                "event",
                "contentBlockDelta",
                &json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"q\":1}"}}}),
            ),
            encode(
                "event",
                "contentBlockStop",
                &json!({"contentBlockIndex": 1}),
            ),
            encode("event", "messageStop", &json!({"stopReason": "tool_use"})),
            encode(
                "event",
                "metadata",
                &json!({"usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}, "metrics": {"latencyMs": 1}}),
            ),
        ]);
        end.unwrap();
        let names: Vec<&str> = sse
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(sse.contains(r#""delta":{"text":"Hi","type":"text_delta"}"#));
        assert!(sse.contains(r#""partial_json":"{\"q\":1}""#));
        assert!(sse.contains(r#""stop_reason":"tool_use""#));
        assert!(sse.contains(r#""usage":{"input_tokens":5,"output_tokens":2}"#));
    }

    #[test]
    fn exceptions_and_bad_frames_end_the_stream() {
        let (_, end) = run(&[
            encode("event", "messageStart", &json!({"role": "assistant"})),
            encode(
                "exception",
                "throttlingException",
                &json!({"message": "slow down"}),
            ),
        ]);
        assert_eq!(end.unwrap_err(), "throttlingException: slow down");
        let mut corrupt = encode("event", "messageStop", &json!({})).to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        let mut split = Frames::default();
        split.push(&corrupt);
        assert!(split.next_message().unwrap_err().contains("malformed"));
        let mut huge = Frames::default();
        huge.push(&(MAX_FRAME as u32 + 1).to_be_bytes());
        assert!(huge.next_message().unwrap_err().contains("bytes"));
        let (_, cut) = run(&[encode("event", "messageStart", &json!({}))]);
        assert!(cut.unwrap_err().contains("messageStop"));
    }
}
