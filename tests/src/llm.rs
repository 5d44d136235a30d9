//! Fake OpenAI and Anthropic APIs speaking their real wire formats: JSON bodies, SSE event
//! sequences with usage, and each provider's error bodies (chat completions, Responses and
//! embeddings; Messages and token counting). They record what they received
//! and can be told to fail, to be slow, to answer garbage or to break a stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OpenAi,
    Anthropic,
    /// Google AI Studio's OpenAI-compatible API (`/v1beta/openai/...`, bearer key, Google's
    /// error objects).
    Gemini,
    /// Azure OpenAI (`/openai/v1/...`, or `/openai/deployments/{name}/...?api-version=`;
    /// the key in `api-key`).
    Azure,
    /// Vertex AI: the OpenAI-compatible endpoint (`google/...` models) and Anthropic models'
    /// `rawPredict` / `streamRawPredict` / `count-tokens:rawPredict` (body with
    /// `anthropic_version`, no `model`); Google access tokens, Google's error objects.
    Vertex,
}

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

/// Behaviour switches, changeable while the fake runs.
#[derive(Default)]
pub struct Knobs {
    /// Answer every request with this status and the provider's error body (0 = off).
    pub fail_status: AtomicU16,
    pub delay_ms: AtomicU64,
    /// Answer 200 with a body that is not JSON.
    pub garbage: AtomicUsize,
    /// Close streams after this many events (0 = never).
    pub break_stream_after: AtomicUsize,
    /// Hold an OpenAI stream's usage chunk back this long (0 = no pause).
    pub hold_usage_ms: AtomicU64,
    /// Keep no record of requests (benchmarks send millions).
    pub forget: AtomicBool,
    /// Send stream events back to back (else 5 ms apart, as a model would trickle them).
    pub unpaced: AtomicBool,
}

struct Inner {
    kind: Kind,
    key: Option<String>,
    /// Bearer tokens from a fake token endpoint, accepted instead of `key` while they live.
    tokens: Option<crate::cloud::TokenBook>,
    seen: Mutex<Vec<Seen>>,
    knobs: Knobs,
    /// TCP connections accepted so far.
    connections: AtomicUsize,
}

pub struct FakeLlm {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    _server: crate::Serving,
}

impl FakeLlm {
    /// Starts on a free port; with `key`, requests with another key get the provider's 401.
    pub async fn start(kind: Kind, key: Option<&str>) -> FakeLlm {
        Self::start_on("127.0.0.1:0", kind, key).await
    }

    /// Starts on a free port, accepting only the live bearer tokens of `tokens`.
    pub async fn start_with_tokens(kind: Kind, tokens: crate::cloud::TokenBook) -> FakeLlm {
        Self::serve("127.0.0.1:0", kind, None, Some(tokens)).await
    }

    pub async fn start_on(addr: &str, kind: Kind, key: Option<&str>) -> FakeLlm {
        Self::serve(addr, kind, key, None).await
    }

    async fn serve(
        addr: &str,
        kind: Kind,
        key: Option<&str>,
        tokens: Option<crate::cloud::TokenBook>,
    ) -> FakeLlm {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            kind,
            key: key.map(str::to_string),
            tokens,
            seen: Mutex::new(Vec::new()),
            knobs: Knobs::default(),
            connections: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let counted = {
            use axum::serve::ListenerExt;
            let inner = inner.clone();
            crate::no_delay(listener).tap_io(move |_| {
                inner.connections.fetch_add(1, Ordering::Relaxed);
            })
        };
        let server = crate::serve(counted, app);
        FakeLlm {
            addr,
            inner,
            _server: server,
        }
    }

    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().clone()
    }

    pub fn knobs(&self) -> &Knobs {
        &self.inner.knobs
    }

    /// TCP connections the fake has accepted.
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::Relaxed)
    }
}

/// Words of a prompt's texts: the fakes' token count.
pub(crate) fn words(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.split_whitespace().count() as u64,
        Value::Array(a) => a.iter().map(words).sum(),
        Value::Object(o) => o
            .iter()
            .filter(|(k, _)| *k == "text" || *k == "content")
            .map(|(_, v)| words(v))
            .sum(),
        _ => 0,
    }
}

fn last_user_text(messages: &Value) -> String {
    let last = messages
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"));
    match last.map(|m| &m["content"]) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p["text"].as_str().or_else(|| p["content"].as_str()))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Anthropic's rule for tool results: each answers a `tool_use` of the message just before.
fn unanswerable_tool_result(messages: &Value) -> Option<String> {
    let messages = messages.as_array()?;
    for (i, m) in messages.iter().enumerate() {
        let results = m["content"].as_array().into_iter().flatten();
        for result in results.filter(|b| b["type"] == "tool_result") {
            let id = &result["tool_use_id"];
            let asked = i
                .checked_sub(1)
                .and_then(|p| messages[p]["content"].as_array())
                .is_some_and(|blocks| {
                    blocks
                        .iter()
                        .any(|b| b["type"] == "tool_use" && &b["id"] == id)
                });
            if !asked {
                return Some(format!(
                    "messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                ));
            }
        }
    }
    None
}

/// Google's error object (`google.rpc.Status` in JSON).
fn google_error(status: StatusCode, message: &str) -> Value {
    let google_status = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    json!({"error": {"code": status.as_u16(), "message": message, "status": google_status}})
}

fn error(kind: Kind, status: StatusCode, message: &str) -> Response {
    let body = match kind {
        Kind::Azure => {
            json!({"error": {"code": status.as_u16().to_string(), "message": message}})
        }
        Kind::OpenAi => {
            json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})
        }
        Kind::Gemini | Kind::Vertex => google_error(status, message),
        Kind::Anthropic => {
            let t = match status.as_u16() {
                401 => "authentication_error",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                400 => "invalid_request_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": t, "message": message}})
        }
    };
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".into(), |p| p.to_string());
    let k = &inner.knobs;
    if !k.forget.load(Ordering::Relaxed) {
        inner.seen.lock().push(Seen {
            path: path.clone(),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
    }
    let delay = k.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let kind = inner.kind;
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let bearer =
        header("authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_string));
    if let Some(tokens) = &inner.tokens
        && !bearer.as_deref().is_some_and(|t| tokens.valid(t))
    {
        let msg = match kind {
            Kind::Azure => {
                "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired."
            }
            _ => {
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."
            }
        };
        return error(kind, StatusCode::UNAUTHORIZED, msg);
    }
    let presented = match kind {
        Kind::OpenAi | Kind::Gemini | Kind::Vertex => bearer,
        Kind::Anthropic => header("x-api-key"),
        Kind::Azure => header("api-key"),
    };
    if let Some(key) = &inner.key
        && presented.as_deref() != Some(key.as_str())
    {
        let msg = match kind {
            Kind::OpenAi => "Incorrect API key provided",
            Kind::Anthropic => "invalid x-api-key",
            Kind::Gemini => "API key not valid. Please pass a valid API key.",
            Kind::Azure => "Access denied due to invalid subscription key or wrong API endpoint.",
            Kind::Vertex => "Request had invalid authentication credentials.",
        };
        return error(kind, StatusCode::UNAUTHORIZED, msg);
    }
    let fail = k.fail_status.load(Ordering::Relaxed);
    if fail != 0 && kind == Kind::Vertex && path.contains("/endpoints/openapi/") {
        return vertex_openapi_error(
            StatusCode::from_u16(fail).unwrap(),
            "the fake was told to fail",
        );
    }
    if fail != 0 {
        return error(
            kind,
            StatusCode::from_u16(fail).unwrap(),
            "the fake was told to fail",
        );
    }
    if k.garbage.load(Ordering::Relaxed) != 0 {
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            "<html>not json</html>",
        )
            .into_response();
    }
    match (kind, parts.uri.path()) {
        (Kind::OpenAi | Kind::Anthropic, "/v1/models")
        | (Kind::Gemini, "/v1beta/openai/models") => {
            let data = json!({"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}]});
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                data.to_string(),
            )
                .into_response()
        }
        (Kind::OpenAi, "/v1/chat/completions") => openai(&body, k),
        (Kind::OpenAi, "/v1/embeddings") => embeddings(&body),
        (Kind::OpenAi, "/v1/responses") => responses(&body, k),
        (Kind::Gemini, "/v1beta/openai/chat/completions") => openai(&body, k),
        (Kind::Gemini, "/v1beta/openai/embeddings") => embeddings(&body),
        (Kind::Azure, "/openai/v1/chat/completions") => openai(&body, k),
        (Kind::Azure, p)
            if p.starts_with("/openai/deployments/") && p.ends_with("/chat/completions") =>
        {
            match parts
                .uri
                .query()
                .and_then(|q| q.strip_prefix("api-version="))
            {
                Some(_) => openai(&body, k),
                None => error(kind, StatusCode::NOT_FOUND, "api-version is required"),
            }
        }
        (Kind::Anthropic, "/v1/messages" | "/v1/messages/count_tokens")
            if header("anthropic-version").is_none() =>
        {
            error(
                kind,
                StatusCode::BAD_REQUEST,
                "anthropic-version: header is required",
            )
        }
        (Kind::Anthropic, "/v1/messages") => anthropic(&body, k),
        (Kind::Anthropic, "/v1/messages/count_tokens") => count_tokens(&body),
        (Kind::Vertex, p) => vertex(p, &body, k),
        _ => error(kind, StatusCode::NOT_FOUND, &format!("no route for {path}")),
    }
}

/// Vertex's OpenAI-compatible endpoint wraps Google's error object in an array.
fn vertex_openapi_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!([google_error(status, message)]).to_string(),
    )
        .into_response()
}

/// Vertex AI's paths under `/v1/projects/{project}/locations/{location}/`.
fn vertex(path: &str, body: &Value, k: &Knobs) -> Response {
    let op = path
        .strip_prefix("/v1/projects/")
        .and_then(|r| r.split_once("/locations/"))
        .and_then(|(_, r)| r.split_once('/'))
        .map_or("", |(_, op)| op);
    if op == "endpoints/openapi/chat/completions" {
        // Gemini models are named with their publisher there (`google/gemini-2.5-flash`).
        if !body["model"].as_str().is_some_and(|m| m.contains('/')) {
            return vertex_openapi_error(
                StatusCode::BAD_REQUEST,
                "Invalid model: the model must be of the form publisher/model",
            );
        }
        return openai(body, k);
    }
    let Some((model, method)) = op
        .strip_prefix("publishers/anthropic/models/")
        .and_then(|m| m.split_once(':'))
    else {
        return error(
            Kind::Vertex,
            StatusCode::NOT_FOUND,
            &format!("no route for {path}"),
        );
    };
    let refuse = |m: &str| error(Kind::Anthropic, StatusCode::BAD_REQUEST, m);
    if body["anthropic_version"] != "vertex-2023-10-16" {
        return refuse("anthropic_version: Input should be 'vertex-2023-10-16'");
    }
    let streaming = body["stream"] == true;
    match method {
        "rawPredict" if model == "count-tokens" => count_tokens(body),
        _ if body.get("model").is_some() => refuse("model: Extra inputs are not permitted"),
        "rawPredict" if streaming => refuse("stream: use streamRawPredict"),
        "streamRawPredict" if !streaming => refuse("stream: streamRawPredict streams"),
        "rawPredict" | "streamRawPredict" => {
            let mut body = body.clone();
            body["model"] = json!(model.replace('@', "-"));
            anthropic(&body, k)
        }
        _ => error(
            Kind::Vertex,
            StatusCode::NOT_FOUND,
            &format!("no method {method}"),
        ),
    }
}

/// An SSE answer of `frames`, 5 ms apart, with `pause` more before the frame at its index.
fn sse(frames: Vec<String>, k: &Knobs, pause: Option<(usize, Duration)>) -> Response {
    let break_after = k.break_stream_after.load(Ordering::Relaxed);
    let gap = if k.unpaced.load(Ordering::Relaxed) {
        Duration::ZERO
    } else {
        Duration::from_millis(5)
    };
    let limit = if break_after == 0 {
        frames.len()
    } else {
        break_after.min(frames.len())
    };
    let broken = limit < frames.len();
    let stream = futures_util::stream::iter(frames.into_iter().take(limit).enumerate()).then(
        move |(i, f)| async move {
            if i > 0 && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            if let Some((at, pause)) = pause
                && at == i
            {
                tokio::time::sleep(pause).await;
            }
            Ok::<_, std::io::Error>(Bytes::from(f))
        },
    );
    let tail = futures_util::stream::once(async move {
        if broken {
            Err(std::io::Error::other("stream broken by the test"))
        } else {
            Ok(Bytes::new())
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream.chain(tail)))
        .unwrap()
}

fn openai(body: &Value, k: &Knobs) -> Response {
    let Some(model) = body["model"].as_str() else {
        return error(
            Kind::OpenAi,
            StatusCode::BAD_REQUEST,
            "you must provide a model parameter",
        );
    };
    if !body["messages"].is_array() {
        return error(
            Kind::OpenAi,
            StatusCode::BAD_REQUEST,
            "'messages' is a required property",
        );
    }
    let model = format!("{model}-2025-08-07");
    let answer = format!("openai says: {}", last_user_text(&body["messages"]));
    let input = words(&body["messages"]);
    let output = answer.split_whitespace().count() as u64;
    let tool = body["tools"][0]["function"]["name"]
        .as_str()
        .map(str::to_string);
    let finish = if tool.is_some() { "tool_calls" } else { "stop" };
    if body["stream"] == true {
        let chunk = |delta: Value, finish: Value| {
            format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            )
        };
        let mut frames = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        match &tool {
            Some(name) => {
                frames.push(chunk(json!({"tool_calls": [{"index": 0, "id": "call_fake", "type": "function", "function": {"name": name, "arguments": ""}}]}), Value::Null));
                frames.push(chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\":\"x\"}"}}]}), Value::Null));
            }
            None => {
                for w in answer.split_inclusive(' ') {
                    frames.push(chunk(json!({"content": w}), Value::Null));
                }
            }
        }
        frames.push(chunk(json!({}), json!(finish)));
        let hold = k.hold_usage_ms.load(Ordering::Relaxed);
        let pause = (hold > 0).then(|| (frames.len(), Duration::from_millis(hold)));
        if body["stream_options"]["include_usage"] == true {
            frames.push(format!("data: {}\n\n", json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": [], "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output}})));
        }
        frames.push("data: [DONE]\n\n".into());
        return sse(frames, k, pause);
    }
    let mut message = json!({"role": "assistant", "content": answer, "refusal": null});
    if let Some(name) = &tool {
        message = json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_fake", "type": "function", "function": {"name": name, "arguments": "{\"q\":\"x\"}"}}]});
    }
    let resp = json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output},
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        resp.to_string(),
    )
        .into_response()
}

/// OpenAI embeddings: one vector per input, as floats or (`encoding_format: base64`, the
/// Python SDK's default) little-endian f32 bytes in base64; usage counts the input's words.
fn embeddings(body: &Value) -> Response {
    use base64::Engine as _;
    let Some(model) = body["model"].as_str() else {
        return error(
            Kind::OpenAi,
            StatusCode::BAD_REQUEST,
            "you must provide a model parameter",
        );
    };
    let count = body["input"].as_array().map_or(1, Vec::len);
    let vector = [0.0f32, 1.0, 0.5];
    let embedding = if body["encoding_format"] == "base64" {
        let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
        json!(base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        json!(vector)
    };
    let data: Vec<Value> = (0..count)
        .map(|i| json!({"object": "embedding", "index": i, "embedding": embedding}))
        .collect();
    let input = words(&body["input"]);
    let resp = json!({
        "object": "list", "model": model, "data": data,
        "usage": {"prompt_tokens": input, "total_tokens": input},
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        resp.to_string(),
    )
        .into_response()
}

/// The OpenAI Responses API: one text message answering the last user input (a string or
/// a list of messages), or its SSE events from `response.created` to `response.completed`.
fn responses(body: &Value, k: &Knobs) -> Response {
    let Some(model) = body["model"].as_str() else {
        return error(
            Kind::OpenAi,
            StatusCode::BAD_REQUEST,
            "you must provide a model parameter",
        );
    };
    let model = format!("{model}-2025-04-14");
    let said = match &body["input"] {
        Value::String(s) => s.clone(),
        messages => last_user_text(messages),
    };
    let answer = format!("openai says: {said}");
    let input = words(&body["input"]) + words(&body["instructions"]);
    let output = answer.split_whitespace().count() as u64;
    let item = |text: &str, status: &str| {
        json!({"type": "message", "id": "msg_fake", "status": status, "role": "assistant",
            "content": if status == "completed" { json!([{"type": "output_text", "text": text, "annotations": []}]) } else { json!([]) }})
    };
    let response = |status: &str, output_items: Value, usage: Value| {
        json!({
            "id": "resp_fake", "object": "response", "created_at": 1_700_000_000, "status": status,
            "error": null, "incomplete_details": null, "instructions": body["instructions"],
            "max_output_tokens": body["max_output_tokens"], "model": model, "output": output_items,
            "parallel_tool_calls": true, "previous_response_id": body["previous_response_id"],
            "reasoning": {"effort": null, "summary": null}, "store": true, "temperature": 1.0,
            "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
            "truncation": "disabled", "usage": usage, "user": null, "metadata": {},
        })
    };
    let usage = json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + output});
    let done = response("completed", json!([item(&answer, "completed")]), usage);
    if body["stream"] != true {
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            done.to_string(),
        )
            .into_response();
    }
    let mut events = vec![
        (
            "response.created",
            json!({"response": response("in_progress", json!([]), Value::Null)}),
        ),
        (
            "response.in_progress",
            json!({"response": response("in_progress", json!([]), Value::Null)}),
        ),
        (
            "response.output_item.added",
            json!({"output_index": 0, "item": item("", "in_progress")}),
        ),
        (
            "response.content_part.added",
            json!({"item_id": "msg_fake", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
        ),
    ];
    for w in answer.split_inclusive(' ') {
        events.push((
            "response.output_text.delta",
            json!({"item_id": "msg_fake", "output_index": 0, "content_index": 0, "delta": w, "logprobs": []}),
        ));
    }
    let part = json!({"type": "output_text", "text": answer, "annotations": []});
    events.extend([
        (
            "response.output_text.done",
            json!({"item_id": "msg_fake", "output_index": 0, "content_index": 0, "text": answer, "logprobs": []}),
        ),
        (
            "response.content_part.done",
            json!({"item_id": "msg_fake", "output_index": 0, "content_index": 0, "part": part}),
        ),
        (
            "response.output_item.done",
            json!({"output_index": 0, "item": item(&answer, "completed")}),
        ),
        ("response.completed", json!({"response": done})),
    ]);
    let frames = events
        .into_iter()
        .enumerate()
        .map(|(i, (name, mut data))| {
            data["type"] = json!(name);
            data["sequence_number"] = json!(i);
            format!("event: {name}\ndata: {data}\n\n")
        })
        .collect();
    sse(frames, k, None)
}

/// Anthropic token counting: the words of the messages, system prompt and tools.
fn count_tokens(body: &Value) -> Response {
    if body["model"].as_str().is_none() || !body["messages"].is_array() {
        return error(
            Kind::Anthropic,
            StatusCode::BAD_REQUEST,
            "model and messages: Field required",
        );
    }
    let input = words(&body["messages"]) + words(&body["system"]);
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({"input_tokens": input}).to_string(),
    )
        .into_response()
}

fn anthropic(body: &Value, k: &Knobs) -> Response {
    let Some(model) = body["model"].as_str() else {
        return error(
            Kind::Anthropic,
            StatusCode::BAD_REQUEST,
            "model: Field required",
        );
    };
    if body["max_tokens"].as_u64().is_none() {
        return error(
            Kind::Anthropic,
            StatusCode::BAD_REQUEST,
            "max_tokens: Field required",
        );
    }
    if !body["messages"].is_array() {
        return error(
            Kind::Anthropic,
            StatusCode::BAD_REQUEST,
            "messages: Field required",
        );
    }
    if let Some(why) = unanswerable_tool_result(&body["messages"]) {
        return error(Kind::Anthropic, StatusCode::BAD_REQUEST, &why);
    }
    let model = format!("{model}-20241022");
    let answer = format!("anthropic says: {}", last_user_text(&body["messages"]));
    let input = words(&body["messages"]) + words(&body["system"]);
    let output = answer.split_whitespace().count() as u64;
    // Like a model: a tool offered is called, then its result is answered in text.
    let answering_tool = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_array())
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"));
    let tool = (!answering_tool)
        .then(|| body["tools"][0]["name"].as_str().map(str::to_string))
        .flatten();
    let arguments = tool_arguments(&body["tools"][0]["input_schema"]);
    let stop = if tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    if body["stream"] == true {
        let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
        let mut frames = vec![
            ev(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": input, "output_tokens": 1}}}),
            ),
            ev("ping", json!({"type": "ping"})),
        ];
        match &tool {
            Some(name) => {
                frames.push(ev("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_fake", "name": name, "input": {}}})));
                frames.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": arguments.to_string()}})));
            }
            None => {
                frames.push(ev("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
                for w in answer.split_inclusive(' ') {
                    frames.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})));
                }
            }
        }
        frames.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        frames.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output}})));
        frames.push(ev("message_stop", json!({"type": "message_stop"})));
        return sse(frames, k, None);
    }
    let content = match &tool {
        Some(name) => {
            json!([{"type": "tool_use", "id": "toolu_fake", "name": name, "input": arguments}])
        }
        None => json!([{"type": "text", "text": answer}]),
    };
    let resp = json!({
        "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": input, "output_tokens": output},
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        resp.to_string(),
    )
        .into_response()
}

/// A tool call's input: `"x"` for each required property of the tool's schema, else `q`.
fn tool_arguments(schema: &Value) -> Value {
    let required: serde_json::Map<String, Value> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|name| (name.to_string(), json!("x")))
        .collect();
    if required.is_empty() {
        json!({"q": "x"})
    } else {
        Value::Object(required)
    }
}

/// The words the fakes count as tokens, for tests that check usage.
pub fn token_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}
