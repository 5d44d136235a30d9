//! Who may use an admin server (the proxy's and the control plane's): it answers only to its
//! own names, so a rebound DNS name cannot reach it from a browser, and with a token only to
//! callers that present it.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

/// Other names an admin server answers to (the proxy's `config.adminHosts`).
pub type KnownNames = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Who may use an admin server.
pub struct AdminAccess {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// When set, `/api/` needs it as a bearer token.
    pub token: Option<String>,
    /// Names it answers to besides its IPs and `localhost`.
    pub names: KnownNames,
    /// Where those names are set, for the 403 message (`config.adminHosts`).
    pub names_hint: &'static str,
    /// Where the token is set, for the 401 message.
    pub token_hint: &'static str,
}

impl AdminAccess {
    /// A `Host` a browser can only send for this server: an IP literal of it (any IP when it
    /// listens on all of them), `localhost`, or a known name. A rebound DNS name is none of
    /// these.
    fn allows_host(&self, host: &str) -> bool {
        let name = host
            .parse::<http::uri::Authority>()
            .map(|a| {
                a.host()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string()
            })
            .unwrap_or_default()
            .to_ascii_lowercase();
        if let Ok(ip) = name.parse::<IpAddr>() {
            return ip.is_loopback() || self.addr.ip().is_unspecified() || ip == self.addr.ip();
        }
        name == "localhost" || (self.names)(&name)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        bool::from(presented.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// The Playground's policy: its own scripts and styles, calls to any route's port, never
/// framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src *; img-src 'self' data:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Middleware: refuses foreign `Host` names (403) and, with a token, `/api/` calls without it
/// (401); every answer carries the CSP and `nosniff`.
pub async fn guard(State(access): State<Arc<AdminAccess>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default()
        .to_string();
    let mut resp = if !access.allows_host(&host) {
        let msg = format!(
            "the admin server does not answer to Host `{host}`: use its address, localhost or a name in {}\n",
            access.names_hint
        );
        (StatusCode::FORBIDDEN, msg).into_response()
    } else if req.uri().path().starts_with("/api/") && !access.authorized(req.headers()) {
        let msg = format!(
            "the admin API needs the token of {} as `Authorization: Bearer <token>`\n",
            access.token_hint
        );
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            msg,
        )
            .into_response()
    } else {
        next.run(req).await
    };
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// A token: the file's first line (named `flag` in errors), else the variable `env`; `None`
/// when neither is given. An empty one is an error.
pub fn read_token(file: Option<&Path>, flag: &str, env: &str) -> anyhow::Result<Option<String>> {
    let token = match file {
        Some(path) => crate::files::read_to_string(path, crate::files::MAX_SECRET)
            .map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        None => match std::env::var(env) {
            Ok(t) => t.trim().to_string(),
            Err(_) => return Ok(None),
        },
    };
    if token.is_empty() {
        anyhow::bail!("the token ({flag} or {env}) is empty");
    }
    Ok(Some(token))
}

/// Refuses a non-loopback admin address without a token.
pub fn require_token_off_loopback(
    addr: SocketAddr,
    token: Option<&str>,
    hint: &str,
) -> anyhow::Result<()> {
    if token.is_none() && !addr.ip().is_loopback() {
        anyhow::bail!("the admin API on {addr} is not loopback-only: give it a token with {hint}");
    }
    Ok(())
}
