//! `jwks.url`: key sets fetched over HTTP(S), shared by every verifier that names the URL and
//! kept across applies, refreshed in the background and re-fetched (rate-limited) when a token
//! names a key the set does not have, so an issuer's key rotation needs no config change.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use parking_lot::Mutex;
use tokio::time::Instant;
use tollgate_shared::config::redact;

use super::keys::{self, Key, Unusable};
use crate::fetch::Fetcher;

/// How often a key set is fetched again while fetches succeed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// The least time between two fetches caused by requests (unknown `kid`, no keys yet): random
/// `kid`s cannot turn clients into a flood on the issuer. Background refreshes come on top.
pub const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(10);
/// The first retry after a failed background fetch; doubled up to [`REFRESH_EVERY`].
const RETRY_FIRST: Duration = Duration::from_secs(5);
/// A JWKS larger than this is refused.
pub const MAX_JWKS_BYTES: usize = 1 << 20;
/// How long one fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The key sets of the config in force, by URL; a set lives while a verifier holds it.
#[derive(Default)]
pub struct RemoteKeySets {
    sets: Mutex<HashMap<String, Weak<RemoteJwks>>>,
    fetcher: Fetcher,
}

impl RemoteKeySets {
    /// The set at `url`: the one already known (with its keys and refresh task), or a new one
    /// whose first fetch starts now. Needs a Tokio runtime.
    pub fn get(&self, url: &str) -> Arc<RemoteJwks> {
        let mut sets = self.sets.lock();
        sets.retain(|_, set| set.strong_count() > 0);
        if let Some(set) = sets.get(url).and_then(Weak::upgrade) {
            return set;
        }
        let set = Arc::new(RemoteJwks {
            url: url.to_string(),
            keys: ArcSwapOption::empty(),
            state: Mutex::new(FetchState::default()),
            fetcher: self.fetcher.clone(),
        });
        sets.insert(url.to_string(), Arc::downgrade(&set));
        tokio::spawn(refresh_in_background(Arc::downgrade(&set)));
        set
    }
}

/// One fetched key set.
pub struct RemoteJwks {
    url: String,
    /// `None` until a fetch has succeeded; a failed fetch keeps the last good keys.
    keys: ArcSwapOption<Vec<Key>>,
    state: Mutex<FetchState>,
    fetcher: Fetcher,
}

#[derive(Default)]
struct FetchState {
    /// The fetch under way, which every caller awaits instead of starting another.
    inflight: Option<Shared<BoxFuture<'static, ()>>>,
    /// When a request last caused a fetch (the background refresh does not count).
    last_demand: Option<Instant>,
    /// Whether the last fetch that ended succeeded.
    last_ok: bool,
}

impl RemoteJwks {
    /// The keys of the last good fetch.
    pub fn keys(&self) -> Option<Arc<Vec<Key>>> {
        self.keys.load_full()
    }

    /// Fetches the set again for a request (an unknown `kid`, no keys yet), unless a request
    /// did less than [`REFETCH_AT_MOST_EVERY`] ago.
    pub async fn refresh_on_demand(self: &Arc<Self>) {
        let fetch = {
            let mut state = self.state.lock();
            if state
                .last_demand
                .is_some_and(|at| at.elapsed() < REFETCH_AT_MOST_EVERY)
            {
                return;
            }
            state.last_demand = Some(Instant::now());
            self.fetch_shared(&mut state)
        };
        fetch.await;
    }

    /// The fetch under way, or a new one; callers await it without holding the lock.
    fn fetch_shared(self: &Arc<Self>, state: &mut FetchState) -> Shared<BoxFuture<'static, ()>> {
        if let Some(fetch) = &state.inflight {
            return fetch.clone();
        }
        // Spawned, so a caller that goes away does not abandon the fetch.
        let fetch = tokio::spawn(self.clone().fetch())
            .map(|_| ())
            .boxed()
            .shared();
        state.inflight = Some(fetch.clone());
        fetch
    }

    async fn fetch(self: Arc<Self>) {
        let fetched = self
            .fetcher
            .get(&self.url, MAX_JWKS_BYTES, FETCH_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
            .and_then(|body| {
                let text = std::str::from_utf8(&body).map_err(|_| "not UTF-8".to_string())?;
                keys::parse(text, Unusable::Skip)
            });
        let ok = fetched.is_ok();
        match fetched {
            Ok(keys) => {
                tracing::debug!(url = %redact::url(&self.url), keys = keys.len(), "JWKS fetched");
                self.keys.store(Some(Arc::new(keys)));
            }
            Err(reason) => tracing::warn!(
                url = %redact::url(&self.url),
                %reason,
                "JWKS fetch failed; keeping the last good keys"
            ),
        }
        let mut state = self.state.lock();
        state.inflight = None;
        state.last_ok = ok;
    }
}

/// Fetches at once, then every [`REFRESH_EVERY`] (sooner, backing off, after a failure),
/// until no verifier holds the set.
async fn refresh_in_background(set: Weak<RemoteJwks>) {
    let mut retry = RETRY_FIRST;
    loop {
        let Some(jwks) = set.upgrade() else {
            return;
        };
        let fetch = jwks.fetch_shared(&mut jwks.state.lock());
        fetch.await;
        let ok = jwks.state.lock().last_ok;
        drop(jwks);
        let wait = if ok {
            retry = RETRY_FIRST;
            REFRESH_EVERY
        } else {
            let wait = retry;
            retry = (retry * 2).min(REFRESH_EVERY);
            wait
        };
        tokio::time::sleep(wait).await;
    }
}
