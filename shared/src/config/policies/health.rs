//! `policies.health` of a backend (a `host` backend, or an `ai` provider): which answers make
//! it unhealthy (`unhealthyExpression`, CEL over `response.code`) and when and for how long it
//! is evicted from the choice of backends (`eviction`), in agentgateway's spelling.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::model::{Invalid, as_opt_humantime};
use crate::config::path::YamlPath;
use crate::config::settings::check_cel;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot, duration, nanos};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHealth {
    pub unhealthy_expression: Option<String>,
    pub eviction: Option<RawEviction>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEviction {
    pub duration: Option<String>,
    pub restore_health: Option<f64>,
    pub consecutive_failures: Option<u32>,
    pub health_threshold: Option<f64>,
}

/// A backend's health policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthPolicy {
    /// CEL; `true` marks an answer unhealthy. Unset: a 5xx. No answer (refused, reset,
    /// timed out) is always unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhealthy_expression: Option<String>,
    pub eviction: Eviction,
}

/// `health.eviction`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Eviction {
    /// The first eviction's length, multiplied by the evictions in a row; unset: the answer's
    /// `Retry-After`, else 3 s.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "as_opt_humantime"
    )]
    pub duration: Option<Duration>,
    /// The health score (0.0-1.0) a backend comes back with; unset: unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_health: Option<f64>,
    /// Evict after this many unhealthy answers in a row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// Evict when the health score (a moving average of healthy answers) falls below this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_threshold: Option<f64>,
}

/// The longest first eviction accepted.
const MAX_EVICTION: Duration = Duration::from_secs(3600);

impl HealthPolicy {
    fn checked(self) -> Result<HealthPolicy, Vec<Invalid>> {
        let mut problems = Vec::new();
        if let Some(expr) = &self.unhealthy_expression
            && let Err(e) = check_cel(expr)
        {
            problems.push(Invalid::at(
                "unhealthyExpression",
                format!("invalid CEL: {e}"),
            ));
        }
        let e = &self.eviction;
        for (field, score) in [
            ("restoreHealth", e.restore_health),
            ("healthThreshold", e.health_threshold),
        ] {
            if score.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
                problems.push(Invalid::at(
                    &format!("eviction.{field}"),
                    format!("`{field}` is a health score, 0.0 to 1.0"),
                ));
            }
        }
        if e.consecutive_failures == Some(0) {
            problems.push(Invalid::at(
                "eviction.consecutiveFailures",
                "`consecutiveFailures` is at least 1",
            ));
        }
        if e.duration.is_some_and(|d| d.is_zero() || d > MAX_EVICTION) {
            problems.push(Invalid::at(
                "eviction.duration",
                "`duration` is more than 0 and at most 1h",
            ));
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }
}

impl Validator<'_> {
    pub fn health(&mut self, raw: &RawHealth, path: &YamlPath) -> Option<HealthPolicy> {
        let ev = raw.eviction.as_ref();
        let duration = match ev.and_then(|e| e.duration.as_ref()) {
            Some(d) => Some(self.duration(d, &path.key("eviction").key("duration"))?),
            None => None,
        };
        let built = HealthPolicy {
            unhealthy_expression: raw.unhealthy_expression.clone(),
            eviction: Eviction {
                duration,
                restore_health: ev.and_then(|e| e.restore_health),
                consecutive_failures: ev.and_then(|e| e.consecutive_failures),
                health_threshold: ev.and_then(|e| e.health_threshold),
            },
        };
        self.checked(built.checked(), path)
    }
}

impl From<&HealthPolicy> for pb::HealthPolicy {
    fn from(h: &HealthPolicy) -> Self {
        let e = &h.eviction;
        pb::HealthPolicy {
            unhealthy_expression: h.unhealthy_expression.clone(),
            eviction_duration_nanos: e.duration.map(nanos),
            restore_health: e.restore_health,
            consecutive_failures: e.consecutive_failures,
            health_threshold: e.health_threshold,
        }
    }
}

impl TryFrom<pb::HealthPolicy> for HealthPolicy {
    type Error = InvalidSnapshot;

    fn try_from(h: pb::HealthPolicy) -> convert::Result<HealthPolicy> {
        HealthPolicy {
            unhealthy_expression: h.unhealthy_expression,
            eviction: Eviction {
                duration: h.eviction_duration_nanos.map(duration),
                restore_health: h.restore_health,
                consecutive_failures: h.consecutive_failures,
                health_threshold: h.health_threshold,
            },
        }
        .checked()
        .map_err(InvalidSnapshot::from)
    }
}
