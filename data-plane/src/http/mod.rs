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
use http::header::{self, HeaderMap, HeaderName};
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
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}
