//! The `apiKey` phase: the key is taken from where the policy says (removed, so it stays at the
//! gateway), identified, and the policy's `mode` applied.

use std::sync::Arc;

use http::Uri;
use http::header::HeaderMap;
use tollgate_shared::config::model::AuthMode;

use super::credential::take_credential;
use crate::api_key::{ApiKeyIdentity, ApiKeyRejection, ApiKeys};

/// The identity of the caller's key (`None`: no key, and the mode allows it), or why the
/// request is refused.
pub fn authenticate(
    keys: &ApiKeys,
    uri: &mut Uri,
    headers: &mut HeaderMap,
) -> Result<Option<Arc<ApiKeyIdentity>>, ApiKeyRejection> {
    match take_credential(&keys.location, uri, headers) {
        None if keys.mode == AuthMode::Optional => Ok(None),
        None => Err(ApiKeyRejection::Missing),
        Some(key) => keys
            .identify(&key)
            .map(Some)
            .ok_or(ApiKeyRejection::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_shared::config::model::{
        ApiKey, ApiKeyAuth, ApiKeyCredential, CredentialLocation, Secret,
    };

    fn keys(mode: AuthMode) -> ApiKeys {
        ApiKeys::compile(&ApiKeyAuth {
            mode,
            location: CredentialLocation::default(),
            keys: vec![ApiKey {
                key: ApiKeyCredential::Key(Secret::new("k-one".into(), None)),
                metadata: Default::default(),
            }],
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
        let result = authenticate(keys, &mut uri, &mut headers);
        assert!(headers.get("authorization").is_none(), "the key is removed");
        result
    }

    #[test]
    fn modes_apply_and_unknown_keys_are_always_refused() {
        let strict = keys(AuthMode::Strict);
        assert!(check(&strict, Some("Bearer k-one")).unwrap().is_some());
        assert_eq!(check(&strict, None).unwrap_err(), ApiKeyRejection::Missing);
        assert_eq!(
            check(&strict, Some("Bearer k-two")).unwrap_err(),
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
