//! A JWKS document parsed into verifying keys, each with the algorithms it may check: the same
//! for files, inline JSON and fetched sets.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// One public key and the algorithms it may verify.
pub struct Key {
    pub kid: Option<String>,
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

/// The signing keys of a JWKS; the error names the key by position, never its material.
pub fn parse(text: &str) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            continue;
        }
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa.algorithms().to_vec(),
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return Err(format!("key {i}: only P-256 and P-384 are supported")),
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                vec![Algorithm::EdDSA]
            }
            AlgorithmParameters::OctetKey(_) => {
                return Err(format!(
                    "key {i}: symmetric (HMAC) keys are refused: a JWKS holds public keys"
                ));
            }
            _ => return Err(format!("key {i}: unsupported key type")),
        };
        // A key that names its algorithm verifies only that one.
        let algorithms = match &jwk.common.key_algorithm {
            None => family,
            Some(named) => {
                let named = named.to_string().parse::<Algorithm>().ok();
                match named.filter(|a| family.contains(a)) {
                    Some(a) => vec![a],
                    None => return Err(format!("key {i}: its `alg` does not fit its key type")),
                }
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {i}: {e}"))?;
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            key,
            algorithms,
        });
    }
    if keys.is_empty() {
        return Err("no signing key".to_string());
    }
    Ok(keys)
}
