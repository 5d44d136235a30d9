//! Body types: one boxed body for everything the gateway sends, and a body that reports its end.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> BoxBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> BoxBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// How a response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    Complete,
    Failed,
    /// Dropped before its end: the client went away.
    Abandoned,
}

/// Streams `inner` unchanged and calls `on_end` exactly once when it ends, fails or is dropped.
pub struct ObservedBody<B: Body, F: FnOnce(BodyEnd)> {
    inner: B,
    on_end: Option<F>,
}

impl<B: Body, F: FnOnce(BodyEnd)> ObservedBody<B, F> {
    pub fn new(inner: B, on_end: F) -> Self {
        ObservedBody {
            inner,
            on_end: Some(on_end),
        }
    }

    fn finish(&mut self, end: BodyEnd) {
        if let Some(f) = self.on_end.take() {
            f(end);
        }
    }
}

impl<B, F> Body for ObservedBody<B, F>
where
    B: Body + Unpin,
    F: FnOnce(BodyEnd) + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finish(BodyEnd::Complete),
            Poll::Ready(Some(Err(_))) => self.finish(BodyEnd::Failed),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => {
                self.finish(BodyEnd::Complete)
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body, F: FnOnce(BodyEnd)> Drop for ObservedBody<B, F> {
    fn drop(&mut self) {
        // An empty body may never be polled; it still completed.
        let end = if self.inner.is_end_stream() {
            BodyEnd::Complete
        } else {
            BodyEnd::Abandoned
        };
        self.finish(end);
    }
}
