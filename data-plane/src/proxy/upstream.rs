//! Phases 6-8 for `host` backends: backend selection, the upstream call with timeouts and
//! retries. Each attempt goes through the shared client (`http::client::send_to`).

use bytes::Bytes;
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use rand::Rng;

use crate::health::{Answer, retry_after};
use crate::http::body::{BoxBody, full};
use crate::http::client::{HttpClient, Limits, send_to};
use crate::http::error::ProxyError;
use crate::http::retry::{self, Attempt};
use crate::runtime::{CompiledBackend, CompiledRoute, Target};
use crate::telemetry::record::RequestRecord;

/// Bodies up to this size are buffered so a retry can send them again.
pub const MAX_RETRY_BODY: u64 = 64 * 1024;

/// The request body as the upstream gets it: streamed once, or buffered for retries.
pub enum OutBody {
    Stream(BoxBody),
    Replayable(Bytes),
}

/// Picks a backend by weight among those `accept` allows, skipping evicted ones unless all
/// of them are.
pub fn pick_backend(
    route: &CompiledRoute,
    accept: impl Fn(&CompiledBackend) -> bool,
) -> Option<usize> {
    pick_by_weight(route, |b| accept(b) && b.available()).or_else(|| pick_by_weight(route, accept))
}

fn pick_by_weight(
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

/// The client a route's `host` backends are called through.
#[derive(Clone, Copy)]
pub struct Via<'a> {
    pub client: &'a HttpClient,
    /// The route's `backendTLS` client: backends are called over `https`.
    pub https: bool,
    /// `urlRewrite.authority: auto`: the backend's authority is sent as `Host`.
    pub backend_host: bool,
}

/// Runs the attempts a route's retry policy allows over its `host` backends; a streamed body
/// gets exactly one. Returns the index of the backend that answered.
pub async fn call_with_retries(
    via: Via<'_>,
    route: &CompiledRoute,
    parts: &http::request::Parts,
    body: OutBody,
    limits: Limits,
    record: &RequestRecord,
    on_retry: impl Fn(usize),
) -> Result<(usize, Response<Incoming>), ProxyError> {
    let (bytes, mut stream, retry) = match body {
        OutBody::Replayable(b) => (Some(b), None, route.policies.retry.as_ref()),
        OutBody::Stream(s) => (None, Some(s), None),
    };
    let policy = retry::Policy {
        retry,
        route: &route.name,
        next: || pick_backend(route, |b| matches!(b.target, Target::Host(_))),
        before_retry: on_retry,
    };
    retry::run(policy, |index, attempt| {
        let body = match (&bytes, stream.take()) {
            (Some(b), _) => Some(full(b.clone())),
            (None, s) => s,
        };
        let req = match (&route.backends[index].target, body) {
            (Target::Host(authority), Some(body)) => {
                upstream_request(authority, via, parts, body, attempt)
            }
            _ => Err(ProxyError::NoBackend(route.name.to_string())),
        };
        let backend = format!("for route {}", route.name);
        let chosen = &route.backends[index];
        async move {
            let (authority, req) = req?;
            let sent = send_to(via.client, authority, &backend, req, limits, record).await;
            let answer = match &sent {
                _ if chosen.health.is_none() => None,
                Ok(resp) => Some(Answer::Status(
                    resp.status().as_u16(),
                    retry_after(resp.headers()),
                )),
                Err(e) if e.is_retryable() => Some(Answer::None),
                Err(_) => None,
            };
            if let Some(out) = answer.and_then(|a| chosen.record(a)) {
                tracing::warn!(backend = %chosen.label, evicted_for = ?out, "backend evicted");
            }
            let resp = sent?;
            Ok(Attempt::Answered(resp.status(), (index, resp)))
        }
    })
    .await
}

/// The request of one attempt to `authority`.
fn upstream_request<'a>(
    authority: &'a str,
    via: Via<'_>,
    parts: &http::request::Parts,
    body: BoxBody,
    attempt: u32,
) -> Result<(&'a str, Request<BoxBody>), ProxyError> {
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let scheme = if via.https { "https" } else { "http" };
    let uri: Uri = format!("{scheme}://{authority}{pq}")
        .parse()
        .map_err(|e| ProxyError::BadRequest(format!("cannot build the upstream URI: {e}")))?;
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = parts.headers.clone();
    if via.backend_host
        && let Ok(host) = http::HeaderValue::from_str(authority)
    {
        req.headers_mut().insert(http::header::HOST, host);
    }
    retry::mark_attempt(req.headers_mut(), attempt);
    Ok((authority, req))
}
