//! `frontendPolicies:`, how every bind treats client connections (timeouts, limits, which
//! forwarding headers to trust): raw types, validation, the model and its proto form.
//!
//! agentgateway's spelling where it has one (`http.http1IdleTimeout`); the other fields are
//! Tollgate extensions, and agentgateway's fields Tollgate does not implement are rejected as
//! unknown. `tracing`, `accessLog` and `http.maxBufferSize` are agentgateway's newer places
//! for process-wide settings: they are folded into `config:` ([`FrontendSettings`]).

use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::model::{Invalid, as_humantime, as_opt_humantime};
use super::path::YamlPath;
use super::policies::{RawHeaderModifier, RawRuleSet, RuleSet};
use super::raw::Lenient;
use super::settings::{
    DEFAULT_OTLP_LOGS_PATH, DEFAULT_OTLP_TRACES_PATH, Fields, LogExport, RawFields, Tracing,
};
use super::tls::{FrontendTls, RawFrontendTls};
use super::validate::Validator;
use crate::convert::{self, InvalidSnapshot, duration, nanos};
use crate::proto::v1 as pb;

// === raw ===

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFrontendPolicies {
    pub http: Option<Lenient<RawFrontendHttp>>,
    pub tcp: Option<Lenient<RawFrontendTcp>>,
    pub tls: Option<Lenient<RawFrontendTls>>,
    pub access_log: Option<Lenient<RawAccessLog>>,
    pub tracing: Option<Lenient<RawFrontendTracing>>,
    pub proxy_protocol: Option<Lenient<RawProxyProtocol>>,
    pub network_authorization: Option<Lenient<RawRuleSet>>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawProxyProtocol {
    pub version: Option<String>,
    pub mode: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFrontendHttp {
    /// Largest body buffered, as bytes or a size such as `2MiB` (`config.maxBodySize`).
    #[serde(default)]
    #[schemars(schema_with = "super::raw::byte_size_schema")]
    pub max_buffer_size: Option<yaml_serde::Value>,
    pub header_read_timeout: Option<String>,
    pub http1_idle_timeout: Option<String>,
    pub http2_idle_timeout: Option<String>,
    pub xff_num_trusted_hops: Option<u32>,
    pub http1_max_headers: Option<u32>,
    pub http2_window_size: Option<u32>,
    pub http2_connection_window_size: Option<u32>,
    pub http2_frame_size: Option<u32>,
    pub http2_max_header_size: Option<u32>,
    pub http2_keepalive_interval: Option<String>,
    pub http2_keepalive_timeout: Option<String>,
    pub max_connection_duration: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFrontendTcp {
    pub max_connections: Option<u32>,
    pub keepalives: Option<RawKeepalives>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawKeepalives {
    pub enabled: Option<bool>,
    pub time: Option<String>,
    pub interval: Option<String>,
    pub retries: Option<u32>,
}

/// `frontendPolicies.accessLog`: agentgateway's spelling of `config.logging`'s filter and
/// fields.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAccessLog {
    pub filter: Option<String>,
    #[serde(default)]
    pub add: IndexMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
    pub otlp: Option<RawAccessLogOtlp>,
}

/// `frontendPolicies.accessLog.otlp`: the collector access-log records are exported to.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAccessLogOtlp {
    pub host: String,
    pub protocol: Option<String>,
    pub path: Option<String>,
}

/// `frontendPolicies.tracing`: agentgateway's spelling of `config.tracing`, with the
/// collector as `host:port`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFrontendTracing {
    pub host: String,
    pub protocol: Option<String>,
    pub path: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "super::raw::sampling_schema")]
    pub random_sampling: Option<yaml_serde::Value>,
    #[serde(default)]
    #[schemars(schema_with = "super::raw::sampling_schema")]
    pub client_sampling: Option<yaml_serde::Value>,
    /// Span attributes: name -> CEL expression.
    #[serde(default)]
    pub attributes: IndexMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
    /// Resource attributes of the exported spans: name -> CEL expression (`service.name`).
    #[serde(default)]
    pub resources: IndexMap<String, String>,
    /// How exports reach the collector; only `requestHeaderModifier` (`add`, `set`).
    pub policies: Option<RawTracingPolicies>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTracingPolicies {
    pub request_header_modifier: Option<RawHeaderModifier>,
}

// === model ===

/// `frontendPolicies`: how every bind treats client connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendPolicies {
    pub http: FrontendHttp,
    pub tcp: FrontendTcp,
    /// `tls`: handshakes of HTTPS listeners (a listener's own `tls` settings win).
    pub tls: FrontendTls,
    /// `proxyProtocol`: a PROXY header before anything else on each connection names the
    /// client; `None`: none is read.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// `networkAuthorization`: CEL rules on `source`, decided once per connection (after
    /// the PROXY header); a refused connection is closed.
    pub network_authorization: Option<RuleSet>,
}

/// `frontendPolicies.proxyProtocol` (agentgateway's defaults: v2, strict).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyProtocol {
    pub version: ProxyVersion,
    pub mode: ProxyMode,
}

/// Which PROXY protocol versions are accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProxyVersion {
    V1,
    #[default]
    V2,
    All,
}

impl ProxyVersion {
    pub fn allows_v1(self) -> bool {
        matches!(self, ProxyVersion::V1 | ProxyVersion::All)
    }

    pub fn allows_v2(self) -> bool {
        matches!(self, ProxyVersion::V2 | ProxyVersion::All)
    }
}

/// Whether a connection without a PROXY header is served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProxyMode {
    /// Every connection must start with one; others are closed.
    #[default]
    Strict,
    /// A connection without one is served with its TCP peer as the client.
    Optional,
}

/// `frontendPolicies.http`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendHttp {
    /// (Tollgate) A connection must send a whole first request head within this time.
    #[serde(serialize_with = "as_humantime")]
    pub header_read_timeout: Duration,
    /// An HTTP/1 connection with no request in progress is closed after this time.
    #[serde(serialize_with = "as_humantime")]
    pub http1_idle_timeout: Duration,
    /// (Tollgate) The same for an HTTP/2 connection (closed with GOAWAY).
    #[serde(serialize_with = "as_humantime")]
    pub http2_idle_timeout: Duration,
    /// (Tollgate) Proxies in front of the gateway whose `x-forwarded-for` entries are kept
    /// (the last N); with 0 a client's header is replaced by its address.
    pub xff_num_trusted_hops: u32,
    /// Most headers in an HTTP/1 request (hyper's default, 100, when unset); more get 431.
    pub http1_max_headers: Option<u32>,
    /// HTTP/2 stream flow-control window (adaptive when neither window is set).
    pub http2_window_size: Option<u32>,
    /// HTTP/2 connection flow-control window.
    pub http2_connection_window_size: Option<u32>,
    /// Largest HTTP/2 frame the gateway accepts (16 KiB..16 MiB).
    pub http2_frame_size: Option<u32>,
    /// Largest HTTP/2 header list the gateway accepts; larger ones get 431.
    pub http2_max_header_size: Option<u32>,
    /// Interval between HTTP/2 PING keepalives (none when unset).
    #[serde(serialize_with = "as_opt_humantime")]
    pub http2_keepalive_interval: Option<Duration>,
    /// How long a PING may go unanswered before the connection is closed (hyper's 20s when
    /// unset).
    #[serde(serialize_with = "as_opt_humantime")]
    pub http2_keepalive_timeout: Option<Duration>,
    /// A connection is closed gracefully after this time (requests in progress finish).
    #[serde(serialize_with = "as_opt_humantime")]
    pub max_connection_duration: Option<Duration>,
}

impl Default for FrontendHttp {
    fn default() -> Self {
        FrontendHttp {
            header_read_timeout: Duration::from_secs(30),
            http1_idle_timeout: Duration::from_secs(10 * 60),
            http2_idle_timeout: Duration::from_secs(10 * 60),
            xff_num_trusted_hops: 0,
            http1_max_headers: None,
            http2_window_size: None,
            http2_connection_window_size: None,
            http2_frame_size: None,
            http2_max_header_size: None,
            http2_keepalive_interval: None,
            http2_keepalive_timeout: None,
            max_connection_duration: None,
        }
    }
}

/// HTTP/2's smallest and largest `SETTINGS_MAX_FRAME_SIZE` (RFC 9113 §6.5.2).
const HTTP2_FRAME_SIZES: std::ops::RangeInclusive<u32> = 16_384..=16_777_215;
/// HTTP/2's largest flow-control window.
const HTTP2_MAX_WINDOW: u32 = (1 << 31) - 1;

impl FrontendHttp {
    /// These settings when every time is positive and every size is one HTTP allows.
    pub(crate) fn validated(self) -> Result<FrontendHttp, Vec<Invalid>> {
        let mut problems: Vec<Invalid> = [
            ("headerReadTimeout", Some(self.header_read_timeout)),
            ("http1IdleTimeout", Some(self.http1_idle_timeout)),
            ("http2IdleTimeout", Some(self.http2_idle_timeout)),
            ("http2KeepaliveInterval", self.http2_keepalive_interval),
            ("http2KeepaliveTimeout", self.http2_keepalive_timeout),
            ("maxConnectionDuration", self.max_connection_duration),
        ]
        .into_iter()
        .filter(|(_, d)| d.is_some_and(|d| d.is_zero()))
        .map(|(key, _)| Invalid::at(key, format!("{key} must be longer than 0s")))
        .collect();
        for (key, value) in [
            ("http1MaxHeaders", self.http1_max_headers),
            ("http2MaxHeaderSize", self.http2_max_header_size),
        ] {
            if value == Some(0) {
                problems.push(Invalid::at(key, format!("{key} must be at least 1")));
            }
        }
        for (key, value) in [
            ("http2WindowSize", self.http2_window_size),
            (
                "http2ConnectionWindowSize",
                self.http2_connection_window_size,
            ),
        ] {
            if value.is_some_and(|w| w == 0 || w > HTTP2_MAX_WINDOW) {
                problems.push(Invalid::at(
                    key,
                    format!("{key} must be between 1 and {HTTP2_MAX_WINDOW}"),
                ));
            }
        }
        if self
            .http2_frame_size
            .is_some_and(|f| !HTTP2_FRAME_SIZES.contains(&f))
        {
            problems.push(Invalid::at(
                "http2FrameSize",
                "http2FrameSize must be between 16384 and 16777215 (HTTP/2's limits)",
            ));
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }
}

/// `frontendPolicies.tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTcp {
    /// (Tollgate) Most open client connections per bind; past it new ones are closed at once.
    pub max_connections: u32,
    /// TCP keepalive probes on client connections; `None` leaves the system's setting.
    pub keepalives: Option<Keepalives>,
}

impl Default for FrontendTcp {
    fn default() -> Self {
        FrontendTcp {
            max_connections: 10_000,
            keepalives: None,
        }
    }
}

impl FrontendTcp {
    /// A limit of at least one connection, and keepalive times that are positive.
    pub(crate) fn new(
        max_connections: u32,
        keepalives: Option<Keepalives>,
    ) -> Result<FrontendTcp, Vec<Invalid>> {
        let mut problems = Vec::new();
        if max_connections == 0 {
            problems.push(Invalid::at(
                "maxConnections",
                "maxConnections must be at least 1",
            ));
        }
        if let Some(k) = keepalives {
            for (key, value) in [("time", k.time), ("interval", k.interval)] {
                if value < Duration::from_secs(1) {
                    problems.push(Invalid::at(
                        &format!("keepalives.{key}"),
                        format!("keepalives.{key} must be at least 1s"),
                    ));
                }
            }
            if k.retries == 0 {
                problems.push(Invalid::at(
                    "keepalives.retries",
                    "keepalives.retries must be at least 1",
                ));
            }
        }
        if problems.is_empty() {
            Ok(FrontendTcp {
                max_connections,
                keepalives,
            })
        } else {
            Err(problems)
        }
    }
}

/// `frontendPolicies.tcp.keepalives` (agentgateway's defaults: on, 180s, 180s, 9 probes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Keepalives {
    /// Whether probes are sent at all (`false` turns them off).
    pub enabled: bool,
    /// Idle time before the first probe.
    #[serde(serialize_with = "as_humantime")]
    pub time: Duration,
    /// Time between probes.
    #[serde(serialize_with = "as_humantime")]
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped.
    pub retries: u32,
}

impl Default for Keepalives {
    fn default() -> Self {
        Keepalives {
            enabled: true,
            time: Duration::from_secs(180),
            interval: Duration::from_secs(180),
            retries: 9,
        }
    }
}

/// What `frontendPolicies` sets that Tollgate keeps in `config:`; the validator folds it in
/// (setting both places is an error).
#[derive(Debug, Default)]
pub(crate) struct FrontendSettings {
    /// `http.maxBufferSize`: `config.maxBodySize`.
    pub max_buffer_size: Option<u64>,
    /// `tracing`: `config.tracing`.
    pub tracing: Option<Tracing>,
    /// `accessLog`: `config.logging`'s filter and fields, and their OTLP export.
    pub access_log: Option<AccessLogSettings>,
}

/// `frontendPolicies.accessLog`, as `config.logging` holds it.
#[derive(Debug)]
pub(crate) struct AccessLogSettings {
    /// `filter`, `add` and `remove`, when any is written.
    pub filter_and_fields: Option<(Option<String>, Fields)>,
    pub otlp: Option<LogExport>,
}

// === validation ===

impl Validator<'_> {
    pub(crate) fn frontend_policies(
        &mut self,
        raw: &RawFrontendPolicies,
        path: &YamlPath,
    ) -> (FrontendPolicies, FrontendSettings) {
        let policies = FrontendPolicies {
            proxy_protocol: self.section(
                raw.proxy_protocol.as_ref(),
                path,
                "proxyProtocol",
                Self::proxy_protocol,
            ),
            network_authorization: self.section(
                raw.network_authorization.as_ref(),
                path,
                "networkAuthorization",
                Self::rule_set,
            ),
            http: self
                .section(raw.http.as_ref(), path, "http", Self::frontend_http)
                .unwrap_or_default(),
            tcp: self
                .section(raw.tcp.as_ref(), path, "tcp", Self::frontend_tcp)
                .unwrap_or_default(),
            tls: self
                .section(raw.tls.as_ref(), path, "tls", Self::frontend_tls)
                .unwrap_or_default(),
        };
        let max_buffer_size = raw
            .http
            .as_ref()
            .and_then(|h| h.value.as_ref()?.max_buffer_size.as_ref())
            .and_then(|size| self.size(size, &path.key("http").key("maxBufferSize")));
        let settings = FrontendSettings {
            max_buffer_size,
            tracing: self.section(
                raw.tracing.as_ref(),
                path,
                "tracing",
                Self::frontend_tracing,
            ),
            access_log: self.section(raw.access_log.as_ref(), path, "accessLog", |v, a, p| {
                if let Some(filter) = &a.filter {
                    v.cel(filter, &p.key("filter"));
                }
                let fields = RawFields {
                    add: a.add.clone(),
                    remove: a.remove.clone(),
                };
                // `add` and `remove` sit where `config.logging.fields` has them.
                let fields = v.fields(Some(&fields), p);
                let written = a.filter.is_some() || fields != Fields::default();
                let otlp = match &a.otlp {
                    None => None,
                    Some(o) => Some(v.log_export(o, &p.key("otlp"))?),
                };
                Some(AccessLogSettings {
                    filter_and_fields: written.then(|| (a.filter.clone(), fields)),
                    otlp,
                })
            }),
        };
        (policies, settings)
    }

    fn proxy_protocol(&mut self, raw: &RawProxyProtocol, path: &YamlPath) -> Option<ProxyProtocol> {
        let version = match raw.version.as_deref() {
            None => ProxyVersion::default(),
            Some("v1") => ProxyVersion::V1,
            Some("v2") => ProxyVersion::V2,
            Some("all") => ProxyVersion::All,
            Some(other) => {
                self.error(
                    &path.key("version"),
                    format!("unknown version `{other}`; expected v1, v2 or all"),
                );
                return None;
            }
        };
        let mode = match raw.mode.as_deref() {
            None => ProxyMode::default(),
            Some("strict") => ProxyMode::Strict,
            Some("optional") => ProxyMode::Optional,
            Some(other) => {
                self.error(
                    &path.key("mode"),
                    format!("unknown mode `{other}`; expected strict or optional"),
                );
                return None;
            }
        };
        Some(ProxyProtocol { version, mode })
    }

    fn frontend_tcp(&mut self, raw: &RawFrontendTcp, path: &YamlPath) -> Option<FrontendTcp> {
        let defaults = FrontendTcp::default();
        let keepalives = match &raw.keepalives {
            None => None,
            Some(k) => {
                let at = path.key("keepalives");
                let standard = Keepalives::default();
                Some(Keepalives {
                    enabled: k.enabled.unwrap_or(standard.enabled),
                    time: self
                        .optional_duration(k.time.as_deref(), &at, "time")
                        .unwrap_or(standard.time),
                    interval: self
                        .optional_duration(k.interval.as_deref(), &at, "interval")
                        .unwrap_or(standard.interval),
                    retries: k.retries.unwrap_or(standard.retries),
                })
            }
        };
        let built = FrontendTcp::new(
            raw.max_connections.unwrap_or(defaults.max_connections),
            keepalives,
        );
        self.checked(built, path)
    }

    /// A collector's `host:port` as the `http://` URL exports go to.
    fn collector(&mut self, host: &str, path: &YamlPath) -> Option<String> {
        let host = host.trim();
        let authority = host.parse::<http::uri::Authority>().ok();
        if host.contains("://") || authority.as_ref().and_then(|a| a.port_u16()).is_none() {
            self.error(
                path,
                format!("`{host}` is not a host:port (the collector's address, without a scheme)"),
            );
            return None;
        }
        Some(format!("http://{host}"))
    }

    fn log_export(&mut self, raw: &RawAccessLogOtlp, path: &YamlPath) -> Option<LogExport> {
        let endpoint = self.collector(&raw.host, &path.key("host"))?;
        let protocol = self.otlp_protocol(raw.protocol.as_deref(), &path.key("protocol"));
        let export_path = self.otlp_path(
            protocol,
            raw.path.clone(),
            raw.path.is_some(),
            DEFAULT_OTLP_LOGS_PATH,
            &path.key("path"),
        );
        Some(LogExport {
            endpoint,
            protocol,
            path: export_path,
        })
    }

    fn frontend_tracing(&mut self, raw: &RawFrontendTracing, path: &YamlPath) -> Option<Tracing> {
        let endpoint = self.collector(&raw.host, &path.key("host"))?;
        let protocol = self.otlp_protocol(raw.protocol.as_deref(), &path.key("protocol"));
        let export_path = self.otlp_path(
            protocol,
            raw.path.clone(),
            raw.path.is_some(),
            DEFAULT_OTLP_TRACES_PATH,
            &path.key("path"),
        );
        for (name, expr) in &raw.attributes {
            self.cel(expr, &path.key("attributes").key(name.clone()));
        }
        for (name, expr) in &raw.resources {
            self.cel(expr, &path.key("resources").key(name.clone()));
        }
        let headers = match raw
            .policies
            .as_ref()
            .and_then(|p| p.request_header_modifier.as_ref())
        {
            Some(m) => {
                let at = path.key("policies").key("requestHeaderModifier");
                if !m.remove.is_empty() {
                    self.error(
                        &at.key("remove"),
                        "an export carries only the headers added or set: there is nothing to remove",
                    );
                }
                let mut headers = self.headers(&m.set, &at.key("set"));
                headers.extend(self.headers(&m.add, &at.key("add")));
                headers
            }
            None => Vec::new(),
        };
        let fields = Fields {
            add: raw.attributes.clone(),
            remove: raw.remove.clone(),
        };
        Some(Tracing {
            otlp_endpoint: endpoint,
            otlp_protocol: protocol,
            path: export_path,
            headers,
            resources: raw.resources.clone(),
            random_sampling: match &raw.random_sampling {
                None => 0.0,
                Some(v) => self.sampling(v, &path.key("randomSampling"))?,
            },
            client_sampling: match &raw.client_sampling {
                None => true,
                Some(v) => self.sampling(v, &path.key("clientSampling"))? > 0.0,
            },
            fields,
        })
    }

    fn frontend_http(&mut self, raw: &RawFrontendHttp, path: &YamlPath) -> Option<FrontendHttp> {
        let defaults = FrontendHttp::default();
        let mut unreadable = false;
        let mut optional = |v: &mut Self, text: &Option<String>, key: &str| match text.as_deref() {
            Some(t) => v.duration(t, &path.key(key)).or_else(|| {
                unreadable = true;
                None
            }),
            None => None,
        };
        let header_read = optional(self, &raw.header_read_timeout, "headerReadTimeout");
        let http1_idle = optional(self, &raw.http1_idle_timeout, "http1IdleTimeout");
        let http2_idle = optional(self, &raw.http2_idle_timeout, "http2IdleTimeout");
        let keepalive_interval = optional(
            self,
            &raw.http2_keepalive_interval,
            "http2KeepaliveInterval",
        );
        let keepalive_timeout =
            optional(self, &raw.http2_keepalive_timeout, "http2KeepaliveTimeout");
        let max_duration = optional(self, &raw.max_connection_duration, "maxConnectionDuration");
        let built = FrontendHttp {
            header_read_timeout: header_read.unwrap_or(defaults.header_read_timeout),
            http1_idle_timeout: http1_idle.unwrap_or(defaults.http1_idle_timeout),
            http2_idle_timeout: http2_idle.unwrap_or(defaults.http2_idle_timeout),
            xff_num_trusted_hops: raw
                .xff_num_trusted_hops
                .unwrap_or(defaults.xff_num_trusted_hops),
            http1_max_headers: raw.http1_max_headers,
            http2_window_size: raw.http2_window_size,
            http2_connection_window_size: raw.http2_connection_window_size,
            http2_frame_size: raw.http2_frame_size,
            http2_max_header_size: raw.http2_max_header_size,
            http2_keepalive_interval: keepalive_interval,
            http2_keepalive_timeout: keepalive_timeout,
            max_connection_duration: max_duration,
        }
        .validated();
        // An unreadable duration is already reported; the others are still checked.
        let http = self.checked(built, path)?;
        (!unreadable).then_some(http)
    }
}

// === proto ===

impl From<&FrontendPolicies> for pb::FrontendPolicies {
    fn from(f: &FrontendPolicies) -> Self {
        pb::FrontendPolicies {
            http: Some(pb::FrontendHttp {
                header_read_timeout_nanos: nanos(f.http.header_read_timeout),
                http1_idle_timeout_nanos: nanos(f.http.http1_idle_timeout),
                http2_idle_timeout_nanos: nanos(f.http.http2_idle_timeout),
                xff_num_trusted_hops: f.http.xff_num_trusted_hops,
                http1_max_headers: f.http.http1_max_headers,
                http2_window_size: f.http.http2_window_size,
                http2_connection_window_size: f.http.http2_connection_window_size,
                http2_frame_size: f.http.http2_frame_size,
                http2_max_header_size: f.http.http2_max_header_size,
                http2_keepalive_interval_nanos: f.http.http2_keepalive_interval.map(nanos),
                http2_keepalive_timeout_nanos: f.http.http2_keepalive_timeout.map(nanos),
                max_connection_duration_nanos: f.http.max_connection_duration.map(nanos),
            }),
            tcp: Some(pb::FrontendTcp {
                max_connections: f.tcp.max_connections,
                keepalives: f.tcp.keepalives.map(|k| pb::Keepalives {
                    enabled: k.enabled,
                    time_nanos: nanos(k.time),
                    interval_nanos: nanos(k.interval),
                    retries: k.retries,
                }),
            }),
            tls: Some((&f.tls).into()),
            proxy_protocol: f.proxy_protocol.map(|p| pb::ProxyProtocol {
                version: match p.version {
                    ProxyVersion::V1 => pb::ProxyVersion::V1,
                    ProxyVersion::V2 => pb::ProxyVersion::V2,
                    ProxyVersion::All => pb::ProxyVersion::All,
                } as i32,
                mode: match p.mode {
                    ProxyMode::Strict => pb::ProxyMode::Strict,
                    ProxyMode::Optional => pb::ProxyMode::Optional,
                } as i32,
            }),
            network_authorization: f.network_authorization.as_ref().map(Into::into),
        }
    }
}

impl TryFrom<pb::ProxyProtocol> for ProxyProtocol {
    type Error = InvalidSnapshot;

    fn try_from(p: pb::ProxyProtocol) -> convert::Result<ProxyProtocol> {
        Ok(ProxyProtocol {
            version: match convert::enum_value(p.version, "version")? {
                pb::ProxyVersion::V1 => ProxyVersion::V1,
                pb::ProxyVersion::V2 => ProxyVersion::V2,
                pb::ProxyVersion::All => ProxyVersion::All,
            },
            mode: match convert::enum_value(p.mode, "mode")? {
                pb::ProxyMode::Strict => ProxyMode::Strict,
                pb::ProxyMode::Optional => ProxyMode::Optional,
            },
        })
    }
}

impl TryFrom<pb::FrontendHttp> for FrontendHttp {
    type Error = InvalidSnapshot;

    fn try_from(h: pb::FrontendHttp) -> convert::Result<FrontendHttp> {
        FrontendHttp {
            header_read_timeout: duration(h.header_read_timeout_nanos),
            http1_idle_timeout: duration(h.http1_idle_timeout_nanos),
            http2_idle_timeout: duration(h.http2_idle_timeout_nanos),
            xff_num_trusted_hops: h.xff_num_trusted_hops,
            http1_max_headers: h.http1_max_headers,
            http2_window_size: h.http2_window_size,
            http2_connection_window_size: h.http2_connection_window_size,
            http2_frame_size: h.http2_frame_size,
            http2_max_header_size: h.http2_max_header_size,
            http2_keepalive_interval: h.http2_keepalive_interval_nanos.map(duration),
            http2_keepalive_timeout: h.http2_keepalive_timeout_nanos.map(duration),
            max_connection_duration: h.max_connection_duration_nanos.map(duration),
        }
        .validated()
        .map_err(InvalidSnapshot::from)
    }
}

impl TryFrom<pb::FrontendTcp> for FrontendTcp {
    type Error = InvalidSnapshot;

    fn try_from(t: pb::FrontendTcp) -> convert::Result<FrontendTcp> {
        let keepalives = t.keepalives.map(|k| Keepalives {
            enabled: k.enabled,
            time: duration(k.time_nanos),
            interval: duration(k.interval_nanos),
            retries: k.retries,
        });
        FrontendTcp::new(t.max_connections, keepalives).map_err(InvalidSnapshot::from)
    }
}

impl TryFrom<pb::FrontendPolicies> for FrontendPolicies {
    type Error = InvalidSnapshot;

    fn try_from(f: pb::FrontendPolicies) -> convert::Result<FrontendPolicies> {
        Ok(FrontendPolicies {
            http: convert::optional(f.http, "http")?.unwrap_or_default(),
            tcp: convert::optional(f.tcp, "tcp")?.unwrap_or_default(),
            tls: convert::optional(f.tls, "tls")?.unwrap_or_default(),
            proxy_protocol: convert::optional(f.proxy_protocol, "proxyProtocol")?,
            network_authorization: convert::optional(
                f.network_authorization,
                "networkAuthorization",
            )?,
        })
    }
}
