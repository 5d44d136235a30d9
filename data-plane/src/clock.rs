//! The clock that timed policy state (rate-limit buckets, provider ejection) reads, passed in
//! so that tests can use `Clock::mock()` and advance time without sleeping.

use std::sync::OnceLock;

pub use quanta::{Clock, Instant};

/// The process's TSC-based clock: reading it costs a few nanoseconds, a fraction of
/// `std::time::Instant::now()`, and calibrating it once is enough.
pub fn system() -> Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(Clock::new).clone()
}
