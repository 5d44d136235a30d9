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
    AiBackend, AiProvider, Backend, BackendKind, FailureMode, McpBackend, McpTarget, McpTargetKind,
    PrefixMode, Provider,
};
pub use super::frontend::{FrontendHttp, FrontendPolicies, FrontendTcp};
pub use super::listeners::{
    Bind, Listener, NamedMatch, PathMatch, Pattern, Route, RouteMatch, StringMatch,
};
use super::path::YamlPath;
pub use super::policies::{
    BackendAuth, BackendTls, Cors, HeaderModifier, Policies, RateLimit, RateLimitKind, Retry,
    RouteType, RouteTypes, Secret, Timeout, UrlRewrite, Verification,
};
pub use super::settings::{
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_MAX_BODY_SIZE, Fields, ListenAddr, LogFormat, Logging,
    McpSettings, Metrics, REQUEST_LABELS, Settings, Tracing,
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
        warnings
    }

    /// Every file the config names (certificates, keys, roots), with its field path
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
                    backend_tls(
                        &mut out,
                        &format!("{rp}.policies"),
                        route.policies.backend_tls.as_ref(),
                    );
                    for (bk, backend) in route.backends.iter().enumerate() {
                        let BackendKind::Ai(ai) = &backend.kind else {
                            continue;
                        };
                        for (gi, group) in ai.groups.iter().enumerate() {
                            for (pi, p) in group.iter().enumerate() {
                                let at = format!(
                                    "{rp}.backends[{bk}].ai.groups[{gi}].providers[{pi}].policies"
                                );
                                backend_tls(&mut out, &at, p.backend_tls.as_ref());
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Calls `f` on every secret of the config.
    pub fn visit_secrets(&mut self, f: &mut dyn FnMut(&mut Secret)) {
        let routes = self
            .binds
            .iter_mut()
            .flat_map(|b| &mut b.listeners)
            .flat_map(|l| &mut l.routes);
        for route in routes {
            let policies = &mut route.policies;
            if let Some(a) = &mut policies.backend_auth {
                f(&mut a.key);
            }
            let modifiers = [
                &mut policies.request_header_modifier,
                &mut policies.response_header_modifier,
            ];
            for m in modifiers.into_iter().flatten() {
                for (_, value) in m.add.iter_mut().chain(&mut m.set) {
                    f(value);
                }
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
        unset.sort_unstable();
        unset.dedup();
        if unset.is_empty() { Ok(()) } else { Err(unset) }
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
