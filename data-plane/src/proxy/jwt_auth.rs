//! The `jwtAuth` phase: takes the token from where the policy says (removing it, so the
//! credential stays at the gateway), verifies it and applies the policy's `mode`.

use std::sync::Arc;

use http::Uri;
use http::header::HeaderMap;
use tollgate_shared::config::model::JwtMode;

use super::credential::take_credential;
use crate::jwt::{Claims, Rejection, Verifier};

/// The claims of the caller and its token (`None`: no identity), or why the request is
/// refused.
pub async fn authenticate(
    verifier: &Verifier,
    uri: &mut Uri,
    headers: &mut HeaderMap,
) -> Result<Option<(Arc<Claims>, String)>, Rejection> {
    let token = take_credential(&verifier.location, uri, headers);
    let verified = match token {
        None => Err(Rejection::Missing),
        Some(token) => verifier
            .verify_fetching(&token)
            .await
            .map(|claims| (claims, token)),
    };
    match (verified, verifier.mode) {
        (Ok(authenticated), _) => Ok(Some(authenticated)),
        (Err(_), JwtMode::Permissive) | (Err(Rejection::Missing), JwtMode::Optional) => Ok(None),
        (Err(rejection), _) => Err(rejection),
    }
}
