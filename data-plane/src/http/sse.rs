//! Upstream event streams read with bounded memory: a line or an event past its limit ends the
//! stream with an error, so an endless line from a remote MCP server or an LLM provider cannot
//! grow a buffer without bound.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// The longest line and event read from an upstream's SSE stream.
pub const MAX_SSE_LINE: usize = 4 * 1024 * 1024;
pub const MAX_SSE_EVENT: usize = 8 * 1024 * 1024;

/// Why an upstream's event stream was cut.
#[derive(Debug, thiserror::Error)]
#[error("an SSE {what} exceeded {limit} bytes")]
pub struct TooLong {
    what: &'static str,
    limit: usize,
}

/// Lengths of the current line and event of an SSE byte stream.
#[derive(Default)]
struct Framing {
    line: usize,
    event: usize,
    /// The last byte was a CR: a LF right after it ends no second line.
    after_cr: bool,
}

impl Framing {
    /// Counts `chunk`; an error once a line or an event is too long.
    fn feed(&mut self, chunk: &[u8]) -> Result<(), TooLong> {
        for &b in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            match b {
                // CR, LF and CRLF each end a line; an empty line ends the event.
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    if self.line == 0 {
                        self.event = 0;
                    }
                    self.line = 0;
                }
                _ => {
                    self.line += 1;
                    self.event += 1;
                }
            }
            if self.line > MAX_SSE_LINE {
                return Err(TooLong {
                    what: "line",
                    limit: MAX_SSE_LINE,
                });
            }
            if self.event > MAX_SSE_EVENT {
                return Err(TooLong {
                    what: "event",
                    limit: MAX_SSE_EVENT,
                });
            }
        }
        Ok(())
    }
}

/// `bytes`, ended with an error at the first line or event over the limits.
pub fn bounded<E>(
    bytes: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut framing = Framing::default();
    bytes
        .map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            framing.feed(&chunk).map_err(std::io::Error::other)?;
            Ok(chunk)
        })
        .scan(false, |failed, item: Result<Bytes, std::io::Error>| {
            // Nothing after the first error.
            let done = *failed;
            *failed |= item.is_err();
            std::future::ready((!done).then_some(item))
        })
}

/// The longest `id` line an LLM provider may send. The gateway never reads event ids, and the
/// parser copies the last one into every event, so a long one would be copied per event.
pub const MAX_SSE_ID: usize = 256;
/// Bytes given to the parser at once: the events it queues before they are taken stay few.
const FEED: usize = 16 * 1024;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The start and length of the line being read, enough to tell an `id` line.
#[derive(Default)]
struct IdLines {
    /// The line's first bytes (a byte order mark may precede the stream's first line).
    start: [u8; 6],
    len: usize,
    later_line: bool,
}

impl IdLines {
    /// Counts `chunk`; an error once an `id` line is longer than [`MAX_SSE_ID`].
    fn check(&mut self, chunk: &[u8]) -> Result<(), TooLong> {
        let mut rest = chunk;
        loop {
            let end = memchr::memchr2(b'\r', b'\n', rest);
            let piece = &rest[..end.unwrap_or(rest.len())];
            let have = self.len.min(self.start.len());
            let take = piece.len().min(self.start.len() - have);
            self.start[have..have + take].copy_from_slice(&piece[..take]);
            self.len += piece.len();
            if self.is_id() && self.len > MAX_SSE_ID {
                return Err(TooLong {
                    what: "id line",
                    limit: MAX_SSE_ID,
                });
            }
            let Some(end) = end else {
                return Ok(());
            };
            self.later_line = true;
            self.len = 0;
            rest = &rest[end + 1..];
        }
    }

    fn is_id(&self) -> bool {
        let line = &self.start[..self.len.min(self.start.len())];
        let line = match line.strip_prefix(BOM) {
            Some(after) if !self.later_line => after,
            _ => line,
        };
        line.starts_with(b"id:")
    }
}

/// An LLM provider's events, parsed as they arrive (sse-parse: each byte scanned once, no
/// copy of the rest of the buffer per line). An event past [`MAX_SSE_EVENT`] bytes or an `id`
/// line past [`MAX_SSE_ID`] ends the stream with an error, as does the upstream's own.
pub fn events<E: std::fmt::Display>(
    bytes: impl Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
) -> impl Stream<Item = Result<sse_parse::Event, String>> + Send + 'static {
    let parser = sse_parse::SseParser::new().max_buffer(MAX_SSE_EVENT);
    let state = (bytes, parser, Bytes::new(), IdLines::default());
    futures_util::stream::unfold(Some(state), |state| async move {
        let (mut bytes, mut parser, mut unread, mut ids) = state?;
        loop {
            if let Some(event) = parser.next_event() {
                return Some((Ok(event), Some((bytes, parser, unread, ids))));
            }
            if unread.is_empty() {
                match bytes.next().await {
                    Some(Ok(chunk)) => unread = chunk,
                    Some(Err(e)) => return Some((Err(e.to_string()), None)),
                    // A last event without its blank line is dropped, as a browser would.
                    None => return None,
                }
            }
            let piece = unread.split_to(unread.len().min(FEED));
            if let Err(cut) = ids.check(&piece) {
                return Some((Err(cut.to_string()), None));
            }
            parser.feed(&piece);
            if parser.overflows() > 0 {
                let cut = TooLong {
                    what: "event",
                    limit: MAX_SSE_EVENT,
                };
                return Some((Err(cut.to_string()), None));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_and_events_are_refused() {
        let mut f = Framing::default();
        assert!(f.feed(b"data: a\n\ndata: b\r\n\r\n").is_ok());
        assert_eq!((f.line, f.event), (0, 0));
        // Bare CRs end lines and events too.
        assert!(f.feed(b"data: c\r\rdata: d\r").is_ok());
        assert_eq!(f.line, 0);
        assert!(f.feed(&vec![b'x'; MAX_SSE_LINE + 1]).is_err());
        let mut f = Framing::default();
        let line = [vec![b'x'; 1024], vec![b'\n']].concat();
        let mut event = Ok(());
        for _ in 0..=(MAX_SSE_EVENT / 1024) {
            event = event.and(f.feed(&line));
        }
        assert!(event.is_err());
    }

    /// Every event of `chunks`, and the error that ended them if one did.
    fn read(chunks: Vec<Vec<u8>>) -> (Vec<(String, String)>, Option<String>) {
        use futures_util::FutureExt;
        let bytes = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
        );
        let mut events = Box::pin(events(bytes));
        let (mut read, mut error) = (Vec::new(), None);
        while let Some(next) = events.next().now_or_never().expect("in memory") {
            match next {
                Ok(ev) => read.push((ev.event, ev.data)),
                Err(e) => error = Some(e),
            }
        }
        (read, error)
    }

    #[test]
    fn events_split_anywhere_read_the_same() {
        let stream =
            b"event: a\ndata: 1\n\ndata: x\r\ndata: y\r\n\r\n: note\nevent: b\rdata: 2\r\r";
        let whole = read(vec![stream.to_vec()]);
        assert_eq!(
            whole,
            (
                vec![
                    ("a".into(), "1".into()),
                    ("message".into(), "x\ny".into()),
                    ("b".into(), "2".into()),
                ],
                None
            )
        );
        for cut in 0..stream.len() {
            let (head, tail) = stream.split_at(cut);
            assert_eq!(
                read(vec![head.to_vec(), tail.to_vec()]),
                whole,
                "cut at {cut}"
            );
        }
    }

    /// Without the `id` bound, each of these tiny events would carry its own copy of a
    /// megabyte id: gigabytes from one chunk.
    #[test]
    fn a_long_id_line_ends_the_stream_before_it_is_copied_into_events() {
        let flood = b"data:\n\n".repeat(2_000);
        let id = [&b"id: "[..], &vec![b'7'; 1024 * 1024], b"\n\n"].concat();
        let cut = format!("an SSE id line exceeded {MAX_SSE_ID} bytes");
        let first = b"data: first\n\n".to_vec();
        let (read_first, error) = read(vec![first, id.clone(), flood.clone()]);
        assert_eq!(read_first, vec![("message".into(), "first".into())]);
        assert_eq!(error.as_deref(), Some(cut.as_str()));
        // After a byte order mark, the stream's first line is an id line too.
        let (read_none, error) = read(vec![[BOM, &id].concat(), flood.clone()]);
        assert_eq!((read_none.len(), error.as_deref()), (0, Some(cut.as_str())));
        // Split across chunks, and after a CRLF, it is still an id line.
        let mut chunks = vec![b"data: a\r\n\r\ni".to_vec(), b"d".to_vec()];
        chunks.push([&b": "[..], &[b'1'; MAX_SSE_ID]].concat());
        assert!(read(chunks).1.is_some());
        // Short ids, and other fields of any length, pass.
        let (read_ok, error) = read(vec![
            b"id: 42\ndata: a\n\n".to_vec(),
            [&b"data: "[..], &vec![b'x'; 4096], b"\n\n"].concat(),
            [&b"idx: "[..], &vec![b'y'; 4096], b"\ndata: b\n\n"].concat(),
        ]);
        assert_eq!((read_ok.len(), error), (3, None));
    }

    #[test]
    fn an_event_past_the_limit_ends_the_stream_with_an_error() {
        let line = [b"data: ".to_vec(), vec![b'x'; 1024 * 1024], b"\n".to_vec()].concat();
        let mut chunks = vec![b"data: first\n\n".to_vec()];
        chunks.extend(std::iter::repeat_n(line, MAX_SSE_EVENT / (1024 * 1024) + 1));
        chunks.push(b"\ndata: after\n\n".to_vec());
        let (read, error) = read(chunks);
        assert_eq!(read, vec![("message".into(), "first".into())]);
        assert_eq!(
            error.as_deref(),
            Some(format!("an SSE event exceeded {MAX_SSE_EVENT} bytes").as_str())
        );
    }
}
