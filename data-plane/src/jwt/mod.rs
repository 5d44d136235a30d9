//! `jwtAuth` keys and token checks: every JWKS file or inline set is read and parsed once per
//! apply (fetched sets when they change), so a request only verifies; signatures are the
//! `jsonwebtoken` crate's.

mod cache;
mod keys;
pub mod remote;

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};
use serde_json::{Map, Value};
use tollgate_shared::config::model::{
    Config, CredentialLocation, Jwks, JwtAuth, JwtMode, JwtProvider,
};
use tollgate_shared::files;

use self::cache::{VerifiedTokens, VerifiedWith};
use self::keys::Key;
use self::remote::{RemoteJwks, RemoteKeySets};

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 60;

/// The algorithms a JWKS key may verify: never HMAC (a JWKS holds public keys).
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A token's validated claims.
pub type Claims = Map<String, Value>;

/// Who the claims name: what state bound to a caller, such as an MCP session, is compared by.
/// With a `sub`, the issuer and subject (a refreshed token of the same subject is the same
/// caller); without one (client-credentials tokens), a digest of all the claims, so callers
/// whose tokens name no subject never share an identity.
pub fn identity(claims: &Claims) -> String {
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) => format!("{iss}\n{sub}"),
        None => {
            use sha2::{Digest, Sha256};
            let digest = Sha256::digest(Value::Object(claims.clone()).to_string());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("{iss}\n#{hex}")
        }
    }
}

/// Why a token was refused; the text is the 401 body (it never contains the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("missing token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("token algorithm not accepted")]
    Algorithm,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("bad token signature")]
    BadSignature,
    #[error("wrong token audience")]
    WrongAudience,
    #[error("unknown token issuer")]
    UnknownIssuer,
    #[error("unknown token key")]
    UnknownKey,
    /// The issuer's fetched key set is not available (yet): the gateway's problem, not the token's.
    #[error("the token issuer's keys are unavailable")]
    KeysUnavailable,
    #[error("token is missing the claim `{0}`")]
    MissingClaim(String),
}

/// A JWKS that cannot be used: the config is rejected. Names the file or issuer, never keys.
#[derive(Debug, thiserror::Error)]
#[error("jwtAuth: JWKS of issuer `{issuer}`{}: {reason}", file.as_deref().map(|f| format!(" (file `{f}`)")).unwrap_or_default())]
pub struct JwksError {
    pub issuer: String,
    pub file: Option<String>,
    pub reason: String,
}

/// Where an issuer's keys are: parsed at apply, or fetched.
enum KeySource {
    Fixed(Vec<Key>),
    Remote(Arc<RemoteJwks>),
}

/// One trusted issuer: its keys and what its tokens must satisfy.
struct Issuer {
    name: String,
    keys: KeySource,
    validations: Vec<(Algorithm, Validation)>,
    required_claims: Vec<String>,
}

/// The compiled form of one `jwtAuth` policy.
pub struct Verifier {
    pub mode: JwtMode,
    /// Where the token is read.
    pub location: CredentialLocation,
    issuers: Vec<Issuer>,
    verified: VerifiedTokens,
}

/// One verifier per distinct `jwtAuth` policy of a config.
#[derive(Default)]
pub struct Verifiers(HashMap<JwtAuth, Arc<Verifier>>);

impl Verifiers {
    /// Reads and parses every JWKS file and inline set `config` names; fetched sets come
    /// from `remote`.
    pub fn load(config: &Config, remote: &RemoteKeySets) -> Result<Verifiers, JwksError> {
        let mut out = HashMap::new();
        let policies = config
            .binds
            .iter()
            .flat_map(|b| &b.listeners)
            .flat_map(|l| &l.routes)
            .flat_map(|r| {
                let mcp = r.policies.mcp_authentication.as_ref().map(|m| &m.jwt);
                r.policies.jwt_auth.iter().chain(mcp)
            });
        for policy in policies {
            if !out.contains_key(policy) {
                out.insert(policy.clone(), Arc::new(Verifier::load(policy, remote)?));
            }
        }
        Ok(Verifiers(out))
    }

    pub fn get(&self, policy: &JwtAuth) -> Option<&Arc<Verifier>> {
        self.0.get(policy)
    }
}

impl Verifier {
    pub fn load(policy: &JwtAuth, remote: &RemoteKeySets) -> Result<Verifier, JwksError> {
        let issuers = policy
            .providers
            .iter()
            .map(|p| Issuer::load(p, remote))
            .collect::<Result<_, _>>()?;
        Ok(Verifier {
            mode: policy.mode,
            location: policy.location.clone(),
            issuers,
            verified: VerifiedTokens::default(),
        })
    }

    /// The claims of a valid token, or why it is not; a token whose key a fetched set lacks
    /// (or that arrives before the set) waits for a fetch, at most one per
    /// [`remote::REFETCH_AT_MOST_EVERY`].
    pub async fn verify_fetching(&self, token: &str) -> Result<Arc<Claims>, Rejection> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(claims) = self.verified.get(token, now) {
            return Ok(claims);
        }
        let mut verified = self.verify_with(token);
        if matches!(
            verified,
            Err(Rejection::UnknownKey | Rejection::KeysUnavailable)
        ) && let Some(set) = self.remote_set(token)
        {
            set.refresh_on_demand().await;
            verified = self.verify_with(token);
        }
        let (claims, with) = verified?;
        let claims = Arc::new(claims);
        self.verified.insert(token, claims.clone(), with, now);
        Ok(claims)
    }

    /// The fetched key set of the token's issuer, if its keys are fetched.
    fn remote_set(&self, token: &str) -> Option<Arc<RemoteJwks>> {
        let claims = jsonwebtoken::dangerous::insecure_decode_claims::<Claims>(token).ok()?;
        match &self.issuer(&claims)?.keys {
            KeySource::Remote(set) => Some(set.clone()),
            KeySource::Fixed(_) => None,
        }
    }

    fn issuer(&self, unverified: &Claims) -> Option<&Issuer> {
        let iss = unverified.get("iss").and_then(Value::as_str)?;
        self.issuers.iter().find(|i| i.name == iss)
    }

    /// The claims of a valid token, or why it is not, with the keys known now.
    pub fn verify(&self, token: &str) -> Result<Claims, Rejection> {
        self.verify_with(token).map(|(claims, _)| claims)
    }

    /// [`Verifier::verify`], with the fetched keys that verified the token.
    fn verify_with(&self, token: &str) -> Result<(Claims, VerifiedWith), Rejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
                Rejection::Algorithm
            }
            _ => Rejection::Malformed,
        })?;
        if header.alg.family() == AlgorithmFamily::Hmac {
            return Err(Rejection::Algorithm);
        }
        let issuer = match self.issuers.as_slice() {
            // The one issuer's validation checks `iss`: no need to read the payload twice.
            [only] => only,
            // The issuer picks the keys; nothing else of the unverified payload is trusted.
            _ => {
                let unverified: Claims = jsonwebtoken::dangerous::insecure_decode_claims(token)
                    .map_err(|_| Rejection::Malformed)?;
                self.issuer(&unverified).ok_or(Rejection::UnknownIssuer)?
            }
        };
        let held: Arc<Vec<Key>>;
        let (keys, fetched): (&[Key], VerifiedWith) = match &issuer.keys {
            KeySource::Fixed(keys) => (keys, None),
            KeySource::Remote(set) => {
                held = set.keys().ok_or(Rejection::KeysUnavailable)?;
                (&held, Some((set.clone(), held.clone())))
            }
        };
        let mut candidates = keys
            .iter()
            .filter(|k| header.kid.is_none() || k.kid == header.kid)
            .peekable();
        if candidates.peek().is_none() {
            return Err(Rejection::UnknownKey);
        }
        let Some(validation) = issuer.validation(header.alg) else {
            return Err(Rejection::Algorithm);
        };
        let mut refused = Rejection::Algorithm;
        for key in candidates.filter(|k| k.algorithms.contains(&header.alg)) {
            match jsonwebtoken::decode::<Claims>(token, &key.key, validation) {
                Ok(data) => return issuer.require(data.claims).map(|c| (c, fetched)),
                Err(e) => {
                    refused = rejection(e.kind());
                    // Another key of the issuer may have signed a token without a `kid`.
                    if refused != Rejection::BadSignature {
                        return Err(refused);
                    }
                }
            }
        }
        Err(refused)
    }
}

impl Issuer {
    fn load(provider: &JwtProvider, remote: &RemoteKeySets) -> Result<Issuer, JwksError> {
        let (text, file) = match &provider.jwks {
            Jwks::Url(url) => return Ok(Issuer::new(provider, KeySource::Remote(remote.get(url)))),
            Jwks::Inline(text) => (text.clone(), None),
            Jwks::File(path) => {
                let file = Some(path.display().to_string());
                let text =
                    files::read_to_string(path, files::MAX_SECRET).map_err(|e| JwksError {
                        issuer: provider.issuer.clone(),
                        file: file.clone(),
                        reason: e.to_string(),
                    })?;
                (text, file)
            }
        };
        let keys = keys::parse(&text, keys::Unusable::Refuse).map_err(|reason| JwksError {
            issuer: provider.issuer.clone(),
            file,
            reason,
        })?;
        Ok(Issuer::new(provider, KeySource::Fixed(keys)))
    }

    fn new(provider: &JwtProvider, keys: KeySource) -> Issuer {
        // One validation per accepted algorithm, built here rather than per request.
        let validations = ASYMMETRIC
            .iter()
            .map(|alg| {
                let mut validation = Validation::new(*alg);
                validation.leeway = LEEWAY_SECS;
                validation.validate_nbf = true;
                validation.set_issuer(&[&provider.issuer]);
                if provider.audiences.is_empty() {
                    validation.validate_aud = false;
                } else {
                    validation.set_audience(&provider.audiences);
                }
                (*alg, validation)
            })
            .collect();
        Issuer {
            name: provider.issuer.clone(),
            keys,
            validations,
            required_claims: provider.required_claims.clone(),
        }
    }

    /// The checks of a token signed with `alg`; `None` for an algorithm never accepted.
    fn validation(&self, alg: Algorithm) -> Option<&Validation> {
        self.validations
            .iter()
            .find_map(|(a, v)| (*a == alg).then_some(v))
    }

    /// `requiredClaims`: every one present.
    fn require(&self, claims: Claims) -> Result<Claims, Rejection> {
        match self
            .required_claims
            .iter()
            .find(|c| !claims.contains_key(*c))
        {
            Some(missing) => Err(Rejection::MissingClaim(missing.clone())),
            None => Ok(claims),
        }
    }
}

fn rejection(kind: &ErrorKind) -> Rejection {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_) => Rejection::BadSignature,
        ErrorKind::ExpiredSignature => Rejection::Expired,
        ErrorKind::ImmatureSignature => Rejection::NotYetValid,
        ErrorKind::InvalidAudience => Rejection::WrongAudience,
        ErrorKind::InvalidIssuer => Rejection::UnknownIssuer,
        ErrorKind::MissingRequiredClaim(claim) => Rejection::MissingClaim(claim.clone()),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => Rejection::Algorithm,
        _ => Rejection::Malformed,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn callers_without_a_subject_never_share_an_identity() {
        let claims = |v: Value| v.as_object().unwrap().clone();
        let a = claims(json!({"iss": "i", "client_id": "a", "exp": 1}));
        let b = claims(json!({"iss": "i", "client_id": "b", "exp": 1}));
        assert_ne!(identity(&a), identity(&b));
        let first = claims(json!({"iss": "i", "sub": "s", "exp": 1}));
        let refreshed = claims(json!({"iss": "i", "sub": "s", "exp": 2}));
        assert_eq!(identity(&first), identity(&refreshed));
    }

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{EncodingKey, Header, get_current_timestamp};
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://idp.test";

    /// A generated key: its signing key and its public JWK.
    struct TestKey {
        signing: EncodingKey,
        alg: Algorithm,
        jwk: Value,
    }

    fn ec_p256(kid: &str) -> TestKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = pair.public_key_raw();
        TestKey {
            signing: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
            alg: Algorithm::ES256,
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..])}),
        }
    }

    fn ed25519(kid: &str) -> TestKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        TestKey {
            signing: EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap(),
            alg: Algorithm::EdDSA,
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(pair.public_key_raw())}),
        }
    }

    fn policy(keys: &[&TestKey], audiences: &[&str], required: &[&str]) -> JwtAuth {
        let jwks = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
        let yaml = format!(
            "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{{host: 'a:1'}}]\n      policies:\n        jwtAuth:\n          issuer: {ISSUER}\n          audiences: {audiences:?}\n          jwks: '{jwks}'\n          jwtValidationOptions: {{requiredClaims: {required:?}}}\n"
        );
        let config = tollgate_shared::config::load_str(&yaml, "t.yaml", &HashMap::new()).unwrap();
        config.binds[0].listeners[0].routes[0]
            .policies
            .jwt_auth
            .clone()
            .unwrap()
    }

    fn token(key: &TestKey, kid: Option<&str>, claims: Value) -> String {
        let mut header = Header::new(key.alg);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, &claims, &key.signing).unwrap()
    }

    fn claims(extra: Value) -> Value {
        let mut c = json!({"iss": ISSUER, "sub": "alice", "aud": "api", "exp": get_current_timestamp() + 600});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    }

    #[test]
    fn ec_and_ed25519_tokens_verify_and_every_failure_has_its_reason() {
        let (ec, ed, stranger) = (ec_p256("ec"), ed25519("ed"), ec_p256("ec"));
        let verifier = Verifier::load(
            &policy(&[&ec, &ed], &["api"], &["sub"]),
            &RemoteKeySets::default(),
        )
        .unwrap();
        let now = get_current_timestamp();
        for key in [&ec, &ed] {
            let claims = verifier
                .verify(&token(
                    key,
                    Some(key.jwk["kid"].as_str().unwrap()),
                    claims(json!({})),
                ))
                .unwrap();
            assert_eq!(claims["sub"], "alice");
        }
        // Without a `kid`, every key of the issuer is tried.
        assert!(
            verifier
                .verify(&token(&ed, None, claims(json!({}))))
                .is_ok()
        );
        let cases = [
            (
                token(&stranger, Some("ec"), claims(json!({}))),
                Rejection::BadSignature,
            ),
            (
                token(&ec, Some("nope"), claims(json!({}))),
                Rejection::UnknownKey,
            ),
            (
                token(&ec, Some("ec"), claims(json!({"exp": now - 120}))),
                Rejection::Expired,
            ),
            (
                token(&ec, Some("ec"), claims(json!({"nbf": now + 120}))),
                Rejection::NotYetValid,
            ),
            (
                token(&ec, Some("ec"), claims(json!({"aud": "other"}))),
                Rejection::WrongAudience,
            ),
            (
                token(&ec, Some("ec"), claims(json!({"iss": "https://evil.test"}))),
                Rejection::UnknownIssuer,
            ),
            (
                token(
                    &ec,
                    Some("ec"),
                    json!({"iss": ISSUER, "aud": "api", "exp": now + 600}),
                ),
                Rejection::MissingClaim("sub".into()),
            ),
            ("not-a-jwt".to_string(), Rejection::Malformed),
        ];
        for (token, reason) in cases {
            assert_eq!(verifier.verify(&token), Err(reason));
        }
        // Within the leeway, an expired token still passes.
        let recent = token(&ec, Some("ec"), claims(json!({"exp": now - 10})));
        assert!(verifier.verify(&recent).is_ok());
    }

    #[test]
    fn none_and_hmac_tokens_are_refused() {
        let ec = ec_p256("ec");
        let verifier =
            Verifier::load(&policy(&[&ec], &[], &[]), &RemoteKeySets::default()).unwrap();
        let payload = URL_SAFE_NO_PAD.encode(claims(json!({})).to_string());
        let none = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#));
        // `none` is no algorithm the crate knows: the header itself does not parse.
        assert_eq!(verifier.verify(&none), Err(Rejection::Malformed));
        // HMAC keyed with the public key's text: the classic confusion attack.
        let secret = EncodingKey::from_secret(ec.jwk.to_string().as_bytes()).unwrap();
        let hmac =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(json!({})), &secret)
                .unwrap();
        assert_eq!(verifier.verify(&hmac), Err(Rejection::Algorithm));
        // An ES256 key does not verify a token that claims ES384.
        let mut header = Header::new(Algorithm::ES384);
        header.kid = Some("ec".into());
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let key = EncodingKey::from_ec_pem(p384.serialize_pem().as_bytes()).unwrap();
        let wrong = jsonwebtoken::encode(&header, &claims(json!({})), &key).unwrap();
        assert_eq!(verifier.verify(&wrong), Err(Rejection::Algorithm));
    }

    #[test]
    fn symmetric_keys_and_bad_files_reject_the_config() {
        let oct = JwtAuth {
            providers: vec![JwtProvider {
                jwks: Jwks::Inline(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.into()),
                ..policy(&[&ec_p256("a")], &[], &[]).providers[0].clone()
            }],
            ..policy(&[&ec_p256("a")], &[], &[])
        };
        let e = Verifier::load(&oct, &RemoteKeySets::default())
            .err()
            .unwrap();
        assert!(e.to_string().contains("symmetric"), "{e}");
        let missing = JwtAuth {
            providers: vec![JwtProvider {
                jwks: Jwks::File("/nonexistent/jwks.json".into()),
                ..oct.providers[0].clone()
            }],
            ..oct
        };
        let e = Verifier::load(&missing, &RemoteKeySets::default())
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent/jwks.json"), "{e}");
    }
}
