//! `apiKey` keys: hashed once per apply and looked up by the SHA-256 digest of a presented key,
//! compared in constant time, so a request costs one hash and one map lookup.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tollgate_shared::config::model::{ApiKeyAuth, AuthMode, CredentialLocation};

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
    pub mode: AuthMode,
    /// Where the key is read.
    pub location: CredentialLocation,
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

    /// The identity of `key`, if it is one of the policy's.
    pub fn identify(&self, key: &str) -> Option<Arc<ApiKeyIdentity>> {
        let digest = KeyDigest(Sha256::digest(key.as_bytes()).into());
        self.keys.get(&digest).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_shared::config::model::{ApiKey, ApiKeyCredential, Secret};

    #[test]
    fn keys_are_found_by_digest_with_their_metadata() {
        let key = |k: &str, group: &str| ApiKey {
            key: ApiKeyCredential::Key(Secret::new(k.into(), None)),
            metadata: serde_json::json!({"group": group})
                .as_object()
                .unwrap()
                .clone(),
        };
        let keys = ApiKeys::compile(&ApiKeyAuth {
            mode: AuthMode::Strict,
            location: CredentialLocation::default(),
            keys: vec![key("k-one", "a"), key("k-two", "b"), key("k-one", "dup")],
        });
        let found = keys.identify("k-two").unwrap();
        assert_eq!(found.metadata["group"], "b");
        assert_eq!(found.id.len(), 16);
        assert_eq!(keys.identify("k-one").unwrap().metadata["group"], "a");
        assert!(keys.identify("k-three").is_none());
        assert!(keys.identify("").is_none());
    }
}
