//! The control plane's admin API (`127.0.0.1:15011`): gateways, their configs, proxies; behind
//! the same guard as the proxy's (its own names only, an optional bearer token).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tollgate_shared::admin::{AdminAccess, guard};

use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::store::Store;

#[derive(Clone)]
pub struct AdminState {
    pub store: Arc<Store>,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
}

/// Where the admin token is set.
pub const TOKEN_HINT: &str = "--admin-token-file (or TOLLGATE_CP_ADMIN_TOKEN)";

/// The admin API, answering to its IPs, `localhost` and the `--admin-host` names.
pub fn router(
    state: AdminState,
    addr: std::net::SocketAddr,
    token: Option<String>,
    hosts: Vec<String>,
) -> Router {
    let access = AdminAccess {
        addr,
        token,
        names: Arc::new(move |name: &str| hosts.iter().any(|h| h.eq_ignore_ascii_case(name))),
        names_hint: "--admin-host",
        token_hint: TOKEN_HINT,
    };
    Router::new()
        .route("/api/gateways", get(gateways))
        .route("/api/gateways/{name}/config", get(gateway_config))
        .route("/api/proxies", get(proxies))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            guard,
        ))
        .with_state(state)
}

fn time(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

async fn gateways(State(s): State<AdminState>) -> impl IntoResponse {
    let list: Vec<_> = s
        .store
        .gateways()
        .into_iter()
        .map(|g| {
            json!({
                "name": g.name,
                "file": g.file.display().to_string(),
                "version": g.published.as_ref().map(|p| p.version.clone()),
                "publishedAt": g.published.as_ref().map(|p| time(p.published_at)),
                "lastError": if g.errors.is_empty() { serde_json::Value::Null } else { json!(g.errors) },
            })
        })
        .collect();
    Json(json!({ "gateways": list }))
}

/// The gateway's published config; secrets appear as their `$VAR` reference or `<redacted>`.
async fn gateway_config(
    State(s): State<AdminState>,
    Path(name): Path<String>,
) -> impl IntoResponse {
    match s.store.current(&name) {
        Some(p) => Json(json!({
            "name": name,
            "version": p.version,
            "file": p.file.display().to_string(),
            "config": &*p.config,
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("no published snapshot for gateway `{name}`\n"),
        )
            .into_response(),
    }
}

async fn proxies(State(s): State<AdminState>) -> impl IntoResponse {
    let list: Vec<_> = s
        .registry
        .all()
        .into_iter()
        .map(|r| {
            let current = s.store.current(&r.gateway).map(|p| p.version.clone());
            json!({
                "identity": r.identity,
                "nodeId": r.node_id,
                "gateway": r.gateway,
                "build": r.build,
                "address": r.address,
                "connectedSince": time(r.connected_since),
                "versionSent": r.version_sent,
                "versionAcked": r.version_acked,
                "status": r.status(current.as_deref()),
                "lastNack": r.last_nack,
                "buckets": r.buckets,
                "mcpSessions": r.mcp_sessions,
            })
        })
        .collect();
    Json(json!({ "proxies": list }))
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    s.metrics.proxy_status.reset();
    for r in s.registry.all().into_iter().filter(|r| r.left_at.is_none()) {
        let current = s.store.current(&r.gateway).map(|p| p.version.clone());
        let status = serde_json::to_value(r.status(current.as_deref()))
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        s.metrics
            .proxy_status
            .with_label_values(&[
                r.node_id.as_str(),
                &r.identity,
                &r.gateway,
                &status,
                r.version_acked.as_deref().unwrap_or(""),
            ])
            .set(1);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}
