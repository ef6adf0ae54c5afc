//! The dashboard: every app with its state, live version, last deployment and address,
//! a page of 100 at a time (with a name filter), read with a fixed number of queries
//! however many apps and deployments there are. Each address carries the proxy's
//! published port (read once per page, within `ENGINE_WAIT`).

use crate::panel::app_domains::{domain_url, proxy_ports, server_proxy_ports, ProxyPorts};
use crate::panel::page::{render, Nav, PanelError};
use crate::panel::rows::DeploymentRow;
use crate::panel::session::SignedIn;
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use std::collections::HashMap;

struct AppRow {
    name: String,
    url: Option<String>,
    /// The proxy answers with the maintenance page.
    in_maintenance: bool,
    live: Option<DeploymentRow>,
    last: Option<DeploymentRow>,
}

/// Apps per dashboard page.
pub const PAGE_SIZE: i64 = 100;

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Nav,
    apps: Vec<AppRow>,
    total: i64,
    live_count: i64,
    failing_count: i64,
    filter: String,
    page: i64,
    pages: i64,
}

#[derive(serde::Deserialize)]
pub struct DashboardQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<i64>,
}

pub async fn dashboard(
    State(state): State<AppState>,
    session: SignedIn,
    query: Result<axum::extract::Query<DashboardQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PanelError> {
    let axum::extract::Query(query) = query?;
    let store = state.deployer.store();
    let filter = query.q.trim().chars().take(64).collect::<String>();
    let page = query.page.unwrap_or(1).max(1);
    // The engine is asked while the store answers.
    let (ports, listed) = tokio::join!(
        proxy_ports(&state),
        store.apps_page(&filter, (page - 1).saturating_mul(PAGE_SIZE), PAGE_SIZE)
    );
    let (apps, total) = listed?;
    let (live_count, failing_count) = store.app_health_counts().await?;
    let now = capstan_store::now_ms();
    let live_ids: Vec<i64> = apps.iter().filter_map(|a| a.live_deployment_id).collect();
    let mut live: HashMap<i64, DeploymentRow> = store
        .deployments_by_id(&live_ids)
        .await?
        .iter()
        .map(|d| (d.id, DeploymentRow::new(d, now)))
        .collect();
    let names: Vec<&capstan_core::AppName> = apps.iter().map(|a| &a.name).collect();
    let mut last: HashMap<String, DeploymentRow> = store
        .latest_deployments(&names)
        .await?
        .iter()
        .map(|d| (d.app.to_string(), DeploymentRow::new(d, now)))
        .collect();
    let in_maintenance = store.in_maintenance(&names).await?;
    // An app on another server is reached through that server's proxy.
    let server_ports: HashMap<capstan_core::ServerName, ProxyPorts> = store
        .servers()
        .await?
        .iter()
        .filter(|server| !server.spec.name.is_local())
        .map(|server| (server.spec.name.clone(), server_proxy_ports(&server.spec)))
        .collect();
    let ports_of = |spec: &capstan_core::AppSpec| {
        spec.servers
            .first()
            .and_then(|server| server_ports.get(server).copied())
            .unwrap_or(ports)
    };
    let rows: Vec<AppRow> = apps
        .iter()
        .map(|app| {
            let live = app.live_deployment_id.and_then(|id| live.remove(&id));
            let last = last
                .remove(app.name.as_str())
                .filter(|d| live.as_ref().is_none_or(|l| l.id != d.id));
            AppRow {
                name: app.name.to_string(),
                url: address(&app.spec, ports_of(&app.spec)),
                in_maintenance: in_maintenance.contains(app.name.as_str()),
                live,
                last,
            }
        })
        .collect();
    Ok(render(&DashboardPage {
        nav: Nav::new(&session, "apps"),
        apps: rows,
        total,
        live_count,
        failing_count,
        filter,
        page,
        pages: (total + PAGE_SIZE - 1) / PAGE_SIZE,
    }))
}

/// The app's first domain through the proxy, its port added when it is not the scheme's own.
fn address(spec: &capstan_core::AppSpec, ports: ProxyPorts) -> Option<String> {
    let domain = spec.domains.first()?;
    Some(domain_url(domain, spec.tls, ports.for_scheme(spec.tls)))
}
