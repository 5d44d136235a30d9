//! Certificate renewal: the directories of the listener certificates, keys and client-CA roots
//! of the config in force are watched; renewed files are swapped into their listener for new
//! connections, and broken ones keep the last good ones. Renewals are logged and counted on their own
//! (`tollgate_tls_certificate_reloads_total`), never as config loads: the config in force did
//! not change. Followed again after every apply.

use std::path::PathBuf;
use std::sync::Arc;

use super::files;
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::tls::listener::CertCell;

/// Runs until the gateway's services go away.
pub async fn watch(gw: Arc<Gateway>, metrics: Arc<Metrics>) {
    files::follow(
        gw,
        "certificate",
        |rt| {
            let binds = rt.tls.binds.values();
            binds.flat_map(|b| b.cells()).cloned().collect()
        },
        |c: &CertCell| {
            let files = [Some(&c.cert), Some(&c.key), c.root.as_ref()];
            files.into_iter().flatten().map(PathBuf::as_path).collect()
        },
        |cells| reload(cells, &metrics),
    )
    .await;
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
