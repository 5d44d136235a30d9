//! `policies.localRateLimit`: token buckets per route, counting requests or LLM tokens.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::model::{Invalid, as_humantime};
use crate::config::path::YamlPath;
use crate::config::validate::{MAX_DURATION, Validator};
use crate::convert::{self, InvalidSnapshot, duration, enum_value, nanos};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRateLimit {
    pub max_tokens: u64,
    pub tokens_per_fill: u64,
    pub fill_interval: String,
    #[serde(rename = "type")]
    pub kind: Option<RateLimitKind>,
    /// Tollgate's extension: a CEL expression whose value picks the caller's own bucket.
    pub key: Option<String>,
    pub max_keys: Option<u32>,
}

/// The default bound on the buckets of one keyed entry.
pub const DEFAULT_MAX_KEYS: u32 = 10_000;
/// The largest `maxKeys` accepted.
pub const MAX_MAX_KEYS: u32 = 1_000_000;

/// `key` (Tollgate's extension to agentgateway's `localRateLimit`): one bucket per distinct
/// value of a CEL expression over the request and its identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketKeyExpr {
    /// The CEL expression (`jwt.sub`, `apiKey.name`, `source.address`...).
    pub expression: String,
    /// At most this many buckets; beyond it only full buckets are evicted.
    pub max_keys: u32,
}

/// `localRateLimit[]`: a token bucket, full at start.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Bucket size, 1..=u32::MAX and at least `tokens_per_fill`.
    pub max_tokens: u64,
    /// Tokens added every `fill_interval`.
    pub tokens_per_fill: u64,
    /// Positive refill period.
    #[serde(serialize_with = "as_humantime")]
    pub fill_interval: Duration,
    /// What a token stands for.
    #[serde(rename = "type")]
    pub kind: RateLimitKind,
    /// One bucket per caller, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<BucketKeyExpr>,
}

impl RateLimit {
    /// A bucket that can hold a token and refills.
    pub(crate) fn new(
        max_tokens: u64,
        tokens_per_fill: u64,
        fill_interval: Duration,
        kind: RateLimitKind,
        key: Option<BucketKeyExpr>,
    ) -> Result<RateLimit, Vec<Invalid>> {
        let key_problem = key.as_ref().and_then(|k| {
            if let Err(e) = crate::config::settings::check_cel(&k.expression) {
                Some(Invalid::at("key", format!("not a CEL expression: {e}")))
            } else if k.max_keys == 0 || k.max_keys > MAX_MAX_KEYS {
                Some(Invalid::at(
                    "maxKeys",
                    format!("maxKeys must be 1..={MAX_MAX_KEYS}"),
                ))
            } else {
                None
            }
        });
        let problem = if let Some(p) = key_problem {
            Some(p)
        } else if fill_interval.is_zero() {
            Some(Invalid::at(
                "fillInterval",
                "fillInterval must be greater than zero",
            ))
        } else if fill_interval > MAX_DURATION {
            Some(Invalid::at(
                "fillInterval",
                "fillInterval is too long: durations are at most 366d",
            ))
        } else if max_tokens == 0 {
            Some(Invalid::at("maxTokens", "maxTokens must be at least 1"))
        } else if max_tokens > u64::from(u32::MAX) {
            Some(Invalid::at(
                "maxTokens",
                format!("maxTokens must be at most {}", u32::MAX),
            ))
        } else if max_tokens < tokens_per_fill {
            Some(Invalid::at(
                "maxTokens",
                format!(
                    "maxTokens ({max_tokens}) must be at least tokensPerFill ({tokens_per_fill})"
                ),
            ))
        } else {
            None
        };
        match problem {
            Some(p) => Err(vec![p]),
            None => Ok(RateLimit {
                max_tokens,
                tokens_per_fill,
                fill_interval,
                kind,
                key,
            }),
        }
    }
}

/// `type`: what one token of the bucket pays for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RateLimitKind {
    /// One request.
    Requests,
    /// One LLM token (prompt and completion).
    Tokens,
}

impl Validator<'_> {
    pub fn rate_limit(&mut self, raw: &RawRateLimit, path: &YamlPath) -> Option<RateLimit> {
        let fill_interval = self.duration(&raw.fill_interval, &path.key("fillInterval"))?;
        let kind = raw.kind.unwrap_or(RateLimitKind::Requests);
        let key = match (&raw.key, raw.max_keys) {
            (Some(expression), max_keys) => Some(BucketKeyExpr {
                expression: expression.clone(),
                max_keys: max_keys.unwrap_or(DEFAULT_MAX_KEYS),
            }),
            (None, Some(_)) => {
                self.error(
                    &path.key("maxKeys"),
                    "`maxKeys` bounds a `key`: set `key` too",
                );
                return None;
            }
            (None, None) => None,
        };
        let built = RateLimit::new(
            raw.max_tokens,
            raw.tokens_per_fill,
            fill_interval,
            kind,
            key,
        );
        self.checked(built, path)
    }
}

impl From<&RateLimit> for pb::RateLimit {
    fn from(l: &RateLimit) -> Self {
        pb::RateLimit {
            max_tokens: l.max_tokens,
            tokens_per_fill: l.tokens_per_fill,
            fill_interval_nanos: nanos(l.fill_interval),
            kind: match l.kind {
                RateLimitKind::Requests => pb::RateLimitKind::Requests,
                RateLimitKind::Tokens => pb::RateLimitKind::Tokens,
            } as i32,
            key: l.key.as_ref().map(|k| k.expression.clone()),
            max_keys: l.key.as_ref().map_or(0, |k| k.max_keys),
        }
    }
}

impl TryFrom<pb::RateLimit> for RateLimit {
    type Error = InvalidSnapshot;

    fn try_from(l: pb::RateLimit) -> convert::Result<RateLimit> {
        let kind = match enum_value(l.kind, "type")? {
            pb::RateLimitKind::Requests => RateLimitKind::Requests,
            pb::RateLimitKind::Tokens => RateLimitKind::Tokens,
        };
        RateLimit::new(
            l.max_tokens,
            l.tokens_per_fill,
            duration(l.fill_interval_nanos),
            kind,
            l.key.map(|expression| BucketKeyExpr {
                expression,
                max_keys: l.max_keys,
            }),
        )
        .map_err(InvalidSnapshot::from)
    }
}
