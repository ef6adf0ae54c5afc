//! The dashboard: every app with its state, live version, last deployment and address,
//! read with three queries however many apps there are.

use crate::panel::page::{render, Nav, PanelError};
use crate::panel::rows::{app_url, DeploymentRow};
use crate::panel::session::SignedIn;
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use std::collections::HashMap;

struct AppRow {
    name: String,
    url: Option<String>,
    live: Option<DeploymentRow>,
    last: Option<DeploymentRow>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Nav,
    apps: Vec<AppRow>,
    live_count: usize,
    failing_count: usize,
}

pub async fn dashboard(
    State(state): State<AppState>,
    session: SignedIn,
) -> Result<Response, PanelError> {
    let store = state.deployer.store();
    let apps = store.apps().await?;
    let now = capstan_store::now_ms();
    let live_ids: Vec<i64> = apps.iter().filter_map(|a| a.live_deployment_id).collect();
    let mut live: HashMap<i64, DeploymentRow> = store
        .deployments_by_id(&live_ids)
        .await?
        .iter()
        .map(|d| (d.id, DeploymentRow::new(d, now)))
        .collect();
    let mut last: HashMap<String, DeploymentRow> = store
        .latest_deployments()
        .await?
        .iter()
        .map(|d| (d.app.to_string(), DeploymentRow::new(d, now)))
        .collect();
    let rows: Vec<AppRow> = apps
        .iter()
        .map(|app| {
            let live = app.live_deployment_id.and_then(|id| live.remove(&id));
            let last = last
                .remove(app.name.as_str())
                .filter(|d| live.as_ref().is_none_or(|l| l.id != d.id));
            AppRow {
                name: app.name.to_string(),
                url: app_url(&app.spec),
                live,
                last,
            }
        })
        .collect();
    let live_count = rows.iter().filter(|r| r.live.is_some()).count();
    let failing_count = rows
        .iter()
        .filter(|r| r.last.as_ref().is_some_and(|d| d.state == "failed"))
        .count();
    Ok(render(&DashboardPage {
        nav: Nav::new(&session, "apps"),
        apps: rows,
        live_count,
        failing_count,
    }))
}
