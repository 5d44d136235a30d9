//! Keys generated at test time (RSA, EC P-256, Ed25519) that sign tokens, and their JWKS.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use serde_json::{Value, json};

/// A generated key: what signs, the algorithm, its public JWK.
pub struct TestKey {
    pub signing: EncodingKey,
    pub alg: Algorithm,
    pub jwk: Value,
}

impl TestKey {
    pub fn rsa(kid: &str) -> TestKey {
        let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap();
        let signing = EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes());
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&signing, Algorithm::RS256).unwrap())
                .unwrap();
        // No `alg`: the key verifies every RSA algorithm (RS* and PS*).
        jwk.as_object_mut().unwrap().remove("alg");
        jwk["kid"] = json!(kid);
        TestKey {
            signing,
            alg: Algorithm::RS256,
            jwk,
        }
    }

    pub fn ec(kid: &str) -> TestKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = pair.public_key_raw();
        TestKey {
            signing: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
            alg: Algorithm::ES256,
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..])}),
        }
    }

    pub fn ed25519(kid: &str) -> TestKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        TestKey {
            signing: EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap(),
            alg: Algorithm::EdDSA,
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(pair.public_key_raw())}),
        }
    }

    pub fn sign(&self, alg: Algorithm, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = self.jwk["kid"].as_str().map(str::to_string);
        jsonwebtoken::encode(&header, claims, &self.signing).unwrap()
    }

    pub fn token(&self, claims: &Value) -> String {
        self.sign(self.alg, claims)
    }
}

pub fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}
