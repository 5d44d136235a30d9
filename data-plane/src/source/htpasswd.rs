//! htpasswd reloads: the directories of the `basicAuth` files of the config in force are
//! watched; a changed file's users are swapped in for the next requests, and a broken one keeps
//! the last good users. Logged, never counted as config loads: the config did not change.
//! Followed again after every apply.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use tollgate_shared::watch::DirWatch;

use super::certs::directory;
use crate::gateway::Gateway;
use crate::htpasswd::HtpasswdCell;

/// Runs until the gateway's services go away.
pub async fn watch(gw: Arc<Gateway>) {
    let mut applied = gw.services.applied();
    loop {
        let cells: Vec<Arc<HtpasswdCell>> = gw
            .runtime()
            .map(|rt| rt.htpasswd.cells().cloned().collect())
            .unwrap_or_default();
        let dirs: BTreeSet<PathBuf> = cells.iter().map(|c| directory(&c.file)).collect();
        let mut watches: Vec<DirWatch> = dirs
            .iter()
            .filter_map(|dir| {
                DirWatch::new(dir, |_| true)
                    .inspect_err(|e| tracing::warn!(dir = %dir.display(), error = %e, "cannot watch an htpasswd directory; changes there are not seen"))
                    .ok()
            })
            .collect();
        // Files changed between the apply's read and the watch are seen now.
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

fn reload(cells: &[Arc<HtpasswdCell>]) {
    for cell in cells {
        let file = cell.file.display();
        match cell.reload() {
            Ok(false) => {}
            Ok(true) => tracing::info!(%file, "htpasswd file changed; its users are in force"),
            Err(error) => {
                tracing::error!(%file, %error, "htpasswd file not used, the last good users are kept")
            }
        }
    }
}
