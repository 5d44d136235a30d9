//! The proxy's own HTTP servers: admin API (localhost), Prometheus metrics, readiness.
//!
//! The admin server is behind the shared admin guard (its own names only, an optional token):
//! it shows the config and drives the Playground.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tollgate_shared::admin::{AdminAccess, KnownNames, guard};

use crate::gateway::Gateway;
use crate::ratelimit::LISTED_CALLERS;
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

/// The admin API and the Playground, behind the shared admin [`guard`]: besides its IPs and
/// `localhost`, it answers to the names in `config.adminHosts`.
pub fn admin_router(services: Arc<Services>, addr: SocketAddr, token: Option<String>) -> Router {
    let current = services.clone();
    let names: KnownNames = Arc::new(move |name: &str| {
        current.runtime().is_some_and(|rt| {
            let names = &rt.snapshot.config.settings.admin_hosts;
            names.iter().any(|n| n.eq_ignore_ascii_case(name))
        })
    });
    let access = AdminAccess {
        addr,
        token,
        names,
        names_hint: "config.adminHosts",
        token_hint: TOKEN_HINT,
    };
    Router::new()
        .route("/api/config", get(config))
        .route("/api/ratelimits", get(rate_limits))
        .route("/api/mcp/sessions", get(mcp_sessions))
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(crate::ui::router())
        .layer(middleware::from_fn_with_state(Arc::new(access), guard))
        .with_state(services)
}

/// Where the admin token is set.
pub const TOKEN_HINT: &str = "--admin-token-file (or TOLLGATE_ADMIN_TOKEN)";

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

/// Every bucket (of keyed limits, the 256 emptiest callers' of each): identity, settings,
/// current level and time to the next refill.
async fn rate_limits(State(services): State<Arc<Services>>) -> impl IntoResponse {
    let buckets: Vec<serde_json::Value> = services
        .rate_limits
        .all(LISTED_CALLERS)
        .iter()
        .map(|b| {
            let level = b.level();
            json!({
                "gateway": b.key.gateway,
                "listener": b.key.listener,
                "route": b.key.route,
                "position": b.key.position,
                "type": b.key.kind,
                "key": b.key.value,
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
    services.metrics.set_bucket_levels(&services.rate_limits);
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
