//! Connected proxies and what each was sent, acknowledged or rejected.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use parking_lot::Mutex;
use serde::Serialize;
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
}

#[derive(Debug, Clone)]
pub struct ProxyRecord {
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
}

impl ProxyRecord {
    pub fn status(&self, current: Option<&str>) -> SyncStatus {
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

#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    proxies: Mutex<BTreeMap<u64, ProxyRecord>>,
}

impl Registry {
    fn with<R>(&self, id: u64, f: impl FnOnce(&mut ProxyRecord) -> R) -> Option<R> {
        self.proxies.lock().get_mut(&id).map(f)
    }

    pub fn register(&self, hello: &pb::Hello, address: String) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let record = ProxyRecord {
            node_id: hello.node_id.clone(),
            gateway: hello.gateway.clone(),
            build: hello.build.clone(),
            address,
            connected_since: SystemTime::now(),
            version_sent: None,
            version_acked: None,
            nacked_version: None,
            last_nack: None,
            buckets: Vec::new(),
            mcp_sessions: 0,
        };
        self.proxies.lock().insert(id, record);
        id
    }

    pub fn unregister(&self, id: u64) {
        self.proxies.lock().remove(&id);
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
            .map(|b| Bucket {
                listener: b.listener.clone(),
                route: b.route.clone(),
                position: b.position,
                kind: if b.kind == pb::RateLimitKind::Tokens as i32 {
                    "tokens"
                } else {
                    "requests"
                },
                max_tokens: b.max_tokens,
                level: b.level,
                seconds_to_refill: b.seconds_to_refill,
            })
            .collect();
        self.with(id, |r| {
            r.buckets = buckets;
            r.mcp_sessions = status.mcp_sessions;
        });
    }

    pub fn all(&self) -> Vec<ProxyRecord> {
        self.proxies.lock().values().cloned().collect()
    }
}
