//! A session's messages that are not the answer to a POST: target notifications, and under
//! legacy SSE every answer. They wait here until the client's event stream takes them.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use parking_lot::Mutex;
use rmcp::model::{JsonRpcMessage, ServerJsonRpcMessage, ServerNotification};
use tokio::sync::mpsc;

/// Messages held for a client with no stream open; past this, notifications are dropped.
const BUFFER: usize = 256;

#[derive(Clone)]
pub struct Outbound {
    tx: mpsc::Sender<ServerJsonRpcMessage>,
    slot: Arc<Mutex<Option<mpsc::Receiver<ServerJsonRpcMessage>>>>,
}

impl Outbound {
    pub fn new() -> Outbound {
        let (tx, rx) = mpsc::channel(BUFFER);
        Outbound {
            tx,
            slot: Arc::new(Mutex::new(Some(rx))),
        }
    }

    /// Best effort: a notification is dropped when nobody listens and the buffer is full.
    pub fn notify(&self, notification: ServerNotification) {
        let _ = self.tx.try_send(JsonRpcMessage::notification(notification));
    }

    /// An answer that must arrive: waits for room in the buffer.
    pub async fn send(&self, message: ServerJsonRpcMessage) {
        let _ = self.tx.send(message).await;
    }

    /// The client's event stream, or `None` while another one is open.
    pub fn open_stream(&self) -> Option<OutboundStream> {
        let rx = self.slot.lock().take()?;
        Some(OutboundStream {
            rx: Some(rx),
            slot: self.slot.clone(),
        })
    }
}

/// The open event stream; closing it (the client left) lets the next one take over.
pub struct OutboundStream {
    rx: Option<mpsc::Receiver<ServerJsonRpcMessage>>,
    slot: Arc<Mutex<Option<mpsc::Receiver<ServerJsonRpcMessage>>>>,
}

impl Stream for OutboundStream {
    type Item = ServerJsonRpcMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.as_mut() {
            Some(rx) => rx.poll_recv(cx),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for OutboundStream {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            *self.slot.lock() = Some(rx);
        }
    }
}
