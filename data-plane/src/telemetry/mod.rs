//! What the gateway reports about each request (DESIGN §10): one record per request, read when
//! its response ends by the metrics, the access log and the trace, with CEL fields.
//!
//! [`Telemetry`] is compiled from each applied config and swapped with it, so a request reads
//! its settings from the same `Runtime` load as its routes.

pub mod fields;
pub mod functions;
mod lines;
pub mod log;
pub mod record;
pub mod trace;

use std::sync::Arc;

use tollgate_shared::config::model::{LogExport, Settings};

use self::fields::Expressions;
use self::lines::{LineWriter, WriterGuard};
use self::log::{AccessLog, LogExporter};
use self::record::RequestRecord;
use self::trace::{Exporter, Tracer};
use crate::metrics::{ClientLabels, Metrics, RequestVecs};
use parking_lot::Mutex;

/// Why a request ended as it did: the `reason` label of request metrics (agentgateway's
/// values), the access log's `reason` field and the span's error status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Upstream,
    DirectResponse,
    ClientClosed,
    NotFound,
    InvalidRequest,
    Overloaded,
    NoHealthyBackend,
    Timeout,
    UpstreamFailure,
    RateLimit,
    /// `jwtAuth` refused the request (401).
    Unauthenticated,
    /// `authorization` refused the request (403); agentgateway's reason name.
    Authorization,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Upstream => "Upstream",
            Reason::DirectResponse => "DirectResponse",
            Reason::ClientClosed => "ClientClosed",
            Reason::NotFound => "NotFound",
            Reason::InvalidRequest => "InvalidRequest",
            Reason::Overloaded => "Overloaded",
            Reason::NoHealthyBackend => "NoHealthyBackend",
            Reason::Timeout => "Timeout",
            Reason::UpstreamFailure => "UpstreamFailure",
            Reason::RateLimit => "RateLimit",
            Reason::Unauthenticated => "Unauthenticated",
            Reason::Authorization => "Authorization",
        }
    }

    /// Answered as configured, by the upstream or the gateway itself (not a failure).
    pub fn is_answer(self) -> bool {
        matches!(self, Reason::Upstream | Reason::DirectResponse)
    }
}

/// The request-metric labels known before the backend, built when a config is compiled:
/// one set per runtime and per port (for requests no route matched) and one per route, so
/// requests never assemble them.
#[derive(Debug)]
pub struct RequestLabels {
    pub bind: Option<Arc<str>>,
    pub gateway: Arc<str>,
    pub listener: Option<Arc<str>>,
    pub route: Option<Arc<str>>,
    /// The series these labels' requests have recorded into.
    pub series: crate::series::RouteSeries,
}

impl RequestLabels {
    /// bind, gateway, listener and route, `unknown` where the request got no further.
    pub fn values(&self) -> [&str; 4] {
        fn known(v: &Option<Arc<str>>) -> &str {
            v.as_deref().unwrap_or("unknown")
        }
        [
            known(&self.bind),
            &self.gateway,
            known(&self.listener),
            known(&self.route),
        ]
    }
}

/// How a request ended, as the response phase knows it.
pub struct Outcome<'a> {
    pub status: u16,
    pub reason: Reason,
    pub labels: &'a RequestLabels,
    pub backend: Option<&'a str>,
}

/// The process-wide pieces that outlive one config: the access-log writer and the exporter.
pub struct Sinks {
    /// `None`: access logs are not written anywhere (a pipeline embedded in tests).
    writer: Option<LineWriter>,
    guard: Mutex<Option<WriterGuard>>,
    exporter: Mutex<Option<Arc<Exporter>>>,
    log_exporter: Mutex<Option<Arc<LogExporter>>>,
    /// Carries OTLP/HTTP exports (`None` outside a runtime: HTTP export is then reported as
    /// unavailable).
    otlp_http: Option<Arc<dyn opentelemetry_http::HttpClient>>,
}

impl Sinks {
    /// Access logs go to stdout through a writer thread.
    pub fn stdout() -> Sinks {
        let stdout = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
        let (writer, guard) = match LineWriter::spawn(stdout) {
            Ok((writer, guard)) => (Some(writer), Some(guard)),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the access-log writer: no access logs");
                (None, None)
            }
        };
        Sinks {
            writer,
            guard: Mutex::new(guard),
            exporter: Mutex::new(None),
            log_exporter: Mutex::new(None),
            otlp_http: None,
        }
    }

    /// No access-log output and no writer thread; traces are still exported when configured.
    pub fn without_access_log() -> Sinks {
        Sinks {
            writer: None,
            guard: Mutex::new(None),
            exporter: Mutex::new(None),
            log_exporter: Mutex::new(None),
            otlp_http: None,
        }
    }

    /// These sinks with `client` for OTLP/HTTP exports.
    pub fn with_otlp_http(self, client: Option<Arc<dyn opentelemetry_http::HttpClient>>) -> Sinks {
        Sinks {
            otlp_http: client,
            ..self
        }
    }

    /// A trace exporter for `config` (see [`reuse`]).
    fn exporter(&self, config: &tollgate_shared::config::model::Tracing) -> Option<Arc<Exporter>> {
        reuse(&self.exporter, config, || {
            Exporter::new(config, self.otlp_http.clone())
        })
        .inspect_err(|e| tracing::error!(endpoint = %tollgate_shared::config::redact::url(&config.otlp_endpoint), error = %e, "cannot set up OTLP tracing"))
        .ok()
    }

    /// An access-log exporter for `config` (see [`reuse`]).
    fn log_exporter(&self, config: &LogExport) -> Option<Arc<LogExporter>> {
        reuse(&self.log_exporter, config, || {
            LogExporter::new(config, self.otlp_http.clone())
        })
        .inspect_err(|e| tracing::error!(endpoint = %config.endpoint, error = %e, "cannot set up OTLP access-log export"))
        .ok()
    }

    /// Flushes spans and log lines; called once on shutdown.
    pub fn shutdown(&self) {
        if let Some(e) = self.exporter.lock().take() {
            e.shutdown();
        }
        if let Some(e) = self.log_exporter.lock().take() {
            e.shutdown();
        }
        drop(self.guard.lock().take());
    }
}

/// An OTLP exporter kept across applies while it serves the config.
pub trait Export {
    type Config;
    /// Whether this exporter already does what `config` asks.
    fn serves(&self, config: &Self::Config) -> bool;
    /// Sends what is buffered and stops (blocks: run it off the async workers).
    fn shutdown(&self);
}

/// The exporter in `slot` when it serves `config`, else a new one from `make` (the old one is
/// flushed and stopped on a side thread).
fn reuse<E: Export + Send + Sync + 'static>(
    slot: &Mutex<Option<Arc<E>>>,
    config: &E::Config,
    make: impl FnOnce() -> anyhow::Result<E>,
) -> anyhow::Result<Arc<E>> {
    let mut current = slot.lock();
    if let Some(e) = current.as_ref().filter(|e| e.serves(config)) {
        return Ok(e.clone());
    }
    let fresh = Arc::new(make()?);
    if let Some(old) = current.replace(fresh.clone()) {
        std::thread::spawn(move || old.shutdown());
    }
    Ok(fresh)
}

/// The OTLP resource of every export: `service.name` from `OTEL_SERVICE_NAME`, else
/// `tollgate`.
fn resource(
    extra: impl IntoIterator<Item = opentelemetry::KeyValue>,
) -> opentelemetry_sdk::Resource {
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "tollgate".into());
    opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .with_attributes(extra)
        .build()
}

/// An HTTP status as three ASCII digits, without allocating.
fn itoa_status(code: u16) -> [u8; 3] {
    let c = code.min(999);
    [
        b'0' + (c / 100) as u8,
        b'0' + (c / 10 % 10) as u8,
        b'0' + (c % 10) as u8,
    ]
}

/// The telemetry of one applied config.
pub struct Telemetry {
    pub log: Option<AccessLog>,
    pub tracer: Option<Tracer>,
    metric_fields: Expressions,
    /// The identity members the expressions read (`jwt.sub`, `apiKey.group`): null when absent.
    identity_members: Vec<String>,
    pub request_vecs: Arc<RequestVecs>,
    client_labels: Arc<ClientLabels>,
}

impl Telemetry {
    pub fn compile(settings: &Settings, sinks: &Sinks, metrics: &Metrics) -> Telemetry {
        metrics.set_removed(settings.metrics.remove.clone());
        let metric_fields = Expressions::compile(&settings.metrics.fields.add);
        let request_vecs =
            metrics.request_vecs(metric_fields.names().map(str::to_string).collect());
        let expressions = [&settings.metrics.fields, &settings.logging.fields]
            .into_iter()
            .chain(settings.tracing.as_ref().map(|t| &t.fields))
            .flat_map(|f| f.add.values())
            .chain(&settings.logging.filter)
            .map(String::as_str);
        let identity_members = fields::identity_members_read(expressions);
        Telemetry {
            log: sinks.writer.clone().and_then(|writer| {
                let otlp = settings
                    .logging
                    .otlp
                    .as_ref()
                    .and_then(|o| sinks.log_exporter(o));
                AccessLog::new(&settings.logging, writer, otlp)
            }),
            tracer: settings.tracing.as_ref().and_then(|t| {
                Some(Tracer {
                    exporter: sinks.exporter(t)?,
                    fields: Expressions::compile(&t.fields.add),
                    remove: t.fields.remove.clone(),
                })
            }),
            metric_fields,
            identity_members,
            request_vecs,
            client_labels: metrics.client_labels.clone(),
        }
    }

    /// Whether any CEL expression runs per request (then headers are kept for it).
    pub fn uses_cel(&self) -> bool {
        !self.metric_fields.is_empty()
            || self.log.as_ref().is_some_and(AccessLog::uses_cel)
            || self.tracer.as_ref().is_some_and(|t| !t.fields.is_empty())
    }

    /// Everything reported when a request ends: metrics, the access-log line, the span.
    pub fn finish(&self, record: &RequestRecord, o: &Outcome<'_>) {
        let ctx = self
            .uses_cel()
            .then(|| fields::context(record, o, &self.identity_members));
        let status = itoa_status(o.status);
        let [bind, gateway, listener, route] = o.labels.values();
        let standard = [
            bind,
            gateway,
            listener,
            route,
            o.backend.unwrap_or("unknown"),
            crate::metrics::method_label(&record.method),
            std::str::from_utf8(&status).unwrap_or(""),
            o.reason.as_str(),
        ];
        let vecs = &self.request_vecs;
        let elapsed = record.started.elapsed().as_secs_f64();
        if vecs.extra.is_empty() {
            let outcome = (o.backend, &record.method, o.status, o.reason);
            let make = || {
                (
                    vecs.requests.with_label_values(&standard),
                    vecs.duration.with_label_values(&standard),
                )
            };
            o.labels
                .series
                .requests(outcome, make, |(requests, duration)| {
                    requests.inc();
                    duration.observe(elapsed);
                });
        } else {
            let values: Vec<(&str, String)> = match &ctx {
                Some(ctx) => self
                    .metric_fields
                    .eval(ctx)
                    .map(|(name, v)| (name, v.as_ref().map(fields::text).unwrap_or_default()))
                    .collect(),
                None => Vec::new(),
            };
            // CEL fields read the request, so their values are bounded like any client input.
            let client_labels = &self.client_labels;
            let mut labels: Vec<&str> = standard.to_vec();
            labels.extend(
                values
                    .iter()
                    .map(|(name, v)| client_labels.admit(name, route, v)),
            );
            labels.resize(standard.len() + vecs.extra.len(), "");
            vecs.requests.with_label_values(&labels).inc();
            vecs.duration.with_label_values(&labels).observe(elapsed);
        }
        if let Some(log) = &self.log {
            log.write(record, o, ctx.as_ref());
        }
        if let (Some(tracer), Some(traced)) = (&self.tracer, &record.trace) {
            tracer.finish(traced, record, o, ctx.as_ref());
        }
    }
}
