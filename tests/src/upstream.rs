//! A fake HTTP upstream that records requests and answers as each request's headers ask.
//!
//! Controls: `x-fake-status: 503`, `x-fake-delay-ms: 200` (before the head),
//! `GET /sse?events=N&gap_ms=M` streams N server-sent events M ms apart. Everything else
//! echoes the request as JSON: method, path with query, headers, body length.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone, Default)]
struct Shared {
    name: String,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

pub struct FakeUpstream {
    pub addr: SocketAddr,
    shared: Shared,
    _server: crate::Serving,
}

impl FakeUpstream {
    /// Starts on a free port of `127.0.0.1`; `name` is echoed as `upstream` in answers.
    pub async fn start(name: &str) -> FakeUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        FakeUpstream::serve(name, listener)
    }

    /// The same over TLS with `config` (its certificate, and whether it asks for a client's).
    pub async fn start_tls(name: &str, config: rustls::ServerConfig) -> FakeUpstream {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        FakeUpstream::serve(name, crate::tls::TlsListener { tcp, acceptor })
    }

    fn serve<L>(name: &str, listener: L) -> FakeUpstream
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
    {
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            name: name.to_string(),
            ..Default::default()
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let server = crate::serve(listener, app);
        FakeUpstream {
            addr,
            shared,
            _server: server,
        }
    }

    /// `host:port` for configs.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.seen.lock().clone()
    }

    /// Waits until a request for `path` arrived (it is recorded before any `x-fake-delay-ms`
    /// delay, so this means "in flight here").
    pub async fn wait_request(&self, path: &str) {
        crate::eventually(Duration::from_secs(10), || async {
            if self.requests().iter().any(|r| r.path == path) {
                Ok(())
            } else {
                Err(format!("no request for {path} yet"))
            }
        })
        .await
    }
}

async fn handle(State(shared): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    shared.seen.lock().push(Recorded {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(ms) = header("x-fake-delay-ms").and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if parts.uri.path() == "/sse" {
        return sse(parts.uri.query().unwrap_or(""));
    }
    let status = header("x-fake-status")
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Value::String(v.to_str().unwrap_or("").to_string()),
            )
        })
        .collect();
    let answer = json!({
        "upstream": shared.name,
        "method": parts.method.as_str(),
        "path": path,
        "headers": headers,
        "bodyLength": body.len(),
    });
    (
        status,
        [("content-type", "application/json")],
        answer.to_string(),
    )
        .into_response()
}

fn sse(query: &str) -> Response {
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    let events = param("events").unwrap_or(3);
    let gap = Duration::from_millis(param("gap_ms").unwrap_or(100));
    let stream = futures_util::stream::iter(0..events).then(move |i| async move {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        Ok::<_, Infallible>(Bytes::from(format!("data: event {i}\n\n")))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}
