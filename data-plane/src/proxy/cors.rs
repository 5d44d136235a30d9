//! Phase 2, CORS: preflights answered locally (before rate limits), headers on every response.
//!
//! Behaviour follows agentgateway/Envoy: no `Origin`, no effect; a disallowed origin gets no
//! CORS headers; an allowed one is echoed back (never `*`).

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use tollgate_shared::config::model::Cors;

use crate::http::body::{BoxBody, empty};

/// The request's `Origin` when the policy allows it.
pub fn allowed_origin<B>(cors: &Cors, req: &Request<B>) -> Option<HeaderValue> {
    let origin = req.headers().get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    cors.allow_origins
        .iter()
        .any(|a| origin_matches(a, text))
        .then(|| origin.clone())
}

/// `Some(response)` when the request is a preflight, which never reaches the upstream.
pub fn preflight<B>(cors: &Cors, req: &Request<B>) -> Option<Response<BoxBody>> {
    if req.method() != Method::OPTIONS {
        return None;
    }
    let requested_method = req.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::OK;
    let Some(origin) = allowed_origin(cors, req) else {
        return Some(resp);
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if let Some(v) = list_or_echo(
        &cors.allow_methods,
        Some(requested_method),
        cors.allow_credentials,
    ) {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    let requested_headers = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS);
    if let Some(v) = list_or_echo(
        &cors.allow_headers,
        requested_headers,
        cors.allow_credentials,
    ) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    if let Some(age) = cors.max_age {
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(age.as_secs()),
        );
    }
    common_headers(cors, h);
    Some(resp)
}

/// Adds the CORS headers of an actual (non-preflight) response.
pub fn decorate(cors: &Cors, origin: HeaderValue, headers: &mut HeaderMap) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    common_headers(cors, headers);
}

fn common_headers(cors: &Cors, h: &mut HeaderMap) {
    if cors.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if !cors.expose_headers.is_empty()
        && let Ok(v) = HeaderValue::from_str(&cors.expose_headers.join(","))
    {
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
}

/// The configured list, or with a `*` the client's requested value (`*` when none was sent).
fn list_or_echo(
    list: &[String],
    requested: Option<&HeaderValue>,
    credentials: bool,
) -> Option<HeaderValue> {
    if list.is_empty() {
        return None;
    }
    if list.iter().any(|v| v == "*") {
        return match requested {
            Some(r) => Some(r.clone()),
            None if !credentials => Some(HeaderValue::from_static("*")),
            None => None,
        };
    }
    HeaderValue::from_str(&list.join(",")).ok()
}

/// Whether `origin` is allowed by one `allowOrigins` entry (`*`, exact, or `*.` wildcard).
pub(crate) fn origin_matches(allowed: &str, origin: &str) -> bool {
    if allowed == "*" {
        return true;
    }
    let (Some(a), Some(o)) = (Origin::parse(allowed), Origin::parse(origin)) else {
        return allowed.eq_ignore_ascii_case(origin);
    };
    if a.scheme != o.scheme || a.port != o.port {
        return false;
    }
    match a.host.strip_prefix('*') {
        Some(suffix) => o.host.len() > suffix.len() && o.host.ends_with(suffix),
        None => a.host == o.host,
    }
}

/// Scheme, host and port (default ports filled in), compared case-insensitively.
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    fn parse(text: &str) -> Option<Origin> {
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !p.contains(']') => (h, p.parse().ok()?),
            _ => (
                rest,
                match scheme.as_str() {
                    "https" => 443,
                    "http" => 80,
                    _ => 0,
                },
            ),
        };
        Some(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str]) -> Cors {
        Cors {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_headers: vec!["*".into()],
            allow_methods: vec!["GET".into(), "POST".into()],
            expose_headers: vec![],
            allow_credentials: false,
            max_age: None,
        }
    }

    fn preflight_req(origin: &str) -> Request<()> {
        Request::builder()
            .method("OPTIONS")
            .uri("/")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-a")
            .body(())
            .unwrap()
    }

    #[test]
    fn origins_match_with_default_ports_and_wildcards() {
        assert!(origin_matches("https://a.com", "https://A.com:443"));
        assert!(!origin_matches("https://a.com", "http://a.com"));
        assert!(origin_matches("https://*.a.com", "https://x.a.com"));
        assert!(!origin_matches("https://*.a.com", "https://a.com"));
        assert!(origin_matches("*", "null"));
    }

    #[test]
    fn allowed_preflight_echoes() {
        let resp = preflight(&cors(&["http://ui.test"]), &preflight_req("http://ui.test")).unwrap();
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "http://ui.test");
        assert_eq!(h["access-control-allow-methods"], "GET,POST");
        assert_eq!(h["access-control-allow-headers"], "content-type,x-a");
    }

    #[test]
    fn disallowed_preflight_has_no_cors_headers() {
        let resp = preflight(
            &cors(&["http://ui.test"]),
            &preflight_req("http://evil.test"),
        )
        .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("access-control-allow-origin").is_none());
    }
}
