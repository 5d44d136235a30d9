//! A local config file, watched ([`DirWatch`]) and reloaded live when its bytes change.

use std::path::PathBuf;
use std::sync::Arc;

use tollgate_shared::files;
use tollgate_shared::watch::{DirWatch, is_configmap_swap, parent_dir};
use tollgate_shared::{ConfigErrors, ProcessEnv, Snapshot, SnapshotSource, load_str};

use crate::gateway::Gateway;
use crate::source::{Outcome, report};

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
        let text = files::read_to_string(&self.path, files::MAX_CONFIG).map_err(|e| {
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
        let name = self.path.file_name().map(|n| n.to_os_string());
        let mut changes = DirWatch::new(parent_dir(&self.path), move |p| {
            p.file_name() == name.as_deref() || is_configmap_swap(p)
        })?;
        loop {
            changes.changed().await;
            self.reload(&gw);
        }
    }

    fn reload(&mut self, gw: &Arc<Gateway>) {
        let source = self.source();
        let result = match self.load() {
            Ok(None) => return,
            Ok(Some(snapshot)) => {
                let version = snapshot.version.clone();
                gw.apply(snapshot, source.clone())
                    .map(|()| version)
                    .map_err(|e| e.to_string())
            }
            Err(errors) => Err(errors.to_string()),
        };
        let outcome = match &result {
            Ok(version) => Outcome::Applied { version },
            Err(error) => Outcome::Rejected {
                version: None,
                error,
            },
        };
        report(&gw.services.metrics, &source, outcome);
    }
}
