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

/// Whether a key the gateway cannot use rejects the whole set.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// A set the operator wrote (file, inline): a mistake to report.
    Refuse,
    /// A set an issuer publishes, which may hold keys for other uses (P-521, X25519): skipped.
    Skip,
}

/// The signing keys of a JWKS; the error names the key by position, never its material.
pub fn parse(text: &str, unusable: Unusable) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            continue;
        }
        match usable(i, jwk) {
            Ok(key) => keys.push(key),
            Err(reason) if unusable == Unusable::Skip => {
                tracing::debug!(%reason, "JWKS key skipped");
            }
            Err(reason) => return Err(reason),
        }
    }
    if keys.is_empty() {
        return Err("no signing key".to_string());
    }
    Ok(keys)
}

/// Key `i` of a set, with the algorithms it may verify.
fn usable(i: usize, jwk: &jsonwebtoken::jwk::Jwk) -> Result<Key, String> {
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
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        key,
        algorithms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_sets_skip_keys_the_gateway_cannot_use_and_written_ones_refuse_them() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        use base64::Engine;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key_raw());
        let text = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": x},
        ]})
        .to_string();
        let keys = parse(&text, Unusable::Skip).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("ed"));
        let e = parse(&text, Unusable::Refuse).err().unwrap();
        assert!(e.contains("key 0"), "{e}");
    }
}
