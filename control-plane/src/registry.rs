//! Connected proxies and what each was sent, acknowledged or rejected.
//!
//! A proxy is recorded under its credential's identity and the node id it reports, so a
//! caller with another credential cannot take its place: a second stream with the same
//! identity and node id replaces the first. Streams are bounded per identity and in total,
//! and a proxy that left is shown as `DISCONNECTED` for a grace period, then forgotten.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Notify;
use tollgate_shared::proto::v1 as pb;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncStatus {
    /// Nothing sent yet (the gateway has no valid snapshot).
    NotSent,
    /// The proxy acknowledged the gateway's current version.
    Synced,
    /// The proxy runs an older version (a push is on its way or unanswered).
    Stale,
    /// The proxy rejected the version it was sent.
    Error,
    /// The stream ended; the record is forgotten after the grace period.
    Disconnected,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub listener: String,
    pub route: String,
    pub position: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub max_tokens: u64,
    pub level: u64,
    pub seconds_to_refill: u64,
    /// A keyed limit's caller: an identity name, or a short hash of the key's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ProxyRecord {
    /// The credential it connected with (`cert:CN`, `token:NAME`, `anonymous`).
    pub identity: String,
    pub node_id: String,
    pub gateway: String,
    pub build: String,
    pub address: String,
    pub connected_since: SystemTime,
    pub version_sent: Option<String>,
    pub version_acked: Option<String>,
    pub nacked_version: Option<String>,
    pub last_nack: Option<String>,
    pub buckets: Vec<Bucket>,
    pub mcp_sessions: u32,
    /// When its stream ended.
    pub left_at: Option<SystemTime>,
    /// Ends the stream when a newer one with the same identity and node id replaces it.
    replaced: Arc<Notify>,
}

impl ProxyRecord {
    pub fn status(&self, current: Option<&str>) -> SyncStatus {
        if self.left_at.is_some() {
            return SyncStatus::Disconnected;
        }
        match (&self.version_sent, current) {
            (None, _) => SyncStatus::NotSent,
            (Some(sent), _) if self.nacked_version.as_deref() == Some(sent.as_str()) => {
                SyncStatus::Error
            }
            (_, Some(cur)) if self.version_acked.as_deref() == Some(cur) => SyncStatus::Synced,
            _ => SyncStatus::Stale,
        }
    }
}

/// Most rate-limit buckets kept per proxy report (the admin API shows them).
const MAX_REPORTED_BUCKETS: usize = 512;
/// Longest text kept from what a proxy reports (a NACK's error, a bucket's names).
const MAX_REPORTED_TEXT: usize = 1024;

/// `text` cut to at most [`MAX_REPORTED_TEXT`] bytes (on a character boundary): records are
/// kept for every stream and for proxies that left, so what a proxy sends is bounded.
pub fn bounded(text: &str) -> &str {
    if text.len() <= MAX_REPORTED_TEXT {
        return text;
    }
    let mut end = MAX_REPORTED_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// How many streams may be open, and how long a proxy that left stays listed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_streams: usize,
    pub max_streams_per_identity: usize,
    pub forget_after: Duration,
}

/// A stream the registry admitted.
pub struct Registration {
    pub id: u64,
    /// Notified when a newer stream of the same proxy replaces this one.
    pub replaced: Arc<Notify>,
}

pub struct Registry {
    limits: Limits,
    next: AtomicU64,
    proxies: Mutex<BTreeMap<u64, ProxyRecord>>,
}

impl Registry {
    pub fn new(limits: Limits) -> Registry {
        Registry {
            limits,
            next: AtomicU64::new(0),
            proxies: Mutex::new(BTreeMap::new()),
        }
    }

    /// Drops the records of proxies that left more than the grace period ago.
    fn forget_departed(&self, proxies: &mut BTreeMap<u64, ProxyRecord>, now: SystemTime) {
        let grace = self.limits.forget_after;
        proxies.retain(|_, r| {
            r.left_at
                .is_none_or(|t| now.duration_since(t).unwrap_or_default() < grace)
        });
    }

    fn with<R>(&self, id: u64, f: impl FnOnce(&mut ProxyRecord) -> R) -> Option<R> {
        self.proxies.lock().get_mut(&id).map(f)
    }

    /// Records a new stream; `Err` says which bound it would exceed. An earlier stream of the
    /// same identity and node id is ended and its record dropped.
    pub fn register(
        &self,
        hello: &pb::Hello,
        identity: &str,
        address: String,
    ) -> Result<Registration, String> {
        let mut proxies = self.proxies.lock();
        let now = SystemTime::now();
        self.forget_departed(&mut proxies, now);
        let same = |r: &ProxyRecord| r.identity == identity && r.node_id == hello.node_id;
        let previous: Vec<u64> = proxies
            .iter()
            .filter(|(_, r)| same(r))
            .map(|(id, _)| *id)
            .collect();
        for id in previous {
            if let Some(r) = proxies.remove(&id) {
                r.replaced.notify_one();
            }
        }
        let open = proxies.values().filter(|r| r.left_at.is_none());
        let (total, mine) = open.fold((0, 0), |(t, m), r| {
            (t + 1, m + usize::from(r.identity == identity))
        });
        if total >= self.limits.max_streams {
            return Err(format!(
                "the control plane has {total} streams open, its limit (--max-streams)"
            ));
        }
        if mine >= self.limits.max_streams_per_identity {
            return Err(format!(
                "`{identity}` has {mine} streams open, its limit (--max-streams-per-identity)"
            ));
        }
        // Records of proxies that left are bounded too: the oldest go first.
        while proxies.len() >= 2 * self.limits.max_streams {
            let oldest = proxies
                .iter()
                .filter_map(|(id, r)| r.left_at.map(|t| (t, *id)))
                .min();
            match oldest {
                Some((_, id)) => proxies.remove(&id),
                None => break,
            };
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let replaced = Arc::new(Notify::new());
        let record = ProxyRecord {
            identity: identity.to_string(),
            node_id: hello.node_id.clone(),
            gateway: hello.gateway.clone(),
            build: hello.build.clone(),
            address,
            connected_since: now,
            version_sent: None,
            version_acked: None,
            nacked_version: None,
            last_nack: None,
            buckets: Vec::new(),
            mcp_sessions: 0,
            left_at: None,
            replaced: replaced.clone(),
        };
        proxies.insert(id, record);
        Ok(Registration { id, replaced })
    }

    /// The stream ended: the record stays, `DISCONNECTED`, for the grace period.
    pub fn unregister(&self, id: u64) {
        self.with(id, |r| r.left_at = Some(SystemTime::now()));
    }

    pub fn sent(&self, id: u64, version: &str) {
        self.with(id, |r| r.version_sent = Some(version.to_string()));
    }

    pub fn acked(&self, id: u64, version: &str) {
        self.with(id, |r| {
            r.version_acked = Some(version.to_string());
            r.nacked_version = None;
        });
    }

    pub fn nacked(&self, id: u64, version: &str, detail: &str) {
        self.with(id, |r| {
            r.nacked_version = Some(version.to_string());
            r.last_nack = Some(detail.to_string());
        });
    }

    pub fn status_report(&self, id: u64, status: &pb::Status) {
        let buckets = status
            .buckets
            .iter()
            .take(MAX_REPORTED_BUCKETS)
            .map(|b| Bucket {
                listener: bounded(&b.listener).to_string(),
                route: bounded(&b.route).to_string(),
                position: b.position,
                kind: if b.kind == pb::RateLimitKind::Tokens as i32 {
                    "tokens"
                } else {
                    "requests"
                },
                max_tokens: b.max_tokens,
                level: b.level,
                seconds_to_refill: b.seconds_to_refill,
                key: b.key.as_deref().map(|k| bounded(k).to_string()),
            })
            .collect();
        self.with(id, |r| {
            r.buckets = buckets;
            r.mcp_sessions = status.mcp_sessions;
        });
    }

    /// Every record, without those past the grace period.
    pub fn all(&self) -> Vec<ProxyRecord> {
        let mut proxies = self.proxies.lock();
        self.forget_departed(&mut proxies, SystemTime::now());
        proxies.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(node: &str) -> pb::Hello {
        pb::Hello {
            node_id: node.into(),
            gateway: "g".into(),
            build: "test".into(),
            accepts_delta: true,
            accepts_compressed: true,
        }
    }

    fn registry(forget_after: Duration) -> Registry {
        Registry::new(Limits {
            max_streams: 3,
            max_streams_per_identity: 2,
            forget_after,
        })
    }

    #[test]
    fn what_a_proxy_reports_is_bounded() {
        let reg = registry(Duration::from_secs(60));
        let r = reg.register(&hello("a"), "token:x", "addr".into()).unwrap();
        // Cut on a character boundary: byte 1024 falls inside an `é`.
        let long = format!("a{}", "é".repeat(4096));
        reg.nacked(r.id, "v1", bounded(&long));
        let bucket = pb::BucketLevel {
            listener: long.clone(),
            ..Default::default()
        };
        let status = pb::Status {
            buckets: vec![bucket; 10_000],
            ..Default::default()
        };
        reg.status_report(r.id, &status);
        let kept = &reg.all()[0];
        assert_eq!(
            kept.last_nack.as_ref().unwrap().len(),
            MAX_REPORTED_TEXT - 1
        );
        assert_eq!(kept.buckets.len(), MAX_REPORTED_BUCKETS);
        assert_eq!(kept.buckets[0].listener.len(), MAX_REPORTED_TEXT - 1);
    }

    #[test]
    fn departed_proxies_are_shown_then_forgotten() {
        let kept = registry(Duration::from_secs(60));
        let r = kept
            .register(&hello("a"), "token:x", "addr".into())
            .unwrap();
        kept.unregister(r.id);
        let all = kept.all();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].status(None), SyncStatus::Disconnected);

        let forgetful = registry(Duration::ZERO);
        let r = forgetful
            .register(&hello("a"), "token:x", "addr".into())
            .unwrap();
        forgetful.unregister(r.id);
        assert!(forgetful.all().is_empty());
    }

    #[test]
    fn streams_are_bounded_per_identity_and_in_total() {
        let reg = registry(Duration::from_secs(60));
        let _a = reg.register(&hello("a"), "token:x", String::new()).unwrap();
        let _b = reg.register(&hello("b"), "token:x", String::new()).unwrap();
        let err = reg
            .register(&hello("c"), "token:x", String::new())
            .err()
            .unwrap();
        assert!(err.contains("--max-streams-per-identity"), "{err}");
        let _c = reg.register(&hello("c"), "token:y", String::new()).unwrap();
        let err = reg
            .register(&hello("d"), "token:z", String::new())
            .err()
            .unwrap();
        assert!(err.contains("--max-streams"), "{err}");
    }

    #[test]
    fn the_same_identity_and_node_replace_the_older_stream() {
        let reg = registry(Duration::from_secs(60));
        let first = reg.register(&hello("a"), "token:x", String::new()).unwrap();
        let spoof = reg.register(&hello("a"), "token:y", String::new()).unwrap();
        let second = reg.register(&hello("a"), "token:x", String::new()).unwrap();
        assert_ne!(first.id, second.id);
        let ids: Vec<String> = reg.all().into_iter().map(|r| r.identity).collect();
        assert_eq!(ids, ["token:y", "token:x"]);
        // The replaced stream was told to end; the other credential's was not.
        let told = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(async {
                let ended =
                    tokio::time::timeout(Duration::from_millis(50), first.replaced.notified());
                let untouched =
                    tokio::time::timeout(Duration::from_millis(50), spoof.replaced.notified());
                (ended.await.is_ok(), untouched.await.is_ok())
            });
        assert_eq!(told, (true, false));
    }
}
