//! The server page: the daemon (version, memory), the Docker engine and the disk use of
//! Capstan's images, the disk under the engine's data root, the proxy and the ports it
//! publishes, the queue, and (for admins) the cleanup and backup actions
//! (`server_actions`) with the archives in the backup directory.

use crate::panel::page::{render, size, Moment, Nav, PanelError};
use crate::panel::session::SignedIn;
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use capstan_engine::proxy::API_PORT;

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
    /// `0.0.0.0:80 → 80/tcp`, as the engine reports them.
    proxy_ports: Vec<String>,
    /// The backup directory and its archives, for admins.
    backups: Option<BackupsView>,
    /// The disk under the engine's data root: path, percent used, free (local engine).
    disk: Option<(String, String, String)>,
    apps: usize,
    queued: i64,
    running: i64,
}

struct BackupsView {
    dir: String,
    archives: Result<Vec<ArchiveRow>, String>,
}

struct ArchiveRow {
    name: String,
    size: String,
    mode: String,
    written: Moment,
}

fn backups_view(state: &AppState) -> Option<BackupsView> {
    let backups = state.backups.as_deref()?;
    let now = capstan_store::now_ms();
    Some(BackupsView {
        dir: backups.dir(),
        archives: backups
            .list()
            .map(|files| {
                files
                    .into_iter()
                    .map(|f| ArchiveRow {
                        size: size(f.size_bytes),
                        written: Moment::new(f.modified_ms, now),
                        name: f.name,
                        mode: f.mode,
                    })
                    .collect()
            })
            .map_err(|e| e.to_string()),
    })
}

/// The proxy's published ports, as the engine reports them (none when it is not there).
async fn proxy_ports(state: &AppState) -> Vec<String> {
    let status = state.deployer.target().proxy_status().await.ok().flatten();
    status
        .map(|s| {
            s.ports
                .iter()
                .map(|p| {
                    let role = match p.container_port.as_str() {
                        "80/tcp" => " (HTTP)".to_string(),
                        "443/tcp" => " (HTTPS)".to_string(),
                        port if port == format!("{API_PORT}/tcp") => {
                            " (Traefik's API, this host only)".to_string()
                        }
                        _ => String::new(),
                    };
                    format!("{}:{} → {}{role}", p.host_ip, p.host_port, p.container_port)
                })
                .collect()
        })
        .unwrap_or_default()
}

pub async fn server(
    State(state): State<AppState>,
    session: SignedIn,
) -> Result<Response, PanelError> {
    let deployer = &state.deployer;
    let (queued, running) = deployer.store().queue_depth().await?;
    let engine = deployer.target().status().await.map_err(|e| e.to_string());
    let image_size = engine
        .as_ref()
        .map(|e| size(u64::try_from(e.image_bytes).unwrap_or(0)))
        .unwrap_or_default();
    Ok(render(&ServerPage {
        nav: Nav::new(&session, "server"),
        version: env!("CARGO_PKG_VERSION"),
        instance: deployer.target().instance().to_string(),
        rss: crate::server::rss_bytes()
            .map(size)
            .unwrap_or_else(|| "unknown".into()),
        engine,
        image_size,
        proxy: deployer.proxy_state().as_str(),
        proxy_ports: proxy_ports(&state).await,
        backups: if session.can(capstan_core::Scope::Admin) {
            backups_view(&state)
        } else {
            None
        },
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
