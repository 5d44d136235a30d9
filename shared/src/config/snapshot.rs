//! A validated config with its version: the unit that sources hand to the data plane.

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::model::Config;

/// Where a snapshot came from, for the admin API and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotSource {
    File(String),
    ControlPlane(String),
}

impl fmt::Display for SnapshotSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotSource::File(p) => write!(f, "file:{p}"),
            SnapshotSource::ControlPlane(u) => write!(f, "control-plane:{u}"),
        }
    }
}

/// A validated config and its version (hash of its canonical form).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub version: String,
    pub config: Arc<Config>,
}

impl Snapshot {
    pub fn new(config: Config) -> Snapshot {
        Snapshot {
            version: version_of(&config),
            config: Arc::new(config),
        }
    }

    /// A snapshot whose version was decided elsewhere: a control plane's push, or computed
    /// by the control plane's store beside the encoding.
    pub fn with_version(config: Config, version: String) -> Snapshot {
        Snapshot {
            version,
            config: Arc::new(config),
        }
    }
}

/// First 16 hex digits of the SHA-256 of the canonical JSON form plus the secret values (which
/// the JSON shows only as references), so a changed key is a new version.
pub fn version_of(config: &Config) -> String {
    let mut hasher = Sha256::new();
    // Streamed into the hash: the canonical form of a large config is megabytes.
    let mut json = std::io::BufWriter::with_capacity(64 * 1024, Hashing(&mut hasher));
    serde_json::to_writer(&mut json, config).expect("the model always serializes");
    json.flush().expect("hashing cannot fail");
    drop(json);
    config.secrets(&mut |_, secret| {
        hasher.update([0]);
        hasher.update(secret.expose());
    });
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes into a hash.
struct Hashing<'a>(&'a mut Sha256);

impl Write for Hashing<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
