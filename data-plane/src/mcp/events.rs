//! Server-sent event bodies for both served transports: `message` events carrying JSON-RPC,
//! with keep-alive comments so idle streams survive proxies.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderValue, Response, header};
use http_body_util::BodyExt;
use rmcp::model::ServerJsonRpcMessage;
use sse_stream::{KeepAlive, Sse, SseBody, Timer};

use crate::http::body::{BoxBody, full};

const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A JSON-RPC message as an SSE `message` event.
pub fn message(msg: &ServerJsonRpcMessage) -> Sse {
    Sse::default()
        .event("message")
        .data(serde_json::to_string(msg).unwrap_or_default())
}

/// A `text/event-stream` response streaming `events`, with keep-alives while it is quiet.
pub fn response<S>(events: S) -> Response<BoxBody>
where
    S: Stream<Item = Sse> + Send + 'static,
{
    let body = SseBody::new(events.map(Ok::<_, Infallible>))
        .with_keep_alive::<Tick>(KeepAlive::new().interval(KEEP_ALIVE));
    event_stream(body.map_err(|never| match never {}).boxed_unsync())
}

/// A `text/event-stream` response of one event, sent whole: no keep-alive timer, and its
/// length lets the response end with the event instead of a further empty chunk.
pub fn single(msg: &ServerJsonRpcMessage) -> Response<BoxBody> {
    event_stream(full(Bytes::from(message(msg))))
}

fn event_stream(body: BoxBody) -> Response<BoxBody> {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// sse-stream's keep-alive clock, on tokio's timer.
pub struct Tick(Pin<Box<tokio::time::Sleep>>);

impl Future for Tick {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl Timer for Tick {
    fn reset(mut self: Pin<&mut Self>, instant: std::time::Instant) {
        self.0.as_mut().reset(instant.into());
    }

    fn from_duration(duration: Duration) -> Self {
        Tick(Box::pin(tokio::time::sleep(duration)))
    }
}
