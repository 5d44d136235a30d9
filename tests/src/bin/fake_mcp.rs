//! `tollgate-fake-mcp`: a stdio MCP server built on rmcp, for the end-to-end tests.
//!
//! `tollgate-fake-mcp NAME` serves tools `add`, `echo`, `pid`, `sleep`, `announce` (sends a
//! notification), `flood` (writes an endless line) and `crash` (exits the process), and one resource `memo://NAME`, so tests can
//! tell targets and children apart.
//!
//! `tollgate-fake-mcp --http PORT` is instead the cheapest Streamable HTTP MCP server: `add`
//! only, answered like the gateway answers (one SSE event), so `tollgate-bench-mcp` can tell
//! what any HTTP hop costs apart from the gateway's own work.
#![forbid(unsafe_code)]

use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ServerCapabilities, ServerConfig,
    ServerNotification,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router};

#[derive(Clone)]
struct Fake {
    name: String,
    #[expect(dead_code, reason = "read by the tool_handler macro")]
    tool_router: ToolRouter<Fake>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    text: String,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct SleepArgs {
    ms: u64,
}

#[tool_router]
impl Fake {
    #[tool(description = "Adds two integers")]
    async fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        (a + b).to_string()
    }

    #[tool(description = "Returns its text, prefixed with the server name")]
    async fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        format!("{}: {text}", self.name)
    }

    #[tool(description = "The server's process id")]
    async fn pid(&self) -> String {
        std::process::id().to_string()
    }

    #[tool(description = "Sleeps, then answers")]
    async fn sleep(&self, Parameters(SleepArgs { ms }): Parameters<SleepArgs>) -> String {
        eprintln!("{} sleeping {ms} ms", self.name);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        format!("slept {ms} ms")
    }

    #[tool(description = "Sends notifications/tools/list_changed, then answers")]
    async fn announce(&self, context: RequestContext<RoleServer>) -> Result<String, ErrorData> {
        context
            .peer
            .send_notification(ServerNotification::ToolListChangedNotification(
                Default::default(),
            ))
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok("announced".into())
    }

    #[tool(description = "Writes a 9 MiB line to stdout, past the gateway's bound, then answers")]
    async fn flood(&self) -> String {
        use std::io::Write;
        let line = vec![b'x'; 9 * 1024 * 1024];
        // The gateway stops reading at its bound and closes the pipe: the write then fails.
        let written = std::io::stdout().lock().write_all(&line).is_ok();
        format!("flooded: {written}")
    }

    #[tool(description = "Exits the server process at once")]
    async fn crash(&self) -> String {
        eprintln!("{} crashing on request", self.name);
        std::process::exit(3)
    }
}

#[tool_handler]
impl ServerHandler for Fake {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(
            format!("memo://{}", self.name),
            "memo",
        )]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if request.uri != format!("memo://{}", self.name) {
            return Err(ErrorData::resource_not_found(
                format!("no resource {}", request.uri),
                None,
            ));
        }
        Ok(ReadResourceResult::new(vec![ResourceContents::text(
            format!("memo of {}", self.name),
            request.uri,
        )])
        .into())
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "fake".into());
    if name == "--http" {
        let port: u16 = args.next().unwrap_or_default().parse()?;
        // Multi-threaded, like the gateway.
        return tokio::runtime::Runtime::new()?.block_on(http::serve(port));
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve_stdio(name))
}

async fn serve_stdio(name: String) -> anyhow::Result<()> {
    eprintln!("{name} starting as pid {}", std::process::id());
    let server = Fake {
        name,
        tool_router: Fake::tool_router(),
    };
    let running = server.serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}

/// The HTTP floor: one POST handler that answers `initialize` and `tools/call` of `add`.
mod http {
    use axum::body::Bytes;
    use axum::http::{StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use serde_json::{Value, json};

    #[derive(serde::Deserialize)]
    struct Incoming {
        id: Option<Value>,
        method: Option<String>,
        #[serde(default)]
        params: Value,
    }

    pub async fn serve(port: u16) -> anyhow::Result<()> {
        let app = axum::Router::new().route(
            "/mcp",
            post(answer)
                .get(|| async { StatusCode::METHOD_NOT_ALLOWED })
                .delete(|| async { StatusCode::OK }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await?;
        Ok(())
    }

    async fn answer(body: Bytes) -> Response {
        let Ok(msg) = serde_json::from_slice::<Incoming>(&body) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        // Notifications and answers.
        let Some(id) = msg.id else {
            return StatusCode::ACCEPTED.into_response();
        };
        let outcome = match msg.method.as_deref() {
            Some("initialize") => Ok(json!({
                "protocolVersion": msg.params["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "floor", "version": "0"},
            })),
            Some("tools/call") if msg.params["name"] == "add" => {
                let arg = |k: &str| msg.params["arguments"][k].as_i64().unwrap_or(0);
                let sum = (arg("a") + arg("b")).to_string();
                Ok(json!({"content": [{"type": "text", "text": sum}], "isError": false}))
            }
            _ => Err(json!({"code": -32601, "message": "not served"})),
        };
        let reply = match outcome {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
        };
        let event = format!("event: message\ndata: {reply}\n\n");
        let mut resp = (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            event,
        )
            .into_response();
        if msg.method.as_deref() == Some("initialize") {
            resp.headers_mut()
                .insert("mcp-session-id", header::HeaderValue::from_static("floor"));
        }
        resp
    }
}
