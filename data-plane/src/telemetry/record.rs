//! One request as the telemetry sees it: filled in phase by phase (route, LLM usage, MCP
//! method, upstream time), read once when the response ends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, Uri, Version};
use tollgate_shared::config::model::CredentialLocation;
use tollgate_shared::config::redact;

use super::trace::Traced;
use crate::api_key::ApiKeyIdentity;
use crate::jwt::{self, Claims};
use crate::tls::TlsSession;

/// What an LLM exchange learned, set when its response ends.
#[derive(Debug, Clone, Default)]
pub struct LlmFacts {
    pub provider: &'static str,
    pub request_model: String,
    pub response_model: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub streaming: bool,
    /// The request's messages (raw JSON, a slice of the body), kept only when a CEL field may
    /// read `llm.prompt`.
    pub prompt: Option<Bytes>,
    /// Request parameters for the `gen_ai.request.*` span attributes.
    pub temperature: Option<f64>,
    pub max_tokens: Option<u64>,
    /// CEL's `llm.params`: the request's sampling parameters, kept like `prompt`.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// CEL's `llm.completion`: the answer's texts (one per choice or text block), gathered
    /// only when kept like `prompt` (`Some`).
    pub completion: Option<Vec<String>>,
}

/// What an MCP request was, set when the gateway routes it.
#[derive(Debug, Clone, Default)]
pub struct McpFacts {
    pub method: String,
    pub resource_type: &'static str,
    pub target: Option<String>,
    pub resource: Option<String>,
    pub session: Option<String>,
}

/// A verified client certificate (HTTPS listeners with `tls.root`), as CEL sees it:
/// `source.subject`, `source.issuer`, `source.subjectAltNames`. Requests carry it as an
/// extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub subject: String,
    pub issuer: String,
    pub subject_alt_names: Vec<String>,
}

/// The TCP peer of a connection whose PROXY header named another client; requests carry it
/// as an extension.
#[derive(Debug, Clone, Copy)]
pub struct RawPeer(pub SocketAddr);

pub struct RequestRecord {
    pub start: SystemTime,
    pub started: Instant,
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub host: Option<String>,
    /// Copied only when a CEL expression of the config may read them.
    pub headers: Option<HeaderMap>,
    /// The client: the TCP peer, or the address a PROXY header named.
    pub peer: SocketAddr,
    /// The TCP peer when a PROXY header named another client (CEL's `source.rawAddress`).
    pub raw_peer: Option<SocketAddr>,
    pub client_identity: Option<Arc<ClientIdentity>>,
    pub llm: OnceLock<LlmFacts>,
    pub mcp: OnceLock<McpFacts>,
    /// An `a2a` route's request: a call's JSON-RPC method, `None` for an agent card.
    pub a2a: OnceLock<Option<String>>,
    /// The caller's validated JWT claims (CEL's `jwt`), set by the `jwtAuth` phase.
    pub jwt: OnceLock<Arc<Claims>>,
    /// The caller's API key (CEL's `apiKey`), set by the `apiKey` phase.
    pub api_key: OnceLock<Arc<ApiKeyIdentity>>,
    /// The caller's htpasswd username (CEL's `basicAuth.username`), set by the `basicAuth`
    /// phase.
    pub basic_auth: OnceLock<String>,
    upstream_nanos: AtomicU64,
    attempts: AtomicU32,
    /// The server span, when this request is traced.
    pub trace: Option<Traced>,
}

/// Where the config's routes read client credentials (header and query parameter names the
/// name-based redaction would not recognise, such as `x-client-id`): the record keeps their
/// values redacted, so no CEL field, label or log line can show them.
#[derive(Debug, Default)]
pub struct CredentialNames {
    pub headers: Vec<http::HeaderName>,
    pub params: Vec<String>,
}

impl CredentialNames {
    /// The names of every location in `locations`.
    pub fn of<'a>(locations: impl IntoIterator<Item = &'a CredentialLocation>) -> CredentialNames {
        let mut names = CredentialNames::default();
        for location in locations {
            match location {
                CredentialLocation::Header { name, .. } => {
                    if let Ok(name) = http::HeaderName::from_bytes(name.as_bytes())
                        && !names.headers.contains(&name)
                    {
                        names.headers.push(name);
                    }
                }
                CredentialLocation::QueryParameter(name) => {
                    if !names.params.contains(name) {
                        names.params.push(name.clone());
                    }
                }
                // `cookie` is redacted whole, by its name.
                CredentialLocation::Cookie(_) => {}
            }
        }
        names
    }

    fn headers(&self, headers: &HeaderMap) -> HeaderMap {
        let mut kept = headers.clone();
        for name in &self.headers {
            if kept.contains_key(name) {
                kept.insert(name, http::HeaderValue::from_static(redact::REDACTED));
            }
        }
        kept
    }

    fn uri(&self, uri: &Uri) -> Uri {
        let Some(query) = uri.query() else {
            return uri.clone();
        };
        // Compared decoded, as the credential phases read them (`?%6B=` is `?k=`).
        let named = |pair: &str| {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            self.params.contains(&decoded(name))
        };
        if !query.split('&').any(named) {
            return uri.clone();
        }
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                // `<redacted>`, percent-encoded: a URI cannot hold `<`.
                Some((name, _)) if named(pair) => format!("{name}=%3Credacted%3E"),
                _ => pair.to_string(),
            })
            .collect();
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = format!("{}?{}", uri.path(), query.join("&")).parse().ok();
        Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
    }
}

/// A query parameter's name or value, percent- and `+`-decoded.
pub fn decoded(text: &str) -> String {
    form_urlencoded::parse(format!("{text}=").as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

impl RequestRecord {
    pub fn new<B>(
        req: &http::Request<B>,
        peer: SocketAddr,
        started: Instant,
        keep_headers: bool,
        credentials: &CredentialNames,
        trace: Option<Traced>,
    ) -> RequestRecord {
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            });
        RequestRecord {
            start: SystemTime::now(),
            started,
            method: req.method().clone(),
            uri: credentials.uri(req.uri()),
            version: req.version(),
            host,
            headers: keep_headers.then(|| credentials.headers(req.headers())),
            peer,
            raw_peer: req.extensions().get::<RawPeer>().map(|r| r.0),
            client_identity: req
                .extensions()
                .get::<TlsSession>()
                .and_then(|s| s.identity.clone()),
            llm: OnceLock::new(),
            mcp: OnceLock::new(),
            a2a: OnceLock::new(),
            jwt: OnceLock::new(),
            api_key: OnceLock::new(),
            basic_auth: OnceLock::new(),
            upstream_nanos: AtomicU64::new(0),
            attempts: AtomicU32::new(0),
            trace,
        }
    }

    /// Counts one upstream attempt that took `took` to answer.
    pub fn add_upstream(&self, took: Duration) {
        self.upstream_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// The caller's identity, when it has one: the issuer and subject of its JWT, else
    /// `apiKey:<short digest>` of its key, else `basic:<username>`.
    pub fn identity(&self) -> Option<String> {
        if let Some(claims) = self.jwt.get() {
            return Some(jwt::identity(claims));
        }
        if let Some(key) = self.api_key.get() {
            return Some(format!("apiKey:{}", key.id));
        }
        self.basic_auth.get().map(|user| format!("basic:{user}"))
    }

    pub fn upstream_time(&self) -> Duration {
        Duration::from_nanos(self.upstream_nanos.load(Ordering::Relaxed))
    }

    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_credential_locations_are_redacted_in_the_record() {
        let names = CredentialNames::of([
            &CredentialLocation::Header {
                name: "x-client-id".into(),
                prefix: None,
            },
            &CredentialLocation::QueryParameter("k".into()),
        ]);
        let req = http::Request::builder()
            .uri("/p?a=1&k=opaque123&b=2&%6B=opaque456")
            .header("x-client-id", "opaque123")
            .header("x-other", "v")
            .body(())
            .unwrap();
        let peer = "127.0.0.1:1".parse().unwrap();
        let record = RequestRecord::new(
            &req,
            peer,
            tokio::time::Instant::now().into_std(),
            true,
            &names,
            None,
        );
        let headers = record.headers.as_ref().unwrap();
        assert_eq!(headers["x-client-id"], redact::REDACTED);
        assert_eq!(headers["x-other"], "v");
        assert_eq!(
            record.uri.to_string(),
            "/p?a=1&k=%3Credacted%3E&b=2&%6B=%3Credacted%3E"
        );
    }
}
