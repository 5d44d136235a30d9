//! `config:`, the process-wide settings: raw types, validation, the model and its proto form.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::model::{Invalid, as_humantime};
use super::path::YamlPath;
use super::policies::{RawHeaders, Secret, shown_headers};
use super::raw::Lenient;
use super::validate::Validator;
use crate::convert::{self, InvalidSnapshot, duration, enum_value, invalid, missing, nanos};
use crate::proto::v1 as pb;

// === raw ===

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSettings {
    pub admin_addr: Option<String>,
    /// Host names the admin server answers to besides its address and `localhost`.
    pub admin_hosts: Option<Vec<String>>,
    pub stats_addr: Option<String>,
    pub readiness_addr: Option<String>,
    /// Largest request body accepted, as bytes or a size such as `10MiB`.
    #[serde(default)]
    #[schemars(schema_with = "super::raw::byte_size_schema")]
    pub max_body_size: Option<yaml_serde::Value>,
    /// How long in-flight requests may take to finish on shutdown or port removal.
    pub drain_timeout: Option<String>,
    pub tracing: Option<Lenient<RawTracing>>,
    pub metrics: Option<Lenient<RawMetrics>>,
    pub logging: Option<Lenient<RawLogging>>,
    pub mcp: Option<Lenient<RawMcpSettings>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMcpSettings {
    /// Idle time after which a session is closed, e.g. `30m`.
    pub session_ttl: Option<String>,
    /// Most live sessions (each stdio target of a session is one child process).
    pub max_sessions: Option<u32>,
    /// Most stdio child processes across all sessions.
    pub max_children: Option<u32>,
    /// Largest MCP message accepted, as bytes or a size such as `1MiB`.
    #[serde(default)]
    #[schemars(schema_with = "super::raw::byte_size_schema")]
    pub max_body_size: Option<yaml_serde::Value>,
    /// Most live sessions opened from one client address.
    pub max_sessions_per_client: Option<u32>,
    /// Most stdio child processes run for one client address's sessions.
    pub max_children_per_client: Option<u32>,
    /// A session that makes no call this long after it opened is closed, e.g. `1m`.
    pub unused_session_ttl: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTracing {
    pub otlp_endpoint: String,
    pub otlp_protocol: Option<String>,
    /// Headers sent with every export (`Authorization` of a SaaS backend).
    #[serde(default)]
    pub headers: RawHeaders,
    /// The HTTP path of `otlpProtocol: http` (default `/v1/traces`).
    pub path: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "super::raw::sampling_schema")]
    pub random_sampling: Option<yaml_serde::Value>,
    #[serde(default)]
    #[schemars(schema_with = "super::raw::sampling_schema")]
    pub client_sampling: Option<yaml_serde::Value>,
    pub fields: Option<RawFields>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFields {
    #[serde(default)]
    pub add: IndexMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMetrics {
    pub fields: Option<RawFields>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawLogging {
    pub filter: Option<String>,
    pub fields: Option<RawFields>,
    pub level: Option<String>,
    pub format: Option<String>,
}

// === model ===

/// Where a process-level server listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ListenAddr {
    /// The built-in default (moved by `--listen-ip`).
    Default,
    /// Not served at all.
    Off,
    /// This address.
    At(SocketAddr),
}

/// `config:`: process-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// `adminAddr`: the admin API (config dump, readiness details).
    pub admin_addr: ListenAddr,
    /// `adminHosts` (Tollgate extension): `Host` names the admin server answers to besides IP
    /// literals of its address and `localhost`; any other gets 403 (DNS rebinding).
    pub admin_hosts: Vec<String>,
    /// `statsAddr`: Prometheus metrics.
    pub stats_addr: ListenAddr,
    /// `readinessAddr`: the readiness probe.
    pub readiness_addr: ListenAddr,
    /// Largest request body the proxy accepts; larger ones get 413.
    pub max_body_size: u64,
    /// How long in-flight requests may take to finish on shutdown or port removal.
    #[serde(serialize_with = "as_humantime")]
    pub drain_timeout: Duration,
    /// OTLP trace export; `None` = no tracing.
    pub tracing: Option<Tracing>,
    /// Request metrics: extra labels and metrics dropped.
    pub metrics: Metrics,
    /// Access logs: filter, fields, level and format.
    pub logging: Logging,
    /// Limits of the MCP session manager.
    pub mcp: McpSettings,
}

/// `config.mcp`: limits of the MCP session manager.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpSettings {
    /// A session unused this long is closed (its stdio children with it).
    #[serde(serialize_with = "as_humantime")]
    pub session_ttl: Duration,
    /// Most live MCP sessions; past it `initialize` gets 503.
    pub max_sessions: u32,
    /// Most stdio child processes across sessions (one per stdio target per session).
    pub max_children: u32,
    /// `maxBodySize` (Tollgate extension): largest MCP message; tighter than the proxy's.
    pub max_body_size: u64,
    /// Most live sessions per client address; past it that client's `initialize` gets 503.
    pub max_sessions_per_client: u32,
    /// Most stdio children of one client address's sessions.
    pub max_children_per_client: u32,
    /// A session that made no call (besides `initialize`) this long after opening is closed.
    #[serde(serialize_with = "as_humantime")]
    pub unused_session_ttl: Duration,
}

impl Default for McpSettings {
    fn default() -> Self {
        McpSettings {
            session_ttl: Duration::from_secs(30 * 60),
            max_sessions: 1000,
            max_children: 500,
            max_body_size: DEFAULT_MCP_MAX_BODY_SIZE,
            max_sessions_per_client: 16,
            max_children_per_client: 16,
            unused_session_ttl: Duration::from_secs(60),
        }
    }
}

impl McpSettings {
    /// These settings when every limit and time is positive.
    pub(crate) fn validated(self) -> Result<McpSettings, Vec<Invalid>> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("sessionTtl", self.session_ttl),
            ("unusedSessionTtl", self.unused_session_ttl),
        ] {
            if value.is_zero() {
                problems.push(Invalid::at(key, format!("{key} must be longer than 0s")));
            }
        }
        for (key, value) in [
            ("maxSessions", u64::from(self.max_sessions)),
            ("maxChildren", u64::from(self.max_children)),
            ("maxBodySize", self.max_body_size),
            (
                "maxSessionsPerClient",
                u64::from(self.max_sessions_per_client),
            ),
            (
                "maxChildrenPerClient",
                u64::from(self.max_children_per_client),
            ),
        ] {
            if value == 0 {
                problems.push(Invalid::at(key, format!("{key} must be at least 1")));
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }
}

impl Settings {
    /// What a config without a `config:` section gets.
    pub fn defaults() -> Settings {
        Settings {
            admin_addr: ListenAddr::Default,
            admin_hosts: Vec::new(),
            stats_addr: ListenAddr::Default,
            readiness_addr: ListenAddr::Default,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            tracing: None,
            metrics: Metrics::default(),
            logging: Logging::default(),
            mcp: McpSettings::default(),
        }
    }
}

/// `maxBodySize` when unset: 10 MiB.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 10 * 1024 * 1024;
/// `mcp.maxBodySize` when unset: 1 MiB (an MCP message is parsed whole, see decisions.md).
pub const DEFAULT_MCP_MAX_BODY_SIZE: u64 = 1024 * 1024;
/// `drainTimeout` when unset.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// `config.tracing` (or `frontendPolicies.tracing`): OTLP trace export.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracing {
    /// `http://` or `https://` URL of the OTLP collector (for HTTP without its path); dumps
    /// redact credentials. `https://` is checked against the webpki roots.
    #[serde(serialize_with = "super::redact::serialize_url")]
    pub otlp_endpoint: String,
    /// gRPC, or HTTP with protobuf bodies.
    pub otlp_protocol: OtlpProtocol,
    /// The path HTTP exports are posted to (`/v1/traces` unless the endpoint or `path` names
    /// one); empty for gRPC.
    pub path: String,
    /// Headers sent with every export (gRPC metadata for gRPC); values are secrets.
    #[serde(serialize_with = "shown_headers")]
    pub headers: Vec<(String, Secret)>,
    /// Share of requests without a sampled parent that are traced (0.0..=1.0).
    pub random_sampling: f64,
    /// Whether a client's sampled `traceparent` is honoured.
    pub client_sampling: bool,
    /// Span attributes added (CEL) and removed.
    pub fields: Fields,
    /// Resource attributes (CEL, evaluated once when the exporter is built).
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub resources: IndexMap<String, String>,
}

/// `otlpProtocol`: how spans are exported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OtlpProtocol {
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

/// The HTTP path of OTLP trace export when none is given.
pub const DEFAULT_OTLP_TRACES_PATH: &str = "/v1/traces";
/// The HTTP path of OTLP log export when none is given.
pub const DEFAULT_OTLP_LOGS_PATH: &str = "/v1/logs";

/// Labels of every per-request metric, in order; `metrics.fields.add` appends its own.
pub const REQUEST_LABELS: [&str; 8] = [
    "bind", "gateway", "listener", "route", "backend", "method", "status", "reason",
];

/// Extra fields computed by CEL expressions (`name -> expression`), and fields to drop.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fields {
    /// Field name -> CEL expression, in file order.
    pub add: IndexMap<String, String>,
    /// Standard fields left out.
    pub remove: Vec<String>,
}

/// `config.metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Extra labels of the request metrics (`remove` is always empty: labels stay).
    pub fields: Fields,
    /// Names of whole metrics not exported.
    pub remove: Vec<String>,
}

/// `config.logging`: access logs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Logging {
    /// CEL expression; only requests for which it is true are logged.
    pub filter: Option<String>,
    /// Log fields added (CEL) and removed.
    pub fields: Fields,
    /// Process log level (one of [`LOG_LEVELS`]); `None` keeps the default.
    pub level: Option<String>,
    /// Line format.
    pub format: LogFormat,
    /// `frontendPolicies.accessLog.otlp`: each line also exported as an OTLP log record.
    pub otlp: Option<LogExport>,
}

/// Where access-log records are exported over OTLP.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogExport {
    /// `http://host:port` of the collector.
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// The path HTTP exports are posted to (default `/v1/logs`); empty for gRPC.
    pub path: String,
}

/// `config.logging.format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LogFormat {
    /// `key=value` text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Values of `config.logging.level`.
pub const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Whether `expr` compiles as CEL; the parser's message when it does not.
pub fn check_cel(expr: &str) -> Result<(), String> {
    cel::Program::compile(expr).map(drop).map_err(|e| {
        e.to_string()
            .lines()
            .next()
            .unwrap_or("syntax error")
            .to_string()
    })
}

// === validation ===

impl Validator<'_> {
    pub fn settings(&mut self, raw: &RawSettings, path: &YamlPath) -> Settings {
        let max_body_size = match &raw.max_body_size {
            None => DEFAULT_MAX_BODY_SIZE,
            Some(v) => self
                .size(v, &path.key("maxBodySize"))
                .unwrap_or(DEFAULT_MAX_BODY_SIZE),
        };
        let drain_timeout = self
            .optional_duration(raw.drain_timeout.as_deref(), path, "drainTimeout")
            .unwrap_or(DEFAULT_DRAIN_TIMEOUT);
        let tracing = self.section(raw.tracing.as_ref(), path, "tracing", Self::tracing);
        let metrics = self
            .section(raw.metrics.as_ref(), path, "metrics", |v, m, p| {
                Some(v.metrics(m, p))
            })
            .unwrap_or_default();
        let logging = self
            .section(raw.logging.as_ref(), path, "logging", |v, l, p| {
                Some(v.logging(l, p))
            })
            .unwrap_or_default();
        let mcp = self
            .section(raw.mcp.as_ref(), path, "mcp", Self::mcp_settings)
            .unwrap_or_default();
        Settings {
            admin_addr: self.listen_addr(raw.admin_addr.as_deref(), &path.key("adminAddr")),
            admin_hosts: self.admin_hosts(raw.admin_hosts.as_deref(), &path.key("adminHosts")),
            stats_addr: self.listen_addr(raw.stats_addr.as_deref(), &path.key("statsAddr")),
            readiness_addr: self
                .listen_addr(raw.readiness_addr.as_deref(), &path.key("readinessAddr")),
            max_body_size,
            drain_timeout,
            tracing,
            metrics,
            logging,
            mcp,
        }
    }

    /// `adminHosts`: bare host names, compared without case.
    fn admin_hosts(&mut self, names: Option<&[String]>, path: &YamlPath) -> Vec<String> {
        let names = names.unwrap_or_default();
        for (i, name) in names.iter().enumerate() {
            let bare = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !bare {
                self.error(
                    &path.index(i),
                    format!("`{name}` is not a host name (letters, digits, `-` and `.`, no port)"),
                );
            }
        }
        names.iter().map(|n| n.to_ascii_lowercase()).collect()
    }

    fn mcp_settings(&mut self, raw: &RawMcpSettings, path: &YamlPath) -> Option<McpSettings> {
        let defaults = McpSettings::default();
        let mut readable = true;
        let mut duration =
            |v: &mut Self, text: Option<&str>, key: &str, default: Duration| match text
                .map(|d| v.duration(d, &path.key(key)))
            {
                Some(Some(d)) => d,
                Some(None) => {
                    readable = false;
                    default
                }
                None => default,
            };
        let session_ttl = duration(
            self,
            raw.session_ttl.as_deref(),
            "sessionTtl",
            defaults.session_ttl,
        );
        let unused_session_ttl = duration(
            self,
            raw.unused_session_ttl.as_deref(),
            "unusedSessionTtl",
            defaults.unused_session_ttl,
        );
        let max_body_size = match &raw.max_body_size {
            Some(v) => self.size(v, &path.key("maxBodySize")).unwrap_or_else(|| {
                readable = false;
                defaults.max_body_size
            }),
            None => defaults.max_body_size,
        };
        // An unreadable time or size is already reported; the limits are still checked.
        let built = McpSettings {
            session_ttl,
            max_sessions: raw.max_sessions.unwrap_or(defaults.max_sessions),
            max_children: raw.max_children.unwrap_or(defaults.max_children),
            max_body_size,
            max_sessions_per_client: raw
                .max_sessions_per_client
                .unwrap_or(defaults.max_sessions_per_client),
            max_children_per_client: raw
                .max_children_per_client
                .unwrap_or(defaults.max_children_per_client),
            unused_session_ttl,
        }
        .validated();
        let settings = self.checked(built, path)?;
        readable.then_some(settings)
    }

    pub(crate) fn size(&mut self, v: &yaml_serde::Value, path: &YamlPath) -> Option<u64> {
        match v {
            yaml_serde::Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
            yaml_serde::Value::String(s) => match s.trim().parse::<bytesize::ByteSize>() {
                Ok(b) => Some(b.as_u64()),
                Err(e) => {
                    self.error(
                        path,
                        format!("invalid size `{s}`: {e} (examples: 1048576, 512KiB, 10MiB)"),
                    );
                    None
                }
            },
            _ => {
                self.error(path, "expected a size in bytes or a string such as `10MiB`");
                None
            }
        }
    }

    fn listen_addr(&mut self, text: Option<&str>, path: &YamlPath) -> ListenAddr {
        let Some(text) = text else {
            return ListenAddr::Default;
        };
        let text = text.trim();
        if text == "off" {
            return ListenAddr::Off;
        }
        let parsed = if let Some(port) = text.strip_prefix("localhost:") {
            port.parse::<u16>()
                .ok()
                .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p))
        } else if let Some(port) = text.strip_prefix(':') {
            port.parse::<u16>()
                .ok()
                .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p))
        } else {
            text.parse::<SocketAddr>().ok()
        };
        match parsed {
            Some(a) => ListenAddr::At(a),
            None => {
                self.error(
                    path,
                    format!(
                        "invalid address `{text}`: expected ip:port, localhost:port, :port or off"
                    ),
                );
                ListenAddr::Default
            }
        }
    }

    fn tracing(&mut self, raw: &RawTracing, path: &YamlPath) -> Option<Tracing> {
        let protocol = self.otlp_protocol(raw.otlp_protocol.as_deref(), &path.key("otlpProtocol"));
        let (otlp_endpoint, path_in_url) =
            self.otlp_endpoint(&raw.otlp_endpoint, protocol, &path.key("otlpEndpoint"))?;
        let export_path = self.otlp_path(
            protocol,
            path_in_url.or(raw.path.clone()),
            raw.path.is_some(),
            DEFAULT_OTLP_TRACES_PATH,
            &path.key("path"),
        );
        let headers = self.headers(&raw.headers, &path.key("headers"));
        let random_sampling = match &raw.random_sampling {
            None => 0.0,
            Some(v) => self.sampling(v, &path.key("randomSampling"))?,
        };
        let client_sampling = match &raw.client_sampling {
            None => true,
            Some(v) => self.sampling(v, &path.key("clientSampling"))? > 0.0,
        };
        Some(Tracing {
            otlp_endpoint,
            otlp_protocol: protocol,
            path: export_path,
            headers,
            random_sampling,
            client_sampling,
            fields: self.fields(raw.fields.as_ref(), &path.key("fields")),
            resources: IndexMap::new(),
        })
    }

    /// `grpc` (the default) or `http`.
    pub(crate) fn otlp_protocol(&mut self, text: Option<&str>, path: &YamlPath) -> OtlpProtocol {
        match text {
            None | Some("grpc") => OtlpProtocol::Grpc,
            Some("http") => OtlpProtocol::Http,
            Some(other) => {
                self.error(
                    path,
                    format!("unknown protocol `{other}`; expected grpc or http"),
                );
                OtlpProtocol::Grpc
            }
        }
    }

    /// The collector's URL; for HTTP split into `scheme://authority` and the path it names
    /// (agentgateway's reading of `https://host/api/public/otel/v1/traces`).
    fn otlp_endpoint(
        &mut self,
        url: &str,
        protocol: OtlpProtocol,
        path: &YamlPath,
    ) -> Option<(String, Option<String>)> {
        let parsed = url
            .parse::<http::Uri>()
            .ok()
            .filter(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
        let Some(uri) = parsed else {
            self.error(
                path,
                format!(
                    "`{}` is not an http:// or https:// URL",
                    super::redact::url(url)
                ),
            );
            return None;
        };
        if protocol == OtlpProtocol::Grpc {
            return Some((url.to_string(), None));
        }
        let named = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty() && *p != "/")
            .map(str::to_string);
        let authority = uri.authority().map_or("", |a| a.as_str());
        let scheme = uri.scheme_str().unwrap_or("http");
        Some((format!("{scheme}://{authority}"), named))
    }

    /// The HTTP export path: given (absolute) or `default`; none for gRPC.
    pub(crate) fn otlp_path(
        &mut self,
        protocol: OtlpProtocol,
        given: Option<String>,
        written: bool,
        default: &str,
        path: &YamlPath,
    ) -> String {
        match (protocol, given) {
            (OtlpProtocol::Grpc, _) => {
                if written {
                    self.error(
                        path,
                        "`path` is for otlpProtocol: http; gRPC export has none",
                    );
                }
                String::new()
            }
            (OtlpProtocol::Http, None) => default.to_string(),
            (OtlpProtocol::Http, Some(p)) if p.starts_with('/') => p,
            (OtlpProtocol::Http, Some(p)) => {
                self.error(
                    path,
                    format!("`{p}` is not an absolute path (start it with /)"),
                );
                default.to_string()
            }
        }
    }

    /// `true`/`false` (also quoted, as the seed writes it) or a ratio in 0..=1.
    pub(crate) fn sampling(&mut self, v: &yaml_serde::Value, path: &YamlPath) -> Option<f64> {
        let ratio = match v {
            yaml_serde::Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            yaml_serde::Value::Number(n) => n.as_f64(),
            yaml_serde::Value::String(s) => match s.trim() {
                "true" => Some(1.0),
                "false" => Some(0.0),
                other => other.parse::<f64>().ok(),
            },
            _ => None,
        };
        match ratio {
            Some(r) if (0.0..=1.0).contains(&r) => Some(r),
            _ => {
                self.error(path, "expected true, false or a ratio between 0.0 and 1.0");
                None
            }
        }
    }

    pub(crate) fn fields(&mut self, raw: Option<&RawFields>, path: &YamlPath) -> Fields {
        let Some(f) = raw else {
            return Fields::default();
        };
        for (name, expr) in &f.add {
            self.cel(expr, &path.key("add").key(name.clone()));
        }
        Fields {
            add: f.add.clone(),
            remove: f.remove.clone(),
        }
    }

    fn metrics(&mut self, raw: &RawMetrics, path: &YamlPath) -> Metrics {
        let fields = self.fields(raw.fields.as_ref(), &path.key("fields"));
        for name in fields.add.keys() {
            let valid = name
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
            if name.is_empty() || !valid {
                self.error(
                    &path.key("fields").key("add").key(name.clone()),
                    format!("`{name}` is not a Prometheus label name (letters, digits and `_`)"),
                );
            } else if REQUEST_LABELS.contains(&name.as_str()) {
                self.error(
                    &path.key("fields").key("add").key(name.clone()),
                    format!("`{name}` is a standard label of the request metrics"),
                );
            }
        }
        if !fields.remove.is_empty() {
            self.error(
                &path.key("fields").key("remove"),
                "labels cannot be removed from metrics; drop whole metrics with `metrics.remove`",
            );
        }
        Metrics {
            fields,
            remove: raw.remove.clone(),
        }
    }

    pub(crate) fn cel(&mut self, expr: &str, path: &YamlPath) {
        if let Err(e) = check_cel(expr) {
            self.error(path, format!("invalid CEL expression `{expr}`: {e}"));
        }
    }

    fn logging(&mut self, raw: &RawLogging, path: &YamlPath) -> Logging {
        let format = match raw.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                self.error(
                    &path.key("format"),
                    format!("unknown format `{other}`; expected text or json"),
                );
                LogFormat::Text
            }
        };
        if let Some(filter) = &raw.filter {
            self.cel(filter, &path.key("filter"));
        }
        if let Some(level) = &raw.level
            && !LOG_LEVELS.contains(&level.as_str())
        {
            self.error(
                &path.key("level"),
                format!(
                    "unknown level `{level}`; expected one of {}",
                    LOG_LEVELS.join(", ")
                ),
            );
        }
        Logging {
            filter: raw.filter.clone(),
            fields: self.fields(raw.fields.as_ref(), &path.key("fields")),
            level: raw.level.clone(),
            format,
            otlp: None,
        }
    }
}

// === proto ===

impl From<ListenAddr> for pb::ListenAddr {
    fn from(a: ListenAddr) -> Self {
        use pb::listen_addr::Kind;
        pb::ListenAddr {
            kind: Some(match a {
                ListenAddr::Default => Kind::Default(true),
                ListenAddr::Off => Kind::Off(true),
                ListenAddr::At(addr) => Kind::At(addr.to_string()),
            }),
        }
    }
}

impl TryFrom<pb::ListenAddr> for ListenAddr {
    type Error = InvalidSnapshot;

    fn try_from(a: pb::ListenAddr) -> convert::Result<ListenAddr> {
        use pb::listen_addr::Kind;
        match a.kind {
            Some(Kind::Default(_)) => Ok(ListenAddr::Default),
            Some(Kind::Off(_)) => Ok(ListenAddr::Off),
            Some(Kind::At(s)) => s
                .parse()
                .map(ListenAddr::At)
                .or_else(|e| invalid("", format!("`{s}`: {e}"))),
            None => missing(""),
        }
    }
}

impl From<&Fields> for pb::Fields {
    fn from(f: &Fields) -> Self {
        pb::Fields {
            add: f
                .add
                .iter()
                .map(|(n, e)| pb::Field {
                    name: n.clone(),
                    expression: e.clone(),
                })
                .collect(),
            remove: f.remove.clone(),
        }
    }
}

impl From<pb::Fields> for Fields {
    fn from(f: pb::Fields) -> Self {
        Fields {
            add: f.add.into_iter().map(|f| (f.name, f.expression)).collect(),
            remove: f.remove,
        }
    }
}

impl From<&Tracing> for pb::Tracing {
    fn from(t: &Tracing) -> Self {
        pb::Tracing {
            otlp_endpoint: t.otlp_endpoint.clone(),
            otlp_protocol: pb::OtlpProtocol::from(t.otlp_protocol) as i32,
            path: t.path.clone(),
            headers: t
                .headers
                .iter()
                .map(|(name, value)| pb::Header {
                    name: name.clone(),
                    value: value.expose().to_string(),
                    reference: value.reference().unwrap_or_default().to_string(),
                })
                .collect(),
            random_sampling: t.random_sampling,
            client_sampling: t.client_sampling,
            fields: Some((&t.fields).into()),
            resources: t
                .resources
                .iter()
                .map(|(name, expression)| pb::Field {
                    name: name.clone(),
                    expression: expression.clone(),
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::Tracing> for Tracing {
    type Error = InvalidSnapshot;

    fn try_from(t: pb::Tracing) -> convert::Result<Tracing> {
        Ok(Tracing {
            otlp_endpoint: t.otlp_endpoint,
            otlp_protocol: enum_value::<pb::OtlpProtocol>(t.otlp_protocol, "otlpProtocol")?.into(),
            path: t.path,
            headers: t
                .headers
                .into_iter()
                .map(|h| {
                    let reference = (!h.reference.is_empty()).then_some(h.reference);
                    (h.name, Secret::new(h.value, reference))
                })
                .collect(),
            random_sampling: t.random_sampling,
            client_sampling: t.client_sampling,
            fields: t.fields.unwrap_or_default().into(),
            resources: t
                .resources
                .into_iter()
                .map(|f| (f.name, f.expression))
                .collect(),
        })
    }
}

impl From<&Metrics> for pb::Metrics {
    fn from(m: &Metrics) -> Self {
        pb::Metrics {
            fields: Some((&m.fields).into()),
            remove: m.remove.clone(),
        }
    }
}

impl From<pb::Metrics> for Metrics {
    fn from(m: pb::Metrics) -> Self {
        Metrics {
            fields: m.fields.unwrap_or_default().into(),
            remove: m.remove,
        }
    }
}

impl From<OtlpProtocol> for pb::OtlpProtocol {
    fn from(p: OtlpProtocol) -> Self {
        match p {
            OtlpProtocol::Grpc => pb::OtlpProtocol::Grpc,
            OtlpProtocol::Http => pb::OtlpProtocol::Http,
        }
    }
}

impl From<pb::OtlpProtocol> for OtlpProtocol {
    fn from(p: pb::OtlpProtocol) -> Self {
        match p {
            pb::OtlpProtocol::Grpc => OtlpProtocol::Grpc,
            pb::OtlpProtocol::Http => OtlpProtocol::Http,
        }
    }
}

impl From<&Logging> for pb::Logging {
    fn from(l: &Logging) -> Self {
        pb::Logging {
            otlp: l.otlp.as_ref().map(|o| pb::LogExport {
                endpoint: o.endpoint.clone(),
                protocol: pb::OtlpProtocol::from(o.protocol) as i32,
                path: o.path.clone(),
            }),
            filter: l.filter.clone(),
            fields: Some((&l.fields).into()),
            level: l.level.clone(),
            format: match l.format {
                LogFormat::Text => pb::LogFormat::Text,
                LogFormat::Json => pb::LogFormat::Json,
            } as i32,
        }
    }
}

impl TryFrom<pb::Logging> for Logging {
    type Error = InvalidSnapshot;

    fn try_from(l: pb::Logging) -> convert::Result<Logging> {
        Ok(Logging {
            format: match enum_value(l.format, "format")? {
                pb::LogFormat::Text => LogFormat::Text,
                pb::LogFormat::Json => LogFormat::Json,
            },
            filter: l.filter,
            fields: l.fields.unwrap_or_default().into(),
            level: l.level,
            otlp: l
                .otlp
                .map(|o| {
                    Ok::<_, InvalidSnapshot>(LogExport {
                        endpoint: o.endpoint,
                        protocol: enum_value::<pb::OtlpProtocol>(o.protocol, "otlp.protocol")?
                            .into(),
                        path: o.path,
                    })
                })
                .transpose()?,
        })
    }
}

impl From<&McpSettings> for pb::McpSettings {
    fn from(m: &McpSettings) -> Self {
        pb::McpSettings {
            session_ttl_nanos: nanos(m.session_ttl),
            max_sessions: m.max_sessions,
            max_children: m.max_children,
            max_body_size: m.max_body_size,
            max_sessions_per_client: m.max_sessions_per_client,
            max_children_per_client: m.max_children_per_client,
            unused_session_ttl_nanos: nanos(m.unused_session_ttl),
        }
    }
}

impl TryFrom<pb::McpSettings> for McpSettings {
    type Error = InvalidSnapshot;

    fn try_from(m: pb::McpSettings) -> convert::Result<McpSettings> {
        McpSettings {
            session_ttl: duration(m.session_ttl_nanos),
            max_sessions: m.max_sessions,
            max_children: m.max_children,
            max_body_size: m.max_body_size,
            max_sessions_per_client: m.max_sessions_per_client,
            max_children_per_client: m.max_children_per_client,
            unused_session_ttl: duration(m.unused_session_ttl_nanos),
        }
        .validated()
        .map_err(InvalidSnapshot::from)
    }
}

impl From<&Settings> for pb::Settings {
    fn from(s: &Settings) -> Self {
        pb::Settings {
            admin_addr: Some(s.admin_addr.into()),
            admin_hosts: s.admin_hosts.clone(),
            stats_addr: Some(s.stats_addr.into()),
            readiness_addr: Some(s.readiness_addr.into()),
            max_body_size: s.max_body_size,
            drain_timeout_nanos: nanos(s.drain_timeout),
            mcp: Some((&s.mcp).into()),
            tracing: s.tracing.as_ref().map(Into::into),
            metrics: Some((&s.metrics).into()),
            logging: Some((&s.logging).into()),
        }
    }
}

impl TryFrom<pb::Settings> for Settings {
    type Error = InvalidSnapshot;

    fn try_from(s: pb::Settings) -> convert::Result<Settings> {
        Ok(Settings {
            admin_addr: convert::required(s.admin_addr, "adminAddr")?,
            admin_hosts: s.admin_hosts,
            stats_addr: convert::required(s.stats_addr, "statsAddr")?,
            readiness_addr: convert::required(s.readiness_addr, "readinessAddr")?,
            max_body_size: s.max_body_size,
            drain_timeout: duration(s.drain_timeout_nanos),
            mcp: convert::optional(s.mcp, "mcp")?.unwrap_or_default(),
            tracing: s.tracing.map(Tracing::try_from).transpose()?,
            metrics: s.metrics.unwrap_or_default().into(),
            logging: convert::optional(s.logging, "logging")?.unwrap_or_default(),
        })
    }
}
