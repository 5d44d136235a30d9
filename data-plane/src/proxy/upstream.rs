//! Phases 6-8 for `host` backends: backend selection, the upstream call with timeouts and
//! retries. The client and the attempt (`send_to`) are shared with LLM backends.

use std::error::Error as _;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::Rng;

use super::body::{BoxBody, full};
use super::error::ProxyError;
use crate::runtime::{CompiledBackend, CompiledRoute, Target};
use crate::telemetry::record::RequestRecord;

/// Bodies up to this size are buffered so a retry can send them again.
pub const MAX_RETRY_BODY: u64 = 64 * 1024;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, BoxBody>;

/// A pooled HTTP/1.1 client shared by all routes: plain HTTP, or TLS (rustls, webpki roots)
/// for `https` URIs such as the default LLM provider endpoints.
pub fn client() -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .expect("ring supports the default TLS versions")
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https)
}

/// The request body as the upstream gets it: streamed once, or buffered for retries.
pub enum OutBody {
    Stream(BoxBody),
    Replayable(Bytes),
}

/// Picks a backend by weight among those `accept` allows.
pub fn pick_backend(
    route: &CompiledRoute,
    accept: impl Fn(&CompiledBackend) -> bool,
) -> Option<usize> {
    let total: u32 = route
        .backends
        .iter()
        .filter(|b| accept(b))
        .map(|b| b.weight)
        .sum();
    let mut ticket = if total == 0 {
        0
    } else {
        rand::rng().random_range(0..total)
    };
    for (i, b) in route.backends.iter().enumerate().filter(|(_, b)| accept(b)) {
        if ticket < b.weight || total == 0 {
            return Some(i);
        }
        ticket -= b.weight;
    }
    None
}

/// Headers that describe one connection and must not be forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

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

/// Per-attempt limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub backend_timeout: Option<Duration>,
    pub max_body_size: u64,
}

/// One upstream attempt with its timeout; errors are classified for status and retries.
/// Each attempt is timed (for the overhead metric) and traced as a client span.
pub async fn send_to(
    client: &HttpClient,
    upstream: &str,
    mut req: Request<BoxBody>,
    limits: Limits,
    record: &RequestRecord,
) -> Result<Response<Incoming>, ProxyError> {
    let method = req.method().clone();
    let span = record
        .trace
        .as_ref()
        .map(|t| t.attempt(&method, upstream, req.headers_mut()));
    #[expect(
        clippy::disallowed_methods,
        reason = "an upstream call's duration is wall time"
    )]
    let started = std::time::Instant::now();
    let call = client.request(req);
    let result = match limits.backend_timeout {
        Some(t) => match tokio::time::timeout(t, call).await {
            Ok(r) => r.map_err(|e| classify(upstream, e, limits.max_body_size)),
            Err(_) => Err(ProxyError::UpstreamTimeout {
                authority: upstream.to_string(),
                timeout: t,
            }),
        },
        None => call
            .await
            .map_err(|e| classify(upstream, e, limits.max_body_size)),
    };
    record.add_upstream(started.elapsed());
    if let Some(span) = span {
        span.end(match &result {
            Ok(resp) => Ok(Some(resp.status().as_u16())),
            Err(e) => Err(e.to_string()),
        });
    }
    result
}

fn classify(authority: &str, e: hyper_util::client::legacy::Error, max_body: u64) -> ProxyError {
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return ProxyError::BodyTooLarge(max_body);
        }
        source = s.source();
    }
    let reason = root_cause(&e);
    if e.is_connect() {
        ProxyError::UpstreamConnect {
            authority: authority.to_string(),
            reason,
        }
    } else {
        ProxyError::UpstreamProtocol {
            authority: authority.to_string(),
            reason,
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Runs the attempts a route's retry policy allows over its `host` backends; a streamed body
/// gets exactly one. Returns the index of the backend that answered.
pub async fn call_with_retries(
    client: &HttpClient,
    route: &CompiledRoute,
    parts: &http::request::Parts,
    body: OutBody,
    limits: Limits,
    record: &RequestRecord,
    on_retry: impl Fn(usize),
) -> Result<(usize, Response<Incoming>), ProxyError> {
    let retry = match &body {
        OutBody::Replayable(_) => route.policies.retry.as_ref(),
        OutBody::Stream(_) => None,
    };
    let attempts = retry.map_or(1, |r| r.attempts);
    let (bytes, mut stream) = match body {
        OutBody::Replayable(b) => (Some(b), None),
        OutBody::Stream(s) => (None, Some(s)),
    };
    let mut attempt = 0;
    loop {
        let index = pick_backend(route, |b| matches!(b.target, Target::Host(_)))
            .ok_or_else(|| ProxyError::NoBackend(route.name.to_string()))?;
        let Target::Host(authority) = &route.backends[index].target else {
            return Err(ProxyError::NoBackend(route.name.to_string()));
        };
        let body = match (&bytes, stream.take()) {
            (Some(b), _) => full(b.clone()),
            (None, Some(s)) => s,
            (None, None) => return Err(ProxyError::NoBackend(route.name.to_string())),
        };
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = format!("http://{authority}{pq}")
            .parse()
            .map_err(|e| ProxyError::BadRequest(format!("cannot build the upstream URI: {e}")))?;
        let mut req = Request::new(body);
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = parts.headers.clone();
        if attempt > 0 {
            req.headers_mut()
                .insert("x-retry-attempt", HeaderValue::from(attempt));
        }
        let last = attempt + 1 >= attempts;
        match send_to(client, authority, req, limits, record).await {
            Ok(resp)
                if !last && retry.is_some_and(|r| r.codes.contains(&resp.status().as_u16())) => {}
            Err(e) if !last && e.is_retryable() => {}
            Ok(resp) => return Ok((index, resp)),
            Err(e) => return Err(e),
        }
        on_retry(index);
        if let Some(backoff) = retry.and_then(|r| r.backoff) {
            tokio::time::sleep(backoff).await;
        }
        attempt += 1;
    }
}
