//! Reading one client JSON-RPC message so that a hostile body costs little: its limit is
//! known before a byte is read, its shape is checked without building a tree (rmcp's parse
//! buffers the whole message as trees first), and the bytes held at once are capped.

use http::{HeaderMap, header};
use rmcp::model::{
    CallToolRequest, ClientJsonRpcMessage, ClientRequest, JsonRpcMessage, JsonRpcRequest,
};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
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

/// One JSON-RPC message. Its top level is read first, allocating nothing: a body
/// that is not one object is refused by its shape before rmcp's parse builds a tree of it.
/// A `tools/call` request is then parsed as that type straight away; anything else, or a
/// `tools/call` that does not parse so, takes rmcp's parse, which tries each message kind
/// and then each request type in turn (`tools/call` is the 14th).
pub fn parse(bytes: &[u8]) -> Result<ClientJsonRpcMessage, ProxyError> {
    let invalid =
        |e: serde_json::Error| ProxyError::BadRequest(format!("invalid JSON-RPC message: {e}"));
    let outline = serde_json::from_slice::<Outline<'_>>(bytes).map_err(invalid)?;
    if outline.is_request()
        && outline.method.map(RawValue::get) == Some("\"tools/call\"")
        && let Ok(call) = serde_json::from_slice::<JsonRpcRequest<CallToolRequest>>(bytes)
    {
        return Ok(JsonRpcMessage::Request(JsonRpcRequest::new(
            call.id,
            ClientRequest::CallToolRequest(call.request),
        )));
    }
    serde_json::from_slice(bytes).map_err(invalid)
}

/// A message's top level: its method, unparsed, and which of rmcp's telling keys it has.
#[derive(Default)]
struct Outline<'a> {
    method: Option<&'a RawValue>,
    id: bool,
    result: bool,
    error: bool,
}

impl Outline<'_> {
    /// rmcp's rule for a request: a method and an id, and neither a result nor an error.
    fn is_request(&self) -> bool {
        self.method.is_some() && self.id && !self.result && !self.error
    }
}

impl<'de> Deserialize<'de> for Outline<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = Outline<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Outline<'de>, A::Error> {
                let mut outline = Outline::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Method => outline.method = Some(map.next_value()?),
                        other => {
                            match other {
                                Key::Id => outline.id = true,
                                Key::Result => outline.result = true,
                                Key::Error => outline.error = true,
                                Key::Method | Key::Other => {}
                            }
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(outline)
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// A top-level key, read without allocating (an escaped key is unescaped by the parser).
enum Key {
    Method,
    Id,
    Result,
    Error,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = Key;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Key, E> {
                Ok(match name {
                    "method" => Key::Method,
                    "id" => Key::Id,
                    "result" => Key::Result,
                    "error" => Key::Error,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(Name)
    }
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
    fn a_tools_call_parses_as_rmcp_parses_it() {
        let bodies: [&[u8]; 9] = [
            br#"{"jsonrpc":"2.0","\u0069d":1,"m\u0065thod":"tools/call","params":{"name":"t"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":3}}}"#,
            br#"{"params":{"_meta":{"progressToken":"p"},"name":"t","arguments":{"x":[1.5,-0,18446744073709551615,"\u00e9"]}},"method":"tools/call","id":"s","jsonrpc":"2.0"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","task":{"ttl":5},"extra":true},"other":{}}"#,
            // Not a CallToolRequest: rmcp reads it as a custom request.
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"t"}}"#,
            br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"t"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        ];
        for body in bodies {
            let ours = parse(body).unwrap();
            let rmcp: ClientJsonRpcMessage = serde_json::from_slice(body).unwrap();
            assert_eq!(format!("{ours:?}"), format!("{rmcp:?}"));
            assert_eq!(
                serde_json::to_string(&ours).unwrap(),
                serde_json::to_string(&rmcp).unwrap()
            );
        }
    }

    /// The parse before the `tools/call` path: the shape as a map of keys, then rmcp's.
    fn two_step_parse(bytes: &[u8]) -> Result<ClientJsonRpcMessage, serde_json::Error> {
        use std::{borrow::Cow, collections::BTreeMap};
        serde_json::from_slice::<BTreeMap<Cow<'_, str>, IgnoredAny>>(bytes)?;
        serde_json::from_slice(bytes)
    }

    #[test]
    fn a_body_refused_before_is_refused_with_the_same_error() {
        for body in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"},"result":{}}"#
                [..],
            br#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"t"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call","params":{"name":"t"}}"#,
            br#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"t"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"},"res\u0075lt":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call",}"#,
            br#"{"id":1} x"#,
            br#" [{"id":1}]"#,
            br#""tools/call""#,
            b"",
        ] {
            let before = two_step_parse(body).unwrap_err();
            let now = parse(body).unwrap_err().to_string();
            assert!(
                now.ends_with(&format!("invalid JSON-RPC message: {before}")),
                "{now} / {before}"
            );
        }
    }

    #[test]
    fn a_request_parses() {
        let msg = parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert!(matches!(msg, rmcp::model::JsonRpcMessage::Request(_)));
    }
}
