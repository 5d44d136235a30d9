//! The MCP gateway (DESIGN §7): many MCP servers behind one route, one set of upstream
//! connections (one stdio child per target) per client session.
//!
//! Sessions live in [`Sessions`], outside the swapped config tables, so they survive reloads
//! and control-plane pushes; after each apply, [`Sessions::reconcile`] closes the sessions
//! whose route or targets changed.

mod events;
mod legacy_sse;
mod message;
pub mod names;
pub mod openapi;
mod outbound;
mod session;
mod sse_client;
mod stdio;
mod streamable;
mod upstream;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use http::{Response, request};
use serde_json::json;
use tollgate_shared::config::model::{McpBackend, McpSettings, McpTargetKind};

use self::openapi::OpenApiSpecs;
use self::session::{Session, TransportKind};
use self::upstream::Remote;
use crate::authz::Rules;
use crate::http::RequestBody;
use crate::http::body::BoxBody;
use crate::http::error::ProxyError;
use crate::http::passthrough::Passthrough;
use crate::metrics::Metrics;
use crate::runtime::{Runtime, Target};
use crate::telemetry::RequestLabels;
use crate::telemetry::record::{McpFacts, RequestRecord};

/// Which route a session belongs to; a session id is only valid on its own route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteKey {
    pub port: u16,
    pub listener: Arc<str>,
    pub route: Arc<str>,
}

/// Counts, logs and traces what happens on one route.
pub struct Observer {
    pub metrics: Arc<Metrics>,
    /// The route's request labels: bind, gateway, listener, route.
    pub labels: Arc<RequestLabels>,
    pub route: RouteKey,
    /// The HTTP request carrying the MCP message.
    pub record: Arc<RequestRecord>,
    /// The session the message belongs to, once known, as its log id (never the id itself).
    pub session: OnceLock<Arc<str>>,
    /// The route's `mcpAuthorization` rules: what this caller may list and call.
    pub authorization: Option<Arc<Rules>>,
}

impl Observer {
    /// The rules and this request's CEL context, when the route has `mcpAuthorization`.
    fn access(&self) -> Option<(&Rules, crate::telemetry::fields::Ctx)> {
        let rules = self.authorization.as_deref()?;
        Some((rules, rules.context(&self.record)))
    }

    /// Records (for logs and spans) and counts one request.
    fn request(
        &self,
        method: &str,
        resource_type: &'static str,
        server: Option<&str>,
        resource: Option<&str>,
    ) {
        self.note(method, resource_type, server, resource);
        self.count(
            method,
            resource_type,
            server.unwrap_or(""),
            resource.unwrap_or(""),
        );
    }

    /// Records what the request is, for its log line and span.
    fn note(
        &self,
        method: &str,
        resource_type: &'static str,
        server: Option<&str>,
        resource: Option<&str>,
    ) {
        let _ = self.record.mcp.set(McpFacts {
            method: method.to_string(),
            resource_type,
            target: server.map(str::to_string),
            resource: resource.map(str::to_string),
            session: self.session.get().map(|s| s.to_string()),
        });
    }

    /// Counts a call routed to one target once it is answered. Label values come from the
    /// client, so the tool or prompt name is a label only when the target knew it, and
    /// resource URIs never are (each would be a new series).
    fn count_routed(&self, answered: bool) {
        let Some(facts) = self.record.mcp.get() else {
            return;
        };
        let resource = match (answered, facts.resource_type) {
            (true, "tool" | "prompt") => facts.resource.as_deref().unwrap_or(""),
            _ => "",
        };
        self.count(
            &facts.method,
            facts.resource_type,
            facts.target.as_deref().unwrap_or(""),
            resource,
        );
    }

    fn count(&self, method: &str, resource_type: &str, server: &str, resource: &str) {
        let [bind, gateway, listener, route] = self.labels.values();
        let bounded = &self.metrics.client_labels;
        let method = bounded.admit("method", route, method);
        let resource = bounded.admit("resource", route, resource);
        self.metrics
            .mcp_requests
            .with_label_values(&[
                bind,
                gateway,
                listener,
                route,
                method,
                resource_type,
                server,
                resource,
            ])
            .inc();
    }

    fn target_failed(&self, server: &str, reason: &str) {
        tracing::warn!(route = %self.route.route, mcp_target = server, reason, "MCP target failed");
        self.metrics
            .mcp_target_failures
            .with_label_values(&[
                &self.labels.gateway,
                &self.route.listener,
                &self.route.route,
                server,
            ])
            .inc();
    }
}

/// How long a retired session's in-flight calls may run before its children are killed.
const RETIRE_WAIT: Duration = Duration::from_secs(300);

/// Every live MCP session of the proxy.
pub struct Sessions {
    map: DashMap<Arc<str>, Arc<Session>>,
    /// Sessions out of the map that still finish in-flight calls; shutdown closes them too.
    retiring: DashMap<Arc<str>, Arc<Session>>,
    /// Makes the limit check and the insert one step.
    admit: parking_lot::Mutex<()>,
    /// Cancelled when the proxy shuts down: event streams end, so connections can drain.
    stopping: tokio_util::sync::CancellationToken,
    /// Built on first use: only remote targets need it.
    http: OnceLock<reqwest::Client>,
    settings: ArcSwap<McpSettings>,
    reaper_started: AtomicBool,
    metrics: Arc<Metrics>,
    /// The admin server's address: pages it serves (the Playground) may call MCP routes.
    admin_addr: OnceLock<SocketAddr>,
    /// Bytes of large client messages being parsed and answered, in KiB.
    message_budget: crate::http::budget::ParseBudget,
}

impl Sessions {
    pub fn new(metrics: Arc<Metrics>) -> Sessions {
        Sessions {
            map: DashMap::new(),
            retiring: DashMap::new(),
            admit: parking_lot::Mutex::new(()),
            stopping: tokio_util::sync::CancellationToken::new(),
            http: OnceLock::new(),
            settings: ArcSwap::from_pointee(McpSettings::default()),
            reaper_started: AtomicBool::new(false),
            metrics,
            admin_addr: OnceLock::new(),
            message_budget: message::budget(),
        }
    }

    /// Records where the admin server listens (once, at start).
    pub fn set_admin_addr(&self, addr: SocketAddr) {
        let _ = self.admin_addr.set(addr);
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr.get().copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Opens a session for the caller of `call` (its address and identity) unless a limit (in
    /// total or per client address) is reached.
    /// Remote targets use the route's `backendTLS` client or the default one.
    fn create(
        self: &Arc<Self>,
        call: &McpRequest<'_>,
        transport: TransportKind,
    ) -> Result<Arc<Session>, ProxyError> {
        let backend = call.backend;
        let client = call.observer.record.peer.ip();
        let limits = self.settings.load();
        let _admit = self.admit.lock();
        let full = |what, setting, limit| {
            Err(ProxyError::McpCapacity {
                what,
                setting,
                limit,
            })
        };
        if self.map.len() >= limits.max_sessions as usize {
            return full("sessions", "maxSessions", limits.max_sessions);
        }
        let (mut children, mut client_sessions, mut client_children) = (0, 0, 0);
        for s in self.map.iter() {
            let n = stdio_targets(&s.backend);
            children += n;
            if s.client == client {
                client_sessions += 1;
                client_children += n;
            }
        }
        if client_sessions >= limits.max_sessions_per_client as usize {
            let limit = limits.max_sessions_per_client;
            return full(
                "sessions from one client address",
                "maxSessionsPerClient",
                limit,
            );
        }
        let wanted = stdio_targets(backend);
        if children + wanted > limits.max_children as usize {
            return full("stdio child processes", "maxChildren", limits.max_children);
        }
        if client_children + wanted > limits.max_children_per_client as usize {
            let limit = limits.max_children_per_client;
            return full(
                "stdio child processes for one client address",
                "maxChildrenPerClient",
                limit,
            );
        }
        if !self.reaper_started.swap(true, Ordering::AcqRel) {
            tokio::spawn(reap(Arc::downgrade(self)));
        }
        let id: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        let session = Arc::new(Session::new(
            id.clone(),
            call.observer.route.clone(),
            transport,
            backend.clone(),
            (client, call.observer.record.identity()),
            || Remote {
                http: call
                    .remote_http
                    .cloned()
                    .unwrap_or_else(|| self.http.get_or_init(remote_client).clone()),
                passthrough: call.passthrough.clone(),
            },
            call.openapi,
        ));
        self.map.insert(id, session.clone());
        self.metrics.mcp_sessions.inc();
        Ok(session)
    }

    /// The session `id` of `route`, for the identity that opened it; sessions of other routes
    /// or other callers are not found.
    fn get(
        &self,
        id: &str,
        route: &RouteKey,
        identity: Option<&str>,
    ) -> Result<Arc<Session>, ProxyError> {
        self.map
            .get(id)
            .map(|s| s.value().clone())
            .filter(|s| s.route == *route && s.identity.as_deref() == identity)
            .ok_or_else(|| ProxyError::SessionNotFound(id.to_string()))
    }

    /// Ends a session now: its children are killed and its stream closes.
    async fn remove(&self, id: &str) {
        if let Some((_, session)) = self.map.remove(id) {
            self.metrics.mcp_sessions.dec();
            session.close().await;
        }
    }

    /// Ends a session once its in-flight calls have finished (at most `RETIRE_WAIT`).
    fn retire(self: &Arc<Self>, id: &str, why: &'static str) {
        if let Some((id, session)) = self.map.remove(id) {
            self.metrics.mcp_sessions.dec();
            tracing::info!(session = %session.log_id, route = %session.route.route, why, "closing MCP session");
            self.retiring.insert(id.clone(), session.clone());
            let sessions = Arc::downgrade(self);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(RETIRE_WAIT, session.calls_done()).await;
                session.close().await;
                if let Some(s) = sessions.upgrade() {
                    s.retiring.remove(&id);
                }
            });
        }
    }

    /// After an apply: new limits, and sessions whose route or targets changed are retired.
    pub fn reconcile(self: &Arc<Self>, rt: &Runtime) {
        self.settings
            .store(Arc::new(rt.snapshot.config.settings.mcp));
        let doomed: Vec<Arc<str>> = self
            .map
            .iter()
            .filter(|s| !survives(s.value(), rt))
            .map(|s| s.key().clone())
            .collect();
        for id in doomed {
            self.retire(&id, "its route or MCP target changed");
        }
    }

    /// Ends every open event stream (first step of a shutdown: they would hold the drain).
    pub fn end_streams(&self) {
        self.stopping.cancel();
    }

    /// Closes every session, retiring ones included, and waits for the children to be killed.
    pub async fn shutdown(&self) {
        let ids: Vec<Arc<str>> = self.map.iter().map(|s| s.key().clone()).collect();
        futures_util::future::join_all(ids.iter().map(|id| self.remove(id))).await;
        let retiring: Vec<Arc<Session>> = self.retiring.iter().map(|s| s.value().clone()).collect();
        futures_util::future::join_all(retiring.iter().map(|s| s.close())).await;
    }

    /// `GET /api/mcp/sessions`.
    pub fn describe(&self) -> serde_json::Value {
        let sessions: Vec<serde_json::Value> = self
            .map
            .iter()
            .map(|s| {
                let s = s.value();
                json!({
                    "session": s.id,
                    "route": s.route.route,
                    "listener": s.route.listener,
                    "port": s.route.port,
                    "transport": s.transport.as_str(),
                    "targets": s.targets.iter().map(|t| {
                        let conn = t.connection();
                        json!({
                            "name": t.name,
                            "kind": match &t.target.kind {
                                McpTargetKind::Stdio { .. } => "stdio",
                                McpTargetKind::Sse { .. } => "sse",
                                McpTargetKind::Mcp { .. } => "mcp",
                                McpTargetKind::OpenApi { .. } => "openapi",
                            },
                            "pid": conn.as_ref().and_then(|c| c.pid),
                            "connected": conn.is_some(),
                            "restarts": t.restarts.load(Ordering::Relaxed),
                        })
                    }).collect::<Vec<_>>(),
                    "inFlight": s.in_flight(),
                    "ageSeconds": s.age().as_secs_f64(),
                    "idleSeconds": s.idle().as_secs_f64(),
                })
            })
            .collect();
        json!({ "sessions": sessions })
    }
}

/// Child processes a session of `backend` runs.
fn stdio_targets(backend: &McpBackend) -> usize {
    backend
        .targets
        .iter()
        .filter(|t| matches!(t.kind, McpTargetKind::Stdio { .. }))
        .count()
}

fn survives(session: &Session, rt: &Runtime) -> bool {
    let key = &session.route;
    let Some(route) = rt.ports.get(&key.port).and_then(|t| {
        t.listeners
            .iter()
            .find(|l| l.name == key.listener)?
            .routes
            .iter()
            .find(|r| r.name == key.route)
            .cloned()
    }) else {
        return false;
    };
    route.backends.iter().any(|b| match &b.target {
        Target::Mcp(now) => {
            now.prefix_mode == session.backend.prefix_mode
                && session
                    .backend
                    .targets
                    .iter()
                    .all(|t| now.targets.contains(t))
        }
        _ => false,
    })
}

/// Closes idle sessions, and sessions that made no call soon after opening, checking a few
/// times per TTL.
async fn reap(sessions: Weak<Sessions>) {
    loop {
        let Some(s) = sessions.upgrade() else { return };
        let limits = **s.settings.load();
        let expired = |session: &Session| {
            if session.idle() >= limits.session_ttl {
                Some("idle past config.mcp.sessionTtl")
            } else if !session.used() && session.idle() >= limits.unused_session_ttl {
                Some("no call within config.mcp.unusedSessionTtl of opening")
            } else {
                None
            }
        };
        let doomed: Vec<Arc<str>> = s
            .map
            .iter()
            .filter(|e| expired(e.value()).is_some())
            .map(|e| e.key().clone())
            .collect();
        for id in doomed {
            // Still expired now? A call may have started since the scan.
            let mut why = None;
            if let Some((_, session)) = s.map.remove_if(&id, |_, session| {
                why = expired(session);
                why.is_some()
            }) {
                s.metrics.mcp_sessions.dec();
                tracing::info!(session = %session.log_id, why, "closing MCP session");
                tokio::spawn(async move { session.close().await });
            }
        }
        let shortest = limits.session_ttl.min(limits.unused_session_ttl);
        let every = (shortest / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        drop(s);
        tokio::time::sleep(every).await;
    }
}

/// The client for remote (`sse` / `mcp`) targets without `backendTLS`: rustls with ring and
/// webpki roots, like the proxy's own upstream client.
fn remote_client() -> reqwest::Client {
    reqwest_client(crate::tls::backend::default_client_config()).unwrap_or_default()
}

/// A client for remote targets over `tls`; redirects are not followed.
pub fn reqwest_client(tls: rustls::ClientConfig) -> reqwest::Result<reqwest::Client> {
    // A redirect could carry the session's messages (and the URL's credentials) elsewhere.
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(tls)
        .build()
}

/// What the proxy hands over for a request routed to an MCP backend.
pub struct McpRequest<'a> {
    pub sessions: &'a Arc<Sessions>,
    pub backend: &'a McpBackend,
    /// The route's `backendTLS` client for remote targets, if it has one.
    pub remote_http: Option<&'a reqwest::Client>,
    /// The config's OpenAPI specs, for `openapi` targets.
    pub openapi: &'a OpenApiSpecs,
    pub observer: Observer,
    pub max_body: u64,
    /// The caller's token for remote targets (`backendAuth.passthrough`), kept by a session it
    /// opens.
    pub passthrough: Option<Passthrough>,
}

/// Serves one client request: legacy SSE when the path's last segment is `sse`, Streamable
/// HTTP otherwise.
pub async fn serve(
    call: McpRequest<'_>,
    parts: request::Parts,
    body: impl RequestBody,
) -> Result<Response<BoxBody>, ProxyError> {
    if parts.uri.path().rsplit('/').next() == Some("sse") {
        legacy_sse::serve(call, parts, body).await
    } else {
        streamable::serve(call, parts, body).await
    }
}
