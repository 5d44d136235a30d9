//! MCP routes against foreign web pages (the MCP specification's transport security): a
//! browser's `Origin` must be allowed by the route's CORS policy or be the admin server's own
//! (the Playground), and a request that arrives over loopback must name a loopback host, so a
//! page on a rebound DNS name cannot drive local MCP servers.

use std::net::{IpAddr, SocketAddr};

use http::{header, request};
use tollgate_shared::config::model::Cors;

use super::cors;
use crate::http::error::ProxyError;
use crate::runtime::ListenerTable;

/// 403 unless the request's `Origin` and `Host` may reach an MCP route.
pub fn check_mcp(
    cors: Option<&Cors>,
    listener: &ListenerTable,
    parts: &request::Parts,
    peer: SocketAddr,
    admin: Option<SocketAddr>,
) -> Result<(), ProxyError> {
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let allowed = cors.is_some_and(|c| {
            c.allow_origins
                .iter()
                .any(|a| cors::origin_matches(a, origin))
        }) || admin.is_some_and(|a| is_admin_origin(a, origin));
        if !allowed {
            return Err(ProxyError::McpForbidden(format!(
                "Origin `{origin}` is not allowed (add it to the route's cors.allowOrigins)"
            )));
        }
    }
    if peer.ip().is_loopback() {
        let host = host(parts);
        let named = listener
            .hostname
            .as_ref()
            .is_some_and(|p| p.rank(&host).is_some());
        if !named && !is_loopback_name(&host) {
            return Err(ProxyError::McpForbidden(format!(
                "Host `{host}` is not a loopback name; a request over loopback must name \
                 localhost, a loopback address or the listener's hostname (DNS rebinding)"
            )));
        }
    }
    Ok(())
}

/// The request's host (the URI's authority first, then `Host`), lower-cased, without port.
fn host(parts: &request::Parts) -> String {
    let raw = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(header::HOST)?.to_str().ok())
        .unwrap_or("");
    let raw = raw.rsplit_once('@').map_or(raw, |(_, h)| h);
    let host = match raw.rsplit_once(':') {
        Some((h, port)) if !port.contains(']') => h,
        _ => raw,
    };
    host.to_ascii_lowercase()
}

fn is_loopback_name(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host.ends_with(".localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An `http` origin of the admin server: its port, and its address or (when it listens on
/// loopback or every address) a loopback name.
fn is_admin_origin(admin: SocketAddr, origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let Some((host, port)) = rest.trim_end_matches('/').rsplit_once(':') else {
        return false;
    };
    if port.parse::<u16>().ok() != Some(admin.port()) {
        return false;
    }
    let host = host.to_ascii_lowercase();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let local = admin.ip().is_loopback() || admin.ip().is_unspecified();
    bare.parse::<IpAddr>().is_ok_and(|ip| ip == admin.ip()) || (local && is_loopback_name(&host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_origin_is_its_port_on_its_address_or_a_loopback_name() {
        let admin: SocketAddr = "127.0.0.1:15000".parse().unwrap();
        assert!(is_admin_origin(admin, "http://127.0.0.1:15000"));
        assert!(is_admin_origin(admin, "http://localhost:15000"));
        assert!(!is_admin_origin(admin, "http://localhost:15001"));
        assert!(!is_admin_origin(admin, "http://evil.test:15000"));
        assert!(!is_admin_origin(admin, "https://127.0.0.1:15000"));
    }

    #[test]
    fn loopback_names() {
        for host in [
            "localhost",
            "127.0.0.1",
            "127.3.2.1",
            "[::1]",
            "app.localhost",
        ] {
            assert!(is_loopback_name(host), "{host}");
        }
        for host in ["evil.test", "10.0.0.1", "localhost.evil.test"] {
            assert!(!is_loopback_name(host), "{host}");
        }
    }
}
