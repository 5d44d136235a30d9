//! The Streamable HTTP transport served to clients: POST carries one JSON-RPC message (answered
//! as one SSE `message` event, or 202 for notifications), GET opens the session's event stream,
//! DELETE ends the session.

use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header, request};
use rmcp::model::{
    ClientRequest, ErrorCode, ErrorData, JsonRpcMessage, RequestId, ServerJsonRpcMessage,
    ServerResult,
};

use super::message::{self, Limit, Message};
use super::session::{HANDSHAKE_VERSIONS, Session, TransportKind};
use super::{McpRequest, events};
use crate::http::RequestBody;
use crate::http::body::{BoxBody, empty};
use crate::http::error::ProxyError;

const SESSION_HEADER: &str = "mcp-session-id";

pub async fn serve(
    call: McpRequest<'_>,
    parts: request::Parts,
    body: impl RequestBody,
) -> Result<Response<BoxBody>, ProxyError> {
    match parts.method {
        Method::POST => post(call, parts, body).await,
        Method::GET => {
            require_accept(&parts.headers, &["text/event-stream"])?;
            let session = session_of(&call, &parts.headers)?;
            let stream = session
                .outbound
                .open_stream()
                .ok_or(ProxyError::StreamConflict)?;
            let closed = session.closed.clone().cancelled_owned();
            let stopping = call.sessions.stopping.clone().cancelled_owned();
            Ok(events::response(
                stream
                    .map(|m| events::message(&m))
                    .take_until(closed)
                    .take_until(stopping),
            ))
        }
        Method::DELETE => {
            let session = session_of(&call, &parts.headers)?;
            call.sessions.remove(&session.id).await;
            Ok(status(StatusCode::OK))
        }
        _ => Err(ProxyError::MethodNotAllowed("GET, POST, DELETE")),
    }
}

async fn post(
    call: McpRequest<'_>,
    parts: request::Parts,
    body: impl RequestBody,
) -> Result<Response<BoxBody>, ProxyError> {
    require_accept(&parts.headers, &["application/json", "text/event-stream"])?;
    message::require_json(&parts.headers)?;
    // The session is checked before the body is read: a stranger's body costs nothing.
    let session = match parts.headers.contains_key(SESSION_HEADER) {
        true => Some(session_of(&call, &parts.headers)?),
        false => None,
    };
    let limit = match session {
        Some(_) => Limit::session(call.max_body),
        None => Limit::handshake(call.max_body),
    };
    let budget = &call.sessions.message_budget;
    // A large message holds its share of the budget until it is answered.
    let Message {
        message,
        budget: _held,
    } = message::read(&parts.headers, body, limit, budget).await?;
    let Some(session) = session else {
        let JsonRpcMessage::Request(req) = message else {
            return Err(missing_session());
        };
        return match req.request {
            ClientRequest::InitializeRequest(init) => {
                let session = call.sessions.create(&call, TransportKind::StreamableHttp)?;
                let _ = call.observer.session.set(session.log_id.clone());
                call.observer.request("initialize", "", None, None);
                let answer = session.initialize(init.params, &call.observer).await;
                let started = answer.is_ok();
                if !started {
                    call.sessions.remove(&session.id).await;
                }
                let mut resp = reply(req.id, answer.map(ServerResult::InitializeResult));
                if started && let Ok(v) = HeaderValue::from_str(&session.id) {
                    resp.headers_mut().insert(SESSION_HEADER, v);
                }
                Ok(resp)
            }
            // The session-less 2026-07-28 revision: clients fall back to `initialize` on any
            // JSON-RPC error to their `server/discover` probe.
            ClientRequest::DiscoverRequest(_) => Ok(reply(
                req.id,
                Err(ErrorData::new(
                    ErrorCode::METHOD_NOT_FOUND,
                    "server/discover is not served: this gateway speaks the initialize handshake \
                     (protocol revisions up to 2025-11-25)",
                    None,
                )),
            )),
            other => Err(ProxyError::BadRequest(format!(
                "`{}` needs an Mcp-Session-Id header: send `initialize` first",
                other.method()
            ))),
        };
    };
    match message {
        JsonRpcMessage::Request(req) => {
            let id = req.id.clone();
            let answer = session.answer(req, &call.observer).await;
            Ok(reply(id, answer))
        }
        JsonRpcMessage::Notification(n) => {
            session.notify(n.notification).await;
            Ok(status(StatusCode::ACCEPTED))
        }
        // Answers to server-to-client requests: the gateway sends none, so there is nothing to
        // match them with.
        JsonRpcMessage::Response(_) | JsonRpcMessage::Error(_) => Ok(status(StatusCode::ACCEPTED)),
    }
}

fn missing_session() -> ProxyError {
    ProxyError::BadRequest("missing Mcp-Session-Id header: send `initialize` first".into())
}

fn session_of(
    call: &McpRequest<'_>,
    headers: &HeaderMap,
) -> Result<std::sync::Arc<Session>, ProxyError> {
    let id = headers
        .get(SESSION_HEADER)
        .ok_or_else(missing_session)?
        .to_str()
        .map_err(|_| ProxyError::BadRequest("invalid Mcp-Session-Id header".into()))?;
    if let Some(version) = headers.get("mcp-protocol-version") {
        let version = version.to_str().unwrap_or("");
        if !HANDSHAKE_VERSIONS.iter().any(|v| v.as_str() == version) {
            let served: Vec<&str> = HANDSHAKE_VERSIONS.iter().map(|v| v.as_str()).collect();
            return Err(ProxyError::BadRequest(format!(
                "unsupported MCP-Protocol-Version `{version}`; this gateway serves {}",
                served.join(", ")
            )));
        }
    }
    let session = call.sessions.get(
        id,
        &call.observer.route,
        call.observer.record.identity().as_deref(),
    )?;
    let _ = call.observer.session.set(session.log_id.clone());
    Ok(session)
}

/// 406 unless `Accept` allows every one of `types` (or says `*/*`).
fn require_accept(headers: &HeaderMap, types: &[&str]) -> Result<(), ProxyError> {
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .collect();
    if accept.contains(&"*/*") || types.iter().all(|t| accept.contains(t)) {
        Ok(())
    } else {
        Err(ProxyError::NotAcceptable(format!(
            "Accept must include {}",
            types.join(" and ")
        )))
    }
}

/// The answer to a POSTed request, as one SSE `message` event.
fn reply(id: RequestId, answer: Result<ServerResult, ErrorData>) -> Response<BoxBody> {
    let message: ServerJsonRpcMessage = match answer {
        Ok(result) => JsonRpcMessage::response(result, id),
        Err(error) => JsonRpcMessage::error(error, Some(id)),
    };
    events::single(&message)
}

fn status(code: StatusCode) -> Response<BoxBody> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = code;
    resp
}
