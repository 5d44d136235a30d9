//! The legacy HTTP+SSE transport served to clients (MCP 2024-11-05): GET opens a session whose
//! first event names the POST endpoint (`?sessionId=`); every answer arrives on that stream, and
//! the session ends when the stream closes.

use std::sync::Arc;

use futures_util::StreamExt;
use http::{Method, Response, StatusCode, request};
use rmcp::model::{ClientRequest, JsonRpcMessage, ServerResult};
use sse_stream::Sse;

use super::message::{self, Limit, Message};
use super::session::TransportKind;
use super::{McpRequest, Sessions, events};
use crate::http::RequestBody;
use crate::http::body::{BoxBody, empty};
use crate::http::error::ProxyError;

/// Requests one legacy SSE session may have in progress (each runs as its own task).
pub const SSE_CALLS: usize = 64;

pub async fn serve(
    call: McpRequest<'_>,
    parts: request::Parts,
    body: impl RequestBody,
) -> Result<Response<BoxBody>, ProxyError> {
    match parts.method {
        Method::GET => open(call, &parts),
        Method::POST => post(call, &parts, body).await,
        _ => Err(ProxyError::MethodNotAllowed("GET, POST")),
    }
}

fn open(call: McpRequest<'_>, parts: &request::Parts) -> Result<Response<BoxBody>, ProxyError> {
    let session = call.sessions.create(&call, TransportKind::Sse)?;
    let stream = session
        .outbound
        .open_stream()
        .ok_or(ProxyError::StreamConflict)?;
    let endpoint = Sse::default().event("endpoint").data(format!(
        "{}?sessionId={}",
        parts.uri.path(),
        session.id
    ));
    let guard = EndOnDrop {
        sessions: call.sessions.clone(),
        id: session.id.clone(),
    };
    let closed = session.closed.clone().cancelled_owned();
    let stopping = call.sessions.stopping.clone().cancelled_owned();
    let messages = stream
        .map(move |m| {
            let _ = &guard;
            events::message(&m)
        })
        .take_until(closed)
        .take_until(stopping);
    Ok(events::response(
        futures_util::stream::iter([endpoint]).chain(messages),
    ))
}

/// A legacy SSE session lives as long as its event stream.
struct EndOnDrop {
    sessions: Arc<Sessions>,
    id: Arc<str>,
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.sessions.retire(&self.id, "its SSE stream closed");
    }
}

async fn post(
    call: McpRequest<'_>,
    parts: &request::Parts,
    body: impl RequestBody,
) -> Result<Response<BoxBody>, ProxyError> {
    let id = parts
        .uri
        .query()
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "sessionId")
                .map(|(_, v)| v.into_owned())
        })
        .ok_or_else(|| ProxyError::BadRequest("missing sessionId query parameter".into()))?;
    let session = call.sessions.get(
        &id,
        &call.observer.route,
        call.observer.record.identity().as_deref(),
    )?;
    let _ = call.observer.session.set(session.log_id.clone());
    message::require_json(&parts.headers)?;
    let limit = Limit::session(call.max_body);
    let budget = &call.sessions.message_budget;
    let Message { message, budget } = message::read(&parts.headers, body, limit, budget).await?;
    let observer = call.observer;
    match message {
        JsonRpcMessage::Request(req) => {
            let permit = session
                .sse_calls
                .clone()
                .try_acquire_owned()
                .map_err(|_| ProxyError::SessionBusy(SSE_CALLS))?;
            tokio::spawn(async move {
                let _permit = permit;
                let _budget = budget;
                let id = req.id.clone();
                let answer = match req.request {
                    ClientRequest::InitializeRequest(init) => {
                        observer.request("initialize", "", None, None);
                        session
                            .initialize(init.params, &observer)
                            .await
                            .map(ServerResult::InitializeResult)
                    }
                    _ => session.answer(req, &observer).await,
                };
                let message = match answer {
                    Ok(result) => JsonRpcMessage::response(result, id),
                    Err(error) => JsonRpcMessage::error(error, Some(id)),
                };
                // A client that stopped reading must not hold this task (and the session) forever.
                tokio::select! {
                    _ = session.outbound.send(message) => {}
                    _ = session.closed.cancelled() => {}
                }
            });
        }
        JsonRpcMessage::Notification(n) => session.notify(n.notification).await,
        JsonRpcMessage::Response(_) | JsonRpcMessage::Error(_) => {}
    }
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::ACCEPTED;
    Ok(resp)
}
