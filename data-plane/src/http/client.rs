//! The pooled upstream client and one attempt through it (timeout, classification, span).

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;

use super::body::BoxBody;
use super::error::ProxyError;
use crate::telemetry::record::RequestRecord;
use crate::workers;

type Pool = Client<HttpsConnector<HttpConnector>, BoxBody>;

/// Upstream connection pools, one per connection worker and one for the other threads: a
/// request's upstream connection is driven by the thread that serves the request.
#[derive(Clone)]
pub struct HttpClient(Arc<[Pool]>);

impl HttpClient {
    /// Sends `req` on a connection of the calling thread's pool.
    pub fn request(&self, req: Request<BoxBody>) -> ResponseFuture {
        let pools = &self.0;
        pools[workers::pool_index().min(pools.len() - 1)].request(req)
    }
}

/// How long a TCP connect to an upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle pooled upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The TCP side of every upstream client: no Nagle delay, any scheme (TLS wraps it), a
/// connect timeout.
pub fn connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http
}

/// A pooled client over `connector`.
pub fn pooled(connector: HttpsConnector<HttpConnector>) -> HttpClient {
    let pool = || {
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector.clone())
    };
    HttpClient((0..workers::pools()).map(|_| pool()).collect())
}

/// A pooled HTTP/1.1 client shared by all routes: plain HTTP, or TLS (rustls, webpki roots)
/// for `https` URIs such as the default LLM provider endpoints.
pub fn client() -> HttpClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(tollgate_shared::tls::provider())
        .expect("ring supports the default TLS versions")
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector());
    pooled(https)
}

/// Per-attempt limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub backend_timeout: Option<Duration>,
    pub max_body_size: u64,
}

/// One upstream attempt to `upstream` (its address, for spans and logs) with its timeout;
/// errors are classified for status and retries, and name `backend`, not the address. Each
/// attempt is timed (for the overhead metric) and traced as a client span.
pub async fn send_to(
    client: &HttpClient,
    upstream: &str,
    backend: &str,
    mut req: Request<BoxBody>,
    limits: Limits,
    record: &RequestRecord,
) -> Result<Response<Incoming>, ProxyError> {
    let method = req.method().clone();
    let span = record
        .trace
        .as_ref()
        .map(|t| t.attempt(&method, upstream, req.headers_mut()));
    #[expect(
        clippy::disallowed_methods,
        reason = "an upstream call's duration is wall time"
    )]
    let started = std::time::Instant::now();
    let call = client.request(req);
    let result = match limits.backend_timeout {
        Some(t) => match tokio::time::timeout(t, call).await {
            Ok(r) => r.map_err(|e| classify(backend, e, limits.max_body_size)),
            Err(_) => Err(ProxyError::UpstreamTimeout {
                backend: backend.to_string(),
                timeout: t,
            }),
        },
        None => call
            .await
            .map_err(|e| classify(backend, e, limits.max_body_size)),
    };
    if let Err(e) = &result {
        tracing::warn!(upstream, error = %e, "upstream attempt failed");
    }
    record.add_upstream(started.elapsed());
    if let Some(span) = span {
        span.end(match &result {
            Ok(resp) => Ok(Some(resp.status().as_u16())),
            Err(e) => Err(e.to_string()),
        });
    }
    result
}

fn classify(backend: &str, e: hyper_util::client::legacy::Error, max_body: u64) -> ProxyError {
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return ProxyError::BodyTooLarge(max_body);
        }
        source = s.source();
    }
    if let Some(reason) = tls_failure(&e) {
        // A TLS problem is the backend's answer, not its absence: 502, not retried.
        return ProxyError::UpstreamProtocol {
            backend: backend.to_string(),
            reason,
        };
    }
    let reason = root_cause(&e);
    if e.is_connect() {
        ProxyError::UpstreamConnect {
            backend: backend.to_string(),
            reason,
        }
    } else {
        ProxyError::UpstreamProtocol {
            backend: backend.to_string(),
            reason,
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// A short, address-free description of a TLS failure in `e`'s chain, if it is one.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = rustls_error(err) {
            return Some(describe(tls));
        }
        cur = err.source();
    }
    None
}

/// The rustls error `err` is, or wraps in (nested) I/O errors, whose `source` skips it.
fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = err.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_error(inner)
}

fn describe(e: &rustls::Error) -> String {
    use rustls::AlertDescription as Alert;
    use rustls::CertificateError;
    let what = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the backend's certificate is not valid for the expected name"
            }
            CertificateError::UnknownIssuer => "the backend's certificate has an unknown issuer",
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the backend's certificate has expired"
            }
            _ => "the backend's certificate is invalid",
        },
        rustls::Error::AlertReceived(Alert::CertificateRequired | Alert::HandshakeFailure) => {
            "the backend refused the handshake (does it require a client certificate?)"
        }
        rustls::Error::AlertReceived(Alert::BadCertificate | Alert::UnknownCA) => {
            "the backend refused the gateway's client certificate"
        }
        rustls::Error::NoApplicationProtocol => "no ALPN protocol in common with the backend",
        _ => "handshake failed",
    };
    format!("TLS: {what}")
}
