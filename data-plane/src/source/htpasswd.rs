//! htpasswd reloads: the directories of the `basicAuth` files of the config in force are
//! watched; a changed file's users are swapped in for the next requests, and a broken one keeps
//! the last good users. Logged, never counted as config loads: the config did not change.
//! Followed again after every apply.

use std::sync::Arc;

use super::files;
use crate::gateway::Gateway;
use crate::htpasswd::HtpasswdCell;

/// Runs until the gateway's services go away.
pub async fn watch(gw: Arc<Gateway>) {
    files::follow(
        gw,
        "htpasswd",
        |rt| rt.htpasswd.cells().cloned().collect(),
        |c: &HtpasswdCell| vec![c.file.as_path()],
        reload,
    )
    .await;
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
