//! HTTP primitives below the pipeline, shared by every backend: body types, the upstream
//! client and its attempts, error mapping, request-body reading and its parse budget, hop-by-hop headers and bounded
//! reading of upstream event streams.

pub mod body;
pub mod budget;
pub mod client;
pub mod error;
pub mod mirror;
pub mod passthrough;
pub mod retry;
pub mod sse;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Limited};

use self::body::BoxError;
use self::error::ProxyError;

/// A downstream request body: hyper's `Incoming` when served, any in-memory body in tests.
pub trait RequestBody:
    http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

impl<B> RequestBody for B where
    B: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

/// The body length a request declares in `Content-Length`, when it is a number.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads a whole request body, at most `max` bytes.
pub async fn read_body(body: impl RequestBody, max: u64) -> Result<Bytes, ProxyError> {
    Limited::new(body, max as usize)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ProxyError::BodyTooLarge(max)
            } else {
                ProxyError::BadRequest(format!("reading the request body failed: {e}"))
            }
        })
}

/// Headers that describe one connection (or authenticate to this proxy) and must not be
/// forwarded.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers, and those the `Connection` header names. Run it before
/// the gateway adds its own headers, so a client cannot name them away.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none, which one pass over the names shows without hashing any; a
    // name listed in `Connection` matters only when `Connection` itself is there.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    // The `Connection` values are cheap handles; the names they list are looked up as they
    // are, not parsed into new header names.
    let mut values = headers.get_all(header::CONNECTION).iter().cloned();
    let first = values.next();
    let more: Vec<HeaderValue> = values.collect();
    for value in first.iter().chain(&more) {
        for name in value.to_str().into_iter().flat_map(|v| v.split(',')) {
            headers.remove(name.trim());
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod hop_by_hop_tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_every_name_the_connection_values_list_are_removed() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Secret ,,"),
            ("connection", "x-other"),
            ("connection", "bad name"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("x-kept", "3"),
            ("te", "trailers"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn a_message_without_hop_by_hop_headers_is_left_whole() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("a"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        let before = headers.clone();
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers, before);
    }
}
