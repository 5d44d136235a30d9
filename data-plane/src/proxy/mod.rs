//! The request pipeline: named phases in a fixed order (DESIGN §4), one config load per request.
//!
//! path normalisation -> route match -> cors -> jwtAuth -> mcpAuthentication -> apiKey ->
//! basicAuth -> authorization -> MCP origin and host check -> localRateLimit ->
//! directResponse -> requestRedirect -> body limit -> rewrites (path, `Host`, headers) ->
//! backend selection -> a2a (a call's method read) -> requestMirror -> backendAuth (a key, or
//! the caller's token passed through) -> LLM processing (`llm.*` authorization) -> upstream
//! call (timeouts, retries) -> a2a (an agent card's `url` rewritten) -> response headers ->
//! metrics (and token debits) when the body ends.

pub mod a2a;
pub mod api_key;
pub mod basic_auth;
pub mod cors;
pub mod credential;
pub mod jwt_auth;
mod limits;
pub mod mcp_auth;
pub mod normalize;
mod origin;
pub mod rewrite;
pub mod route;
#[cfg(test)]
mod tests;
pub mod upstream;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Limited};
use tollgate_shared::config::model::{AuthorityRewrite, BackendAuth, Policies};

use self::upstream::OutBody;
use crate::http::body::{BoxBody, ObservedBody};
use crate::http::client::Limits;
use crate::http::error::ProxyError;
use crate::http::mirror::Mirrors;
use crate::http::passthrough::Passthrough;
use crate::http::{RequestBody, read_body, strip_hop_by_hop};
use crate::jwt::Claims;
use crate::ratelimit::Bucket;
use crate::runtime::{CompiledRoute, PortTable, Runtime, Target};
use crate::services::Services;
use crate::telemetry::{self, Reason, RequestLabels, record::RequestRecord};
use crate::tls::TlsSession;
use crate::{llm, mcp, ratelimit};

/// What the response phase needs from earlier phases.
struct Outcome {
    /// The compiled labels of the most specific level reached: runtime, port, then route.
    labels: Arc<RequestLabels>,
    backend: Option<Arc<str>>,
    /// The request's `Origin`, when the route's CORS policy allows it.
    cors_origin: Option<HeaderValue>,
    route: Option<Arc<CompiledRoute>>,
    /// The caller's buckets of the route's keyed rate limits.
    caller_buckets: Vec<Arc<Bucket>>,
    local: bool,
}

/// Reports a request whose client left before its response head (the request's future is
/// dropped): status 499, reason `ClientClosed`, with the labels the phases had found.
struct Pending<'a> {
    runtime: &'a Runtime,
    record: &'a RequestRecord,
    /// Taken once the request is answered.
    out: Option<Outcome>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let Some(out) = self.out.take() else {
            return;
        };
        self.runtime.telemetry.finish(
            self.record,
            &telemetry::Outcome {
                status: 499,
                reason: Reason::ClientClosed,
                labels: &out.labels,
                backend: out.backend.as_deref(),
            },
        );
    }
}

/// Serves one downstream request on `port`.
pub async fn serve(
    services: &Services,
    req: Request<impl RequestBody>,
    port: u16,
    peer: SocketAddr,
) -> Response<BoxBody> {
    #[expect(
        clippy::disallowed_methods,
        reason = "a request's duration is wall time"
    )]
    let start = Instant::now();
    let Some(runtime) = services.runtime() else {
        return ProxyError::NoRoute.into_response();
    };
    let telemetry = &runtime.telemetry;
    let traced = telemetry.tracer.as_ref().and_then(|t| t.start(&req));
    let record = Arc::new(RequestRecord::new(
        &req,
        peer,
        start,
        runtime.reads_requests,
        &runtime.credential_names,
        traced,
    ));
    let mut pending = Pending {
        runtime: &runtime,
        record: &record,
        out: Some(Outcome {
            labels: runtime.labels.clone(),
            backend: None,
            cors_origin: None,
            route: None,
            caller_buckets: Vec::new(),
            local: false,
        }),
    };
    let out = pending.out.as_mut().expect("taken only below");
    let result = match runtime.ports.get(&port) {
        Some(table) => handle(services, &runtime, table, req, peer, out, &record).await,
        None => Err(ProxyError::NoRoute),
    };
    let out = pending.out.take().expect("taken only here");
    drop(pending);
    let (mut resp, reason) = match result {
        Ok(resp) => (
            resp,
            if out.local {
                Reason::DirectResponse
            } else {
                Reason::Upstream
            },
        ),
        Err(e) => (e.into_response(), e.reason()),
    };
    if let Some(origin) = out.cors_origin
        && let Some(cors) = out.route.as_ref().and_then(|r| r.policies.cors.as_ref())
    {
        cors::decorate(cors, origin, resp.headers_mut());
    }
    if reason != Reason::RateLimit
        && let Some(level) = out
            .route
            .as_ref()
            .and_then(|r| ratelimit::tightest(r.limits.iter().chain(&out.caller_buckets)))
    {
        level.write_headers(resp.headers_mut());
    }
    if matches!(reason, Reason::Upstream | Reason::DirectResponse)
        && let Some(m) = out
            .route
            .as_ref()
            .and_then(|r| r.policies.response_header_modifier.as_ref())
    {
        rewrite::modify_headers(m, resp.headers_mut());
    }
    let (labels, backend) = (out.labels, out.backend);
    if record.attempts() > 0 {
        let overhead = start.elapsed().saturating_sub(record.upstream_time());
        labels
            .series
            .overhead(&services.metrics.overhead, &labels.values())
            .observe(overhead.as_secs_f64());
    }
    let status = resp.status().as_u16();
    resp.map(move |b| {
        BoxBody::new(ObservedBody::new(b, move || {
            runtime.telemetry.finish(
                &record,
                &telemetry::Outcome {
                    status,
                    reason,
                    labels: &labels,
                    backend: backend.as_deref(),
                },
            );
        }))
    })
}

async fn handle(
    services: &Services,
    rt: &Runtime,
    table: &PortTable,
    req: Request<impl RequestBody>,
    peer: SocketAddr,
    out: &mut Outcome,
    record: &Arc<RequestRecord>,
) -> Result<Response<BoxBody>, ProxyError> {
    out.labels = table.labels.clone();

    // Phase: path normalisation.
    let mut req = req;
    if let Some(uri) = normalize::normalize(req.uri())? {
        *req.uri_mut() = uri;
    }

    // Phase: route match.
    let selected = route::select(table, &req).ok_or(ProxyError::NoRoute)?;
    out.labels = selected.route.labels.clone();
    out.route = Some(selected.route.clone());
    let route = selected.route.as_ref();
    let policies = &route.policies;

    // Phase: cors.
    if let Some(cors) = &policies.cors {
        if let Some(resp) = cors::preflight(cors, &req) {
            out.local = true;
            return Ok(resp);
        }
        out.cors_origin = cors::allowed_origin(cors, &req);
    }

    // Phase: jwtAuth. The token leaves the request here, whatever the outcome.
    let mut passthrough = None;
    if let Some(verifier) = &route.jwt {
        let mut uri = req.uri().clone();
        let authenticated = jwt_auth::authenticate(verifier, &mut uri, req.headers_mut())
            .await
            .map_err(ProxyError::Unauthorized)?;
        *req.uri_mut() = uri;
        passthrough = identified(record, policies, authenticated);
    }

    // Phase: mcpAuthentication. Discovery is answered here; other requests need a token.
    if let (Some(policy), Some(verifier)) = (&policies.mcp_authentication, &route.mcp_auth) {
        let mut uri = req.uri().clone();
        let tls = req.extensions().get::<TlsSession>().is_some();
        let step = mcp_auth::check(
            policy,
            verifier,
            &services.fetcher,
            &services.oauth_documents,
            tls,
            &mut uri,
            req.headers_mut(),
        )
        .await?;
        *req.uri_mut() = uri;
        match step {
            mcp_auth::Step::Answer(resp) => {
                out.local = true;
                return Ok(resp);
            }
            mcp_auth::Step::Register => {
                out.local = true;
                let (parts, body) = req.into_parts();
                let limit = mcp_auth::MAX_REGISTRATION_BYTES as u64;
                let body = read_body(body, limit).await?;
                let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
                let register = mcp_auth::register(
                    policy,
                    &services.fetcher,
                    &parts.method,
                    content_type,
                    body,
                );
                return register.await;
            }
            mcp_auth::Step::Continue(authenticated) => {
                passthrough = identified(record, policies, authenticated);
            }
        }
    }

    // Phase: apiKey. The key leaves the request here, whatever the outcome.
    if let Some(keys) = &route.api_keys {
        let mut uri = req.uri().clone();
        let identity = api_key::authenticate(keys, &mut uri, req.headers_mut())
            .map_err(ProxyError::ApiKeyRejected)?;
        *req.uri_mut() = uri;
        if let Some(identity) = identity {
            let _ = record.api_key.set(identity);
        }
    }

    // Phase: basicAuth. The credentials leave the request here, whatever the outcome.
    if let Some(basic) = &route.basic_auth {
        let mut uri = req.uri().clone();
        let user = basic_auth::authenticate(basic, &mut uri, req.headers_mut())
            .await
            .map_err(|refusal| match refusal {
                basic_auth::Refusal::Rejected(rejection) => ProxyError::BasicAuthRejected {
                    rejection,
                    realm: basic.policy.realm.clone(),
                },
                basic_auth::Refusal::Busy(_) => ProxyError::PasswordChecksBusy,
            })?;
        *req.uri_mut() = uri;
        if let Some(user) = user {
            let _ = record.basic_auth.set(user);
        }
    }

    // Phase: authorization. Rules that read `llm.*` wait for the parsed LLM request.
    let authorize_llm = route.authorization.as_ref().filter(|r| r.reads_llm());
    if let Some(rules) = &route.authorization
        && authorize_llm.is_none()
        && !rules.allows_request(record, None)
    {
        return Err(ProxyError::Forbidden("authorization"));
    }

    // Phase: localRateLimit (requests); token limits are checked with the LLM request.
    let caller = limits::caller_buckets(route, record);
    let buckets: Cow<'_, [Arc<Bucket>]> = if caller.is_empty() {
        Cow::Borrowed(&route.limits)
    } else {
        Cow::Owned(route.limits.iter().chain(&caller).cloned().collect())
    };
    out.caller_buckets = caller;
    ratelimit::admit_request(&buckets).map_err(ProxyError::RateLimited)?;

    // Phase: directResponse, after the route's identity and limits.
    if let Some(direct) = &policies.direct_response {
        out.local = true;
        let mut resp = Response::new(crate::http::body::full(direct.body.clone()));
        *resp.status_mut() =
            http::StatusCode::from_u16(direct.status).unwrap_or(http::StatusCode::OK);
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return Ok(resp);
    }

    // Phase: requestRedirect, likewise.
    if let Some(redirect) = &policies.request_redirect {
        out.local = true;
        let tls = req.extensions().get::<TlsSession>().is_some();
        let path = &selected.matcher.path;
        let location = rewrite::redirect_location(redirect, path, req.uri(), req.headers(), tls)?;
        let mut resp = Response::new(crate::http::body::empty());
        *resp.status_mut() =
            http::StatusCode::from_u16(redirect.status).unwrap_or(http::StatusCode::FOUND);
        resp.headers_mut().insert(header::LOCATION, location);
        return Ok(resp);
    }

    // Phase: body limit.
    let max_body = rt.snapshot.config.settings.max_body_size;
    let declared = crate::http::declared_length(req.headers());
    if declared.is_some_and(|len| len > max_body) {
        return Err(ProxyError::BodyTooLarge(max_body));
    }

    // Phase: rewrites.
    let (mut parts, body) = req.into_parts();
    // MCP backends answer on the client's own path (legacy SSE names it back to the client).
    let client_uri = policies.url_rewrite.as_ref().map(|_| parts.uri.clone());
    let url_rewrite = policies.url_rewrite.as_ref();
    if let Some(rule) = url_rewrite.and_then(|u| u.path.as_ref())
        && let Some(pq) = rewrite::rewrite_path(rule, &selected.matcher.path, &parts.uri)
    {
        let mut uri = parts.uri.clone().into_parts();
        uri.path_and_query = Some(pq);
        parts.uri =
            http::Uri::from_parts(uri).map_err(|e| ProxyError::BadRequest(e.to_string()))?;
    }
    if let Some(rule) = url_rewrite.and_then(|u| u.authority.as_ref())
        && let Some(host) = rewrite::rewrite_authority(
            rule,
            rewrite::client_authority(&parts.uri, &parts.headers).as_ref(),
            if route.backend_tls.is_some() {
                "https"
            } else {
                "http"
            },
        )
    {
        let host = HeaderValue::from_str(&host)
            .map_err(|_| ProxyError::BadRequest(format!("cannot send host `{host}`")))?;
        parts.headers.insert(header::HOST, host);
    }
    // The client's hop-by-hop headers go first: `Connection: x-name` must not remove a
    // header the gateway sets.
    strip_hop_by_hop(&mut parts.headers);
    if let Some(m) = &policies.request_header_modifier {
        rewrite::modify_headers(m, &mut parts.headers);
    }
    let trusted_hops = rt
        .snapshot
        .config
        .frontend_policies
        .http
        .xff_num_trusted_hops;
    forwarded_for(&mut parts.headers, peer, trusted_hops);

    // Phase: backend selection.
    let index = upstream::pick_backend(route, |_| true)
        .ok_or_else(|| ProxyError::NoBackend(route.name.to_string()))?;
    // Only an `ai` backend parses an LLM request: others decide `llm.*` rules now, without it.
    if let Some(rules) = authorize_llm
        && !matches!(route.backends[index].target, Target::Ai(_))
        && !rules.allows_request(record, None)
    {
        return Err(ProxyError::Forbidden("authorization"));
    }
    let timeouts = policies.timeout.as_ref();
    let limits = Limits {
        backend_timeout: timeouts.and_then(|t| t.backend_request_timeout),
        max_body_size: max_body,
    };
    let retry_labels = |backend: &str| {
        let [bind, gateway, listener, route] = route.labels.values();
        let values = [bind, gateway, listener, route, backend];
        services.metrics.retries.with_label_values(&values).inc();
    };
    // Phase: backendAuth: the caller's token passed through (an `ai` provider's own key
    // replaces it later); remote MCP targets get it on their session's connections.
    if let Some(token) = &passthrough
        && !matches!(route.backends[index].target, Target::Mcp(_))
    {
        token.apply(&mut parts.uri, &mut parts.headers);
    }
    let call = async {
        match &route.backends[index].target {
            Target::Host(_) => {
                // Phase: a2a (the request): a call's body is read for its method.
                let a2a = policies.a2a.then(|| {
                    let tls = parts.extensions.get::<TlsSession>().is_some();
                    let scheme = a2a::client_scheme(&parts, tls, trusted_hops);
                    a2a::classify(&parts, client_uri.as_ref().unwrap_or(&parts.uri), scheme)
                });
                let mirror = policies
                    .request_mirror
                    .as_ref()
                    .filter(|m| Mirrors::chosen(m));
                let body = match &a2a {
                    Some(a2a::A2aRequest::Call) => {
                        let bytes = read_body(body, max_body).await?;
                        let method = a2a::method(&bytes);
                        a2a::observe(&services.metrics, route, record, Some(method));
                        OutBody::Replayable(bytes)
                    }
                    _ => {
                        let replay = policies.retry.is_some() || mirror.is_some();
                        out_body(body, declared, max_body, replay).await?
                    }
                };
                if let Some(a2a::A2aRequest::AgentCard(_)) = &a2a {
                    a2a::observe(&services.metrics, route, record, None);
                }
                // Phase: requestMirror, before the gateway's own key is added.
                if let Some(rule) = mirror {
                    let labels = route.labels.values();
                    match &body {
                        OutBody::Replayable(bytes) => {
                            services.mirrors.send(rule, &parts, bytes.clone(), labels);
                        }
                        OutBody::Stream(_) => services.mirrors.skip(&labels),
                    }
                }
                // Phase: backendAuth (the configured key).
                if let Some(key) = policies.backend_auth.as_ref().and_then(BackendAuth::key)
                    && let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                {
                    parts.headers.insert(header::AUTHORIZATION, v);
                }
                // Phase: upstream call.
                let tls = route.backend_tls.as_ref();
                let via = upstream::Via {
                    client: tls.map_or(&services.client, |c| &c.http),
                    https: tls.is_some(),
                    backend_host: url_rewrite
                        .is_some_and(|u| u.authority == Some(AuthorityRewrite::Auto)),
                };
                // Boxed, as the other backends' calls: the request's future stays small.
                let (index, resp) = Box::pin(upstream::call_with_retries(
                    via,
                    route,
                    &parts,
                    body,
                    limits,
                    record,
                    |i| retry_labels(&route.backends[i].label),
                ))
                .await?;
                // Phase: response.
                let (mut rparts, rbody) = resp.into_parts();
                strip_hop_by_hop(&mut rparts.headers);
                // The downstream connection has its own HTTP version.
                rparts.version = http::Version::default();
                let resp = Response::from_parts(rparts, rbody.map_err(Into::into).boxed_unsync());
                let label = route.backends[index].label.clone();
                // Phase: a2a (the response): a served card points back at the gateway.
                let resp = match a2a {
                    Some(a2a::A2aRequest::AgentCard(url)) if resp.status().is_success() => {
                        a2a::rewrite_card(resp, &url, &label).await?
                    }
                    _ => resp,
                };
                Ok((label, resp))
            }
            Target::Ai(pool) => {
                let body = read_body(body, max_body).await?;
                let call = llm::AiCall {
                    client: &services.client,
                    metrics: &services.metrics,
                    route_name: &route.name,
                    labels: &route.labels,
                    policies,
                    buckets: &buckets,
                    pool,
                    limits,
                    record,
                    budget: &services.llm_budget,
                    authorization: authorize_llm,
                    on_retry: &retry_labels,
                };
                let served = match Box::pin(llm::serve(call, parts, body)).await {
                    Err(refused @ ProxyError::Forbidden(_)) => {
                        ratelimit::refund_request(&buckets);
                        return Err(refused);
                    }
                    served => served?,
                };
                let label = served
                    .provider
                    .unwrap_or_else(|| route.backends[index].label.clone());
                Ok((label, served.response))
            }
            Target::Mcp(backend) => {
                origin::check_mcp(
                    policies.cors.as_ref(),
                    selected.listener,
                    &parts,
                    peer,
                    services.mcp.admin_addr(),
                )?;
                let call = mcp::McpRequest {
                    sessions: &services.mcp,
                    backend,
                    remote_http: route.backend_tls.as_ref().map(|c| &c.mcp),
                    openapi: &rt.openapi,
                    observer: mcp::Observer {
                        metrics: services.metrics.clone(),
                        labels: route.labels.clone(),
                        route: mcp::RouteKey {
                            port: table.port,
                            listener: selected.listener.name.clone(),
                            route: route.name.clone(),
                        },
                        record: record.clone(),
                        session: std::sync::OnceLock::new(),
                        authorization: route.mcp_authorization.clone(),
                    },
                    max_body: max_body.min(rt.snapshot.config.settings.mcp.max_body_size),
                    passthrough: passthrough.clone(),
                };
                if let Some(uri) = client_uri {
                    parts.uri = uri;
                }
                let resp = Box::pin(mcp::serve(call, parts, body)).await?;
                Ok((route.backends[index].label.clone(), resp))
            }
        }
    };
    let (backend, resp) = match timeouts.and_then(|t| t.request_timeout) {
        Some(limit) => tokio::time::timeout(limit, call)
            .await
            .map_err(|_| ProxyError::RequestTimeout(limit))??,
        None => call.await?,
    };
    out.backend = Some(backend);
    Ok(resp)
}

/// Keeps a validated token's claims as the caller's identity, and the token itself when
/// `backendAuth.passthrough` sends it on.
fn identified(
    record: &RequestRecord,
    policies: &Policies,
    authenticated: Option<(Arc<Claims>, String)>,
) -> Option<Passthrough> {
    let (claims, token) = authenticated?;
    let _ = record.jwt.set(claims);
    match &policies.backend_auth {
        Some(BackendAuth::Passthrough { location }) => Passthrough::new(location, &token),
        _ => None,
    }
}

/// Streams the body through a size limit, or buffers it when a retry may need it again.
async fn out_body(
    body: impl RequestBody,
    declared: Option<u64>,
    max: u64,
    retries: bool,
) -> Result<OutBody, ProxyError> {
    let small = declared.is_some_and(|len| len <= upstream::MAX_RETRY_BODY);
    if retries && (small || http_body::Body::is_end_stream(&body)) {
        return Ok(OutBody::Replayable(read_body(body, max).await?));
    }
    Ok(OutBody::Stream(
        Limited::new(body, max as usize).boxed_unsync(),
    ))
}

/// Sets `x-forwarded-for` to the client's address, after the last `trusted_hops` entries of
/// the header it sent (those the trusted proxies in front of the gateway appended); anything
/// else a client sends is dropped, so it cannot pose as another address.
fn forwarded_for(headers: &mut http::HeaderMap, peer: SocketAddr, trusted_hops: u32) {
    const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
    // The address is written on the stack first, so the value's buffer is allocated at its
    // exact size once and becomes the header's bytes without another allocation.
    let mut ip = [0u8; 64];
    let mut cursor = std::io::Cursor::new(&mut ip[..]);
    let _ = std::io::Write::write_fmt(&mut cursor, format_args!("{}", peer.ip()));
    let ip_len = usize::try_from(cursor.position()).unwrap_or(0);
    let ip = &ip[..ip_len];
    let kept: Vec<&str> = if trusted_hops > 0 {
        let mut sent: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .collect();
        let untrusted = sent.len().saturating_sub(trusted_hops as usize);
        sent.drain(..untrusted);
        sent
    } else {
        Vec::new()
    };
    let size = kept.iter().map(|e| e.len() + 2).sum::<usize>() + ip.len();
    let mut value = Vec::with_capacity(size);
    for entry in &kept {
        value.extend_from_slice(entry.as_bytes());
        value.extend_from_slice(b", ");
    }
    value.extend_from_slice(ip);
    // `insert` replaces every value the client sent.
    match HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
        Ok(v) => {
            headers.insert(X_FORWARDED_FOR, v);
        }
        Err(_) => {
            headers.remove(X_FORWARDED_FOR);
        }
    }
}

#[cfg(test)]
mod forwarded_for_tests {
    use super::*;

    fn xff(sent: &[&str], trusted_hops: u32) -> String {
        let mut headers = http::HeaderMap::new();
        for v in sent {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        forwarded_for(&mut headers, "10.0.0.9:1234".parse().unwrap(), trusted_hops);
        headers["x-forwarded-for"].to_str().unwrap().to_string()
    }

    #[test]
    fn only_trusted_hops_are_kept() {
        assert_eq!(xff(&[], 0), "10.0.0.9");
        assert_eq!(xff(&["6.6.6.6"], 0), "10.0.0.9");
        assert_eq!(xff(&["6.6.6.6, 1.2.3.4"], 1), "1.2.3.4, 10.0.0.9");
        assert_eq!(
            xff(&["6.6.6.6", "1.2.3.4, 5.6.7.8"], 2),
            "1.2.3.4, 5.6.7.8, 10.0.0.9"
        );
        assert_eq!(xff(&["1.2.3.4"], 3), "1.2.3.4, 10.0.0.9");
    }

    #[test]
    fn the_longest_ipv6_address_is_written_whole() {
        let mut headers = http::HeaderMap::new();
        let peer = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:1"
            .parse()
            .unwrap();
        forwarded_for(&mut headers, peer, 0);
        assert_eq!(
            headers["x-forwarded-for"],
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        let mapped = "[::ffff:255.255.255.255]:1".parse().unwrap();
        forwarded_for(&mut headers, mapped, 0);
        assert_eq!(headers["x-forwarded-for"], "::ffff:255.255.255.255");
    }
}
