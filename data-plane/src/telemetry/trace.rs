//! OTLP tracing (gRPC, or HTTP with protobuf bodies; TLS for `https://`): a server span per request and a client span per upstream attempt, W3C
//! `traceparent` honoured on the way in and propagated on the way out, gen_ai and mcp
//! attributes, and the config's CEL fields.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector, HttpClient};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use tollgate_shared::config::model::{Fields, OtlpProtocol, Tracing};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::ClientTlsConfig;

use super::Outcome;
use super::fields::{self, Ctx, Expressions};
use super::record::RequestRecord;

/// One OTLP exporter and its sampler; kept across applies while its settings stay the same.
pub struct Exporter {
    /// What it was made for, without the per-config `fields`.
    settings: Tracing,
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

/// `config` without what each applied config reads itself (the CEL fields).
fn export_settings(config: &Tracing) -> Tracing {
    Tracing {
        fields: Fields::default(),
        ..config.clone()
    }
}

impl Exporter {
    /// An exporter for `config`; `http` carries OTLP/HTTP exports.
    pub fn new(config: &Tracing, http: Option<Arc<dyn HttpClient>>) -> anyhow::Result<Exporter> {
        let exporter = match config.otlp_protocol {
            OtlpProtocol::Grpc => {
                let mut metadata = MetadataMap::new();
                for (name, value) in &config.headers {
                    metadata.insert(
                        MetadataKey::from_bytes(name.as_bytes())?,
                        MetadataValue::try_from(value.expose())?,
                    );
                }
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(config.otlp_endpoint.clone())
                    .with_metadata(metadata);
                if config.otlp_endpoint.starts_with("https://") {
                    builder = builder.with_tls_config(ClientTlsConfig::new().with_webpki_roots());
                }
                builder.build()?
            }
            OtlpProtocol::Http => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{}{}", config.otlp_endpoint, config.path))
                .with_headers(
                    config
                        .headers
                        .iter()
                        .map(|(n, v)| (n.clone(), v.expose().to_string()))
                        .collect::<HashMap<_, _>>(),
                )
                .with_shared_http_client(
                    http.ok_or_else(|| anyhow::anyhow!("OTLP/HTTP export needs a runtime"))?,
                )
                .build()?,
        };
        let ratio = Sampler::TraceIdRatioBased(config.random_sampling);
        // Without client sampling, a client's sampled flag does not force a trace.
        let sampler = if config.client_sampling {
            Sampler::ParentBased(Box::new(ratio))
        } else {
            ratio
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler)
            .with_resource(resource(&config.resources))
            .build();
        let tracer = provider.tracer("tollgate");
        Ok(Exporter {
            settings: export_settings(config),
            provider,
            tracer,
        })
    }
}

impl super::Export for Exporter {
    type Config = Tracing;

    fn serves(&self, config: &Tracing) -> bool {
        self.settings == export_settings(config)
    }

    fn shutdown(&self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
    }
}

/// The process's resource with `tracing.resources`: each CEL expression evaluated once,
/// without request variables; one that fails is left out with a warning.
fn resource(extra: &indexmap::IndexMap<String, String>) -> opentelemetry_sdk::Resource {
    let ctx = fields::stdlib_context();
    let attributes = extra.iter().filter_map(|(name, expr)| {
        let value = cel::Program::compile(expr)
            .ok()
            .and_then(|p| p.execute(&ctx).ok())
            .and_then(|v| v.json().ok());
        match value {
            Some(v) => Some(KeyValue::new(name.clone(), fields::text(&v))),
            None => {
                tracing::warn!(resource = %name, "tracing resource expression has no value; left out");
                None
            }
        }
    });
    super::resource(attributes)
}

/// Tracing as one applied config asks for it.
pub struct Tracer {
    pub exporter: Arc<Exporter>,
    pub fields: Expressions,
    /// Attributes left off the server span.
    pub remove: Vec<String>,
}

impl Tracer {
    /// The server span of a new request, child of the client's `traceparent` when it sent
    /// one; `None` when the sampler says no.
    pub fn start<B>(&self, req: &http::Request<B>) -> Option<Traced> {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(req.headers()));
        let tracer = &self.exporter.tracer;
        let span = tracer
            .span_builder(format!("{} {}", req.method(), req.uri().path()))
            .with_kind(SpanKind::Server)
            .start_with_context(tracer, &parent);
        if !span.span_context().is_sampled() {
            return None;
        }
        Some(Traced {
            cx: parent.with_span(span),
            tracer: tracer.clone(),
        })
    }

    /// Ends the server span with the request's attributes and the config's fields.
    pub fn finish(
        &self,
        traced: &Traced,
        record: &RequestRecord,
        o: &Outcome<'_>,
        ctx: Option<&Ctx>,
    ) {
        let span = traced.cx.span();
        if let Some(m) = record.mcp.get() {
            span.update_name(Cow::Owned(m.method.clone()));
        } else if let Some(route) = &o.labels.route {
            span.update_name(Cow::Owned(format!("{} {route}", record.method)));
        }
        let mut attrs = vec![
            KeyValue::new("http.request.method", record.method.to_string()),
            KeyValue::new("url.path", record.uri.path().to_string()),
            KeyValue::new(
                "url.scheme",
                record.uri.scheme_str().unwrap_or("http").to_string(),
            ),
            KeyValue::new("http.response.status_code", i64::from(o.status)),
            KeyValue::new("network.protocol.version", format!("{:?}", record.version)),
            KeyValue::new("client.address", record.peer.ip().to_string()),
            KeyValue::new("gateway", o.labels.gateway.to_string()),
        ];
        let mut opt = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                attrs.push(KeyValue::new(k, v));
            }
        };
        opt("listener", o.labels.listener.as_deref().map(str::to_string));
        opt("route", o.labels.route.as_deref().map(str::to_string));
        opt("endpoint", o.backend.map(str::to_string));
        if let Some(l) = record.llm.get() {
            attrs.push(KeyValue::new("gen_ai.operation.name", "chat"));
            attrs.push(KeyValue::new("gen_ai.provider.name", l.provider));
            attrs.push(KeyValue::new("gen_ai.system", l.provider));
            attrs.push(KeyValue::new(
                "gen_ai.request.model",
                l.request_model.clone(),
            ));
            if let Some(m) = &l.response_model {
                attrs.push(KeyValue::new("gen_ai.response.model", m.clone()));
            }
            for (k, v) in [
                ("gen_ai.usage.input_tokens", l.input_tokens),
                ("gen_ai.usage.output_tokens", l.output_tokens),
                ("gen_ai.request.max_tokens", l.max_tokens),
            ] {
                if let Some(v) = v {
                    attrs.push(KeyValue::new(k, v as i64));
                }
            }
            if let Some(t) = l.temperature {
                attrs.push(KeyValue::new("gen_ai.request.temperature", t));
            }
        }
        if let Some(a2a) = record.a2a.get() {
            attrs.push(KeyValue::new("a2a.method", a2a.clone().unwrap_or_default()));
        }
        if let Some(m) = record.mcp.get() {
            attrs.push(KeyValue::new("mcp.method.name", m.method.clone()));
            attrs.push(KeyValue::new("mcp.resource.type", m.resource_type));
            for (k, v) in [("mcp.target", &m.target), ("mcp.session.id", &m.session)] {
                if let Some(v) = v {
                    attrs.push(KeyValue::new(k, v.clone()));
                }
            }
            if let Some(name) = &m.resource {
                let key = match m.resource_type {
                    "tool" => "gen_ai.tool.name",
                    "prompt" => "gen_ai.prompt.name",
                    _ => "mcp.resource.uri",
                };
                attrs.push(KeyValue::new(key, name.clone()));
            }
        }
        if let Some(ctx) = ctx {
            for (name, value) in self.fields.eval_spread(ctx) {
                // agentgateway's `span.name` field renames the span (OpenLLMetry's names).
                match value {
                    serde_json::Value::String(s) if name == "span.name" => {
                        span.update_name(Cow::Owned(s));
                    }
                    value => attrs.push(attribute(&name, value)),
                }
            }
        }
        attrs.retain(|kv| !self.remove.iter().any(|r| r.as_str() == kv.key.as_str()));
        span.set_attributes(attrs);
        if o.status >= 500 {
            span.set_status(Status::error(o.reason.as_str()));
        }
        span.end();
    }
}

/// A CEL value as a span attribute: numbers and booleans keep their type.
fn attribute(name: &str, v: serde_json::Value) -> KeyValue {
    let key = name.to_string();
    match v {
        serde_json::Value::Bool(b) => KeyValue::new(key, b),
        serde_json::Value::Number(n) if n.is_i64() => KeyValue::new(key, n.as_i64().unwrap_or(0)),
        serde_json::Value::Number(n) => KeyValue::new(key, n.as_f64().unwrap_or(0.0)),
        other => KeyValue::new(key, fields::text(&other)),
    }
}

/// A traced request: its server span and the tracer for its children.
pub struct Traced {
    pub cx: Context,
    tracer: SdkTracer,
}

impl Traced {
    /// Starts the client span of one upstream attempt and puts its `traceparent` on `headers`.
    pub fn attempt(
        &self,
        method: &http::Method,
        upstream: &str,
        headers: &mut http::HeaderMap,
    ) -> Attempt {
        let span = self
            .tracer
            .span_builder(format!("{method} {upstream}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("http.request.method", method.to_string()),
                KeyValue::new("server.address", upstream.to_string()),
            ])
            .start_with_context(&self.tracer, &self.cx);
        let cx = self.cx.with_span(span);
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
        Attempt { cx }
    }

    /// A client span for a call that is not HTTP (an MCP call over stdio).
    pub fn call(&self, name: String, attrs: Vec<KeyValue>) -> Attempt {
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &self.cx);
        Attempt {
            cx: self.cx.with_span(span),
        }
    }
}

/// One upstream attempt's span; ends when told how it went.
pub struct Attempt {
    cx: Context,
}

impl Attempt {
    /// `Ok(Some(status))` for HTTP, `Ok(None)` for other successful calls.
    pub fn end(self, outcome: Result<Option<u16>, String>) {
        let span = self.cx.span();
        match outcome {
            Ok(None) => {}
            Ok(Some(code)) => {
                span.set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
                if code >= 500 {
                    span.set_status(Status::error(format!("status {code}")));
                }
            }
            Err(e) => span.set_status(Status::error(e)),
        }
        span.end();
    }
}
