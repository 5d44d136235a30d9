//! Bounded HTTP calls the gateway makes on its own behalf (JWKS, OAuth metadata): a deadline,
//! a size cap, redirects not followed, the web PKI roots; errors never carry the URL.

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
