//! The validator's core: walks raw types into the model, collecting every error with its
//! location. Each section's checks live beside its types (`settings`, `listeners`, `policies`,
//! `backends`); the shapes they share (an optional section, a lenient list, "exactly one of",
//! durations, paths, regexes, `host:port`) are helpers here.

use std::collections::HashSet;
use std::time::Duration;

use super::env::Templates;
use super::error::ConfigError;
use super::frontend::FrontendSettings;
use super::model::{Config, Invalid, Pattern, Secret};
use super::path::YamlPath;
use super::raw::{Lenient, RawConfig};
use super::route_groups::RouteGroups;
use super::settings::{RawSettings, Settings};
use super::yaml::Document;

/// The longest duration a config may give: a year and a day. Longer ones are mistakes, and
/// timers and bucket arithmetic stay far from overflow below it.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Collects errors while walking the raw config.
pub struct Validator<'a> {
    doc: &'a Document<'a>,
    file: &'a str,
    templates: &'a Templates,
    /// `LoadMode::DeferSecrets`: secrets keep only their references.
    defer_secrets: bool,
    /// `routeGroups`, validated before the binds whose routes delegate to them.
    route_groups: std::sync::Arc<RouteGroups>,
    pub errors: Vec<ConfigError>,
}

impl<'a> Validator<'a> {
    pub fn new(
        doc: &'a Document<'a>,
        file: &'a str,
        templates: &'a Templates,
        defer_secrets: bool,
    ) -> Self {
        Validator {
            doc,
            file,
            templates,
            defer_secrets,
            route_groups: Default::default(),
            errors: Vec::new(),
        }
    }

    /// An error about the value at `path`.
    pub fn error(&mut self, path: &YamlPath, message: impl Into<String>) {
        let mark = self.doc.value_mark(path);
        self.push(path, mark, message.into());
    }

    /// An error about the key of the entry at `path`.
    pub fn key_error(&mut self, path: &YamlPath, message: impl Into<String>) {
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

    /// The whole document.
    /// The validated route groups (for resolving delegation).
    pub fn groups(&self) -> std::sync::Arc<RouteGroups> {
        self.route_groups.clone()
    }

    pub fn config(&mut self, raw: &RawConfig) -> Config {
        let root = YamlPath::root();
        let settings = self
            .section(raw.config.as_ref(), &root, "config", |v, s, p| {
                Some(v.settings(s, p))
            })
            .unwrap_or_else(|| self.settings(&RawSettings::default(), &root.key("config")));
        self.route_groups = self.route_groups(&raw.route_groups, &root).into();
        let mut ports = HashSet::new();
        let binds = self.list(&raw.binds, &root, "binds", |v, b, _, path| {
            if !ports.insert(b.port) {
                v.error(&path.key("port"), format!("port {} is bound twice", b.port));
            }
            v.bind(b, path)
        });
        let (frontend_policies, frontend_settings) = self
            .section(
                raw.frontend_policies.as_ref(),
                &root,
                "frontendPolicies",
                |v, f, p| Some(v.frontend_policies(f, p)),
            )
            .unwrap_or_default();
        let settings = self.fold_frontend_settings(raw, settings, frontend_settings);
        Config {
            settings,
            binds,
            frontend_policies,
        }
    }

    /// `settings` with what `frontendPolicies` set in agentgateway's newer places; a setting
    /// written in both places is reported at its `frontendPolicies` spelling.
    fn fold_frontend_settings(
        &mut self,
        raw: &RawConfig,
        mut settings: Settings,
        frontend: FrontendSettings,
    ) -> Settings {
        let written = raw.config.as_ref().and_then(|c| c.value.as_ref());
        let at = YamlPath::root().key("frontendPolicies");
        let both = |v: &mut Self, in_config: bool, field: &str, config_field: &str| {
            if in_config {
                v.error(
                    &at.join(&YamlPath::parse(field)),
                    format!("`config.{config_field}` is set too: set it in one place"),
                );
            }
        };
        if let Some(size) = frontend.max_buffer_size {
            both(
                self,
                written.is_some_and(|c| c.max_body_size.is_some()),
                "http.maxBufferSize",
                "maxBodySize",
            );
            settings.max_body_size = size;
        }
        if let Some(tracing) = frontend.tracing {
            both(
                self,
                written.is_some_and(|c| c.tracing.is_some()),
                "tracing",
                "tracing",
            );
            settings.tracing = Some(tracing);
        }
        if let Some(access_log) = frontend.access_log {
            if let Some((filter, fields)) = access_log.filter_and_fields {
                let in_config = written
                    .and_then(|c| c.logging.as_ref())
                    .and_then(|l| l.value.as_ref())
                    .is_some_and(|l| l.filter.is_some() || l.fields.is_some());
                both(self, in_config, "accessLog", "logging.filter/fields");
                settings.logging.filter = filter;
                settings.logging.fields = fields;
            }
            settings.logging.otlp = access_log.otlp;
        }
        settings
    }

    /// The value a model constructor built, or its broken invariants reported under `path`.
    pub fn checked<T>(&mut self, built: Result<T, Vec<Invalid>>, path: &YamlPath) -> Option<T> {
        match built {
            Ok(value) => Some(value),
            Err(problems) => {
                for p in problems {
                    self.error(&path.join(&p.field), p.message);
                }
                None
            }
        }
    }

    /// Records the decoding errors of `value` and returns what could be decoded.
    pub fn lenient<'b, T>(&mut self, value: &'b Lenient<T>, path: &YamlPath) -> Option<&'b T> {
        for e in &value.errors {
            let full = path.join(&e.path);
            if e.at_key {
                let message = match full.last_key() {
                    Some(name) if is_agentgateway_field(&full) => format!(
                        "`{name}` is an agentgateway feature Tollgate does not support (yet)"
                    ),
                    _ => e.message.clone(),
                };
                self.key_error(&full, message);
            } else {
                self.error(&full, e.message.clone());
            }
        }
        value.value.as_ref()
    }

    /// An optional section at `parent.key`: decoded, then validated by `check`.
    pub fn section<R, T>(
        &mut self,
        raw: Option<&Lenient<R>>,
        parent: &YamlPath,
        key: &str,
        check: impl FnOnce(&mut Self, &R, &YamlPath) -> Option<T>,
    ) -> Option<T> {
        let path = parent.key(key);
        let raw = self.lenient(raw?, &path)?;
        check(self, raw, &path)
    }

    /// A list at `parent.key` whose elements are decoded and validated one by one; `check`
    /// gets each element, its index and its path.
    pub fn list<R, T>(
        &mut self,
        raw: &[Lenient<R>],
        parent: &YamlPath,
        key: &str,
        mut check: impl FnMut(&mut Self, &R, usize, &YamlPath) -> Option<T>,
    ) -> Vec<T> {
        // Sized once: a model element can be hundreds of bytes, and growing a list of 10,000
        // routes by doubling copies all of them again at each step.
        let mut out = Vec::with_capacity(raw.len());
        for (i, element) in raw.iter().enumerate() {
            let path = parent.key(key).index(i);
            if let Some(element) = self.lenient(element, &path)
                && let Some(value) = check(self, element, i, &path)
            {
                out.push(value);
            }
        }
        out
    }

    /// Whether exactly one of `options` (key, is set) is set; otherwise reports
    /// "`what` needs exactly one of `a`, `b` or `c`" at `path`.
    pub fn exactly_one(&mut self, path: &YamlPath, what: &str, options: &[(&str, bool)]) -> bool {
        if options.iter().filter(|(_, set)| *set).count() == 1 {
            return true;
        }
        let names: Vec<String> = options.iter().map(|(k, _)| format!("`{k}`")).collect();
        let (last, rest) = names.split_last().expect("options are never empty");
        self.error(
            path,
            format!("{what} needs exactly one of {} or {last}", rest.join(", ")),
        );
        false
    }

    /// A secret as loaded: expanded, or (when its reference was kept) still unresolved.
    /// The text a value at `path` was expanded from (`$VAR`, `${VAR:-x}`), if any.
    pub fn template(&self, path: &YamlPath) -> Option<&str> {
        self.templates.get(path).map(String::as_str)
    }

    pub fn secret(&self, value: &str, path: &YamlPath) -> Secret {
        match self.templates.get(path) {
            Some(t) if t == value => Secret::unresolved(t.clone()),
            t => Secret::new(value.to_string(), t.cloned()),
        }
    }

    /// A secret whose expanded value had to be validated (a URL's host): with deferred secrets
    /// only its reference is kept, so the value never leaves the control plane.
    pub fn validated_secret(&self, value: &str, path: &YamlPath) -> Secret {
        match self.templates.get(path) {
            Some(t) if self.defer_secrets => Secret::unresolved(t.clone()),
            t => Secret::new(value.to_string(), t.cloned()),
        }
    }

    pub fn duration(&mut self, text: &str, path: &YamlPath) -> Option<Duration> {
        match humantime::parse_duration(text.trim()) {
            Ok(d) if d > MAX_DURATION => {
                self.error(
                    path,
                    format!("duration `{text}` is too long: durations are at most 366d"),
                );
                None
            }
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

    /// An optional duration at `parent.key`; `None` when unset or invalid (reported).
    pub fn optional_duration(
        &mut self,
        text: Option<&str>,
        parent: &YamlPath,
        key: &str,
    ) -> Option<Duration> {
        text.and_then(|d| self.duration(d, &parent.key(key)))
    }

    /// Reports a path that does not start with `/`.
    pub fn absolute(&mut self, p: &str, path: &YamlPath) {
        if !p.starts_with('/') {
            self.error(path, format!("path `{p}` must start with `/`"));
        }
    }

    pub fn pattern(&mut self, source: &str, path: &YamlPath) -> Option<Pattern> {
        let built = Pattern::new(source).map_err(|e| vec![e]);
        self.checked(built, path)
    }

    /// `host:port` with an explicit port.
    pub fn authority(&mut self, text: &str, path: &YamlPath) -> Option<String> {
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

    /// Reports a header name `http` would refuse.
    pub fn header_name(&mut self, name: &str, path: &YamlPath) -> bool {
        let valid = http::HeaderName::from_bytes(name.as_bytes()).is_ok();
        if !valid {
            self.error(path, format!("`{name}` is not a valid header name"));
        }
        valid
    }

    /// Reports a method `http` would refuse.
    pub fn method(&mut self, method: &str, path: &YamlPath) {
        if http::Method::from_bytes(method.as_bytes()).is_err() {
            self.error(path, format!("`{method}` is not an HTTP method"));
        }
    }
}

/// agentgateway's field paths (`binds[].listeners[].routes[].policies.extProc`), from its
/// published schema.
const AGENTGATEWAY_FIELDS: &str = include_str!("agentgateway_fields.txt");

/// Whether `path` (indices ignored) is a field of agentgateway's config: an unknown field
/// there is a feature Tollgate lacks, not a typo.
fn is_agentgateway_field(path: &YamlPath) -> bool {
    let shape = path.shape();
    AGENTGATEWAY_FIELDS
        .lines()
        .any(|line| !line.starts_with('#') && line == shape)
}
