//! Metric series a route has used, kept with its labels, so a request records its metrics
//! without hashing label values or taking a metric vector's lock.

use std::sync::OnceLock;

use http::Method;
use prometheus::{Histogram, HistogramVec, IntCounter};

use crate::metrics::{CLIENT_LABEL_MAX_LEN, method_label};
use crate::telemetry::Reason;

/// Label sets a route keeps per kind of series. Later ones are looked up in the vector each
/// time, so clients cannot grow a route's cache.
const KEPT: usize = 8;

/// The first [`KEPT`] label sets a route records, with their series. Slots are filled once
/// and never replaced: readers only load, and the slots are allocated on first use, so
/// routes that see no traffic cost a pointer.
pub struct Kept<K, V> {
    slots: OnceLock<Box<Slots<K, V>>>,
}

/// A label set and its series, once made.
type Slots<K, V> = [OnceLock<(K, V)>; KEPT];

impl<K, V> Default for Kept<K, V> {
    fn default() -> Self {
        Kept {
            slots: OnceLock::new(),
        }
    }
}

impl<K, V> Kept<K, V> {
    /// Calls `f` with the series of the label set `is_key` recognises, made by `make` the
    /// first time (or every time, once the slots are full). `is_key` must recognise the key
    /// `make` returns.
    pub fn with(
        &self,
        is_key: impl Fn(&K) -> bool,
        make: impl FnOnce() -> (K, V),
        f: impl FnOnce(&V),
    ) {
        let slots = self
            .slots
            .get_or_init(|| Box::new(std::array::from_fn(|_| OnceLock::new())));
        let (mut make, mut made) = (Some(make), None);
        for slot in slots.iter() {
            if slot.get().is_none() {
                let Some(entry) = made.take().or_else(|| make.take().map(|make| make())) else {
                    break;
                };
                // A racing request may fill the slot first: ours then goes to the next one.
                made = slot.set(entry).err();
            }
            if let Some((key, series)) = slot.get()
                && is_key(key)
            {
                return f(series);
            }
        }
        if let Some((_, series)) = made.or_else(|| make.map(|make| make())) {
            f(&series);
        }
    }
}

/// What a finished request adds to the standard label set of its route.
pub struct OutcomeKey {
    backend: Option<Box<str>>,
    method: &'static str,
    status: u16,
    reason: Reason,
}

/// The model pair a route's LLM exchange reports, before its values are bounded.
pub struct ModelsKey {
    operation: &'static str,
    provider: &'static str,
    request: Box<str>,
    response: Box<str>,
}

/// `gen_ai_client_token_usage` for input and output tokens, `gen_ai_server_request_duration`.
pub struct GenAi {
    pub input_tokens: Histogram,
    pub output_tokens: Histogram,
    pub duration: Histogram,
}

/// The series a route's requests record into.
#[derive(Default)]
pub struct RouteSeries {
    /// `agentgateway_request_overhead_seconds`, whose labels are the route's alone.
    overhead: OnceLock<Histogram>,
    requests: Kept<OutcomeKey, (IntCounter, Histogram)>,
    gen_ai: Kept<ModelsKey, GenAi>,
}

impl std::fmt::Debug for RouteSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteSeries")
    }
}

impl RouteSeries {
    /// The overhead histogram of the route labelled `labels`.
    pub fn overhead(&self, vec: &HistogramVec, labels: &[&str; 4]) -> &Histogram {
        self.overhead.get_or_init(|| vec.with_label_values(labels))
    }

    /// Calls `f` with the request counter and duration histogram of an outcome, made by
    /// `make` the first time.
    pub fn requests(
        &self,
        (backend, method, status, reason): (Option<&str>, &Method, u16, Reason),
        make: impl FnOnce() -> (IntCounter, Histogram),
        f: impl FnOnce(&(IntCounter, Histogram)),
    ) {
        // The label's value: made-up methods share `OTHER`, and so share a slot.
        let method = method_label(method);
        self.requests.with(
            |k| {
                k.status == status
                    && k.reason == reason
                    && k.method == method
                    && k.backend.as_deref() == backend
            },
            || {
                let key = OutcomeKey {
                    backend: backend.map(Box::from),
                    method,
                    status,
                    reason,
                };
                (key, make())
            },
            f,
        );
    }

    /// Calls `f` with the gen_ai series of an exchange's models, made by `make` the first
    /// time (which bounds the client-chosen values). Models longer than a label may be are
    /// not kept: each is labelled `other` anew.
    pub fn gen_ai(
        &self,
        (operation, provider, request, response): (&'static str, &'static str, &str, &str),
        make: impl FnOnce() -> GenAi,
        f: impl FnOnce(&GenAi),
    ) {
        if request.len().max(response.len()) > CLIENT_LABEL_MAX_LEN {
            return f(&make());
        }
        self.gen_ai.with(
            |k| {
                k.request.as_ref() == request
                    && k.response.as_ref() == response
                    && k.operation == operation
                    && k.provider == provider
            },
            || {
                let key = ModelsKey {
                    operation,
                    provider,
                    request: request.into(),
                    response: response.into(),
                };
                (key, make())
            },
            f,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// `with` on `kept` for `key`, counting how often a series is made.
    fn lookup(kept: &Kept<u32, u32>, key: u32, made: &Cell<u32>) -> u32 {
        let make = || {
            made.set(made.get() + 1);
            (key, key * 10)
        };
        let found = Cell::new(None);
        kept.with(|k| *k == key, make, |series| found.set(Some(*series)));
        found.get().expect("every lookup gets a series")
    }

    #[test]
    fn a_label_set_is_made_once_and_found_after() {
        let (kept, made) = (Kept::default(), Cell::new(0));
        for _ in 0..3 {
            assert_eq!(lookup(&kept, 7, &made), 70);
        }
        assert_eq!(lookup(&kept, 8, &made), 80);
        assert_eq!(lookup(&kept, 7, &made), 70);
        assert_eq!(made.get(), 2);
    }

    #[test]
    fn label_sets_past_the_bound_are_made_each_time_and_not_kept() {
        let (kept, made) = (Kept::default(), Cell::new(0));
        for key in 0..100 {
            assert_eq!(lookup(&kept, key, &made), key * 10);
        }
        let slots = kept.slots.get().expect("allocated on first use");
        assert!(slots.iter().all(|s| s.get().is_some()));
        assert_eq!(made.get(), 100);
        // The first ones stay found; a later one is made again.
        assert_eq!(lookup(&kept, 0, &made), 0);
        assert_eq!(made.get(), 100);
        assert_eq!(lookup(&kept, 99, &made), 990);
        assert_eq!(made.get(), 101);
    }

    #[test]
    fn a_route_without_requests_allocates_no_slots() {
        let series = RouteSeries::default();
        assert!(series.requests.slots.get().is_none());
        assert!(series.gen_ai.slots.get().is_none());
    }

    #[test]
    fn outcomes_differing_in_any_label_get_their_own_series() {
        let vec = prometheus::IntCounterVec::new(
            prometheus::Opts::new("t", "t"),
            &["backend", "method", "status", "reason"],
        )
        .expect("valid");
        let duration = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new("d", "d"),
            &["backend", "method", "status", "reason"],
        )
        .expect("valid");
        let series = RouteSeries::default();
        let record = |backend: Option<&str>, method: &Method, status: u16, reason: Reason| {
            let labels = [
                backend.unwrap_or("unknown"),
                method.as_str(),
                &status.to_string(),
                reason.as_str(),
            ];
            let make = || {
                (
                    vec.with_label_values(&labels),
                    duration.with_label_values(&labels),
                )
            };
            series.requests((backend, method, status, reason), make, |(c, _)| c.inc());
        };
        let outcomes = [
            (Some("a"), Method::POST, 200, Reason::Upstream),
            (Some("b"), Method::POST, 200, Reason::Upstream),
            (Some("a"), Method::GET, 200, Reason::Upstream),
            (Some("a"), Method::POST, 500, Reason::Upstream),
            (None, Method::POST, 429, Reason::RateLimit),
        ];
        for (backend, method, status, reason) in &outcomes {
            record(*backend, method, *status, *reason);
            record(*backend, method, *status, *reason);
        }
        for (backend, method, status, reason) in &outcomes {
            let count = vec
                .with_label_values(&[
                    backend.unwrap_or("unknown"),
                    method.as_str(),
                    &status.to_string(),
                    reason.as_str(),
                ])
                .get();
            assert_eq!(count, 2, "{backend:?} {method} {status} {reason:?}");
        }
    }

    fn filled<K, V>(kept: &Kept<K, V>) -> usize {
        kept.slots
            .get()
            .map_or(0, |s| s.iter().filter(|s| s.get().is_some()).count())
    }

    /// Slots are bounded per route; made-up methods and over-long models must not use them up.
    #[test]
    fn made_up_methods_share_a_slot_and_long_models_take_none() {
        let series = RouteSeries::default();
        let counter = prometheus::IntCounter::new("c", "c").expect("valid");
        let histogram =
            || prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("h", "h"));
        let histogram = || histogram().expect("valid");
        for i in 0..20 {
            let method = Method::from_bytes(format!("M{i}").as_bytes()).expect("a token");
            let outcome = (Some("b"), &method, 200, Reason::Upstream);
            series.requests(outcome, || (counter.clone(), histogram()), |(c, _)| c.inc());
        }
        assert_eq!(counter.get(), 20);
        assert_eq!(filled(&series.requests), 1);

        let long = "m".repeat(CLIENT_LABEL_MAX_LEN + 1);
        let genai = || GenAi {
            input_tokens: histogram(),
            output_tokens: histogram(),
            duration: histogram(),
        };
        let models = ("chat", "openai", long.as_str(), "short");
        let observed = Cell::new(0);
        for _ in 0..3 {
            series.gen_ai(models, genai, |_| observed.set(observed.get() + 1));
        }
        assert_eq!(observed.get(), 3);
        assert_eq!(filled(&series.gen_ai), 0);
    }
}
