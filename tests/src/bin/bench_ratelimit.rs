//! `tollgate-bench-ratelimit`: admission checks per second under contention from every core,
//! Tollgate's lock-free bucket against the `governor` crate (GCRA) as the baseline.
#![expect(clippy::disallowed_methods, reason = "a benchmark measures wall time")]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::{Quota, RateLimiter};
use tollgate_data_plane::ratelimit::{Bucket, BucketKey};
use tollgate_shared::config::model::{RateLimit, RateLimitKind};

/// Runs `check` on every core for `secs` seconds; returns checks per second and admissions.
fn contend(threads: usize, secs: f64, check: Arc<dyn Fn() -> bool + Send + Sync>) -> (f64, u64) {
    let admitted = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (check, admitted, total) = (check.clone(), admitted.clone(), total.clone());
            std::thread::spawn(move || {
                let (mut n, mut ok) = (0u64, 0u64);
                while Instant::now() < deadline {
                    for _ in 0..1024 {
                        ok += u64::from(check());
                    }
                    n += 1024;
                }
                total.fetch_add(n, Ordering::Relaxed);
                admitted.fetch_add(ok, Ordering::Relaxed);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    (
        total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64(),
        admitted.load(Ordering::Relaxed),
    )
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_sec = 1_000_000u32;
    println!(
        "admission checks under contention: {threads} threads, {secs} s each, limit {per_sec}/s"
    );
    let mut rows = Vec::new();
    for round in 0..3 {
        let bucket = Arc::new(Bucket::new(
            BucketKey {
                gateway: "bench".into(),
                listener: "l".into(),
                route: "r".into(),
                position: 0,
                kind: RateLimitKind::Requests,
                value: None,
            },
            RateLimit {
                max_tokens: u64::from(per_sec),
                tokens_per_fill: u64::from(per_sec),
                fill_interval: Duration::from_secs(1),
                kind: RateLimitKind::Requests,
                key: None,
            },
            u64::from(per_sec),
        ));
        let ours = contend(threads, secs, Arc::new(move || bucket.try_take(1)));
        let quota = Quota::per_second(NonZeroU32::new(per_sec).unwrap());
        let limiter = Arc::new(RateLimiter::direct(quota));
        let theirs = contend(threads, secs, Arc::new(move || limiter.check().is_ok()));
        eprintln!(
            "round {}: tollgate {:.0}/s, governor {:.0}/s",
            round + 1,
            ours.0,
            theirs.0
        );
        rows.push((ours, theirs));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ours = median(rows.iter().map(|r| r.0.0).collect());
    let theirs = median(rows.iter().map(|r| r.1.0).collect());
    println!("{:<28}{:>16}", "", "checks/s");
    println!("{:<28}{:>16.0}", "tollgate bucket (CAS)", ours);
    println!("{:<28}{:>16.0}", "governor (GCRA)", theirs);
    println!("{:<28}{:>16.2}", "ratio tollgate/governor", ours / theirs);
    let admitted: Vec<(u64, u64)> = rows.iter().map(|r| (r.0.1, r.1.1)).collect();
    println!(
        "admitted per run (tollgate, governor): {admitted:?}; budget {per_sec}/s x {secs} s plus the initial burst"
    );
}
