//! Reading one client JSON-RPC message so that a hostile body costs little: its limit is
//! known before a byte is read, its shape is checked without building a tree (rmcp's parse
//! buffers the whole message as trees first), and the bytes held at once are capped.

use http::{HeaderMap, header};
use rmcp::model::ClientJsonRpcMessage;
use serde::de::IgnoredAny;
use std::borrow::Cow;
use std::collections::BTreeMap;
use tokio::sync::OwnedSemaphorePermit;

use crate::http::RequestBody;
use crate::http::budget::ParseBudget;
use crate::http::error::ProxyError;

/// The largest message a client may send without a session: only `initialize` (or a
/// `server/discover` probe) comes without one, and neither is large.
pub const HANDSHAKE_MAX_BODY: u64 = 64 * 1024;

/// How many bytes a message may have, and the setting (or rule) that says so.
#[derive(Clone, Copy)]
pub struct Limit {
    pub bytes: u64,
    pub setting: &'static str,
}

impl Limit {
    /// `config.mcp.maxBodySize` (never above the proxy's `config.maxBodySize`).
    pub fn session(max_body: u64) -> Limit {
        Limit {
            bytes: max_body,
            setting: "config.mcp.maxBodySize",
        }
    }

    /// A message without `Mcp-Session-Id`.
    pub fn handshake(max_body: u64) -> Limit {
        Limit {
            bytes: max_body.min(HANDSHAKE_MAX_BODY),
            setting: "a message without Mcp-Session-Id: only `initialize` comes without one",
        }
    }

    fn exceeded(self) -> ProxyError {
        ProxyError::McpBodyTooLarge {
            limit: self.bytes,
            setting: self.setting,
        }
    }
}

/// 415 unless the body is declared as JSON.
pub fn require_json(headers: &HeaderMap) -> Result<(), ProxyError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if json {
        Ok(())
    } else {
        Err(ProxyError::UnsupportedMediaType(
            "Content-Type must be application/json".into(),
        ))
    }
}

/// How many bytes of large client messages the process holds at once, parsed and being
/// answered (rmcp's layered parse and the call cost ~100 times a message's bytes): past it,
/// large messages wait their turn.
pub const LARGE_MESSAGES_BUDGET: u32 = 2 * 1024 * 1024;
/// A process-wide budget of large message bytes, shared by every MCP route.
pub fn budget() -> ParseBudget {
    ParseBudget::new(LARGE_MESSAGES_BUDGET)
}

/// One client message, with its share of the budget when it is large: hold it until answered.
pub struct Message {
    pub message: ClientJsonRpcMessage,
    pub budget: Option<OwnedSemaphorePermit>,
}

/// Reads and parses one message within `limit` and the process's `budget`; a declared length
/// over `limit` is refused unread.
pub async fn read(
    headers: &HeaderMap,
    body: impl RequestBody,
    limit: Limit,
    budget: &ParseBudget,
) -> Result<Message, ProxyError> {
    if crate::http::declared_length(headers).is_some_and(|len| len > limit.bytes) {
        return Err(limit.exceeded());
    }
    let bytes = crate::http::read_body(body, limit.bytes)
        .await
        .map_err(|e| match e {
            ProxyError::BodyTooLarge(_) => limit.exceeded(),
            other => other,
        })?;
    // Taken once the body is in: a slow upload holds none of the budget.
    let budget = budget.take(bytes.len()).await;
    Ok(Message {
        message: parse(&bytes)?,
        budget,
    })
}

/// One JSON-RPC message: a JSON object (checked first, allocating only its keys), then rmcp's
/// typed message.
pub fn parse(bytes: &[u8]) -> Result<ClientJsonRpcMessage, ProxyError> {
    let invalid =
        |e: serde_json::Error| ProxyError::BadRequest(format!("invalid JSON-RPC message: {e}"));
    serde_json::from_slice::<BTreeMap<Cow<'_, str>, IgnoredAny>>(bytes).map_err(invalid)?;
    serde_json::from_slice(bytes).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_one_object_is_refused_by_its_shape() {
        let err = parse(b"[0,0,0]").unwrap_err().to_string();
        assert!(err.contains("invalid JSON-RPC message"), "{err}");
        assert!(err.contains("expected a map"), "{err}");
    }

    #[test]
    fn a_request_parses() {
        let msg = parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert!(matches!(msg, rmcp::model::JsonRpcMessage::Request(_)));
    }
}
