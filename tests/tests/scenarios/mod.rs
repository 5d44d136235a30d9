//! Scenario tests, one module per capability.

mod a2a;
mod adversarial;
mod ai_policies;
mod auth;
mod authz;
mod cel;
mod check;
mod control_plane;
mod cp_security;
mod credentials;
mod errors;
mod frontend;
mod http_policies;
mod keys;
mod lifecycle;
mod llm;
mod llm_bedrock;
mod llm_cloud;
mod llm_routes;
mod mcp;
mod oauth;
mod observability;
mod openapi;
mod ratelimit;
mod reload;
mod routing;
mod tls;

/// A one-route config that proxies everything on `port` to `upstream`.
pub fn simple_config(port: u16, upstream: &str) -> String {
    format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: all\n      backends:\n      - host: {upstream}\n"
    )
}
