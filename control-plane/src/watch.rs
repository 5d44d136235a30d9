//! Watches the gateway files and feeds changes to the store.
//!
//! Like the proxy's file source, the directory is watched (editors replace files, Kubernetes
//! swaps ConfigMap symlinks), events are debounced, and a file is validated again only when
//! its bytes changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::store::Store;

const DEBOUNCE: Duration = Duration::from_millis(250);
const MAX_DEBOUNCE: Duration = Duration::from_secs(2);

/// Where gateways come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Every `*.yaml` directly in the directory is a gateway named by its file stem.
    Dir(PathBuf),
    /// One file, gateway `default`.
    File(PathBuf),
}

impl Source {
    fn dir(&self) -> &Path {
        match self {
            Source::Dir(d) => d,
            Source::File(f) => f
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        }
    }

    /// (gateway name, file) for every gateway present now.
    pub fn gateways(&self) -> std::io::Result<Vec<(String, PathBuf)>> {
        match self {
            Source::File(f) => Ok(vec![("default".to_string(), f.clone())]),
            Source::Dir(d) => {
                let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(d)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p.is_file())
                    .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p)))
                    .collect();
                out.sort();
                Ok(out)
            }
        }
    }
}

/// Loads what changed since the last call; `seen` holds each file's last bytes.
pub fn sync(source: &Source, store: &Store, seen: &mut HashMap<String, Vec<u8>>) {
    let present = match source.gateways() {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(dir = %source.dir().display(), error = %e, "cannot list gateway files");
            return;
        }
    };
    for (name, path) in &present {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        if seen.get(name) == Some(&bytes) {
            continue;
        }
        seen.insert(name.clone(), bytes);
        let _ = store.load(name, path);
    }
    let gone: Vec<String> = seen
        .keys()
        .filter(|n| !present.iter().any(|(p, _)| p == *n))
        .cloned()
        .collect();
    for name in gone {
        seen.remove(&name);
        store.file_removed(&name);
    }
}

/// Watches until the process ends.
pub async fn run(
    source: Source,
    store: Arc<Store>,
    mut seen: HashMap<String, Vec<u8>>,
) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(e) if !matches!(e.kind, notify::EventKind::Access(_)) => {
                let _ = tx.send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "file watch error"),
        })?;
    watcher.watch(source.dir(), RecursiveMode::NonRecursive)?;
    while rx.recv().await.is_some() {
        let deadline = tokio::time::Instant::now() + MAX_DEBOUNCE;
        while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        sync(&source, &store, &mut seen);
    }
    Ok(())
}
