//! `policies.basicAuth`: who the client is, from a username and password checked against an
//! htpasswd file (agentgateway's spelling: `htpasswd.file`, `realm`, `mode`,
//! `authorizationLocation`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::credential::{AuthMode, CredentialLocation, RawCredentialLocation};
use crate::config::model::Invalid;
use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot, path_string};
use crate::proto::v1 as pb;

/// The realm of the challenge when the policy names none (as agentgateway).
const DEFAULT_REALM: &str = "Restricted";

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBasicAuth {
    pub htpasswd: RawHtpasswd,
    pub realm: Option<String>,
    #[serde(default)]
    pub mode: AuthMode,
    pub authorization_location: Option<RawCredentialLocation>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHtpasswd {
    pub file: String,
}

/// `basicAuth`: `Authorization: Basic` credentials checked against an htpasswd file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// `htpasswd.file`: read by the proxy when the config is applied and again when it
    /// changes (relative to its working directory).
    pub htpasswd: PathBuf,
    /// The realm of the `WWW-Authenticate: Basic` challenge.
    pub realm: String,
    /// What happens without credentials (wrong ones are always refused).
    pub mode: AuthMode,
    /// Where the credentials are read: `Authorization: Basic …` by default.
    pub authorization_location: CredentialLocation,
}

impl BasicAuth {
    pub(crate) fn new(
        htpasswd: PathBuf,
        realm: String,
        mode: AuthMode,
        authorization_location: CredentialLocation,
    ) -> Result<BasicAuth, Vec<Invalid>> {
        let mut problems = Vec::new();
        if htpasswd.as_os_str().is_empty() {
            problems.push(Invalid::at("htpasswd.file", "the file name is empty"));
        }
        if realm.is_empty()
            || realm
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control())
        {
            problems.push(Invalid::at(
                "realm",
                "the realm must be non-empty, without quotes, backslashes or control characters",
            ));
        }
        if let Some(problem) = authorization_location.problem("authorizationLocation") {
            problems.push(problem);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(BasicAuth {
            htpasswd,
            realm,
            mode,
            authorization_location,
        })
    }
}

impl Validator<'_> {
    pub fn basic_auth(&mut self, raw: &RawBasicAuth, path: &YamlPath) -> Option<BasicAuth> {
        let location = self.credential_location(
            raw.authorization_location.as_ref(),
            path,
            "authorizationLocation",
            CredentialLocation::authorization("Basic "),
        )?;
        let realm = raw
            .realm
            .clone()
            .unwrap_or_else(|| DEFAULT_REALM.to_string());
        let built = BasicAuth::new(PathBuf::from(&raw.htpasswd.file), realm, raw.mode, location);
        self.checked(built, path)
    }
}

impl From<&BasicAuth> for pb::BasicAuth {
    fn from(a: &BasicAuth) -> Self {
        pb::BasicAuth {
            htpasswd_file: path_string(&a.htpasswd),
            realm: a.realm.clone(),
            mode: pb::AuthMode::from(a.mode) as i32,
            location: Some((&a.authorization_location).into()),
        }
    }
}

impl TryFrom<pb::BasicAuth> for BasicAuth {
    type Error = InvalidSnapshot;

    fn try_from(a: pb::BasicAuth) -> convert::Result<BasicAuth> {
        let mode = convert::enum_value::<pb::AuthMode>(a.mode, "mode")?.into();
        let location = convert::required(a.location, "authorizationLocation")?;
        BasicAuth::new(PathBuf::from(a.htpasswd_file), a.realm, mode, location)
            .map_err(InvalidSnapshot::from)
    }
}
