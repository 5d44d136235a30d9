//! Validated config: the only config types that cross crate boundaries.
//!
//! Everything here has been checked: durations parsed, regexes compiled, references resolved.
//! Each section's types live in its own file (`settings`, `listeners`, `policies/*`,
//! `backends/*`) and are re-exported here, so `config::model::*` is the whole model.
//! `Serialize` gives the canonical form used for the admin API and the snapshot version;
//! secrets serialize as their `$VAR` reference or `<redacted>`, never their value.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

pub use super::backends::{
    AiBackend, AiProvider, Azure, AzureResourceType, Backend, BackendKind, Bedrock, FailureMode,
    McpBackend, McpTarget, McpTargetKind, OpenApiSchema, PrefixMode, Provider, Vertex,
};
pub use super::frontend::{
    FrontendHttp, FrontendPolicies, FrontendTcp, Keepalives, ProxyMode, ProxyProtocol, ProxyVersion,
};
pub use super::listeners::{
    Bind, Listener, NamedMatch, PathMatch, Pattern, Route, RouteMatch, StringMatch,
};
use super::path::YamlPath;
pub use super::policies::{
    AiPolicy, ApiKey, ApiKeyAuth, ApiKeyCredential, AuthMode, AuthorityRewrite, AwsAuth, AwsKeys,
    AzureAuth, BackendAuth, BackendTls, BasicAuth, BucketKeyExpr, Cors, CredentialLocation,
    DirectResponse, Eviction, GcpAuth, HeaderModifier, HealthPolicy, Jwks, JwtAuth, JwtMode,
    JwtProvider, McpAuthentication, McpIdp, PathRewrite, Policies, PromptMessage, Prompts,
    RateLimit, RateLimitKind, RequestMirror, RequestRedirect, Retry, RouteType, RouteTypes, Rule,
    RuleSet, Secret, Timeout, UrlRewrite, Verification,
};
pub use super::settings::{
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_MAX_BODY_SIZE, Fields, ListenAddr, LogExport, LogFormat,
    Logging, McpSettings, Metrics, OtlpProtocol, REQUEST_LABELS, Settings, Tracing,
};
pub use super::tls::{Alpn, FrontendTls, ListenerTls, TlsVersion};

/// A whole gateway config.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// `config:`: process-wide settings.
    pub settings: Settings,
    /// `binds:`: the ports served, unique.
    pub binds: Vec<Bind>,
    /// `frontendPolicies:`: how every bind treats client connections.
    pub frontend_policies: FrontendPolicies,
}

/// The one walk over every secret, for `&` and `&mut` configs alike: `$iter`/`$as_ref` are
/// `iter`/`as_ref` or `iter_mut`/`as_mut`, and `$m` is `mut` or nothing. Paths are formatted
/// only when a visitor prints one.
macro_rules! walk_secrets {
    ($config:expr, $f:expr, $iter:ident, $as_ref:ident $(, $m:tt)?) => {{
        let config = $config;
        let f = $f;
        if let Some(tracing) = &$($m)? config.settings.tracing {
            for (i, (name, value)) in tracing.headers.$iter().enumerate() {
                let path = format_args!("config.tracing.headers[{i}].value");
                f(&SecretField { path: &path, kind: SecretKind::Header(name) }, value);
            }
        }
        for (b, bind) in config.binds.$iter().enumerate() {
            for (l, listener) in bind.listeners.$iter().enumerate() {
                for (r, route) in listener.routes.$iter().enumerate() {
                    let at = format_args!("binds[{b}].listeners[{l}].routes[{r}]");
                    let policies = &$($m)? route.policies;
                    if let Some(auth) = &$($m)? policies.backend_auth {
                        let at = format_args!("{at}.policies.backendAuth");
                        walk_backend_auth!(auth, at, f, $as_ref $(, $m)?);
                    }
                    for (i, k) in policies
                        .api_key
                        .$iter()
                        .flat_map(|a| a.keys.$iter().enumerate())
                    {
                        if let ApiKeyCredential::Key(key) = &$($m)? k.key {
                            let path = format_args!("{at}.policies.apiKey.keys[{i}].key");
                            f(&SecretField::key(&path), key);
                        }
                    }
                    let modifiers = [
                        ("requestHeaderModifier", &$($m)? policies.request_header_modifier),
                        ("responseHeaderModifier", &$($m)? policies.response_header_modifier),
                    ];
                    for (key, m) in modifiers {
                        let Some(m) = m else { continue };
                        for (op, list) in [("add", &$($m)? m.add), ("set", &$($m)? m.set)] {
                            for (i, (name, value)) in list.$iter().enumerate() {
                                let path = format_args!("{at}.policies.{key}.{op}[{i}].value");
                                f(&SecretField { path: &path, kind: SecretKind::Header(name) }, value);
                            }
                        }
                    }
                    for (i, backend) in route.backends.$iter().enumerate() {
                        let at = format_args!("{at}.backends[{i}]");
                        match &$($m)? backend.kind {
                            BackendKind::Host(_) => {}
                            BackendKind::Ai(ai) => {
                                for (g, group) in ai.groups.$iter().enumerate() {
                                    for (p, provider) in group.$iter().enumerate() {
                                        if let Some(auth) = &$($m)? provider.backend_auth {
                                            let at = format_args!(
                                                "{at}.ai.groups[{g}].providers[{p}].backendAuth"
                                            );
                                            walk_backend_auth!(auth, at, f, $as_ref $(, $m)?);
                                        }
                                    }
                                }
                            }
                            BackendKind::Mcp(m) => {
                                for (t, target) in m.targets.$iter().enumerate() {
                                    let at = format_args!("{at}.mcp.targets[{t}]");
                                    match &$($m)? target.kind {
                                        McpTargetKind::Stdio { env, args, .. } => {
                                            for (name, value) in env.$iter() {
                                                let path = format_args!("{at}.stdio.env.{name}");
                                                f(&SecretField::key(&path), value);
                                            }
                                            let values: Vec<String> =
                                                args.iter().map(|a| a.expose().to_string()).collect();
                                            let shown = crate::config::redact::args(&values);
                                            for (i, arg) in args.$iter().enumerate() {
                                                let path = format_args!("{at}.stdio.args[{i}]");
                                                let kind = SecretKind::Argument {
                                                    redacted: shown[i] != values[i],
                                                };
                                                f(&SecretField { path: &path, kind }, arg);
                                            }
                                        }
                                        McpTargetKind::Sse { url } => {
                                            let path = format_args!("{at}.sse.host");
                                            f(&SecretField::url(&path), url);
                                        }
                                        McpTargetKind::Mcp { url } => {
                                            let path = format_args!("{at}.mcp.host");
                                            f(&SecretField::url(&path), url);
                                        }
                                        McpTargetKind::OpenApi { url, .. } => {
                                            let path = format_args!("{at}.openapi.host");
                                            f(&SecretField::url(&path), url);
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }};
}

/// `walk_secrets!`'s step into a `backendAuth` at `$at`.
macro_rules! walk_backend_auth {
    ($auth:expr, $at:expr, $f:expr, $as_ref:ident $(, $m:tt)?) => {
        match $auth {
            BackendAuth::Key(key) => {
                let path = format_args!("{}.key", $at);
                $f(&SecretField::key(&path), key)
            }
            BackendAuth::Aws(AwsAuth { keys: Some(keys), .. }) => {
                let fields = [
                    ("accessKeyId", Some(&$($m)? keys.access_key_id)),
                    ("secretAccessKey", Some(&$($m)? keys.secret_access_key)),
                    ("sessionToken", keys.session_token.$as_ref()),
                ];
                for (name, secret) in fields {
                    if let Some(secret) = secret {
                        let path = format_args!("{}.aws.{name}", $at);
                        $f(&SecretField::key(&path), secret);
                    }
                }
            }
            BackendAuth::Azure(AzureAuth::ClientSecret { client_secret, .. }) => {
                let path = format_args!("{}.azure.explicitConfig.clientSecret.client_secret", $at);
                $f(&SecretField::key(&path), client_secret)
            }
            BackendAuth::Aws(_)
            | BackendAuth::Azure(_)
            | BackendAuth::Gcp(_)
            | BackendAuth::Passthrough { .. } => {}
        }
    };
}

impl Config {
    /// Valid but risky settings, one line each naming where: `tollgate check` prints them and
    /// the proxy logs them when it loads the config.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for bind in &self.binds {
            for listener in &bind.listeners {
                for route in &listener.routes {
                    if let Some(w) = route.policies.cors.as_ref().and_then(Cors::warning) {
                        warnings.push(format!(
                            "port {}, listener `{}`, route `{}`: {w}",
                            bind.port, listener.name, route.name
                        ));
                    }
                }
            }
        }
        self.secrets(&mut |field, secret| {
            if field.is_literal_credential(secret) {
                warnings.push(format!(
                    "{}: a credential is written literally; prefer a `$VAR` reference, which proxies resolve from their own environment",
                    field.path
                ));
            }
        });
        warnings
    }

    /// Every file the config names (certificates, keys, roots, JWKS, htpasswd), with its field path
    /// (`binds[0].listeners[1].tls.cert`): the proxy reads these from its own filesystem.
    pub fn referenced_files(&self) -> Vec<(String, PathBuf)> {
        fn backend_tls(out: &mut Vec<(String, PathBuf)>, at: &str, tls: Option<&BackendTls>) {
            let Some(tls) = tls else { return };
            for (key, file) in [("root", &tls.root), ("cert", &tls.cert), ("key", &tls.key)] {
                if let Some(file) = file {
                    out.push((format!("{at}.backendTLS.{key}"), file.clone()));
                }
            }
        }
        fn gcp_file(out: &mut Vec<(String, PathBuf)>, at: &str, auth: Option<&BackendAuth>) {
            if let Some(BackendAuth::Gcp(GcpAuth {
                credential_file: Some(file),
            })) = auth
            {
                out.push((
                    format!("{at}.backendAuth.gcp.credential.file"),
                    file.clone(),
                ));
            }
        }
        let mut out = Vec::new();
        for (bi, bind) in self.binds.iter().enumerate() {
            for (li, listener) in bind.listeners.iter().enumerate() {
                let lp = format!("binds[{bi}].listeners[{li}]");
                if let Some(tls) = &listener.tls {
                    for (key, file) in [
                        ("cert", Some(&tls.cert)),
                        ("key", Some(&tls.key)),
                        ("root", tls.root.as_ref()),
                    ] {
                        if let Some(file) = file {
                            out.push((format!("{lp}.tls.{key}"), file.clone()));
                        }
                    }
                }
                for (ri, route) in listener.routes.iter().enumerate() {
                    let rp = format!("{lp}.routes[{ri}]");
                    let policies = &route.policies;
                    let jwt = policies.jwt_auth.iter().flat_map(|j| {
                        let providers = j.providers.iter().enumerate();
                        providers.map(|(pi, p)| (format!("jwtAuth.providers[{pi}]"), p))
                    });
                    let mcp = policies
                        .mcp_authentication
                        .iter()
                        .map(|m| ("mcpAuthentication".to_string(), &m.jwt.providers[0]));
                    for (at, provider) in jwt.chain(mcp) {
                        if let Jwks::File(file) = &provider.jwks {
                            out.push((format!("{rp}.policies.{at}.jwks.file"), file.clone()));
                        }
                    }
                    if let Some(basic) = &route.policies.basic_auth {
                        let at = format!("{rp}.policies.basicAuth.htpasswd.file");
                        out.push((at, basic.htpasswd.clone()));
                    }
                    backend_tls(
                        &mut out,
                        &format!("{rp}.policies"),
                        route.policies.backend_tls.as_ref(),
                    );
                    gcp_file(
                        &mut out,
                        &format!("{rp}.policies"),
                        route.policies.backend_auth.as_ref(),
                    );
                    for (bk, backend) in route.backends.iter().enumerate() {
                        if let BackendKind::Mcp(m) = &backend.kind {
                            for (ti, t) in m.targets.iter().enumerate() {
                                if let McpTargetKind::OpenApi {
                                    schema: OpenApiSchema::File(file),
                                    ..
                                } = &t.kind
                                {
                                    let at = format!(
                                        "{rp}.backends[{bk}].mcp.targets[{ti}].openapi.schema.file"
                                    );
                                    out.push((at, file.clone()));
                                }
                            }
                        }
                        let BackendKind::Ai(ai) = &backend.kind else {
                            continue;
                        };
                        for (gi, group) in ai.groups.iter().enumerate() {
                            for (pi, p) in group.iter().enumerate() {
                                let at = format!(
                                    "{rp}.backends[{bk}].ai.groups[{gi}].providers[{pi}].policies"
                                );
                                backend_tls(&mut out, &at, p.backend_tls.as_ref());
                                gcp_file(&mut out, &at, p.backend_auth.as_ref());
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Calls `f` on every secret of the config, with its field.
    pub fn visit_secrets(&mut self, f: &mut dyn FnMut(&SecretField<'_>, &mut Secret)) {
        walk_secrets!(self, f, iter_mut, as_mut, mut);
    }

    /// Calls `f` on every secret of the config, with its field, without changing any (no
    /// copy of the config to walk: a 10,000-route config's warnings were half its apply).
    pub fn secrets(&self, f: &mut dyn FnMut(&SecretField<'_>, &Secret)) {
        walk_secrets!(self, f, iter, as_ref);
    }

    /// Every MCP target with its field (`….backends[0].mcp.targets[1]`).
    pub fn mcp_targets(&self) -> Vec<(String, &McpTarget)> {
        let mut out = Vec::new();
        for (b, bind) in self.binds.iter().enumerate() {
            for (l, listener) in bind.listeners.iter().enumerate() {
                for (r, route) in listener.routes.iter().enumerate() {
                    for (i, backend) in route.backends.iter().enumerate() {
                        if let BackendKind::Mcp(m) = &backend.kind {
                            for (t, target) in m.targets.iter().enumerate() {
                                let path = format!(
                                    "binds[{b}].listeners[{l}].routes[{r}].backends[{i}].mcp.targets[{t}]"
                                );
                                out.push((path, target));
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Resolves every secret reference from `env` (a proxy receiving a control-plane
    /// snapshot); `Err` names each unset variable once.
    pub fn resolve_secrets(&mut self, env: &dyn crate::config::Env) -> Result<(), Vec<String>> {
        let mut unset = Vec::new();
        self.visit_secrets(&mut |_, s| {
            if let Err(names) = s.resolve(env) {
                unset.extend(names);
            }
        });
        unset.sort_unstable();
        unset.dedup();
        if unset.is_empty() { Ok(()) } else { Err(unset) }
    }
}

/// What a secret field holds.
pub enum SecretKind<'a> {
    /// A key or a variable's value: always a credential.
    Key,
    /// A header-modifier value, with the header's name.
    Header(&'a str),
    /// A URL, which may carry credentials.
    Url,
    /// A stdio argument, and whether dumps redact it (a key, a credential flag's value).
    Argument { redacted: bool },
}

/// The secrets of a `backendAuth` at `path`: its key, or its AWS keys.
/// Where a secret sits in the config.
pub struct SecretField<'a> {
    /// `binds[0].listeners[0].routes[0].policies.backendAuth.key`, formatted when printed.
    pub path: &'a dyn fmt::Display,
    pub kind: SecretKind<'a>,
}

impl SecretField<'_> {
    fn key(path: &dyn fmt::Display) -> SecretField<'_> {
        SecretField {
            path,
            kind: SecretKind::Key,
        }
    }

    fn url(path: &dyn fmt::Display) -> SecretField<'_> {
        SecretField {
            path,
            kind: SecretKind::Url,
        }
    }

    /// A value written in the file rather than referenced, that looks like a credential (a
    /// header value or URL only when its name or its form says so, as dumps decide).
    pub fn is_literal_credential(&self, secret: &Secret) -> bool {
        use crate::config::redact;
        let value = secret.expose();
        secret.reference().is_none()
            && !value.is_empty()
            && match self.kind {
                SecretKind::Key => true,
                SecretKind::Header(name) => {
                    redact::is_credential_name(name) || redact::looks_like_credential(value)
                }
                SecretKind::Url => redact::url(value) != value,
                SecretKind::Argument { redacted } => redacted,
            }
    }
}

/// A broken invariant of a model value: which field (relative to the value) and why. The
/// validator reports it at the field's position in the file; the proto conversion names the
/// field in an `InvalidSnapshot`. One wording for both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub(crate) field: YamlPath,
    pub(crate) message: String,
}

impl Invalid {
    /// A problem with `field` (`a.b[2].c`; empty for the value itself).
    pub(crate) fn at(field: &str, message: impl Into<String>) -> Invalid {
        Invalid {
            field: YamlPath::parse(field),
            message: message.into(),
        }
    }

    /// Whether the problem is about `field`.
    pub(crate) fn is_at(&self, field: &str) -> bool {
        self.field == YamlPath::parse(field)
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Invalid {}

pub(crate) fn as_humantime<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

pub(crate) fn as_opt_humantime<S: Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => as_humantime(d, s),
        None => s.serialize_none(),
    }
}
