//! SSE from upstreams, split into chunks at fuzzer-chosen points: the LLM event parser feeding
//! each stream translator, and the MCP event parser feeding the legacy SSE client.
//!
//! Input: one byte choosing the translator, then the stream; each `0xFF` byte (never part of
//! UTF-8) ends a chunk, so a cut can fall anywhere, inside a character too.
#![no_main]
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::{FutureExt, StreamExt, stream};
use libfuzzer_sys::fuzz_target;
use rmcp::model::ServerJsonRpcMessage;
use sse_stream::SseStream;
use tollgate_data_plane::llm::provider::Format;
use tollgate_data_plane::llm::stream::{
    AnthropicPassthrough, AnthropicToOpenAi, OpenAiPassthrough, OpenAiToAnthropic, Translate,
    error_frame,
};

fn chunks(body: &[u8]) -> Vec<Result<Bytes, std::io::Error>> {
    body.split(|b| *b == 0xFF)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect()
}

/// Frames written to a client are whole SSE events of UTF-8 text.
fn check_frames(out: &mut VecDeque<Bytes>) {
    for frame in out.drain(..) {
        let text = std::str::from_utf8(&frame).expect("frames are UTF-8");
        assert!(text.ends_with("\n\n"), "a frame ends its event: {text:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let (mut translator, client): (Box<dyn Translate>, Format) = match choice % 4 {
        0 => (Box::<OpenAiPassthrough>::default(), Format::OpenAi),
        1 => (Box::<AnthropicPassthrough>::default(), Format::Anthropic),
        2 => (
            Box::new(AnthropicToOpenAi::new(1_700_000_000)),
            Format::OpenAi,
        ),
        _ => (Box::<OpenAiToAnthropic>::default(), Format::Anthropic),
    };
    // The streams are in memory: every poll is ready, so no runtime is needed.
    let mut events = stream::iter(chunks(body)).eventsource();
    let mut out = VecDeque::new();
    while let Some(Some(next)) = events.next().now_or_never() {
        match next {
            Ok(ev) => translator.event(&ev, &mut out),
            Err(e) => out.push_back(error_frame(client, &e.to_string())),
        }
        check_frames(&mut out);
    }
    let _ = translator.core().usage.total();

    let mut events = SseStream::from_bytes_stream(stream::iter(chunks(body)));
    while let Some(Some(next)) = events.next().now_or_never() {
        let Ok(sse) = next else { continue };
        if let Some(data) = sse.data.as_deref()
            && let Ok(message) = serde_json::from_str::<ServerJsonRpcMessage>(data)
        {
            serde_json::to_string(&message).expect("a parsed message serialises");
        }
    }
});
