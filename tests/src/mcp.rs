//! A raw MCP client over Streamable HTTP and legacy SSE, so tests see every status and header;
//! plus MCP route configs around `tollgate-fake-mcp` children.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::binary;

/// A stdio target running `tollgate-fake-mcp NAME`.
pub fn fake_target(name: &str) -> String {
    format!(
        "          - name: {name}\n            stdio: {{cmd: \"{}\", args: [{name}]}}\n",
        binary("tollgate-fake-mcp").display()
    )
}

/// `binds:` with one MCP route on `port` whose targets are fake servers named `targets`.
pub fn config(port: u16, targets: &[&str], extra_backend: &str, settings: &str) -> String {
    let targets: String = targets.iter().map(|t| fake_target(t)).collect();
    format!(
        "{settings}binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: mcp\n      backends:\n      - mcp:\n{extra_backend}          targets:\n{targets}"
    )
}

/// An `initialize` request (protocol 2025-06-18).
pub fn initialize_request() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "tollgate-tests", "version": "1"}}})
}

pub struct McpClient {
    http: reqwest::Client,
    pub url: String,
    pub session: Option<String>,
    next_id: u64,
}

pub const ACCEPT: &str = "application/json, text/event-stream";

impl McpClient {
    pub fn new(url: &str) -> McpClient {
        McpClient::with_http(url, crate::http())
    }

    /// A client sending through `http` (e.g. one with an `Authorization` default header).
    pub fn with_http(url: &str, http: reqwest::Client) -> McpClient {
        McpClient {
            http,
            url: url.to_string(),
            session: None,
            next_id: 1,
        }
    }

    /// Initializes a session (protocol 2025-06-18) and sends `notifications/initialized`.
    pub async fn connect(url: &str) -> McpClient {
        let mut c = McpClient::new(url);
        let answer = c.initialize().await;
        assert!(answer.get("result").is_some(), "initialize: {answer}");
        c
    }

    pub async fn initialize(&mut self) -> Value {
        let resp = self
            .post(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "tollgate-tests", "version": "1"}}}),
            )
            .await;
        self.session = resp
            .headers()
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_string());
        let answer = single_message(resp).await;
        if self.session.is_some() {
            let resp = self
                .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                .await;
            assert_eq!(resp.status(), 202);
        }
        answer
    }

    /// POSTs one message with the session header (if any).
    pub async fn post(&self, body: &Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .json(body);
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        req.send().await.expect("POST to the gateway")
    }

    /// Sends a request and returns the whole JSON-RPC answer (`result` or `error`).
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let body =
            json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        let resp = self.post(&body).await;
        assert_eq!(resp.status(), 200, "{method}");
        single_message(resp).await
    }

    /// `tools/call`; returns the answer.
    pub async fn call(&mut self, tool: &str, args: Value) -> Value {
        self.request("tools/call", json!({"name": tool, "arguments": args}))
            .await
    }

    /// The first text of a successful `tools/call`.
    pub async fn call_text(&mut self, tool: &str, args: Value) -> String {
        let answer = self.call(tool, args).await;
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{tool}: {answer}"))
            .to_string()
    }

    pub async fn tool_names(&mut self) -> Vec<String> {
        let answer = self.request("tools/list", json!({})).await;
        answer["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("tools/list: {answer}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Opens the session's event stream (GET).
    pub async fn open_stream(&self) -> reqwest::Response {
        self.http
            .get(&self.url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", self.session.as_deref().unwrap_or(""))
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self) -> reqwest::Response {
        self.http
            .delete(&self.url)
            .header("mcp-session-id", self.session.as_deref().unwrap_or(""))
            .send()
            .await
            .unwrap()
    }
}

/// The JSON-RPC messages of an SSE body.
pub fn messages(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(str::trim_start))
                .collect();
            (!data.is_empty()).then(|| serde_json::from_str(&data.join("\n")).unwrap())
        })
        .collect()
}

async fn single_message(resp: reqwest::Response) -> Value {
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.text().await.unwrap();
    match ctype.as_deref() {
        Some("text/event-stream") => messages(&body)
            .into_iter()
            .find(|m| m.get("id").is_some())
            .unwrap_or_else(|| panic!("no answer in {body}")),
        _ => serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}")),
    }
}

/// An open `text/event-stream` response, read event by event.
pub struct EventStream {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl EventStream {
    pub fn new(resp: reqwest::Response) -> EventStream {
        EventStream {
            body: Box::pin(resp.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event's name and data (keep-alive comments skipped).
    pub async fn next_event(&mut self) -> (String, String) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                let mut event = "message".to_string();
                let mut data = Vec::new();
                for line in raw.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = e.trim().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push(d.trim_start().to_string());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return (event, data.join("\n"));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.body.next())
                .await
                .expect("an SSE event within 30 s")
                .expect("the SSE stream is open")
                .unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next JSON-RPC message.
    pub async fn next_message(&mut self) -> Value {
        let (_, data) = self.next_event().await;
        serde_json::from_str(&data).unwrap()
    }
}

/// A legacy SSE session: the open event stream and the POST endpoint it announced.
pub struct SseSession {
    events: EventStream,
    pub endpoint: String,
    http: reqwest::Client,
    next_id: u64,
}

impl SseSession {
    pub async fn open(base: &str, path: &str) -> SseSession {
        let resp = crate::http()
            .get(format!("{base}{path}"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut events = EventStream::new(resp);
        let (event, data) = events.next_event().await;
        assert_eq!(event, "endpoint");
        SseSession {
            events,
            endpoint: format!("{base}{data}"),
            http: crate::http(),
            next_id: 0,
        }
    }

    /// POSTs a message; the answer (for requests) arrives on the stream.
    pub async fn send(&mut self, method: &str, params: Option<Value>) -> Option<Value> {
        let mut body = json!({"jsonrpc": "2.0", "method": method});
        if let Some(p) = params {
            body["params"] = p;
        }
        let is_request = !method.starts_with("notifications/");
        if is_request {
            self.next_id += 1;
            body["id"] = json!(self.next_id);
        }
        let resp = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{method}");
        if !is_request {
            return None;
        }
        loop {
            let msg = self.events.next_message().await;
            if msg["id"] == json!(self.next_id) {
                return Some(msg);
            }
        }
    }
}

/// A session id as the proxy's logs and spans show it: 8 hex digits of its SHA-256.
pub fn session_log_id(id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether process `pid` is alive (and not a zombie).
pub fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}
