//! Access logs: one line per request on stdout, as text or JSON, with agentgateway's field
//! names and order, the config's CEL fields, and its CEL filter; with
//! `frontendPolicies.accessLog.otlp` each line is also an OTLP log record (its fields as
//! attributes).
//!
//! A line is written straight into one buffer (no intermediate map or string) and copied
//! into the writer's gathering buffer (`lines`), so a slow stdout never stalls a request; if
//! it falls far behind, lines are dropped, never requests.

use std::io::Write as _;
use std::sync::Arc;

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry_http::HttpClient;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use serde_json::Value;
use tollgate_shared::config::model::{LogExport, LogFormat, Logging, OtlpProtocol};

use super::Outcome;
use super::fields::{Ctx, Expressions, Filter};
use super::lines::LineWriter;
use super::record::RequestRecord;

/// One OTLP log exporter; kept across applies while its settings stay the same.
pub struct LogExporter {
    settings: LogExport,
    provider: SdkLoggerProvider,
    logger: SdkLogger,
}

impl LogExporter {
    /// An exporter for `config`; `http` carries OTLP/HTTP exports.
    pub fn new(
        config: &LogExport,
        http: Option<Arc<dyn HttpClient>>,
    ) -> anyhow::Result<LogExporter> {
        let exporter = match config.protocol {
            OtlpProtocol::Grpc => opentelemetry_otlp::LogExporter::builder()
                .with_tonic()
                .with_endpoint(config.endpoint.clone())
                .build()?,
            OtlpProtocol::Http => opentelemetry_otlp::LogExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{}{}", config.endpoint, config.path))
                .with_shared_http_client(
                    http.ok_or_else(|| anyhow::anyhow!("OTLP/HTTP export needs a runtime"))?,
                )
                .build()?,
        };
        let provider = SdkLoggerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(super::resource([]))
            .build();
        let logger = provider.logger("tollgate");
        Ok(LogExporter {
            settings: config.clone(),
            provider,
            logger,
        })
    }

    /// One access-log record: severity info, target `request`, the line's fields.
    fn emit(&self, fields: serde_json::Map<String, Value>) {
        let mut record = self.logger.create_log_record();
        record.set_severity_number(Severity::Info);
        record.set_severity_text("info");
        record.set_target("request");
        record.set_timestamp(std::time::SystemTime::now());
        for (key, value) in fields {
            let value = match value {
                Value::Bool(b) => AnyValue::Boolean(b),
                Value::Number(n) if n.is_i64() => AnyValue::Int(n.as_i64().unwrap_or(0)),
                Value::Number(n) => AnyValue::Double(n.as_f64().unwrap_or(0.0)),
                Value::String(s) => AnyValue::String(s.into()),
                other => AnyValue::String(other.to_string().into()),
            };
            record.add_attribute(key, value);
        }
        self.logger.emit(record);
    }
}

impl super::Export for LogExporter {
    type Config = LogExport;

    fn serves(&self, config: &LogExport) -> bool {
        &self.settings == config
    }

    fn shutdown(&self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
    }
}

pub struct AccessLog {
    format: LogFormat,
    filter: Option<Filter>,
    fields: Expressions,
    /// Standard fields left out: `fields.remove`, and those a CEL field replaces.
    skip: Vec<String>,
    writer: LineWriter,
    otlp: Option<Arc<LogExporter>>,
}

impl AccessLog {
    /// `None` when `level` hides info lines (access logs are info).
    pub fn new(
        config: &Logging,
        writer: LineWriter,
        otlp: Option<Arc<LogExporter>>,
    ) -> Option<AccessLog> {
        if matches!(config.level.as_deref(), Some("warn" | "error" | "off")) {
            return None;
        }
        let fields = Expressions::compile(&config.fields.add);
        let skip = config
            .fields
            .remove
            .iter()
            .cloned()
            .chain(fields.names().map(str::to_string))
            .collect();
        Some(AccessLog {
            format: config.format,
            filter: config.filter.as_deref().and_then(Filter::compile),
            fields,
            skip,
            writer,
            otlp,
        })
    }

    pub fn uses_cel(&self) -> bool {
        self.filter.is_some() || !self.fields.is_empty()
    }

    /// Writes the line of one finished request (unless the filter drops it).
    pub fn write(&self, record: &RequestRecord, outcome: &Outcome<'_>, ctx: Option<&Ctx>) {
        if let (Some(filter), Some(ctx)) = (&self.filter, ctx)
            && !filter.keeps(ctx)
        {
            return;
        }
        let line = self.line(self.format, record, outcome, ctx);
        self.writer.write_line(&line);
        if let Some(otlp) = &self.otlp {
            // The record's fields are the JSON line's, so both always agree.
            let json = match self.format {
                LogFormat::Json => line,
                LogFormat::Text => self.line(LogFormat::Json, record, outcome, ctx),
            };
            if let Ok(mut fields) = serde_json::from_slice::<serde_json::Map<String, Value>>(&json)
            {
                for envelope in ["level", "time", "scope"] {
                    fields.remove(envelope);
                }
                otlp.emit(fields);
            }
        }
    }

    fn line(
        &self,
        format: LogFormat,
        record: &RequestRecord,
        outcome: &Outcome<'_>,
        ctx: Option<&Ctx>,
    ) -> Vec<u8> {
        let mut line = Line::start(format, &self.skip);
        standard_fields(&mut line, record, outcome);
        if let Some(ctx) = ctx {
            for (name, value) in self.fields.eval_spread(ctx) {
                line.value(&name, &value);
            }
        }
        line.finish()
    }
}

/// One log line being built.
struct Line<'a> {
    buf: Vec<u8>,
    json: bool,
    skip: &'a [String],
}

impl<'a> Line<'a> {
    fn start(format: LogFormat, skip: &'a [String]) -> Line<'a> {
        let json = format == LogFormat::Json;
        let time = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let mut buf = Vec::with_capacity(512);
        if json {
            let _ = write!(buf, r#"{{"level":"info","time":"{time}","scope":"request""#);
        } else {
            let _ = write!(buf, "{time}\tinfo\trequest");
        }
        Line { buf, json, skip }
    }

    fn skipped(&self, key: &str) -> bool {
        self.skip.iter().any(|s| s == key)
    }

    fn key(&mut self, key: &str) {
        if self.json {
            self.buf.push(b',');
            push_json_str(&mut self.buf, key);
            self.buf.push(b':');
        } else {
            self.buf.push(b' ');
            self.buf.extend_from_slice(key.as_bytes());
            self.buf.push(b'=');
        }
    }

    /// A text field; empty values are omitted.
    fn str(&mut self, key: &str, value: &str) {
        if value.is_empty() || self.skipped(key) {
            return;
        }
        self.key(key);
        self.text(value);
    }

    /// A string value: JSON-escaped, or in text bare unless it has spaces, quotes, `=` or
    /// control characters (then quoted and escaped, so a value can never start a new line).
    fn text(&mut self, value: &str) {
        if self.json {
            push_json_str(&mut self.buf, value);
        } else if value.is_empty()
            || value.contains(|c: char| c == ' ' || c == '"' || c == '=' || c.is_control())
        {
            let _ = write!(self.buf, "{value:?}");
        } else {
            self.buf.extend_from_slice(value.as_bytes());
        }
    }

    /// A field whose `Display` needs no escaping (addresses, ids, versions): quoted in JSON.
    fn display(&mut self, key: &str, value: impl std::fmt::Display) {
        if self.skipped(key) {
            return;
        }
        self.key(key);
        if self.json {
            let _ = write!(self.buf, "\"{value}\"");
        } else {
            let _ = write!(self.buf, "{value}");
        }
    }

    /// A number, unquoted in both formats.
    fn num(&mut self, key: &str, value: u64) {
        if self.skipped(key) {
            return;
        }
        self.key(key);
        let _ = write!(self.buf, "{value}");
    }

    /// A CEL result: strings as strings, everything else as JSON (quoted as text when needed).
    fn value(&mut self, key: &str, value: &Value) {
        self.key(key);
        match value {
            Value::String(s) => self.text(s),
            other if self.json => {
                let _ = write!(self.buf, "{other}");
            }
            other => self.text(&other.to_string()),
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.json {
            self.buf.push(b'}');
        }
        self.buf.push(b'\n');
        self.buf
    }
}

fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    // serde_json's escaping, written into the line's buffer without a copy of `s`.
    let _ = serde_json::to_writer(buf, s);
}

/// agentgateway's access-log fields, in its order.
fn standard_fields(l: &mut Line<'_>, record: &RequestRecord, o: &Outcome<'_>) {
    l.str("gateway", &o.labels.gateway);
    l.str("listener", o.labels.listener.as_deref().unwrap_or(""));
    l.str("route", o.labels.route.as_deref().unwrap_or(""));
    l.str("endpoint", o.backend.unwrap_or(""));
    l.display("src.addr", record.peer);
    l.str("http.method", record.method.as_str());
    l.str("http.host", record.host.as_deref().unwrap_or(""));
    l.str("http.path", record.uri.path());
    l.display("http.version", format_args!("{:?}", record.version));
    l.num("http.status", u64::from(o.status));
    if let Some(traced) = &record.trace {
        use opentelemetry::trace::TraceContextExt;
        let span = traced.cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            l.display("trace.id", sc.trace_id());
            l.display("span.id", sc.span_id());
        }
    }
    let protocol = if record.mcp.get().is_some() {
        "mcp"
    } else if record.a2a.get().is_some() {
        "a2a"
    } else if record.llm.get().is_some() {
        "llm"
    } else {
        "http"
    };
    l.str("protocol", protocol);
    if let Some(Some(method)) = record.a2a.get() {
        l.str("a2a.method", method);
    }
    if let Some(m) = record.mcp.get() {
        l.str("mcp.method.name", &m.method);
        l.str("mcp.target", m.target.as_deref().unwrap_or(""));
        l.str("mcp.resource.type", m.resource_type);
        l.str("mcp.resource.name", m.resource.as_deref().unwrap_or(""));
        l.str("mcp.session.id", m.session.as_deref().unwrap_or(""));
    }
    if let Some(g) = record.llm.get() {
        l.str("gen_ai.operation.name", "chat");
        l.str("gen_ai.provider.name", g.provider);
        l.str("gen_ai.request.model", &g.request_model);
        l.str(
            "gen_ai.response.model",
            g.response_model.as_deref().unwrap_or(""),
        );
        if let Some(t) = g.input_tokens {
            l.num("gen_ai.usage.input_tokens", t);
        }
        if let Some(t) = g.output_tokens {
            l.num("gen_ai.usage.output_tokens", t);
        }
    }
    let attempts = record.attempts();
    if attempts > 1 {
        l.num("retry.attempt", u64::from(attempts - 1));
    }
    if !o.reason.is_answer() {
        l.str("reason", o.reason.as_str());
    }
    l.display(
        "duration",
        format_args!("{}ms", record.started.elapsed().as_millis()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: LogFormat, build: impl FnOnce(&mut Line<'_>)) -> String {
        let skip = vec!["dropped".to_string()];
        let mut l = Line::start(format, &skip);
        build(&mut l);
        String::from_utf8(l.finish()).unwrap()
    }

    #[test]
    fn text_values_cannot_break_the_line() {
        let out = line(LogFormat::Text, |l| {
            l.str("plain", "v1");
            l.str("spaced", "a b");
            l.str("evil", "x\nfake=line");
            l.value("cel", &serde_json::json!(["a b"]));
            l.str("dropped", "gone");
            l.str("empty", "");
        });
        assert_eq!(out.matches('\n').count(), 1, "{out}");
        assert!(
            out.ends_with(
                " plain=v1 spaced=\"a b\" evil=\"x\\nfake=line\" cel=\"[\\\"a b\\\"]\"\n"
            )
        );
        assert!(out.contains("\tinfo\trequest "));
    }

    #[test]
    fn json_lines_parse_with_typed_values() {
        let out = line(LogFormat::Json, |l| {
            l.str("s", "x\"y");
            l.num("n", 200);
            l.display("addr", "127.0.0.1:1");
            l.value("cel", &serde_json::json!({"k": 1}));
            l.str("dropped", "gone");
        });
        let v: Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["scope"], "request");
        assert_eq!(v["s"], "x\"y");
        assert_eq!(v["n"], 200);
        assert_eq!(v["addr"], "127.0.0.1:1");
        assert_eq!(v["cel"]["k"], 1);
        assert!(v.get("dropped").is_none());
    }
}
