//! Bounded HTTP calls the gateway makes on its own behalf (JWKS, OAuth metadata, OTLP/HTTP
//! export): a deadline, a size cap, redirects not followed, the web PKI roots; errors never
//! carry the URL.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, StatusCode};

/// The client for the gateway's own calls.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
}

impl Default for Fetcher {
    fn default() -> Self {
        let tls = crate::tls::backend::default_client_config();
        Fetcher {
            // Only a TLS backend that cannot start fails here: a broken build, not a case.
            client: crate::mcp::reqwest_client(tls).expect("the gateway's HTTP client builds"),
        }
    }
}

/// Why a call gave nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("request failed: {0}")]
    Request(String),
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// A whole answer.
pub struct Fetched {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

impl Fetcher {
    /// The body of a successful GET of `url`.
    pub async fn get(
        &self,
        url: &str,
        limit: usize,
        timeout: Duration,
    ) -> Result<Bytes, FetchError> {
        let fetched = self.send(self.client.get(url), limit, timeout).await?;
        if !fetched.status.is_success() {
            return Err(FetchError::Status(fetched.status));
        }
        Ok(fetched.body)
    }

    /// A POST of `body` to `url`, whatever its status.
    pub async fn post(
        &self,
        url: &str,
        content_type: Option<HeaderValue>,
        body: Bytes,
        limit: usize,
        timeout: Duration,
    ) -> Result<Fetched, FetchError> {
        let mut req = self.client.post(url).body(body);
        if let Some(ct) = content_type {
            req = req.header(http::header::CONTENT_TYPE, ct);
        }
        self.send(req, limit, timeout).await
    }

    /// `req` as built, whatever its status.
    pub async fn request(
        &self,
        req: http::Request<Bytes>,
        limit: usize,
        timeout: Duration,
    ) -> Result<Fetched, FetchError> {
        let req = reqwest::Request::try_from(req)
            .map_err(|e| FetchError::Request(e.without_url().to_string()))?;
        let builder = reqwest::RequestBuilder::from_parts(self.client.clone(), req);
        self.send(builder, limit, timeout).await
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        limit: usize,
        timeout: Duration,
    ) -> Result<Fetched, FetchError> {
        let call = async {
            let mut resp = req
                .send()
                .await
                .map_err(|e| FetchError::Request(e.without_url().to_string()))?;
            let status = resp.status();
            let content_type = resp.headers().get(http::header::CONTENT_TYPE).cloned();
            let mut body = BytesMut::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| FetchError::Request(e.without_url().to_string()))?
            {
                if body.len() + chunk.len() > limit {
                    return Err(FetchError::TooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Fetched {
                status,
                content_type,
                body: body.freeze(),
            })
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| FetchError::Timeout(timeout))?
    }
}

/// Longest an OTLP/HTTP export may take, and the largest answer read.
const OTLP_TIMEOUT: Duration = Duration::from_secs(10);
const OTLP_ANSWER_LIMIT: usize = 64 * 1024;

/// The OTLP/HTTP exporter's client: the gateway's [`Fetcher`]. The SDK's batch thread is not
/// a Tokio worker, so each export runs on the runtime this was made on.
#[derive(Clone)]
pub struct OtlpHttp {
    fetcher: Fetcher,
    runtime: tokio::runtime::Handle,
}

impl OtlpHttp {
    /// Exports through `fetcher`, on the current runtime (`None` outside one).
    pub fn new(fetcher: Fetcher) -> Option<OtlpHttp> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(OtlpHttp { fetcher, runtime })
    }
}

impl std::fmt::Debug for OtlpHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtlpHttp")
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpHttp {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let fetcher = self.fetcher.clone();
        let fetched = self
            .runtime
            .spawn(async move {
                fetcher
                    .request(request, OTLP_ANSWER_LIMIT, OTLP_TIMEOUT)
                    .await
            })
            .await??;
        let mut response = http::Response::new(fetched.body);
        *response.status_mut() = fetched.status;
        Ok(response)
    }
}

/// JSON documents fetched by URL and kept a while (successes [`KEEP_DOCUMENT`], failures
/// [`KEEP_FAILURE`]), one fetch at a time per URL: clients asking for a document (OAuth
/// metadata for MCP clients) cannot make the gateway fetch it once each. Its URLs come from
/// the config, so it holds a bounded number.
#[derive(Default)]
pub struct DocumentCache {
    entries: parking_lot::Mutex<std::collections::HashMap<String, Arc<Document>>>,
}

/// How long a fetched document is served before it is fetched again.
pub const KEEP_DOCUMENT: Duration = Duration::from_secs(300);
/// How long a failed fetch is answered as failed before it is tried again.
pub const KEEP_FAILURE: Duration = Duration::from_secs(10);

struct Document {
    fetched: tokio::sync::OnceCell<(tokio::time::Instant, Result<serde_json::Value, String>)>,
}

impl Document {
    fn stale(&self) -> bool {
        self.fetched.get().is_some_and(|(at, result)| {
            let keep = if result.is_ok() {
                KEEP_DOCUMENT
            } else {
                KEEP_FAILURE
            };
            at.elapsed() >= keep
        })
    }
}

impl DocumentCache {
    /// The JSON at `url`, from the cache or fetched now (joining a fetch under way).
    pub async fn get(
        &self,
        fetcher: &Fetcher,
        url: &str,
        limit: usize,
        timeout: Duration,
    ) -> Result<serde_json::Value, String> {
        let document = {
            let mut entries = self.entries.lock();
            match entries.get(url) {
                Some(d) if !d.stale() => d.clone(),
                _ => {
                    entries.retain(|_, d| !d.stale());
                    let fresh = Arc::new(Document {
                        fetched: tokio::sync::OnceCell::new(),
                    });
                    entries.insert(url.to_string(), fresh.clone());
                    fresh
                }
            }
        };
        let (_, result) = document
            .fetched
            .get_or_init(|| async {
                let fetched = fetcher
                    .get(url, limit, timeout)
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|body| {
                        serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
                    });
                (tokio::time::Instant::now(), fetched)
            })
            .await;
        result.clone()
    }
}
