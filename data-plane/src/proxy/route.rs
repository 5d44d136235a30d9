//! Phase 1, route match: listener by host (on HTTPS binds, the listener the TLS handshake
//! chose by SNI, so a `Host` header cannot reach a listener whose handshake it skipped), then
//! the most specific matching route.

use std::borrow::Cow;
use std::sync::Arc;

use http::Request;
use tollgate_shared::config::model::{NamedMatch, PathMatch, RouteMatch, StringMatch};

use crate::runtime::{CompiledRoute, HostPattern, ListenerTable, PortTable};
use crate::tls::TlsSession;

pub struct Selected<'a> {
    pub listener: &'a ListenerTable,
    pub route: &'a Arc<CompiledRoute>,
    pub matcher: &'a RouteMatch,
}

/// The request's host, lower-cased and without port: the absolute-form URI's or HTTP/2's
/// `:authority` wins over `Host` (RFC 9112 §3.2.2), so the two cannot pick different routes.
fn host_of<B>(req: &Request<B>) -> Cow<'_, str> {
    let raw = req
        .uri()
        .host()
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("");
    let host = match raw.rfind(':') {
        Some(i) if !raw.ends_with(']') => &raw[..i],
        _ => raw,
    };
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// How well `host` matches `patterns`: 0 exact, 1 wildcard, 2 no pattern at all; `None` when
/// none matches. Routes and listeners (by `Host` or SNI) rank alike.
pub(crate) fn host_rank(patterns: &[HostPattern], host: &str) -> Option<u8> {
    if patterns.is_empty() {
        return Some(2);
    }
    patterns.iter().filter_map(|p| p.rank(host)).min()
}

pub fn select<'a, B>(table: &'a PortTable, req: &Request<B>) -> Option<Selected<'a>> {
    let host = host_of(req);
    let listener = match req.extensions().get::<TlsSession>() {
        Some(session) => table
            .listeners
            .iter()
            .find(|l| l.name == session.listener)?,
        None => {
            table
                .listeners
                .iter()
                .filter_map(|l| host_rank(l.hostname.as_slice(), &host).map(|rank| (rank, l)))
                .min_by_key(|(rank, _)| *rank)?
                .1
        }
    };
    let path = req.uri().path();
    let mut best: Option<(u8, usize)> = None;
    for (i, entry) in listener.entries.iter().enumerate() {
        let route = &listener.routes[entry.route];
        let Some(rank) = host_rank(&route.hostnames, &host) else {
            continue;
        };
        if best.is_some_and(|(r, _)| r <= rank) || !matches(&entry.matcher, path, req) {
            continue;
        }
        best = Some((rank, i));
        if rank == 0 {
            break;
        }
    }
    let entry = &listener.entries[best?.1];
    Some(Selected {
        listener,
        route: &listener.routes[entry.route],
        matcher: &entry.matcher,
    })
}

fn matches<B>(m: &RouteMatch, path: &str, req: &Request<B>) -> bool {
    let path_ok = match &m.path {
        PathMatch::Exact(p) => path == p,
        PathMatch::PathPrefix(p) => prefix_matches(p, path),
        PathMatch::Regex(r) => r.is_match(path),
    };
    path_ok
        && m.method
            .as_deref()
            .is_none_or(|method| req.method().as_str() == method)
        && m.headers.iter().all(|h| header_matches(h, req))
        && (m.query.is_empty() || query_matches(&m.query, req.uri().query().unwrap_or("")))
}

/// Segment-aware: `/a` matches `/a` and `/a/x`, not `/ab`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn string_matches(m: &StringMatch, value: &str) -> bool {
    match m {
        StringMatch::Exact(v) => v == value,
        StringMatch::Regex(r) => r.is_match(value),
    }
}

fn header_matches<B>(h: &NamedMatch, req: &Request<B>) -> bool {
    req.headers()
        .get_all(h.name.as_str())
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| string_matches(&h.value, v)))
}

fn query_matches(conditions: &[NamedMatch], query: &str) -> bool {
    conditions.iter().all(|c| {
        form_urlencoded::parse(query.as_bytes())
            .any(|(k, v)| k == c.name.as_str() && string_matches(&c.value, &v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::tests::harness::Harness;
    use crate::runtime::Runtime;

    fn runtime(yaml: &str) -> Arc<Runtime> {
        Harness::new(yaml).runtime()
    }

    fn pick(rt: &Runtime, method: &str, uri: &str, headers: &[(&str, &str)]) -> Option<String> {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(()).unwrap();
        let table: &Arc<PortTable> = rt.ports.get(&1).unwrap();
        select(table, &req).map(|s| s.route.name.to_string())
    }

    #[test]
    fn gateway_api_precedence() {
        let rt = runtime(
            r#"
binds:
- port: 1
  listeners:
  - routes:
    - name: regex
      matches: [{path: {regex: "/a/.*"}}]
      backends: [{host: "h:1"}]
    - name: root
      backends: [{host: "h:1"}]
    - name: prefix-a
      matches: [{path: {pathPrefix: /a}}]
      backends: [{host: "h:1"}]
    - name: prefix-ab
      matches: [{path: {pathPrefix: /a/b/}}]
      backends: [{host: "h:1"}]
    - name: exact
      matches: [{path: {exact: /a/b}}]
      backends: [{host: "h:1"}]
    - name: post-a
      matches: [{path: {pathPrefix: /a}, method: POST}]
      backends: [{host: "h:1"}]
    - name: header-a
      matches: [{path: {pathPrefix: /a}, headers: [{name: X-Env, value: {exact: canary}}]}]
      backends: [{host: "h:1"}]
    - name: query-a
      matches: [{path: {pathPrefix: /a}, query: [{name: v, value: {regex: "[0-9]+"}}]}]
      backends: [{host: "h:1"}]
"#,
        );
        assert_eq!(pick(&rt, "GET", "/a/b", &[]).as_deref(), Some("exact"));
        assert_eq!(
            pick(&rt, "GET", "/a/b/c", &[]).as_deref(),
            Some("prefix-ab")
        );
        assert_eq!(pick(&rt, "GET", "/a/x", &[]).as_deref(), Some("prefix-a"));
        assert_eq!(pick(&rt, "GET", "/ab", &[]).as_deref(), Some("root"));
        assert_eq!(pick(&rt, "POST", "/a/x", &[]).as_deref(), Some("post-a"));
        assert_eq!(
            pick(&rt, "GET", "/a/x", &[("x-env", "canary")]).as_deref(),
            Some("header-a")
        );
        assert_eq!(
            pick(&rt, "GET", "/a/x?v=12", &[]).as_deref(),
            Some("query-a")
        );
        assert_eq!(
            pick(&rt, "GET", "/a/x?v=no", &[]).as_deref(),
            Some("prefix-a")
        );
    }

    #[test]
    fn hostnames_prefer_exact_then_wildcard() {
        let rt = runtime(
            r#"
binds:
- port: 1
  listeners:
  - routes:
    - name: any
      backends: [{host: "h:1"}]
    - name: wild
      hostnames: ["*.example.com"]
      backends: [{host: "h:1"}]
    - name: exact
      hostnames: [api.example.com]
      matches: [{path: {pathPrefix: /v1}}]
      backends: [{host: "h:1"}]
"#,
        );
        assert_eq!(
            pick(&rt, "GET", "/v1/x", &[("host", "API.example.com:8080")]).as_deref(),
            Some("exact")
        );
        assert_eq!(
            pick(&rt, "GET", "/other", &[("host", "api.example.com")]).as_deref(),
            Some("wild")
        );
        assert_eq!(
            pick(&rt, "GET", "/v1", &[("host", "x.example.com")]).as_deref(),
            Some("wild")
        );
        assert_eq!(
            pick(&rt, "GET", "/v1", &[("host", "example.org")]).as_deref(),
            Some("any")
        );
        assert_eq!(
            pick(
                &rt,
                "GET",
                "http://api.example.com/v1",
                &[("host", "example.org")]
            )
            .as_deref(),
            Some("exact")
        );
    }

    #[test]
    fn no_match_is_none() {
        let rt = runtime(
            "binds:\n- port: 1\n  listeners:\n  - routes:\n    - matches: [{path: {exact: /only}}]\n      backends: [{host: 'h:1'}]\n",
        );
        assert_eq!(pick(&rt, "GET", "/other", &[]), None);
    }
}
