//! Validated config: the only config types that cross crate boundaries.
//!
//! Everything here has been checked: durations parsed, regexes compiled, references resolved.
//! `Serialize` gives the canonical form used for the admin API and the snapshot version;
//! secrets serialize as their `$VAR` reference or `<redacted>`, never their value.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Serialize, Serializer};

/// A whole gateway config.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub settings: Settings,
    pub binds: Vec<Bind>,
}

/// Where a process-level server listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ListenAddr {
    /// The built-in default (moved by `--listen-ip`).
    Default,
    Off,
    At(SocketAddr),
}

/// `config:`: process-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub admin_addr: ListenAddr,
    pub stats_addr: ListenAddr,
    pub readiness_addr: ListenAddr,
    /// Largest request body the proxy accepts; larger ones get 413.
    pub max_body_size: u64,
    #[serde(serialize_with = "as_humantime")]
    pub drain_timeout: Duration,
    pub tracing: Option<Tracing>,
    pub metrics: Metrics,
    pub logging: Logging,
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
}

impl Default for McpSettings {
    fn default() -> Self {
        McpSettings {
            session_ttl: Duration::from_secs(30 * 60),
            max_sessions: 1000,
            max_children: 500,
        }
    }
}

impl Settings {
    /// What a config without a `config:` section gets.
    pub fn defaults() -> Settings {
        Settings {
            admin_addr: ListenAddr::Default,
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

pub const DEFAULT_MAX_BODY_SIZE: u64 = 10 * 1024 * 1024;
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracing {
    pub otlp_endpoint: String,
    /// Share of requests without a sampled parent that are traced (0.0..=1.0).
    pub random_sampling: f64,
    /// Whether a client's sampled `traceparent` is honoured.
    pub client_sampling: bool,
    pub fields: Fields,
}

/// Labels of every per-request metric, in order; `metrics.fields.add` appends its own.
pub const REQUEST_LABELS: [&str; 8] = [
    "bind", "gateway", "listener", "route", "backend", "method", "status", "reason",
];

/// Extra fields computed by CEL expressions (`name -> expression`), and fields to drop.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fields {
    pub add: IndexMap<String, String>,
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub fields: Fields,
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Logging {
    pub filter: Option<String>,
    pub fields: Fields,
    pub level: Option<String>,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bind {
    pub port: u16,
    pub listeners: Vec<Listener>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listener {
    pub name: String,
    /// Host this listener answers for (`*.example.com` allowed); `None` = any.
    pub hostname: Option<String>,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    pub name: String,
    pub hostnames: Vec<String>,
    /// Never empty: a route without `matches` matches prefix `/`.
    pub matches: Vec<RouteMatch>,
    pub policies: Policies,
    pub backends: Vec<Backend>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteMatch {
    pub path: PathMatch,
    pub method: Option<String>,
    pub headers: Vec<NamedMatch>,
    pub query: Vec<NamedMatch>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PathMatch {
    Exact(String),
    /// Segment-aware prefix, stored without a trailing `/` (except the root `/`).
    PathPrefix(String),
    /// Must match the whole path.
    Regex(Pattern),
}

/// A header (lower-case name) or query parameter condition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedMatch {
    pub name: String,
    pub value: StringMatch,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StringMatch {
    Exact(String),
    Regex(Pattern),
}

/// A compiled regex that matches whole strings; compares and serializes as its source.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        // Compiled alone first so an error quotes the user's pattern, not the anchored one.
        regex::Regex::new(source)?;
        let regex = regex::Regex::new(&format!("^(?:{source})$"))?;
        Ok(Pattern {
            source: source.to_string(),
            regex,
        })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.source)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policies {
    pub cors: Option<Cors>,
    pub backend_auth: Option<BackendAuth>,
    pub local_rate_limit: Vec<RateLimit>,
    pub retry: Option<Retry>,
    pub url_rewrite: Option<UrlRewrite>,
    pub request_header_modifier: Option<HeaderModifier>,
    pub response_header_modifier: Option<HeaderModifier>,
    pub timeout: Option<Timeout>,
    /// `policies.ai.routes`: the path -> route-type map for `ai` backends.
    pub ai_routes: Option<RouteTypes>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cors {
    pub allow_origins: Vec<String>,
    pub allow_headers: Vec<String>,
    pub allow_methods: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    #[serde(serialize_with = "as_opt_humantime")]
    pub max_age: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendAuth {
    pub key: Secret,
}

/// A credential. Only [`Secret::expose`] reveals it; everything else prints the reference.
#[derive(Clone, PartialEq)]
pub struct Secret {
    value: String,
    /// How the config wrote it (`$OPENAI_API_KEY`), when it came from the environment.
    reference: Option<String>,
}

impl Secret {
    pub fn new(value: String, reference: Option<String>) -> Secret {
        Secret { value, reference }
    }

    /// A secret known only by its reference, until [`Secret::resolve`].
    pub fn unresolved(reference: String) -> Secret {
        Secret {
            value: String::new(),
            reference: Some(reference),
        }
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The reference as written (`$OPENAI_API_KEY`), when the value came from the environment.
    pub fn reference(&self) -> Option<&str> {
        self.reference.as_deref()
    }

    /// Expands the reference from `env`; `Err` names the unset variables.
    pub fn resolve(&mut self, env: &dyn crate::config::Env) -> Result<(), Vec<String>> {
        if let Some(r) = &self.reference {
            self.value = crate::config::expand(r, env)?;
        }
        Ok(())
    }

    pub fn shown(&self) -> &str {
        self.reference.as_deref().unwrap_or("<redacted>")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.shown())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.shown())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    pub max_tokens: u64,
    pub tokens_per_fill: u64,
    #[serde(serialize_with = "as_humantime")]
    pub fill_interval: Duration,
    #[serde(rename = "type")]
    pub kind: RateLimitKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RateLimitKind {
    Requests,
    Tokens,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retry {
    /// Total attempts, the first one included.
    pub attempts: u32,
    pub codes: Vec<u16>,
    #[serde(serialize_with = "as_opt_humantime")]
    pub backoff: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UrlRewrite {
    /// Replace the whole path.
    Full(String),
    /// Replace the matched `pathPrefix`.
    Prefix(String),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HeaderModifier {
    pub add: Vec<(String, String)>,
    pub set: Vec<(String, String)>,
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeout {
    /// Whole request, retries included.
    #[serde(serialize_with = "as_opt_humantime")]
    pub request_timeout: Option<Duration>,
    /// Each upstream attempt.
    #[serde(serialize_with = "as_opt_humantime")]
    pub backend_request_timeout: Option<Duration>,
}

/// Path-suffix -> route type, longest suffix first and `*` last.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteTypes(pub Vec<(String, RouteType)>);

impl RouteTypes {
    /// The type for a request path; `completions` when nothing matches.
    pub fn classify(&self, path: &str) -> RouteType {
        self.0
            .iter()
            .find(|(suffix, _)| suffix == "*" || path.ends_with(suffix.as_str()))
            .map_or(RouteType::Completions, |(_, t)| *t)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RouteType {
    Completions,
    Messages,
    Models,
    Passthrough,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backend {
    pub weight: u32,
    #[serde(flatten)]
    pub kind: BackendKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BackendKind {
    /// A plain HTTP upstream, `host:port`.
    Host(String),
    Ai(AiBackend),
    Mcp(McpBackend),
}

impl BackendKind {
    /// A short name for logs and metric labels.
    pub fn label(&self) -> String {
        match self {
            BackendKind::Host(h) => h.clone(),
            BackendKind::Ai(ai) => ai
                .groups
                .iter()
                .flatten()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            BackendKind::Mcp(_) => "mcp".to_string(),
        }
    }
}

/// Providers in priority tiers: `groups[0]` first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AiBackend {
    pub groups: Vec<Vec<AiProvider>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AiProvider {
    pub name: String,
    pub provider: Provider,
    pub model: Option<String>,
    pub host_override: Option<String>,
    pub path_override: Option<String>,
    pub path_prefix: Option<String>,
    pub routes: Option<RouteTypes>,
    pub backend_auth: Option<BackendAuth>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Provider {
    #[serde(rename = "openAI")]
    OpenAi,
    Anthropic,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpBackend {
    pub targets: Vec<McpTarget>,
    pub prefix_mode: PrefixMode,
    pub failure_mode: FailureMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PrefixMode {
    Conditional,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureMode {
    FailOpen,
    FailClosed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McpTarget {
    pub name: String,
    #[serde(flatten)]
    pub kind: McpTargetKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum McpTargetKind {
    Stdio {
        cmd: String,
        args: Vec<String>,
        env: IndexMap<String, Secret>,
    },
    /// Legacy SSE server at this URL.
    Sse { url: String },
    /// Streamable HTTP server at this URL.
    Mcp { url: String },
}

impl Config {
    /// Calls `f` on every secret of the config.
    pub fn visit_secrets(&mut self, f: &mut dyn FnMut(&mut Secret)) {
        let routes = self
            .binds
            .iter_mut()
            .flat_map(|b| &mut b.listeners)
            .flat_map(|l| &mut l.routes);
        for route in routes {
            if let Some(a) = &mut route.policies.backend_auth {
                f(&mut a.key);
            }
            for backend in &mut route.backends {
                match &mut backend.kind {
                    BackendKind::Host(_) => {}
                    BackendKind::Ai(ai) => {
                        for p in ai.groups.iter_mut().flatten() {
                            if let Some(a) = &mut p.backend_auth {
                                f(&mut a.key);
                            }
                        }
                    }
                    BackendKind::Mcp(m) => {
                        for t in &mut m.targets {
                            if let McpTargetKind::Stdio { env, .. } = &mut t.kind {
                                env.values_mut().for_each(&mut *f);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Resolves every secret reference from `env` (a proxy receiving a control-plane
    /// snapshot); `Err` names each unset variable once.
    pub fn resolve_secrets(&mut self, env: &dyn crate::config::Env) -> Result<(), Vec<String>> {
        let mut unset = Vec::new();
        self.visit_secrets(&mut |s| {
            if let Err(names) = s.resolve(env) {
                unset.extend(names);
            }
        });
        unset.dedup();
        if unset.is_empty() { Ok(()) } else { Err(unset) }
    }
}

fn as_humantime<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn as_opt_humantime<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => as_humantime(d, s),
        None => s.serialize_none(),
    }
}
