//! Raw YAML types -> validated model, collecting every error with its location.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use indexmap::IndexMap;

use super::env::Templates;
use super::error::ConfigError;
use super::model::*;
use super::path::YamlPath;
use super::raw::*;
use super::yaml::Document;

/// Collects errors while walking the raw config.
pub struct Validator<'a> {
    doc: &'a Document,
    file: &'a str,
    templates: &'a Templates,
    pub errors: Vec<ConfigError>,
}

impl<'a> Validator<'a> {
    pub fn new(doc: &'a Document, file: &'a str, templates: &'a Templates) -> Self {
        Validator {
            doc,
            file,
            templates,
            errors: Vec::new(),
        }
    }

    /// An error about the value at `path`.
    pub fn error(&mut self, path: &YamlPath, message: impl Into<String>) {
        let mark = self.doc.value_mark(path);
        self.push(path, mark, message.into());
    }

    /// An error about the key of the entry at `path`.
    fn key_error(&mut self, path: &YamlPath, message: impl Into<String>) {
        let mark = self.doc.key_mark(path);
        self.push(path, mark, message.into());
    }

    fn push(&mut self, path: &YamlPath, mark: super::yaml::Mark, message: String) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line: mark.line,
            column: mark.column,
            path: path.to_string(),
            message,
        });
    }

    /// Records the decoding errors of `value` and returns what could be decoded.
    pub fn lenient<'b, T>(&mut self, value: &'b Lenient<T>, path: &YamlPath) -> Option<&'b T> {
        for e in &value.errors {
            let full = path.join(&e.path);
            if e.at_key {
                self.key_error(&full, e.message.clone());
            } else {
                self.error(&full, e.message.clone());
            }
        }
        value.value.as_ref()
    }

    /// A secret as loaded: expanded, or (when its reference was kept) still unresolved.
    fn secret(&self, value: &str, path: &YamlPath) -> Secret {
        match self.templates.get(path) {
            Some(t) if t == value => Secret::unresolved(t.clone()),
            t => Secret::new(value.to_string(), t.cloned()),
        }
    }

    fn duration(&mut self, text: &str, path: &YamlPath) -> Option<Duration> {
        match humantime::parse_duration(text.trim()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    path,
                    format!("invalid duration `{text}`: {e} (examples: 100ms, 10s, 1h30m)"),
                );
                None
            }
        }
    }

    pub fn config(&mut self, raw: &RawConfig) -> Config {
        let root = YamlPath::root();
        let settings = match &raw.config {
            Some(c) => {
                let path = root.key("config");
                match self.lenient(c, &path) {
                    Some(s) => self.settings(s, &path),
                    None => self.settings(&RawSettings::default(), &path),
                }
            }
            None => self.settings(&RawSettings::default(), &root.key("config")),
        };
        let mut binds = Vec::new();
        let mut ports = HashSet::new();
        for (i, b) in raw.binds.iter().enumerate() {
            let path = root.key("binds").index(i);
            let Some(b) = self.lenient(b, &path) else {
                continue;
            };
            if !ports.insert(b.port) {
                self.error(&path.key("port"), format!("port {} is bound twice", b.port));
            }
            binds.push(self.bind(b, &path));
        }
        Config { settings, binds }
    }

    fn settings(&mut self, raw: &RawSettings, path: &YamlPath) -> Settings {
        let max_body_size = match &raw.max_body_size {
            None => DEFAULT_MAX_BODY_SIZE,
            Some(v) => self
                .size(v, &path.key("maxBodySize"))
                .unwrap_or(DEFAULT_MAX_BODY_SIZE),
        };
        let drain_timeout = raw
            .drain_timeout
            .as_deref()
            .and_then(|d| self.duration(d, &path.key("drainTimeout")))
            .unwrap_or(DEFAULT_DRAIN_TIMEOUT);
        let tracing = raw.tracing.as_ref().and_then(|t| {
            let p = path.key("tracing");
            self.lenient(t, &p).and_then(|t| self.tracing(t, &p))
        });
        let metrics = match &raw.metrics {
            Some(m) => {
                let p = path.key("metrics");
                self.lenient(m, &p)
                    .map(|m| self.metrics(m, &p))
                    .unwrap_or_default()
            }
            None => Metrics::default(),
        };
        let logging = match &raw.logging {
            Some(l) => {
                let p = path.key("logging");
                self.lenient(l, &p)
                    .map(|l| self.logging(l, &p))
                    .unwrap_or_default()
            }
            None => Logging::default(),
        };
        let mcp = raw
            .mcp
            .as_ref()
            .and_then(|m| {
                let p = path.key("mcp");
                let m = self.lenient(m, &p)?;
                let defaults = McpSettings::default();
                let session_ttl = match m.session_ttl.as_deref() {
                    Some(d) => self.duration(d, &p.key("sessionTtl")),
                    None => Some(defaults.session_ttl),
                };
                if session_ttl.is_some_and(|t| t.is_zero()) {
                    self.error(&p.key("sessionTtl"), "sessionTtl must be longer than 0s");
                }
                let max_sessions = m.max_sessions.unwrap_or(defaults.max_sessions);
                let max_children = m.max_children.unwrap_or(defaults.max_children);
                for (key, value) in [("maxSessions", max_sessions), ("maxChildren", max_children)] {
                    if value == 0 {
                        self.error(&p.key(key), format!("{key} must be at least 1"));
                    }
                }
                Some(McpSettings {
                    session_ttl: session_ttl?,
                    max_sessions,
                    max_children,
                })
            })
            .unwrap_or_default();
        Settings {
            admin_addr: self.listen_addr(raw.admin_addr.as_deref(), &path.key("adminAddr")),
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

    fn size(&mut self, v: &yaml_serde::Value, path: &YamlPath) -> Option<u64> {
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
        match raw.otlp_protocol.as_deref() {
            None | Some("grpc") => {}
            Some("http") => self.error(
                &path.key("otlpProtocol"),
                "OTLP over HTTP is not supported; use grpc (the default)",
            ),
            Some(other) => self.error(
                &path.key("otlpProtocol"),
                format!("unknown protocol `{other}`; expected grpc"),
            ),
        }
        if !(raw.otlp_endpoint.starts_with("http://") || raw.otlp_endpoint.starts_with("https://"))
        {
            self.error(
                &path.key("otlpEndpoint"),
                format!("`{}` is not an http:// or https:// URL", raw.otlp_endpoint),
            );
        }
        let random_sampling = match &raw.random_sampling {
            None => 0.0,
            Some(v) => self.sampling(v, &path.key("randomSampling"))?,
        };
        let client_sampling = match &raw.client_sampling {
            None => true,
            Some(v) => self.sampling(v, &path.key("clientSampling"))? > 0.0,
        };
        Some(Tracing {
            otlp_endpoint: raw.otlp_endpoint.clone(),
            random_sampling,
            client_sampling,
            fields: self.fields(raw.fields.as_ref(), &path.key("fields")),
        })
    }

    /// `true`/`false` (also quoted, as the seed writes it) or a ratio in 0..=1.
    fn sampling(&mut self, v: &yaml_serde::Value, path: &YamlPath) -> Option<f64> {
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

    fn fields(&mut self, raw: Option<&RawFields>, path: &YamlPath) -> Fields {
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

    fn cel(&mut self, expr: &str, path: &YamlPath) {
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
        }
    }

    fn bind(&mut self, raw: &RawBind, path: &YamlPath) -> Bind {
        if raw.port == 0 {
            self.error(&path.key("port"), "port must be between 1 and 65535");
        }
        let mut listeners = Vec::new();
        let mut names = HashSet::new();
        for (i, l) in raw.listeners.iter().enumerate() {
            let lp = path.key("listeners").index(i);
            let Some(l) = self.lenient(l, &lp) else {
                continue;
            };
            let listener = self.listener(l, i, &lp);
            if !names.insert(listener.name.clone()) {
                self.error(
                    &lp,
                    format!(
                        "listener name `{}` is used twice on this bind",
                        listener.name
                    ),
                );
            }
            listeners.push(listener);
        }
        if raw.listeners.is_empty() {
            self.error(&path.key("listeners"), "a bind needs at least one listener");
        }
        Bind {
            port: raw.port,
            listeners,
        }
    }

    fn listener(&mut self, raw: &RawListener, index: usize, path: &YamlPath) -> Listener {
        if let Some(p) = raw.protocol.as_deref().filter(|p| *p != "HTTP") {
            self.error(
                &path.key("protocol"),
                format!("protocol `{p}` is not supported; only HTTP is"),
            );
        }
        let mut routes = Vec::new();
        let mut names = HashSet::new();
        for (i, r) in raw.routes.iter().enumerate() {
            let rp = path.key("routes").index(i);
            let Some(r) = self.lenient(r, &rp) else {
                continue;
            };
            let route = self.route(r, i, &rp);
            if !names.insert(route.name.clone()) {
                self.error(
                    &rp,
                    format!("route name `{}` is used twice in this listener", route.name),
                );
            }
            routes.push(route);
        }
        Listener {
            name: raw
                .name
                .clone()
                .unwrap_or_else(|| format!("listener{index}")),
            hostname: raw.hostname.clone(),
            routes,
        }
    }

    fn route(&mut self, raw: &RawRoute, index: usize, path: &YamlPath) -> Route {
        let mut matches = Vec::new();
        for (i, m) in raw.matches.iter().enumerate() {
            let mp = path.key("matches").index(i);
            if let Some(m) = self.lenient(m, &mp) {
                matches.push(self.route_match(m, &mp));
            }
        }
        if raw.matches.is_empty() {
            matches.push(RouteMatch {
                path: PathMatch::PathPrefix("/".to_string()),
                method: None,
                headers: Vec::new(),
                query: Vec::new(),
            });
        }
        let pp = path.key("policies");
        let policies = match &raw.policies {
            Some(p) => match self.lenient(p, &pp) {
                Some(p) => self.policies(p, &pp),
                None => Policies::default(),
            },
            None => Policies::default(),
        };
        if matches!(policies.url_rewrite, Some(UrlRewrite::Prefix(_)))
            && !matches
                .iter()
                .all(|m| matches!(m.path, PathMatch::PathPrefix(_)))
        {
            self.error(
                &pp.key("urlRewrite").key("path").key("prefix"),
                "a prefix rewrite needs every match of the route to be a `pathPrefix` match",
            );
        }
        let mut backends = Vec::new();
        for (i, b) in raw.backends.iter().enumerate() {
            let bp = path.key("backends").index(i);
            if let Some(b) = self.lenient(b, &bp)
                && let Some(b) = self.backend(b, &bp)
            {
                backends.push(b);
            }
        }
        if raw.backends.is_empty() {
            self.error(&path.key("backends"), "a route needs at least one backend");
        }
        Route {
            name: raw.name.clone().unwrap_or_else(|| format!("route{index}")),
            hostnames: raw.hostnames.clone(),
            matches,
            policies,
            backends,
        }
    }

    fn route_match(&mut self, raw: &RawMatch, path: &YamlPath) -> RouteMatch {
        let pp = path.key("path");
        let path_match = match &raw.path {
            None => PathMatch::PathPrefix("/".to_string()),
            Some(m) => match (&m.exact, &m.path_prefix, &m.regex) {
                (Some(p), None, None) => {
                    self.absolute(p, &pp.key("exact"));
                    PathMatch::Exact(p.clone())
                }
                (None, Some(p), None) => {
                    self.absolute(p, &pp.key("pathPrefix"));
                    let trimmed = p.trim_end_matches('/');
                    PathMatch::PathPrefix(if trimmed.is_empty() {
                        "/".into()
                    } else {
                        trimmed.into()
                    })
                }
                (None, None, Some(r)) => match self.pattern(r, &pp.key("regex")) {
                    Some(p) => PathMatch::Regex(p),
                    None => PathMatch::Exact(String::new()),
                },
                _ => {
                    self.error(
                        &pp,
                        "a path match needs exactly one of `exact`, `pathPrefix` or `regex`",
                    );
                    PathMatch::Exact(String::new())
                }
            },
        };
        let method = raw.method.as_ref().map(|m| {
            if http::Method::from_bytes(m.as_bytes()).is_err() {
                self.error(&path.key("method"), format!("`{m}` is not an HTTP method"));
            }
            m.to_ascii_uppercase()
        });
        let headers = self.named_matches(&raw.headers, &path.key("headers"), true);
        let query = self.named_matches(&raw.query, &path.key("query"), false);
        RouteMatch {
            path: path_match,
            method,
            headers,
            query,
        }
    }

    fn absolute(&mut self, p: &str, path: &YamlPath) {
        if !p.starts_with('/') {
            self.error(path, format!("path `{p}` must start with `/`"));
        }
    }

    fn pattern(&mut self, source: &str, path: &YamlPath) -> Option<Pattern> {
        match Pattern::new(source) {
            Ok(p) => Some(p),
            Err(e) => {
                let detail = e.to_string().lines().last().unwrap_or_default().to_string();
                self.error(
                    path,
                    format!(
                        "invalid regex `{source}`: {}",
                        detail.trim_start_matches("error: ")
                    ),
                );
                None
            }
        }
    }

    fn named_matches(
        &mut self,
        raw: &[RawNamedMatch],
        path: &YamlPath,
        header: bool,
    ) -> Vec<NamedMatch> {
        let mut out = Vec::new();
        for (i, m) in raw.iter().enumerate() {
            let mp = path.index(i);
            if header && http::HeaderName::from_bytes(m.name.as_bytes()).is_err() {
                self.error(
                    &mp.key("name"),
                    format!("`{}` is not a valid header name", m.name),
                );
            }
            let value = match (&m.value.exact, &m.value.regex) {
                (Some(v), None) => StringMatch::Exact(v.clone()),
                (None, Some(r)) => match self.pattern(r, &mp.key("value").key("regex")) {
                    Some(p) => StringMatch::Regex(p),
                    None => continue,
                },
                _ => {
                    self.error(
                        &mp.key("value"),
                        "a value match needs exactly one of `exact` or `regex`",
                    );
                    continue;
                }
            };
            let name = if header {
                m.name.to_ascii_lowercase()
            } else {
                m.name.clone()
            };
            out.push(NamedMatch { name, value });
        }
        out
    }

    fn policies(&mut self, raw: &RawPolicies, path: &YamlPath) -> Policies {
        let mut out = Policies::default();
        if let Some(c) = &raw.cors {
            let p = path.key("cors");
            out.cors = self.lenient(c, &p).map(|c| self.cors(c, &p));
        }
        if let Some(a) = &raw.backend_auth {
            let p = path.key("backendAuth");
            out.backend_auth = self.lenient(a, &p).map(|a| self.backend_auth(a, &p));
        }
        if let Some(limits) = &raw.local_rate_limit {
            for (i, l) in limits.iter().enumerate() {
                let p = path.key("localRateLimit").index(i);
                if let Some(l) = self.lenient(l, &p)
                    && let Some(l) = self.rate_limit(l, &p)
                {
                    out.local_rate_limit.push(l);
                }
            }
        }
        if let Some(r) = &raw.retry {
            let p = path.key("retry");
            out.retry = self.lenient(r, &p).and_then(|r| self.retry(r, &p));
        }
        if let Some(u) = &raw.url_rewrite {
            let p = path.key("urlRewrite");
            out.url_rewrite = self.lenient(u, &p).and_then(|u| {
                let rw = u.path.as_ref()?;
                match (&rw.full, &rw.prefix) {
                    (Some(f), None) => {
                        self.absolute(f, &p.key("path").key("full"));
                        Some(UrlRewrite::Full(f.clone()))
                    }
                    (None, Some(x)) => Some(UrlRewrite::Prefix(x.clone())),
                    _ => {
                        self.error(
                            &p.key("path"),
                            "a path rewrite needs exactly one of `full` or `prefix`",
                        );
                        None
                    }
                }
            });
        }
        if let Some(h) = &raw.request_header_modifier {
            let p = path.key("requestHeaderModifier");
            out.request_header_modifier = self.lenient(h, &p).map(|h| self.header_modifier(h, &p));
        }
        if let Some(h) = &raw.response_header_modifier {
            let p = path.key("responseHeaderModifier");
            out.response_header_modifier = self.lenient(h, &p).map(|h| self.header_modifier(h, &p));
        }
        if let Some(t) = &raw.timeout {
            let p = path.key("timeout");
            out.timeout = self.lenient(t, &p).map(|t| Timeout {
                request_timeout: t
                    .request_timeout
                    .as_deref()
                    .and_then(|d| self.duration(d, &p.key("requestTimeout"))),
                backend_request_timeout: t
                    .backend_request_timeout
                    .as_deref()
                    .and_then(|d| self.duration(d, &p.key("backendRequestTimeout"))),
            });
        }
        if let Some(a) = &raw.ai {
            let p = path.key("ai");
            out.ai_routes = self
                .lenient(a, &p)
                .map(|a| self.route_types(&a.routes, &p.key("routes")));
        }
        out
    }

    fn cors(&mut self, raw: &RawCors, path: &YamlPath) -> Cors {
        for (i, m) in raw.allow_methods.iter().enumerate() {
            if m != "*" && http::Method::from_bytes(m.as_bytes()).is_err() {
                self.error(
                    &path.key("allowMethods").index(i),
                    format!("`{m}` is not an HTTP method"),
                );
            }
        }
        for (key, list) in [
            ("allowHeaders", &raw.allow_headers),
            ("exposeHeaders", &raw.expose_headers),
        ] {
            for (i, h) in list.iter().enumerate() {
                if h != "*" && http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    self.error(
                        &path.key(key).index(i),
                        format!("`{h}` is not a valid header name"),
                    );
                }
            }
        }
        Cors {
            allow_origins: raw.allow_origins.clone(),
            allow_headers: raw.allow_headers.clone(),
            allow_methods: raw.allow_methods.clone(),
            expose_headers: raw.expose_headers.clone(),
            allow_credentials: raw.allow_credentials,
            max_age: raw
                .max_age
                .as_deref()
                .and_then(|d| self.duration(d, &path.key("maxAge"))),
        }
    }

    fn backend_auth(&mut self, raw: &RawBackendAuth, path: &YamlPath) -> BackendAuth {
        let kp = path.key("key");
        if raw.key.is_empty() {
            self.error(
                &kp,
                "the key is empty (is its environment variable set to an empty value?)",
            );
        } else if http::HeaderValue::from_str(&raw.key).is_err() {
            self.error(
                &kp,
                "the key contains characters that cannot be sent in a header",
            );
        }
        BackendAuth {
            key: self.secret(&raw.key, &kp),
        }
    }

    fn rate_limit(&mut self, raw: &RawRateLimit, path: &YamlPath) -> Option<RateLimit> {
        let fill_interval = self.duration(&raw.fill_interval, &path.key("fillInterval"))?;
        if fill_interval.is_zero() {
            self.error(
                &path.key("fillInterval"),
                "fillInterval must be greater than zero",
            );
            return None;
        }
        if raw.max_tokens == 0 {
            self.error(&path.key("maxTokens"), "maxTokens must be at least 1");
            return None;
        }
        if raw.max_tokens > u64::from(u32::MAX) {
            self.error(
                &path.key("maxTokens"),
                format!("maxTokens must be at most {}", u32::MAX),
            );
            return None;
        }
        if raw.max_tokens < raw.tokens_per_fill {
            self.error(
                &path.key("maxTokens"),
                format!(
                    "maxTokens ({}) must be at least tokensPerFill ({})",
                    raw.max_tokens, raw.tokens_per_fill
                ),
            );
            return None;
        }
        Some(RateLimit {
            max_tokens: raw.max_tokens,
            tokens_per_fill: raw.tokens_per_fill,
            fill_interval,
            kind: match raw.kind {
                None | Some(RawRateLimitType::Requests) => RateLimitKind::Requests,
                Some(RawRateLimitType::Tokens) => RateLimitKind::Tokens,
            },
        })
    }

    fn retry(&mut self, raw: &RawRetry, path: &YamlPath) -> Option<Retry> {
        let attempts = raw.attempts.unwrap_or(1);
        if attempts == 0 {
            self.error(
                &path.key("attempts"),
                "attempts counts the first try too, so it must be at least 1",
            );
            return None;
        }
        for (i, c) in raw.codes.iter().enumerate() {
            if !(100..=599).contains(c) {
                self.error(
                    &path.key("codes").index(i),
                    format!("{c} is not an HTTP status code"),
                );
            }
        }
        let backoff = match &raw.backoff {
            Some(b) => Some(self.duration(b, &path.key("backoff"))?),
            None => None,
        };
        Some(Retry {
            attempts,
            codes: raw.codes.clone(),
            backoff,
        })
    }

    fn header_modifier(&mut self, raw: &RawHeaderModifier, path: &YamlPath) -> HeaderModifier {
        let mut pairs = |list: &[RawHeader], key: &str| -> Vec<(String, String)> {
            let mut out = Vec::new();
            for (i, h) in list.iter().enumerate() {
                let hp = path.key(key).index(i);
                if http::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
                    self.error(
                        &hp.key("name"),
                        format!("`{}` is not a valid header name", h.name),
                    );
                } else if http::HeaderValue::from_str(&h.value).is_err() {
                    self.error(
                        &hp.key("value"),
                        "the value contains characters not allowed in a header",
                    );
                } else {
                    out.push((h.name.to_ascii_lowercase(), h.value.clone()));
                }
            }
            out
        };
        let add = pairs(&raw.add, "add");
        let set = pairs(&raw.set, "set");
        for (i, name) in raw.remove.iter().enumerate() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.error(
                    &path.key("remove").index(i),
                    format!("`{name}` is not a valid header name"),
                );
            }
        }
        HeaderModifier {
            add,
            set,
            remove: raw.remove.iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }

    fn route_types(&mut self, raw: &IndexMap<String, RawRouteType>, path: &YamlPath) -> RouteTypes {
        let mut entries: Vec<(String, RouteType)> = Vec::new();
        for (suffix, t) in raw {
            if suffix.is_empty() {
                self.key_error(
                    &path.key(suffix.clone()),
                    "an empty path suffix matches nothing; use `*`",
                );
                continue;
            }
            let t = match t {
                RawRouteType::Completions => RouteType::Completions,
                RawRouteType::Messages => RouteType::Messages,
                RawRouteType::Models => RouteType::Models,
                RawRouteType::Passthrough => RouteType::Passthrough,
            };
            entries.push((suffix.clone(), t));
        }
        // Longest suffix first, `*` last; equal lengths keep file order.
        entries.sort_by(|a, b| {
            (a.0 == "*")
                .cmp(&(b.0 == "*"))
                .then(b.0.len().cmp(&a.0.len()))
        });
        RouteTypes(entries)
    }

    fn backend(&mut self, raw: &RawBackend, path: &YamlPath) -> Option<Backend> {
        let weight = raw.weight.unwrap_or(1);
        let kinds = [raw.host.is_some(), raw.ai.is_some(), raw.mcp.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            self.error(path, "a backend needs exactly one of `host`, `ai` or `mcp`");
            return None;
        }
        let kind = if let Some(h) = &raw.host {
            BackendKind::Host(self.authority(h, &path.key("host"))?)
        } else if let Some(ai) = &raw.ai {
            BackendKind::Ai(self.ai(ai, &path.key("ai"))?)
        } else {
            BackendKind::Mcp(self.mcp(raw.mcp.as_ref()?, &path.key("mcp"))?)
        };
        Some(Backend { weight, kind })
    }

    /// `host:port` with an explicit port.
    fn authority(&mut self, text: &str, path: &YamlPath) -> Option<String> {
        match text.parse::<http::uri::Authority>() {
            Ok(a) if a.port_u16().is_some() && !a.host().is_empty() && !text.contains('@') => {
                Some(text.to_string())
            }
            _ => {
                self.error(
                    path,
                    format!("`{text}` is not host:port (for example 127.0.0.1:8080)"),
                );
                None
            }
        }
    }

    fn ai(&mut self, raw: &RawAi, path: &YamlPath) -> Option<AiBackend> {
        let groups = match &raw.groups {
            Some(groups) => {
                if raw.provider.is_some() || raw.name.is_some() {
                    self.error(
                        path,
                        "an `ai` backend has either `groups` or one inline provider, not both",
                    );
                }
                let mut out = Vec::new();
                for (gi, g) in groups.iter().enumerate() {
                    let gp = path.key("groups").index(gi);
                    if g.providers.is_empty() {
                        self.error(&gp.key("providers"), "a group needs at least one provider");
                    }
                    let mut tier = Vec::new();
                    for (pi, p) in g.providers.iter().enumerate() {
                        let pp = gp.key("providers").index(pi);
                        if p.groups.is_some() {
                            self.key_error(
                                &pp.key("groups"),
                                "groups cannot be nested inside a provider",
                            );
                        }
                        tier.extend(self.ai_provider(p, &pp));
                    }
                    out.push(tier);
                }
                if groups.is_empty() {
                    self.error(&path.key("groups"), "`groups` needs at least one group");
                }
                out
            }
            None => vec![vec![self.ai_provider(raw, path)?]],
        };
        let mut names = HashSet::new();
        for p in groups.iter().flatten() {
            if !names.insert(p.name.clone()) {
                self.error(
                    path,
                    format!("provider name `{}` is used twice in this backend", p.name),
                );
            }
        }
        Some(AiBackend { groups })
    }

    fn ai_provider(&mut self, raw: &RawAi, path: &YamlPath) -> Option<AiProvider> {
        let Some(name) = raw.name.clone() else {
            self.error(path, "missing field `name`");
            return None;
        };
        let Some(kind) = &raw.provider else {
            self.error(path, "missing field `provider` (openAI or anthropic)");
            return None;
        };
        let (provider, model) = match (&kind.open_ai, &kind.anthropic) {
            (Some(m), None) => (Provider::OpenAi, m.model.clone()),
            (None, Some(m)) => (Provider::Anthropic, m.model.clone()),
            _ => {
                self.error(
                    &path.key("provider"),
                    "a provider needs exactly one of `openAI` or `anthropic`",
                );
                return None;
            }
        };
        let host_override = match &raw.host_override {
            Some(h) => Some(self.authority(h, &path.key("hostOverride"))?),
            None => None,
        };
        for (key, v) in [
            ("pathOverride", &raw.path_override),
            ("pathPrefix", &raw.path_prefix),
        ] {
            if let Some(v) = v {
                self.absolute(v, &path.key(key));
            }
        }
        let policies = raw.policies.as_ref();
        let inline_routes = raw
            .routes
            .as_ref()
            .map(|r| self.route_types(r, &path.key("routes")));
        let policy_routes = policies
            .and_then(|p| p.ai.as_ref())
            .map(|a| self.route_types(&a.routes, &path.key("policies").key("ai").key("routes")));
        if inline_routes.is_some() && policy_routes.is_some() {
            self.error(
                path,
                "route types are set both in `routes` and `policies.ai.routes`; keep one",
            );
        }
        let auth = match (
            &raw.backend_auth,
            policies.and_then(|p| p.backend_auth.as_ref()),
        ) {
            (Some(_), Some(_)) => {
                self.error(
                    path,
                    "backendAuth is set both inline and under `policies`; keep one",
                );
                None
            }
            (Some(a), None) => Some(self.backend_auth(a, &path.key("backendAuth"))),
            (None, Some(a)) => Some(self.backend_auth(a, &path.key("policies").key("backendAuth"))),
            (None, None) => None,
        };
        Some(AiProvider {
            name,
            provider,
            model,
            host_override,
            path_override: raw.path_override.clone(),
            path_prefix: raw.path_prefix.clone(),
            routes: inline_routes.or(policy_routes),
            backend_auth: auth,
        })
    }

    fn mcp(&mut self, raw: &RawMcp, path: &YamlPath) -> Option<McpBackend> {
        let mut targets = Vec::new();
        let mut names = HashSet::new();
        for (i, t) in raw.targets.iter().enumerate() {
            let tp = path.key("targets").index(i);
            let Some(t) = self.lenient(t, &tp) else {
                continue;
            };
            let valid_name = !t.name.is_empty()
                && t.name.len() <= 253
                && t.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !valid_name {
                self.error(
                    &tp.key("name"),
                    format!(
                        "target name `{}` must use only a-z, 0-9, `-` and `.`",
                        t.name
                    ),
                );
            }
            if !names.insert(t.name.clone()) {
                self.error(
                    &tp.key("name"),
                    format!("target name `{}` is used twice", t.name),
                );
            }
            let kinds = [t.stdio.is_some(), t.sse.is_some(), t.mcp.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                self.error(&tp, "a target needs exactly one of `stdio`, `sse` or `mcp`");
                continue;
            }
            let kind = if let Some(s) = &t.stdio {
                let ep = tp.key("stdio").key("env");
                McpTargetKind::Stdio {
                    cmd: s.cmd.clone(),
                    args: s.args.clone(),
                    env: s
                        .env
                        .iter()
                        .map(|(k, v)| (k.clone(), self.secret(v, &ep.key(k.clone()))))
                        .collect(),
                }
            } else if let Some(s) = &t.sse {
                McpTargetKind::Sse {
                    url: self.target_url(&s.host, "/sse", &tp.key("sse").key("host"))?,
                }
            } else {
                let m = t.mcp.as_ref()?;
                McpTargetKind::Mcp {
                    url: self.target_url(&m.host, "/mcp", &tp.key("mcp").key("host"))?,
                }
            };
            targets.push(McpTarget {
                name: t.name.clone(),
                kind,
            });
        }
        if raw.targets.is_empty() {
            self.error(
                &path.key("targets"),
                "an mcp backend needs at least one target",
            );
        }
        Some(McpBackend {
            targets,
            prefix_mode: match raw.prefix_mode {
                None | Some(RawPrefixMode::Conditional) => PrefixMode::Conditional,
                Some(RawPrefixMode::Always) => PrefixMode::Always,
            },
            failure_mode: match raw.failure_mode {
                None | Some(RawFailureMode::FailOpen) => FailureMode::FailOpen,
                Some(RawFailureMode::FailClosed) => FailureMode::FailClosed,
            },
        })
    }

    /// A remote MCP server: a full URL, or `host:port` with the transport's default path.
    fn target_url(&mut self, host: &str, default_path: &str, path: &YamlPath) -> Option<String> {
        if host.starts_with("http://") || host.starts_with("https://") {
            match host.parse::<http::Uri>() {
                Ok(_) => Some(host.to_string()),
                Err(e) => {
                    self.error(path, format!("invalid URL `{host}`: {e}"));
                    None
                }
            }
        } else {
            let authority = self.authority(host, path)?;
            Some(format!("http://{authority}{default_path}"))
        }
    }
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
