//! `binds`, their `listeners`, `routes` and route `matches`: raw types, validation, the model
//! and its proto form.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use super::backends::{Backend, BackendKind, McpTargetKind, Provider, RawBackend};
use super::model::Invalid;
use super::path::YamlPath;
use super::policies::{BackendAuth, PathRewrite, Policies, RawPolicies};
use super::raw::Lenient;
use super::route_groups::Routed;
use super::tls::{ListenerTls, RawListenerTls};
use super::validate::Validator;
use crate::convert::{self, InvalidSnapshot, invalid, missing};
use crate::proto::v1 as pb;

// === raw ===

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBind {
    pub port: u16,
    pub listeners: Vec<Lenient<RawListener>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawListener {
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub protocol: Option<String>,
    pub tls: Option<Lenient<RawListenerTls>>,
    #[serde(default)]
    pub routes: Vec<Lenient<RawRoute>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRoute {
    pub name: Option<String>,
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub matches: Vec<Lenient<RawMatch>>,
    pub policies: Option<Lenient<RawPolicies>>,
    #[serde(default)]
    pub backends: Vec<Lenient<RawBackend>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMatch {
    pub path: Option<RawPathMatch>,
    pub method: Option<String>,
    #[serde(default)]
    pub headers: Vec<RawNamedMatch>,
    #[serde(default)]
    pub query: Vec<RawNamedMatch>,
}

/// Exactly one of the fields (checked by validation; serde's enum form needs YAML tags).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPathMatch {
    pub exact: Option<String>,
    pub path_prefix: Option<String>,
    pub regex: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawNamedMatch {
    pub name: String,
    pub value: RawStringMatch,
}

/// Exactly one of the fields.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawStringMatch {
    pub exact: Option<String>,
    pub regex: Option<String>,
}

// === model ===

/// `binds[]`: one port and the listeners that share it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bind {
    /// TCP port, 1..=65535, unique across binds.
    pub port: u16,
    /// Listeners, names unique on this bind.
    pub listeners: Vec<Listener>,
}

impl Bind {
    /// A bind on a real port with at least one listener, all HTTP or all HTTPS (one port
    /// either handshakes or it does not).
    pub(crate) fn new(port: u16, listeners: Vec<Listener>) -> Result<Bind, Vec<Invalid>> {
        let mut problems = Vec::new();
        if port == 0 {
            problems.push(Invalid::at("port", "port must be between 1 and 65535"));
        }
        if listeners.is_empty() {
            problems.push(Invalid::at(
                "listeners",
                "a bind needs at least one listener",
            ));
        }
        if let Some(first) = listeners.first()
            && let Some(i) = listeners
                .iter()
                .position(|l| l.tls.is_some() != first.tls.is_some())
        {
            problems.push(Invalid::at(
                &format!("listeners[{i}].protocol"),
                "the listeners of one bind must all be HTTP or all HTTPS",
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Bind { port, listeners })
    }
}

/// `listeners[]`: routes served for one hostname on a bind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listener {
    /// `name`, or `listener<index>`.
    pub name: String,
    /// Host this listener answers for (`*.example.com` allowed); `None` = any. On HTTPS
    /// listeners it also picks the listener by SNI.
    pub hostname: Option<String>,
    /// Routes in file order, names unique in the listener.
    pub routes: Vec<Route>,
    /// `protocol: HTTPS` with its `tls`; `None` = plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
}

/// `routes[]`: which requests (matches) go where (backends), under which policies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// `name`, or `route<index>`.
    pub name: String,
    /// Hosts this route answers for; empty = any.
    pub hostnames: Vec<String>,
    /// Never empty: a route without `matches` matches prefix `/`.
    pub matches: Vec<RouteMatch>,
    /// Route-level policies (see [`Policies`] for how levels combine).
    pub policies: Policies,
    /// Never empty; one is picked per request by weight.
    pub backends: Vec<Backend>,
}

impl Route {
    /// `self` with [`Route::new`]'s checks.
    pub(crate) fn checked(self) -> Result<Route, Vec<Invalid>> {
        Route::new(
            self.name,
            self.hostnames,
            self.matches,
            self.policies,
            self.backends,
        )
    }

    /// A route with at least one match and one backend (or a direct response), whose prefix
    /// rewrite (if any) has a
    /// prefix to replace in every match.
    pub(crate) fn new(
        name: String,
        hostnames: Vec<String>,
        matches: Vec<RouteMatch>,
        policies: Policies,
        backends: Vec<Backend>,
    ) -> Result<Route, Vec<Invalid>> {
        let mut problems = Vec::new();
        if matches.is_empty() {
            problems.push(Invalid::at("matches", "a route needs at least one match"));
        }
        let answered_here = [
            ("directResponse", policies.direct_response.is_some()),
            ("requestRedirect", policies.request_redirect.is_some()),
        ];
        match answered_here.iter().find(|(_, set)| *set) {
            None if backends.is_empty() => problems.push(Invalid::at(
                "backends",
                "a route needs at least one backend (or a `directResponse` or `requestRedirect`)",
            )),
            Some((policy, _)) if !backends.is_empty() => problems.push(Invalid::at(
                "backends",
                format!(
                    "the route answers with its `{policy}`: its backends would never be called"
                ),
            )),
            _ => {}
        }
        if answered_here.iter().all(|(_, set)| *set) {
            problems.push(Invalid::at(
                "policies.requestRedirect",
                "a route answers with a `directResponse` or a `requestRedirect`, not both",
            ));
        }
        let prefix_rewrites = [
            (
                "policies.urlRewrite.path.prefix",
                policies.url_rewrite.as_ref().and_then(|u| u.path.as_ref()),
            ),
            (
                "policies.requestRedirect.path.prefix",
                policies
                    .request_redirect
                    .as_ref()
                    .and_then(|r| r.path.as_ref()),
            ),
        ];
        let all_prefix = matches
            .iter()
            .all(|m| matches!(m.path, PathMatch::PathPrefix(_)));
        for (at, rewrite) in prefix_rewrites {
            if matches!(rewrite, Some(PathRewrite::Prefix(_))) && !all_prefix {
                problems.push(Invalid::at(
                    at,
                    "a prefix rewrite needs every match of the route to be a `pathPrefix` match",
                ));
            }
        }
        // A provider's own backendAuth replaces the route's.
        let unsigned = |b: &Backend| match &b.kind {
            BackendKind::Ai(ai) => ai
                .groups
                .iter()
                .flatten()
                .any(|p| p.provider != Provider::Bedrock && p.backend_auth.is_none()),
            _ => true,
        };
        if matches!(policies.backend_auth, Some(BackendAuth::Aws(_)))
            && backends.iter().any(unsigned)
        {
            problems.push(Invalid::at(
                "policies.backendAuth.aws",
                "backendAuth.aws signs requests to bedrock providers only: this route has other backends",
            ));
        }
        if policies.request_mirror.is_some()
            && backends
                .iter()
                .any(|b| !matches!(b.kind, BackendKind::Host(_)))
        {
            problems.push(Invalid::at(
                "policies.requestMirror",
                "`requestMirror` copies requests to `host` backends only (LLM and MCP requests are not mirrored)",
            ));
        }
        if policies
            .backend_auth
            .as_ref()
            .is_some_and(BackendAuth::is_token)
            && backends
                .iter()
                .any(|b| !matches!(b.kind, BackendKind::Ai(_)))
        {
            problems.push(Invalid::at(
                "policies.backendAuth",
                "`gcp` and `azure` backendAuth apply to `ai` backends only",
            ));
        }
        if policies.a2a
            && backends
                .iter()
                .any(|b| !matches!(b.kind, BackendKind::Host(_)))
        {
            problems.push(Invalid::at(
                "policies.a2a",
                "`a2a` applies to `host` backends (A2A agents); this route has an `ai` or `mcp` one",
            ));
        }
        if policies.backend_tls.is_some() {
            let plain = backends
                .iter()
                .filter_map(|b| match &b.kind {
                    BackendKind::Mcp(m) => Some(&m.targets),
                    _ => None,
                })
                .flatten()
                .find(|t| match &t.kind {
                    McpTargetKind::Sse { url }
                    | McpTargetKind::Mcp { url }
                    | McpTargetKind::OpenApi { url, .. } => url.expose().starts_with("http://"),
                    McpTargetKind::Stdio { .. } => false,
                });
            if let Some(t) = plain {
                problems.push(Invalid::at(
                    "policies.backendTLS",
                    format!(
                        "backendTLS secures https:// MCP targets; target `{}` is http://",
                        t.name
                    ),
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Route {
            name,
            hostnames,
            matches,
            policies,
            backends,
        })
    }
}

/// `matches[]`: every condition must hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteMatch {
    /// `path`; prefix `/` when unset.
    pub path: PathMatch,
    /// Upper-case method; `None` = any.
    pub method: Option<String>,
    /// Header conditions (lower-case names).
    pub headers: Vec<NamedMatch>,
    /// Query parameter conditions.
    pub query: Vec<NamedMatch>,
}

impl RouteMatch {
    /// What a route without `matches` gets: every path.
    pub fn any() -> RouteMatch {
        RouteMatch {
            path: PathMatch::PathPrefix("/".to_string()),
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
        }
    }
}

/// `matches[].path`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PathMatch {
    /// The whole path, as written.
    Exact(String),
    /// Segment-aware prefix, stored without a trailing `/` (except the root `/`).
    PathPrefix(String),
    /// Must match the whole path.
    Regex(Pattern),
}

/// A header (lower-case name) or query parameter condition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedMatch {
    /// Header (lower-case) or query parameter name.
    pub name: String,
    /// What its value must be.
    pub value: StringMatch,
}

/// `value`: an exact string or a whole-string regex.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StringMatch {
    /// Equal to this.
    Exact(String),
    /// Matched whole by this.
    Regex(Pattern),
}

/// A compiled regex that matches whole strings; compares and serializes as its source.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compiles `source`, anchored at both ends.
    pub fn new(source: &str) -> Result<Pattern, Invalid> {
        // Compiled alone first so an error quotes the user's pattern, not the anchored one.
        let anchored =
            regex::Regex::new(source).and_then(|_| regex::Regex::new(&format!("^(?:{source})$")));
        match anchored {
            Ok(regex) => Ok(Pattern {
                source: source.to_string(),
                regex,
            }),
            Err(e) => {
                let detail = e.to_string().lines().last().unwrap_or_default().to_string();
                Err(Invalid::at(
                    "",
                    format!(
                        "invalid regex `{source}`: {}",
                        detail.trim_start_matches("error: ")
                    ),
                ))
            }
        }
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    /// The pattern as written.
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

// === validation ===

impl Validator<'_> {
    pub fn bind(&mut self, raw: &RawBind, path: &YamlPath) -> Option<Bind> {
        let mut names = HashSet::new();
        let listeners = self.list(&raw.listeners, path, "listeners", |v, l, i, lp| {
            let listener = v.listener(l, i, lp);
            if !names.insert(listener.name.clone()) {
                v.error(
                    lp,
                    format!(
                        "listener name `{}` is used twice on this bind",
                        listener.name
                    ),
                );
            }
            Some(listener)
        });
        let written = !raw.listeners.is_empty();
        let built = Bind::new(raw.port, listeners).map_err(|problems| {
            // Listeners that were written but failed are reported already.
            problems
                .into_iter()
                .filter(|p| !(written && p.is_at("listeners")))
                .collect()
        });
        self.checked(built, path)
    }

    fn listener(&mut self, raw: &RawListener, index: usize, path: &YamlPath) -> Listener {
        let https = match raw.protocol.as_deref() {
            None | Some("HTTP") => false,
            Some("HTTPS") => true,
            Some(p) => {
                self.error(
                    &path.key("protocol"),
                    format!("protocol `{p}` is not supported; only HTTP and HTTPS are"),
                );
                false
            }
        };
        let tls = self.section(raw.tls.as_ref(), path, "tls", Self::listener_tls);
        match (https, raw.tls.is_some()) {
            (true, false) => self.error(&path.key("protocol"), "protocol HTTPS needs `tls`"),
            (false, true) if raw.protocol.as_deref().is_none_or(|p| p == "HTTP") => {
                self.error(&path.key("tls"), "`tls` needs `protocol: HTTPS`")
            }
            _ => {}
        }
        let mut names = HashSet::new();
        let routed = self.list(&raw.routes, path, "routes", |v, r, i, rp| {
            let name = r.name.clone().unwrap_or_else(|| format!("route{i}"));
            if !names.insert(name.clone()) {
                v.error(
                    rp,
                    format!("route name `{name}` is used twice in this listener"),
                );
            }
            v.route(r, name, rp)
        });
        let groups = self.groups();
        let mut routes = Vec::with_capacity(routed.len());
        for r in routed {
            let delegated = matches!(r, Routed::Delegates { .. });
            for route in self.resolve_delegation(r, &groups) {
                if delegated && !names.insert(route.name.clone()) && !route.backends.is_empty() {
                    self.error(
                        &path.key("routes"),
                        format!(
                            "route name `{}` is used twice in this listener (a route group's routes are the listener's routes)",
                            route.name
                        ),
                    );
                }
                routes.push(route);
            }
        }
        Listener {
            name: raw
                .name
                .clone()
                .unwrap_or_else(|| format!("listener{index}")),
            hostname: raw.hostname.clone(),
            routes,
            tls: tls.filter(|_| https),
        }
    }

    pub(crate) fn route(
        &mut self,
        raw: &RawRoute,
        name: String,
        path: &YamlPath,
    ) -> Option<Routed> {
        let mut matches = self.list(&raw.matches, path, "matches", |v, m, _, mp| {
            Some(v.route_match(m, mp))
        });
        if raw.matches.is_empty() {
            matches.push(RouteMatch::any());
        }
        let policies = self
            .section(raw.policies.as_ref(), path, "policies", |v, p, pp| {
                Some(v.policies(p, pp))
            })
            .unwrap_or_default();
        let delegates = raw.backends.iter().enumerate().find_map(|(i, b)| {
            let b = b.value.as_ref()?;
            let only_group = b.host.is_none() && b.ai.is_none() && b.mcp.is_none();
            Some((i, b.route_group.clone().filter(|_| only_group)?))
        });
        if let Some((i, group)) = delegates {
            let at = path.key("backends").index(i);
            if raw.backends.len() > 1 {
                self.error(
                    &path.key("backends"),
                    "a route that delegates to a `routeGroup` has no other backend",
                );
                return None;
            }
            if policies.direct_response.is_some() || policies.request_redirect.is_some() {
                self.error(
                    &at,
                    "the route answers itself (`directResponse` or `requestRedirect`): it cannot also delegate",
                );
                return None;
            }
            let parent = Route {
                name,
                hostnames: raw.hostnames.clone(),
                matches,
                policies,
                backends: Vec::new(),
            };
            return Some(Routed::Delegates {
                parent,
                group,
                at: at.key("routeGroup"),
            });
        }
        let backends = self.list(&raw.backends, path, "backends", |v, b, _, bp| {
            v.backend(b, bp)
        });
        let all_failed = !raw.backends.is_empty() && backends.is_empty();
        let built = Route::new(name, raw.hostnames.clone(), matches, policies, backends).map_err(
            |problems| {
                // Backends that were written but failed are reported already.
                problems
                    .into_iter()
                    .filter(|p| !(all_failed && p.is_at("backends")))
                    .collect()
            },
        );
        self.checked(built, path).map(Routed::Route)
    }

    fn route_match(&mut self, raw: &RawMatch, path: &YamlPath) -> RouteMatch {
        let pp = path.key("path");
        let path_match = match &raw.path {
            None => PathMatch::PathPrefix("/".to_string()),
            Some(m) => self.path_match(m, &pp),
        };
        let method = raw.method.as_ref().map(|m| {
            self.method(m, &path.key("method"));
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

    /// A path match; an invalid one (reported) becomes an exact match of nothing.
    fn path_match(&mut self, raw: &RawPathMatch, path: &YamlPath) -> PathMatch {
        let nothing = PathMatch::Exact(String::new());
        let options = [
            ("exact", raw.exact.is_some()),
            ("pathPrefix", raw.path_prefix.is_some()),
            ("regex", raw.regex.is_some()),
        ];
        if !self.exactly_one(path, "a path match", &options) {
            return nothing;
        }
        if let Some(p) = &raw.exact {
            self.absolute(p, &path.key("exact"));
            PathMatch::Exact(p.clone())
        } else if let Some(p) = &raw.path_prefix {
            self.absolute(p, &path.key("pathPrefix"));
            let trimmed = p.trim_end_matches('/');
            PathMatch::PathPrefix(if trimmed.is_empty() {
                "/".into()
            } else {
                trimmed.into()
            })
        } else {
            raw.regex
                .as_ref()
                .and_then(|r| self.pattern(r, &path.key("regex")))
                .map_or(nothing, PathMatch::Regex)
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
            if header {
                self.header_name(&m.name, &mp.key("name"));
            }
            let vp = mp.key("value");
            let options = [
                ("exact", m.value.exact.is_some()),
                ("regex", m.value.regex.is_some()),
            ];
            if !self.exactly_one(&vp, "a value match", &options) {
                continue;
            }
            let value = match (&m.value.exact, &m.value.regex) {
                (Some(v), _) => StringMatch::Exact(v.clone()),
                (None, Some(r)) => match self.pattern(r, &vp.key("regex")) {
                    Some(p) => StringMatch::Regex(p),
                    None => continue,
                },
                (None, None) => continue,
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
}

// === proto ===

impl From<&Bind> for pb::Bind {
    fn from(b: &Bind) -> Self {
        pb::Bind {
            port: u32::from(b.port),
            listeners: b.listeners.iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<pb::Bind> for Bind {
    type Error = InvalidSnapshot;

    fn try_from(b: pb::Bind) -> convert::Result<Bind> {
        let port = u16::try_from(b.port)
            .or_else(|_| invalid("port", format!("{} is not a port", b.port)))?;
        Bind::new(port, convert::each(b.listeners, "listeners")?).map_err(InvalidSnapshot::from)
    }
}

impl From<&Listener> for pb::Listener {
    fn from(l: &Listener) -> Self {
        pb::Listener {
            name: l.name.clone(),
            hostname: l.hostname.clone(),
            routes: l.routes.iter().map(Into::into).collect(),
            tls: l.tls.as_ref().map(Into::into),
        }
    }
}

impl TryFrom<pb::Listener> for Listener {
    type Error = InvalidSnapshot;

    fn try_from(l: pb::Listener) -> convert::Result<Listener> {
        Ok(Listener {
            name: l.name,
            hostname: l.hostname,
            routes: convert::each(l.routes, "routes")?,
            tls: convert::optional(l.tls, "tls")?,
        })
    }
}

impl From<&Route> for pb::Route {
    fn from(r: &Route) -> Self {
        pb::Route {
            name: r.name.clone(),
            hostnames: r.hostnames.clone(),
            matches: r.matches.iter().map(Into::into).collect(),
            policies: Some((&r.policies).into()),
            backends: r.backends.iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<pb::Route> for Route {
    type Error = InvalidSnapshot;

    fn try_from(r: pb::Route) -> convert::Result<Route> {
        Route::new(
            r.name,
            r.hostnames,
            convert::each(r.matches, "matches")?,
            convert::optional(r.policies, "policies")?.unwrap_or_default(),
            convert::each(r.backends, "backends")?,
        )
        .map_err(InvalidSnapshot::from)
    }
}

impl From<&RouteMatch> for pb::RouteMatch {
    fn from(m: &RouteMatch) -> Self {
        use pb::path_match::Kind;
        pb::RouteMatch {
            path: Some(pb::PathMatch {
                kind: Some(match &m.path {
                    PathMatch::Exact(p) => Kind::Exact(p.clone()),
                    PathMatch::PathPrefix(p) => Kind::PathPrefix(p.clone()),
                    PathMatch::Regex(p) => Kind::Regex(p.as_str().to_string()),
                }),
            }),
            method: m.method.clone(),
            headers: m.headers.iter().map(Into::into).collect(),
            query: m.query.iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<pb::RouteMatch> for RouteMatch {
    type Error = InvalidSnapshot;

    fn try_from(m: pb::RouteMatch) -> convert::Result<RouteMatch> {
        Ok(RouteMatch {
            path: convert::required(m.path, "path")?,
            method: m.method,
            headers: convert::each(m.headers, "headers")?,
            query: convert::each(m.query, "query")?,
        })
    }
}

impl TryFrom<pb::PathMatch> for PathMatch {
    type Error = InvalidSnapshot;

    fn try_from(p: pb::PathMatch) -> convert::Result<PathMatch> {
        use pb::path_match::Kind;
        match p.kind {
            Some(Kind::Exact(p)) => Ok(PathMatch::Exact(p)),
            Some(Kind::PathPrefix(p)) => Ok(PathMatch::PathPrefix(p)),
            Some(Kind::Regex(r)) => Ok(PathMatch::Regex(
                Pattern::new(&r).map_err(|e| InvalidSnapshot::from(e).within("regex"))?,
            )),
            None => missing(""),
        }
    }
}

impl From<&NamedMatch> for pb::NamedMatch {
    fn from(m: &NamedMatch) -> Self {
        use pb::string_match::Kind;
        pb::NamedMatch {
            name: m.name.clone(),
            value: Some(pb::StringMatch {
                kind: Some(match &m.value {
                    StringMatch::Exact(s) => Kind::Exact(s.clone()),
                    StringMatch::Regex(p) => Kind::Regex(p.as_str().to_string()),
                }),
            }),
        }
    }
}

impl TryFrom<pb::NamedMatch> for NamedMatch {
    type Error = InvalidSnapshot;

    fn try_from(m: pb::NamedMatch) -> convert::Result<NamedMatch> {
        Ok(NamedMatch {
            name: m.name,
            value: convert::required(m.value, "value")?,
        })
    }
}

impl TryFrom<pb::StringMatch> for StringMatch {
    type Error = InvalidSnapshot;

    fn try_from(m: pb::StringMatch) -> convert::Result<StringMatch> {
        use pb::string_match::Kind;
        match m.kind {
            Some(Kind::Exact(s)) => Ok(StringMatch::Exact(s)),
            Some(Kind::Regex(r)) => Ok(StringMatch::Regex(
                Pattern::new(&r).map_err(|e| InvalidSnapshot::from(e).within("regex"))?,
            )),
            None => missing(""),
        }
    }
}
