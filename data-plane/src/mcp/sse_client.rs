//! Client side of the legacy HTTP+SSE transport (MCP 2024-11-05), which rmcp no longer ships:
//! GET opens the event stream, whose first `endpoint` event names where to POST messages.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use sse_stream::SseStream;
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

#[derive(Debug, thiserror::Error)]
pub enum SseClientError {
    #[error("GET {url} failed: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url} closed its event stream before sending the `endpoint` event")]
    NoEndpoint { url: String },
    #[error("{url} sent an invalid endpoint `{endpoint}` (it must be on the same origin)")]
    BadEndpoint { url: String, endpoint: String },
    #[error("an SSE {what} exceeded {limit} bytes")]
    TooLong { what: &'static str, limit: usize },
}

type Transport = (
    PollSender<ClientJsonRpcMessage>,
    std::pin::Pin<Box<dyn Stream<Item = ServerJsonRpcMessage> + Send>>,
);

/// Opens the event stream at `url` and returns rmcp's (sink, stream) transport pair.
pub async fn connect(http: &reqwest::Client, url: &str) -> Result<Transport, SseClientError> {
    let connect_err = |reason: String| SseClientError::Connect {
        url: url.to_string(),
        reason,
    };
    let resp = http
        .get(url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| connect_err(e.to_string()))?;
    let mut events = SseStream::from_bytes_stream(bounded(resp.bytes_stream()));
    let endpoint = loop {
        match events.next().await {
            Some(Ok(e)) if e.event.as_deref() == Some("endpoint") => {
                break e.data.unwrap_or_default();
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(connect_err(e.to_string())),
            None => {
                return Err(SseClientError::NoEndpoint {
                    url: url.to_string(),
                });
            }
        }
    };
    let bad_endpoint = || SseClientError::BadEndpoint {
        url: url.to_string(),
        endpoint: endpoint.clone(),
    };
    let base = reqwest::Url::parse(url).map_err(|_| bad_endpoint())?;
    let post_url = base.join(endpoint.trim()).map_err(|_| bad_endpoint())?;
    // Messages go only where the stream came from: a server cannot send them elsewhere.
    if post_url.origin() != base.origin() {
        return Err(bad_endpoint());
    }

    let (tx, mut rx) = mpsc::channel::<ClientJsonRpcMessage>(64);
    let http = http.clone();
    tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            let sent = http
                .post(post_url.clone())
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&message).unwrap_or_default())
                .send()
                .await
                .and_then(|r| r.error_for_status());
            if let Err(e) = sent {
                // The endpoint URL carries the server's session id and maybe credentials.
                let error = super::upstream::without_urls(&e.to_string());
                tracing::warn!(%error, "posting to a legacy SSE MCP server failed");
                break;
            }
        }
    });
    let messages = events.filter_map(|e| async move {
        let e = e.ok()?;
        if e.event.as_deref().is_some_and(|name| name != "message") {
            return None;
        }
        serde_json::from_str::<ServerJsonRpcMessage>(e.data.as_deref()?).ok()
    });
    Ok((PollSender::new(tx), Box::pin(messages)))
}

/// The longest line and event read from a legacy SSE server: an endless line must not grow a
/// buffer without bound.
const MAX_SSE_LINE: usize = 4 * 1024 * 1024;
const MAX_SSE_EVENT: usize = 8 * 1024 * 1024;

/// Lengths of the current line and event of an SSE byte stream.
#[derive(Default)]
struct Framing {
    line: usize,
    event: usize,
}

impl Framing {
    /// Counts `chunk`; an error once a line or an event is too long.
    fn feed(&mut self, chunk: &[u8]) -> Result<(), SseClientError> {
        for &b in chunk {
            match b {
                b'\n' => {
                    if self.line == 0 {
                        self.event = 0;
                    }
                    self.line = 0;
                }
                b'\r' => {}
                _ => {
                    self.line += 1;
                    self.event += 1;
                }
            }
            if self.line > MAX_SSE_LINE {
                return Err(SseClientError::TooLong {
                    what: "line",
                    limit: MAX_SSE_LINE,
                });
            }
            if self.event > MAX_SSE_EVENT {
                return Err(SseClientError::TooLong {
                    what: "event",
                    limit: MAX_SSE_EVENT,
                });
            }
        }
        Ok(())
    }
}

/// `bytes`, ended with an error at the first line or event over the limits.
fn bounded<E>(
    bytes: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    E: std::error::Error + Send + Sync + 'static,
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
