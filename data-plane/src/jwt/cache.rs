//! Tokens verified recently, by digest: a signature (hundreds of microseconds for ES256) is
//! checked once per token, not once per request, while the token lasts (5 minutes at most) and
//! the key that verified it is still the issuer's.

use std::sync::Arc;

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use super::keys::Key;
use super::remote::RemoteJwks;
use super::{Claims, LEEWAY_SECS};

/// Tokens kept per verifier; past it the expired ones go, and new ones are not kept.
const MAX_TOKENS: usize = 10_000;
/// The longest a verified token is kept.
const KEEP_SECS: u64 = 300;

/// The fetched key set a token was verified with, and the keys it held then.
pub type VerifiedWith = Option<(Arc<RemoteJwks>, Arc<Vec<Key>>)>;

#[derive(Default)]
pub struct VerifiedTokens {
    entries: DashMap<[u8; 32], Verified>,
}

struct Verified {
    claims: Arc<Claims>,
    /// Unix seconds after which the token is checked again.
    until: u64,
    with: VerifiedWith,
}

impl VerifiedTokens {
    /// The claims of `token` if it was verified and still holds: not expired, and its fetched
    /// keys (if any) not changed since.
    pub fn get(&self, token: &str, now: u64) -> Option<Arc<Claims>> {
        let entry = self.entries.get(&digest(token))?;
        let current = match &entry.with {
            None => true,
            Some((set, keys)) => set.keys().is_some_and(|now| Arc::ptr_eq(&now, keys)),
        };
        (entry.until > now && current).then(|| entry.claims.clone())
    }

    /// Keeps `claims` of a token just verified; a token without `exp` is not kept.
    pub fn insert(&self, token: &str, claims: Arc<Claims>, with: VerifiedWith, now: u64) {
        let Some(exp) = claims.get("exp").and_then(serde_json::Value::as_u64) else {
            return;
        };
        if self.entries.len() >= MAX_TOKENS {
            self.entries.retain(|_, v| v.until > now);
            // Still full of live tokens: this one is checked each time rather than pushing
            // every other caller's out.
            if self.entries.len() >= MAX_TOKENS {
                return;
            }
        }
        let until = exp
            .saturating_add(LEEWAY_SECS)
            .min(now.saturating_add(KEEP_SECS));
        self.entries.insert(
            digest(token),
            Verified {
                claims,
                until,
                with,
            },
        );
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Arc<Claims> {
        Arc::new(
            serde_json::json!({"sub": "a", "exp": exp})
                .as_object()
                .unwrap()
                .clone(),
        )
    }

    #[test]
    fn tokens_are_kept_until_they_expire_and_five_minutes_at_most() {
        let cache = VerifiedTokens::default();
        let now = 1_000_000;
        cache.insert("t1", claims(now + 3600), None, now);
        assert!(cache.get("t1", now + 10).is_some());
        assert!(
            cache.get("t1", now + KEEP_SECS).is_none(),
            "checked again after 5 min"
        );
        cache.insert("t2", claims(now + 30), None, now);
        assert!(cache.get("t2", now + 30 + LEEWAY_SECS).is_none(), "expired");
        assert!(cache.get("t3", now).is_none());
        let no_exp = Arc::new(serde_json::Map::new());
        cache.insert("t4", no_exp, None, now);
        assert!(
            cache.get("t4", now).is_none(),
            "a token without exp is not kept"
        );
    }
}
