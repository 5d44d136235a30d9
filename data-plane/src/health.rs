//! Backend health (outlier detection) for `host` backends and `ai` providers: each answer feeds
//! a backend's state, an unhealthy run evicts it for a while, and the choice of backends skips
//! evicted ones (unless all are). `policies.health` says what is unhealthy and how long an
//! eviction lasts; LLM providers without one keep Tollgate's default backoff.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tollgate_shared::config::model::{Eviction, HealthPolicy};

use crate::clock::{Clock, Instant};

/// The default rule's first ejection, doubling on each repeat up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A policy's eviction when it names no duration and the answer no `Retry-After`.
const DEFAULT_EVICTION: Duration = Duration::from_secs(3);
/// The longest eviction, however many in a row.
const MAX_EVICTION: Duration = Duration::from_secs(3600);
/// Weight of the newest answer in the health score (agentgateway's).
const ALPHA: f64 = 0.3;
/// `restore` when an eviction restores nothing.
const NO_RESTORE: u64 = u64::MAX;

/// What a backend did with one attempt.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// An answer with this status (and its `Retry-After`, if any).
    Status(u16, Option<Duration>),
    /// None: refused, reset or timed out.
    None,
}

/// When an answer is unhealthy and what an unhealthy one costs.
pub enum HealthRule {
    /// Tollgate's rule for LLM providers without `policies.health`: no answer, a 5xx, a 429 or
    /// a status the route retries ejects the provider for 10 s, doubling up to 5 min.
    Backoff { retried: Vec<u16> },
    /// `policies.health`.
    Policy {
        unhealthy: Option<cel::Program>,
        eviction: Eviction,
    },
}

impl HealthRule {
    /// The rule of a validated policy (its expression compiles).
    pub fn compile(policy: &HealthPolicy) -> HealthRule {
        HealthRule::Policy {
            unhealthy: policy
                .unhealthy_expression
                .as_deref()
                .and_then(|e| cel::Program::compile(e).ok()),
            eviction: policy.eviction.clone(),
        }
    }

    fn unhealthy(&self, answer: Answer) -> bool {
        let Answer::Status(code, _) = answer else {
            return true;
        };
        match self {
            HealthRule::Backoff { retried } => {
                code >= 500 || code == 429 || retried.contains(&code)
            }
            HealthRule::Policy {
                unhealthy: Some(program),
                ..
            } => {
                let mut ctx = crate::telemetry::fields::stdlib_context();
                let _ = ctx.add_variable("response", json!({ "code": code }));
                // An expression that fails at run time evicts nothing.
                matches!(program.execute(&ctx), Ok(cel::Value::Bool(true)))
            }
            HealthRule::Policy {
                unhealthy: None, ..
            } => code >= 500,
        }
    }
}

/// One backend's health, shared by the requests that use it.
pub struct HealthState {
    clock: Clock,
    /// Deadlines are milliseconds since this instant (0: not evicted), so they fit atomics.
    origin: Instant,
    evicted_until_ms: AtomicU64,
    evictions_in_a_row: AtomicU32,
    failures_in_a_row: AtomicU32,
    /// The health score, an `f64` in 0.0..=1.0: a moving average of healthy answers.
    score: AtomicU64,
    /// The score to restore when the eviction ends (`NO_RESTORE`: keep it).
    restore: AtomicU64,
}

impl HealthState {
    pub fn new(clock: Clock) -> HealthState {
        HealthState {
            origin: clock.now(),
            clock,
            evicted_until_ms: AtomicU64::new(0),
            evictions_in_a_row: AtomicU32::new(0),
            failures_in_a_row: AtomicU32::new(0),
            score: AtomicU64::new(1.0f64.to_bits()),
            restore: AtomicU64::new(NO_RESTORE),
        }
    }

    fn now_ms(&self) -> u64 {
        // Evictions last at least a second, so a deadline is never 0 ("not evicted").
        let since = self.clock.now().saturating_duration_since(self.origin);
        since.as_millis() as u64
    }

    /// The health score, 0.0 to 1.0.
    pub fn score(&self) -> f64 {
        f64::from_bits(self.score.load(Ordering::Relaxed))
    }

    /// When the eviction ends, in this state's milliseconds (0: not evicted).
    pub fn evicted_until(&self) -> u64 {
        self.evicted_until_ms.load(Ordering::Relaxed)
    }

    /// Whether the backend may be chosen; the first call after an eviction ends restores the
    /// policy's score.
    pub fn available(&self) -> bool {
        let until = self.evicted_until();
        if until == 0 {
            return true;
        }
        if self.now_ms() < until {
            return false;
        }
        let ended =
            self.evicted_until_ms
                .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed);
        if ended.is_ok() {
            let restore = self.restore.swap(NO_RESTORE, Ordering::Relaxed);
            if restore != NO_RESTORE {
                self.score.store(restore, Ordering::Relaxed);
            }
        }
        true
    }

    fn record_score(&self, sample: f64) -> f64 {
        let before = self
            .score
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some((ALPHA * sample + (1.0 - ALPHA) * f64::from_bits(old)).to_bits())
            });
        f64::from_bits(before.unwrap_or_else(|old| old))
    }

    /// Feeds one answer; returns the eviction it caused, if any.
    pub fn record(&self, rule: &HealthRule, answer: Answer) -> Option<Duration> {
        if !rule.unhealthy(answer) {
            self.record_score(1.0);
            self.failures_in_a_row.store(0, Ordering::Relaxed);
            self.evictions_in_a_row.store(0, Ordering::Relaxed);
            return None;
        }
        let failures = self.failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        let score_before = self.record_score(0.0);
        let out = match rule {
            HealthRule::Backoff { .. } => {
                let n = self
                    .evictions_in_a_row
                    .fetch_add(1, Ordering::Relaxed)
                    .min(16);
                BASE_BACKOFF.saturating_mul(1 << n).min(MAX_BACKOFF)
            }
            HealthRule::Policy { eviction, .. } => {
                let thresholds =
                    eviction.consecutive_failures.is_some() || eviction.health_threshold.is_some();
                let due = !thresholds
                    || eviction.consecutive_failures.is_some_and(|n| failures >= n)
                    || eviction.health_threshold.is_some_and(|t| score_before < t);
                if !due {
                    return None;
                }
                let retry_after = match answer {
                    Answer::Status(_, retry_after) => retry_after.filter(|d| !d.is_zero()),
                    Answer::None => None,
                };
                let base = eviction
                    .duration
                    .or(retry_after)
                    .unwrap_or(DEFAULT_EVICTION);
                let n = self.evictions_in_a_row.fetch_add(1, Ordering::Relaxed);
                let restore = eviction.restore_health.map_or(NO_RESTORE, f64::to_bits);
                self.restore.store(restore, Ordering::Relaxed);
                base.saturating_mul(n.saturating_add(1)).min(MAX_EVICTION)
            }
        };
        let until = self.now_ms().saturating_add(out.as_millis() as u64);
        self.evicted_until_ms.store(until, Ordering::Relaxed);
        Some(out)
    }
}

/// A `Retry-After` in seconds (the HTTP-date form is not read).
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let seconds = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    seconds.trim().parse().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(expr: Option<&str>, eviction: Eviction) -> HealthRule {
        HealthRule::compile(&HealthPolicy {
            unhealthy_expression: expr.map(str::to_string),
            eviction,
        })
    }

    #[test]
    fn a_policy_evicts_on_its_expression_for_its_duration_growing_in_a_row() {
        let (clock, mock) = Clock::mock();
        let state = HealthState::new(clock);
        let rule = policy(
            Some("response.code == 503 || response.code == 429"),
            Eviction {
                duration: Some(Duration::from_secs(2)),
                ..Eviction::default()
            },
        );
        assert_eq!(state.record(&rule, Answer::Status(500, None)), None);
        assert!(state.available());
        assert_eq!(
            state.record(&rule, Answer::Status(503, None)),
            Some(Duration::from_secs(2))
        );
        assert!(!state.available());
        mock.increment(Duration::from_millis(2001));
        assert!(state.available());
        assert_eq!(
            state.record(&rule, Answer::None),
            Some(Duration::from_secs(4)),
            "no answer is unhealthy; the second eviction in a row is twice as long"
        );
        mock.increment(Duration::from_secs(5));
        assert_eq!(state.record(&rule, Answer::Status(200, None)), None);
        assert_eq!(
            state.record(&rule, Answer::Status(429, None)),
            Some(Duration::from_secs(2)),
            "a healthy answer ends the run"
        );
    }

    #[test]
    fn thresholds_wait_for_a_run_or_a_low_score_and_restore_on_return() {
        let (clock, mock) = Clock::mock();
        let state = HealthState::new(clock);
        let rule = policy(
            None,
            Eviction {
                consecutive_failures: Some(3),
                restore_health: Some(0.5),
                ..Eviction::default()
            },
        );
        assert_eq!(state.record(&rule, Answer::Status(404, None)), None);
        assert_eq!(state.record(&rule, Answer::Status(502, None)), None);
        assert_eq!(state.record(&rule, Answer::Status(502, None)), None);
        assert_eq!(
            state.record(&rule, Answer::Status(502, Some(Duration::from_secs(7)))),
            Some(Duration::from_secs(7)),
            "the third 5xx in a row; Retry-After sets the length"
        );
        assert!(state.score() < 0.5);
        mock.increment(Duration::from_secs(8));
        assert!(state.available());
        assert_eq!(state.score(), 0.5, "restored on return");

        let by_score = policy(
            None,
            Eviction {
                health_threshold: Some(0.6),
                ..Eviction::default()
            },
        );
        let state = HealthState::new(Clock::mock().0);
        assert_eq!(state.record(&by_score, Answer::None), None, "1.0 before");
        assert_eq!(state.record(&by_score, Answer::None), None, "0.7 before");
        assert_eq!(
            state.record(&by_score, Answer::None),
            Some(DEFAULT_EVICTION),
            "0.49 < 0.6 before"
        );
    }

    #[test]
    fn the_default_backoff_doubles_up_to_five_minutes() {
        let state = HealthState::new(Clock::mock().0);
        let rule = HealthRule::Backoff { retried: vec![418] };
        assert_eq!(state.record(&rule, Answer::Status(404, None)), None);
        let outs: Vec<_> = (0..7)
            .map(|_| state.record(&rule, Answer::Status(418, None)).unwrap())
            .collect();
        assert_eq!(outs[0], BASE_BACKOFF);
        assert_eq!(outs[1], BASE_BACKOFF * 2);
        assert_eq!(outs[6], MAX_BACKOFF);
    }
}
