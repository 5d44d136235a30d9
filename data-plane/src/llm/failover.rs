//! Provider choice for `ai` backends: priority tiers, ejection of failed providers, latency.
//!
//! Groups are tiers: a request uses the first tier with a healthy provider it has not tried;
//! inside a tier the lowest latency wins and listed order breaks ties. A provider's answers
//! feed its health (`crate::health`): without `policies.health`, a failed provider is ejected
//! for 10 s, doubling on each repeat up to 5 min, so later requests skip it (DESIGN §5,
//! beyond agentgateway).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tollgate_shared::config::model::{AiBackend, AiProvider, Policies};

use super::credentials::TokenSource;
use super::edit::RequestEdits;
use crate::clock::{self, Clock};
use crate::health::{Answer, HealthRule, HealthState};
use crate::tls::{BackendClients, PolicyClients};

pub struct ProviderState {
    pub provider: AiProvider,
    /// The provider's own policies over its route's (`Policies::effective`), merged once.
    pub policies: Policies,
    /// The clients of `policies`' `backendTLS`, if any: the provider is then called over
    /// `https` through them.
    pub backend_tls: Option<PolicyClients>,
    /// `policies.ai` edits of its requests, compiled once.
    pub edits: Option<RequestEdits>,
    /// The access tokens of a `gcp` or `azure` `backendAuth` (and of Vertex by default).
    pub tokens: Option<TokenSource>,
    /// `policies.health`, or the default backoff.
    rule: HealthRule,
    health: HealthState,
    /// Exponentially weighted moving average of time to response head, in microseconds.
    latency_us: AtomicU64,
}

/// Where a provider sits: (tier, index in tier).
pub type ProviderId = (usize, usize);

pub struct ProviderPool {
    pub tiers: Vec<Vec<ProviderState>>,
}

impl ProviderPool {
    /// The pool of `backend`, on a route with `route` policies; `clients` holds the config's
    /// `backendTLS` clients.
    pub fn new(backend: &AiBackend, route: &Policies, clients: &BackendClients) -> ProviderPool {
        ProviderPool::with_clock(backend, route, clients, clock::system())
    }

    /// [`ProviderPool::new`] on a given clock (a mock one in tests).
    pub fn with_clock(
        backend: &AiBackend,
        route: &Policies,
        clients: &BackendClients,
        clock: Clock,
    ) -> ProviderPool {
        let tiers = backend
            .groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|p| {
                        let policies = Policies::effective(&[route, &p.policies()]);
                        let rule = match &p.health {
                            Some(policy) => HealthRule::compile(policy),
                            None => HealthRule::Backoff {
                                retried: policies
                                    .retry
                                    .iter()
                                    .flat_map(|r| r.codes.clone())
                                    .collect(),
                            },
                        };
                        ProviderState {
                            rule,
                            health: HealthState::new(clock.clone()),
                            provider: p.clone(),
                            backend_tls: clients.get(&policies),
                            edits: policies.ai.as_ref().and_then(RequestEdits::compile),
                            tokens: TokenSource::for_provider(p, policies.backend_auth.as_ref()),
                            policies,
                            latency_us: AtomicU64::new(0),
                        }
                    })
                    .collect()
            })
            .collect();
        ProviderPool { tiers }
    }

    pub fn get(&self, id: ProviderId) -> &ProviderState {
        &self.tiers[id.0][id.1]
    }

    pub fn providers(&self) -> impl Iterator<Item = &AiProvider> {
        self.tiers.iter().flatten().map(|s| &s.provider)
    }

    /// The next provider for a request that already tried `tried`; `None` when all were tried.
    pub fn choose(&self, tried: &[ProviderId]) -> Option<ProviderId> {
        self.choose_where(tried, |_| true)
    }

    /// [`ProviderPool::choose`] among the providers `accept` takes.
    pub fn choose_where(
        &self,
        tried: &[ProviderId],
        accept: impl Fn(ProviderId) -> bool,
    ) -> Option<ProviderId> {
        let untried = |t: usize, i: usize| !tried.contains(&(t, i)) && accept((t, i));
        for (t, tier) in self.tiers.iter().enumerate() {
            let best = tier
                .iter()
                .enumerate()
                .filter(|(i, s)| untried(t, *i) && s.health.available())
                .min_by_key(|(_, s)| s.latency_us.load(Ordering::Relaxed));
            if let Some((i, _)) = best {
                return Some((t, i));
            }
        }
        // Everything untried is ejected: better to try the soonest back than to fail unasked.
        self.tiers
            .iter()
            .enumerate()
            .flat_map(|(t, tier)| tier.iter().enumerate().map(move |(i, s)| ((t, i), s)))
            .filter(|((t, i), _)| untried(*t, *i))
            .min_by_key(|(_, s)| s.health.evicted_until())
            .map(|(id, _)| id)
    }

    /// Feeds an attempt's answer to the provider's health; returns the eviction it caused.
    pub fn record(&self, id: ProviderId, answer: Answer) -> Option<Duration> {
        let s = self.get(id);
        s.health.record(&s.rule, answer)
    }

    /// Feeds the time to a healthy answer's head to the provider's latency average.
    pub fn record_latency(&self, id: ProviderId, latency: Duration) {
        let s = self.get(id);
        let sample = latency.as_micros() as u64;
        let old = s.latency_us.load(Ordering::Relaxed);
        let next = if old == 0 {
            sample
        } else {
            (old * 7 + sample * 3) / 10
        };
        s.latency_us.store(next.max(1), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{BASE_BACKOFF, MAX_BACKOFF};
    use tollgate_shared::config::model::Provider;

    fn provider(name: &str) -> AiProvider {
        AiProvider::named(name, Provider::OpenAi)
    }

    fn fail(p: &ProviderPool, id: ProviderId) -> Duration {
        p.record(id, Answer::None)
            .expect("the default rule ejects on no answer")
    }

    fn succeed(p: &ProviderPool, id: ProviderId, latency: Duration) {
        assert_eq!(p.record(id, Answer::Status(200, None)), None);
        p.record_latency(id, latency);
    }

    fn pool(tiers: &[&[&str]], clock: Clock) -> ProviderPool {
        let groups = tiers
            .iter()
            .map(|t| t.iter().map(|n| provider(n)).collect())
            .collect();
        ProviderPool::with_clock(
            &AiBackend { groups },
            &Policies::default(),
            &BackendClients::default(),
            clock,
        )
    }

    #[test]
    fn first_tier_first_and_no_repeats() {
        let p = pool(&[&["a", "b"], &["c"]], Clock::mock().0);
        assert_eq!(p.choose(&[]), Some((0, 0)));
        assert_eq!(p.choose(&[(0, 0)]), Some((0, 1)));
        assert_eq!(p.choose(&[(0, 0), (0, 1)]), Some((1, 0)));
        assert_eq!(p.choose(&[(0, 0), (0, 1), (1, 0)]), None);
    }

    #[test]
    fn ejected_providers_are_skipped_and_backoff_doubles() {
        let p = pool(&[&["a", "b"]], Clock::mock().0);
        assert_eq!(fail(&p, (0, 0)), Duration::from_secs(10));
        assert_eq!(p.choose(&[]), Some((0, 1)));
        assert_eq!(fail(&p, (0, 0)), Duration::from_secs(20));
        for _ in 0..10 {
            fail(&p, (0, 0));
        }
        assert_eq!(fail(&p, (0, 0)), MAX_BACKOFF);
        // Only ejected ones left: still try one rather than fail.
        assert_eq!(p.choose(&[(0, 1)]), Some((0, 0)));
    }

    #[test]
    fn an_ejection_expires_and_a_success_resets_the_backoff() {
        let (clock, time) = Clock::mock();
        let p = pool(&[&["a", "b"]], clock);
        fail(&p, (0, 0));
        time.increment(BASE_BACKOFF - Duration::from_millis(1));
        assert_eq!(p.choose(&[]), Some((0, 1)), "still ejected");
        time.increment(Duration::from_millis(1));
        succeed(&p, (0, 1), Duration::from_millis(5));
        succeed(&p, (0, 0), Duration::from_millis(1));
        assert_eq!(p.choose(&[]), Some((0, 0)), "back, and the faster one");
        assert_eq!(fail(&p, (0, 0)), BASE_BACKOFF, "success reset the backoff");
        time.increment(BASE_BACKOFF);
        assert_eq!(fail(&p, (0, 0)), BASE_BACKOFF * 2);
    }

    #[test]
    fn among_ejected_providers_the_soonest_back_is_tried() {
        let (clock, time) = Clock::mock();
        let p = pool(&[&["a"], &["b"]], clock);
        fail(&p, (0, 0));
        fail(&p, (0, 0));
        time.increment(Duration::from_secs(1));
        fail(&p, (1, 0));
        assert_eq!(p.choose(&[]), Some((1, 0)), "b is back in 10 s, a in 19 s");
        time.increment(BASE_BACKOFF);
        assert_eq!(p.choose(&[]), Some((1, 0)), "b is healthy again");
    }

    #[test]
    fn lower_latency_wins_inside_a_tier() {
        let p = pool(&[&["a", "b"]], Clock::mock().0);
        succeed(&p, (0, 0), Duration::from_millis(50));
        succeed(&p, (0, 1), Duration::from_millis(5));
        assert_eq!(p.choose(&[]), Some((0, 1)));
    }
}
