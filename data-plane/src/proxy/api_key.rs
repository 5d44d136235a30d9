//! The `apiKey` phase: the key is taken from where the policy says (removed, so it stays at the
//! gateway) and looked up by its SHA-256 digest, compared in constant time.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use http::Uri;
use http::header::HeaderMap;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tollgate_shared::config::model::{ApiKeyAuth, AuthMode, CredentialLocation};

use super::credential::take_credential;

/// A key's SHA-256 digest. Equality is constant-time, so the map's lookup tells nothing of how
/// close a presented key came to a configured one.
#[derive(Clone, Copy, Eq)]
struct KeyDigest([u8; 32]);

impl PartialEq for KeyDigest {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Hash for KeyDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// Who a valid key names: CEL's `apiKey` and the request's identity.
#[derive(Debug)]
pub struct ApiKeyIdentity {
    /// The first 8 bytes of the key's digest, in hex: tells keys apart without revealing them.
    pub id: String,
    /// The key's `metadata`.
    pub metadata: Map<String, Value>,
}

/// Why a request was refused; the text is the 401 body (it never contains the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyRejection {
    #[error("missing API key")]
    Missing,
    #[error("invalid API key")]
    Unknown,
}

/// The compiled form of one `apiKey` policy: its keys hashed once, at apply.
pub struct ApiKeys {
    mode: AuthMode,
    location: CredentialLocation,
    keys: HashMap<KeyDigest, Arc<ApiKeyIdentity>>,
}

impl ApiKeys {
    /// Keys listed twice (two `$VAR`s with one value) keep the first one's metadata.
    pub fn compile(policy: &ApiKeyAuth) -> ApiKeys {
        let mut keys = HashMap::new();
        for k in &policy.keys {
            let digest = k.key.digest();
            keys.entry(KeyDigest(digest)).or_insert_with(|| {
                Arc::new(ApiKeyIdentity {
                    id: digest[..8].iter().map(|b| format!("{b:02x}")).collect(),
                    metadata: k.metadata.clone(),
                })
            });
        }
        ApiKeys {
            mode: policy.mode,
            location: policy.location.clone(),
            keys,
        }
    }

    /// The identity of the caller's key (`None`: no key, and the mode allows it), or why the
    /// request is refused.
    pub fn authenticate(
        &self,
        uri: &mut Uri,
        headers: &mut HeaderMap,
    ) -> Result<Option<Arc<ApiKeyIdentity>>, ApiKeyRejection> {
        match take_credential(&self.location, uri, headers) {
            None if self.mode == AuthMode::Optional => Ok(None),
            None => Err(ApiKeyRejection::Missing),
            Some(key) => {
                let digest = KeyDigest(Sha256::digest(key.as_bytes()).into());
                self.keys
                    .get(&digest)
                    .cloned()
                    .map(Some)
                    .ok_or(ApiKeyRejection::Unknown)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_shared::config::model::{ApiKey, ApiKeyCredential, Secret};

    fn keys(mode: AuthMode) -> ApiKeys {
        let key = |k: &str, group: &str| ApiKey {
            key: ApiKeyCredential::Key(Secret::new(k.into(), None)),
            metadata: serde_json::json!({"group": group})
                .as_object()
                .unwrap()
                .clone(),
        };
        ApiKeys::compile(&ApiKeyAuth {
            mode,
            location: CredentialLocation::default(),
            keys: vec![key("k-one", "a"), key("k-two", "b")],
        })
    }

    fn check(
        keys: &ApiKeys,
        authorization: Option<&str>,
    ) -> Result<Option<Arc<ApiKeyIdentity>>, ApiKeyRejection> {
        let mut uri: Uri = "/".parse().unwrap();
        let mut headers = HeaderMap::new();
        if let Some(v) = authorization {
            headers.insert("authorization", v.parse().unwrap());
        }
        keys.authenticate(&mut uri, &mut headers)
    }

    #[test]
    fn keys_are_found_by_digest_and_modes_apply() {
        let strict = keys(AuthMode::Strict);
        let found = check(&strict, Some("Bearer k-two")).unwrap().unwrap();
        assert_eq!(found.metadata["group"], "b");
        assert_eq!(found.id.len(), 16);
        assert_eq!(check(&strict, None).unwrap_err(), ApiKeyRejection::Missing);
        assert_eq!(
            check(&strict, Some("Bearer k-three")).unwrap_err(),
            ApiKeyRejection::Unknown
        );
        let optional = keys(AuthMode::Optional);
        assert!(check(&optional, None).unwrap().is_none());
        assert_eq!(
            check(&optional, Some("Bearer nope")).unwrap_err(),
            ApiKeyRejection::Unknown
        );
    }
}
