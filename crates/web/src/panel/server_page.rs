//! The server page: the daemon (version, memory), the Docker engine and the disk use of
//! Capstan's images, the disk under the engine's data root, the proxy and the queue.

use crate::panel::page::{render, size, Nav, PanelError};
use crate::panel::session::SignedIn;
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;

#[derive(Template)]
#[template(path = "server.html")]
struct ServerPage {
    nav: Nav,
    version: &'static str,
    instance: String,
    rss: String,
    engine: Result<capstan_engine::server::EngineStatus, String>,
    image_size: String,
    proxy: &'static str,
    /// The disk under the engine's data root: path, percent used, free (local engine).
    disk: Option<(String, String, String)>,
    apps: usize,
    queued: i64,
    running: i64,
}

pub async fn server(
    State(state): State<AppState>,
    session: SignedIn,
) -> Result<Response, PanelError> {
    let deployer = &state.deployer;
    let (queued, running) = deployer.store().queue_depth().await?;
    let engine = deployer.engine().status().await.map_err(|e| e.to_string());
    let image_size = engine
        .as_ref()
        .map(|e| size(u64::try_from(e.image_bytes).unwrap_or(0)))
        .unwrap_or_default();
    Ok(render(&ServerPage {
        nav: Nav::new(&session, "server"),
        version: env!("CARGO_PKG_VERSION"),
        instance: deployer.engine().instance().to_string(),
        rss: crate::server::rss_bytes()
            .map(size)
            .unwrap_or_else(|| "unknown".into()),
        engine,
        image_size,
        proxy: deployer.proxy_state().as_str(),
        disk: deployer.engine_disk().await.map(|(root, usage)| {
            (
                root,
                format!("{:.1}%", usage.used_percent()),
                size(usage.free_bytes),
            )
        }),
        apps: deployer.store().apps().await?.len(),
        queued,
        running,
    }))
}
