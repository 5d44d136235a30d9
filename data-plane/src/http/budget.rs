//! A process-wide budget of request bytes being parsed at once: a JSON tree costs many times
//! its body's bytes, so large bodies wait their turn instead of multiplying memory.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bodies up to this size (nearly all) are not counted: large bodies can only delay other
/// large bodies.
pub const SMALL_BODY: usize = 64 * 1024;

/// Shares of `bytes` bytes (counted in KiB) among the large bodies being parsed and used.
pub struct ParseBudget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl ParseBudget {
    pub fn new(bytes: u32) -> ParseBudget {
        let total_kib = bytes / 1024;
        ParseBudget {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// The share of a body of `len` bytes, waited for: none when it is small; a body larger
    /// than the whole budget takes all of it. Hold it as long as the parsed body lives.
    pub async fn take(&self, len: usize) -> Option<OwnedSemaphorePermit> {
        if len <= SMALL_BODY {
            return None;
        }
        let kib =
            u32::try_from(len.div_ceil(1024)).map_or(self.total_kib, |k| k.min(self.total_kib));
        let permit = self.kib.clone().acquire_many_owned(kib).await;
        Some(permit.expect("the parse budget is never closed"))
    }
}
