//! One client session: its targets, its `initialize` (kept to replay on respawn), and how each
//! client message is answered: lists fan out and merge, calls go to the target their name names.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::join_all;
use rmcp::model::{
    ClientNotification, ClientRequest, ErrorCode, ErrorData, Implementation,
    InitializeRequestParams, InitializeResult, JsonRpcRequest, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, ProtocolVersion, Reference,
    ServerCapabilities, ServerResult,
};
use rmcp::service::ServiceError;
use tokio_util::sync::CancellationToken;
use tollgate_shared::config::model::{FailureMode, McpBackend, McpTargetKind};

use super::names::Naming;
use super::openapi::OpenApiSpecs;
use super::outbound::Outbound;
use super::upstream::{Connection, Remote, TargetError, Upstream};
use super::{Observer, RouteKey};

/// The client's transport, which decides where answers go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    StreamableHttp,
    Sse,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::StreamableHttp => "streamableHttp",
            TransportKind::Sse => "sse",
        }
    }
}

pub struct Session {
    /// A bearer capability: logs show [`Session::log_id`] instead.
    pub id: Arc<str>,
    /// What logs and telemetry name the session by: a short hash, since the id grants access.
    pub log_id: Arc<str>,
    pub route: RouteKey,
    pub transport: TransportKind,
    pub backend: McpBackend,
    /// The client address that opened it, for the per-client limits.
    pub client: IpAddr,
    /// The identity that opened it (`jwtAuth`): only the same identity may use it.
    pub identity: Option<String>,
    pub targets: Vec<Upstream>,
    naming: Naming,
    init: OnceLock<InitializeRequestParams>,
    pub outbound: Outbound,
    /// Bounds the requests a legacy SSE client may have in progress.
    pub sse_calls: Arc<tokio::sync::Semaphore>,
    created: tokio::time::Instant,
    /// Milliseconds after `created` of the last client message.
    last_used: AtomicU64,
    /// Set by the first call after `initialize`; unused sessions expire early.
    used: AtomicBool,
    in_flight: AtomicUsize,
    /// Woken when the last call in flight ends.
    idle_calls: tokio::sync::Notify,
    /// Cancelled when the session ends: its event stream closes.
    pub closed: CancellationToken,
}

/// One call in flight; dropping it (normally or because the request was abandoned) ends it.
struct InFlight<'a>(&'a Session);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.touch();
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_calls.notify_waiters();
        }
    }
}

/// What a list holds, for `mcpAuthorization`: the kind of item and how it is named.
type Listed<T> = (Kind, fn(&T) -> &str);

/// What a client-facing name refers to (the `resource_type` metric label).
#[derive(Clone, Copy)]
enum Kind {
    Tool,
    Prompt,
    Resource,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Tool => "tool",
            Kind::Prompt => "prompt",
            Kind::Resource => "resource",
        }
    }
}

/// How long a list call may wait for one target before fail-open skips it.
const FAN_OUT_TIMEOUT: Duration = Duration::from_secs(30);

/// Protocol revisions with the `initialize` handshake, which the gateway serves.
pub(super) const HANDSHAKE_VERSIONS: [ProtocolVersion; 4] = [
    ProtocolVersion::V_2024_11_05,
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
];

impl Session {
    pub fn new(
        id: Arc<str>,
        route: RouteKey,
        transport: TransportKind,
        backend: McpBackend,
        (client, identity): (IpAddr, Option<String>),
        remote: impl Fn() -> Remote,
        openapi: &OpenApiSpecs,
    ) -> Session {
        let naming = Naming::new(backend.targets.len(), backend.prefix_mode);
        let outbound = Outbound::new();
        let targets = backend
            .targets
            .iter()
            .map(|t| {
                let is_remote = !matches!(t.kind, McpTargetKind::Stdio { .. });
                let tools = match &t.kind {
                    McpTargetKind::OpenApi { schema, .. } => openapi.get(schema),
                    _ => None,
                };
                let remote = is_remote.then(&remote);
                Upstream::new(t.clone(), remote, outbound.clone(), naming, tools)
            })
            .collect();
        Session {
            log_id: log_id(&id).into(),
            id,
            route,
            transport,
            backend,
            client,
            identity,
            targets,
            naming,
            init: OnceLock::new(),
            outbound,
            sse_calls: Arc::new(tokio::sync::Semaphore::new(super::legacy_sse::SSE_CALLS)),
            created: tokio::time::Instant::now(),
            last_used: AtomicU64::new(0),
            used: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle_calls: tokio::sync::Notify::new(),
            closed: CancellationToken::new(),
        }
    }

    /// Whether the client made a call besides `initialize`.
    pub fn used(&self) -> bool {
        self.used.load(Ordering::Relaxed)
    }

    pub fn age(&self) -> Duration {
        self.created.elapsed()
    }

    pub fn idle(&self) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_used.load(Ordering::Relaxed));
        self.created.elapsed().saturating_sub(last)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn touch(&self) {
        self.last_used
            .store(self.created.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Marks a call in flight until the guard drops, also when the client goes away and the
    /// call's future is dropped.
    fn call(&self) -> InFlight<'_> {
        self.touch();
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self)
    }

    /// Resolves once no call is in flight.
    pub async fn calls_done(&self) {
        loop {
            let idle = self.idle_calls.notified();
            if self.in_flight() == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Kills the children and ends the event stream.
    pub async fn close(&self) {
        self.closed.cancel();
        join_all(self.targets.iter().map(|t| t.close())).await;
    }

    /// Connects every target with the client's `initialize` and merges their answers.
    pub async fn initialize(
        &self,
        params: InitializeRequestParams,
        obs: &Observer,
    ) -> Result<InitializeResult, ErrorData> {
        let _call = self.call();
        let params = self.init.get_or_init(|| params);
        let results = join_all(self.targets.iter().map(|t| t.connect(params))).await;
        let mut ok = Vec::new();
        let mut failures = Vec::new();
        for (target, result) in self.targets.iter().zip(results) {
            match result {
                Ok(conn) => ok.push((target.name.clone(), conn)),
                Err(e) => {
                    obs.target_failed(&target.name, &e.to_string());
                    failures.push(e.to_string());
                }
            }
        }
        if ok.is_empty() || (!failures.is_empty() && self.fail_closed()) {
            return Err(ErrorData::internal_error(failures.join("; "), None));
        }
        let version = if HANDSHAKE_VERSIONS.contains(&params.protocol_version) {
            params.protocol_version.clone()
        } else {
            ProtocolVersion::V_2025_11_25
        };
        let mut capabilities = ServerCapabilities::default();
        let mut instructions = Vec::new();
        for (name, conn) in &ok {
            let c = &conn.info.capabilities;
            capabilities.tools = capabilities.tools.or(c.tools.clone());
            capabilities.prompts = capabilities.prompts.or(c.prompts.clone());
            capabilities.resources = capabilities.resources.or(c.resources.clone());
            capabilities.logging = capabilities.logging.or(c.logging.clone());
            capabilities.completions = capabilities.completions.or(c.completions.clone());
            if let Some(text) = &conn.info.instructions {
                instructions.push(if ok.len() > 1 {
                    format!("{name}: {text}")
                } else {
                    text.clone()
                });
            }
        }
        let server_info = match ok.as_slice() {
            [(name, only)] if self.targets.len() == 1 => only
                .info
                .server_info
                .clone()
                .unwrap_or_else(|| Implementation::new(name.to_string(), "")),
            _ => Implementation::new("tollgate", env!("CARGO_PKG_VERSION")),
        };
        let mut result = InitializeResult::new(capabilities)
            .with_protocol_version(version)
            .with_server_info(server_info);
        if !instructions.is_empty() {
            result = result.with_instructions(instructions.join("\n"));
        }
        Ok(result)
    }

    fn fail_closed(&self) -> bool {
        self.backend.failure_mode == FailureMode::FailClosed
    }

    fn target_names(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.name.as_ref()).collect()
    }

    /// Answers one client request (not `initialize`).
    pub async fn answer(
        &self,
        request: JsonRpcRequest<ClientRequest>,
        obs: &Observer,
    ) -> Result<ServerResult, ErrorData> {
        let _call = self.call();
        self.used.store(true, Ordering::Relaxed);
        let result = self.dispatch(request.request, obs).await;
        result.map(|mut r| {
            r.strip_result_type_for_legacy_peer();
            r.strip_non_object_output_for_legacy_peer();
            r
        })
    }

    async fn dispatch(
        &self,
        request: ClientRequest,
        obs: &Observer,
    ) -> Result<ServerResult, ErrorData> {
        match request {
            ClientRequest::PingRequest(_) => Ok(ServerResult::empty(())),
            ClientRequest::InitializeRequest(_) => Err(ErrorData::invalid_request(
                "this session is already initialized",
                None,
            )),
            ClientRequest::ListToolsRequest(_) => {
                obs.request("tools/list", "tool", None, None);
                let tools = self
                    .merged(
                        obs,
                        |c| async move { c.list_tools().await },
                        Some((Kind::Tool, |x: &rmcp::model::Tool| x.name.as_ref())),
                        |t, x| x.name = self.naming.name(t, &x.name).into(),
                    )
                    .await?;
                Ok(ServerResult::ListToolsResult(
                    ListToolsResult::with_all_items(tools),
                ))
            }
            ClientRequest::ListPromptsRequest(_) => {
                obs.request("prompts/list", "prompt", None, None);
                let prompts = self
                    .merged(
                        obs,
                        |c| async move { c.list_prompts().await },
                        Some((Kind::Prompt, |x: &rmcp::model::Prompt| x.name.as_str())),
                        |t, x| x.name = self.naming.name(t, &x.name),
                    )
                    .await?;
                Ok(ServerResult::ListPromptsResult(
                    ListPromptsResult::with_all_items(prompts),
                ))
            }
            ClientRequest::ListResourcesRequest(_) => {
                obs.request("resources/list", "resource", None, None);
                let resources = self
                    .merged(
                        obs,
                        |c| async move { c.list_resources().await },
                        Some((Kind::Resource, |x: &rmcp::model::Resource| x.uri.as_str())),
                        |t, x| x.uri = self.naming.uri(t, &x.uri),
                    )
                    .await?;
                Ok(ServerResult::ListResourcesResult(
                    ListResourcesResult::with_all_items(resources),
                ))
            }
            ClientRequest::ListResourceTemplatesRequest(_) => {
                obs.request("resources/templates/list", "templates", None, None);
                let templates = self
                    .merged(
                        obs,
                        |c| async move { c.list_resource_templates().await },
                        None,
                        |t, x| x.uri_template = self.naming.uri(t, &x.uri_template),
                    )
                    .await?;
                Ok(ServerResult::ListResourceTemplatesResult(
                    ListResourceTemplatesResult::with_all_items(templates),
                ))
            }
            ClientRequest::SetLevelRequest(r) => {
                obs.request("logging/setLevel", "", None, None);
                let req = ClientRequest::SetLevelRequest(r);
                self.fan_out(obs, |conn| {
                    let req = req.clone();
                    async move { conn.request(req).await }
                })
                .await?;
                Ok(ServerResult::empty(()))
            }
            ClientRequest::CallToolRequest(mut r) => {
                let mut name = r.params.name.to_string();
                let index = self.route_to(&mut name, Kind::Tool, "tools/call", obs)?;
                r.params.name = name.into();
                self.forward(index, ClientRequest::CallToolRequest(r), obs)
                    .await
            }
            ClientRequest::GetPromptRequest(mut r) => {
                let index = self.route_to(&mut r.params.name, Kind::Prompt, "prompts/get", obs)?;
                self.forward(index, ClientRequest::GetPromptRequest(r), obs)
                    .await
            }
            ClientRequest::ReadResourceRequest(mut r) => {
                let index =
                    self.route_to(&mut r.params.uri, Kind::Resource, "resources/read", obs)?;
                self.forward(index, ClientRequest::ReadResourceRequest(r), obs)
                    .await
            }
            ClientRequest::SubscribeRequest(mut r) => {
                let index = self.route_to(
                    &mut r.params.uri,
                    Kind::Resource,
                    "resources/subscribe",
                    obs,
                )?;
                self.forward(index, ClientRequest::SubscribeRequest(r), obs)
                    .await
            }
            ClientRequest::UnsubscribeRequest(mut r) => {
                let method = "resources/unsubscribe";
                let index = self.route_to(&mut r.params.uri, Kind::Resource, method, obs)?;
                self.forward(index, ClientRequest::UnsubscribeRequest(r), obs)
                    .await
            }
            ClientRequest::CompleteRequest(mut r) => {
                let method = "completion/complete";
                let index = match &mut r.params.r#ref {
                    Reference::Prompt(p) => {
                        self.route_to(&mut p.name, Kind::Prompt, method, obs)?
                    }
                    Reference::Resource(t) => {
                        self.route_to(&mut t.uri, Kind::Resource, method, obs)?
                    }
                    _ => {
                        return Err(ErrorData::invalid_params(
                            "unknown completion reference",
                            None,
                        ));
                    }
                };
                self.forward(index, ClientRequest::CompleteRequest(r), obs)
                    .await
            }
            other => {
                obs.note(other.method(), "", None, None);
                obs.count("other", "", "", "");
                Err(ErrorData::new(
                    ErrorCode::METHOD_NOT_FOUND,
                    format!(
                        "method `{}` is not supported by this gateway",
                        other.method()
                    ),
                    None,
                ))
            }
        }
    }

    /// Passes a client notification on: cancellations and roots changes go to every target.
    pub async fn notify(&self, notification: ClientNotification) {
        self.touch();
        // Each target got its own `initialized` during connect; a cancellation names the
        // client's request id, which no target knows (rmcp numbers upstream requests itself),
        // so forwarding it could cancel another call: the call runs to its end instead.
        if matches!(
            notification,
            ClientNotification::InitializedNotification(_)
                | ClientNotification::CancelledNotification(_)
        ) {
            return;
        }
        for target in &self.targets {
            if let Some(conn) = target.connection() {
                let _ = conn.notify(notification.clone()).await;
            }
        }
    }

    /// The target that `text` (a client-facing name or URI) names; `text` becomes the
    /// target's own name and the request is noted (it is counted once answered).
    fn route_to(
        &self,
        text: &mut String,
        kind: Kind,
        method: &str,
        obs: &Observer,
    ) -> Result<usize, ErrorData> {
        let names = self.target_names();
        let split = match kind {
            Kind::Resource => self.naming.split_uri(&names, text),
            Kind::Tool | Kind::Prompt => self.naming.split_name(&names, text),
        };
        let (index, own) = split.ok_or_else(|| {
            ErrorData::invalid_params(format!("unknown {} `{text}`", kind.as_str()), None)
        })?;
        let own = own.to_string();
        let target = &self.targets[index].name;
        obs.note(method, kind.as_str(), Some(target), Some(&own));
        // agentgateway's answer: the item is unknown, so the caller learns nothing of it.
        if let Some((rules, ctx)) = obs.access()
            && !rules.allows_mcp(&ctx, kind.as_str(), target, &own)
        {
            return Err(ErrorData::invalid_params(
                format!("Unknown {}: {text}", kind.as_str()),
                None,
            ));
        }
        *text = own;
        Ok(index)
    }

    /// Sends one request to one target, reconnecting it first if it died.
    async fn forward(
        &self,
        index: usize,
        request: ClientRequest,
        obs: &Observer,
    ) -> Result<ServerResult, ErrorData> {
        let target = &self.targets[index];
        let init = self
            .init
            .get()
            .ok_or_else(|| not_initialized(&target.name))?;
        #[expect(
            clippy::disallowed_methods,
            reason = "a connect's duration is wall time"
        )]
        let started = std::time::Instant::now();
        let conn = target.connect(init).await.map_err(|e| {
            obs.target_failed(&target.name, &e.to_string());
            obs.count_routed(false);
            ErrorData::internal_error(e.to_string(), None)
        })?;
        let span = obs.record.trace.as_ref().map(|t| {
            t.call(
                format!("{} {}", request.method(), target.name),
                vec![
                    opentelemetry::KeyValue::new("mcp.method.name", request.method().to_string()),
                    opentelemetry::KeyValue::new("mcp.target", target.name.to_string()),
                ],
            )
        });
        let result = conn
            .request(request)
            .await
            .map_err(|e| target_error(&target.name, e, obs));
        obs.record.add_upstream(started.elapsed());
        // A tool error result may just mean "unknown tool": not a name to make a label of.
        obs.count_routed(matches!(
            &result,
            Ok(r) if !matches!(r, ServerResult::CallToolResult(c) if c.is_error == Some(true))
        ));
        if let Some(span) = span {
            span.end(
                result
                    .as_ref()
                    .map(|_| None)
                    .map_err(|e| e.message.to_string()),
            );
        }
        result
    }

    /// Every target's whole list, each item renamed for its target by `rename`. With
    /// `mcpAuthorization`, only the items of `kind` (named by `name`) the caller may use.
    async fn merged<T, F, Fut>(
        &self,
        obs: &Observer,
        list: F,
        authorized: Option<Listed<T>>,
        rename: impl Fn(&str, &mut T),
    ) -> Result<Vec<T>, ErrorData>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<T>, ServiceError>>,
    {
        let lists = self.fan_out(obs, list).await?;
        // One context for the whole list: only `mcp` changes from item to item.
        let access = authorized.and_then(|a| Some((a, obs.access()?)));
        let mut all = Vec::new();
        for (target, items) in lists {
            all.extend(
                items
                    .into_iter()
                    .filter(|item| {
                        access.as_ref().is_none_or(|((kind, name), (rules, ctx))| {
                            rules.allows_mcp(ctx, kind.as_str(), target, name(item))
                        })
                    })
                    .map(|mut item| {
                        rename(target, &mut item);
                        item
                    }),
            );
        }
        Ok(all)
    }

    /// Runs `call` on every target; failed targets are skipped (fail-open) or fail the call.
    async fn fan_out<'a, T, F, Fut>(
        &'a self,
        obs: &Observer,
        call: F,
    ) -> Result<Vec<(&'a str, T)>, ErrorData>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        let init = self
            .init
            .get()
            .ok_or_else(|| ErrorData::invalid_request("the session is not initialized", None))?;
        let calls = self.targets.iter().map(|target| {
            let call = &call;
            let attempt = async move {
                let conn = target
                    .connect(init)
                    .await
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                call(conn).await.map_err(|e| service_error(&target.name, e))
            };
            // A target that hangs is a failing target: fail-open skips it.
            async move {
                tokio::time::timeout(FAN_OUT_TIMEOUT, attempt)
                    .await
                    .unwrap_or_else(|_| {
                        Err(ErrorData::internal_error(
                            format!(
                                "MCP target `{}` did not answer within {}",
                                target.name,
                                humantime::format_duration(FAN_OUT_TIMEOUT)
                            ),
                            None,
                        ))
                    })
            }
        });
        #[expect(
            clippy::disallowed_methods,
            reason = "a fan-out's duration is wall time"
        )]
        let started = std::time::Instant::now();
        let results = join_all(calls).await;
        obs.record.add_upstream(started.elapsed());
        let mut ok = Vec::new();
        let mut last_error = None;
        for (target, result) in self.targets.iter().zip(results) {
            match result {
                Ok(value) => ok.push((target.name.as_ref(), value)),
                Err(e) => {
                    obs.target_failed(&target.name, &e.message);
                    if self.fail_closed() {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        match (ok.is_empty(), last_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(ok),
        }
    }
}

/// A session id as logs show it: the first 8 hex digits of its SHA-256.
fn log_id(id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

fn not_initialized(target: &Arc<str>) -> ErrorData {
    ErrorData::invalid_request(
        TargetError::NotInitialized {
            target: target.clone(),
        }
        .to_string(),
        None,
    )
}

fn target_error(target: &str, e: ServiceError, obs: &Observer) -> ErrorData {
    let data = service_error(target, e);
    if data.code == ErrorCode::INTERNAL_ERROR {
        obs.target_failed(target, &data.message);
    }
    data
}

/// A target's own JSON-RPC errors pass through; transport failures become internal errors.
fn service_error(target: &str, e: ServiceError) -> ErrorData {
    match e {
        ServiceError::McpError(data) => data,
        ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
            ErrorData::internal_error(
                format!(
                    "MCP target `{target}` closed its connection (the server exited?); the next call restarts it"
                ),
                None,
            )
        }
        other => ErrorData::internal_error(
            format!(
                "MCP target `{target}` failed: {}",
                super::upstream::without_urls(&other.to_string())
            ),
            None,
        ),
    }
}
