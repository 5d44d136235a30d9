//! A stdio MCP child spoken to directly (issue 17): each caller writes its request line to the
//! child's stdin itself and one reader task per child hands every answer to the caller waiting
//! for its id, so no service task or channel sits between an HTTP handler and the child.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientJsonRpcMessage, ClientNotification,
    ClientRequest, ClientResult, ErrorCode, ErrorData, GetMeta, JsonRpcMessage, JsonRpcVersion2_0,
    NumberOrString, ProgressToken, ServerJsonRpcMessage, ServerRequest, ServerResult,
};
use rmcp::service::ServiceError;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use super::upstream::Notifications;

/// The longest line a child may write to stdout: the bound of a remote target's SSE event.
const MAX_LINE: usize = crate::http::sse::MAX_SSE_EVENT;
/// The longest stderr line logged whole; the rest of a longer one is cut.
const MAX_STDERR_LINE: usize = 16 * 1024;
/// Bytes queued for a child that is not reading its stdin; past it, writers wait for room.
const MAX_QUEUED: usize = 1024 * 1024;
/// How much of a child's output is read at once.
const READ_BUFFER: usize = 64 * 1024;

type Reply = Result<ServerResult, ServiceError>;

/// How an answer's `result` is read: as the type its request asks for when that is known,
/// which spares serde trying each variant of rmcp's untagged `ServerResult` in turn.
type ReadResult = fn(&str) -> serde_json::Result<ServerResult>;

fn read_result(request: &ClientRequest) -> ReadResult {
    match request {
        ClientRequest::CallToolRequest(_) => |raw| match serde_json::from_str(raw) {
            Ok(result) => Ok(ServerResult::CallToolResult(result)),
            Err(_) => serde_json::from_str(raw),
        },
        _ => |raw| serde_json::from_str(raw),
    }
}

/// The common line from a child, an answer to one of the gateway's requests, read without
/// building its result first.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer<'a> {
    #[serde(rename = "jsonrpc")]
    _version: JsonRpcVersion2_0,
    id: i64,
    #[serde(borrow)]
    result: &'a RawValue,
}

/// Why a child's connection ended: every waiting and later caller gets its error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Its stdout closed or its stdin broke (it exited) or the gateway closed it.
    Closed,
    /// It wrote a line longer than [`MAX_LINE`].
    LineTooLong,
}

impl End {
    fn error(self, target: &str) -> ServiceError {
        match self {
            End::Closed => ServiceError::TransportClosed,
            End::LineTooLong => ServiceError::McpError(ErrorData::internal_error(
                format!(
                    "MCP target `{target}` wrote a message over {} MiB; its connection was closed and the next call restarts it",
                    MAX_LINE / (1024 * 1024)
                ),
                None,
            )),
        }
    }
}

/// The callers waiting for an answer, by the gateway's request id.
#[derive(Default)]
struct Calls {
    waiting: HashMap<i64, (oneshot::Sender<Reply>, ReadResult)>,
    /// Set once, when the connection ends; no caller waits after it.
    ended: Option<End>,
}

/// One child's connection: its stdin, and the calls its reader task answers.
pub struct Child {
    shared: Arc<Shared>,
}

struct Shared {
    target: Arc<str>,
    stdin: Stdin,
    calls: Mutex<Calls>,
    next_id: AtomicI64,
    /// Cancelled when the reader task ends (the child's stdout closed).
    done: CancellationToken,
}

impl Child {
    /// Starts the reader task over `stdout`; `notifications` takes what the child announces.
    pub fn start(
        target: Arc<str>,
        stdin: pipe::Sender,
        stdout: impl AsyncRead + Send + Unpin + 'static,
        notifications: Notifications,
    ) -> Child {
        let shared = Arc::new(Shared {
            target,
            stdin: Stdin::new(stdin),
            calls: Mutex::new(Calls::default()),
            next_id: AtomicI64::new(0),
            done: CancellationToken::new(),
        });
        tokio::spawn(read(shared.clone(), stdout, notifications));
        Child { shared }
    }

    pub fn is_closed(&self) -> bool {
        self.shared.calls.lock().ended.is_some()
    }

    /// Sends `request` under the gateway's own id and waits for its answer. Dropping the
    /// future (the client went away) tells the child with `notifications/cancelled`.
    pub async fn request(&self, mut request: ClientRequest) -> Reply {
        let shared = &self.shared;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let read = read_result(&request);
        // As rmcp's client does: the child may report progress against the gateway's id.
        request
            .get_meta_mut()
            .set_progress_token(ProgressToken(NumberOrString::Number(id)));
        let line = encode(&ClientJsonRpcMessage::request(
            request,
            NumberOrString::Number(id),
        ));
        let (tx, rx) = oneshot::channel();
        {
            let mut calls = shared.calls.lock();
            if let Some(end) = calls.ended {
                return Err(end.error(&shared.target));
            }
            calls.waiting.insert(id, (tx, read));
        }
        let mut pending = Pending {
            shared,
            id,
            answered: false,
        };
        if shared.stdin.write(&line).await.is_err() {
            pending.answered = true;
            shared.end(End::Closed);
            return Err(ServiceError::TransportClosed);
        }
        let reply = rx.await.unwrap_or(Err(ServiceError::TransportClosed));
        pending.answered = true;
        reply
    }

    pub async fn notify(&self, notification: ClientNotification) -> Result<(), ServiceError> {
        let line = encode(&ClientJsonRpcMessage::notification(notification));
        self.shared
            .stdin
            .write(&line)
            .await
            .map_err(|_| ServiceError::TransportClosed)
    }

    /// Closes the child's stdin (a well-behaved server exits on it), fails every waiting
    /// caller, and waits up to `wait` for its stdout to close.
    pub async fn shutdown(&self, wait: Duration) {
        self.shared.stdin.close();
        self.shared.end(End::Closed);
        let _ = tokio::time::timeout(wait, self.shared.done.cancelled()).await;
    }
}

/// A call waiting for its answer; dropped unanswered, it is withdrawn and the child told.
struct Pending<'a> {
    shared: &'a Shared,
    id: i64,
    answered: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.answered || self.shared.calls.lock().waiting.remove(&self.id).is_none() {
            return;
        }
        let cancel = ClientNotification::CancelledNotification(CancelledNotification::new(
            CancelledNotificationParam::new(
                Some(NumberOrString::Number(self.id)),
                Some("the client went away".into()),
            ),
        ));
        // Best effort: skipped when the child is not reading its stdin.
        self.shared
            .stdin
            .try_write(&encode(&ClientJsonRpcMessage::notification(cancel)));
    }
}

impl Shared {
    /// Ends the connection once: every waiting caller gets the error of `end`.
    fn end(&self, end: End) {
        let waiting = {
            let mut calls = self.calls.lock();
            if calls.ended.is_some() {
                return;
            }
            calls.ended = Some(end);
            std::mem::take(&mut calls.waiting)
        };
        for (_, (caller, _)) in waiting {
            let _ = caller.send(Err(end.error(&self.target)));
        }
    }

    /// Handles one line from the child; returns the answer to a request the child made.
    fn dispatch(&self, line: &[u8], notifications: &Notifications) -> Option<Vec<u8>> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        if let Ok(answer) = serde_json::from_slice::<Answer<'_>>(line) {
            let waiting = self.calls.lock().waiting.remove(&answer.id);
            match waiting {
                Some((caller, read)) => {
                    let result = read(answer.result.get()).map_err(|e| {
                        ServiceError::McpError(ErrorData::internal_error(
                            format!("MCP target `{}` sent an invalid result: {e}", self.target),
                            None,
                        ))
                    });
                    let _ = caller.send(result);
                }
                None => self.orphan(&NumberOrString::Number(answer.id)),
            }
            return None;
        }
        let message = match serde_json::from_slice::<ServerJsonRpcMessage>(line) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(mcp_target = %self.target, %error, "MCP target wrote a line that is not a JSON-RPC message; ignored");
                return None;
            }
        };
        let (id, reply) = match message {
            JsonRpcMessage::Response(r) => (r.id, Ok(r.result)),
            JsonRpcMessage::Error(e) => match e.id {
                Some(id) => (id, Err(ServiceError::McpError(e.error))),
                None => {
                    tracing::warn!(mcp_target = %self.target, error = %e.error.message, "MCP target sent an error without an id");
                    return None;
                }
            },
            JsonRpcMessage::Notification(n) => {
                notifications.forward(n.notification);
                return None;
            }
            JsonRpcMessage::Request(r) => {
                let answer = match r.request {
                    ServerRequest::PingRequest(_) => {
                        JsonRpcMessage::response(ClientResult::empty(()), r.id)
                    }
                    _ => JsonRpcMessage::error(
                        ErrorData::new(
                            ErrorCode::METHOD_NOT_FOUND,
                            "the gateway does not forward server-to-client requests",
                            None,
                        ),
                        Some(r.id),
                    ),
                };
                return Some(encode::<ClientJsonRpcMessage>(&answer));
            }
        };
        let caller = match id {
            NumberOrString::Number(n) => self.calls.lock().waiting.remove(&n),
            NumberOrString::String(_) => None,
        };
        match caller {
            Some((caller, _)) => {
                let _ = caller.send(reply);
            }
            None => self.orphan(&id),
        }
        None
    }

    /// A late answer to an abandoned call, or to an id the gateway never sent.
    fn orphan(&self, id: &NumberOrString) {
        tracing::debug!(mcp_target = %self.target, ?id, "MCP target answered an unknown request id; ignored");
    }
}

/// The reader task: answers callers until the child's stdout closes or breaks its bound.
async fn read(shared: Arc<Shared>, stdout: impl AsyncRead + Unpin, notifications: Notifications) {
    let mut lines = Lines::new(stdout, MAX_LINE);
    let end = loop {
        match lines.next().await {
            Ok(Some(Line::Whole(line))) => {
                if let Some(answer) = shared.dispatch(line, &notifications)
                    && shared.stdin.write(&answer).await.is_err()
                {
                    break End::Closed;
                }
            }
            Ok(Some(Line::TooLong)) => {
                tracing::warn!(mcp_target = %shared.target, limit = MAX_LINE, "MCP target wrote a line over the limit; closing its connection");
                break End::LineTooLong;
            }
            Ok(None) | Err(_) => break End::Closed,
        }
    };
    shared.end(end);
    shared.stdin.close();
    shared.done.cancel();
}

/// Logs a child's stderr, line by line, each cut at [`MAX_STDERR_LINE`].
pub async fn log_stderr(target: Arc<str>, pid: Option<u32>, stderr: impl AsyncRead + Unpin) {
    let mut lines = Lines::new(stderr, MAX_STDERR_LINE);
    while let Ok(Some(line)) = lines.next().await {
        match line {
            Line::Whole(line) => {
                tracing::info!(mcp_target = %target, pid, "{}", String::from_utf8_lossy(line));
            }
            Line::TooLong => {
                tracing::info!(mcp_target = %target, pid, "(a stderr line over {MAX_STDERR_LINE} bytes was cut)");
            }
        }
    }
}

/// One line of a child's output.
enum Line<'a> {
    /// The line without its `\n`.
    Whole(&'a [u8]),
    /// The line was longer than the bound: it is skipped up to its `\n`.
    TooLong,
}

/// Newline-delimited reading that never holds more than `max` bytes of one line.
struct Lines<R> {
    reader: BufReader<R>,
    /// Bytes of a line that spans reads.
    line: Vec<u8>,
    max: usize,
    /// Bytes of the reader's buffer handed out by the last call, consumed by the next.
    handed_out: usize,
    /// Inside an over-long line: its rest is skipped.
    skipping: bool,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    fn new(reader: R, max: usize) -> Lines<R> {
        Lines {
            reader: BufReader::with_capacity(READ_BUFFER, reader),
            line: Vec::new(),
            max,
            handed_out: 0,
            skipping: false,
        }
    }

    /// The next line, or `None` at the end of the output (a last line without `\n` counts).
    async fn next(&mut self) -> std::io::Result<Option<Line<'_>>> {
        self.reader.consume(std::mem::take(&mut self.handed_out));
        if self.line.capacity() > READ_BUFFER {
            self.line = Vec::new();
        }
        self.line.clear();
        loop {
            let buf = self.reader.fill_buf().await?;
            if buf.is_empty() {
                return Ok(
                    (!self.line.is_empty() && !self.skipping).then_some(Line::Whole(&self.line))
                );
            }
            let newline = buf.iter().position(|&b| b == b'\n');
            let take = newline.unwrap_or(buf.len());
            if self.skipping {
                self.reader.consume(take + usize::from(newline.is_some()));
                self.skipping = newline.is_none();
                continue;
            }
            if self.line.len() + take > self.max {
                self.reader.consume(take + usize::from(newline.is_some()));
                self.skipping = newline.is_none();
                return Ok(Some(Line::TooLong));
            }
            match newline {
                // The common case: the whole line is in the buffer, handed out without a copy.
                Some(end) if self.line.is_empty() => {
                    self.handed_out = end + 1;
                    let buf = self.reader.buffer();
                    return Ok(Some(Line::Whole(&buf[..end])));
                }
                Some(end) => {
                    self.line.extend_from_slice(&buf[..end]);
                    self.reader.consume(end + 1);
                    return Ok(Some(Line::Whole(&self.line)));
                }
                None => {
                    self.line.extend_from_slice(buf);
                    let read = buf.len();
                    self.reader.consume(read);
                }
            }
        }
    }
}

fn encode<M: serde::Serialize>(message: &M) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).unwrap_or_default();
    line.push(b'\n');
    line
}

/// A child's stdin: whole lines are written by their callers, in order, without a task in
/// between; what the pipe cannot take at once is queued for a flusher task.
struct Stdin(Arc<StdinState>);

struct StdinState {
    /// Every write to the pipe happens under this lock, so lines never interleave.
    inner: Mutex<Queue>,
    /// Wakes the flusher when bytes are queued or the pipe is closed.
    queued: Notify,
    /// Wakes writers waiting for room.
    drained: Notify,
}

struct Queue {
    /// `None` once closed.
    pipe: Option<Arc<pipe::Sender>>,
    /// Bytes the pipe did not take yet.
    bytes: Vec<u8>,
}

#[derive(Debug)]
struct Closed;

impl Stdin {
    fn new(pipe: pipe::Sender) -> Stdin {
        let state = Arc::new(StdinState {
            inner: Mutex::new(Queue {
                pipe: Some(Arc::new(pipe)),
                bytes: Vec::new(),
            }),
            queued: Notify::new(),
            drained: Notify::new(),
        });
        tokio::spawn(flush(state.clone()));
        Stdin(state)
    }

    /// Writes one whole line, waiting while [`MAX_QUEUED`] bytes wait for the child.
    async fn write(&self, line: &[u8]) -> Result<(), Closed> {
        loop {
            let room = self.0.drained.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.0.offer(line)? {
                return Ok(());
            }
            room.await;
        }
    }

    /// Writes one whole line unless the queue is full.
    fn try_write(&self, line: &[u8]) {
        let _ = self.0.offer(line);
    }

    fn close(&self) {
        self.0.inner.lock().pipe = None;
        self.0.queued.notify_one();
        self.0.drained.notify_waiters();
    }
}

impl StdinState {
    /// Writes or queues `line` whole; false (nothing written) while the queue is full.
    fn offer(&self, line: &[u8]) -> Result<bool, Closed> {
        let mut queue = self.inner.lock();
        let pipe = queue.pipe.clone().ok_or(Closed)?;
        if !queue.bytes.is_empty() {
            if queue.bytes.len() + line.len() > MAX_QUEUED {
                return Ok(false);
            }
            queue.bytes.extend_from_slice(line);
            return Ok(true);
        }
        let written = match pipe.try_write(line) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
            Err(_) => {
                queue.pipe = None;
                return Err(Closed);
            }
        };
        if written < line.len() {
            queue.bytes.extend_from_slice(&line[written..]);
            self.queued.notify_one();
        }
        Ok(true)
    }

    /// Marks the pipe broken and wakes the writers waiting for room.
    fn broke(&self) {
        self.inner.lock().pipe = None;
        self.drained.notify_waiters();
    }
}

/// Writes queued bytes as the child makes room; ends when the pipe closes or breaks.
async fn flush(stdin: Arc<StdinState>) {
    loop {
        stdin.queued.notified().await;
        loop {
            let pipe = {
                let queue = stdin.inner.lock();
                match &queue.pipe {
                    None => return,
                    Some(_) if queue.bytes.is_empty() => break,
                    Some(pipe) => pipe.clone(),
                }
            };
            if pipe.writable().await.is_err() {
                return stdin.broke();
            }
            let mut queue = stdin.inner.lock();
            match pipe.try_write(&queue.bytes) {
                Ok(n) => {
                    queue.bytes.drain(..n);
                    stdin.drained.notify_waiters();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    drop(queue);
                    return stdin.broke();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::names::Naming;
    use crate::mcp::outbound::Outbound;
    use futures_util::StreamExt;
    use rmcp::model::{CallToolRequestParams, ServerNotification};
    use serde_json::{Value, json};
    use tokio::io::{AsyncWriteExt, DuplexStream};

    /// A child played by the test: what the gateway writes, and where the child's answers go.
    struct FakeChild {
        stdin: BufReader<pipe::Receiver>,
        stdout: DuplexStream,
    }

    impl FakeChild {
        async fn read(&mut self) -> Value {
            let mut line = String::new();
            self.stdin.read_line(&mut line).await.unwrap();
            serde_json::from_str(&line).unwrap()
        }

        async fn write(&mut self, message: Value) {
            let mut line = message.to_string().into_bytes();
            line.push(b'\n');
            self.stdout.write_all(&line).await.unwrap();
        }
    }

    fn start() -> (Child, FakeChild, Outbound) {
        let (stdin, stdin_rx) = pipe::pipe().unwrap();
        let (ours, theirs) = tokio::io::duplex(READ_BUFFER);
        let outbound = Outbound::new();
        let notifications = Notifications::new(
            "t".into(),
            outbound.clone(),
            Naming::new(1, tollgate_shared::config::model::PrefixMode::Conditional),
        );
        let child = Child::start("t".into(), stdin, ours, notifications);
        let fake = FakeChild {
            stdin: BufReader::new(stdin_rx),
            stdout: theirs,
        };
        (child, fake, outbound)
    }

    fn call(name: &str) -> ClientRequest {
        ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(
            CallToolRequestParams::new(name.to_string()),
        ))
    }

    fn text(result: &Reply) -> String {
        match result {
            Ok(ServerResult::CallToolResult(r)) => r.content[0].as_text().unwrap().text.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn answer(id: &Value, text: &str) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": text}]}})
    }

    #[tokio::test]
    async fn answers_reach_their_callers_by_id_in_any_order_and_orphans_are_ignored() {
        let (child, mut fake, _) = start();
        let (a, b) = (child.request(call("a")), child.request(call("b")));
        let answers = async {
            let first = fake.read().await;
            let second = fake.read().await;
            assert_eq!(first["params"]["_meta"]["progressToken"], first["id"]);
            assert_ne!(first["id"], second["id"], "the gateway's own ids");
            fake.write(answer(&json!(999), "orphan")).await;
            for m in [&second, &first] {
                fake.write(answer(&m["id"], m["params"]["name"].as_str().unwrap()))
                    .await;
            }
        };
        let (a, b, ()) = tokio::join!(a, b, answers);
        assert_eq!((text(&a), text(&b)), ("a".into(), "b".into()));
    }

    #[tokio::test]
    async fn other_answers_are_read_as_rmcp_reads_them() {
        let (child, mut fake, _) = start();
        let replies = async {
            let m = fake.read().await;
            fake.write(json!({"jsonrpc": "2.0", "id": m["id"], "result": {}}))
                .await;
            let m = fake.read().await;
            let error = json!({"code": -32602, "message": "no such tool"});
            fake.write(json!({"jsonrpc": "2.0", "id": m["id"], "error": error}))
                .await;
        };
        let calls = async {
            (
                child.request(call("a")).await,
                child.request(call("b")).await,
            )
        };
        let ((empty, error), ()) = tokio::join!(calls, replies);
        let as_rmcp = serde_json::from_str::<ServerResult>("{}").unwrap();
        assert_eq!(format!("{:?}", empty.unwrap()), format!("{as_rmcp:?}"));
        let Err(ServiceError::McpError(e)) = error else {
            panic!("{error:?}");
        };
        assert_eq!((e.code.0, e.message.as_ref()), (-32602, "no such tool"));
    }

    #[tokio::test]
    async fn a_child_that_exits_fails_every_waiting_caller_at_once() {
        let (child, mut fake, _) = start();
        let calls = futures_util::future::join(child.request(call("a")), child.request(call("b")));
        let exit = async {
            fake.read().await;
            fake.read().await;
            drop(fake);
        };
        let ((a, b), ()) = tokio::join!(calls, exit);
        assert!(matches!(a, Err(ServiceError::TransportClosed)), "{a:?}");
        assert!(matches!(b, Err(ServiceError::TransportClosed)), "{b:?}");
        assert!(child.is_closed());
        let later = child.request(call("c")).await;
        assert!(
            matches!(later, Err(ServiceError::TransportClosed)),
            "{later:?}"
        );
    }

    #[tokio::test]
    async fn a_line_over_the_bound_closes_the_connection_with_a_clear_error() {
        let (child, mut fake, _) = start();
        let flood = async {
            fake.read().await;
            // No newline ever: the reader must stop at the bound, not buffer it all.
            let chunk = vec![b'x'; READ_BUFFER];
            for _ in 0..=MAX_LINE / READ_BUFFER {
                if fake.stdout.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        };
        let (result, ()) = tokio::join!(child.request(call("a")), flood);
        let Err(ServiceError::McpError(e)) = result else {
            panic!("{result:?}");
        };
        assert!(e.message.contains("over 8 MiB"), "{}", e.message);
        assert!(child.is_closed());
    }

    #[tokio::test]
    async fn lines_are_bounded_and_a_long_one_is_skipped_whole() {
        let input = b"{\"a\":1}\nxxxxxxxxxxxxxxxxxxxx\nlast".to_vec();
        let mut lines = Lines::new(input.as_slice(), 10);
        let mut seen = Vec::new();
        while let Some(line) = lines.next().await.unwrap() {
            seen.push(match line {
                Line::Whole(l) => String::from_utf8(l.to_vec()).unwrap(),
                Line::TooLong => "(too long)".into(),
            });
        }
        assert_eq!(seen, ["{\"a\":1}", "(too long)", "last"]);
    }

    #[tokio::test]
    async fn an_abandoned_call_is_cancelled_at_the_child() {
        let (child, mut fake, _) = start();
        {
            let pending = child.request(call("slow"));
            tokio::pin!(pending);
            tokio::select! {
                _ = &mut pending => panic!("no answer was sent"),
                sent = fake.read() => assert_eq!(sent["method"], "tools/call"),
            }
        }
        let cancel = fake.read().await;
        assert_eq!(cancel["method"], "notifications/cancelled", "{cancel}");
        assert_eq!(cancel["params"]["requestId"], 0);
        // Its late answer is ignored; the connection still serves calls.
        fake.write(answer(&json!(0), "late")).await;
        let next = async {
            let m = fake.read().await;
            fake.write(answer(&m["id"], "next")).await;
        };
        let (r, ()) = tokio::join!(child.request(call("next")), next);
        assert_eq!(text(&r), "next");
    }

    #[tokio::test]
    async fn pings_are_answered_and_notifications_forwarded() {
        let (_child, mut fake, outbound) = start();
        fake.write(json!({"jsonrpc": "2.0", "id": "p1", "method": "ping"}))
            .await;
        assert_eq!(
            fake.read().await,
            json!({"jsonrpc": "2.0", "id": "p1", "result": {}})
        );
        fake.write(json!({"jsonrpc": "2.0", "id": 7, "method": "roots/list"}))
            .await;
        assert_eq!(fake.read().await["error"]["code"], -32601);
        fake.write(json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}))
            .await;
        let mut stream = outbound.open_stream().unwrap();
        let note = stream.next().await.unwrap();
        assert!(matches!(
            note,
            JsonRpcMessage::Notification(n)
                if matches!(n.notification, ServerNotification::ToolListChangedNotification(_))
        ));
    }

    #[tokio::test]
    async fn a_child_not_reading_its_stdin_makes_writers_wait_within_the_bound() {
        let (child, _fake, _) = start();
        let line = vec![b' '; 64 * 1024];
        let mut written = 0;
        loop {
            let write = child.shared.stdin.write(&line);
            match tokio::time::timeout(Duration::from_millis(100), write).await {
                Ok(result) => result.unwrap(),
                Err(_) => break,
            }
            written += line.len();
            assert!(
                written <= MAX_QUEUED + 1024 * 1024,
                "the queue grew past its bound"
            );
        }
        assert!(child.shared.stdin.0.inner.lock().bytes.len() <= MAX_QUEUED);
    }
}
