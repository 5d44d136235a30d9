//! The `basicAuth` phase: the credentials are taken from where the policy says (removed, so
//! they stay at the gateway), decoded and checked against the policy's htpasswd file.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::Uri;
use http::header::HeaderMap;
use tollgate_shared::config::model::{AuthMode, BasicAuth};

use super::credential::take_credential;
use crate::htpasswd::{HtpasswdCell, PoolBusy};

/// Why a request was refused; the text is the 401 body (it never contains the credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BasicRejection {
    #[error("missing basic credentials")]
    Missing,
    #[error("malformed basic credentials")]
    Malformed,
    #[error("invalid username or password")]
    Invalid,
}

/// What the phase refuses a request with.
#[derive(Debug)]
pub enum Refusal {
    Rejected(BasicRejection),
    Busy(PoolBusy),
}

/// The compiled form of one `basicAuth` policy.
pub struct BasicAuthPolicy {
    pub policy: BasicAuth,
    pub users: Arc<HtpasswdCell>,
}

impl BasicAuthPolicy {
    /// The caller's username (`None`: no credentials, and the mode allows it), or why the
    /// request is refused.
    pub async fn authenticate(
        &self,
        uri: &mut Uri,
        headers: &mut HeaderMap,
    ) -> Result<Option<String>, Refusal> {
        let Some(encoded) = take_credential(&self.policy.authorization_location, uri, headers)
        else {
            return match self.policy.mode {
                AuthMode::Optional => Ok(None),
                AuthMode::Strict => Err(Refusal::Rejected(BasicRejection::Missing)),
            };
        };
        let (user, password) = STANDARD
            .decode(encoded)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|text| {
                let (user, password) = text.split_once(':')?;
                Some((user.to_string(), password.to_string()))
            })
            .ok_or(Refusal::Rejected(BasicRejection::Malformed))?;
        match self.users.users().check(&user, &password).await {
            Ok(true) => Ok(Some(user)),
            Ok(false) => Err(Refusal::Rejected(BasicRejection::Invalid)),
            Err(busy) => Err(Refusal::Busy(busy)),
        }
    }
}
