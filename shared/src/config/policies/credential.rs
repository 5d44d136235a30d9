//! Where a client credential is read (`location` of `jwtAuth` and `apiKey`,
//! `authorizationLocation` of `basicAuth`): one spelling and one check for every policy.

use serde::{Deserialize, Serialize};

use crate::config::model::Invalid;
use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCredentialLocation {
    pub header: Option<RawCredentialHeader>,
    pub query_parameter: Option<RawNamed>,
    pub cookie: Option<RawNamed>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCredentialHeader {
    pub name: String,
    pub prefix: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNamed {
    pub name: String,
}

/// What a request without a credential gets (`apiKey`, `basicAuth`); an invalid credential
/// is always refused.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum AuthMode {
    /// A valid credential is required.
    Strict,
    /// No credential passes without identity (the default, as in agentgateway).
    #[default]
    Optional,
}

impl From<AuthMode> for pb::AuthMode {
    fn from(m: AuthMode) -> Self {
        match m {
            AuthMode::Optional => pb::AuthMode::Optional,
            AuthMode::Strict => pb::AuthMode::Strict,
        }
    }
}

impl From<pb::AuthMode> for AuthMode {
    fn from(m: pb::AuthMode) -> Self {
        match m {
            pb::AuthMode::Optional => AuthMode::Optional,
            pb::AuthMode::Strict => AuthMode::Strict,
        }
    }
}

/// Where the credential is read (and removed before the request goes upstream).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CredentialLocation {
    /// A header (lowercase name), after `prefix` (matched without regard to case).
    Header {
        name: String,
        prefix: Option<String>,
    },
    /// A query parameter.
    QueryParameter(String),
    /// A cookie.
    Cookie(String),
}

impl Default for CredentialLocation {
    /// `Authorization: Bearer <token>`.
    fn default() -> Self {
        CredentialLocation::authorization("Bearer ")
    }
}

impl CredentialLocation {
    /// `Authorization: <prefix><credential>`.
    pub fn authorization(prefix: &str) -> Self {
        CredentialLocation::Header {
            name: "authorization".to_string(),
            prefix: Some(prefix.to_string()),
        }
    }

    /// What is wrong with it, with the field named from `key` (`location`).
    pub(crate) fn problem(&self, key: &str) -> Option<Invalid> {
        match self {
            CredentialLocation::Header { name, .. }
                if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                    || name.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                Some(Invalid::at(
                    &format!("{key}.header.name"),
                    format!("`{name}` is not a valid header name"),
                ))
            }
            CredentialLocation::QueryParameter(name) | CredentialLocation::Cookie(name)
                if name.is_empty() =>
            {
                Some(Invalid::at(key, "the credential's name is empty"))
            }
            _ => None,
        }
    }
}

impl Validator<'_> {
    /// `raw` at `policy.key`, or `default` when it is not written.
    pub fn credential_location(
        &mut self,
        raw: Option<&RawCredentialLocation>,
        policy: &YamlPath,
        key: &str,
        default: CredentialLocation,
    ) -> Option<CredentialLocation> {
        let Some(raw) = raw else {
            return Some(default);
        };
        let location = match (&raw.header, &raw.query_parameter, &raw.cookie) {
            (Some(h), None, None) => CredentialLocation::Header {
                name: h.name.to_ascii_lowercase(),
                prefix: h.prefix.clone(),
            },
            (None, Some(q), None) => CredentialLocation::QueryParameter(q.name.clone()),
            (None, None, Some(c)) => CredentialLocation::Cookie(c.name.clone()),
            _ => {
                self.error(
                    &policy.key(key),
                    format!("`{key}` needs exactly one of `header`, `queryParameter` or `cookie`"),
                );
                return None;
            }
        };
        self.checked(
            location.problem(key).map_or(Ok(location), |p| Err(vec![p])),
            policy,
        )
    }
}

impl From<&CredentialLocation> for pb::CredentialLocation {
    fn from(l: &CredentialLocation) -> Self {
        use pb::credential_location::At;
        let at = match l {
            CredentialLocation::Header { name, prefix } => At::Header(pb::CredentialHeader {
                name: name.clone(),
                prefix: prefix.clone(),
            }),
            CredentialLocation::QueryParameter(name) => At::QueryParameter(name.clone()),
            CredentialLocation::Cookie(name) => At::Cookie(name.clone()),
        };
        pb::CredentialLocation { at: Some(at) }
    }
}

impl TryFrom<pb::CredentialLocation> for CredentialLocation {
    type Error = InvalidSnapshot;

    fn try_from(l: pb::CredentialLocation) -> convert::Result<CredentialLocation> {
        use pb::credential_location::At;
        Ok(match l.at {
            Some(At::Header(h)) => CredentialLocation::Header {
                name: h.name,
                prefix: h.prefix,
            },
            Some(At::QueryParameter(name)) => CredentialLocation::QueryParameter(name),
            Some(At::Cookie(name)) => CredentialLocation::Cookie(name),
            None => return convert::missing(""),
        })
    }
}
