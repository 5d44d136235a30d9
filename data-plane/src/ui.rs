//! The Playground web UI on the admin server: static files compiled in, so no build step or CDN.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;

use crate::services::Services;

/// `/ui` (and `/ui/`), its two assets, and `/` redirecting to `/ui`.
pub fn router() -> Router<Arc<Services>> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/ui") }))
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/app.js", get(app_js))
        .route("/ui/style.css", get(style_css))
}

async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", include_str!("ui/index.html"))
}

async fn app_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", include_str!("ui/app.js"))
}

async fn style_css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", include_str!("ui/style.css"))
}

/// A compiled-in file; `no-cache` so the UI of a new binary shows on reload.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
