//! A local config file, watched and reloaded live.
//!
//! The parent directory is watched rather than the file, because editors replace files (new
//! inode) and Kubernetes swaps ConfigMap symlinks; both show up as directory events. Events
//! are debounced, and a reload happens only when the file's bytes changed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tollgate_shared::{ConfigErrors, ProcessEnv, Snapshot, SnapshotSource, load_str};

use crate::gateway::Gateway;

/// Quiet time after the last file event before reloading.
const DEBOUNCE: Duration = Duration::from_millis(250);
const MAX_DEBOUNCE: Duration = Duration::from_secs(2);

pub struct FileSource {
    path: PathBuf,
    last_text: Option<String>,
}

impl FileSource {
    pub fn new(path: PathBuf) -> FileSource {
        FileSource {
            path,
            last_text: None,
        }
    }

    pub fn source(&self) -> SnapshotSource {
        SnapshotSource::File(self.path.display().to_string())
    }

    /// Reads and validates the file; `Ok(None)` when its bytes did not change.
    pub fn load(&mut self) -> Result<Option<Snapshot>, ConfigErrors> {
        let name = self.path.display().to_string();
        let text = std::fs::read_to_string(&self.path).map_err(|e| {
            ConfigErrors(vec![tollgate_shared::ConfigError {
                file: name.clone(),
                line: 0,
                column: 0,
                path: String::new(),
                message: format!("cannot read the file: {e}"),
            }])
        })?;
        if self.last_text.as_deref() == Some(text.as_str()) {
            return Ok(None);
        }
        let result = load_str(&text, &name, &ProcessEnv);
        self.last_text = Some(text);
        result.map(|c| Some(Snapshot::new(c)))
    }

    /// Watches the file and applies every valid change until the process ends.
    pub async fn watch(mut self, gw: Arc<Gateway>) -> anyhow::Result<()> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let name = self
            .path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) if concerns(&event, &name) => {
                    let _ = tx.send(());
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "file watch error"),
            })?;
        watcher.watch(watch_dir(&self.path), RecursiveMode::NonRecursive)?;
        while rx.recv().await.is_some() {
            // Quiet for DEBOUNCE, but never wait longer than MAX_DEBOUNCE for a busy writer.
            let deadline = tokio::time::Instant::now() + MAX_DEBOUNCE;
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
            self.reload(&gw);
        }
        Ok(())
    }

    fn reload(&mut self, gw: &Arc<Gateway>) {
        let result = match self.load() {
            Ok(None) => return,
            Ok(Some(snapshot)) => {
                let version = snapshot.version.clone();
                gw.apply(snapshot, self.source())
                    .map(|()| version)
                    .map_err(|e| e.to_string())
            }
            Err(errors) => Err(errors.to_string()),
        };
        let m = &gw.services.metrics;
        match result {
            Ok(version) => {
                tracing::info!(%version, file = %self.path.display(), "config reloaded");
                m.reloads.with_label_values(&["file", "success"]).inc();
                m.config_synchronized.set(1);
            }
            Err(error) => {
                tracing::error!(file = %self.path.display(), "config rejected, keeping the last good one:\n{error}");
                m.reloads.with_label_values(&["file", "failure"]).inc();
                m.config_synchronized.set(0);
            }
        }
    }
}

/// A change to the config file itself, or to a Kubernetes `..data` symlink generation.
/// Reads (our own included) and other files in the directory are ignored.
fn concerns(event: &notify::Event, name: &std::ffi::OsStr) -> bool {
    !matches!(event.kind, notify::EventKind::Access(_))
        && event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|f| f == name || f.to_string_lossy().starts_with(".."))
        })
}

fn watch_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
