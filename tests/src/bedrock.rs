//! A fake Amazon Bedrock runtime: `POST /model/{modelId}/converse` (JSON) and
//! `/converse-stream` (AWS event-stream frames with CRCs), AWS's error bodies and
//! `x-amzn-ErrorType`. It verifies each request's SigV4 signature itself, recomputing it from
//! the request it received with the keys it was given, and records what it got.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::llm::words;

/// The keys the fake accepts, and the session token it requires (if any).
#[derive(Clone)]
pub struct AwsKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
}

/// A request as the fake saw it (the model id decoded).
#[derive(Debug, Clone)]
pub struct Seen {
    pub model: String,
    pub stream: bool,
    pub headers: HeaderMap,
    pub body: Value,
}

/// Behaviour switches, changeable while the fake runs.
#[derive(Default)]
pub struct Knobs {
    /// Answer with this status and AWS's error for it (0 = off): 429 throttling, 503, 400...
    pub fail_status: AtomicU16,
    /// Streams end with a `throttlingException` frame after their first text delta.
    pub stream_exception: AtomicBool,
    /// Keep no record of requests (benchmarks send millions).
    pub forget: AtomicBool,
}

struct Inner {
    keys: AwsKeys,
    seen: Mutex<Vec<Seen>>,
    knobs: Knobs,
}

pub struct FakeBedrock {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    _server: crate::Serving,
}

/// The text every answer starts with.
pub const ANSWER: &str = "Hello from Bedrock";

impl FakeBedrock {
    pub async fn start(keys: AwsKeys) -> FakeBedrock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            keys,
            seen: Mutex::new(Vec::new()),
            knobs: Knobs::default(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let server = crate::serve(crate::no_delay(listener), app);
        FakeBedrock {
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
}

/// AWS's error answer: `{"message": ...}` and the type in `x-amzn-ErrorType`.
fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut resp = (status, axum::Json(json!({"message": message}))).into_response();
    let header = format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/");
    resp.headers_mut()
        .insert("x-amzn-errortype", header.parse().unwrap());
    resp
}

fn error_for(status: u16) -> Response {
    let (kind, message) = match status {
        429 => (
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ),
        503 => ("ServiceUnavailableException", "Bedrock is unavailable."),
        403 => (
            "AccessDeniedException",
            "You don't have access to the model.",
        ),
        _ => ("ValidationException", "The request is invalid."),
    };
    aws_error(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        kind,
        message,
    )
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    if let Err(rejection) = verify(&inner.keys, &parts, &body) {
        return rejection;
    }
    let path = parts.uri.path();
    let Some((model, operation)) = path
        .strip_prefix("/model/")
        .and_then(|rest| rest.rsplit_once('/'))
    else {
        return aws_error(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "Unknown operation",
        );
    };
    let stream = match operation {
        "converse" => false,
        "converse-stream" => true,
        _ => {
            return aws_error(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "Unknown operation",
            );
        }
    };
    let model = percent_encoding::percent_decode_str(model)
        .decode_utf8_lossy()
        .into_owned();
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error_for(400);
    };
    if !inner.knobs.forget.load(Ordering::Relaxed) {
        inner.seen.lock().push(Seen {
            model,
            stream,
            headers: parts.headers.clone(),
            body: request.clone(),
        });
    }
    let failing = inner.knobs.fail_status.load(Ordering::Relaxed);
    if failing != 0 {
        return error_for(failing);
    }
    if request["messages"].as_array().is_none_or(Vec::is_empty) {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "A conversation must start with a user message.",
        );
    }
    let input = words(&request["messages"]) + words(&request["system"]);
    let tool = wants_tool(&request);
    if stream {
        let exception = inner.knobs.stream_exception.load(Ordering::Relaxed);
        return event_stream(&converse_events(input, tool.as_deref(), exception));
    }
    let (content, stop) = match &tool {
        Some(name) => (
            json!([{"toolUse": {"toolUseId": "tooluse_1", "name": name, "input": {"city": "Paris"}}}]),
            "tool_use",
        ),
        None => (json!([{"text": ANSWER}]), "end_turn"),
    };
    let output = if tool.is_some() { 5 } else { 4 };
    let mut resp = axum::Json(json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": input, "outputTokens": output, "totalTokens": input + output},
        "metrics": {"latencyMs": 12}
    }))
    .into_response();
    resp.headers_mut()
        .insert("x-amzn-requestid", "req-bedrock-1".parse().unwrap());
    resp
}

/// The first tool's name when the request offers tools and has no tool result yet.
fn wants_tool(request: &Value) -> Option<String> {
    let answered = request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["content"].as_array().into_iter().flatten())
        .any(|b| b.get("toolResult").is_some());
    if answered {
        return None;
    }
    request
        .pointer("/toolConfig/tools/0/toolSpec/name")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// ConverseStream's events for an answer: text in two deltas, or a tool call.
fn converse_events(input: u64, tool: Option<&str>, exception: bool) -> Vec<(String, Value)> {
    let event = |name: &str, payload: Value| (name.to_string(), payload);
    let mut out = vec![event("messageStart", json!({"role": "assistant"}))];
    let (first, rest) = ANSWER.split_at(5);
    match tool {
        Some(name) => out.extend([
            event(
                "contentBlockStart",
                json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": name}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"city\":"}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
            ),
        ]),
        None => out.push(event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": first}}),
        )),
    }
    if exception {
        out.push((
            "!throttlingException".into(),
            json!({"message": "Too many tokens, please wait before trying again."}),
        ));
        return out;
    }
    if tool.is_none() {
        out.push(event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": rest}}),
        ));
    }
    let (stop, output) = if tool.is_some() {
        ("tool_use", 5)
    } else {
        ("end_turn", 4)
    };
    out.extend([
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event("messageStop", json!({"stopReason": stop})),
        event(
            "metadata",
            json!({"usage": {"inputTokens": input, "outputTokens": output, "totalTokens": input + output}, "metrics": {"latencyMs": 9}}),
        ),
    ]);
    out
}

/// The events as an `application/vnd.amazon.eventstream` body, one frame per chunk; a name
/// starting with `!` is an exception frame.
fn event_stream(events: &[(String, Value)]) -> Response {
    let frames: Vec<Result<Bytes, std::io::Error>> = events
        .iter()
        .map(|(name, payload)| {
            let (message_type, type_header, name) = match name.strip_prefix('!') {
                Some(exception) => ("exception", ":exception-type", exception),
                None => ("event", ":event-type", name.as_str()),
            };
            let string = |s: &str| HeaderValue::String(s.to_string().into());
            let message = Message::new(Bytes::from(payload.to_string()))
                .add_header(Header::new(":message-type", string(message_type)))
                .add_header(Header::new(type_header, string(name)))
                .add_header(Header::new(":content-type", string("application/json")));
            let mut out = Vec::new();
            aws_smithy_eventstream::frame::write_message_to(&message, &mut out).unwrap();
            Ok(Bytes::from(out))
        })
        .collect();
    let body = Body::from_stream(futures_util::stream::iter(frames));
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        "content-type",
        "application/vnd.amazon.eventstream".parse().unwrap(),
    );
    resp.headers_mut()
        .insert("x-amzn-requestid", "req-bedrock-2".parse().unwrap());
    resp
}

/// What AWS answers a request whose signature does not verify.
fn signature_mismatch() -> Response {
    aws_error(
        StatusCode::FORBIDDEN,
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    )
}

/// Checks the SigV4 `authorization` header: key id, scope (date, region, `bedrock`), time
/// (within 5 minutes), session token, and the signature recomputed from the request as
/// received (its signed headers, path, query and body) with the fake's own keys.
#[expect(clippy::result_large_err, reason = "the error is the answer sent back")]
fn verify(keys: &AwsKeys, parts: &axum::http::request::Parts, body: &[u8]) -> Result<(), Response> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let missing = || {
        aws_error(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        )
    };
    let auth = header("authorization");
    let fields = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(missing)?;
    let field = |name: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_default()
    };
    let (credential, signed, signature) = (
        field("Credential"),
        field("SignedHeaders"),
        field("Signature"),
    );
    let scope: Vec<&str> = credential.split('/').collect();
    let date = header("x-amz-date");
    if scope.len() != 5
        || scope[0] != keys.access_key_id
        || scope[2] != keys.region
        || scope[3] != "bedrock"
        || scope[4] != "aws4_request"
        || !date.starts_with(scope[1])
    {
        return Err(aws_error(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    if let Some(token) = &keys.session_token
        && header("x-amz-security-token") != token
    {
        return Err(aws_error(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    let signed_at = parse_amz_date(date).ok_or_else(signature_mismatch)?;
    let now = SystemTime::now();
    let skew = now
        .duration_since(signed_at)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap_or_default();
    if skew > Duration::from_secs(300) {
        return Err(aws_error(
            StatusCode::FORBIDDEN,
            "InvalidSignatureException",
            "Signature expired",
        ));
    }
    // The headers the client signed, as received; the signer adds the date and token itself.
    let headers: Vec<(&str, &str)> = signed
        .split(';')
        .filter(|h| !matches!(*h, "x-amz-date" | "x-amz-security-token"))
        .map(|h| (h, header(h)))
        .collect();
    let uri = format!(
        "https://{}{}",
        header("host"),
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let identity = Credentials::new(
        &keys.access_key_id,
        &keys.secret_access_key,
        keys.session_token.clone(),
        None,
        "fake",
    )
    .into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(&keys.region)
        .name("bedrock")
        .time(signed_at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| signature_mismatch())?;
    let request = SignableRequest::new(
        parts.method.as_str(),
        uri,
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|_| signature_mismatch())?;
    let expected = aws_sigv4::http_request::sign(request, &params.into())
        .map_err(|_| signature_mismatch())?
        .into_parts()
        .1;
    if expected != signature {
        return Err(signature_mismatch());
    }
    Ok(())
}

/// `20150830T123600Z` as a time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    if s.len() != 16 || !s.is_ascii() {
        return None;
    }
    let n = |range: std::ops::Range<usize>| s.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hh, mm, ss) = (n(9..11)?, n(11..13)?, n(13..15)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_parse() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_440_938_160
        );
        assert!(parse_amz_date("2015-08-30").is_none());
    }
}
