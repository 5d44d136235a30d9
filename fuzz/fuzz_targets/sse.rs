//! SSE from upstreams, split into chunks at fuzzer-chosen points: the LLM event parser feeding
//! each stream translator, and the MCP event parser feeding the legacy SSE client.
//!
//! Input: one byte choosing the translator, then the stream; each `0xFF` byte (never part of
//! UTF-8) ends a chunk, so a cut can fall anywhere, inside a character too. What the gateway
//! writes must parse as SSE again, and a passthrough's client must read the events sent.
#![no_main]
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt, stream};
use libfuzzer_sys::fuzz_target;
use rmcp::model::ServerJsonRpcMessage;
use sse_stream::SseStream;
use tollgate_data_plane::http::sse::events;
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

/// The (event, data) pairs a client parses out of what the gateway wrote.
fn client_reads(written: &[u8]) -> Vec<(String, String)> {
    assert!(std::str::from_utf8(written).is_ok(), "the gateway writes UTF-8");
    let mut parser = sse_parse::SseParser::new();
    parser.feed(written);
    std::iter::from_fn(|| parser.next_event())
        .map(|ev| (ev.event, ev.data))
        .collect()
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
    // The streams are in memory: every poll is ready, so no runtime is needed. Like the
    // gateway, reading stops at the terminal event or the first error.
    let mut events = Box::pin(events(stream::iter(chunks(body))));
    let mut out = VecDeque::new();
    let mut written = Vec::new();
    let mut sent = Vec::new();
    let mut broke = false;
    while let Some(Some(next)) = events.next().now_or_never() {
        match next {
            Ok(ev) => {
                translator.event(&ev, &mut out);
                let data = match ev.data.trim() {
                    "[DONE]" => "[DONE]".to_string(),
                    _ => ev.data,
                };
                sent.push((ev.event, data));
            }
            Err(e) => {
                out.push_back(error_frame(client, &e));
                broke = true;
            }
        }
        for frame in &out {
            assert!(frame.ends_with(b"\n\n"), "a frame ends its event");
            written.extend_from_slice(frame);
        }
        out.clear();
        if broke || translator.core().done {
            break;
        }
    }
    let _ = translator.core().usage.total();
    let read = client_reads(&written);
    // A passthrough's client reads the very events the upstream sent.
    if !broke {
        match choice % 4 {
            0 => {
                let data =
                    |v: &[(String, String)]| v.iter().map(|e| e.1.clone()).collect::<Vec<_>>();
                assert_eq!(
                    data(&read),
                    data(&sent),
                    "OpenAI passthrough changed the events"
                );
            }
            1 => assert_eq!(read, sent, "Anthropic passthrough changed the events"),
            _ => {}
        }
    }

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
