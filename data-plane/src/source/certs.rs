//! Certificate renewal, a config source of its own: the directories of the listener
//! certificates and keys of the config in force are watched; a renewed pair is swapped into
//! its listener for new connections, and a broken one keeps the last good pair and is
//! reported like a rejected config. Followed again after every apply.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tollgate_shared::watch::DirWatch;

use super::{Outcome, report};
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
            .flat_map(|c| [directory(&c.cert), directory(&c.key)])
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
        reload(&gw, &cells, &metrics);
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
                _ = changed => reload(&gw, &cells, &metrics),
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

fn reload(gw: &Gateway, cells: &[Arc<CertCell>], metrics: &Metrics) {
    let Some(rt) = gw.runtime() else { return };
    for cell in cells {
        match cell.reload() {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!(cert = %cell.cert.display(), "certificate renewed; new connections get it");
                report(
                    metrics,
                    &rt.source,
                    Outcome::Applied {
                        version: &rt.snapshot.version,
                    },
                );
            }
            Err(e) => report(
                metrics,
                &rt.source,
                Outcome::Rejected {
                    version: Some(&rt.snapshot.version),
                    error: &format!("renewed certificate not used, the last good one is kept: {e}"),
                },
            ),
        }
    }
}
