//! Client side of the legacy HTTP+SSE transport (MCP 2024-11-05), which rmcp no longer ships:
//! GET opens the event stream, whose first `endpoint` event names where to POST messages.

use futures_util::{Stream, StreamExt};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use sse_stream::SseStream;
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use crate::http::sse;

#[derive(Debug, thiserror::Error)]
pub enum SseClientError {
    #[error("GET {url} failed: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url} closed its event stream before sending the `endpoint` event")]
    NoEndpoint { url: String },
    #[error("{url} sent an invalid endpoint `{endpoint}` (it must be on the same origin)")]
    BadEndpoint { url: String, endpoint: String },
}

type Transport = (
    PollSender<ClientJsonRpcMessage>,
    std::pin::Pin<Box<dyn Stream<Item = ServerJsonRpcMessage> + Send>>,
);

/// Opens the event stream at `url` and returns rmcp's (sink, stream) transport pair.
/// `header` goes with every request (the caller's token, with `backendAuth.passthrough`).
pub async fn connect(
    http: &reqwest::Client,
    url: &str,
    header: Option<(http::HeaderName, http::HeaderValue)>,
) -> Result<Transport, SseClientError> {
    let headers: http::HeaderMap = header.into_iter().collect();
    let connect_err = |reason: String| SseClientError::Connect {
        url: url.to_string(),
        reason,
    };
    let resp = http
        .get(url)
        .headers(headers.clone())
        .header("accept", "text/event-stream")
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| connect_err(e.to_string()))?;
    let mut events = SseStream::from_bytes_stream(sse::bounded(resp.bytes_stream()));
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
                .headers(headers.clone())
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
