//! `openapi` MCP targets: a REST API described by an OpenAPI 3 document, served as tools by an
//! in-process MCP server that a session connects to like any other target, so names, merging,
//! failure modes and `mcpAuthorization` are the multiplexer's, unchanged.
//!
//! Tools follow agentgateway: one per operation, named by its `operationId`; its input is an
//! object with `path`, `query` and `header` objects (the operation's parameters) and `body`
//! (its `application/json` request body), every local `$ref` inlined.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use http::{HeaderName, HeaderValue, Method, header};
use openapiv3::{OpenAPI, Parameter, ParameterSchemaOrContent, ReferenceOr, RequestBody};
use parking_lot::Mutex;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, JsonObject,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use tollgate_shared::config::model::{Config, McpTargetKind, OpenApiSchema};
use tollgate_shared::files;

use super::upstream::Remote;
use crate::http::sse::MAX_SSE_EVENT;

/// Characters left as they are in a path parameter (RFC 3986 unreserved): `/`, `?` and `#`
/// are escaped, so an argument cannot change the path beyond its segment.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Headers a tool's arguments never set: the gateway writes them.
const PROTECTED: [HeaderName; 4] = [
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::TRANSFER_ENCODING,
    header::HOST,
];

/// The OpenAPI specs of a config, read and turned into tools when it is applied; spec files
/// are read again when they change (`source::openapi`).
#[derive(Default)]
pub struct OpenApiSpecs(HashMap<OpenApiSchema, Arc<SpecCell>>);

/// A spec that cannot be served: the config is not applied.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct OpenApiError {
    field: String,
    reason: String,
}

impl OpenApiSpecs {
    /// Reads and parses every `openapi` target's spec (a file relative to the working
    /// directory, or inline).
    pub fn load(config: &Config) -> Result<OpenApiSpecs, OpenApiError> {
        let mut specs = HashMap::new();
        for (at, target) in config.mcp_targets() {
            let McpTargetKind::OpenApi { schema, .. } = &target.kind else {
                continue;
            };
            if specs.contains_key(schema) {
                continue;
            }
            let (file, text, field, shown) = match schema {
                OpenApiSchema::File(path) => (
                    Some(path.clone()),
                    read(path),
                    format!("{at}.openapi.schema.file"),
                    format!(" `{}`", path.display()),
                ),
                OpenApiSchema::Inline(text) => (
                    None,
                    Ok(text.clone()),
                    format!("{at}.openapi.schema"),
                    String::new(),
                ),
            };
            let (text, tools) = text
                .and_then(|text| ToolSet::parse(&text).map(|tools| (text, tools)))
                .map_err(|reason| OpenApiError {
                    field,
                    reason: format!("OpenAPI spec{shown}: {reason}"),
                })?;
            let cell = SpecCell {
                file,
                tools: ArcSwap::from_pointee(tools),
                text: Mutex::new(text),
            };
            specs.insert(schema.clone(), Arc::new(cell));
        }
        Ok(OpenApiSpecs(specs))
    }

    /// The tools of `schema` now, if the config in force names it.
    pub fn get(&self, schema: &OpenApiSchema) -> Option<Arc<ToolSet>> {
        self.0.get(schema).map(|c| c.tools.load_full())
    }

    /// The specs read from files.
    pub fn files(&self) -> impl Iterator<Item = &Arc<SpecCell>> {
        self.0.values().filter(|c| c.file.is_some())
    }
}

/// One spec's tools, swapped when its file changes; sessions keep the tools they opened with.
pub struct SpecCell {
    /// The spec file; `None` for a spec written in the config.
    pub file: Option<PathBuf>,
    tools: ArcSwap<ToolSet>,
    /// The text the tools were read from: an unchanged file is not parsed again.
    text: Mutex<String>,
}

impl SpecCell {
    /// Reads the file again: `Ok(true)` when it changed and its tools were swapped in; on
    /// error the last good tools are kept.
    pub fn reload(&self) -> Result<bool, String> {
        let Some(file) = &self.file else {
            return Ok(false);
        };
        let text = read(file)?;
        let mut last = self.text.lock();
        if *last == text {
            return Ok(false);
        }
        self.tools.store(Arc::new(ToolSet::parse(&text)?));
        *last = text;
        Ok(true)
    }
}

fn read(file: &Path) -> Result<String, String> {
    files::read_to_string(file, files::MAX_DOCUMENT)
        .map_err(|e| format!("cannot read `{}`: {e}", file.display()))
}

/// The tools of one spec, with the request each one makes.
#[derive(Debug)]
pub struct ToolSet {
    tools: Vec<rmcp::model::Tool>,
    operations: HashMap<String, Operation>,
    /// The path of the spec's server URL, put before every operation's path.
    prefix: String,
}

#[derive(Debug)]
struct Operation {
    method: Method,
    /// The path template (`/pet/{petId}`).
    path: String,
    /// The header parameters the spec declares, lowercase: the only headers a call may set.
    headers: Vec<String>,
}

/// Where a parameter goes; also its object's name in a tool's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Location {
    Path,
    Query,
    Header,
}

impl Location {
    const ALL: [Location; 3] = [Location::Path, Location::Query, Location::Header];

    fn as_str(self) -> &'static str {
        match self {
            Location::Path => "path",
            Location::Query => "query",
            Location::Header => "header",
        }
    }

    /// `None` for cookie parameters, which are not served (as in agentgateway).
    fn of(p: &Parameter) -> Option<Location> {
        match p {
            Parameter::Path { .. } => Some(Location::Path),
            Parameter::Query { .. } => Some(Location::Query),
            Parameter::Header { .. } => Some(Location::Header),
            Parameter::Cookie { .. } => None,
        }
    }
}

impl ToolSet {
    /// The tools of a JSON or YAML OpenAPI 3.0 document.
    pub fn parse(text: &str) -> Result<ToolSet, String> {
        let api: OpenAPI = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| format!("not an OpenAPI 3 document: {e}"))?
        } else {
            yaml_serde::from_str(text).map_err(|e| format!("not an OpenAPI 3 document: {e}"))?
        };
        let components = serde_json::to_value(&api.components).map_err(|e| e.to_string())?;
        let refs = Refs {
            api: &api,
            components: &components,
        };
        let mut tools = Vec::new();
        let mut operations = HashMap::new();
        for (path, item) in &api.paths.paths {
            let item = item
                .as_item()
                .ok_or_else(|| format!("path `{path}`: a `$ref` path item is not supported"))?;
            for (method, op) in item.iter() {
                let at = format!("{} {path}", method.to_uppercase());
                let name = op.operation_id.clone().ok_or_else(|| {
                    format!("{at}: an operation needs an `operationId` (its tool name)")
                })?;
                let mut params: Vec<(Location, &Parameter)> = Vec::new();
                // The operation's parameters override the path's of the same name and place.
                for p in item.parameters.iter().chain(&op.parameters) {
                    let p = refs.parameter(p)?;
                    let Some(location) = Location::of(p) else {
                        continue;
                    };
                    let key = |(l, q): &(Location, &Parameter)| {
                        *l == location
                            && same_name(
                                location,
                                &q.parameter_data_ref().name,
                                &p.parameter_data_ref().name,
                            )
                    };
                    match params.iter().position(key) {
                        Some(i) => params[i] = (location, p),
                        None => params.push((location, p)),
                    }
                }
                let body = match &op.request_body {
                    Some(b) => refs.body(b, &at)?,
                    None => None,
                };
                let schema = input_schema(&refs, &params, body, &at)?;
                let description = op
                    .description
                    .as_ref()
                    .or(op.summary.as_ref())
                    .unwrap_or(&name);
                tools.push(rmcp::model::Tool::new(
                    name.clone(),
                    description.clone(),
                    Arc::new(schema),
                ));
                let method = Method::from_bytes(method.to_uppercase().as_bytes())
                    .map_err(|e| format!("{at}: {e}"))?;
                let headers = params
                    .iter()
                    .filter(|(l, _)| *l == Location::Header)
                    .map(|(_, p)| p.parameter_data_ref().name.to_ascii_lowercase())
                    .collect();
                let operation = Operation {
                    method,
                    path: path.clone(),
                    headers,
                };
                if operations.insert(name.clone(), operation).is_some() {
                    return Err(format!("{at}: operationId `{name}` is used twice"));
                }
            }
        }
        Ok(ToolSet {
            tools,
            operations,
            prefix: server_prefix(&api)?,
        })
    }

    /// The tools, in the spec's order.
    pub fn tools(&self) -> &[rmcp::model::Tool] {
        &self.tools
    }

    /// Makes the request of tool `name` to the API at `base`; the response body is the
    /// result's text, an error status makes it an error result.
    async fn call(
        &self,
        remote: &Remote,
        base: &str,
        name: &str,
        args: JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        let op = self
            .operations
            .get(name)
            .ok_or_else(|| ErrorData::invalid_params(format!("unknown tool `{name}`"), None))?;
        let part = |key: &str| match args.get(key) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(_) => Err(ErrorData::invalid_params(
                format!("`{key}` must be an object"),
                None,
            )),
        };
        let url = request_url(
            base,
            &self.prefix,
            &fill_path(&op.path, &part("path")?)?,
            &query_string(&part("query")?)?,
        );
        let mut request = remote
            .http
            .request(op.method.clone(), remote.url(&url))
            .header(header::ACCEPT, "application/json");
        let mut headers = http::HeaderMap::new();
        if let Some((name, value)) = remote.headers() {
            headers.insert(name, value);
        }
        for (key, value) in part("header")? {
            let lower = key.to_ascii_lowercase();
            if !op.headers.contains(&lower) {
                continue;
            }
            let Ok(name) = HeaderName::from_bytes(lower.as_bytes()) else {
                continue;
            };
            if PROTECTED.contains(&name) || headers.contains_key(&name) {
                continue;
            }
            let text = scalar(&value).ok_or_else(|| {
                ErrorData::invalid_params(format!("header `{key}` must be a string"), None)
            })?;
            let value = HeaderValue::from_str(&text).map_err(|_| {
                ErrorData::invalid_params(format!("header `{key}` is not a valid value"), None)
            })?;
            headers.insert(name, value);
        }
        request = request.headers(headers);
        if let Some(body) = args.get("body") {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let failed = |e: reqwest::Error| {
            let reason = super::upstream::without_urls(&e.to_string());
            ErrorData::internal_error(format!("the API call failed: {reason}"), None)
        };
        let mut response = request.send().await.map_err(failed)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_SSE_EVENT {
                return Err(ErrorData::internal_error(
                    format!("the API's response is over {MAX_SSE_EVENT} bytes"),
                    None,
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        if status.is_client_error() || status.is_server_error() {
            return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "HTTP {status}: {text}"
            ))]));
        }
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        if let Ok(Value::Object(object)) = serde_json::from_slice(&body) {
            result.structured_content = Some(Value::Object(object));
        }
        Ok(result)
    }
}

/// Resolves references within one document.
struct Refs<'a> {
    api: &'a OpenAPI,
    /// `components`, as JSON, for schema references.
    components: &'a Value,
}

impl Refs<'_> {
    fn parameter<'a>(&'a self, p: &'a ReferenceOr<Parameter>) -> Result<&'a Parameter, String> {
        match p {
            ReferenceOr::Item(p) => Ok(p),
            ReferenceOr::Reference { reference } => {
                let found = reference
                    .strip_prefix("#/components/parameters/")
                    .and_then(|n| self.api.components.as_ref()?.parameters.get(n));
                match found {
                    Some(p) => self.parameter(p),
                    None => Err(format!("reference `{reference}` points to no parameter")),
                }
            }
        }
    }

    /// The `application/json` schema of a request body and whether it is required; `None`
    /// for bodies of other types.
    fn body(
        &self,
        b: &ReferenceOr<RequestBody>,
        at: &str,
    ) -> Result<Option<(Value, bool)>, String> {
        let body = match b {
            ReferenceOr::Item(b) => b,
            ReferenceOr::Reference { reference } => reference
                .strip_prefix("#/components/requestBodies/")
                .and_then(|n| self.api.components.as_ref()?.request_bodies.get(n))
                .and_then(ReferenceOr::as_item)
                .ok_or_else(|| {
                    format!("{at}: reference `{reference}` points to no request body")
                })?,
        };
        let Some(media) = body.content.get("application/json") else {
            return Ok(None);
        };
        let schema = match &media.schema {
            Some(s) => self.inline(&serde_json::to_value(s).map_err(|e| e.to_string())?)?,
            None => json!({}),
        };
        Ok(Some((schema, body.required)))
    }

    /// `value` with every `$ref` replaced by what it points to.
    fn inline(&self, value: &Value) -> Result<Value, String> {
        self.inline_within(value, &mut Vec::new())
    }

    /// `within` holds the references being expanded: one met again inside itself (a
    /// recursive schema) is left open, `{}`.
    fn inline_within(&self, value: &Value, within: &mut Vec<String>) -> Result<Value, String> {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    if within.contains(reference) {
                        return Ok(json!({}));
                    }
                    let target = reference
                        .strip_prefix("#/components")
                        .and_then(|pointer| self.components.pointer(pointer))
                        .ok_or_else(|| {
                            format!("reference `{reference}` is not a `#/components/...` one that exists")
                        })?;
                    within.push(reference.clone());
                    let out = self.inline_within(target, within);
                    within.pop();
                    return out;
                }
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.inline_within(v, within)?)))
                    .collect::<Result<Map<_, _>, String>>()
                    .map(Value::Object)
            }
            Value::Array(items) => items
                .iter()
                .map(|v| self.inline_within(v, within))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Ok(other.clone()),
        }
    }
}

fn same_name(location: Location, a: &str, b: &str) -> bool {
    match location {
        Location::Header => a.eq_ignore_ascii_case(b),
        _ => a == b,
    }
}

/// The tool's input schema: `body`, then one object per parameter location that has any.
fn input_schema(
    refs: &Refs<'_>,
    params: &[(Location, &Parameter)],
    body: Option<(Value, bool)>,
    at: &str,
) -> Result<JsonObject, String> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    if let Some((schema, needed)) = body {
        properties.insert("body".into(), schema);
        if needed {
            required.push("body");
        }
    }
    for location in Location::ALL {
        let mut props = Map::new();
        let mut needed = Vec::new();
        for (_, p) in params.iter().filter(|(l, _)| *l == location) {
            let data = p.parameter_data_ref();
            let ParameterSchemaOrContent::Schema(schema) = &data.format else {
                return Err(format!(
                    "{at}: parameter `{}` has `content`, which is not supported (use `schema`)",
                    data.name
                ));
            };
            let mut schema =
                refs.inline(&serde_json::to_value(schema).map_err(|e| e.to_string())?)?;
            if let (Some(d), Value::Object(s)) = (&data.description, &mut schema) {
                s.insert("description".into(), json!(d));
            }
            props.insert(data.name.clone(), schema);
            if data.required {
                needed.push(data.name.clone());
            }
        }
        if props.is_empty() {
            continue;
        }
        if !needed.is_empty() {
            required.push(location.as_str());
        }
        properties.insert(
            location.as_str().into(),
            json!({"type": "object", "properties": props, "required": needed}),
        );
    }
    let schema = json!({"type": "object", "properties": properties, "required": required});
    Ok(schema.as_object().cloned().unwrap_or_default())
}

/// The path of the spec's one server URL (`/api/v3`), or nothing; more servers are refused,
/// as agentgateway does.
fn server_prefix(api: &OpenAPI) -> Result<String, String> {
    let url = match api.servers.as_slice() {
        [] => return Ok(String::new()),
        [one] => one.url.as_str(),
        _ => return Err("a spec with more than one server is not supported".into()),
    };
    let after_authority = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => match url.strip_prefix("//") {
            Some(rest) => rest.find('/').map_or("", |i| &rest[i..]),
            None => url,
        },
    };
    let path = after_authority
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    Ok(path.to_string())
}

/// `template` with each `{name}` replaced by its percent-encoded argument.
fn fill_path(template: &str, args: &Map<String, Value>) -> Result<String, ErrorData> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..open + close];
        let value = args.get(name).and_then(scalar).ok_or_else(|| {
            ErrorData::invalid_params(
                format!("path parameter `{name}` is missing or not a string or number"),
                None,
            )
        })?;
        // A segment of dots (escaped or not, URL parsers resolve it) would leave the path.
        if value == "." || value == ".." {
            return Err(ErrorData::invalid_params(
                format!("path parameter `{name}` cannot be `{value}`"),
                None,
            ));
        }
        out.extend(utf8_percent_encode(&value, PATH_SEGMENT));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `a=1&b=x%20y`; a list repeats its key, `null` leaves the key alone.
fn query_string(args: &Map<String, Value>) -> Result<String, ErrorData> {
    let mut pairs = Vec::new();
    for (key, value) in args {
        let key = utf8_percent_encode(key, NON_ALPHANUMERIC).to_string();
        let values = match value {
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        for v in values {
            if v.is_null() {
                pairs.push(key.clone());
                continue;
            }
            let text = scalar(v).ok_or_else(|| {
                ErrorData::invalid_params(format!("query parameter `{key}` must be a string, number, boolean or a list of them"), None)
            })?;
            pairs.push(format!(
                "{key}={}",
                utf8_percent_encode(&text, NON_ALPHANUMERIC)
            ));
        }
    }
    Ok(pairs.join("&"))
}

/// A string, number or boolean as text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `base` (which may have a path and a query of its own), then `prefix` and `path`, then the
/// query.
fn request_url(base: &str, prefix: &str, path: &str, query: &str) -> String {
    let (base, base_query) = base.split_once('?').unwrap_or((base, ""));
    let mut url = format!("{}{prefix}{path}", base.trim_end_matches('/'));
    let queries: Vec<&str> = [base_query, query]
        .into_iter()
        .filter(|q| !q.is_empty())
        .collect();
    if !queries.is_empty() {
        url.push('?');
        url.push_str(&queries.join("&"));
    }
    url
}

/// The MCP server of one target in one session.
pub struct OpenApiServer {
    pub tools: Arc<ToolSet>,
    /// The API's base URL.
    pub base: String,
    pub remote: Remote,
}

impl ServerHandler for OpenApiServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.tools().to_vec()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        self.tools
            .call(&self.remote, &self.base, &request.name, args)
            .await
            .map(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PETSTORE: &str = include_str!("../../../tests/fixtures/openapi/petstore.json");

    fn tool<'a>(set: &'a ToolSet, name: &str) -> &'a rmcp::model::Tool {
        set.tools().iter().find(|t| t.name == name).unwrap()
    }

    #[test]
    fn each_operation_is_a_tool_with_its_parameters_and_body() {
        let set = ToolSet::parse(PETSTORE).unwrap();
        assert_eq!(set.prefix, "/api/v3");
        let get = tool(&set, "getPetById");
        let schema = Value::Object((*get.input_schema).clone());
        assert_eq!(schema["required"], json!(["path"]));
        assert_eq!(schema["properties"]["path"]["required"], json!(["petId"]));
        assert_eq!(
            schema["properties"]["path"]["properties"]["petId"]["type"],
            "integer"
        );
        let add = tool(&set, "addPet");
        let body = &add.input_schema["properties"]["body"];
        // `$ref`s are inlined, nested ones too.
        assert_eq!(
            body["properties"]["category"]["properties"]["name"]["type"],
            "string"
        );
        assert!(!body.to_string().contains("$ref"), "{body}");
        assert_eq!(add.input_schema["required"], json!(["body"]));
        let op = &set.operations["findPetsByStatus"];
        assert_eq!(
            (op.method.as_str(), op.path.as_str()),
            ("GET", "/pet/findByStatus")
        );
    }

    #[test]
    fn operation_parameters_override_the_paths_and_headers_are_declared() {
        let spec = r#"{"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
          "paths": {"/a/{id}": {
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                           {"name": "X-Trace", "in": "header", "schema": {"type": "string"}}],
            "get": {"operationId": "getA", "summary": "gets", "responses": {},
              "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}},
                             {"name": "session", "in": "cookie", "schema": {"type": "string"}}]}}}}"#;
        let set = ToolSet::parse(spec).unwrap();
        let t = tool(&set, "getA");
        assert_eq!(t.description.as_deref(), Some("gets"));
        let props = &t.input_schema["properties"];
        assert_eq!(props["path"]["properties"]["id"]["type"], "integer");
        assert!(props.get("cookie").is_none());
        assert_eq!(set.operations["getA"].headers, vec!["x-trace"]);
    }

    #[test]
    fn recursive_schemas_are_left_open() {
        let spec = r##"{"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
          "components": {"schemas": {"Node": {"type": "object",
            "properties": {"child": {"$ref": "#/components/schemas/Node"}}}}},
          "paths": {"/n": {"post": {"operationId": "put", "responses": {}, "requestBody": {"required": false,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}}}}}}"##;
        let set = ToolSet::parse(spec).unwrap();
        let body = &tool(&set, "put").input_schema["properties"]["body"];
        assert_eq!(body["properties"]["child"], json!({}));
    }

    #[test]
    fn unusable_specs_say_why() {
        let no_id = r#"{"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
          "paths": {"/a": {"get": {"responses": {}}}}}"#;
        assert!(ToolSet::parse(no_id).unwrap_err().contains("operationId"));
        assert!(
            ToolSet::parse("{")
                .unwrap_err()
                .contains("not an OpenAPI 3 document")
        );
        let missing = r##"{"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
          "paths": {"/a": {"post": {"operationId": "a", "responses": {}, "requestBody": {"content":
            {"application/json": {"schema": {"$ref": "#/components/schemas/Gone"}}}}}}}}"##;
        assert!(ToolSet::parse(missing).unwrap_err().contains("Gone"));
    }

    #[test]
    fn yaml_specs_parse() {
        let spec = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\nservers: [{url: 'https://api.example.com/v1/'}]\npaths:\n  /a:\n    get:\n      operationId: getA\n      responses:\n        200: {description: ok}\n";
        let set = ToolSet::parse(spec).unwrap();
        assert_eq!(set.prefix, "/v1");
        assert_eq!(set.tools().len(), 1);
    }

    #[test]
    fn path_parameters_are_escaped_and_queries_encoded() {
        let args = json!({"id": "../a b/?#", "n": 7});
        let args = args.as_object().unwrap();
        assert_eq!(
            fill_path("/x/{id}/{n}", args).unwrap(),
            "/x/..%2Fa%20b%2F%3F%23/7"
        );
        assert!(fill_path("/x/{other}", args).is_err());
        let dots = json!({"id": ".."});
        assert!(fill_path("/x/{id}/y", dots.as_object().unwrap()).is_err());
        let query = json!({"flag": null, "n": 1, "status": ["a b", "c"]});
        assert_eq!(
            query_string(query.as_object().unwrap()).unwrap(),
            "flag&n=1&status=a%20b&status=c"
        );
        assert_eq!(
            request_url("http://h:1/base/?k=v", "/api", "/p", "a=1"),
            "http://h:1/base/api/p?k=v&a=1"
        );
        assert_eq!(request_url("http://h:1", "", "/p", ""), "http://h:1/p");
    }
}
