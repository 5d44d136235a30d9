//! Request rewrites: `urlRewrite` and the header modifiers, and the `Location` of a
//! `requestRedirect` (the same path and authority rewrites, sent back to the client).

use http::uri::{Authority, PathAndQuery, Uri};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use tollgate_shared::config::model::{
    AuthorityRewrite, HeaderModifier, PathMatch, PathRewrite, RequestRedirect,
};

use crate::http::error::ProxyError;

/// The new path-and-query after a rewrite, or `None` when nothing changes.
pub fn rewrite_path(rule: &PathRewrite, matched: &PathMatch, uri: &Uri) -> Option<PathAndQuery> {
    let path = uri.path();
    let new_path = match rule {
        PathRewrite::Full(full) => full.clone(),
        PathRewrite::Prefix(replacement) => {
            let PathMatch::PathPrefix(prefix) = matched else {
                return None;
            };
            let rest = if prefix == "/" {
                path
            } else {
                path.get(prefix.len()..).unwrap_or("")
            };
            let joined = format!("{}{}", replacement.trim_end_matches('/'), rest);
            if joined.is_empty() {
                "/".to_string()
            } else if joined.starts_with('/') {
                joined
            } else {
                format!("/{joined}")
            }
        }
    };
    let with_query = match uri.query() {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    };
    with_query.parse().ok()
}

/// The authority the client addressed: `Host`, or the URI's (HTTP/2).
pub fn client_authority(uri: &Uri, headers: &HeaderMap) -> Option<Authority> {
    headers
        .get(header::HOST)
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
        .or_else(|| uri.authority().cloned())
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

/// `host[:port]`, leaving out `scheme`'s default port.
fn join(host: &str, port: Option<u16>, scheme: &str) -> String {
    match port {
        Some(p) if p != default_port(scheme) => format!("{host}:{p}"),
        _ => host.to_string(),
    }
}

/// The `Host` a `urlRewrite.authority` sends upstream over `scheme`, or `None` to keep the
/// client's (`none`; `auto` is decided with the backend).
pub fn rewrite_authority(
    rule: &AuthorityRewrite,
    client: Option<&Authority>,
    scheme: &str,
) -> Option<String> {
    match rule {
        AuthorityRewrite::Full(full) => Some(full.clone()),
        AuthorityRewrite::Host(host) => Some(host.clone()),
        AuthorityRewrite::Port(port) => client.map(|c| join(c.host(), Some(*port), scheme)),
        AuthorityRewrite::Auto | AuthorityRewrite::None => None,
    }
}

/// The `Location` of a redirect: the request's URL with the rule's parts replaced. Without a
/// new scheme or port, the request's port is kept.
pub fn redirect_location(
    rule: &RequestRedirect,
    matched: &PathMatch,
    uri: &Uri,
    headers: &HeaderMap,
    tls: bool,
) -> Result<HeaderValue, ProxyError> {
    let scheme = rule
        .scheme
        .as_deref()
        .unwrap_or(if tls { "https" } else { "http" });
    let client = client_authority(uri, headers)
        .ok_or_else(|| ProxyError::BadRequest("the request names no host to redirect".into()))?;
    let kept_port = rule.scheme.is_none().then(|| client.port_u16()).flatten();
    let authority = match &rule.authority {
        Some(AuthorityRewrite::Full(full)) => full.clone(),
        Some(AuthorityRewrite::Host(host)) => join(host, kept_port, scheme),
        Some(AuthorityRewrite::Port(port)) => join(client.host(), Some(*port), scheme),
        _ => join(client.host(), kept_port, scheme),
    };
    let path_and_query = match &rule.path {
        Some(p) => rewrite_path(p, matched, uri),
        None => None,
    };
    let pq = path_and_query
        .as_ref()
        .or(uri.path_and_query())
        .map_or("/", PathAndQuery::as_str);
    HeaderValue::from_str(&format!("{scheme}://{authority}{pq}"))
        .map_err(|_| ProxyError::BadRequest("the redirect location is not a valid URL".into()))
}

/// Applies set, add and remove, in that order.
pub fn modify_headers(rule: &HeaderModifier, headers: &mut HeaderMap) {
    for (name, value) in &rule.set {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value.expose()),
        ) {
            headers.insert(n, v);
        }
    }
    for (name, value) in &rule.add {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value.expose()),
        ) {
            headers.append(n, v);
        }
    }
    for name in &rule.remove {
        headers.remove(name.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(rule: PathRewrite, prefix: &str, uri: &str) -> String {
        let m = PathMatch::PathPrefix(prefix.into());
        rewrite_path(&rule, &m, &uri.parse().unwrap())
            .unwrap()
            .to_string()
    }

    #[test]
    fn prefix_rewrites_keep_the_rest_and_query() {
        assert_eq!(
            rw(
                PathRewrite::Prefix("".into()),
                "/failover/ai",
                "/failover/ai/v1/chat/completions?x=1"
            ),
            "/v1/chat/completions?x=1"
        );
        assert_eq!(
            rw(
                PathRewrite::Prefix("".into()),
                "/failover/ai",
                "/failover/ai"
            ),
            "/"
        );
        assert_eq!(rw(PathRewrite::Prefix("/api/".into()), "/", "/x"), "/api/x");
        assert_eq!(
            rw(PathRewrite::Prefix("/new".into()), "/old", "/old/a"),
            "/new/a"
        );
        assert_eq!(
            rw(PathRewrite::Full("/fixed".into()), "/old", "/old/a?q"),
            "/fixed?q"
        );
    }

    fn redirect(rule: RequestRedirect, host: &str, uri: &str, tls: bool) -> String {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        let m = PathMatch::PathPrefix("/old".into());
        let location = redirect_location(&rule, &m, &uri.parse().unwrap(), &headers, tls);
        location.unwrap().to_str().unwrap().to_string()
    }

    fn rule() -> RequestRedirect {
        RequestRedirect {
            scheme: None,
            authority: None,
            path: None,
            status: 302,
        }
    }

    #[test]
    fn redirects_replace_the_parts_they_name_and_keep_the_rest() {
        let https = RequestRedirect {
            scheme: Some("https".into()),
            ..rule()
        };
        assert_eq!(
            redirect(https.clone(), "a.test:8080", "/old/x?q=1", false),
            "https://a.test/old/x?q=1",
            "a new scheme takes its default port"
        );
        assert_eq!(
            redirect(rule(), "a.test:8080", "/p", true),
            "https://a.test:8080/p"
        );
        let host = RequestRedirect {
            authority: Some(AuthorityRewrite::Host("b.test".into())),
            path: Some(PathRewrite::Prefix("/new".into())),
            ..rule()
        };
        assert_eq!(
            redirect(host, "a.test:8080", "/old/x?q", false),
            "http://b.test:8080/new/x?q"
        );
        let port = RequestRedirect {
            authority: Some(AuthorityRewrite::Port(443)),
            ..https
        };
        assert_eq!(redirect(port, "a.test", "/", false), "https://a.test/");
        let full = RequestRedirect {
            authority: Some(AuthorityRewrite::Full("c.test:9".into())),
            path: Some(PathRewrite::Full("/f".into())),
            ..rule()
        };
        assert_eq!(redirect(full, "a.test", "/old", false), "http://c.test:9/f");
    }

    #[test]
    fn authority_rewrites_name_the_host_sent_upstream() {
        let client: Authority = "a.test:8080".parse().unwrap();
        let at = |rule| rewrite_authority(&rule, Some(&client), "http");
        assert_eq!(at(AuthorityRewrite::Full("x:1".into())).unwrap(), "x:1");
        assert_eq!(
            at(AuthorityRewrite::Host("b.test".into())).unwrap(),
            "b.test"
        );
        assert_eq!(at(AuthorityRewrite::Port(9090)).unwrap(), "a.test:9090");
        assert_eq!(at(AuthorityRewrite::Port(80)).unwrap(), "a.test");
        assert_eq!(at(AuthorityRewrite::None), None);
        assert_eq!(at(AuthorityRewrite::Auto), None);
    }
}
