//! The `basicAuth` phase: the credentials are taken from where the policy says (removed, so
//! they stay at the gateway), decoded and checked against the policy's htpasswd users.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::Uri;
use http::header::HeaderMap;
use tollgate_shared::config::model::AuthMode;

use super::credential::take_credential;
use crate::htpasswd::{BasicAuthPolicy, BasicRejection, PoolBusy};

/// What the phase refuses a request with.
#[derive(Debug)]
pub enum Refusal {
    Rejected(BasicRejection),
    Busy(PoolBusy),
}

/// The longest base64 `user:password` accepted (about 768 bytes decoded).
const MAX_ENCODED_CREDENTIALS: usize = 1024;

/// The caller's username (`None`: no credentials, and the mode allows it), or why the request
/// is refused.
pub async fn authenticate(
    basic: &BasicAuthPolicy,
    uri: &mut Uri,
    headers: &mut HeaderMap,
) -> Result<Option<String>, Refusal> {
    let Some(encoded) = take_credential(&basic.policy.authorization_location, uri, headers) else {
        return match basic.policy.mode {
            AuthMode::Optional => Ok(None),
            AuthMode::Strict => Err(Refusal::Rejected(BasicRejection::Missing)),
        };
    };
    // A password check costs time in its length (apr1 hashes it a thousand times): longer
    // credentials than any real one are refused before decoding.
    if encoded.len() > MAX_ENCODED_CREDENTIALS {
        return Err(Refusal::Rejected(BasicRejection::Malformed));
    }
    let (user, password) = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|text| {
            let (user, password) = text.split_once(':')?;
            Some((user.to_string(), password.to_string()))
        })
        .ok_or(Refusal::Rejected(BasicRejection::Malformed))?;
    match basic.users.users().check(&user, &password).await {
        Ok(true) => Ok(Some(user)),
        Ok(false) => Err(Refusal::Rejected(BasicRejection::Invalid)),
        Err(busy) => Err(Refusal::Busy(busy)),
    }
}
