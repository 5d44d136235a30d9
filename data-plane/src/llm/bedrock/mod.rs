//! The `bedrock` provider, an adapter around Anthropic Messages: the gateway's Anthropic request
//! becomes a Converse request (signed with SigV4), and Bedrock's answers, streams and errors
//! become Anthropic ones before the existing translation runs.

pub mod converse;
pub mod events;
pub mod sign;

use std::collections::VecDeque;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyDataStream, BodyExt, StreamBody};
use hyper::body::Frame;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use tollgate_shared::config::model::{AiProvider, AwsAuth, Bedrock};

use super::translate::{anthropic_error, anthropic_error_type};
use crate::http::body::{BoxBody, BoxError, full};
use crate::http::error::ProxyError;

/// What a model id keeps unescaped in a path: RFC 3986's unreserved characters.
const MODEL_ID: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `https://bedrock-runtime.{region}.amazonaws.com`.
pub fn base_url(bedrock: &Bedrock) -> String {
    format!("https://bedrock-runtime.{}.amazonaws.com", bedrock.region)
}

/// The Converse path and body for an Anthropic Messages request to `model`.
pub fn converse_request(
    provider: &AiProvider,
    bedrock: &Bedrock,
    messages_request: &[u8],
    model: &str,
    streaming: bool,
) -> Result<(String, Vec<u8>), ProxyError> {
    let body = converse::request(messages_request, bedrock)
        .map_err(|e| ProxyError::BadRequest(format!("invalid LLM request for Bedrock: {e}")))?;
    let path = match &provider.path_override {
        Some(o) => o.clone(),
        None => {
            let prefix = provider.path_prefix.as_deref().unwrap_or_default();
            let operation = if streaming {
                "converse-stream"
            } else {
                "converse"
            };
            let model = utf8_percent_encode(model, MODEL_ID);
            format!("{}/model/{model}/{operation}", prefix.trim_end_matches('/'))
        }
    };
    Ok((path, body))
}

/// Signs an attempt's request with the provider's keys, for `backendAuth.aws`'s region (else
/// the provider's).
pub fn sign_request<B>(
    req: &mut Request<B>,
    body: &[u8],
    auth: &AwsAuth,
    provider: &AiProvider,
) -> Result<(), ProxyError> {
    let keys = sign::credentials(auth).map_err(|fix| ProxyError::ProviderKeyMissing {
        provider: provider.name.clone(),
        fix,
    })?;
    let region = auth
        .region
        .as_deref()
        .or(provider.bedrock.as_ref().map(|b| b.region.as_str()))
        .unwrap_or_default();
    let now = SystemTime::now();
    // The client's own credentials stay here.
    req.headers_mut().remove("x-api-key");
    sign::sign(req, body, &keys, region, now)
        .map_err(|e| ProxyError::BadRequest(format!("cannot sign the Bedrock request: {e}")))
}

/// Bedrock's answer in Anthropic's form: an error body, a message, or a stream of events.
pub async fn to_anthropic(
    resp: Response<BoxBody>,
    model: &str,
    provider: &str,
) -> Result<Response<BoxBody>, ProxyError> {
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let id = parts
        .headers
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| "msg_bedrock".to_string(), |r| format!("msg_{r}"));
    let event_stream = parts.headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .starts_with(b"application/vnd.amazon.eventstream")
    });
    if parts.status.is_success() && event_stream {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        let events = anthropic_events(body, events::ToAnthropic::new(id, model.to_string()));
        return Ok(Response::from_parts(parts, events));
    }
    let bytes = super::read_all(body, provider).await?;
    let out = if parts.status.is_success() {
        converse::response(&bytes, model, &id).map_err(|e| ProxyError::UpstreamProtocol {
            backend: provider.to_string(),
            reason: format!("not a valid Converse answer: {e}"),
        })?
    } else {
        error(&parts.headers, parts.status.as_u16(), &bytes)
    };
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(Response::from_parts(parts, full(out.to_string())))
}

/// An AWS error (`{"message": ...}`, its type in `x-amzn-ErrorType`) as an Anthropic error.
fn error(headers: &http::HeaderMap, status: u16, body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let message = v
        .get("message")
        .or_else(|| v.get("Message"))
        .and_then(Value::as_str)
        .map_or_else(
            || String::from_utf8_lossy(body).trim().to_string(),
            str::to_string,
        );
    // `ThrottlingException:http://internal.amazon.com/coral/...`
    let kind = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.split(':').next())
        .filter(|t| !t.is_empty());
    let message = match kind {
        Some(kind) => format!("{kind}: {message}"),
        None => message,
    };
    anthropic_error(&message, anthropic_error_type(status))
}

/// The event-stream body as Anthropic SSE: each chunk's complete frames leave together; an
/// exception, a bad frame or a cut stream ends it with an error the stream translator turns
/// into the client's error frame.
fn anthropic_events(body: BoxBody, translator: events::ToAnthropic) -> BoxBody {
    struct State {
        data: BodyDataStream<BoxBody>,
        frames: events::Frames,
        translator: events::ToAnthropic,
        queue: VecDeque<Result<Bytes, BoxError>>,
        ended: bool,
    }
    impl State {
        fn drain(&mut self) {
            let mut out = Vec::new();
            let result = loop {
                match self.frames.next_message() {
                    Ok(Some(m)) => {
                        if let Err(e) = self.translator.message(&m, &mut out) {
                            break Err(e);
                        }
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            if !out.is_empty() {
                self.queue.push_back(Ok(Bytes::from(out)));
            }
            if let Err(e) = result {
                self.fail(e);
            }
        }

        fn fail(&mut self, message: String) {
            self.queue.push_back(Err(message.into()));
            self.ended = true;
        }
    }
    let state = State {
        data: BodyDataStream::new(body),
        frames: events::Frames::default(),
        translator,
        queue: VecDeque::new(),
        ended: false,
    };
    let chunks = futures_util::stream::unfold(state, |mut s| async move {
        while s.queue.is_empty() && !s.ended {
            match s.data.next().await {
                Some(Ok(chunk)) => {
                    s.frames.push(&chunk);
                    s.drain();
                }
                Some(Err(e)) => s.fail(e.to_string()),
                None => {
                    let mut out = Vec::new();
                    let end = match s.frames.pending() {
                        0 => s.translator.end(&mut out),
                        n => Err(format!("the event stream ended inside a frame ({n} bytes)")),
                    };
                    if !out.is_empty() {
                        s.queue.push_back(Ok(Bytes::from(out)));
                    }
                    match end {
                        Ok(()) => s.ended = true,
                        Err(e) => s.fail(e),
                    }
                }
            }
        }
        let next = s.queue.pop_front()?;
        Some((next.map(Frame::data), s))
    });
    BodyExt::boxed_unsync(StreamBody::new(chunks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_errors_become_anthropic_errors() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-amzn-errortype",
            HeaderValue::from_static("ThrottlingException:http://internal.amazon.com/coral/"),
        );
        let e = error(&headers, 429, br#"{"message":"Too many requests"}"#);
        assert_eq!(e["error"]["type"], "rate_limit_error");
        assert_eq!(
            e["error"]["message"],
            "ThrottlingException: Too many requests"
        );
        let e = error(&http::HeaderMap::new(), 403, br#"{"Message":"denied"}"#);
        assert_eq!(e["error"]["type"], "permission_error");
        assert_eq!(e["error"]["message"], "denied");
    }

    #[test]
    fn model_ids_are_escaped_in_paths() {
        let provider = AiProvider::named("b", tollgate_shared::config::model::Provider::Bedrock);
        let bedrock = Bedrock {
            region: "us-east-1".into(),
            guardrail_identifier: None,
            guardrail_version: None,
        };
        let body = br#"{"messages":[]}"#;
        let (path, _) = converse_request(
            &provider,
            &bedrock,
            body,
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            true,
        )
        .unwrap();
        assert_eq!(
            path,
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
        );
        assert_eq!(
            base_url(&bedrock),
            "https://bedrock-runtime.us-east-1.amazonaws.com"
        );
    }
}
