//! The proxy's own HTTP servers: admin API (localhost), Prometheus metrics, readiness.
//!
//! The admin server answers only to its own names (DNS rebinding) and, with a token, only to
//! callers that present it: it shows the config and drives the Playground.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::gateway::Gateway;
use crate::services::Services;

/// Binds `addr` and serves `router` until the process ends.
pub async fn spawn(name: &'static str, addr: SocketAddr, router: Router) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for the {name} server: {e}"))?;
    tracing::info!(%addr, "{name} server listening");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "{name} server stopped");
        }
    });
    Ok(())
}

/// Who may use the admin server.
pub struct AdminAccess {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `--admin-token-file` or `TOLLGATE_ADMIN_TOKEN`: when set, `/api/` needs it as a bearer
    /// token.
    pub token: Option<String>,
}

impl AdminAccess {
    /// A `Host` a browser can only send for this server: an IP literal of it (any IP when it
    /// listens on all of them), `localhost`, or a name in `config.adminHosts`. A rebound DNS
    /// name is none of these.
    fn allows_host(&self, host: &str, services: &Services) -> bool {
        let name = host
            .parse::<http::uri::Authority>()
            .map(|a| {
                a.host()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string()
            })
            .unwrap_or_default()
            .to_ascii_lowercase();
        if let Ok(ip) = name.parse::<IpAddr>() {
            return ip.is_loopback() || self.addr.ip().is_unspecified() || ip == self.addr.ip();
        }
        name == "localhost"
            || services.runtime().is_some_and(|rt| {
                let names = &rt.snapshot.config.settings.admin_hosts;
                names.iter().any(|n| n.eq_ignore_ascii_case(&name))
            })
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        bool::from(presented.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// The admin API and the Playground, behind [`guard`].
pub fn admin_router(services: Arc<Services>, access: AdminAccess) -> Router {
    Router::new()
        .route("/api/config", get(config))
        .route("/api/ratelimits", get(rate_limits))
        .route("/api/mcp/sessions", get(mcp_sessions))
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(crate::ui::router())
        .layer(middleware::from_fn_with_state(
            (Arc::new(access), services.clone()),
            guard,
        ))
        .with_state(services)
}

/// The Playground's policy: its own scripts and styles, calls to any route's port, never
/// framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src *; img-src 'self' data:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Refuses foreign `Host` names (403) and, with a token, `/api/` calls without it (401); every
/// answer carries the CSP and `nosniff`.
async fn guard(
    State((access, services)): State<(Arc<AdminAccess>, Arc<Services>)>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default()
        .to_string();
    let mut resp = if !access.allows_host(&host, &services) {
        let msg = format!(
            "the admin server does not answer to Host `{host}`: use its address, localhost or a name in config.adminHosts\n"
        );
        (StatusCode::FORBIDDEN, msg).into_response()
    } else if req.uri().path().starts_with("/api/") && !access.authorized(req.headers()) {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the admin API needs the token of --admin-token-file (or TOLLGATE_ADMIN_TOKEN) as `Authorization: Bearer <token>`\n",
        )
            .into_response()
    } else {
        next.run(req).await
    };
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

pub fn stats_router(services: Arc<Services>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/stats/prometheus", get(metrics))
        .with_state(services)
}

pub fn readiness_router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz/ready", get(ready))
        .with_state(gw)
}

/// The applied config; secrets appear as their `$VAR` reference or `<redacted>`.
async fn config(State(services): State<Arc<Services>>) -> impl IntoResponse {
    match services.runtime() {
        Some(rt) => Json(json!({
            "version": rt.snapshot.version,
            "source": rt.source.to_string(),
            "appliedAt": humantime::format_rfc3339_millis(rt.applied_at).to_string(),
            "config": &*rt.snapshot.config,
        }))
        .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no config applied yet\n").into_response(),
    }
}

/// Every bucket: identity, settings, current level and time to the next refill.
async fn rate_limits(State(services): State<Arc<Services>>) -> impl IntoResponse {
    let buckets: Vec<serde_json::Value> = services
        .rate_limits
        .all()
        .iter()
        .map(|b| {
            let level = b.level();
            json!({
                "gateway": b.key.gateway,
                "listener": b.key.listener,
                "route": b.key.route,
                "position": b.key.position,
                "type": b.key.kind,
                "maxTokens": b.limit.max_tokens,
                "tokensPerFill": b.limit.tokens_per_fill,
                "fillInterval": humantime::format_duration(b.limit.fill_interval).to_string(),
                "level": level.remaining,
                "secondsToRefill": level.reset_secs,
            })
        })
        .collect();
    Json(json!({ "buckets": buckets }))
}

/// Live MCP sessions: route, transport, targets with their child pids, age and idle time.
async fn mcp_sessions(State(services): State<Arc<Services>>) -> impl IntoResponse {
    Json(services.mcp.describe())
}

async fn metrics(State(services): State<Arc<Services>>) -> impl IntoResponse {
    services
        .metrics
        .set_bucket_levels(&services.rate_limits.all());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        services.metrics.render(),
    )
}

async fn ready(State(gw): State<Arc<Gateway>>) -> impl IntoResponse {
    if gw.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no config applied yet\n",
        )
    }
}
