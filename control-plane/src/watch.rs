//! Watches the gateway files ([`DirWatch`], as the proxy does) and feeds changes to the
//! store; a file is validated again only when its bytes changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tollgate_shared::files;
use tollgate_shared::watch::{DirWatch, is_configmap_swap, parent_dir};

use crate::store::Store;

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
            Source::File(f) => parent_dir(f),
        }
    }

    /// True for a path whose change may change a gateway: its file, a `*.yaml` in the
    /// directory, or a ConfigMap swap.
    fn concerns(&self, path: &Path) -> bool {
        is_configmap_swap(path)
            || match self {
                Source::Dir(_) => path.extension().is_some_and(|x| x == "yaml"),
                Source::File(f) => path.file_name() == f.file_name(),
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
        let bytes = match files::read(path, files::MAX_CONFIG) {
            Ok(bytes) => bytes,
            // Refused by the store with the same error, so the admin API and the log show it.
            Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
                seen.remove(name);
                let _ = store.load(name, path);
                continue;
            }
            // Mid-swap (a ConfigMap update): the next event reads it.
            Err(_) => continue,
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
    let filter = source.clone();
    let mut changes = DirWatch::new(source.dir(), move |p| filter.concerns(p))?;
    loop {
        changes.changed().await;
        sync(&source, &store, &mut seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    /// A gateway file past the size bound is refused with an error the admin API shows, not
    /// skipped without a word while the last good snapshot stays.
    #[test]
    fn a_file_over_the_size_bound_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.yaml");
        std::fs::write(&file, "binds: []\n").unwrap();
        let store = Store::new(Arc::new(Metrics::new()));
        let source = Source::Dir(dir.path().to_path_buf());
        let mut seen = HashMap::new();
        sync(&source, &store, &mut seen);
        assert!(store.gateways()[0].errors.is_empty());
        // Sparse: nothing is written, the file just claims the length.
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(files::MAX_CONFIG + 1)
            .unwrap();
        sync(&source, &store, &mut seen);
        let gateway = &store.gateways()[0];
        assert!(gateway.published.is_some(), "the last good snapshot stays");
        let errors: Vec<String> = gateway.errors.iter().map(|e| e.message.clone()).collect();
        assert_eq!(
            errors,
            ["cannot read the file: larger than the limit of 64.0 MiB"]
        );
    }
}
