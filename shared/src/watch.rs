//! One debounced watcher for config files, so the proxy and the control plane reload alike.
//!
//! The directory is watched rather than the files: editors replace a file (a new inode) and
//! Kubernetes swaps a ConfigMap's `..data` symlink, and both show up as directory events.
//! Events are debounced into one change, and after each change the watch is armed again, so a
//! directory that was itself replaced (moved away, deleted and recreated) is followed too.
//! Callers compare bytes: a change only says "look again".

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};

/// Quiet time after the last event before a change is reported.
const DEBOUNCE: Duration = Duration::from_millis(250);
/// A busy writer still gets a change reported this often.
const MAX_DEBOUNCE: Duration = Duration::from_secs(2);
/// How often a watch that cannot be armed (the directory is gone) is tried again.
const REARM_RETRY: Duration = Duration::from_secs(1);

/// A watched directory that reports settled changes to the files a filter accepts.
pub struct DirWatch {
    dir: PathBuf,
    watcher: RecommendedWatcher,
    events: mpsc::UnboundedReceiver<()>,
}

impl DirWatch {
    /// Watches `dir` for events on paths `relevant` accepts (and on `dir` itself). Reads,
    /// ours included, are never events.
    pub fn new(
        dir: &Path,
        relevant: impl Fn(&Path) -> bool + Send + 'static,
    ) -> notify::Result<DirWatch> {
        let (tx, events) = mpsc::unbounded_channel();
        let own = dir.to_path_buf();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event)
                    if !matches!(event.kind, notify::EventKind::Access(_))
                        && event.paths.iter().any(|p| *p == own || relevant(p)) =>
                {
                    let _ = tx.send(());
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "file watch error"),
            })?;
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(DirWatch {
            dir: dir.to_path_buf(),
            watcher,
            events,
        })
    }

    /// Waits for the next change: events, then DEBOUNCE of quiet (at most MAX_DEBOUNCE).
    pub async fn changed(&mut self) {
        if self.events.recv().await.is_none() {
            // The sender lives in the watcher we own: this never ends, like a watch.
            std::future::pending::<()>().await;
        }
        let deadline = Instant::now() + MAX_DEBOUNCE;
        while let Ok(Some(())) = timeout(DEBOUNCE, self.events.recv()).await {
            if Instant::now() >= deadline {
                break;
            }
        }
        self.rearm().await;
    }

    /// Watches the directory's current inode: the one watched may have been replaced.
    async fn rearm(&mut self) {
        let _ = self.watcher.unwatch(&self.dir);
        while let Err(e) = self.watcher.watch(&self.dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot watch the config directory; trying again");
            sleep(REARM_RETRY).await;
        }
    }
}

/// True for a Kubernetes ConfigMap's `..data` symlink and its `..<timestamp>` generations.
pub fn is_configmap_swap(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|f| f.to_string_lossy().starts_with(".."))
}

/// The directory a config file sits in (`.` for a bare file name).
pub fn parent_dir(file: &Path) -> &Path {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough for inotify on a loaded machine; a missed change fails much later anyway.
    const WAIT: Duration = Duration::from_secs(10);

    fn watch(dir: &Path) -> DirWatch {
        DirWatch::new(dir, |p| {
            p.file_name().is_some_and(|f| f == "gw.yaml") || is_configmap_swap(p)
        })
        .unwrap()
    }

    async fn changed(w: &mut DirWatch) -> bool {
        timeout(WAIT, w.changed()).await.is_ok()
    }

    #[tokio::test]
    async fn a_replaced_file_is_one_change_and_other_files_none() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = watch(tmp.path());
        std::fs::write(tmp.path().join("other.txt"), "x").unwrap();
        assert!(
            timeout(DEBOUNCE * 4, w.changed()).await.is_err(),
            "another file is not a change"
        );
        // An editor's save: write a temporary file, rename it over the config.
        std::fs::write(tmp.path().join(".gw.yaml.swp"), "a").unwrap();
        std::fs::rename(tmp.path().join(".gw.yaml.swp"), tmp.path().join("gw.yaml")).unwrap();
        assert!(changed(&mut w).await);
        std::fs::write(tmp.path().join("gw.yaml"), "b").unwrap();
        assert!(changed(&mut w).await, "the new inode is watched too");
    }

    #[tokio::test]
    async fn a_replaced_directory_is_watched_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("conf");
        std::fs::create_dir(&dir).unwrap();
        let mut w = watch(&dir);
        std::fs::rename(&dir, tmp.path().join("conf.old")).unwrap();
        std::fs::create_dir(&dir).unwrap();
        assert!(
            changed(&mut w).await,
            "moving the directory away is a change"
        );
        std::fs::write(dir.join("gw.yaml"), "a").unwrap();
        assert!(changed(&mut w).await, "the new directory is watched");
    }

    #[test]
    fn configmap_generations_and_parents() {
        assert!(is_configmap_swap(Path::new("/etc/tg/..data")));
        assert!(is_configmap_swap(Path::new("/etc/tg/..2026_01_01")));
        assert!(!is_configmap_swap(Path::new("/etc/tg/gw.yaml")));
        assert_eq!(parent_dir(Path::new("gw.yaml")), Path::new("."));
        assert_eq!(
            parent_dir(Path::new("/etc/tg/gw.yaml")),
            Path::new("/etc/tg")
        );
    }
}
