//! The panel's stylesheet and script, compiled into the binary (no build step, no npm).

use axum::http::header;
use axum::response::IntoResponse;

const CSS: &str = include_str!("../../static/panel.css");
const JS: &str = include_str!("../../static/panel.js");
const DEPLOYMENT_JS: &str = include_str!("../../static/deployment.js");
/// A one-off command's page: its live output, loaded on that page only.
const RUN_JS: &str = include_str!("../../static/run.js");
/// The app page's live output and use graphs, loaded on that page only.
const APP_LIVE_JS: &str = include_str!("../../static/app_live.js");
/// The app page's certificate badges, asked after the page is shown.
const APP_DOMAINS_JS: &str = include_str!("../../static/app_domains.js");
/// The panel's icon (a capstan's drum), also answered at `/favicon.ico`.
const FAVICON: &str = include_str!("../../static/favicon.svg");
const CACHE: &str = "public, max-age=3600";

pub async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        CSS,
    )
}

pub async fn js() -> impl IntoResponse {
    script(JS)
}

pub async fn app_live_js() -> impl IntoResponse {
    script(APP_LIVE_JS)
}

pub async fn app_domains_js() -> impl IntoResponse {
    script(APP_DOMAINS_JS)
}

fn script(text: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        text,
    )
}

/// The deployment page's own script (the live log, phases and title).
pub async fn deployment_js() -> impl IntoResponse {
    script(DEPLOYMENT_JS)
}

/// A one-off command's page script (its live output and final state).
pub async fn run_js() -> impl IntoResponse {
    script(RUN_JS)
}

/// The panel's icon, an SVG.
pub async fn favicon() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, CACHE),
        ],
        FAVICON,
    )
}
