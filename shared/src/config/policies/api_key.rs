//! `policies.apiKey`: who the client is, from a key it presents (agentgateway's spelling:
//! `keys[]` with `key` or `keyHash` and `metadata`, `mode`, `location`).

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::credential::{AuthMode, CredentialLocation, RawCredentialLocation};
use crate::config::model::{Invalid, Secret};
use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawApiKeyAuth {
    pub keys: Vec<RawApiKey>,
    #[serde(default)]
    pub mode: AuthMode,
    pub location: Option<RawCredentialLocation>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawApiKey {
    pub key: Option<String>,
    pub key_hash: Option<String>,
    pub metadata: Option<Value>,
}

/// How a key is known: itself (possibly from `$VAR`), or only its SHA-256 digest.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiKeyCredential {
    Key(Secret),
    /// `keyHash: "sha256:<hex>"`.
    Sha256([u8; 32]),
}

impl ApiKeyCredential {
    /// The SHA-256 digest requests are looked up by.
    pub fn digest(&self) -> [u8; 32] {
        match self {
            ApiKeyCredential::Key(key) => Sha256::digest(key.expose().as_bytes()).into(),
            ApiKeyCredential::Sha256(digest) => *digest,
        }
    }
}

impl Serialize for ApiKeyCredential {
    /// A key shows as its reference or `<redacted>`; a digest as `sha256:<redacted>` (it
    /// would let a guess be checked offline).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ApiKeyCredential::Key(key) => key.serialize(s),
            ApiKeyCredential::Sha256(_) => {
                s.serialize_str(&format!("sha256:{}", crate::config::redact::REDACTED))
            }
        }
    }
}

/// One accepted key and what requests presenting it carry as `apiKey.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKey {
    pub key: ApiKeyCredential,
    /// `metadata`: an object (empty when not written).
    pub metadata: Map<String, Value>,
}

/// `apiKey`: requests are identified by a key of `keys`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyAuth {
    /// What happens without a key (an unknown key is always refused).
    pub mode: AuthMode,
    /// Where the key is read.
    pub location: CredentialLocation,
    pub keys: Vec<ApiKey>,
}

impl ApiKeyAuth {
    /// At least one key; digests well formed and keys distinct where their values are known
    /// (a `$VAR` the control plane keeps is compared by the proxy).
    pub(crate) fn new(
        mode: AuthMode,
        location: CredentialLocation,
        keys: Vec<ApiKey>,
    ) -> Result<ApiKeyAuth, Vec<Invalid>> {
        let mut problems = Vec::new();
        if keys.is_empty() {
            problems.push(Invalid::at("keys", "`apiKey` needs at least one key"));
        }
        let known = |k: &ApiKey| match &k.key {
            ApiKeyCredential::Key(s) if s.expose().is_empty() => None,
            other => Some(other.digest()),
        };
        for (i, k) in keys.iter().enumerate() {
            if let Some(digest) = known(k)
                && keys[..i].iter().any(|o| known(o) == Some(digest))
            {
                problems.push(Invalid::at(
                    &format!("keys[{i}]"),
                    "this key is listed twice",
                ));
            }
        }
        if let Some(problem) = location.problem("location") {
            problems.push(problem);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ApiKeyAuth {
            mode,
            location,
            keys,
        })
    }
}

/// `sha256:<64 hex digits>`.
fn parse_key_hash(text: &str) -> Result<[u8; 32], String> {
    let hex = text
        .strip_prefix("sha256:")
        .ok_or("`keyHash` must be `sha256:<hex>`")?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("`keyHash` must be `sha256:` and 64 hex digits".to_string());
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("checked hex digits");
    }
    Ok(digest)
}

impl Validator<'_> {
    pub fn api_key_auth(&mut self, raw: &RawApiKeyAuth, path: &YamlPath) -> Option<ApiKeyAuth> {
        let mut keys = Vec::new();
        for (i, k) in raw.keys.iter().enumerate() {
            let at = path.key("keys").index(i);
            let key = match (&k.key, &k.key_hash) {
                (Some(key), None) => {
                    let kp = at.key("key");
                    if key.is_empty() {
                        self.error(
                            &kp,
                            "the key is empty (is its environment variable set to an empty value?)",
                        );
                    }
                    ApiKeyCredential::Key(self.secret(key, &kp))
                }
                (None, Some(hash)) => match parse_key_hash(hash) {
                    Ok(digest) => ApiKeyCredential::Sha256(digest),
                    Err(e) => {
                        self.error(&at.key("keyHash"), e);
                        continue;
                    }
                },
                _ => {
                    self.error(&at, "a key needs exactly one of `key` or `keyHash`");
                    continue;
                }
            };
            let metadata = match &k.metadata {
                None => Map::new(),
                Some(Value::Object(map)) => map.clone(),
                Some(_) => {
                    self.error(&at.key("metadata"), "`metadata` must be a map");
                    continue;
                }
            };
            keys.push(ApiKey { key, metadata });
        }
        if keys.len() != raw.keys.len() {
            return None;
        }
        let location = self.credential_location(
            raw.location.as_ref(),
            path,
            "location",
            CredentialLocation::default(),
        )?;
        self.checked(ApiKeyAuth::new(raw.mode, location, keys), path)
    }
}

impl From<&ApiKeyAuth> for pb::ApiKeyAuth {
    fn from(a: &ApiKeyAuth) -> Self {
        use pb::api_key::Credential;
        pb::ApiKeyAuth {
            mode: pb::AuthMode::from(a.mode) as i32,
            location: Some((&a.location).into()),
            keys: a
                .keys
                .iter()
                .map(|k| pb::ApiKey {
                    credential: Some(match &k.key {
                        ApiKeyCredential::Key(s) => Credential::Key(s.into()),
                        ApiKeyCredential::Sha256(d) => Credential::Sha256(d.to_vec()),
                    }),
                    metadata_json: Value::Object(k.metadata.clone()).to_string(),
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::ApiKeyAuth> for ApiKeyAuth {
    type Error = InvalidSnapshot;

    fn try_from(a: pb::ApiKeyAuth) -> convert::Result<ApiKeyAuth> {
        use pb::api_key::Credential;
        let mode = convert::enum_value::<pb::AuthMode>(a.mode, "mode")?.into();
        let location = convert::required(a.location, "location")?;
        let mut keys = Vec::new();
        for (i, k) in a.keys.into_iter().enumerate() {
            let at = format!("keys[{i}]");
            let key = match k.credential {
                Some(Credential::Key(s)) => ApiKeyCredential::Key(convert::nested(s, &at)?),
                Some(Credential::Sha256(d)) => match <[u8; 32]>::try_from(d) {
                    Ok(d) => ApiKeyCredential::Sha256(d),
                    Err(_) => return convert::invalid(&at, "a SHA-256 digest is 32 bytes"),
                },
                None => return convert::missing(&at),
            };
            let metadata = match serde_json::from_str(&k.metadata_json) {
                Ok(Value::Object(map)) => map,
                _ => return convert::invalid(&format!("{at}.metadata"), "not a JSON object"),
            };
            keys.push(ApiKey { key, metadata });
        }
        ApiKeyAuth::new(mode, location, keys).map_err(InvalidSnapshot::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hashes_are_parsed_strictly() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let digest = parse_key_hash(&format!("sha256:{hex}")).unwrap();
        assert_eq!(
            digest,
            ApiKeyCredential::Key(Secret::new("test".into(), None)).digest()
        );
        assert!(parse_key_hash(&format!("sha256:{}", hex.to_uppercase())).is_ok());
        assert!(parse_key_hash(hex).is_err());
        assert!(parse_key_hash("sha256:abc").is_err());
        assert!(parse_key_hash(&format!("sha256:{}", hex.replace('9', "g"))).is_err());
    }
}
