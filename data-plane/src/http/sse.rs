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
}
