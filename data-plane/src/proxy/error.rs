//! Every way a request can fail in the gateway, with its one status, body and metric reason.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::body::{BoxBody, full};
use crate::ratelimit::Level;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("route not found")]
    NoRoute,
    #[error("request body is larger than the limit of {0} bytes")]
    BodyTooLarge(u64),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("no backend is available for route {0}")]
    NoBackend(String),
    #[error("upstream {authority} is unreachable: {reason}")]
    UpstreamConnect { authority: String, reason: String },
    #[error("upstream {authority} did not answer within {}", humantime::format_duration(*.timeout))]
    UpstreamTimeout {
        authority: String,
        timeout: Duration,
    },
    #[error("request did not complete within {}", humantime::format_duration(*.0))]
    RequestTimeout(Duration),
    #[error("upstream {authority} failed: {reason}")]
    UpstreamProtocol { authority: String, reason: String },
    #[error("{0} backends are not served by this build yet")]
    NotServed(&'static str),
    #[error("rate limit exceeded")]
    RateLimited(Level),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoBackend(_) | ProxyError::UpstreamConnect { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::UpstreamTimeout { .. } | ProxyError::RequestTimeout(_) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ProxyError::UpstreamProtocol { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::NotServed(_) => StatusCode::NOT_IMPLEMENTED,
            ProxyError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The `reason` label of request metrics (agentgateway's values).
    pub fn reason(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "NotFound",
            ProxyError::BodyTooLarge(_) | ProxyError::BadRequest(_) => "InvalidRequest",
            ProxyError::NoBackend(_) | ProxyError::UpstreamConnect { .. } => "NoHealthyBackend",
            ProxyError::UpstreamTimeout { .. } | ProxyError::RequestTimeout(_) => "Timeout",
            ProxyError::UpstreamProtocol { .. } => "UpstreamFailure",
            ProxyError::NotServed(_) => "Internal",
            ProxyError::RateLimited(_) => "RateLimit",
        }
    }

    /// Worth another attempt on another (or the same) upstream.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProxyError::UpstreamConnect { .. } | ProxyError::UpstreamTimeout { .. }
        )
    }

    pub fn into_response(&self) -> Response<BoxBody> {
        let mut resp = Response::new(full(Bytes::from(self.to_string())));
        *resp.status_mut() = self.status();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        if let ProxyError::RateLimited(level) = self {
            level.write_headers(resp.headers_mut());
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(level.reset_secs));
        }
        resp
    }
}
