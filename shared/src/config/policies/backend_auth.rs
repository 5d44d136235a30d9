//! `policies.backendAuth`: the credential sent upstream, and [`Secret`], how every credential
//! of the config is held.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use super::cloud_auth::{AzureAuth, GcpAuth, RawAzureAuth, RawGcpAuth};
use super::credential::{CredentialLocation, RawCredentialLocation};
use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot, missing};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackendAuth {
    pub key: Option<String>,
    pub passthrough: Option<RawPassthrough>,
    pub gcp: Option<RawGcpAuth>,
    pub azure: Option<RawAzureAuth>,
    pub aws: Option<RawAwsAuth>,
}

/// `backendAuth.aws`, agentgateway's spelling: explicit keys, or `{}` (with at most a region)
/// for the proxy's environment or profile file.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAwsAuth {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPassthrough {
    pub location: Option<RawCredentialLocation>,
}

/// `backendAuth`: the credential the backend gets.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BackendAuth {
    /// `key`: sent as `Authorization: Bearer <key>` (or the provider's header); shown only as
    /// its reference.
    Key(Secret),
    /// `passthrough`: the caller's token, as `jwtAuth` validated it, put at `location`
    /// (default `Authorization: Bearer`).
    Passthrough { location: CredentialLocation },
    /// `gcp`: a Google OAuth access token, as `Authorization: Bearer` (`ai` providers).
    Gcp(GcpAuth),
    /// `azure`: a Microsoft Entra access token, as `Authorization: Bearer` (`ai` providers).
    Azure(AzureAuth),
    /// `aws`: requests signed with AWS Signature Version 4 (Bedrock providers).
    Aws(AwsAuth),
}

/// `backendAuth.aws`: the credentials requests are signed with.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsAuth {
    /// Explicit keys; `None` reads them, when signing, from the proxy's environment
    /// (`AWS_ACCESS_KEY_ID`, ...) or its profile file (`AWS_SHARED_CREDENTIALS_FILE`,
    /// `~/.aws/credentials`, `AWS_PROFILE`).
    #[serde(flatten)]
    pub keys: Option<AwsKeys>,
    /// The signing region; unset, the provider's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Explicit AWS keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsKeys {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Secret>,
}

impl BackendAuth {
    /// The configured key, unless the policy passes the caller's token through.
    pub fn key(&self) -> Option<&Secret> {
        match self {
            BackendAuth::Key(key) => Some(key),
            _ => None,
        }
    }

    /// Whether the proxy fetches the credential from a token endpoint (`gcp`, `azure`).
    pub fn is_token(&self) -> bool {
        matches!(self, BackendAuth::Gcp(_) | BackendAuth::Azure(_))
    }
}

/// A credential. Only [`Secret::expose`] reveals it; everything else prints the reference.
#[derive(Clone, PartialEq)]
pub struct Secret {
    value: String,
    /// How the config wrote it (`$OPENAI_API_KEY`), when it came from the environment.
    reference: Option<String>,
}

impl Secret {
    /// A value, with the reference it was expanded from (if any).
    pub fn new(value: String, reference: Option<String>) -> Secret {
        Secret { value, reference }
    }

    /// A secret known only by its reference, until [`Secret::resolve`].
    pub fn unresolved(reference: String) -> Secret {
        Secret {
            value: String::new(),
            reference: Some(reference),
        }
    }

    /// The value itself: only for sending it upstream.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The reference as written (`$OPENAI_API_KEY`), when the value came from the environment.
    pub fn reference(&self) -> Option<&str> {
        self.reference.as_deref()
    }

    /// The environment variables the reference reads (none for a literal value).
    pub fn variables(&self) -> Vec<String> {
        self.reference
            .as_deref()
            .map(crate::config::env::variables)
            .unwrap_or_default()
    }

    /// Expands the reference from `env`; `Err` names the unset variables.
    pub fn resolve(&mut self, env: &dyn crate::config::Env) -> Result<(), Vec<String>> {
        if let Some(r) = &self.reference {
            self.value = crate::config::expand(r, env)?;
        }
        Ok(())
    }

    /// What logs and dumps show: the reference with any `:-default` redacted, or
    /// `<redacted>`.
    pub fn shown(&self) -> std::borrow::Cow<'_, str> {
        use crate::config::redact::REDACTED;
        match self.reference.as_deref() {
            None => REDACTED.into(),
            Some(r) if r.contains(":-") => redact_defaults(r).into(),
            Some(r) => r.into(),
        }
    }
}

/// `${VAR:-default}` -> `${VAR:-<redacted>}`: a default written in the file may be a key.
fn redact_defaults(reference: &str) -> String {
    let mut out = String::with_capacity(reference.len());
    let mut rest = reference;
    while let Some(start) = rest.find(":-") {
        out.push_str(&rest[..start + 2]);
        out.push_str(crate::config::redact::REDACTED);
        rest = &rest[start + 2..];
        rest = rest.find('}').map_or("", |end| &rest[end..]);
    }
    out.push_str(rest);
    out
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.shown())
    }
}

impl Validator<'_> {
    pub fn backend_auth(&mut self, raw: &RawBackendAuth, path: &YamlPath) -> Option<BackendAuth> {
        let options = [
            ("key", raw.key.is_some()),
            ("passthrough", raw.passthrough.is_some()),
            ("gcp", raw.gcp.is_some()),
            ("azure", raw.azure.is_some()),
            ("aws", raw.aws.is_some()),
        ];
        if !self.exactly_one(path, "`backendAuth`", &options) {
            return None;
        }
        if let Some(gcp) = &raw.gcp {
            return self.gcp_auth(gcp, &path.key("gcp")).map(BackendAuth::Gcp);
        }
        if let Some(azure) = &raw.azure {
            return self
                .azure_auth(azure, &path.key("azure"))
                .map(BackendAuth::Azure);
        }
        if let Some(aws) = &raw.aws {
            return self.aws_auth(aws, &path.key("aws")).map(BackendAuth::Aws);
        }
        if let Some(passthrough) = &raw.passthrough {
            let location = self.credential_location(
                passthrough.location.as_ref(),
                &path.key("passthrough"),
                "location",
                CredentialLocation::default(),
            )?;
            return Some(BackendAuth::Passthrough { location });
        }
        let key = raw.key.as_deref().unwrap_or_default();
        let kp = path.key("key");
        // `${VAR:-}` says the key may be empty: requests then get an error naming VAR.
        let may_be_empty = self
            .template(&kp)
            .is_some_and(|t| t.starts_with("${") && t.ends_with(":-}"));
        if key.is_empty() && !may_be_empty {
            self.error(
                &kp,
                "the key is empty (is its environment variable set to an empty value? `${VAR:-}` allows that)",
            );
        } else if http::HeaderValue::from_str(key).is_err() {
            self.error(
                &kp,
                "the key contains characters that cannot be sent in a header",
            );
        }
        Some(BackendAuth::Key(self.secret(key, &kp)))
    }
}

impl Validator<'_> {
    fn aws_auth(&mut self, raw: &RawAwsAuth, path: &YamlPath) -> Option<AwsAuth> {
        let keys = match (&raw.access_key_id, &raw.secret_access_key) {
            (Some(id), Some(secret)) => {
                let mut held = |value: &str, key: &str| {
                    let kp = path.key(key);
                    if value.is_empty() || http::HeaderValue::from_str(value).is_err() {
                        self.error(&kp, format!("`{key}` is empty or not printable ASCII"));
                    }
                    self.secret(value, &kp)
                };
                Some(AwsKeys {
                    access_key_id: held(id, "accessKeyId"),
                    secret_access_key: held(secret, "secretAccessKey"),
                    session_token: raw
                        .session_token
                        .as_deref()
                        .map(|t| held(t, "sessionToken")),
                })
            }
            (None, None) if raw.session_token.is_none() => None,
            _ => {
                self.error(
                    path,
                    "`accessKeyId` and `secretAccessKey` go together (a `sessionToken` needs both); leave all out to read the proxy's environment or profile file",
                );
                return None;
            }
        };
        if let Some(r) = &raw.region {
            self.aws_region(r, &path.key("region"));
        }
        Some(AwsAuth {
            keys,
            region: raw.region.clone(),
        })
    }

    /// An AWS region name (`us-east-1`): it becomes part of a host name.
    pub(crate) fn aws_region(&mut self, region: &str, path: &YamlPath) {
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            self.error(
                path,
                "an AWS region is lowercase letters, digits and `-` (`us-east-1`)",
            );
        }
    }
}

impl From<&Secret> for pb::Secret {
    fn from(s: &Secret) -> Self {
        use pb::secret::Kind;
        pb::Secret {
            kind: Some(match s.reference() {
                Some(r) => Kind::Reference(r.to_string()),
                None => Kind::Value(s.expose().to_string()),
            }),
        }
    }
}

impl TryFrom<pb::Secret> for Secret {
    type Error = InvalidSnapshot;

    fn try_from(s: pb::Secret) -> convert::Result<Secret> {
        use pb::secret::Kind;
        match s.kind {
            Some(Kind::Reference(r)) => Ok(Secret::unresolved(r)),
            Some(Kind::Value(v)) => Ok(Secret::new(v, None)),
            None => missing(""),
        }
    }
}

impl From<&BackendAuth> for pb::BackendAuth {
    fn from(a: &BackendAuth) -> Self {
        match a {
            BackendAuth::Key(key) => pb::BackendAuth {
                key: Some(key.into()),
                ..Default::default()
            },
            BackendAuth::Passthrough { location } => pb::BackendAuth {
                passthrough: Some(location.into()),
                ..Default::default()
            },
            BackendAuth::Gcp(gcp) => pb::BackendAuth {
                gcp: Some(gcp.into()),
                ..Default::default()
            },
            BackendAuth::Azure(azure) => pb::BackendAuth {
                azure: Some(azure.into()),
                ..Default::default()
            },
            BackendAuth::Aws(aws) => pb::BackendAuth {
                aws: Some(pb::AwsAuth {
                    access_key_id: aws.keys.as_ref().map(|k| (&k.access_key_id).into()),
                    secret_access_key: aws.keys.as_ref().map(|k| (&k.secret_access_key).into()),
                    session_token: aws
                        .keys
                        .as_ref()
                        .and_then(|k| k.session_token.as_ref())
                        .map(Into::into),
                    region: aws.region.clone(),
                }),
                ..Default::default()
            },
        }
    }
}

impl TryFrom<pb::BackendAuth> for BackendAuth {
    type Error = InvalidSnapshot;

    fn try_from(a: pb::BackendAuth) -> convert::Result<BackendAuth> {
        if let Some(gcp) = a.gcp {
            return Ok(BackendAuth::Gcp(gcp.into()));
        }
        if let Some(azure) = convert::optional(a.azure, "azure")? {
            return Ok(BackendAuth::Azure(azure));
        }
        if let Some(aws) = a.aws {
            let keys = match (aws.access_key_id, aws.secret_access_key) {
                (Some(id), Some(secret)) => Some(AwsKeys {
                    access_key_id: id.try_into()?,
                    secret_access_key: secret.try_into()?,
                    session_token: convert::optional(aws.session_token, "sessionToken")?,
                }),
                (None, None) => None,
                _ => return missing("aws.secretAccessKey"),
            };
            return Ok(BackendAuth::Aws(AwsAuth {
                keys,
                region: aws.region,
            }));
        }
        match convert::optional(a.passthrough, "passthrough")? {
            Some(location) => Ok(BackendAuth::Passthrough { location }),
            None => Ok(BackendAuth::Key(convert::required(a.key, "key")?)),
        }
    }
}
