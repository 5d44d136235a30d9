//! Local rate limits: exact, lock-free token buckets that survive reloads (DESIGN §6).
//!
//! A bucket's whole state (refills seen, tokens left) is one `AtomicU128` changed by
//! compare-and-swap, so concurrent requests can never take more than the budget. Refills are
//! lazy and discrete: `tokensPerFill` per whole `fillInterval` since the bucket was created.
//! Buckets live in [`RateLimits`], outside the swapped config, keyed by their identity; a
//! reload keeps the level of every bucket whose identity remains. LLM requests hold a
//! [`Reservation`] of their estimated tokens until their usage is known. A keyed entry
//! ([`KeyedBuckets`]) has one such bucket per caller, bounded in number.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dashmap::DashMap;

use portable_atomic::AtomicU128;

use parking_lot::Mutex;
use prometheus::IntCounter;
use serde::Serialize;
use tollgate_shared::config::model::{RateLimit, RateLimitKind};

use crate::clock::{self, Clock, Instant};

/// Who a bucket belongs to: stable across reloads while the config keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct BucketKey {
    pub gateway: String,
    pub listener: String,
    pub route: String,
    /// Index in the route's `localRateLimit` list.
    pub position: usize,
    #[serde(rename = "type")]
    pub kind: RateLimitKind,
    /// A keyed entry's bucket: the caller as shown (an identity name, or a short hash of the
    /// key's value; `<null>` for requests without one, `<overflow>` past `maxKeys`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

pub struct Bucket {
    pub key: BucketKey,
    pub limit: RateLimit,
    clock: Clock,
    origin: Instant,
    /// High 64 bits: refills applied so far; low 64 bits: tokens left.
    state: AtomicU128,
}

fn pack(epoch: u64, tokens: u64) -> u128 {
    (u128::from(epoch) << 64) | u128::from(tokens)
}

fn unpack(state: u128) -> (u64, u64) {
    ((state >> 64) as u64, state as u64)
}

/// A bucket's reading, for headers and the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub limit: u64,
    pub remaining: u64,
    /// Whole seconds until the next refill (rounded up).
    pub reset_secs: u64,
}

impl Level {
    /// `x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset` (seconds).
    pub fn write_headers(&self, headers: &mut http::HeaderMap) {
        headers.insert("x-ratelimit-limit", http::HeaderValue::from(self.limit));
        headers.insert(
            "x-ratelimit-remaining",
            http::HeaderValue::from(self.remaining),
        );
        headers.insert(
            "x-ratelimit-reset",
            http::HeaderValue::from(self.reset_secs),
        );
    }
}

/// The bucket closest to refusing, whose level the response reports.
pub fn tightest<'a>(buckets: impl IntoIterator<Item = &'a Arc<Bucket>>) -> Option<Level> {
    buckets
        .into_iter()
        .map(|b| b.level())
        .min_by_key(|l| l.remaining)
}

/// Takes one token from every requests-type bucket, or none: the refused bucket's level.
pub fn admit_request(buckets: &[Arc<Bucket>]) -> Result<(), Level> {
    let requests = buckets
        .iter()
        .filter(|b| b.limit.kind == RateLimitKind::Requests);
    for (i, b) in requests.clone().enumerate() {
        if !b.try_take(1) {
            for taken in requests.take(i) {
                taken.give_back(1);
            }
            return Err(b.level());
        }
    }
    Ok(())
}

/// Gives back what [`admit_request`] took, for a request refused after it (by `llm.*`
/// authorization rules): refused callers spend no tokens.
pub fn refund_request(buckets: &[Arc<Bucket>]) {
    for b in buckets
        .iter()
        .filter(|b| b.limit.kind == RateLimitKind::Requests)
    {
        b.give_back(1);
    }
}

/// The token-type pre-check of any request on an LLM route: every token bucket has at least
/// one token.
pub fn admit_tokens(buckets: &[Arc<Bucket>]) -> Result<(), Level> {
    match buckets
        .iter()
        .find(|b| b.limit.kind == RateLimitKind::Tokens && !b.has_tokens())
    {
        Some(b) => Err(b.level()),
        None => Ok(()),
    }
}

/// Tokens held in the token-type buckets for one LLM request, from admission until its usage
/// is known: concurrent requests cannot all spend the same tokens. Given back if never settled.
pub struct Reservation {
    held: Vec<(Arc<Bucket>, u64)>,
    settled: AtomicBool,
}

impl Reservation {
    /// Takes `estimate` tokens from every token-type bucket, or what it holds when less, but
    /// at least one; or takes none: the level of the bucket that is empty.
    pub fn take(buckets: &[Arc<Bucket>], estimate: u64) -> Result<Reservation, Level> {
        let mut held = Vec::new();
        for b in buckets
            .iter()
            .filter(|b| b.limit.kind == RateLimitKind::Tokens)
        {
            match b.reserve(estimate) {
                Some(taken) => held.push((b.clone(), taken)),
                None => {
                    for (taken_from, n) in &held {
                        taken_from.give_back(*n);
                    }
                    return Err(b.level());
                }
            }
        }
        Ok(Reservation {
            held,
            settled: AtomicBool::new(false),
        })
    }

    /// Replaces what is held with the request's actual `tokens`: the difference is debited
    /// (floored at 0) or given back. Only the first call counts.
    pub fn settle(&self, tokens: u64) {
        if self.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        for (b, held) in &self.held {
            match tokens.checked_sub(*held) {
                Some(more) => b.debit(more),
                None => b.give_back(held - tokens),
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.settle(0);
    }
}

impl Bucket {
    /// A bucket that starts with `tokens` (clamped to its maximum).
    pub fn new(key: BucketKey, limit: RateLimit, tokens: u64) -> Bucket {
        Bucket::with_clock(key, limit, tokens, clock::system())
    }

    /// [`Bucket::new`] on a given clock (a mock one in tests).
    pub fn with_clock(key: BucketKey, limit: RateLimit, tokens: u64, clock: Clock) -> Bucket {
        let tokens = tokens.min(limit.max_tokens);
        Bucket {
            key,
            limit,
            origin: clock.now(),
            clock,
            state: AtomicU128::new(pack(0, tokens)),
        }
    }

    /// Nanoseconds since the bucket was created (u64 covers 584 years).
    fn elapsed_nanos(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(elapsed).unwrap_or(u64::MAX)
    }

    /// The fill interval in nanoseconds; validation keeps it within a year.
    fn interval_nanos(&self) -> u64 {
        u64::try_from(self.limit.fill_interval.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Whole intervals since creation: u64 arithmetic, cheaper than u128 on every check.
    fn epoch_at(&self, now: Instant) -> u64 {
        self.elapsed_nanos(now) / self.interval_nanos()
    }

    /// Applies refills due at `now` to a state.
    fn refilled(&self, state: u128, now: Instant) -> (u64, u64) {
        let (epoch, tokens) = unpack(state);
        let current = self.epoch_at(now);
        if current <= epoch {
            return (epoch, tokens);
        }
        let added = (current - epoch).saturating_mul(self.limit.tokens_per_fill);
        (
            current,
            tokens.saturating_add(added).min(self.limit.max_tokens),
        )
    }

    /// CAS loop: `change` maps tokens to new tokens, or `None` to refuse; `Ok` has the tokens
    /// before and after the change.
    fn update(&self, change: impl Fn(u64) -> Option<u64>) -> Result<(u64, u64), u64> {
        let now = self.clock.now();
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            let (epoch, tokens) = self.refilled(current, now);
            let Some(next) = change(tokens) else {
                return Err(tokens);
            };
            match self.state.compare_exchange_weak(
                current,
                pack(epoch, next),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok((tokens, next)),
                Err(actual) => current = actual,
            }
        }
    }

    /// Takes `n` tokens if all are there.
    pub fn try_take(&self, n: u64) -> bool {
        self.update(|t| t.checked_sub(n)).is_ok()
    }

    /// Takes `n` tokens, or all that are left when fewer: how many were taken, `None` when the
    /// bucket is empty.
    fn reserve(&self, n: u64) -> Option<u64> {
        self.update(|t| (t > 0).then(|| t.saturating_sub(n)))
            .ok()
            .map(|(before, after)| before - after)
    }

    /// Gives back tokens taken for a request that was refused or used fewer.
    pub fn give_back(&self, n: u64) {
        let max = self.limit.max_tokens;
        let _ = self.update(|t| Some(t.saturating_add(n).min(max)));
    }

    /// Removes `n` tokens, stopping at zero (token-type debits after a response).
    pub fn debit(&self, n: u64) {
        let _ = self.update(|t| Some(t.saturating_sub(n)));
    }

    /// True when at least one token is left (the token-type pre-check).
    pub fn has_tokens(&self) -> bool {
        self.level().remaining > 0
    }

    pub fn level(&self) -> Level {
        let now = self.clock.now();
        let (epoch, tokens) = self.refilled(self.state.load(Ordering::Acquire), now);
        let next = epoch
            .saturating_add(1)
            .saturating_mul(self.interval_nanos());
        let wait = next.saturating_sub(self.elapsed_nanos(now));
        Level {
            limit: self.limit.max_tokens,
            remaining: tokens,
            reset_secs: wait.div_ceil(1_000_000_000),
        }
    }
}

/// The buckets of one keyed `localRateLimit` entry: one per distinct value of its key, at
/// most `maxKeys`. Requests whose key is null share one bucket. Past the bound, only buckets
/// that are full and that no request holds are evicted (a bucket with tokens taken is never
/// refilled by eviction); when none can be, new callers share one overflow bucket.
pub struct KeyedBuckets {
    pub key: BucketKey,
    pub limit: RateLimit,
    /// Identity names are shown as they are; other values as a short hash.
    show_values: bool,
    max_keys: usize,
    buckets: DashMap<Box<str>, Arc<Bucket>>,
    null: Arc<Bucket>,
    overflow: Arc<Bucket>,
    evictions: IntCounter,
    clock: Clock,
    origin: Instant,
    /// Held while a caller without a bucket is placed: the bound check, eviction and insert
    /// are one step, so a caller whose bucket another request just made never lands in the
    /// overflow bucket (which would give it more than its budget). Inside: nanoseconds after
    /// `origin` before which no eviction scan runs (a flood of new keys costs one scan a
    /// second, not one each).
    newcomers: Mutex<u64>,
}

/// The least time between two eviction scans of a keyed limit.
const SCAN_EVERY: Duration = Duration::from_secs(1);

impl KeyedBuckets {
    fn new(
        key: BucketKey,
        limit: RateLimit,
        show_values: bool,
        evictions: IntCounter,
        clock: Clock,
    ) -> KeyedBuckets {
        let max_keys = limit.key.as_ref().map_or(1, |k| k.max_keys as usize);
        let shared = |value: &str| {
            let key = BucketKey {
                value: Some(value.to_string()),
                ..key.clone()
            };
            Arc::new(Bucket::new(key, limit.clone(), limit.max_tokens))
        };
        KeyedBuckets {
            null: shared("<null>"),
            overflow: shared("<overflow>"),
            buckets: DashMap::new(),
            key,
            limit,
            show_values,
            max_keys,
            evictions,
            origin: clock.now(),
            clock,
            newcomers: Mutex::new(0),
        }
    }

    /// The bucket of the caller whose key is `value`.
    pub fn bucket(&self, value: Option<&str>) -> Arc<Bucket> {
        let Some(value) = value else {
            return self.null.clone();
        };
        if let Some(b) = self.buckets.get(value) {
            return b.clone();
        }
        let mut next_scan = self.newcomers.lock();
        if let Some(b) = self.buckets.get(value) {
            return b.clone();
        }
        if self.buckets.len() >= self.max_keys {
            self.evict_full(&mut next_scan);
            if self.buckets.len() >= self.max_keys {
                return self.overflow.clone();
            }
        }
        let bucket = Arc::new(self.fresh(value, self.limit.max_tokens));
        self.buckets.insert(value.into(), bucket.clone());
        bucket
    }

    fn fresh(&self, value: &str, tokens: u64) -> Bucket {
        let shown = if self.show_values {
            value.to_string()
        } else {
            short_hash(value)
        };
        let key = BucketKey {
            value: Some(shown),
            ..self.key.clone()
        };
        Bucket::new(key, self.limit.clone(), tokens)
    }

    /// Drops every bucket that is full and held by no request: it is the same as a new one.
    /// Runs at most once before `next_scan`, which it then moves on.
    fn evict_full(&self, next_scan: &mut u64) {
        let now = u64::try_from(
            self.clock
                .now()
                .saturating_duration_since(self.origin)
                .as_nanos(),
        )
        .unwrap_or(u64::MAX);
        if now < *next_scan {
            return;
        }
        *next_scan = now.saturating_add(SCAN_EVERY.as_nanos() as u64);
        let before = self.buckets.len();
        self.buckets
            .retain(|_, b| Arc::strong_count(b) > 1 || b.level().remaining < b.limit.max_tokens);
        let evicted = before.saturating_sub(self.buckets.len());
        self.evictions.inc_by(evicted as u64);
    }

    /// How many callers have a bucket of their own.
    pub fn callers(&self) -> usize {
        self.buckets.len()
    }

    /// The shared buckets, then at most `callers` of the callers' buckets, emptiest first.
    pub fn emptiest(&self, callers: usize) -> Vec<Arc<Bucket>> {
        let mut levels: Vec<(u64, Arc<Bucket>)> = self
            .buckets
            .iter()
            .map(|e| (e.value().level().remaining, e.value().clone()))
            .collect();
        levels.sort_by_key(|(remaining, _)| *remaining);
        let mut out = vec![self.null.clone(), self.overflow.clone()];
        out.extend(levels.into_iter().take(callers).map(|(_, b)| b));
        out
    }

    /// The same callers with `limit`'s settings, each at its level (clamped), the shared
    /// buckets too.
    fn carried_to(&self, limit: &RateLimit) -> KeyedBuckets {
        let mut next = KeyedBuckets::new(
            self.key.clone(),
            limit.clone(),
            self.show_values,
            self.evictions.clone(),
            self.clock.clone(),
        );
        let carry = |old: &Bucket| {
            let level = old.level().remaining;
            Arc::new(Bucket::new(old.key.clone(), limit.clone(), level))
        };
        next.null = carry(&self.null);
        next.overflow = carry(&self.overflow);
        for entry in self.buckets.iter() {
            let level = entry.value().level().remaining;
            let bucket = Arc::new(next.fresh(entry.key(), level));
            next.buckets.insert(entry.key().clone(), bucket);
        }
        next
    }
}

/// `sha256:` and the first 12 hex digits of the value's digest.
fn short_hash(value: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Callers' buckets listed per keyed entry (admin API, control plane report): the emptiest,
/// those being limited; the control plane keeps 512 buckets per proxy.
pub const LISTED_CALLERS: usize = 256;

/// What a `localRateLimit` entry gets from the store: one bucket, or one per caller.
pub enum EntryBuckets {
    One(Arc<Bucket>),
    PerKey(Arc<KeyedBuckets>),
}

/// Every bucket of the gateway, by identity. Touched only by `apply` (and reads for the admin
/// API); requests use the `Arc<Bucket>`s the compiled routes hold.
#[derive(Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<BucketKey, Arc<Bucket>>>,
    keyed: Mutex<HashMap<BucketKey, Arc<KeyedBuckets>>>,
}

impl RateLimits {
    /// Buckets for a new config: kept where the identity remains (level clamped to a new
    /// maximum), full where new; buckets not returned by any call are dropped by `retain`.
    pub fn bucket(
        &self,
        key: BucketKey,
        limit: &RateLimit,
        seen: &mut Vec<BucketKey>,
    ) -> Arc<Bucket> {
        let mut buckets = self.buckets.lock();
        seen.push(key.clone());
        match buckets.get(&key) {
            Some(b) if b.limit == *limit => b.clone(),
            Some(old) => {
                let level = old.level().remaining;
                let b = Arc::new(Bucket::new(key.clone(), limit.clone(), level));
                buckets.insert(key, b.clone());
                b
            }
            None => {
                let b = Arc::new(Bucket::new(key.clone(), limit.clone(), limit.max_tokens));
                buckets.insert(key, b.clone());
                b
            }
        }
    }

    /// The buckets of a keyed entry for a new config: kept (levels clamped) while the entry
    /// and its key expression remain, new otherwise. `show_values`: the key is an identity
    /// name, shown as is.
    pub fn keyed(
        &self,
        key: BucketKey,
        limit: &RateLimit,
        show_values: bool,
        evictions: IntCounter,
        seen: &mut Vec<BucketKey>,
    ) -> Arc<KeyedBuckets> {
        let mut keyed = self.keyed.lock();
        seen.push(key.clone());
        let kept = match keyed.get(&key) {
            Some(old) if old.limit == *limit => return old.clone(),
            Some(old) if old.limit.key == limit.key => Arc::new(old.carried_to(limit)),
            _ => Arc::new(KeyedBuckets::new(
                key.clone(),
                limit.clone(),
                show_values,
                evictions,
                clock::system(),
            )),
        };
        keyed.insert(key, kept.clone());
        kept
    }

    /// Drops the buckets whose identity left the config.
    pub fn retain(&self, seen: &[BucketKey]) {
        self.buckets.lock().retain(|k, _| seen.contains(k));
        self.keyed.lock().retain(|k, _| seen.contains(k));
    }

    /// The buckets of entries without a key.
    pub fn unkeyed(&self) -> Vec<Arc<Bucket>> {
        self.buckets.lock().values().cloned().collect()
    }

    /// Every keyed entry.
    pub fn keyed_entries(&self) -> Vec<Arc<KeyedBuckets>> {
        self.keyed.lock().values().cloned().collect()
    }

    /// All buckets, sorted by identity: with each keyed entry's shared buckets and at most
    /// `callers_per_entry` of its callers' (the emptiest: the callers being limited).
    pub fn all(&self, callers_per_entry: usize) -> Vec<Arc<Bucket>> {
        let mut all = self.unkeyed();
        for entry in self.keyed_entries() {
            all.extend(entry.emptiest(callers_per_entry));
        }
        all.sort_by(|a, b| {
            (&a.key.listener, &a.key.route, a.key.position, &a.key.value).cmp(&(
                &b.key.listener,
                &b.key.route,
                b.key.position,
                &b.key.value,
            ))
        });
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max: u64, per: u64, every: Duration) -> RateLimit {
        RateLimit {
            max_tokens: max,
            tokens_per_fill: per,
            fill_interval: every,
            kind: RateLimitKind::Requests,
            key: None,
        }
    }

    fn key() -> BucketKey {
        BucketKey {
            gateway: "g".into(),
            listener: "l".into(),
            route: "r".into(),
            position: 0,
            kind: RateLimitKind::Requests,
            value: None,
        }
    }

    #[test]
    fn refills_go_on_past_two_to_the_32_intervals() {
        let (clock, time) = Clock::mock();
        let b = Bucket::with_clock(key(), limit(1, 1, Duration::from_nanos(1)), 1, clock);
        time.increment(Duration::from_nanos(u64::from(u32::MAX)));
        assert!(b.try_take(1));
        assert!(!b.try_take(1));
        time.increment(Duration::from_nanos(2));
        assert!(b.try_take(1), "no refill after 2^32 intervals");
    }

    #[test]
    fn huge_intervals_read_without_overflow() {
        let (clock, time) = Clock::mock();
        let b = Bucket::with_clock(key(), limit(2, 1, Duration::MAX), 2, clock);
        assert!(b.try_take(1));
        time.increment(Duration::from_secs(3600));
        let level = b.level();
        assert_eq!(level.remaining, 1);
        assert!(level.reset_secs > 365 * 24 * 3600, "{level:?}");
    }

    #[test]
    fn starts_full_and_refills_per_whole_interval() {
        let (clock, time) = Clock::mock();
        let b = Bucket::with_clock(key(), limit(3, 2, Duration::from_millis(200)), 3, clock);
        assert!(b.try_take(3));
        assert!(!b.try_take(1));
        time.increment(Duration::from_millis(199));
        assert!(!b.try_take(1), "no refill before a whole interval");
        assert_eq!(b.level().reset_secs, 1, "a part of a second rounds up");
        time.increment(Duration::from_millis(1));
        assert!(b.try_take(2));
        assert!(!b.try_take(1));
        time.increment(Duration::from_millis(450));
        assert_eq!(b.level().remaining, 3, "capped at maxTokens");
    }

    #[test]
    fn refills_count_from_creation_not_from_the_last_take() {
        let (clock, time) = Clock::mock();
        let b = Bucket::with_clock(key(), limit(2, 1, Duration::from_secs(10)), 2, clock);
        time.increment(Duration::from_secs(9));
        assert!(b.try_take(2));
        assert_eq!(b.level().reset_secs, 1);
        time.increment(Duration::from_secs(1));
        assert_eq!(
            b.level().remaining,
            1,
            "the interval that began at creation ended"
        );
        time.increment(Duration::from_secs(25));
        assert_eq!(b.level().remaining, 2);
        assert_eq!(b.level().reset_secs, 5);
    }

    #[test]
    fn debit_floors_at_zero_and_give_back_caps() {
        let (clock, _time) = Clock::mock();
        let b = Bucket::with_clock(key(), limit(10, 1, Duration::from_secs(60)), 10, clock);
        b.debit(25);
        assert_eq!(b.level().remaining, 0);
        b.give_back(50);
        assert_eq!(b.level().remaining, 10);
        assert_eq!(b.level().reset_secs, 60);
    }

    #[test]
    fn reservations_are_capped_at_the_level_and_settle_the_difference() {
        let (clock, _time) = Clock::mock();
        let mut tokens = key();
        tokens.kind = RateLimitKind::Tokens;
        let mut l = limit(10, 1, Duration::from_secs(60));
        l.kind = RateLimitKind::Tokens;
        let b = Arc::new(Bucket::with_clock(tokens, l, 10, clock));
        let first = Reservation::take(std::slice::from_ref(&b), 6).unwrap();
        let second = Reservation::take(std::slice::from_ref(&b), 6).unwrap();
        assert_eq!(b.level().remaining, 0, "the second holds the 4 left");
        assert!(Reservation::take(std::slice::from_ref(&b), 6).is_err());
        first.settle(2);
        assert_eq!(b.level().remaining, 4);
        second.settle(9);
        assert_eq!(b.level().remaining, 0, "5 more than held, floored at 0");
        let unused = Reservation::take(std::slice::from_ref(&b), 6);
        assert!(unused.is_err());
        b.give_back(3);
        drop(Reservation::take(std::slice::from_ref(&b), 6).unwrap());
        assert_eq!(b.level().remaining, 3, "dropped unsettled: all given back");
    }

    #[test]
    fn exact_under_contention() {
        let b = Arc::new(Bucket::new(
            key(),
            limit(10_000, 1, Duration::from_secs(3600)),
            10_000,
        ));
        let admitted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (b, admitted) = (b.clone(), admitted.clone());
                std::thread::spawn(move || {
                    for _ in 0..5_000 {
                        if b.try_take(1) {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 10_000);
    }

    #[test]
    fn reload_keeps_levels_and_clamps() {
        let store = RateLimits::default();
        let mut seen = Vec::new();
        let b = store.bucket(key(), &limit(5, 1, Duration::from_secs(60)), &mut seen);
        assert!(b.try_take(4));
        let same = store.bucket(key(), &limit(5, 1, Duration::from_secs(60)), &mut seen);
        assert!(Arc::ptr_eq(&b, &same));
        let raised = store.bucket(key(), &limit(50, 1, Duration::from_secs(60)), &mut seen);
        assert_eq!(
            raised.level().remaining,
            1,
            "raising the maximum does not refill"
        );
        assert!(raised.try_take(1));
        let lowered = store.bucket(key(), &limit(1, 1, Duration::from_secs(60)), &mut seen);
        assert_eq!(lowered.level().remaining, 0);
        store.retain(&[]);
        assert!(store.all(LISTED_CALLERS).is_empty());
    }

    fn keyed_limit(max: u64, max_keys: u32) -> RateLimit {
        RateLimit {
            key: Some(tollgate_shared::config::model::BucketKeyExpr {
                expression: "jwt.sub".into(),
                max_keys,
            }),
            ..limit(max, 1, Duration::from_secs(3600))
        }
    }

    fn evictions() -> IntCounter {
        IntCounter::new("evictions", "test").unwrap()
    }

    #[test]
    fn each_caller_has_a_bucket_and_null_keys_share_one() {
        let store = RateLimits::default();
        let counter = evictions();
        let keyed = store.keyed(key(), &keyed_limit(2, 10), true, counter, &mut Vec::new());
        for caller in ["alice", "bob"] {
            assert!(keyed.bucket(Some(caller)).try_take(2));
            assert!(!keyed.bucket(Some(caller)).try_take(1), "{caller} is out");
        }
        assert!(keyed.bucket(None).try_take(2));
        assert!(
            !keyed.bucket(None).try_take(1),
            "callers without a key share one"
        );
        let alice = keyed.bucket(Some("alice"));
        assert_eq!(alice.key.value.as_deref(), Some("alice"));
        let hashed = KeyedBuckets::new(key(), keyed_limit(2, 10), false, evictions(), Clock::new());
        let shown = hashed.bucket(Some("10.0.0.1")).key.value.clone().unwrap();
        assert!(
            shown.starts_with("sha256:") && !shown.contains("10.0"),
            "{shown}"
        );
    }

    #[test]
    fn only_full_unheld_buckets_are_evicted_and_new_callers_overflow_otherwise() {
        let counter = evictions();
        let (clock, time) = Clock::mock();
        let keyed = KeyedBuckets::new(key(), keyed_limit(2, 2), true, counter.clone(), clock);
        assert!(keyed.bucket(Some("spent")).try_take(1));
        let held = keyed.bucket(Some("held"));
        // Both slots taken: one bucket has tokens taken, the other is held by a request.
        let third = keyed.bucket(Some("third"));
        assert_eq!(third.key.value.as_deref(), Some("<overflow>"));
        assert_eq!(counter.get(), 0);
        assert_eq!(
            keyed.bucket(Some("spent")).level().remaining,
            1,
            "an emptied bucket is never refilled by eviction"
        );
        drop(held);
        assert_eq!(
            keyed.bucket(Some("fourth")).key.value.as_deref(),
            Some("<overflow>"),
            "one scan a second, however many new keys arrive"
        );
        time.increment(SCAN_EVERY);
        // `held` is full and no longer held: evicted for the newcomer.
        let fourth = keyed.bucket(Some("fourth"));
        assert_eq!(fourth.key.value.as_deref(), Some("fourth"));
        assert_eq!(counter.get(), 1);
        assert_eq!(keyed.callers(), 2);
    }

    /// Callers arriving together while the last slots fill: none of them lands in the overflow
    /// bucket after its own bucket exists, so each gets exactly its budget.
    #[test]
    fn concurrent_first_requests_of_callers_filling_the_slots_are_exact() {
        for _ in 0..300 {
            let keyed =
                KeyedBuckets::new(key(), keyed_limit(3, 2), true, evictions(), Clock::new());
            let start = std::sync::Barrier::new(8);
            let taken: Vec<(&str, bool)> = std::thread::scope(|s| {
                let threads: Vec<_> = (0..8)
                    .map(|i| {
                        let caller = ["alice", "bob"][i % 2];
                        let (keyed, start) = (&keyed, &start);
                        s.spawn(move || {
                            start.wait();
                            (caller, keyed.bucket(Some(caller)).try_take(1))
                        })
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().unwrap()).collect()
            });
            for caller in ["alice", "bob"] {
                let admitted = taken.iter().filter(|(c, ok)| *c == caller && *ok).count();
                assert_eq!(admitted, 3, "{caller}: {taken:?}");
            }
        }
    }

    #[test]
    fn callers_levels_survive_a_reload_and_a_changed_limit() {
        let store = RateLimits::default();
        let first = store.keyed(
            key(),
            &keyed_limit(5, 10),
            true,
            evictions(),
            &mut Vec::new(),
        );
        assert!(first.bucket(Some("alice")).try_take(4));
        let same = store.keyed(
            key(),
            &keyed_limit(5, 10),
            true,
            evictions(),
            &mut Vec::new(),
        );
        assert!(Arc::ptr_eq(&first, &same));
        assert!(first.bucket(None).try_take(5));
        let raised = store.keyed(
            key(),
            &keyed_limit(50, 10),
            true,
            evictions(),
            &mut Vec::new(),
        );
        assert_eq!(raised.bucket(Some("alice")).level().remaining, 1);
        assert_eq!(
            raised.bucket(None).level().remaining,
            0,
            "shared buckets carried too"
        );
        assert_eq!(raised.bucket(Some("bob")).level().remaining, 50);
    }
}
