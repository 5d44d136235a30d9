//! Phase 5, request rewrites: `urlRewrite` and the header modifiers.

use http::uri::{PathAndQuery, Uri};
use http::{HeaderMap, HeaderName, HeaderValue};
use tollgate_shared::config::model::{HeaderModifier, PathMatch, UrlRewrite};

/// The new path-and-query after a rewrite, or `None` when nothing changes.
pub fn rewrite_path(rule: &UrlRewrite, matched: &PathMatch, uri: &Uri) -> Option<PathAndQuery> {
    let path = uri.path();
    let new_path = match rule {
        UrlRewrite::Full(full) => full.clone(),
        UrlRewrite::Prefix(replacement) => {
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

    fn rw(rule: UrlRewrite, prefix: &str, uri: &str) -> String {
        let m = PathMatch::PathPrefix(prefix.into());
        rewrite_path(&rule, &m, &uri.parse().unwrap())
            .unwrap()
            .to_string()
    }

    #[test]
    fn prefix_rewrites_keep_the_rest_and_query() {
        assert_eq!(
            rw(
                UrlRewrite::Prefix("".into()),
                "/failover/ai",
                "/failover/ai/v1/chat/completions?x=1"
            ),
            "/v1/chat/completions?x=1"
        );
        assert_eq!(
            rw(
                UrlRewrite::Prefix("".into()),
                "/failover/ai",
                "/failover/ai"
            ),
            "/"
        );
        assert_eq!(rw(UrlRewrite::Prefix("/api/".into()), "/", "/x"), "/api/x");
        assert_eq!(
            rw(UrlRewrite::Prefix("/new".into()), "/old", "/old/a"),
            "/new/a"
        );
        assert_eq!(
            rw(UrlRewrite::Full("/fixed".into()), "/old", "/old/a?q"),
            "/fixed?q"
        );
    }
}
