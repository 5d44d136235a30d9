//! `policies.mcpAuthentication`: MCP's authorization flow (OAuth protected-resource metadata,
//! RFC 9728) in front of an MCP route, with tokens checked as `jwtAuth` checks them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::credential::{CredentialLocation, RawCredentialLocation};
use super::jwt_auth::{RawJwks, RawJwtValidationOptions};
use super::{JwtAuth, JwtMode};
use crate::config::model::Invalid;
use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMcpAuthentication {
    pub mode: Option<JwtMode>,
    pub issuer: Option<String>,
    pub audiences: Option<Vec<String>>,
    pub jwks: Option<RawJwks>,
    pub provider: Option<RawMcpProvider>,
    pub resource_metadata: Option<BTreeMap<String, Value>>,
    pub authorization_location: Option<RawCredentialLocation>,
    pub jwt_validation_options: Option<RawJwtValidationOptions>,
}

/// `provider`: one adapter for an authorization server that does not follow the MCP spec.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMcpProvider {
    pub auth0: Option<RawEmpty>,
    pub keycloak: Option<RawEmpty>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEmpty {}

/// An authorization server that needs adapting (agentgateway's `provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum McpIdp {
    /// Auth0 ignores RFC 8707's `resource`: the first audience is added to its authorization
    /// endpoint.
    Auth0,
    /// Keycloak serves OpenID metadata only and no CORS on client registration: the gateway
    /// serves the metadata and proxies registration.
    Keycloak,
}

/// `mcpAuthentication`: who the MCP client is, and how it finds out where to get a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpAuthentication {
    /// The token check (one provider; `mode` strict unless set, as in agentgateway).
    pub jwt: JwtAuth,
    pub provider: Option<McpIdp>,
    /// Fields added to the protected-resource metadata, keys in snake_case (RFC 9728).
    pub resource_metadata: BTreeMap<String, Value>,
}

impl McpAuthentication {
    /// The one issuer.
    pub fn issuer(&self) -> &str {
        &self.jwt.providers[0].issuer
    }

    fn new(
        jwt: JwtAuth,
        provider: Option<McpIdp>,
        resource_metadata: BTreeMap<String, Value>,
    ) -> Result<McpAuthentication, Vec<Invalid>> {
        let mut problems = Vec::new();
        if jwt.providers.len() != 1 {
            problems.push(Invalid::at("issuer", "`mcpAuthentication` has one issuer"));
        }
        if let Some(resource) = resource_metadata.get("resource")
            && !resource
                .as_str()
                .and_then(|r| r.parse::<http::Uri>().ok())
                .is_some_and(|u| u.scheme().is_some() && u.authority().is_some())
        {
            problems.push(Invalid::at(
                "resourceMetadata.resource",
                "`resource` is the route's absolute URL",
            ));
        }
        if provider == Some(McpIdp::Auth0) && jwt.providers[0].audiences.is_empty() {
            problems.push(Invalid::at(
                "audiences",
                "the auth0 provider needs an audience (added to its authorization endpoint)",
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(McpAuthentication {
            jwt,
            provider,
            resource_metadata,
        })
    }
}

/// `scopesSupported` -> `scopes_supported`.
fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl Validator<'_> {
    pub fn mcp_authentication(
        &mut self,
        raw: &RawMcpAuthentication,
        path: &YamlPath,
    ) -> Option<McpAuthentication> {
        if raw.issuer.is_none() || raw.jwks.is_none() {
            self.error(path, "`mcpAuthentication` needs `issuer` and `jwks`");
            return None;
        }
        let provider = self.jwt_provider(
            raw.issuer.as_ref(),
            raw.audiences.as_deref(),
            raw.jwks.as_ref(),
            raw.jwt_validation_options.as_ref(),
            path,
        );
        let location = self.credential_location(
            raw.authorization_location.as_ref(),
            path,
            "authorizationLocation",
            CredentialLocation::default(),
        );
        // An unknown adapter (`okta: {}`) was reported when the section was read.
        let idp = match &raw.provider {
            None => None,
            Some(RawMcpProvider {
                auth0: Some(_),
                keycloak: None,
            }) => Some(McpIdp::Auth0),
            Some(RawMcpProvider {
                auth0: None,
                keycloak: Some(_),
            }) => Some(McpIdp::Keycloak),
            Some(RawMcpProvider {
                auth0: None,
                keycloak: None,
            }) => None,
            Some(_) => {
                self.error(
                    &path.key("provider"),
                    "`provider` names one adapter: `auth0` or `keycloak`",
                );
                return None;
            }
        };
        let (provider, location) = (provider?, location?);
        let jwt = self.checked(
            JwtAuth::new(
                raw.mode.unwrap_or(JwtMode::Strict),
                location,
                vec![provider],
            ),
            path,
        )?;
        let metadata = raw
            .resource_metadata
            .iter()
            .flatten()
            .map(|(k, v)| (snake_case(k), v.clone()))
            .collect();
        self.checked(McpAuthentication::new(jwt, idp, metadata), path)
    }
}

impl From<&McpAuthentication> for pb::McpAuthentication {
    fn from(a: &McpAuthentication) -> Self {
        pb::McpAuthentication {
            jwt: Some((&a.jwt).into()),
            provider: match a.provider {
                None => pb::McpIdp::Unspecified,
                Some(McpIdp::Auth0) => pb::McpIdp::Auth0,
                Some(McpIdp::Keycloak) => pb::McpIdp::Keycloak,
            } as i32,
            resource_metadata_json: serde_json::to_string(&a.resource_metadata).unwrap_or_default(),
        }
    }
}

impl TryFrom<pb::McpAuthentication> for McpAuthentication {
    type Error = InvalidSnapshot;

    fn try_from(a: pb::McpAuthentication) -> convert::Result<McpAuthentication> {
        let jwt = match a.jwt {
            Some(jwt) => JwtAuth::try_from(jwt).map_err(|e| e.within("jwt"))?,
            None => return convert::missing("jwt"),
        };
        let provider = match convert::enum_value::<pb::McpIdp>(a.provider, "provider")? {
            pb::McpIdp::Unspecified => None,
            pb::McpIdp::Auth0 => Some(McpIdp::Auth0),
            pb::McpIdp::Keycloak => Some(McpIdp::Keycloak),
        };
        let metadata = serde_json::from_str(&a.resource_metadata_json).map_err(|e| {
            InvalidSnapshot::Invalid {
                path: "resourceMetadata".to_string(),
                message: e.to_string(),
            }
        })?;
        McpAuthentication::new(jwt, provider, metadata).map_err(InvalidSnapshot::from)
    }
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn metadata_keys_become_snake_case() {
        assert_eq!(snake_case("scopesSupported"), "scopes_supported");
        assert_eq!(snake_case("resource"), "resource");
        assert_eq!(
            snake_case("bearer_methods_supported"),
            "bearer_methods_supported"
        );
    }
}
