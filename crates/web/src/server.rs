//! `GET /api/v1/server`: the daemon, the engine, the proxy and the queue at a glance (what
//! `capstan status` prints). An unreachable engine is reported in the answer, not as an
//! error, so the page that shows it still loads.

use crate::error::ApiError;
use crate::views::ErrorBody;
use crate::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

#[utoipa::path(get, path = "/server", tag = "server",
    responses((status = 200, description = "daemon, engine, proxy, apps and queue at a glance", body = Object), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let deployer = &state.deployer;
    let (queued, running) = deployer.store().queue_depth().await?;
    let engine = match deployer.engine().status().await {
        Ok(engine) => json!({
            "reachable": true,
            "version": engine.version,
            "api_version": engine.api_version,
            "platform": format!("{}/{}", engine.os, engine.arch),
            "images": engine.images,
            "image_bytes": engine.image_bytes,
        }),
        Err(err) => json!({ "reachable": false, "error": err.to_string() }),
    };
    let apps = deployer.store().apps().await?.len();
    Ok(Json(json!({
        "daemon": {
            "version": env!("CARGO_PKG_VERSION"),
            "instance": deployer.engine().instance(),
            "rss_bytes": rss_bytes(),
        },
        "engine": engine,
        "proxy": deployer.proxy_state().as_str(),
        "apps": apps,
        "queue": { "queued": queued, "running": running },
    })))
}

/// The daemon's resident memory, from `/proc/self/statm` (pages × page size).
pub(crate) fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().map(|size| pages * size)
}
