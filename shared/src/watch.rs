//! One debounced watcher for config files, so the proxy and the control plane reload alike.
//!
//! The directory is watched rather than the files: editors replace a file (a new inode) and
//! Kubernetes swaps a ConfigMap's `..data` symlink, and both show up as directory events.
//! Events are debounced into one change, and after each change the watch is armed again, so a
//! directory that was itself replaced (moved away, deleted and recreated) is followed too.
//! Callers compare bytes: a change only says "look again".
//!
//! How long to wait depends on the last event. A writer that closed the file, or a file
//! renamed into place, has finished a save: a short quiet time only gathers the rest of the
//! same save. Any other event (a write to a file still open, a creation, a removal) may be
//! one step of several, so the full debounce applies and a half-written file is not read.
//! Files written as a set (a certificate and its key) always get the full debounce
//! ([`DirWatch::sets`]): each file's save ends before the next one's begins.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};

/// Quiet time after an event that may be one step of several before a change is reported.
const DEBOUNCE: Duration = Duration::from_millis(250);
/// Quiet time after an event that ends a save (see [`ends_a_save`]).
const SETTLED_QUIET: Duration = Duration::from_millis(20);
/// A busy writer still gets a change reported this often.
const MAX_DEBOUNCE: Duration = Duration::from_secs(2);
/// How often a watch that cannot be armed (the directory is gone) is tried again.
const REARM_RETRY: Duration = Duration::from_secs(1);

/// A watched directory that reports settled changes to the files a filter accepts.
pub struct DirWatch {
    dir: PathBuf,
    watcher: RecommendedWatcher,
    /// One per relevant event: whether it ends a save.
    events: mpsc::UnboundedReceiver<bool>,
    /// Quiet time after an event that ends a save.
    settled_quiet: Duration,
}

impl DirWatch {
    /// Watches `dir` for events on paths `relevant` accepts (and on `dir` itself). Reads,
    /// ours included, are never events; a writer closing the file is.
    pub fn new(
        dir: &Path,
        relevant: impl Fn(&Path) -> bool + Send + 'static,
    ) -> notify::Result<DirWatch> {
        let (tx, events) = mpsc::unbounded_channel();
        let own = dir.to_path_buf();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) => {
                    let ends = ends_a_save(&event, &relevant);
                    if (ends || !matches!(event.kind, EventKind::Access(_)))
                        && event.paths.iter().any(|p| *p == own || relevant(p))
                    {
                        let _ = tx.send(ends);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "file watch error"),
            })?;
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(DirWatch {
            dir: dir.to_path_buf(),
            watcher,
            events,
            settled_quiet: SETTLED_QUIET,
        })
    }

    /// The same watch for files saved one after another as a set: the full debounce follows
    /// every event, so a certificate is not read before its key is rewritten.
    pub fn sets(self) -> DirWatch {
        DirWatch {
            settled_quiet: DEBOUNCE,
            ..self
        }
    }

    /// Waits for the next change: events, then quiet (SETTLED_QUIET after an event that ends a
    /// save, unless watching [`sets`](Self::sets), else DEBOUNCE), at most MAX_DEBOUNCE in all.
    pub async fn changed(&mut self) {
        let Some(mut settled) = self.events.recv().await else {
            // The sender lives in the watcher we own: this never ends, like a watch.
            return std::future::pending().await;
        };
        let deadline = Instant::now() + MAX_DEBOUNCE;
        loop {
            let quiet = if settled {
                self.settled_quiet
            } else {
                DEBOUNCE
            };
            match timeout(quiet, self.events.recv()).await {
                Ok(Some(ends)) if Instant::now() < deadline => settled = ends,
                _ => break,
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

/// True for an event after which a file `relevant` accepts is whole: its writer closed it,
/// or it was renamed into place (an editor's save, a ConfigMap's `..data` swap). A rename's
/// destination is its last path.
fn ends_a_save(event: &notify::Event, relevant: impl Fn(&Path) -> bool) -> bool {
    matches!(
        event.kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
    ) && event.paths.last().is_some_and(|p| relevant(p))
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

    /// A writer that pauses with the file open (longer than the quiet time after a save) is
    /// not read half way: the change comes after the close, with the whole file.
    #[tokio::test]
    async fn a_file_written_in_two_steps_is_read_whole() {
        use std::io::Write;
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("gw.yaml");
        let mut w = watch(tmp.path());
        let writer = {
            let file = file.clone();
            std::thread::spawn(move || {
                let mut f = std::fs::File::create(&file).unwrap();
                f.write_all(b"first half\n").unwrap();
                std::thread::sleep(SETTLED_QUIET * 5);
                f.write_all(b"second half\n").unwrap();
            })
        };
        assert!(changed(&mut w).await);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "first half\nsecond half\n"
        );
        writer.join().unwrap();
    }

    /// A certificate saved, then its key: a set's watch reports the change once both are.
    #[tokio::test]
    async fn a_set_saved_file_by_file_is_reported_once_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let (crt, key) = (tmp.path().join("tls.crt"), tmp.path().join("tls.key"));
        let mut w = DirWatch::new(tmp.path(), |_| true).unwrap().sets();
        let writer = std::thread::spawn(move || {
            std::fs::write(&crt, "new certificate").unwrap();
            std::thread::sleep(SETTLED_QUIET * 5);
            std::fs::write(&key, "new key").unwrap();
        });
        assert!(changed(&mut w).await);
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("tls.key")).unwrap(),
            "new key"
        );
        writer.join().unwrap();
    }

    #[test]
    fn a_close_after_writing_and_a_rename_into_place_end_a_save() {
        use notify::Event;
        use notify::event::{CreateKind, DataChange};
        let gw = |p: &Path| p.file_name().is_some_and(|f| f == "gw.yaml");
        let event = |kind, paths: &[&str]| {
            paths
                .iter()
                .fold(Event::new(kind), |e, p| e.add_path(PathBuf::from(p)))
        };
        let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let renamed = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert!(ends_a_save(&event(close, &["/d/gw.yaml"]), gw));
        assert!(ends_a_save(
            &event(renamed, &["/d/.gw.swp", "/d/gw.yaml"]),
            gw
        ));
        assert!(
            !ends_a_save(&event(renamed, &["/d/gw.yaml", "/d/gw.yaml~"]), gw),
            "renamed away"
        );
        assert!(!ends_a_save(&event(close, &["/d/other.txt"]), gw));
        let written = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(!ends_a_save(&event(written, &["/d/gw.yaml"]), gw));
        let created = EventKind::Create(CreateKind::File);
        assert!(!ends_a_save(&event(created, &["/d/gw.yaml"]), gw));
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
