//! Every way a request can fail in the gateway, with its one status, body and metric reason.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::body::{BoxBody, full};
use crate::api_key::ApiKeyRejection;
use crate::htpasswd::BasicRejection;
use crate::jwt::Rejection;
use crate::ratelimit::Level;
use crate::telemetry::Reason;

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
    /// `backend` names the backend (a provider, or the route of a `host` backend), never its
    /// address: error bodies go to anonymous clients.
    #[error("upstream {backend} is unreachable: {reason}")]
    UpstreamConnect { backend: String, reason: String },
    #[error("upstream {backend} did not answer within {}", humantime::format_duration(*.timeout))]
    UpstreamTimeout { backend: String, timeout: Duration },
    #[error("request did not complete within {}", humantime::format_duration(*.0))]
    RequestTimeout(Duration),
    #[error("upstream {backend} failed: {reason}")]
    UpstreamProtocol { backend: String, reason: String },
    #[error("rate limit exceeded")]
    RateLimited(Level),
    #[error("not acceptable: {0}")]
    NotAcceptable(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("method not allowed; this endpoint allows {0}")]
    MethodNotAllowed(&'static str),
    #[error(
        "MCP session `{0}` not found (it ended or belongs to another route); send `initialize` again"
    )]
    SessionNotFound(String),
    #[error("too many MCP {what}: the limit is {limit} (config.mcp.{setting}); retry later")]
    McpCapacity {
        what: &'static str,
        setting: &'static str,
        limit: u32,
    },
    #[error("MCP message is larger than the limit of {limit} bytes ({setting})")]
    McpBodyTooLarge { limit: u64, setting: &'static str },
    #[error("forbidden on an MCP route: {0}")]
    McpForbidden(String),
    #[error("this MCP session already has an open event stream")]
    StreamConflict,
    #[error("this MCP session already has {0} requests in progress; retry later")]
    SessionBusy(usize),
    /// `jwtAuth` refused the request; the text names the reason, never the token.
    #[error("unauthorized: {0}")]
    Unauthorized(Rejection),
    /// `mcpAuthentication` refused the request; the challenge names the resource metadata
    /// where the client learns which authorization server issues tokens.
    #[error("unauthorized: {rejection}")]
    McpUnauthorized {
        rejection: Rejection,
        resource_metadata: String,
    },
    /// An authorization server's metadata or client registration, which the gateway serves
    /// for MCP clients, could not be had.
    #[error("authorization server unavailable: {0}")]
    AuthServer(String),
    /// `apiKey` refused the request; the text names the reason, never the key.
    #[error("unauthorized: {0}")]
    ApiKeyRejected(ApiKeyRejection),
    /// `basicAuth` refused the request: a `Basic` challenge for `realm`.
    #[error("unauthorized: {rejection}")]
    BasicAuthRejected {
        rejection: BasicRejection,
        realm: String,
    },
    /// The bounded bcrypt pool stayed full (a flood of password checks).
    #[error("too many password checks in progress; retry later")]
    PasswordChecksBusy,
    /// `authorization` refused the request; the body names the policy, never its rules.
    #[error("forbidden: the route's {0} policy does not allow this request")]
    Forbidden(&'static str),
    /// The provider's configured key is empty (`${OPENAI_API_KEY:-}` with the variable unset):
    /// `fix` says what to set, never a value.
    #[error("provider {provider} has no API key: {fix}")]
    ProviderKeyMissing { provider: String, fix: String },
    /// A `gcp` or `azure` `backendAuth` gave no access token; `reason` names no secret.
    #[error("provider {provider} has no access token: {reason}")]
    ProviderCredentials { provider: String, reason: String },
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::BodyTooLarge(_) | ProxyError::McpBodyTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoBackend(_) | ProxyError::UpstreamConnect { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::UpstreamTimeout { .. } | ProxyError::RequestTimeout(_) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ProxyError::UpstreamProtocol { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ProxyError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProxyError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::SessionNotFound(_) => StatusCode::NOT_FOUND,
            ProxyError::McpCapacity { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::StreamConflict => StatusCode::CONFLICT,
            ProxyError::McpForbidden(_) => StatusCode::FORBIDDEN,
            ProxyError::SessionBusy(_) => StatusCode::SERVICE_UNAVAILABLE,
            // The gateway could not fetch the issuer's keys: not the token's fault.
            ProxyError::Unauthorized(Rejection::KeysUnavailable)
            | ProxyError::McpUnauthorized {
                rejection: Rejection::KeysUnavailable,
                ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Unauthorized(_)
            | ProxyError::McpUnauthorized { .. }
            | ProxyError::ApiKeyRejected(_)
            | ProxyError::BasicAuthRejected { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::Forbidden(_) => StatusCode::FORBIDDEN,
            ProxyError::AuthServer(_) => StatusCode::BAD_GATEWAY,
            ProxyError::PasswordChecksBusy
            | ProxyError::ProviderKeyMissing { .. }
            | ProxyError::ProviderCredentials { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Why the request failed, for metrics, logs and spans.
    pub fn reason(&self) -> Reason {
        match self {
            ProxyError::NoRoute => Reason::NotFound,
            ProxyError::BodyTooLarge(_)
            | ProxyError::McpBodyTooLarge { .. }
            | ProxyError::BadRequest(_)
            | ProxyError::NotAcceptable(_)
            | ProxyError::UnsupportedMediaType(_)
            | ProxyError::MethodNotAllowed(_)
            | ProxyError::SessionNotFound(_)
            | ProxyError::McpForbidden(_)
            | ProxyError::StreamConflict => Reason::InvalidRequest,
            ProxyError::McpCapacity { .. } | ProxyError::SessionBusy(_) => Reason::Overloaded,
            ProxyError::NoBackend(_)
            | ProxyError::UpstreamConnect { .. }
            | ProxyError::ProviderKeyMissing { .. }
            | ProxyError::ProviderCredentials { .. } => Reason::NoHealthyBackend,
            ProxyError::UpstreamTimeout { .. } | ProxyError::RequestTimeout(_) => Reason::Timeout,
            ProxyError::UpstreamProtocol { .. } => Reason::UpstreamFailure,
            ProxyError::RateLimited(_) => Reason::RateLimit,
            ProxyError::Unauthorized(_)
            | ProxyError::McpUnauthorized { .. }
            | ProxyError::ApiKeyRejected(_)
            | ProxyError::BasicAuthRejected { .. } => Reason::Unauthenticated,
            ProxyError::Forbidden(_) => Reason::Authorization,
            ProxyError::AuthServer(_) => Reason::UpstreamFailure,
            ProxyError::PasswordChecksBusy => Reason::Overloaded,
        }
    }

    /// Worth another attempt on another (or the same) upstream.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProxyError::UpstreamConnect { .. }
                | ProxyError::UpstreamTimeout { .. }
                | ProxyError::ProviderCredentials { .. }
        )
    }

    pub fn into_response(&self) -> Response<BoxBody> {
        let mut resp = Response::new(full(Bytes::from(self.to_string())));
        *resp.status_mut() = self.status();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        if let ProxyError::MethodNotAllowed(allow) = self {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        let challenge = match self {
            ProxyError::Unauthorized(rejection) => Some(bearer_challenge(rejection, None)),
            ProxyError::McpUnauthorized {
                rejection,
                resource_metadata,
            } => Some(bearer_challenge(rejection, Some(resource_metadata))),
            _ => None,
        };
        if let Some(challenge) = challenge {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let ProxyError::BasicAuthRejected { realm, .. } = self
            && let Ok(challenge) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
        {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let ProxyError::RateLimited(level) = self {
            level.write_headers(resp.headers_mut());
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(level.reset_secs));
        }
        resp
    }
}

/// `WWW-Authenticate: Bearer` (RFC 6750: no error code when no token was sent), with MCP's
/// `resource_metadata` (RFC 9728) when given.
fn bearer_challenge(rejection: &Rejection, resource_metadata: Option<&str>) -> HeaderValue {
    let mut params = Vec::new();
    if let Some(url) = resource_metadata {
        params.push(format!("resource_metadata=\"{url}\""));
    }
    // A token the gateway could not check (its issuer's keys are unavailable) is not invalid:
    // the client keeps it.
    if !matches!(rejection, Rejection::Missing | Rejection::KeysUnavailable) {
        params.push("error=\"invalid_token\"".to_string());
    }
    if params.is_empty() {
        return HeaderValue::from_static("Bearer");
    }
    HeaderValue::from_str(&format!("Bearer {}", params.join(", ")))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\""))
}
