//! One session's connection to one MCP target: a stdio child spoken to directly (see
//! [`super::stdio`]), or a Streamable HTTP server, a legacy SSE server or an OpenAPI target's
//! in-process server, driven by rmcp's client.
//!
//! A connection that closes (a child that exited) is re-opened on the next call, replaying the
//! session's `initialize`, so the client's session keeps working.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use process_wrap::tokio::ChildWrapper;
use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{
    ClientNotification, ClientRequest, Cursor, ErrorData, InitializeRequest,
    InitializeRequestParams, InitializedNotification, ListPromptsRequest,
    ListResourceTemplatesRequest, ListResourcesRequest, ListToolsRequest, PaginatedRequestParams,
    Prompt, Resource, ResourceTemplate, ServerNotification, ServerPeerInfo, ServerRequest,
    ServerResult, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, Service, ServiceExt};
use tokio::net::unix::pipe;
use tollgate_shared::config::model::{McpTarget, McpTargetKind};

use super::names::Naming;
use super::openapi::{OpenApiServer, ToolSet};
use super::outbound::Outbound;
use super::{sse_client, stdio};
use crate::http::passthrough::Passthrough;
use crate::http::sse::MAX_SSE_EVENT;

/// How long a target may take to start and answer `initialize`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closing connection may take to stop before its process group is killed.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// The in-memory pipe between a session and an OpenAPI target's server.
const IN_PROCESS_BUFFER: usize = 64 * 1024;

/// Why a target could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("MCP target `{target}` could not be started: {reason}")]
    Start { target: Arc<str>, reason: String },
    #[error("MCP target `{target}` is not initialized")]
    NotInitialized { target: Arc<str> },
    #[error("MCP target `{target}` belongs to a session that has ended")]
    Closed { target: Arc<str> },
}

/// The live connection of one target.
pub struct Connection {
    link: Link,
    /// The target's name, for errors.
    target: Arc<str>,
    pub pid: Option<u32>,
    pub info: ServerPeerInfo,
}

/// How a connection reaches its target.
enum Link {
    /// A stdio child, with its process: held so that dropping the link kills its group.
    Stdio {
        child: stdio::Child,
        _process: Box<dyn ChildWrapper>,
    },
    /// A remote or in-process target, through rmcp's client service.
    Service(RunningService<RoleClient, Forwarder>),
}

/// Most pages one list may take. A target that always names a next page would otherwise be
/// asked forever while its items piled up in memory.
const MAX_LIST_PAGES: usize = 100;

/// Every page of `target`'s list, at most [`MAX_LIST_PAGES`]: `send` sends one request, `ask`
/// makes the request for one page, `page` reads its answer.
async fn list_all<T, Fut>(
    target: &str,
    send: impl Fn(ClientRequest) -> Fut,
    ask: impl Fn(PaginatedRequestParams) -> ClientRequest,
    page: impl Fn(ServerResult) -> Option<(Vec<T>, Option<Cursor>)>,
) -> Result<Vec<T>, ServiceError>
where
    Fut: Future<Output = Result<ServerResult, ServiceError>>,
{
    let mut all = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_LIST_PAGES {
        let params = PaginatedRequestParams::default().with_cursor(cursor);
        let (items, next) =
            page(send(ask(params)).await?).ok_or(ServiceError::UnexpectedResponse)?;
        all.extend(items);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
    tracing::warn!(
        mcp_target = target,
        pages = MAX_LIST_PAGES,
        "MCP target's list goes on past the page limit"
    );
    Err(ServiceError::McpError(ErrorData::internal_error(
        format!("MCP target `{target}` listed more than {MAX_LIST_PAGES} pages"),
        None,
    )))
}

/// A list method of [`Connection`]: every target, stdio or not, is asked page by page, with
/// the bound of [`list_all`].
macro_rules! list {
    ($($(#[$doc:meta])* $name:ident -> $item:ty: $request:ident, $result:ident.$items:ident;)*) => {
        $(
            $(#[$doc])*
            pub async fn $name(&self) -> Result<Vec<$item>, ServiceError> {
                let ask = |p| ClientRequest::$request($request::with_param(p));
                list_all(&self.target, |r| self.request(r), ask, |r| match r {
                    ServerResult::$result(r) => Some((r.$items, r.next_cursor)),
                    _ => None,
                })
                .await
            }
        )*
    };
}

impl Connection {
    fn is_closed(&self) -> bool {
        match &self.link {
            Link::Stdio { child, .. } => child.is_closed(),
            Link::Service(s) => s.is_closed() || s.peer().is_transport_closed(),
        }
    }

    pub async fn request(&self, request: ClientRequest) -> Result<ServerResult, ServiceError> {
        match &self.link {
            Link::Stdio { child, .. } => child.request(request).await,
            Link::Service(s) => s.peer().send_request(request).await,
        }
    }

    pub async fn notify(&self, notification: ClientNotification) -> Result<(), ServiceError> {
        match &self.link {
            Link::Stdio { child, .. } => child.notify(notification).await,
            Link::Service(s) => s.peer().send_notification(notification).await,
        }
    }

    list! {
        /// Every tool of the target, page by page.
        list_tools -> Tool: ListToolsRequest, ListToolsResult.tools;
        /// Every prompt of the target, page by page.
        list_prompts -> Prompt: ListPromptsRequest, ListPromptsResult.prompts;
        /// Every resource of the target, page by page.
        list_resources -> Resource:
            ListResourcesRequest, ListResourcesResult.resources;
        /// Every resource template of the target, page by page.
        list_resource_templates -> ResourceTemplate:
            ListResourceTemplatesRequest,
            ListResourceTemplatesResult.resource_templates;
    }

    /// Stops the connection: a stdio child's stdin closes and it gets [`CLOSE_WAIT`] to exit;
    /// a service is closed the same way, or cancelled while calls still hold it.
    async fn close(conn: Arc<Connection>) {
        match Arc::try_unwrap(conn) {
            Ok(Connection {
                link: Link::Service(mut service),
                ..
            }) => {
                let _ = tokio::time::timeout(CLOSE_WAIT, service.close()).await;
            }
            Ok(conn) => conn.shutdown().await,
            Err(conn) => conn.shutdown().await,
        }
    }

    async fn shutdown(&self) {
        match &self.link {
            Link::Stdio { child, .. } => child.shutdown(CLOSE_WAIT).await,
            Link::Service(s) => s.cancellation_token().cancel(),
        }
    }
}

/// How a session reaches remote targets: its HTTP client and, with
/// `backendAuth.passthrough`, the token of the caller that opened it.
#[derive(Clone)]
pub struct Remote {
    pub http: reqwest::Client,
    pub passthrough: Option<Passthrough>,
}

impl Remote {
    pub(super) fn url(&self, url: &str) -> String {
        self.passthrough
            .as_ref()
            .map_or_else(|| url.to_string(), |p| p.url(url))
    }

    /// Headers sent with every request to the target.
    pub(super) fn headers(&self) -> Option<(http::HeaderName, http::HeaderValue)> {
        self.passthrough.as_ref().and_then(Passthrough::header)
    }
}

pub struct Upstream {
    pub target: McpTarget,
    pub name: Arc<str>,
    live: ArcSwapOption<Connection>,
    /// Serializes (re)connects so one death respawns one child.
    connecting: tokio::sync::Mutex<()>,
    pub restarts: AtomicU32,
    /// Set by `close`: no connection opens after it.
    closed: AtomicBool,
    /// The HTTP client of remote targets (`None` for stdio ones).
    remote: Option<Remote>,
    outbound: Outbound,
    naming: Naming,
    /// An `openapi` target's tools, read when the config was applied.
    openapi: Option<Arc<ToolSet>>,
}

impl Upstream {
    pub fn new(
        target: McpTarget,
        remote: Option<Remote>,
        outbound: Outbound,
        naming: Naming,
        openapi: Option<Arc<ToolSet>>,
    ) -> Upstream {
        Upstream {
            name: target.name.as_str().into(),
            target,
            live: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            restarts: AtomicU32::new(0),
            closed: AtomicBool::new(false),
            remote,
            outbound,
            naming,
            openapi,
        }
    }

    pub fn connection(&self) -> Option<Arc<Connection>> {
        self.live.load_full()
    }

    /// The live connection, opened (or re-opened after it closed) with `init`.
    pub async fn connect(
        &self,
        init: &InitializeRequestParams,
    ) -> Result<Arc<Connection>, TargetError> {
        if let Some(c) = self.live.load_full().filter(|c| !c.is_closed()) {
            return Ok(c);
        }
        let _guard = self.connecting.lock().await;
        if self.closed.load(Ordering::Acquire) {
            return Err(TargetError::Closed {
                target: self.name.clone(),
            });
        }
        let previous = self.live.load_full();
        if let Some(c) = previous.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        if previous.is_some() {
            self.restarts.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target_name = %self.name, "MCP target connection closed; reconnecting and replaying initialize");
        }
        let opened = tokio::time::timeout(START_TIMEOUT, self.open(init))
            .await
            .map_err(|_| TargetError::Start {
                target: self.name.clone(),
                reason: format!(
                    "no answer to initialize within {}",
                    humantime::format_duration(START_TIMEOUT)
                ),
            })??;
        let conn = Arc::new(opened);
        self.live.store(Some(conn.clone()));
        Ok(conn)
    }

    /// Closes the connection for good: the service stops and a stdio child's whole process
    /// group is killed (servers started through `uvx` or `npx` leave no grandchildren).
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // A connect in progress finishes (or times out) first, so nothing starts after this.
        let _guard = self.connecting.lock().await;
        if let Some(conn) = self.live.swap(None) {
            let pid = conn.pid;
            Connection::close(conn).await;
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    async fn open(&self, init: &InitializeRequestParams) -> Result<Connection, TargetError> {
        let notifications =
            Notifications::new(self.name.clone(), self.outbound.clone(), self.naming);
        let forwarder = Forwarder {
            init: upstream_init(init),
            notifications: notifications.clone(),
        };
        let fail = |reason: String| TargetError::Start {
            target: self.name.clone(),
            reason,
        };
        // A remote target's URL may hold credentials: its errors reach clients without it.
        let remote_fail = |reason: String| fail(without_urls(&reason));
        let service = match &self.target.kind {
            McpTargetKind::Stdio {
                cmd,
                args,
                env,
                inherit_env,
            } => {
                let mut command = tokio::process::Command::new(cmd);
                command.args(args.iter().map(|a| a.expose())).env_clear();
                command.envs(std::env::vars_os().filter(|(name, _)| {
                    name.to_str()
                        .is_some_and(|n| inherited(n) || inherit_env.iter().any(|i| i == n))
                }));
                for (k, v) in env {
                    command.env(k, v.expose());
                }
                command
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let mut wrapped = CommandWrap::from(command);
                wrapped.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
                let mut process = wrapped
                    .spawn()
                    .map_err(|e| fail(format!("cannot run `{cmd}`: {e}")))?;
                return self
                    .open_stdio(&mut process, forwarder.init, notifications)
                    .await
                    .map_err(|e| fail(format!("`{cmd}`: {e}")))
                    .map(|(child, info)| {
                        let pid = process.id();
                        tracing::info!(target_name = %self.name, ?pid, server = server_name(&info), "MCP target connected");
                        Connection {
                            link: Link::Stdio {
                                child,
                                _process: process,
                            },
                            target: self.name.clone(),
                            pid,
                            info,
                        }
                    });
            }
            McpTargetKind::Mcp { url } => {
                let remote = self
                    .remote
                    .as_ref()
                    .ok_or_else(|| fail("no HTTP client".into()))?;
                let transport = StreamableHttpClientTransport::with_client(
                    remote.http.clone(),
                    // The same bounds as the legacy SSE client's (rmcp's default is 16 MiB).
                    StreamableHttpClientTransportConfig::with_uri(remote.url(url.expose()))
                        .custom_headers(remote.headers().into_iter().collect())
                        .max_sse_event_size(MAX_SSE_EVENT)
                        .max_json_response_size(MAX_SSE_EVENT),
                );
                start(forwarder, transport, remote_fail).await?
            }
            McpTargetKind::Sse { url } => {
                let remote = self
                    .remote
                    .as_ref()
                    .ok_or_else(|| fail("no HTTP client".into()))?;
                let url = remote.url(url.expose());
                let transport = sse_client::connect(&remote.http, &url, remote.headers())
                    .await
                    .map_err(|e| remote_fail(e.to_string()))?;
                start(forwarder, transport, remote_fail).await?
            }
            McpTargetKind::OpenApi { url, .. } => {
                let remote = self
                    .remote
                    .as_ref()
                    .ok_or_else(|| fail("no HTTP client".into()))?;
                let tools = self
                    .openapi
                    .clone()
                    .ok_or_else(|| fail("its OpenAPI spec was not loaded".into()))?;
                let server = OpenApiServer {
                    tools,
                    base: url.expose().to_string(),
                    remote: remote.clone(),
                };
                let (ours, theirs) = tokio::io::duplex(IN_PROCESS_BUFFER);
                // The server ends when the session's side of the pipe closes.
                tokio::spawn(async move {
                    if let Ok(running) = rmcp::ServiceExt::serve(server, theirs).await {
                        let _ = running.waiting().await;
                    }
                });
                start(forwarder, ours, fail).await?
            }
        };
        let info = service
            .peer()
            .peer_info()
            .map(|i| (*i).clone())
            .ok_or_else(|| fail("the server sent no initialize result".into()))?;
        tracing::info!(target_name = %self.name, server = server_name(&info), "MCP target connected");
        Ok(Connection {
            link: Link::Service(service),
            target: self.name.clone(),
            pid: None,
            info,
        })
    }

    /// Starts the direct line protocol with a spawned child and runs the handshake on it:
    /// `initialize`, then `notifications/initialized`.
    async fn open_stdio(
        &self,
        process: &mut Box<dyn ChildWrapper>,
        init: InitializeRequestParams,
        notifications: Notifications,
    ) -> Result<(stdio::Child, ServerPeerInfo), String> {
        let (Some(stdin), Some(stdout)) = (process.stdin().take(), process.stdout().take()) else {
            return Err("its stdin and stdout are not pipes".into());
        };
        let stdin = stdin
            .into_owned_fd()
            .and_then(pipe::Sender::from_owned_fd)
            .map_err(|e| format!("its stdin: {e}"))?;
        if let Some(stderr) = process.stderr().take() {
            tokio::spawn(stdio::log_stderr(self.name.clone(), process.id(), stderr));
        }
        let child = stdio::Child::start(self.name.clone(), stdin, stdout, notifications);
        let answer = child
            .request(ClientRequest::InitializeRequest(InitializeRequest::new(
                init,
            )))
            .await
            .map_err(|e| e.to_string())?;
        let ServerResult::InitializeResult(result) = answer else {
            return Err("the server sent no initialize result".into());
        };
        child
            .notify(ClientNotification::InitializedNotification(
                InitializedNotification::default(),
            ))
            .await
            .map_err(|e| e.to_string())?;
        Ok((child, result.into()))
    }
}

fn server_name(info: &ServerPeerInfo) -> &str {
    info.server_info
        .as_ref()
        .map(|i| i.name.as_str())
        .unwrap_or("")
}

/// `text` with every URL replaced by `<url>`: errors name the target, never its address.
pub fn without_urls(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            if word.contains("://") {
                let end = &word[word.trim_end().len()..];
                format!("<url>{end}")
            } else {
                word.to_string()
            }
        })
        .collect()
}

/// Whether a stdio child sees the gateway's variable `name` without asking: enough to find
/// programs, a home, the locale and a temp dir; never the gateway's secrets (issue 12).
fn inherited(name: &str) -> bool {
    matches!(
        name,
        "PATH" | "HOME" | "LANG" | "LANGUAGE" | "TZ" | "TMPDIR" | "TMP" | "TEMP"
    ) || name.starts_with("LC_")
}

/// Runs rmcp's client handshake (`initialize`, then `initialized`) over `transport`.
async fn start<T, E, A>(
    forwarder: Forwarder,
    transport: T,
    fail: impl Fn(String) -> TargetError,
) -> Result<RunningService<RoleClient, Forwarder>, TargetError>
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    forwarder
        .serve(transport)
        .await
        .map_err(|e| fail(e.to_string()))
}

/// What the gateway tells a target about the client: the client's own identity and protocol
/// version, without the capabilities whose server-to-client requests the gateway answers itself.
fn upstream_init(init: &InitializeRequestParams) -> InitializeRequestParams {
    let mut params = init.clone();
    params.capabilities.roots = None;
    params.capabilities.sampling = None;
    params.capabilities.elicitation = None;
    params
}

/// Where a target's notifications go: the session's event stream, with resource URIs in the
/// session's names.
#[derive(Clone)]
pub struct Notifications {
    target: Arc<str>,
    outbound: Outbound,
    naming: Naming,
}

impl Notifications {
    pub fn new(target: Arc<str>, outbound: Outbound, naming: Naming) -> Notifications {
        Notifications {
            target,
            outbound,
            naming,
        }
    }

    pub fn forward(&self, mut notification: ServerNotification) {
        if let ServerNotification::ResourceUpdatedNotification(n) = &mut notification {
            n.params.uri = self.naming.uri(&self.target, &n.params.uri);
        }
        self.outbound.notify(notification);
    }
}

/// rmcp's client side of one target: forwards the target's notifications to the session.
struct Forwarder {
    init: InitializeRequestParams,
    notifications: Notifications,
}

impl Service<RoleClient> for Forwarder {
    async fn handle_request(
        &self,
        request: ServerRequest,
        _context: RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ClientResult, ErrorData> {
        match request {
            ServerRequest::PingRequest(_) => Ok(rmcp::model::ClientResult::empty(())),
            _ => Err(ErrorData::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                "the gateway does not forward server-to-client requests",
                None,
            )),
        }
    }

    async fn handle_notification(
        &self,
        notification: ServerNotification,
        _context: NotificationContext<RoleClient>,
    ) -> Result<(), ErrorData> {
        self.notifications.forward(notification);
        Ok(())
    }

    fn get_info(&self) -> InitializeRequestParams {
        self.init.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target that always names a next page is asked [`MAX_LIST_PAGES`] times, then the list
    /// fails with an error naming it; one that ends is listed whole.
    #[tokio::test]
    async fn lists_stop_at_the_page_limit() {
        let asked = AtomicU32::new(0);
        let endless = |last: u32| {
            let asked = &asked;
            move |_| {
                let page = asked.fetch_add(1, Ordering::Relaxed) + 1;
                let mut result = rmcp::model::ListToolsResult::with_all_items(vec![Tool::new(
                    format!("t{page}"),
                    "",
                    Arc::new(serde_json::Map::new()),
                )]);
                result.next_cursor = (page < last).then(|| page.to_string());
                std::future::ready(Ok(ServerResult::ListToolsResult(result)))
            }
        };
        let ask = |p| ClientRequest::ListToolsRequest(ListToolsRequest::with_param(p));
        let page = |r| match r {
            ServerResult::ListToolsResult(r) => Some((r.tools, r.next_cursor)),
            _ => None,
        };
        let all = list_all("t", endless(3), ask, page).await.unwrap();
        assert_eq!(all.len(), 3);
        asked.store(0, Ordering::Relaxed);
        let err = list_all("t", endless(u32::MAX), ask, page)
            .await
            .unwrap_err();
        assert_eq!(asked.load(Ordering::Relaxed) as usize, MAX_LIST_PAGES);
        assert!(
            err.to_string()
                .contains("MCP target `t` listed more than 100 pages"),
            "{err}"
        );
    }

    #[test]
    fn urls_are_cut_out_of_errors() {
        let text = "error sending request for url (http://u:pw@10.0.0.1:9/mcp?key=k): refused";
        assert_eq!(
            without_urls(text),
            "error sending request for url <url> refused"
        );
    }
}
