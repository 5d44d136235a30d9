//! `a2a` (agent-to-agent), on `host` backends: a JSON-RPC call's method is read (its body
//! buffered for it) so the request is counted and traced as A2A, and an agent card's `url` is
//! rewritten to the address the client reached the card at, so its next calls come through the
//! gateway too. As agentgateway does.

use bytes::Bytes;
use http::{Method, Response, Uri, header, request};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::http::body::{BoxBody, full};
use crate::http::error::ProxyError;
use crate::metrics::Metrics;
use crate::runtime::CompiledRoute;
use crate::telemetry::record::RequestRecord;

/// Where agent cards are served (`agent-card.json` since A2A 0.3, `agent.json` before).
const CARD_SUFFIXES: [&str; 2] = ["/.well-known/agent-card.json", "/.well-known/agent.json"];
/// The largest agent card the gateway reads to rewrite.
const MAX_CARD: usize = 1 << 20;

/// What a request of an `a2a` route is.
#[derive(Debug, PartialEq, Eq)]
pub enum A2aRequest {
    /// A `GET` of the agent card; the agent's URL through the gateway.
    AgentCard(String),
    /// A `POST` with a JSON body: a JSON-RPC call.
    Call,
    /// Anything else, passed through as it is.
    Other,
}

/// Classifies a request; `client_uri` is the path the client asked for (before `urlRewrite`),
/// `scheme` the one it used.
pub fn classify(parts: &request::Parts, client_uri: &Uri, scheme: &str) -> A2aRequest {
    let path = client_uri.path();
    if parts.method == Method::GET {
        let Some(base) = CARD_SUFFIXES.iter().find_map(|s| path.strip_suffix(s)) else {
            return A2aRequest::Other;
        };
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| client_uri.authority().map(|a| a.as_str()))
            .unwrap_or_default();
        return A2aRequest::AgentCard(format!("{scheme}://{host}{base}"));
    }
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "application/json" || v.ends_with("+json")
        });
    if parts.method == Method::POST && json {
        A2aRequest::Call
    } else {
        A2aRequest::Other
    }
}

/// The JSON-RPC method of a call's body; `unknown` when it has none (as agentgateway).
pub fn method(body: &Bytes) -> String {
    #[derive(serde::Deserialize)]
    struct Call {
        method: String,
    }
    serde_json::from_slice::<Call>(body).map_or_else(|_| "unknown".to_string(), |c| c.method)
}

/// Counts the request and marks its record as A2A: `method` is a call's, `None` a card's.
pub fn observe(
    metrics: &Metrics,
    route: &CompiledRoute,
    record: &RequestRecord,
    method: Option<String>,
) {
    let [bind, gateway, listener, route_label] = route.labels.values();
    let shown = method.as_deref().unwrap_or("agent-card");
    let shown = metrics
        .client_labels
        .admit("a2a_method", &route.name, shown);
    metrics
        .a2a_requests
        .with_label_values(&[bind, gateway, listener, route_label, shown])
        .inc();
    let _ = record.a2a.set(method);
}

/// The scheme the client used: `https` on a TLS listener, or when the trusted proxies in
/// front (`xffNumTrustedHops` > 0) say so in `x-forwarded-proto`.
pub fn client_scheme(parts: &request::Parts, tls: bool, trusted_hops: u32) -> &'static str {
    let forwarded = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok());
    if tls || (trusted_hops > 0 && forwarded.is_some_and(|p| p.eq_ignore_ascii_case("https"))) {
        "https"
    } else {
        "http"
    }
}

/// The agent card with its `url` set to `url`; a card that is not a JSON object with a `url`
/// fails, as in agentgateway (the client would otherwise be sent around the gateway).
pub async fn rewrite_card(
    resp: Response<BoxBody>,
    url: &str,
    backend: &str,
) -> Result<Response<BoxBody>, ProxyError> {
    let fail = |reason: String| ProxyError::UpstreamProtocol {
        backend: backend.to_string(),
        reason,
    };
    let (mut parts, mut body) = resp.into_parts();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| fail(format!("reading the agent card failed: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > MAX_CARD {
                return Err(fail(format!("the agent card is over {MAX_CARD} bytes")));
            }
            bytes.extend_from_slice(&data);
        }
    }
    let mut card: Value = serde_json::from_slice(&bytes)
        .map_err(|_| fail("the agent card is not JSON".to_string()))?;
    match card.get_mut("url") {
        Some(field) => *field = Value::String(url.to_string()),
        None => return Err(fail("the agent card has no `url`".to_string())),
    }
    let text = card.to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_ENCODING);
    Ok(Response::from_parts(parts, full(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, uri: &str, headers: &[(&str, &str)]) -> request::Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn agent_cards_point_back_at_the_path_they_were_found_under() {
        for (path, url) in [
            ("/.well-known/agent.json", "http://gw:3000"),
            ("/api/.well-known/agent-card.json", "http://gw:3000/api"),
        ] {
            let p = parts(Method::GET, path, &[("host", "gw:3000")]);
            assert_eq!(
                classify(&p, &p.uri, "http"),
                A2aRequest::AgentCard(url.into())
            );
        }
        let p = parts(Method::GET, "/other", &[("host", "gw")]);
        assert_eq!(classify(&p, &p.uri, "http"), A2aRequest::Other);
    }

    #[test]
    fn json_posts_are_calls_with_their_method() {
        let p = parts(
            Method::POST,
            "/",
            &[("content-type", "application/json; charset=utf-8")],
        );
        assert_eq!(classify(&p, &p.uri, "http"), A2aRequest::Call);
        let p = parts(Method::POST, "/", &[("content-type", "text/plain")]);
        assert_eq!(classify(&p, &p.uri, "http"), A2aRequest::Other);
        let body = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"message/send"}"#);
        assert_eq!(method(&body), "message/send");
        assert_eq!(method(&Bytes::from_static(b"[]")), "unknown");
    }

    #[tokio::test]
    async fn a_card_gets_the_gateway_url_and_a_card_without_one_fails() {
        let card = r#"{"name": "hello", "url": "http://10.0.0.7:9999/"}"#;
        let mut resp = Response::new(full(card));
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, card.len().into());
        let out = rewrite_card(resp, "http://gw:3000", "b").await.unwrap();
        assert!(out.headers().get(header::CONTENT_LENGTH).is_none());
        let body = out.into_body().collect().await.unwrap().to_bytes();
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["url"], "http://gw:3000");
        assert_eq!(json["name"], "hello");
        let err = rewrite_card(Response::new(full("{}")), "u", "b")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no `url`"), "{err}");
    }
}
