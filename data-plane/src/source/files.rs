//! Files the config in force names (certificates, htpasswd files) that can change on disk
//! while it stays in force: their directories are watched, and what was read of them is read
//! again when one changes. Followed again after every apply.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tollgate_shared::watch::DirWatch;

use crate::gateway::Gateway;
use crate::runtime::Runtime;

/// Runs until the gateway's services go away: after every apply takes `cells_of` the runtime,
/// watches the directories of their `files_of`, and calls `reload` at once (files changed
/// between the apply's read and the watch) and after each change. `what` names the files in
/// the warning about a directory that cannot be watched.
pub async fn follow<T>(
    gw: Arc<Gateway>,
    what: &str,
    cells_of: impl Fn(&Runtime) -> Vec<Arc<T>>,
    files_of: impl Fn(&T) -> Vec<&Path>,
    reload: impl Fn(&[Arc<T>]),
) {
    let mut applied = gw.services.applied();
    loop {
        let cells = gw.runtime().map(|rt| cells_of(&rt)).unwrap_or_default();
        let dirs: BTreeSet<PathBuf> = cells
            .iter()
            .flat_map(|c| files_of(c))
            .map(directory)
            .collect();
        let mut watches: Vec<DirWatch> = dirs
            .iter()
            .filter_map(|dir| {
                DirWatch::new(dir, |_| true)
                    .map(DirWatch::sets)
                    .inspect_err(|e| tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a directory of {what} files; changes there are not seen"))
                    .ok()
            })
            .collect();
        reload(&cells);
        if watches.is_empty() {
            if applied.changed().await.is_err() {
                return;
            }
            continue;
        }
        loop {
            let changed =
                futures_util::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
            tokio::select! {
                gone = applied.changed() => {
                    if gone.is_err() {
                        return;
                    }
                    break;
                }
                _ = changed => reload(&cells),
            }
        }
    }
}

fn directory(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
