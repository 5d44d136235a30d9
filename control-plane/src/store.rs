//! Gateways and their last valid snapshot. An invalid edit is never published: the last good
//! snapshot stays, and the errors are kept for the admin API.
//!
//! Each gateway has a `watch` channel, so every proxy stream sees only the newest snapshot
//! (latest wins) and an unchanged version is never re-pushed. A snapshot is encoded and
//! compressed once, and its delta from the one it replaces computed once, for every stream to
//! share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::watch;
use tokio::time::Instant;
use tollgate_shared::config::model::Config;
use tollgate_shared::proto::v1 as pb;
use tollgate_shared::{
    ConfigError, LoadMode, ProcessEnv, Snapshot, compress, delta, load_file_with, version_of,
};

use crate::metrics::Metrics;

/// A snapshot as published: the encoded proto every stream sends (compressed, to proxies
/// that decompress, or the delta from the snapshot before it, to proxies that have that one),
/// and the model for the admin API.
pub struct Published {
    pub version: String,
    pub encoded: Bytes,
    pub compressed: pb::Compressed,
    /// From the previous snapshot, when under half the size of `encoded`.
    pub delta: Option<pb::Delta>,
    pub config: Arc<Config>,
    pub file: PathBuf,
    pub published_at: SystemTime,
}

/// A gateway's snapshots as a stream sees them: the newest only.
pub type Updates = watch::Receiver<Option<Arc<Published>>>;

struct Gateway {
    current: watch::Sender<Option<Arc<Published>>>,
    file: PathBuf,
    errors: Vec<ConfigError>,
}

impl Gateway {
    fn new(file: &Path) -> Gateway {
        Gateway {
            current: watch::channel(None).0,
            file: file.to_path_buf(),
            errors: Vec::new(),
        }
    }
}

/// What the admin API shows of a gateway.
pub struct GatewayView {
    pub name: String,
    pub file: PathBuf,
    pub published: Option<Arc<Published>>,
    pub errors: Vec<ConfigError>,
}

pub struct Store {
    gateways: Mutex<BTreeMap<String, Gateway>>,
    metrics: Arc<Metrics>,
}

impl Store {
    pub fn new(metrics: Arc<Metrics>) -> Store {
        Store {
            gateways: Mutex::new(BTreeMap::new()),
            metrics,
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, BTreeMap<String, Gateway>> {
        self.gateways.lock()
    }

    /// The snapshots of a gateway a file defines (valid or not yet); `None` for any other
    /// name, for which nothing is kept.
    pub fn subscribe(&self, gateway: &str) -> Option<Updates> {
        self.lock().get(gateway).map(|g| g.current.subscribe())
    }

    /// Validates `path` as gateway `name` (the same code as `tollgate check`) and publishes
    /// it when valid and new. Returns the errors, if any.
    pub fn load(&self, name: &str, path: &Path) -> Result<(), Vec<ConfigError>> {
        let started = Instant::now();
        let result = load_file_with(path, &ProcessEnv, LoadMode::DeferSecrets);
        let loaded = started.elapsed();
        // Outside the lock, which streams subscribing and the admin API also take. The
        // version and the encoding each take tens of milliseconds for a large config: on two
        // threads. An unchanged version wastes the encoding and the compression.
        let result = result.map(|config| {
            let (version, encoded) = std::thread::scope(|s| {
                let encoding = s.spawn(|| Bytes::from(pb::Config::from(&config).encode_to_vec()));
                let version = version_of(&config);
                let encoded = encoding
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (version, encoded)
            });
            let compressed = compress::compress(&encoded);
            (Snapshot::with_version(config, version), encoded, compressed)
        });
        let encoded_in = started.elapsed() - loaded;
        let mut gateways = self.lock();
        let gw = gateways
            .entry(name.to_string())
            .or_insert_with(|| Gateway::new(path));
        gw.file = path.to_path_buf();
        match result {
            Ok((snapshot, encoded, compressed)) => {
                gw.errors.clear();
                let previous = gw.current.borrow().clone();
                if previous
                    .as_ref()
                    .is_none_or(|p| p.version != snapshot.version)
                {
                    let delta = previous.and_then(|p| smaller_delta(&p, &encoded));
                    tracing::info!(
                        gateway = name,
                        version = %snapshot.version,
                        delta_bytes = delta.as_ref().map(delta::wire_len),
                        compressed_bytes = compressed.lz4.len(),
                        load_ms = millis(loaded),
                        encode_ms = millis(encoded_in),
                        "snapshot published"
                    );
                    let published = Published {
                        compressed,
                        encoded,
                        delta,
                        version: snapshot.version,
                        config: snapshot.config,
                        file: path.to_path_buf(),
                        published_at: SystemTime::now(),
                    };
                    gw.current.send_replace(Some(Arc::new(published)));
                }
                Ok(())
            }
            Err(errors) => {
                tracing::error!(
                    gateway = name,
                    "config rejected, the last good snapshot stays published:\n{errors}"
                );
                self.metrics
                    .validation_failures
                    .with_label_values(&[name])
                    .inc();
                gw.errors = errors.0.clone();
                Err(errors.0)
            }
        }
    }

    /// A gateway whose file disappeared keeps its last snapshot; the admin API says why.
    pub fn file_removed(&self, name: &str) {
        if let Some(gw) = self.lock().get_mut(name) {
            gw.errors = vec![ConfigError {
                file: gw.file.display().to_string(),
                line: 0,
                column: 0,
                path: String::new(),
                message: "the file was removed; the last snapshot stays published".into(),
            }];
        }
    }

    pub fn current(&self, name: &str) -> Option<Arc<Published>> {
        self.lock()
            .get(name)
            .and_then(|g| g.current.borrow().clone())
    }

    pub fn gateways(&self) -> Vec<GatewayView> {
        self.lock()
            .iter()
            .map(|(name, g)| GatewayView {
                name: name.clone(),
                file: g.file.clone(),
                published: g.current.borrow().clone(),
                errors: g.errors.clone(),
            })
            .collect()
    }
}

/// Milliseconds with a fraction, for logs.
fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The delta from `previous` to `encoded`, if it is less than half the full config (else a
/// full push costs about the same and needs no base).
fn smaller_delta(previous: &Published, encoded: &Bytes) -> Option<pb::Delta> {
    let mut d = delta::diff(&previous.encoded, encoded);
    d.base_version.clone_from(&previous.version);
    (delta::wire_len(&d) < encoded.len() / 2).then_some(d)
}
