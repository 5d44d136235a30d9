//! CEL fields: the config's expressions, compiled once per apply, evaluated per request over
//! the variables of DESIGN §10 (camelCase, plus the snake_case aliases the seed configs use).

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use http::Uri;
use indexmap::IndexMap;
use serde_json::{Map, Value, json};
use tollgate_shared::config::redact;

use super::Outcome;
use super::functions;
use super::record::{ClientIdentity, LlmFacts, RequestRecord};

/// The variables of one request.
pub type Ctx = cel::Context<'static, 'static>;

/// `name: expression` pairs, compiled.
#[derive(Default)]
pub struct Expressions {
    items: Vec<(String, cel::Program)>,
}

impl Expressions {
    /// The config was validated, so every expression compiles; one that does not is skipped.
    pub fn compile(fields: &IndexMap<String, String>) -> Expressions {
        Expressions {
            items: fields
                .iter()
                .filter_map(|(name, expr)| Some((name.clone(), cel::Program::compile(expr).ok()?)))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|(n, _)| n.as_str())
    }

    /// Log and trace fields: each field's value, a `flatten` result spread into many
    /// (`name.key`); a field that failed at run time or is null is left out.
    pub fn eval_spread(&self, ctx: &cel::Context<'_, '_>) -> Vec<(String, Value)> {
        self.items
            .iter()
            .flat_map(|(name, program)| functions::field_values(name, program.execute(ctx)))
            .collect()
    }

    /// Each field's value (metric labels: one per field); `None` when it failed at run time
    /// or is null (the field is omitted).
    pub fn eval<'a>(
        &'a self,
        ctx: &'a cel::Context<'_, '_>,
    ) -> impl Iterator<Item = (&'a str, Option<Value>)> + 'a {
        self.items.iter().map(move |(name, program)| {
            let value = program
                .execute(ctx)
                .ok()
                .and_then(|v| v.json().ok())
                .filter(|v| !v.is_null());
            (name.as_str(), value)
        })
    }
}

/// A `filter` expression: `true` keeps the record.
pub struct Filter(cel::Program);

impl Filter {
    pub fn compile(expr: &str) -> Option<Filter> {
        cel::Program::compile(expr).ok().map(Filter)
    }

    /// A filter that fails at run time keeps the record: better a line too many than a lost one.
    pub fn keeps(&self, ctx: &cel::Context<'_, '_>) -> bool {
        !matches!(self.0.execute(ctx), Ok(cel::Value::Bool(false)))
    }
}

/// `pathAndQuery` with the values of credential-like query parameters redacted.
fn redacted_path_and_query(uri: &Uri) -> String {
    redact::url(uri.path_and_query().map_or("/", |p| p.as_str()))
}

/// The variables that carry the caller's identity: maps, empty without one.
const IDENTITY_VARIABLES: [&str; 3] = ["jwt", "apiKey", "basicAuth"];

/// The members the expressions read of the identity variables, as `VAR.NAME` (`jwt.sub`,
/// `apiKey.group`). Each variable's map gets each of them, null when the caller has no such
/// member (or no identity), so `jwt.sub` reads as null rather than failing (DESIGN §10). A
/// consequence: `has(jwt.NAME)` is true for these names; test `jwt.NAME != null` instead.
pub fn identity_members_read<'a>(expressions: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names: Vec<String> = Vec::new();
    for expr in expressions {
        for variable in IDENTITY_VARIABLES {
            let prefix = format!("{variable}.");
            for (at, _) in expr.match_indices(&prefix) {
                if expr[..at].chars().next_back().is_some_and(is_ident) {
                    continue;
                }
                let rest = &expr[at + prefix.len()..];
                let name = &rest[..rest.find(|c| !is_ident(c)).unwrap_or(rest.len())];
                let member = format!("{prefix}{name}");
                if !name.is_empty() && !names.contains(&member) {
                    names.push(member);
                }
            }
        }
    }
    names
}

/// `variable`'s map: `members`, plus null for each member read (`identity_members_read`) it
/// lacks.
fn identity_variable(
    ctx: &mut Ctx,
    variable: &str,
    mut members: Map<String, Value>,
    read: &[String],
) {
    let names = read
        .iter()
        .filter_map(|m| m.strip_prefix(variable)?.strip_prefix('.'));
    for name in names {
        members.entry(name).or_insert(Value::Null);
    }
    let _ = ctx.add_variable(variable, Value::Object(members));
}

/// The variables of one finished request; `identity_members` from [`identity_members_read`].
pub fn context(record: &RequestRecord, outcome: &Outcome<'_>, identity_members: &[String]) -> Ctx {
    let mut ctx = request_context(record, identity_members);
    let _ = ctx.add_variable(
        "response",
        json!({"code": outcome.status, "reason": outcome.reason.as_str()}),
    );
    let _ = ctx.add_variable(
        "backend",
        json!({"name": outcome.backend, "route": outcome.labels.route.as_deref(), "listener": outcome.labels.listener.as_deref()}),
    );
    add_llm(&mut ctx, record);
    add_mcp(&mut ctx, record);
    ctx
}

/// An empty context with CEL's standard library and the gateway's functions: a scope inside
/// one root built once per process, since building them costs more than evaluating most
/// expressions.
pub fn stdlib_context() -> Ctx {
    static ROOT: LazyLock<Ctx> = LazyLock::new(|| {
        let mut root = cel::Context::with_env(Arc::new(functions::env()));
        functions::add(&mut root);
        crate::authz::add_functions(&mut root);
        root
    });
    ROOT.new_inner_scope()
}

/// Where a connection came from: the client (named by a PROXY header, else the TCP peer)
/// and the TCP peer itself.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub peer: SocketAddr,
    /// The TCP peer when a PROXY header named another client.
    pub raw_peer: Option<SocketAddr>,
}

/// CEL's `source`: `address` and `port` of the client, `rawAddress` and `rawPort` of the TCP
/// peer (the same without a PROXY header), and a verified client certificate's names.
pub fn add_source(ctx: &mut Ctx, source: &Source, identity: Option<&ClientIdentity>) {
    let raw = source.raw_peer.unwrap_or(source.peer);
    let mut value = json!({
        "address": source.peer.ip().to_string(),
        "port": source.peer.port(),
        "rawAddress": raw.ip().to_string(),
        "rawPort": raw.port(),
    });
    if let Some(id) = identity {
        value["subject"] = json!(id.subject);
        value["issuer"] = json!(id.issuer);
        value["subjectAltNames"] = json!(id.subject_alt_names);
    }
    let _ = ctx.add_variable("source", value);
}

/// The variables of a connection before any request: `source` only.
pub fn connection_context(source: &Source) -> Ctx {
    let mut ctx = stdlib_context();
    add_source(&mut ctx, source, None);
    ctx
}

/// The variables known before the request goes upstream: `request`, `source` and the
/// caller's identity (`jwt`, `apiKey`, `basicAuth`).
pub fn request_context(record: &RequestRecord, identity_members: &[String]) -> Ctx {
    let mut ctx = stdlib_context();
    let uri = &record.uri;
    let headers: Map<String, Value> = record
        .headers
        .iter()
        .flat_map(|h| h.iter())
        .filter_map(|(k, v)| {
            // CEL sees credentials as `<redacted>`, so no field, label or log line leaks a key.
            // A JWT is recognised by its form, whatever the header is called.
            let value = if redact::is_credential_name(k.as_str()) {
                redact::REDACTED
            } else {
                Some(v.to_str().ok()?)
                    .filter(|v| !redact::looks_like_credential(v))
                    .unwrap_or(redact::REDACTED)
            };
            Some((k.as_str().to_string(), json!(value)))
        })
        .collect();
    let request = json!({
        "method": record.method.as_str(),
        "uri": redact::url(&uri.to_string()),
        "host": record.host,
        "scheme": uri.scheme_str().unwrap_or("http"),
        "path": uri.path(),
        "pathAndQuery": redacted_path_and_query(uri),
        "version": format!("{:?}", record.version),
        "headers": headers,
        "startTime": humantime::format_rfc3339_millis(record.start).to_string(),
    });
    let _ = ctx.add_variable("request", request);
    let source = Source {
        peer: record.peer,
        raw_peer: record.raw_peer,
    };
    add_source(&mut ctx, &source, record.client_identity.as_deref());
    // `jwt`: the validated claims; `apiKey`: the key's metadata, the key itself redacted (as
    // agentgateway); empty maps without identity.
    let jwt = record.jwt.get().map(|claims| Map::clone(claims));
    identity_variable(&mut ctx, "jwt", jwt.unwrap_or_default(), identity_members);
    let api_key = record.api_key.get().map(|k| {
        let mut members = k.metadata.clone();
        members.insert("key".to_string(), json!(redact::REDACTED));
        members
    });
    identity_variable(
        &mut ctx,
        "apiKey",
        api_key.unwrap_or_default(),
        identity_members,
    );
    let basic = record.basic_auth.get().map(|user| {
        let mut members = Map::new();
        members.insert("username".to_string(), json!(user));
        members
    });
    let basic = basic.unwrap_or_default();
    identity_variable(&mut ctx, "basicAuth", basic, identity_members);
    ctx
}

/// `llm`, once the LLM exchange is known.
pub fn add_llm(ctx: &mut Ctx, record: &RequestRecord) {
    if let Some(llm) = record.llm.get() {
        add_llm_facts(ctx, llm);
    }
}

/// `llm` from `llm` (authorization reads it before the exchange ends).
pub fn add_llm_facts(ctx: &mut Ctx, llm: &LlmFacts) {
    let total = match (llm.input_tokens, llm.output_tokens) {
        (None, None) => None,
        (i, o) => Some(i.unwrap_or(0) + o.unwrap_or(0)),
    };
    let mut vars = Map::new();
    let mut put = |camel: &str, snake: &str, v: Value| {
        vars.insert(camel.to_string(), v.clone());
        if snake != camel {
            vars.insert(snake.to_string(), v);
        }
    };
    put("provider", "provider", json!(llm.provider));
    put("requestModel", "request_model", json!(llm.request_model));
    put("responseModel", "response_model", json!(llm.response_model));
    put("inputTokens", "input_tokens", json!(llm.input_tokens));
    put("outputTokens", "output_tokens", json!(llm.output_tokens));
    put("totalTokens", "total_tokens", json!(total));
    put("streaming", "streaming", json!(llm.streaming));
    put(
        "prompt",
        "prompt",
        llm.prompt
            .as_deref()
            .and_then(|raw| serde_json::from_slice(raw).ok())
            .unwrap_or(Value::Null),
    );
    put("params", "params", Value::Object(llm.params.clone()));
    put("completion", "completion", json!(llm.completion));
    let _ = ctx.add_variable("llm", Value::Object(vars));
}

/// `mcp`, once the gateway has routed the MCP request.
pub fn add_mcp(ctx: &mut Ctx, record: &RequestRecord) {
    if let Some(mcp) = record.mcp.get() {
        let _ = ctx.add_variable(
            "mcp",
            json!({
                "methodName": mcp.method, "method_name": mcp.method,
                "sessionId": mcp.session, "session_id": mcp.session,
                "target": mcp.target,
                "resourceType": mcp.resource_type, "resource_type": mcp.resource_type,
                "tool": if mcp.resource_type == "tool" {
                    json!({"target": mcp.target, "name": mcp.resource})
                } else { Value::Null },
                "prompt": if mcp.resource_type == "prompt" {
                    json!({"target": mcp.target, "name": mcp.resource})
                } else { Value::Null },
                "resource": if mcp.resource_type == "resource" {
                    json!({"target": mcp.target, "uri": mcp.resource})
                } else { Value::Null },
            }),
        );
    }
}

/// A JSON value as a log field or label: strings bare, everything else as JSON text.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_members_read_are_found_once() {
        let names = identity_members_read([
            "jwt.sub != null",
            "jwt.sub + jwt.tenant_id",
            "myjwt.x",
            "string(jwt.groups[0])",
            "jwt",
            "apiKey.group + basicAuth.username + myapiKey.x",
        ]);
        assert_eq!(
            names,
            [
                "jwt.sub",
                "jwt.tenant_id",
                "jwt.groups",
                "apiKey.group",
                "basicAuth.username"
            ]
        );
    }

    #[test]
    fn credential_query_values_are_redacted() {
        let uri: Uri = "http://user:pw@h:1/p?key=k1&model=m&sessionId=s1&api_key=k2"
            .parse()
            .unwrap();
        assert_eq!(
            redacted_path_and_query(&uri),
            "/p?key=<redacted>&model=m&sessionId=<redacted>&api_key=<redacted>"
        );
        let origin_form: Uri = "/p?x=1".parse().unwrap();
        assert_eq!(redacted_path_and_query(&origin_form), "/p?x=1");
    }
}
