//! Token usage of one LLM exchange, reported once when its response ends (also for
//! passthrough answers, so that no path of a token-limited route is free).

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use serde::Deserialize;

use crate::ratelimit::Bucket;

/// What an exchange consumed, as far as the upstream said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub response_model: Option<String>,
}

impl Usage {
    pub fn total(&self) -> u64 {
        // Counts come from the upstream: a huge one must not overflow.
        self.input
            .unwrap_or(0)
            .saturating_add(self.output.unwrap_or(0))
    }
}

/// The few fields usage accounting needs, parsed without building a JSON tree.
#[derive(Deserialize, Default)]
struct Probe<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    usage: Option<ProbeUsage>,
    #[serde(borrow)]
    message: Option<ProbeMessage<'a>>,
    /// A Responses stream event's response (`response.created`, `response.completed`).
    #[serde(borrow)]
    response: Option<ProbeMessage<'a>>,
    /// Present in a chat completion.
    choices: Option<serde::de::IgnoredAny>,
    /// Present in an Anthropic message.
    content: Option<serde::de::IgnoredAny>,
}

/// Just enough of an answer to tell a completion or message from something else.
#[derive(Deserialize)]
struct Kind {
    choices: Option<serde::de::IgnoredAny>,
    content: Option<serde::de::IgnoredAny>,
}

/// What a whole answer is, as far as telling a completion from a message goes.
pub struct Answer {
    pub has_choices: bool,
    pub has_content: bool,
}

#[derive(Deserialize)]
struct ProbeMessage<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    usage: Option<ProbeUsage>,
}

#[derive(Deserialize)]
struct ProbeUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

impl Probe<'_> {
    fn record(self, usage: &mut Usage) -> Answer {
        let answer = Answer {
            has_choices: self.choices.is_some(),
            has_content: self.content.is_some(),
        };
        let model = [&self.message, &self.response]
            .into_iter()
            .flatten()
            .find_map(|m| m.model.as_ref())
            .or(self.model.as_ref());
        if let Some(m) = model
            && usage.response_model.is_none()
        {
            usage.response_model = Some(m.to_string());
        }
        let nested = [self.message, self.response].into_iter().flatten();
        for u in std::iter::once(self.usage)
            .chain(nested.map(|m| m.usage))
            .flatten()
        {
            usage.input = u.prompt_tokens.or(u.input_tokens).or(usage.input);
            usage.output = u.completion_tokens.or(u.output_tokens).or(usage.output);
        }
        answer
    }
}

/// Records usage (and the response model) from a JSON body or stream event: a complete
/// OpenAI completion, chunk or embeddings list, an Anthropic message or stream event, or a
/// Responses answer or stream event.
pub fn probe(data: &str, usage: &mut Usage) {
    if (usage.response_model.is_none() || data.contains("\"usage\""))
        && let Ok(p) = serde_json::from_str::<Probe<'_>>(data)
    {
        p.record(usage);
    }
}

/// Records usage from a whole answer and tells what it is, in one pass over the body; an
/// answer whose usage has an unexpected form is still told, unmeasured.
pub fn answer(body: &[u8], usage: &mut Usage) -> Result<Answer, serde_json::Error> {
    match serde_json::from_slice::<Probe<'_>>(body) {
        Ok(probe) => Ok(probe.record(usage)),
        Err(_) => serde_json::from_slice::<Kind>(body).map(|k| Answer {
            has_choices: k.choices.is_some(),
            has_content: k.content.is_some(),
        }),
    }
}

/// Records usage from an answer already parsed into a tree.
pub fn probe_value(answer: &serde_json::Value, usage: &mut Usage) {
    if let Ok(probe) = Probe::deserialize(answer) {
        probe.record(usage);
    }
}

/// Estimated tokens of `bytes` bytes of text: a quarter, rounded up (OpenAI's rule of thumb
/// for English). Used only where the upstream gave no count: a stream the client left or
/// that broke before its usage, and admission reservations.
pub fn estimate(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

/// Just the generated text of a stream event, either format: OpenAI `choices[].delta`
/// (`content`, tool call `arguments`) or Anthropic `delta` (`text`, `partial_json`).
#[derive(Deserialize)]
struct TextProbe<'a> {
    #[serde(borrow, default)]
    choices: Vec<ChoiceProbe<'a>>,
    #[serde(borrow)]
    delta: Option<TopDelta<'a>>,
}

/// A top-level `delta`: Anthropic's object, or the text of a Responses
/// `response.output_text.delta` (or function call arguments) event. Read by hand: serde's
/// untagged enums buffer the value into a tree first.
enum TopDelta<'a> {
    Text(Cow<'a, str>),
    Fields(DeltaProbe<'a>),
}

impl<'de: 'a, 'a> Deserialize<'de> for TopDelta<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Either<'a> {
            type Value = TopDelta<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a text or an object")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<TopDelta<'a>, E> {
                Ok(TopDelta::Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<TopDelta<'a>, E> {
                Ok(TopDelta::Text(Cow::Owned(text.to_string())))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<TopDelta<'a>, A::Error> {
                let map = serde::de::value::MapAccessDeserializer::new(map);
                DeltaProbe::deserialize(map).map(TopDelta::Fields)
            }
        }
        d.deserialize_any(Either(std::marker::PhantomData))
    }
}

impl TopDelta<'_> {
    fn len(&self) -> usize {
        match self {
            TopDelta::Text(t) => t.len(),
            TopDelta::Fields(d) => d.len(),
        }
    }
}

#[derive(Deserialize)]
struct ChoiceProbe<'a> {
    #[serde(borrow)]
    delta: Option<DeltaProbe<'a>>,
}

#[derive(Deserialize)]
struct DeltaProbe<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Vec<ToolCallProbe<'a>>,
}

#[derive(Deserialize)]
struct ToolCallProbe<'a> {
    #[serde(borrow)]
    function: Option<FunctionProbe<'a>>,
}

#[derive(Deserialize)]
struct FunctionProbe<'a> {
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

impl DeltaProbe<'_> {
    fn len(&self) -> usize {
        let text = [&self.content, &self.text, &self.partial_json]
            .into_iter()
            .flatten()
            .map(|t| t.len())
            .sum::<usize>();
        let arguments = self
            .tool_calls
            .iter()
            .filter_map(|c| c.function.as_ref()?.arguments.as_ref())
            .map(|a| a.len())
            .sum::<usize>();
        text + arguments
    }
}

/// Bytes of generated text in one stream event (0 for events without any).
pub fn streamed_text(data: &str) -> usize {
    if !data.contains("delta") {
        return 0;
    }
    serde_json::from_str::<TextProbe<'_>>(data).map_or(0, |p| p.len())
}

impl TextProbe<'_> {
    fn len(&self) -> usize {
        self.choices
            .iter()
            .filter_map(|c| c.delta.as_ref())
            .map(DeltaProbe::len)
            .sum::<usize>()
            + self.delta.as_ref().map_or(0, TopDelta::len)
    }
}

/// The texts of a complete answer, any format: each OpenAI choice's message content, each
/// Anthropic text block, or each Responses output text (agentgateway's `llm.completion`).
pub fn completion(body: &[u8]) -> Vec<String> {
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let texts = match (
        answer["choices"].as_array(),
        answer["content"].as_array(),
        answer["output"].as_array(),
    ) {
        (Some(choices), _, _) => choices
            .iter()
            .filter_map(|c| c["message"]["content"].as_str())
            .collect(),
        (None, Some(blocks), _) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
        (None, None, Some(items)) => items
            .iter()
            .filter_map(|i| i["content"].as_array())
            .flatten()
            .filter(|c| c["type"] == "output_text")
            .filter_map(|c| c["text"].as_str())
            .collect(),
        (None, None, None) => Vec::new(),
    };
    texts.into_iter().map(str::to_string).collect()
}

/// [`streamed_text`] of an event already parsed into a tree.
pub fn streamed_text_value(event: &serde_json::Value) -> usize {
    TextProbe::deserialize(event).map_or(0, |p| p.len())
}

/// Adds a stream event's generated text (not tool arguments) to the streamed completion, one
/// text in all.
pub fn append_streamed(data: &str, texts: &mut Vec<String>) {
    if !data.contains("delta") {
        return;
    }
    let Ok(p) = serde_json::from_str::<TextProbe<'_>>(data) else {
        return;
    };
    let fields = |d: &DeltaProbe<'_>| -> Vec<String> {
        [&d.content, &d.text]
            .into_iter()
            .flatten()
            .map(|t| t.to_string())
            .collect()
    };
    let mut found: Vec<String> = p
        .choices
        .iter()
        .filter_map(|c| c.delta.as_ref())
        .flat_map(fields)
        .collect();
    match &p.delta {
        Some(TopDelta::Fields(d)) => found.extend(fields(d)),
        // A Responses text delta (not a function call's arguments).
        Some(TopDelta::Text(t)) if data.contains("output_text.delta") => found.push(t.to_string()),
        _ => {}
    }
    for text in found {
        match texts.first_mut() {
            Some(all) => all.push_str(&text),
            None => texts.push(text),
        }
    }
}

/// The most of a passthrough answer kept to find its usage: a JSON body, or one SSE line.
const MAX_METERED: usize = 1024 * 1024;

/// A passthrough answer's body, forwarded unchanged, whose usage (when it is in a known
/// format) is debited from the route's token buckets when it ends or the client leaves.
pub struct Metered<B> {
    inner: B,
    /// JSON: the whole body; SSE: the line being read. Dropped past [`MAX_METERED`].
    pending: Option<Vec<u8>>,
    sse: bool,
    usage: Usage,
    buckets: Vec<Arc<Bucket>>,
}

impl<B> Metered<B> {
    /// `sse` scans `data:` lines as they pass; otherwise the body is probed whole at its end.
    pub fn new(inner: B, sse: bool, buckets: Vec<Arc<Bucket>>) -> Metered<B> {
        Metered {
            inner,
            pending: Some(Vec::new()),
            sse,
            usage: Usage::default(),
            buckets,
        }
    }

    fn observe(&mut self, chunk: &[u8]) {
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        if !self.sse {
            pending.extend_from_slice(chunk);
        } else {
            for piece in chunk.split_inclusive(|b| *b == b'\n') {
                pending.extend_from_slice(piece);
                if piece.ends_with(b"\n") {
                    probe_sse_line(pending, &mut self.usage);
                    pending.clear();
                }
            }
        }
        if pending.len() > MAX_METERED {
            self.pending = None;
        }
    }
}

fn probe_sse_line(line: &[u8], usage: &mut Usage) {
    if let Some(data) = line.strip_prefix(b"data:")
        && let Ok(data) = std::str::from_utf8(data)
    {
        probe(data.trim(), usage);
    }
}

impl<B> Drop for Metered<B> {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            if self.sse {
                probe_sse_line(&pending, &mut self.usage);
            } else {
                probe(
                    std::str::from_utf8(&pending).unwrap_or_default(),
                    &mut self.usage,
                );
            }
        }
        for b in &self.buckets {
            b.debit(self.usage.total());
        }
    }
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(f)) = &frame
            && let Some(data) = f.data_ref()
        {
            self.observe(data);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_text_reads_every_delta_shape() {
        let anthropic = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"h\u00e9llo"}}"#;
        assert_eq!(streamed_text(anthropic), "héllo".len());
        assert_eq!(
            streamed_text(r#"{"type":"response.output_text.delta","delta":"a\"b"}"#),
            3
        );
        let openai = r#"{"choices":[{"delta":{"content":"ab","tool_calls":[{"function":{"arguments":"{}"}}]}}]}"#;
        assert_eq!(streamed_text(openai), 4);
        assert_eq!(streamed_text(r#"{"delta":7}"#), 0);
    }

    #[test]
    fn an_answer_is_told_and_measured_in_one_pass_even_with_odd_usage() {
        let mut usage = Usage::default();
        let body =
            br#"{"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        let a = answer(body, &mut usage).unwrap();
        assert!(a.has_choices && !a.has_content);
        assert_eq!((usage.input, usage.output), (Some(3), Some(4)));
        assert_eq!(usage.response_model.as_deref(), Some("m"));

        let mut usage = Usage::default();
        let a = answer(br#"{"content":[],"model":5,"usage":"many"}"#, &mut usage).unwrap();
        assert!(a.has_content && !a.has_choices);
        assert_eq!(usage, Usage::default());
        assert!(answer(b"not json", &mut usage).is_err());
    }

    #[test]
    fn completions_are_the_texts_of_every_format() {
        let openai = br#"{"choices":[{"message":{"content":"a"}},{"message":{"content":"b"}}]}"#;
        assert_eq!(completion(openai), ["a", "b"]);
        let anthropic =
            br#"{"content":[{"type":"text","text":"hi"},{"type":"tool_use","input":{}}]}"#;
        assert_eq!(completion(anthropic), ["hi"]);
        assert!(completion(b"not json").is_empty());
        let mut texts = Vec::new();
        append_streamed(
            r#"{"choices":[{"index":0,"delta":{"content":"hel"}}]}"#,
            &mut texts,
        );
        append_streamed(
            r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"lo"}}"#,
            &mut texts,
        );
        append_streamed(
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{}"}}]}}]}"#,
            &mut texts,
        );
        append_streamed(
            r#"{"type":"response.output_text.delta","delta":"!"}"#,
            &mut texts,
        );
        append_streamed(
            r#"{"type":"response.function_call_arguments.delta","delta":"{}"}"#,
            &mut texts,
        );
        assert_eq!(texts, ["hello!"]);
        let responses = br#"{"output":[{"type":"message","content":[{"type":"output_text","text":"hi"}]},{"type":"function_call","arguments":"{}"}]}"#;
        assert_eq!(completion(responses), ["hi"]);
    }

    #[test]
    fn streamed_text_counts_both_formats() {
        let openai = r#"{"choices":[{"index":0,"delta":{"content":"hello "}}]}"#;
        assert_eq!(streamed_text(openai), 6);
        let tool = r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"q\":1}"}}]}}]}"#;
        assert_eq!(streamed_text(tool), 7);
        let anthropic =
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#;
        assert_eq!(streamed_text(anthropic), 2);
        let stop = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}"#;
        assert_eq!(streamed_text(stop), 0);
        assert_eq!(estimate(9), 3);
        let responses = r#"{"type":"response.output_text.delta","item_id":"m","output_index":0,"content_index":0,"delta":"hey"}"#;
        assert_eq!(streamed_text(responses), 3);
        let responses = r#"{"content_index":0,"delta":"openai ","item_id":"msg_fake","logprobs":[],"output_index":0,"sequence_number":4,"type":"response.output_text.delta"}"#;
        assert_eq!(streamed_text(responses), 7);
    }

    #[test]
    fn usage_of_responses_and_embeddings() {
        let mut u = Usage::default();
        probe(
            r#"{"type":"response.completed","response":{"id":"r","model":"gpt-x","usage":{"input_tokens":5,"output_tokens":7,"total_tokens":12}}}"#,
            &mut u,
        );
        assert_eq!(
            (u.input, u.output, u.response_model.as_deref()),
            (Some(5), Some(7), Some("gpt-x"))
        );
        let mut u = Usage::default();
        probe(
            r#"{"object":"list","data":[],"model":"emb","usage":{"prompt_tokens":8,"total_tokens":8}}"#,
            &mut u,
        );
        assert_eq!((u.input, u.output, u.total()), (Some(8), None, 8));
    }
}
