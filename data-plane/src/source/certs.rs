//! Certificate renewal: the directories of the listener certificates, keys and client-CA roots
//! of the config in force are watched; renewed files are swapped into their listener for new
//! connections, and broken ones keep the last good ones. Renewals are logged and counted on their own
//! (`tollgate_tls_certificate_reloads_total`), never as config loads: the config in force did
//! not change. Followed again after every apply.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tollgate_shared::watch::DirWatch;

use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::tls::listener::CertCell;

/// Runs until the gateway's services go away.
pub async fn watch(gw: Arc<Gateway>, metrics: Arc<Metrics>) {
    let mut applied = gw.services.applied();
    loop {
        let cells: Vec<Arc<CertCell>> = gw
            .runtime()
            .map(|rt| {
                rt.tls
                    .binds
                    .values()
                    .flat_map(|b| b.cells())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let dirs: BTreeSet<PathBuf> = cells
            .iter()
            .flat_map(|c| [Some(&c.cert), Some(&c.key), c.root.as_ref()])
            .flatten()
            .map(|file| directory(file))
            .collect();
        let mut watches: Vec<DirWatch> = dirs
            .iter()
            .filter_map(|dir| {
                DirWatch::new(dir, |_| true)
                    .inspect_err(|e| tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a certificate directory; renewals there are not seen"))
                    .ok()
            })
            .collect();
        // Files renewed between the apply's read and the watch are seen now.
        reload(&cells, &metrics);
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
                _ = changed => reload(&cells, &metrics),
            }
        }
    }
}

pub(super) fn directory(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn reload(cells: &[Arc<CertCell>], metrics: &Metrics) {
    for cell in cells {
        let (cert, key) = (cell.cert.display(), cell.key.display());
        let result = match cell.reload() {
            Ok(false) => continue,
            Ok(true) => {
                tracing::info!(%cert, %key, root = ?cell.root, "certificate renewed; new connections get it");
                "success"
            }
            Err(e) => {
                tracing::error!(%cert, %key, root = ?cell.root, error = %e, "renewed certificate not used, the last good one is kept");
                "failure"
            }
        };
        metrics
            .tls_certificate_reloads
            .with_label_values(&[result])
            .inc();
    }
}
