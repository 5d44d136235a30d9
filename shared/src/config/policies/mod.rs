//! Route policies, one file per policy (raw type, validation, model, proto), and the one rule
//! for how policies attached at different levels combine.
//!
//! # Attachment and merging
//!
//! A policy can be attached at three levels, as in agentgateway: the listener (agentgateway's
//! `listeners[].policies` / `frontendPolicies`; not accepted yet), the route (`policies`) and
//! the backend (an `ai` provider's `policies`, or its inline `backendAuth` and `routes`). A
//! request sees, for each policy, the value of the most specific level that sets it: backend
//! over route over listener. The winner applies whole: fields are never merged across levels
//! (a backend's `backendAuth` replaces the route's; a backend `retry` without `backoff` does not
//! inherit the route's backoff). [`Policies::effective`] is that rule; new policies follow it by
//! being a field of [`Policies`].
//!
//! # Adding a policy
//!
//! One file here with the raw type, a `Validator` method, the model type (with `///` docs) and
//! `From<&Model> for pb::X` / `TryFrom<pb::X> for Model` (invariants in the model's
//! constructor, used by both); a message in `config.proto`; a field in [`RawPolicies`] and
//! [`Policies`] (and their proto conversions and [`Policies::effective`] below); the field set
//! in `examples/kitchen-sink.yaml`; one pipeline phase in the data plane.

mod a2a;
mod ai;
mod api_key;
mod authorization;
mod backend_auth;
mod backend_tls;
mod basic_auth;
mod cloud_auth;
mod cors;
mod credential;
mod direct_response;
mod header_modifier;
mod health;
mod jwt_auth;
mod mcp_authentication;
mod rate_limit;
mod request_mirror;
mod request_redirect;
mod retry;
mod timeout;
mod url_rewrite;

use serde::{Deserialize, Serialize};

pub use a2a::RawA2a;
pub use ai::{AiPolicy, PromptMessage, Prompts, RawAiPolicy, RawRouteType, RouteType, RouteTypes};
pub use api_key::{ApiKey, ApiKeyAuth, ApiKeyCredential, RawApiKeyAuth};
pub use authorization::{RawRuleSet, Rule, RuleSet};
pub use backend_auth::{AwsAuth, AwsKeys, BackendAuth, RawBackendAuth, Secret};
pub use backend_tls::{BackendTls, RawBackendTls, Verification};
pub use basic_auth::{BasicAuth, RawBasicAuth};
pub use cloud_auth::{AzureAuth, GcpAuth};
pub use cors::{Cors, RawCors};
pub use credential::{AuthMode, CredentialLocation};
pub use direct_response::{DirectResponse, RawDirectResponse};
pub(crate) use header_modifier::shown_headers;
pub use header_modifier::{HeaderModifier, RawHeaderModifier, RawHeaders};
pub use health::{Eviction, HealthPolicy, RawHealth};
pub use jwt_auth::{Jwks, JwtAuth, JwtMode, JwtProvider, RawJwtAuth};
pub use mcp_authentication::{McpAuthentication, McpIdp, RawMcpAuthentication};
pub use rate_limit::{BucketKeyExpr, RateLimit, RateLimitKind, RawRateLimit};
pub use request_mirror::{RawRequestMirror, RequestMirror};
pub use request_redirect::{RawRequestRedirect, RequestRedirect};
pub use retry::{RawRetry, Retry};
pub use timeout::{RawTimeout, Timeout};
pub use url_rewrite::{AuthorityRewrite, PathRewrite, RawUrlRewrite, UrlRewrite};

use super::path::YamlPath;
use super::raw::Lenient;
use super::validate::Validator;
use crate::convert::{self, InvalidSnapshot};
use crate::proto::v1 as pb;

/// Route policies. Each is decoded on its own so every bad one is reported.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPolicies {
    pub cors: Option<Lenient<RawCors>>,
    pub backend_auth: Option<Lenient<RawBackendAuth>>,
    pub local_rate_limit: Option<Vec<Lenient<RawRateLimit>>>,
    pub retry: Option<Lenient<RawRetry>>,
    pub url_rewrite: Option<Lenient<RawUrlRewrite>>,
    pub request_header_modifier: Option<Lenient<RawHeaderModifier>>,
    pub response_header_modifier: Option<Lenient<RawHeaderModifier>>,
    pub timeout: Option<Lenient<RawTimeout>>,
    pub ai: Option<Lenient<RawAiPolicy>>,
    #[serde(rename = "backendTLS")]
    pub backend_tls: Option<Lenient<RawBackendTls>>,
    pub jwt_auth: Option<Lenient<RawJwtAuth>>,
    pub api_key: Option<Lenient<RawApiKeyAuth>>,
    pub basic_auth: Option<Lenient<RawBasicAuth>>,
    pub mcp_authentication: Option<Lenient<RawMcpAuthentication>>,
    pub authorization: Option<Lenient<RawRuleSet>>,
    pub mcp_authorization: Option<Lenient<RawRuleSet>>,
    pub direct_response: Option<Lenient<RawDirectResponse>>,
    pub request_redirect: Option<Lenient<RawRequestRedirect>>,
    pub request_mirror: Option<Lenient<RawRequestMirror>>,
    pub a2a: Option<Lenient<RawA2a>>,
}

/// `policies`: what applies to the requests of a route (or, for some, of a backend). `None`
/// (or an empty list) means "not set at this level"; see the module doc for which level wins.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policies {
    /// `cors`: preflights answered, CORS headers added.
    pub cors: Option<Cors>,
    /// `backendAuth`: the credential sent upstream.
    pub backend_auth: Option<BackendAuth>,
    /// `localRateLimit`: every bucket must have a token (one list, replaced whole).
    pub local_rate_limit: Vec<RateLimit>,
    /// `retry`: attempts and the statuses that are retried.
    pub retry: Option<Retry>,
    /// `urlRewrite`: the path sent upstream.
    pub url_rewrite: Option<UrlRewrite>,
    /// `requestHeaderModifier`: headers changed on the request sent upstream.
    pub request_header_modifier: Option<HeaderModifier>,
    /// `responseHeaderModifier`: headers changed on the response sent back.
    pub response_header_modifier: Option<HeaderModifier>,
    /// `timeout`: request and per-attempt bounds.
    pub timeout: Option<Timeout>,
    /// `ai`: how `ai` backends read and edit requests (levels combine part by part).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ai: Option<AiPolicy>,
    /// `backendTLS`: how connections to the backend are secured.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(rename = "backendTLS")]
    pub backend_tls: Option<BackendTls>,
    /// `jwtAuth`: the client's identity from a JWT (route level only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_auth: Option<JwtAuth>,
    /// `apiKey`: the client's identity from a key it presents (route level only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyAuth>,
    /// `basicAuth`: the client's identity from htpasswd credentials (route level only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// `mcpAuthentication`: MCP's OAuth flow and its token check (route level only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_authentication: Option<McpAuthentication>,
    /// `authorization`: CEL rules a request must pass (route level only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<RuleSet>,
    /// `mcpAuthorization`: CEL rules over the MCP tool, prompt or resource (route level only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_authorization: Option<RuleSet>,
    /// `directResponse`: the gateway answers the route itself (route level only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<DirectResponse>,
    /// `requestRedirect`: the gateway answers with a redirect (route level only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<RequestRedirect>,
    /// `requestMirror`: a share of requests copied to another host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirror>,
    /// `a2a: {}`: the route carries the agent-to-agent protocol (route level only).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub a2a: bool,
}

impl Policies {
    /// The policies in force where every level of `levels` applies, least specific first
    /// (listener, route, backend): per policy, the last level that sets it, whole.
    pub fn effective(levels: &[&Policies]) -> Policies {
        fn last<T: Clone>(
            levels: &[&Policies],
            policy: impl Fn(&Policies) -> Option<&T>,
        ) -> Option<T> {
            levels.iter().rev().find_map(|p| policy(p)).cloned()
        }
        Policies {
            cors: last(levels, |p| p.cors.as_ref()),
            backend_auth: last(levels, |p| p.backend_auth.as_ref()),
            local_rate_limit: last(levels, |p| {
                Some(&p.local_rate_limit).filter(|l| !l.is_empty())
            })
            .unwrap_or_default(),
            retry: last(levels, |p| p.retry.as_ref()),
            url_rewrite: last(levels, |p| p.url_rewrite.as_ref()),
            request_header_modifier: last(levels, |p| p.request_header_modifier.as_ref()),
            response_header_modifier: last(levels, |p| p.response_header_modifier.as_ref()),
            timeout: last(levels, |p| p.timeout.as_ref()),
            ai: AiPolicy::effective(levels.iter().filter_map(|p| p.ai.as_ref())),
            backend_tls: last(levels, |p| p.backend_tls.as_ref()),
            jwt_auth: last(levels, |p| p.jwt_auth.as_ref()),
            api_key: last(levels, |p| p.api_key.as_ref()),
            basic_auth: last(levels, |p| p.basic_auth.as_ref()),
            mcp_authentication: last(levels, |p| p.mcp_authentication.as_ref()),
            authorization: last(levels, |p| p.authorization.as_ref()),
            mcp_authorization: last(levels, |p| p.mcp_authorization.as_ref()),
            direct_response: last(levels, |p| p.direct_response.as_ref()),
            request_redirect: last(levels, |p| p.request_redirect.as_ref()),
            request_mirror: last(levels, |p| p.request_mirror.as_ref()),
            a2a: levels.iter().any(|p| p.a2a),
        }
    }
}

impl Validator<'_> {
    pub fn policies(&mut self, raw: &RawPolicies, path: &YamlPath) -> Policies {
        let local_rate_limit = match &raw.local_rate_limit {
            Some(limits) => self.list(limits, path, "localRateLimit", |v, l, _, p| {
                v.rate_limit(l, p)
            }),
            None => Vec::new(),
        };
        if raw.jwt_auth.is_some() && raw.mcp_authentication.is_some() {
            self.error(
                &path.key("mcpAuthentication"),
                "use `jwtAuth` or `mcpAuthentication` on a route, not both (both read the same token)",
            );
        }
        Policies {
            cors: self.section(raw.cors.as_ref(), path, "cors", Self::cors),
            backend_auth: self.section(
                raw.backend_auth.as_ref(),
                path,
                "backendAuth",
                Self::backend_auth,
            ),
            local_rate_limit,
            retry: self.section(raw.retry.as_ref(), path, "retry", Self::retry),
            url_rewrite: self.section(
                raw.url_rewrite.as_ref(),
                path,
                "urlRewrite",
                Self::url_rewrite,
            ),
            request_header_modifier: self.section(
                raw.request_header_modifier.as_ref(),
                path,
                "requestHeaderModifier",
                Self::header_modifier,
            ),
            response_header_modifier: self.section(
                raw.response_header_modifier.as_ref(),
                path,
                "responseHeaderModifier",
                Self::header_modifier,
            ),
            timeout: self.section(raw.timeout.as_ref(), path, "timeout", Self::timeout),
            ai: self.section(raw.ai.as_ref(), path, "ai", Self::ai_policy),
            backend_tls: self.section(
                raw.backend_tls.as_ref(),
                path,
                "backendTLS",
                Self::backend_tls,
            ),
            jwt_auth: self.section(raw.jwt_auth.as_ref(), path, "jwtAuth", Self::jwt_auth),
            api_key: self.section(raw.api_key.as_ref(), path, "apiKey", Self::api_key_auth),
            basic_auth: self.section(raw.basic_auth.as_ref(), path, "basicAuth", Self::basic_auth),
            mcp_authentication: self.section(
                raw.mcp_authentication.as_ref(),
                path,
                "mcpAuthentication",
                Self::mcp_authentication,
            ),
            authorization: self.section(
                raw.authorization.as_ref(),
                path,
                "authorization",
                Self::rule_set,
            ),
            mcp_authorization: self.section(
                raw.mcp_authorization.as_ref(),
                path,
                "mcpAuthorization",
                Self::rule_set,
            ),
            direct_response: self.section(
                raw.direct_response.as_ref(),
                path,
                "directResponse",
                Self::direct_response,
            ),
            request_redirect: self.section(
                raw.request_redirect.as_ref(),
                path,
                "requestRedirect",
                Self::request_redirect,
            ),
            request_mirror: self.section(
                raw.request_mirror.as_ref(),
                path,
                "requestMirror",
                Self::request_mirror,
            ),
            a2a: self
                .section(raw.a2a.as_ref(), path, "a2a", Self::a2a)
                .is_some(),
        }
    }
}

impl From<&Policies> for pb::Policies {
    fn from(p: &Policies) -> Self {
        pb::Policies {
            cors: p.cors.as_ref().map(Into::into),
            backend_auth: p.backend_auth.as_ref().map(Into::into),
            local_rate_limit: p.local_rate_limit.iter().map(Into::into).collect(),
            retry: p.retry.as_ref().map(Into::into),
            url_rewrite: p.url_rewrite.as_ref().map(Into::into),
            request_header_modifier: p.request_header_modifier.as_ref().map(Into::into),
            response_header_modifier: p.response_header_modifier.as_ref().map(Into::into),
            timeout: p.timeout.as_ref().map(Into::into),
            ai: p.ai.as_ref().map(Into::into),
            backend_tls: p.backend_tls.as_ref().map(Into::into),
            jwt_auth: p.jwt_auth.as_ref().map(Into::into),
            api_key: p.api_key.as_ref().map(Into::into),
            basic_auth: p.basic_auth.as_ref().map(Into::into),
            mcp_authentication: p.mcp_authentication.as_ref().map(Into::into),
            authorization: p.authorization.as_ref().map(Into::into),
            mcp_authorization: p.mcp_authorization.as_ref().map(Into::into),
            direct_response: p.direct_response.as_ref().map(Into::into),
            request_redirect: p.request_redirect.as_ref().map(Into::into),
            request_mirror: p.request_mirror.as_ref().map(Into::into),
            a2a: p.a2a,
        }
    }
}

impl TryFrom<pb::Policies> for Policies {
    type Error = InvalidSnapshot;

    fn try_from(p: pb::Policies) -> convert::Result<Policies> {
        Ok(Policies {
            cors: p.cors.map(Into::into),
            backend_auth: convert::optional(p.backend_auth, "backendAuth")?,
            local_rate_limit: convert::each(p.local_rate_limit, "localRateLimit")?,
            retry: convert::optional(p.retry, "retry")?,
            url_rewrite: convert::optional(p.url_rewrite, "urlRewrite")?,
            request_header_modifier: p.request_header_modifier.map(Into::into),
            response_header_modifier: p.response_header_modifier.map(Into::into),
            timeout: p.timeout.map(Into::into),
            ai: convert::optional(p.ai, "ai")?,
            backend_tls: convert::optional(p.backend_tls, "backendTLS")?,
            jwt_auth: convert::optional(p.jwt_auth, "jwtAuth")?,
            api_key: convert::optional(p.api_key, "apiKey")?,
            basic_auth: convert::optional(p.basic_auth, "basicAuth")?,
            mcp_authentication: convert::optional(p.mcp_authentication, "mcpAuthentication")?,
            authorization: convert::optional(p.authorization, "authorization")?,
            mcp_authorization: convert::optional(p.mcp_authorization, "mcpAuthorization")?,
            direct_response: convert::optional(p.direct_response, "directResponse")?,
            request_redirect: convert::optional(p.request_redirect, "requestRedirect")?,
            request_mirror: convert::optional(p.request_mirror, "requestMirror")?,
            a2a: p.a2a,
        })
    }
}
