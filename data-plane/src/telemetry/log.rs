//! Access logs: one line per request on stdout, as text or JSON, with agentgateway's field
//! names and order, the config's CEL fields, and its CEL filter.
//!
//! Lines go through a non-blocking writer (a channel to a writer thread), so a slow stdout never
//! stalls a request; if it falls far behind, lines are dropped rather than requests.

use std::io::Write;

use serde_json::{Map, Value, json};
use tollgate_shared::config::model::{LogFormat, Logging};

use super::Outcome;
use super::fields::{self, Ctx, Expressions, Filter};
use super::record::RequestRecord;

pub struct AccessLog {
    format: LogFormat,
    filter: Option<Filter>,
    fields: Expressions,
    remove: Vec<String>,
    writer: tracing_appender::non_blocking::NonBlocking,
}

impl AccessLog {
    /// `None` when `level` hides info lines (access logs are info).
    pub fn new(
        config: &Logging,
        writer: tracing_appender::non_blocking::NonBlocking,
    ) -> Option<AccessLog> {
        if matches!(config.level.as_deref(), Some("warn" | "error" | "off")) {
            return None;
        }
        Some(AccessLog {
            format: config.format,
            filter: config.filter.as_deref().and_then(Filter::compile),
            fields: Expressions::compile(&config.fields.add),
            remove: config.fields.remove.clone(),
            writer,
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
        let mut fields = standard_fields(record, outcome);
        if let Some(ctx) = ctx {
            for (name, value) in self.fields.eval(ctx) {
                if let Some(v) = value {
                    fields.insert(name.to_string(), v);
                }
            }
        }
        for name in &self.remove {
            fields.remove(name);
        }
        let time = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let mut line = match self.format {
            LogFormat::Json => {
                let mut obj = Map::new();
                obj.insert("level".into(), json!("info"));
                obj.insert("time".into(), json!(time.to_string()));
                obj.insert("scope".into(), json!("request"));
                obj.extend(fields);
                Value::Object(obj).to_string()
            }
            LogFormat::Text => {
                let mut out = format!("{time}\tinfo\trequest");
                for (k, v) in &fields {
                    out.push(' ');
                    out.push_str(k);
                    out.push('=');
                    out.push_str(&quoted(&fields::text(v)));
                }
                out
            }
        };
        line.push('\n');
        let _ = self.writer.clone().write_all(line.as_bytes());
    }
}

/// `k=v` values with spaces, quotes or `=` are quoted.
fn quoted(v: &str) -> String {
    if v.is_empty() || v.contains([' ', '"', '=', '\t', '\n']) {
        format!("{v:?}")
    } else {
        v.to_string()
    }
}

/// agentgateway's access-log fields, in its order; empty ones omitted.
pub fn standard_fields(record: &RequestRecord, o: &Outcome<'_>) -> Map<String, Value> {
    let mut f = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v.filter(|v| !v.is_null() && v.as_str() != Some("")) {
            f.insert(k.to_string(), v);
        }
    };
    put("gateway", Some(json!(o.gateway)));
    put("listener", o.listener.map(|v| json!(v)));
    put("route", o.route.map(|v| json!(v)));
    put("endpoint", o.backend.map(|v| json!(v)));
    put("src.addr", Some(json!(record.peer.to_string())));
    put("http.method", Some(json!(record.method.as_str())));
    put("http.host", record.host.as_ref().map(|h| json!(h)));
    put("http.path", Some(json!(record.uri.path())));
    put("http.version", Some(json!(format!("{:?}", record.version))));
    put("http.status", Some(json!(o.status)));
    if let Some(traced) = &record.trace {
        use opentelemetry::trace::TraceContextExt;
        let sc = traced.cx.span().span_context().clone();
        if sc.is_valid() {
            put("trace.id", Some(json!(sc.trace_id().to_string())));
            put("span.id", Some(json!(sc.span_id().to_string())));
        }
    }
    let protocol = if record.mcp.get().is_some() {
        "mcp"
    } else if record.llm.get().is_some() {
        "llm"
    } else {
        "http"
    };
    put("protocol", Some(json!(protocol)));
    if let Some(m) = record.mcp.get() {
        put("mcp.method.name", Some(json!(m.method)));
        put("mcp.target", m.target.as_ref().map(|v| json!(v)));
        put("mcp.resource.type", Some(json!(m.resource_type)));
        put("mcp.resource.name", m.resource.as_ref().map(|v| json!(v)));
        put("mcp.session.id", m.session.as_ref().map(|v| json!(v)));
    }
    if let Some(l) = record.llm.get() {
        put("gen_ai.operation.name", Some(json!("chat")));
        put("gen_ai.provider.name", Some(json!(l.provider)));
        put("gen_ai.request.model", Some(json!(l.request_model)));
        put(
            "gen_ai.response.model",
            l.response_model.as_ref().map(|v| json!(v)),
        );
        put(
            "gen_ai.usage.input_tokens",
            l.input_tokens.map(|v| json!(v)),
        );
        put(
            "gen_ai.usage.output_tokens",
            l.output_tokens.map(|v| json!(v)),
        );
    }
    let attempts = record.attempts();
    if attempts > 1 {
        put("retry.attempt", Some(json!(attempts - 1)));
    }
    if o.reason != "Upstream" && o.reason != "DirectResponse" {
        put("reason", Some(json!(o.reason)));
    }
    put(
        "duration",
        Some(json!(format!("{}ms", record.started.elapsed().as_millis()))),
    );
    f
}
