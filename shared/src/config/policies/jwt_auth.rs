//! `policies.jwtAuth`: who the client is, from a JWT checked against the issuers' public keys
//! (agentgateway's spelling: the single-issuer form or `providers`, `mode`, `location`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::credential::{CredentialLocation, RawCredentialLocation};
use crate::config::model::Invalid;
use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot, path_string};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawJwtAuth {
    #[serde(default)]
    pub mode: JwtMode,
    pub location: Option<RawCredentialLocation>,
    pub providers: Option<Vec<RawJwtProvider>>,
    pub issuer: Option<String>,
    pub audiences: Option<Vec<String>>,
    pub jwks: Option<RawJwks>,
    pub jwt_validation_options: Option<RawJwtValidationOptions>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawJwtProvider {
    pub issuer: String,
    pub audiences: Option<Vec<String>>,
    pub jwks: RawJwks,
    pub jwt_validation_options: Option<RawJwtValidationOptions>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawJwtValidationOptions {
    #[serde(default)]
    pub required_claims: Vec<String>,
}

/// `jwks`: inline JSON text, or `{file}` / `{url}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum RawJwks {
    Inline(String),
    Source(RawJwksSource),
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawJwksSource {
    pub file: Option<String>,
    pub url: Option<String>,
}

/// What a request without a valid token gets.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum JwtMode {
    /// A valid token is required: none, or an invalid one, is a 401.
    Strict,
    /// A token, when present, must be valid; none passes without identity (the default, as in
    /// agentgateway).
    #[default]
    Optional,
    /// Never rejected: a valid token gives an identity, anything else passes without one.
    Permissive,
}

/// Where an issuer's public keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Jwks {
    /// A JWKS file, read by the proxy when the config is applied (relative to its working
    /// directory).
    File(PathBuf),
    /// JWKS JSON written in the config.
    Inline(String),
    /// A JWKS fetched by the proxy over HTTP(S), cached and refreshed.
    Url(String),
}

/// One trusted issuer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtProvider {
    /// The `iss` a token must carry.
    pub issuer: String,
    /// Accepted `aud` values (any one); empty = the audience is not checked.
    pub audiences: Vec<String>,
    /// The issuer's public keys.
    pub jwks: Jwks,
    /// `jwtValidationOptions.requiredClaims`: claims a token must carry.
    pub required_claims: Vec<String>,
}

/// `jwtAuth`: tokens checked against the providers' keys; the claims become the identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtAuth {
    /// What happens without a valid token.
    pub mode: JwtMode,
    /// Where the token is read.
    pub location: CredentialLocation,
    /// The trusted issuers, unique.
    pub providers: Vec<JwtProvider>,
}

impl JwtProvider {
    /// What is wrong with this provider, with fields relative to it.
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if self.issuer.is_empty() {
            problems.push(Invalid::at("issuer", "`issuer` is empty"));
        }
        if self.audiences.iter().any(String::is_empty) {
            problems.push(Invalid::at("audiences", "an audience is empty"));
        }
        if self.required_claims.iter().any(String::is_empty) {
            problems.push(Invalid::at(
                "jwtValidationOptions.requiredClaims",
                "a required claim is empty",
            ));
        }
        match &self.jwks {
            Jwks::Inline(text) => {
                if let Err(e) = check_jwks_json(text) {
                    problems.push(Invalid::at("jwks", e));
                }
            }
            Jwks::Url(url) => {
                if let Err(e) = check_jwks_url(url) {
                    problems.push(Invalid::at("jwks.url", e));
                }
            }
            Jwks::File(_) => {}
        }
        problems
    }
}

impl JwtAuth {
    /// At least one provider, each valid, issuers unique; a usable token name.
    pub(crate) fn new(
        mode: JwtMode,
        location: CredentialLocation,
        providers: Vec<JwtProvider>,
    ) -> Result<JwtAuth, Vec<Invalid>> {
        let mut problems = Vec::new();
        if providers.is_empty() {
            problems.push(Invalid::at(
                "providers",
                "`jwtAuth` needs at least one provider",
            ));
        }
        for (i, p) in providers.iter().enumerate() {
            let at = YamlPath::root().key("providers").index(i);
            problems.extend(p.problems().into_iter().map(|e| Invalid {
                field: at.join(&e.field),
                message: e.message,
            }));
            if providers[..i].iter().any(|q| q.issuer == p.issuer) {
                problems.push(Invalid {
                    field: at.key("issuer"),
                    message: format!("issuer `{}` is listed twice", p.issuer),
                });
            }
        }
        if let Some(problem) = location.problem("location") {
            problems.push(problem);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(JwtAuth {
            mode,
            location,
            providers,
        })
    }
}

/// An absolute `http` or `https` URL with a host.
fn check_jwks_url(url: &str) -> Result<(), String> {
    let uri = url.parse::<http::Uri>().ok();
    match uri.as_ref().map(|u| (u.scheme_str(), u.host())) {
        Some((Some("http" | "https"), Some(host))) if !host.is_empty() => Ok(()),
        _ => Err(format!("`{url}` is not an absolute http(s) URL")),
    }
}

/// A JWKS is a JSON object with a `keys` list; the keys themselves are parsed by the proxy.
fn check_jwks_json(text: &str) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("inline `jwks` is not JSON: {e}"))?;
    match value.get("keys") {
        Some(serde_json::Value::Array(_)) => Ok(()),
        _ => Err("inline `jwks` is not a JWKS: it needs a `keys` list".to_string()),
    }
}

impl Validator<'_> {
    pub fn jwt_auth(&mut self, raw: &RawJwtAuth, path: &YamlPath) -> Option<JwtAuth> {
        let single = raw.issuer.is_some()
            || raw.audiences.is_some()
            || raw.jwks.is_some()
            || raw.jwt_validation_options.is_some();
        let providers = match (&raw.providers, single) {
            (Some(_), true) => {
                self.error(
                    path,
                    "use either `providers` or the single-issuer form (`issuer`, `audiences`, `jwks`), not both",
                );
                return None;
            }
            (Some(list), false) => {
                let mut providers = Vec::new();
                for (i, p) in list.iter().enumerate() {
                    let at = path.key("providers").index(i);
                    providers.push(self.jwt_provider(
                        Some(&p.issuer),
                        p.audiences.as_deref(),
                        Some(&p.jwks),
                        p.jwt_validation_options.as_ref(),
                        &at,
                    )?);
                }
                providers
            }
            (None, _) => vec![self.jwt_provider(
                raw.issuer.as_ref(),
                raw.audiences.as_deref(),
                raw.jwks.as_ref(),
                raw.jwt_validation_options.as_ref(),
                path,
            )?],
        };
        let location = self.credential_location(
            raw.location.as_ref(),
            path,
            "location",
            CredentialLocation::default(),
        )?;
        self.checked(JwtAuth::new(raw.mode, location, providers), path)
    }

    pub(super) fn jwt_provider(
        &mut self,
        issuer: Option<&String>,
        audiences: Option<&[String]>,
        jwks: Option<&RawJwks>,
        options: Option<&RawJwtValidationOptions>,
        path: &YamlPath,
    ) -> Option<JwtProvider> {
        let (Some(issuer), Some(jwks)) = (issuer, jwks) else {
            self.error(
                path,
                "`jwtAuth` needs `issuer` and `jwks` (or a `providers` list)",
            );
            return None;
        };
        let at = path.key("jwks");
        let jwks = match jwks {
            RawJwks::Inline(text) => Jwks::Inline(text.clone()),
            RawJwks::Source(RawJwksSource {
                file: Some(file),
                url: None,
            }) => Jwks::File(PathBuf::from(file)),
            RawJwks::Source(RawJwksSource {
                file: None,
                url: Some(url),
            }) => Jwks::Url(url.clone()),
            RawJwks::Source(_) => {
                self.error(
                    &at,
                    "`jwks` needs exactly one of `file`, `url` or inline JSON",
                );
                return None;
            }
        };
        let provider = JwtProvider {
            issuer: issuer.clone(),
            audiences: audiences.unwrap_or_default().to_vec(),
            jwks,
            required_claims: options
                .map(|o| o.required_claims.clone())
                .unwrap_or_default(),
        };
        let problems = provider.problems();
        self.checked(
            if problems.is_empty() {
                Ok(provider)
            } else {
                Err(problems)
            },
            path,
        )
    }
}

impl From<&JwtAuth> for pb::JwtAuth {
    fn from(a: &JwtAuth) -> Self {
        pb::JwtAuth {
            mode: match a.mode {
                JwtMode::Optional => pb::JwtMode::Optional,
                JwtMode::Strict => pb::JwtMode::Strict,
                JwtMode::Permissive => pb::JwtMode::Permissive,
            } as i32,
            location: Some((&a.location).into()),
            providers: a
                .providers
                .iter()
                .map(|p| pb::JwtProvider {
                    issuer: p.issuer.clone(),
                    audiences: p.audiences.clone(),
                    jwks: Some(pb::Jwks {
                        source: Some(match &p.jwks {
                            Jwks::File(path) => pb::jwks::Source::File(path_string(path)),
                            Jwks::Inline(text) => pb::jwks::Source::Inline(text.clone()),
                            Jwks::Url(url) => pb::jwks::Source::Url(url.clone()),
                        }),
                    }),
                    required_claims: p.required_claims.clone(),
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::JwtAuth> for JwtAuth {
    type Error = InvalidSnapshot;

    fn try_from(a: pb::JwtAuth) -> convert::Result<JwtAuth> {
        let mode = match convert::enum_value::<pb::JwtMode>(a.mode, "mode")? {
            pb::JwtMode::Optional => JwtMode::Optional,
            pb::JwtMode::Strict => JwtMode::Strict,
            pb::JwtMode::Permissive => JwtMode::Permissive,
        };
        let location = convert::required(a.location, "location")?;
        let mut providers = Vec::new();
        for (i, p) in a.providers.into_iter().enumerate() {
            let jwks = match p.jwks.and_then(|j| j.source) {
                Some(pb::jwks::Source::File(path)) => Jwks::File(PathBuf::from(path)),
                Some(pb::jwks::Source::Inline(text)) => Jwks::Inline(text),
                Some(pb::jwks::Source::Url(url)) => Jwks::Url(url),
                None => return convert::missing(&format!("providers[{i}].jwks")),
            };
            providers.push(JwtProvider {
                issuer: p.issuer,
                audiences: p.audiences,
                jwks,
                required_claims: p.required_claims,
            });
        }
        JwtAuth::new(mode, location, providers).map_err(InvalidSnapshot::from)
    }
}
