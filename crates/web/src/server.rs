//! `GET /api/v1/server`: the daemon, the engine, the proxy, the disk and the queue at a
//! glance (what `capstan status` prints); `POST /api/v1/server/cleanup`: remove this
//! instance's leftovers now. An unreachable engine is reported in the answer, not as an
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
    let engine = match deployer.target().status().await {
        Ok(engine) => json!({
            "reachable": true,
            "version": engine.version,
            "api_version": engine.api_version,
            "platform": format!("{}/{}", engine.os, engine.arch),
            "images": engine.images,
            "image_bytes": engine.image_bytes,
            "builder": if deployer.target().builds_with_buildkit() { "buildkit" } else { "classic" },
        }),
        Err(err) => json!({ "reachable": false, "error": err.to_string() }),
    };
    let apps = deployer.store().apps().await?.len();
    let disk = match deployer.engine_disk().await {
        Some((root, usage)) => json!({
            "engine_root": root,
            "total_bytes": usage.total_bytes,
            "free_bytes": usage.free_bytes,
            "used_percent": (usage.used_percent() * 10.0).round() / 10.0,
        }),
        None => Value::Null,
    };
    Ok(Json(json!({
        "daemon": {
            "version": env!("CARGO_PKG_VERSION"),
            "instance": deployer.target().instance(),
            "rss_bytes": rss_bytes(),
        },
        "engine": engine,
        "proxy": deployer.proxy_state().as_str(),
        "disk": disk,
        "apps": apps,
        "queue": { "queued": queued, "running": running },
    })))
}

/// What a cleanup removed (with `dry_run`, what it would remove).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CleanupResult {
    /// Whether each app kept only its live and previous release.
    pub aggressive: bool,
    /// Whether nothing was removed: the lists say what a cleanup would remove now.
    pub dry_run: bool,
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub networks: Vec<String>,
    /// Size of the removed images as the engine reported them (an upper bound).
    pub image_bytes: i64,
    /// Objects that stayed, each with the engine's reason.
    pub errors: Vec<String>,
}

/// Optional settings of a cleanup.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanupRequest {
    /// Keep only the live and the previous release of each app (as under disk pressure).
    #[serde(default)]
    pub aggressive: bool,
    /// List what would be removed, removing nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[utoipa::path(post, path = "/server/cleanup", tag = "server",
    request_body(content = Option<CleanupRequest>, description = "optional: {\"aggressive\": true, \"dry_run\": true}"),
    responses((status = 200, description = "what was removed: only objects labelled with this instance (stopped containers of finished deployments, images beyond retention, images of deleted apps, untagged images, networks of deleted apps)", body = CleanupResult), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn cleanup(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<CleanupResult>, ApiError> {
    let request: Option<CleanupRequest> = crate::deployments::optional_body(&body)?;
    let (aggressive, dry_run) = request.map_or((false, false), |r| (r.aggressive, r.dry_run));
    let report = if dry_run {
        state.deployer.cleanup_dry_run(aggressive).await?
    } else {
        state.deployer.cleanup(aggressive).await?
    };
    Ok(Json(CleanupResult {
        aggressive: report.aggressive,
        dry_run: report.dry_run,
        containers: report.containers,
        images: report.images,
        networks: report.networks,
        image_bytes: report.image_bytes,
        errors: report.errors,
    }))
}

/// The daemon's resident memory, from `/proc/self/statm` (pages × page size).
pub(crate) fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().map(|size| pages * size)
}
