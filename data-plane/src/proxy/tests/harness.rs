//! The pipeline run in-process: a runtime compiled from YAML, requests handed straight to
//! `proxy::serve` (no gateway port), and upstreams that are local servers recording what
//! reached them.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tollgate_shared::{Snapshot, SnapshotSource, load_str};

use crate::http::RequestBody;
use crate::http::body::BoxBody;
use crate::metrics::Metrics;
use crate::runtime::Runtime;
use crate::services::Services;
use crate::telemetry::Sinks;

/// The port every harness config binds; nothing listens on it.
pub const PORT: u16 = 8080;
/// The client address the pipeline sees.
const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);

/// A gateway named `default` serving one config, without ports or an access-log writer.
pub struct Harness {
    services: Services,
}

impl Harness {
    pub fn new(yaml: &str) -> Harness {
        let config = load_str(yaml, "test.yaml", &HashMap::new()).expect("a valid config");
        let services = Services::new(
            "default",
            Arc::new(Metrics::new()),
            Sinks::without_access_log(),
        );
        let tls = crate::tls::Tls::load(&config).expect("readable TLS files");
        let jwt = crate::jwt::Verifiers::load(&config, &Default::default()).expect("usable JWKS");
        let htpasswd = crate::htpasswd::HtpasswdFiles::load(&config).expect("usable htpasswd");
        let openapi = crate::mcp::openapi::OpenApiSpecs::load(&config).expect("usable specs");
        services.install(
            Snapshot::new(config),
            SnapshotSource::File("test.yaml".into()),
            crate::runtime::Files { tls, openapi },
            &jwt,
            htpasswd,
        );
        Harness { services }
    }

    /// The compiled config, for tests of single phases.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.services.runtime().expect("installed in new")
    }

    /// Sends `req` through the pipeline on [`PORT`]; the body is read by the caller.
    pub async fn respond(&self, req: Request<impl RequestBody>) -> http::Response<BoxBody> {
        crate::proxy::serve(&self.services, req, PORT, PEER).await
    }

    /// Sends `req` through the pipeline on [`PORT`] and reads the whole answer.
    pub async fn send(&self, req: Request<impl RequestBody>) -> Answer {
        let (parts, body) = self.respond(req).await.into_parts();
        let body = body.collect().await.expect("a readable body").to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(request("GET", path, &[], "")).await
    }

    /// Sum of all samples of `name` whose labels contain every `label="value"` given.
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        self.services
            .metrics
            .render()
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// A request with a whole body; `content-length` is declared when the body is not empty.
pub fn request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if !body.is_empty() {
        builder = builder.header(http::header::CONTENT_LENGTH, body.len());
    }
    builder
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid request")
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no header {name}"))
    }
}

/// A request as an upstream received it.
pub struct Received {
    pub method: http::Method,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An echoing upstream on `127.0.0.1:0`: answers with its name, the path, headers and body
/// length as JSON; `x-fake-status` sets the status and `x-fake-delay-ms` delays the head.
pub struct Upstream {
    pub authority: String,
    received: mpsc::UnboundedReceiver<Received>,
    log: Vec<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start(name: &'static str) -> Upstream {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("a free port");
        let authority = listener.local_addr().expect("bound").to_string();
        let (tx, received) = mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(echo).with_state((name, tx));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Upstream {
            authority,
            received,
            log: Vec::new(),
            task,
        }
    }

    /// Every request received so far, oldest first.
    pub fn requests(&mut self) -> &[Received] {
        while let Ok(r) = self.received.try_recv() {
            self.log.push(r);
        }
        &self.log
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo(
    State((name, tx)): State<(&'static str, mpsc::UnboundedSender<Received>)>,
    req: axum::extract::Request,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let number = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    };
    let status = number("x-fake-status")
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default())))
        .collect();
    let answer = json!({
        "upstream": name,
        "path": parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        "headers": headers,
        "bodyLength": body.len(),
    });
    let delay = number("x-fake-delay-ms");
    let _ = tx.send(Received {
        method: parts.method,
        headers: parts.headers,
        body,
    });
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    (
        status,
        [("content-type", "application/json")],
        answer.to_string(),
    )
}
