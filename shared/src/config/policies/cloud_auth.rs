//! `backendAuth.gcp` and `backendAuth.azure`: OAuth access tokens the proxy obtains from a
//! cloud's token endpoint, in agentgateway's spelling; what cannot be honoured here is refused.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::backend_auth::Secret;
use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot};
use crate::proto::v1 as pb;

/// `backendAuth.gcp`, agentgateway's spelling.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGcpAuth {
    /// `accessToken` (the default) or `idToken` (not supported).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub audience: Option<String>,
    pub credential: Option<RawGcpCredential>,
}

/// `credential`: `{file}`, or the JSON inline (not supported: it would hold a private key).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum RawGcpCredential {
    File(RawCredentialFile),
    Inline(#[expect(dead_code, reason = "refused by validation, never read")] String),
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCredentialFile {
    pub file: String,
}

/// `backendAuth.azure`, agentgateway's spelling.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAzureAuth {
    pub explicit_config: Option<RawAzureExplicit>,
    pub implicit: Option<serde_json::Value>,
    pub developer_implicit: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAzureExplicit {
    pub client_secret: Option<RawAzureClientSecret>,
    pub managed_identity: Option<serde_json::Value>,
    pub workload_identity: Option<serde_json::Value>,
}

/// `clientSecret`: snake_case keys, as agentgateway spells them.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAzureClientSecret {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// `backendAuth.gcp`: Google OAuth access tokens from Application Default Credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcpAuth {
    /// A service-account or authorized-user JSON file, read by the proxy when the config is
    /// applied; unset: `GOOGLE_APPLICATION_CREDENTIALS`, then gcloud's ADC file.
    pub credential_file: Option<PathBuf>,
}

/// `backendAuth.azure`: Microsoft Entra access tokens.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AzureAuth {
    /// `explicitConfig.clientSecret`: the client-credentials grant of an app registration.
    ClientSecret {
        tenant_id: String,
        client_id: String,
        client_secret: Secret,
    },
    /// `explicitConfig.workloadIdentity`: a federated token file (AKS workload identity) from
    /// `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID` and `AZURE_TENANT_ID`.
    WorkloadIdentity,
}

impl Validator<'_> {
    pub fn gcp_auth(&mut self, raw: &RawGcpAuth, path: &YamlPath) -> Option<GcpAuth> {
        match raw.kind.as_deref() {
            None | Some("accessToken") => {}
            Some("idToken") => {
                self.error(
                    &path.key("type"),
                    "`idToken` (OIDC ID tokens for Cloud Run or IAP) is not supported: Tollgate sends access tokens (`accessToken`)",
                );
                return None;
            }
            Some(other) => {
                self.error(
                    &path.key("type"),
                    format!("unknown type `{other}`: `accessToken` or `idToken`"),
                );
                return None;
            }
        }
        if raw.audience.is_some() {
            self.error(
                &path.key("audience"),
                "`audience` is for `idToken`, which is not supported",
            );
            return None;
        }
        let credential_file = match &raw.credential {
            None => None,
            Some(RawGcpCredential::File(f)) if f.file.is_empty() => {
                self.error(&path.key("credential").key("file"), "the file is empty");
                return None;
            }
            Some(RawGcpCredential::File(f)) => Some(PathBuf::from(&f.file)),
            Some(RawGcpCredential::Inline(_)) => {
                self.error(
                    &path.key("credential"),
                    "an inline credential is not supported (it holds a private key): use `credential.file`",
                );
                return None;
            }
        };
        Some(GcpAuth { credential_file })
    }

    pub fn azure_auth(&mut self, raw: &RawAzureAuth, path: &YamlPath) -> Option<AzureAuth> {
        let unsupported = "is not supported (managed identity and developer tools cannot be reached or tested here): use `explicitConfig.clientSecret` or `explicitConfig.workloadIdentity`";
        if raw.implicit.is_some() {
            self.error(&path.key("implicit"), format!("`implicit` {unsupported}"));
            return None;
        }
        if raw.developer_implicit.is_some() {
            self.error(
                &path.key("developerImplicit"),
                format!("`developerImplicit` {unsupported}"),
            );
            return None;
        }
        let ep = path.key("explicitConfig");
        let Some(explicit) = &raw.explicit_config else {
            self.error(path, "`backendAuth.azure` needs `explicitConfig`");
            return None;
        };
        let options = [
            ("clientSecret", explicit.client_secret.is_some()),
            ("managedIdentity", explicit.managed_identity.is_some()),
            ("workloadIdentity", explicit.workload_identity.is_some()),
        ];
        if !self.exactly_one(&ep, "an Azure credential", &options) {
            return None;
        }
        if explicit.managed_identity.is_some() {
            self.error(
                &ep.key("managedIdentity"),
                format!("`managedIdentity` {unsupported}"),
            );
            return None;
        }
        let Some(cs) = &explicit.client_secret else {
            return Some(AzureAuth::WorkloadIdentity);
        };
        let cp = ep.key("clientSecret");
        for (key, value) in [("tenant_id", &cs.tenant_id), ("client_id", &cs.client_id)] {
            if value.is_empty()
                || value.contains(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.')
            {
                self.error(
                    &cp.key(key),
                    format!("`{key}` is an Entra id (a GUID or a domain name)"),
                );
                return None;
            }
        }
        let sp = cp.key("client_secret");
        let may_be_empty = self
            .template(&sp)
            .is_some_and(|t| t.starts_with("${") && t.ends_with(":-}"));
        if cs.client_secret.is_empty() && !may_be_empty {
            self.error(&sp, "the client secret is empty");
            return None;
        }
        Some(AzureAuth::ClientSecret {
            tenant_id: cs.tenant_id.clone(),
            client_id: cs.client_id.clone(),
            client_secret: self.secret(&cs.client_secret, &sp),
        })
    }
}

impl From<&GcpAuth> for pb::GcpAuth {
    fn from(g: &GcpAuth) -> Self {
        pb::GcpAuth {
            credential_file: g
                .credential_file
                .as_ref()
                .map(|f| f.to_string_lossy().into_owned()),
        }
    }
}

impl From<pb::GcpAuth> for GcpAuth {
    fn from(g: pb::GcpAuth) -> Self {
        GcpAuth {
            credential_file: g.credential_file.map(PathBuf::from),
        }
    }
}

impl From<&AzureAuth> for pb::AzureAuth {
    fn from(a: &AzureAuth) -> Self {
        use pb::azure_auth::Source;
        pb::AzureAuth {
            source: Some(match a {
                AzureAuth::ClientSecret {
                    tenant_id,
                    client_id,
                    client_secret,
                } => Source::ClientSecret(pb::AzureClientSecret {
                    tenant_id: tenant_id.clone(),
                    client_id: client_id.clone(),
                    client_secret: Some(client_secret.into()),
                }),
                AzureAuth::WorkloadIdentity => Source::WorkloadIdentity(true),
            }),
        }
    }
}

impl TryFrom<pb::AzureAuth> for AzureAuth {
    type Error = InvalidSnapshot;

    fn try_from(a: pb::AzureAuth) -> convert::Result<AzureAuth> {
        use pb::azure_auth::Source;
        match a.source {
            Some(Source::ClientSecret(cs)) => Ok(AzureAuth::ClientSecret {
                tenant_id: cs.tenant_id,
                client_id: cs.client_id,
                client_secret: convert::required(cs.client_secret, "client_secret")?,
            }),
            Some(Source::WorkloadIdentity(_)) => Ok(AzureAuth::WorkloadIdentity),
            None => convert::missing("source"),
        }
    }
}
