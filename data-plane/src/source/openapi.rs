//! OpenAPI spec reloads: the directories of the `openapi` targets' spec files of the config in
//! force are watched; a changed spec's tools are what sessions opened from then on get, and a
//! broken one keeps the last good tools. Logged, never counted as config loads: the config did
//! not change. Followed again after every apply.

use std::sync::Arc;

use super::files;
use crate::gateway::Gateway;
use crate::mcp::openapi::SpecCell;

/// Runs until the gateway's services go away.
pub async fn watch(gw: Arc<Gateway>) {
    files::follow(
        gw,
        "OpenAPI spec",
        |rt| rt.openapi.files().cloned().collect(),
        |c: &SpecCell| c.file.iter().map(|f| f.as_path()).collect(),
        reload,
    )
    .await;
}

fn reload(cells: &[Arc<SpecCell>]) {
    for cell in cells {
        let file = cell
            .file
            .as_deref()
            .unwrap_or(std::path::Path::new(""))
            .display();
        match cell.reload() {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!(%file, "OpenAPI spec changed; new MCP sessions get its tools")
            }
            Err(error) => {
                tracing::error!(%file, %error, "OpenAPI spec not used, the last good tools are kept")
            }
        }
    }
}
