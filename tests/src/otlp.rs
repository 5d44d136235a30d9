//! An OTLP trace receiver (the collector's gRPC service, from the official proto, or OTLP/HTTP
//! with protobuf bodies) that keeps every span it is sent, so tests can check names, parent
//! links and attributes, and for HTTP the path and headers of each export; and a gRPC log
//! receiver for exported access logs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;
use prost::Message as _;

use crate::eventually;

#[derive(Clone, Default)]
struct Sink {
    spans: Arc<Mutex<Vec<Span>>>,
    /// Keep the spans (tests) or only count them (benchmarks).
    keep: bool,
    count: Arc<AtomicU64>,
}

impl Sink {
    fn receive(&self, request: ExportTraceServiceRequest) {
        let spans: Vec<Span> = request
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect();
        self.count.fetch_add(spans.len() as u64, Ordering::Relaxed);
        if self.keep {
            self.spans.lock().extend(spans);
        }
    }
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.receive(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The collector's gRPC logs service, keeping every log record.
#[derive(Clone, Default)]
struct LogSink {
    records: Arc<Mutex<Vec<LogRecord>>>,
}

#[tonic::async_trait]
impl LogsService for LogSink {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let records = request
            .into_inner()
            .resource_logs
            .into_iter()
            .flat_map(|r| r.scope_logs)
            .flat_map(|s| s.log_records);
        self.records.lock().extend(records);
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// An OTLP log receiver over gRPC (access-log export).
pub struct OtlpLogSink {
    pub addr: SocketAddr,
    records: Arc<Mutex<Vec<LogRecord>>>,
}

impl OtlpLogSink {
    /// Listens on `addr` (port 0 for any) and keeps every log record.
    pub async fn start(addr: &str) -> OtlpLogSink {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind the OTLP log sink");
        let addr = listener.local_addr().unwrap();
        let sink = LogSink::default();
        let records = sink.records.clone();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(LogsServiceServer::new(sink))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        OtlpLogSink { addr, records }
    }

    /// Waits until a record satisfies `pred`, and returns it.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&LogRecord) -> bool) -> LogRecord {
        eventually(Duration::from_secs(15), || async {
            let records = self.records.lock().clone();
            let count = records.len();
            records
                .into_iter()
                .find(|r| pred(r))
                .ok_or_else(|| format!("no log record {what} among {count}"))
        })
        .await
    }
}

/// One OTLP/HTTP export as received.
#[derive(Debug, Clone)]
pub struct HttpExport {
    pub path: String,
    pub headers: http::HeaderMap,
    /// The resource attributes of the export's spans, as text.
    pub resource: Vec<(String, String)>,
}

pub struct OtlpSink {
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
    count: Arc<AtomicU64>,
    exports: Arc<Mutex<Vec<HttpExport>>>,
}

impl OtlpSink {
    /// Listens on `addr` (use port 0 for any) and keeps every span.
    pub async fn start(addr: &str) -> OtlpSink {
        OtlpSink::listen(addr, true).await
    }

    /// Listens on `addr` and only counts spans.
    pub async fn counting(addr: &str) -> OtlpSink {
        OtlpSink::listen(addr, false).await
    }

    async fn listen(addr: &str, keep: bool) -> OtlpSink {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind the OTLP sink");
        let addr = listener.local_addr().unwrap();
        let sink = Sink {
            keep,
            ..Sink::default()
        };
        let (spans, count) = (sink.spans.clone(), sink.count.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(sink))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        OtlpSink {
            addr,
            spans,
            count,
            exports: Arc::default(),
        }
    }

    /// Listens on `addr` for OTLP/HTTP (protobuf bodies, any path) and keeps every span and
    /// each export's path and headers.
    pub async fn start_http(addr: &str) -> OtlpSink {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind the OTLP/HTTP sink");
        let addr = listener.local_addr().unwrap();
        let sink = Sink {
            keep: true,
            ..Sink::default()
        };
        let exports: Arc<Mutex<Vec<HttpExport>>> = Arc::default();
        let (spans, count, seen) = (sink.spans.clone(), sink.count.clone(), exports.clone());
        let receive = move |uri: http::Uri, headers: http::HeaderMap, body: bytes::Bytes| {
            let (sink, seen) = (sink.clone(), seen.clone());
            async move {
                let is_protobuf = headers
                    .get(http::header::CONTENT_TYPE)
                    .is_some_and(|v| v == "application/x-protobuf");
                let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                    return http::StatusCode::BAD_REQUEST;
                };
                if !is_protobuf {
                    return http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
                }
                let resource = request
                    .resource_spans
                    .iter()
                    .filter_map(|r| r.resource.as_ref())
                    .flat_map(|r| &r.attributes)
                    .filter_map(|kv| {
                        Some((
                            kv.key.clone(),
                            attribute(std::slice::from_ref(kv), &kv.key)?,
                        ))
                    })
                    .collect();
                seen.lock().push(HttpExport {
                    path: uri.path().to_string(),
                    headers,
                    resource,
                });
                sink.receive(request);
                http::StatusCode::OK
            }
        };
        let app = axum::Router::new().fallback(axum::routing::post(receive));
        tokio::spawn(async move { axum::serve(listener, app).await });
        OtlpSink {
            addr,
            spans,
            count,
            exports,
        }
    }

    /// The OTLP/HTTP exports received so far.
    pub fn exports(&self) -> Vec<HttpExport> {
        self.exports.lock().clone()
    }

    /// Spans received so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().clone()
    }

    /// Waits until a span satisfies `pred`, and returns it.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Span) -> bool) -> Span {
        eventually(Duration::from_secs(15), || async {
            let spans = self.spans();
            spans.iter().find(|s| pred(s)).cloned().ok_or_else(|| {
                let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
                format!("no span {what}; got {names:?}")
            })
        })
        .await
    }
}

/// A span attribute as text (numbers and booleans formatted), if present.
pub fn attr(span: &Span, key: &str) -> Option<String> {
    attribute(&span.attributes, key)
}

/// A log record's attribute as text, if present.
pub fn log_attr(record: &LogRecord, key: &str) -> Option<String> {
    attribute(&record.attributes, key)
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let v = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    Some(match v.value.as_ref()? {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        AnyValue::BoolValue(b) => b.to_string(),
        other => format!("{other:?}"),
    })
}
