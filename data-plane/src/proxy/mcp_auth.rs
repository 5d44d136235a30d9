//! The `mcpAuthentication` phase: the gateway answers MCP's OAuth discovery itself (RFC 9728
//! protected-resource metadata, the authorization server's metadata, Keycloak's client
//! registration) and checks every other request's token as `jwtAuth` does; a refusal points
//! the client at the metadata, so MCP clients find where to get a token.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode, Uri};
use serde_json::{Value, json};
use tollgate_shared::config::model::{McpAuthentication, McpIdp};

use super::jwt_auth;
use crate::fetch::{DocumentCache, Fetcher};
use crate::http::body::{BoxBody, full};
use crate::http::error::ProxyError;
use crate::jwt::{Claims, Verifier};

const PROTECTED_RESOURCE: &str = "/.well-known/oauth-protected-resource";
const AUTHORIZATION_SERVER: &str = "/.well-known/oauth-authorization-server";
/// The MCP revision whose authorization flow this follows.
const MCP_PROTOCOL_VERSION: &str = "2025-06-18";
/// Bounds on what the gateway fetches or forwards for discovery.
const MAX_METADATA_BYTES: usize = 1 << 20;
pub const MAX_REGISTRATION_BYTES: usize = 64 << 10;
const AUTH_SERVER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the phase decided.
pub enum Step {
    /// Discovery answered by the gateway.
    Answer(Response<BoxBody>),
    /// A client registration, proxied once its body is read.
    Register,
    /// Go on, with the caller's claims and token (none under `optional`/`permissive` without
    /// a valid token).
    Continue(Option<(Arc<Claims>, String)>),
}

/// Serves discovery or checks the token (removing it from the request).
pub async fn check(
    policy: &McpAuthentication,
    verifier: &Verifier,
    fetcher: &Fetcher,
    documents: &DocumentCache,
    tls: bool,
    uri: &mut Uri,
    headers: &mut HeaderMap,
) -> Result<Step, ProxyError> {
    let path = uri.path();
    if let Some(rest) = well_known(path, PROTECTED_RESOURCE) {
        let base = base_url(policy, tls, uri, headers);
        return Ok(Step::Answer(json_response(
            StatusCode::OK,
            &protected_resource(policy, &base, rest),
        )));
    }
    if let Some(rest) = well_known(path, AUTHORIZATION_SERVER) {
        if policy.provider == Some(McpIdp::Keycloak) && rest.ends_with("/client-registration") {
            return Ok(Step::Register);
        }
        let base = base_url(policy, tls, uri, headers);
        let metadata = authorization_server(policy, fetcher, documents, &base, path, rest).await?;
        return Ok(Step::Answer(json_response(StatusCode::OK, &metadata)));
    }
    match jwt_auth::authenticate(verifier, uri, headers).await {
        Ok(claims) => Ok(Step::Continue(claims)),
        Err(rejection) => Err(ProxyError::McpUnauthorized {
            resource_metadata: format!(
                "{}{PROTECTED_RESOURCE}{}",
                base_url(policy, tls, uri, headers),
                uri.path()
            ),
            rejection,
        }),
    }
}

/// Forwards a client registration to Keycloak, which serves it without CORS.
pub async fn register(
    policy: &McpAuthentication,
    fetcher: &Fetcher,
    method: &Method,
    content_type: Option<HeaderValue>,
    body: Bytes,
) -> Result<Response<BoxBody>, ProxyError> {
    if method != Method::POST {
        return Err(ProxyError::MethodNotAllowed("POST"));
    }
    let url = format!(
        "{}/clients-registrations/openid-connect",
        policy.issuer().trim_end_matches('/')
    );
    let answer = fetcher
        .post(
            &url,
            content_type,
            body,
            MAX_REGISTRATION_BYTES,
            AUTH_SERVER_TIMEOUT,
        )
        .await
        .map_err(|e| ProxyError::AuthServer(format!("client registration: {e}")))?;
    let mut resp = Response::new(full(answer.body));
    *resp.status_mut() = answer.status;
    if let Some(ct) = answer.content_type {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    allow_any_origin(resp.headers_mut(), "POST, OPTIONS");
    Ok(resp)
}

/// The path after `prefix` when `path` is that well-known document (RFC 8414's inserted form,
/// or older clients' appended form).
fn well_known<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if let Some(rest) = path.strip_prefix(prefix)
        && (rest.is_empty() || rest.starts_with('/'))
    {
        return Some(rest);
    }
    path.strip_suffix(prefix)
}

/// The gateway's URL as its clients see it: the configured `resource`'s origin, or the
/// request's scheme and host.
fn base_url(policy: &McpAuthentication, tls: bool, uri: &Uri, headers: &HeaderMap) -> String {
    let configured = policy
        .resource_metadata
        .get("resource")
        .and_then(Value::as_str)
        .and_then(|r| r.parse::<Uri>().ok())
        .and_then(|u| Some(format!("{}://{}", u.scheme_str()?, u.authority()?)));
    if let Some(base) = configured {
        return base;
    }
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST)?.to_str().ok())
        // A host is quoted into a challenge header: nothing but host characters.
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// RFC 9728 metadata: computed `resource` and `authorization_servers`, then the configured
/// fields (which win).
fn protected_resource(policy: &McpAuthentication, base: &str, rest: &str) -> Value {
    // With an adapter, the gateway serves the authorization server's metadata itself.
    let authorization_server = match policy.provider {
        Some(_) => format!("{base}{rest}"),
        None => policy.issuer().to_string(),
    };
    let mut metadata = json!({
        "resource": format!("{base}{rest}"),
        "authorization_servers": [authorization_server],
        "mcp_protocol_version": MCP_PROTOCOL_VERSION,
        "resource_type": "mcp-server",
    });
    for (key, value) in &policy.resource_metadata {
        metadata[key] = value.clone();
    }
    metadata
}

/// The issuer's metadata (RFC 8414, or OpenID discovery for Keycloak; cached), adapted for the
/// provider.
async fn authorization_server(
    policy: &McpAuthentication,
    fetcher: &Fetcher,
    documents: &DocumentCache,
    base: &str,
    path: &str,
    rest: &str,
) -> Result<Value, ProxyError> {
    let issuer = policy.issuer().trim_end_matches('/');
    let url = match policy.provider {
        Some(McpIdp::Keycloak) => format!("{issuer}/.well-known/openid-configuration"),
        _ => rfc8414_url(issuer),
    };
    let unavailable = |e: String| ProxyError::AuthServer(format!("metadata: {e}"));
    let mut metadata = documents
        .get(fetcher, &url, MAX_METADATA_BYTES, AUTH_SERVER_TIMEOUT)
        .await
        .map_err(unavailable)?;
    let Some(fields) = metadata.as_object_mut() else {
        return Err(unavailable("not a JSON object".to_string()));
    };
    match policy.provider {
        None => {}
        Some(McpIdp::Auth0) => {
            let Some(Value::String(endpoint)) = fields.get_mut("authorization_endpoint") else {
                return Err(unavailable("no authorization_endpoint".to_string()));
            };
            // Auth0 ignores RFC 8707's `resource`; validation made sure an audience exists.
            let audience = &policy.jwt.providers[0].audiences[0];
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("audience", audience)
                .finish();
            endpoint.push(if endpoint.contains('?') { '&' } else { '?' });
            endpoint.push_str(&query);
        }
        Some(McpIdp::Keycloak) => {
            fields.insert(
                "registration_endpoint".to_string(),
                json!(format!("{base}{path}/client-registration")),
            );
        }
    }
    if policy.provider.is_some() {
        // The gateway presents itself as the issuer whose metadata it serves.
        fields.insert("issuer".to_string(), json!(format!("{base}{rest}")));
    }
    Ok(metadata)
}

/// RFC 8414: the well-known segment goes between the issuer's host and its path.
fn rfc8414_url(issuer: &str) -> String {
    match issuer.parse::<Uri>() {
        Ok(uri) if uri.scheme().is_some() && uri.authority().is_some() => {
            let path = uri.path().trim_end_matches('/');
            format!(
                "{}://{}{AUTHORIZATION_SERVER}{path}",
                uri.scheme_str().unwrap_or("https"),
                uri.authority().map_or("", |a| a.as_str())
            )
        }
        _ => format!("{issuer}{AUTHORIZATION_SERVER}"),
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<BoxBody> {
    let mut resp = Response::new(full(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    allow_any_origin(resp.headers_mut(), "GET, OPTIONS");
    resp
}

/// Discovery documents are public: browsers' MCP clients read them from any origin.
fn allow_any_origin(headers: &mut HeaderMap, methods: &'static str) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_paths_in_both_forms() {
        assert_eq!(
            well_known(
                "/.well-known/oauth-protected-resource/stdio/mcp",
                PROTECTED_RESOURCE
            ),
            Some("/stdio/mcp")
        );
        assert_eq!(
            well_known("/.well-known/oauth-protected-resource", PROTECTED_RESOURCE),
            Some("")
        );
        assert_eq!(
            well_known("/.well-known/oauth-protected-resourcex", PROTECTED_RESOURCE),
            None
        );
        assert_eq!(
            well_known(
                "/mcp/.well-known/oauth-authorization-server",
                AUTHORIZATION_SERVER
            ),
            Some("/mcp")
        );
        assert_eq!(well_known("/stdio/mcp", PROTECTED_RESOURCE), None);
    }

    #[test]
    fn rfc8414_puts_the_well_known_segment_before_the_issuer_path() {
        assert_eq!(
            rfc8414_url("http://localhost:9000"),
            "http://localhost:9000/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            rfc8414_url("https://idp.test/realms/mcp/"),
            "https://idp.test/.well-known/oauth-authorization-server/realms/mcp"
        );
    }
}
