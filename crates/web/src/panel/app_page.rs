//! An app's page and its actions: deploy (ref, no cache), roll back to any earlier
//! successful release, restart, plan (the dry run shown whole), maintenance mode on and
//! off, and delete after typing the app's name. Every action is a plain form post that redirects to what it started.

use crate::apps::app_name;
use crate::panel::page::{render, Nav, PanelError};
use crate::panel::rows::{app_url, source_text, DeploymentRow};
use crate::panel::session::{Posted, SignedIn};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use capstan_core::{DeploymentState, MaintenancePage, Scope};
use capstan_deploy::{PlanReport, RollbackTarget};

struct EventRow {
    at: String,
    actor: String,
    action: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "app.html")]
struct AppPage {
    nav: Nav,
    name: String,
    url: Option<String>,
    source: String,
    default_ref: String,
    is_git: bool,
    live: Option<DeploymentRow>,
    deployments: Vec<DeploymentRow>,
    /// Ids of successful releases one may roll back to (not the live one).
    rollback_ids: Vec<i64>,
    events: Vec<EventRow>,
    maintenance: Option<MaintenanceRow>,
}

/// The app's maintenance mode while it is on.
struct MaintenanceRow {
    message: String,
    retry_after_secs: u32,
    since: String,
    actor: String,
}

impl AppPage {
    fn can_roll_back_to(&self, id: &i64) -> bool {
        self.rollback_ids.contains(id)
    }
}

pub async fn show(
    State(state): State<AppState>,
    session: SignedIn,
    Path(app): Path<String>,
) -> Result<Response, PanelError> {
    let name = app_name(&app)?;
    let view = state.deployer.app_view(&name).await?;
    let store = state.deployer.store();
    let now = capstan_store::now_ms();
    let records = store.deployments_of(&name, 50).await?;
    let live_id = view.app.live_deployment_id;
    let rollback_ids = records
        .iter()
        .filter(|d| {
            Some(d.id) != live_id
                && matches!(d.state, DeploymentState::Live | DeploymentState::Superseded)
        })
        .map(|d| d.id)
        .collect();
    let events = state
        .deployer
        .app_events(&name, 10)
        .await?
        .into_iter()
        .map(|e| EventRow {
            at: crate::panel::page::when(e.at),
            actor: e.actor,
            action: e.action,
            detail: e.detail,
        })
        .collect();
    let maintenance = store.maintenance(&name).await?.map(|m| MaintenanceRow {
        message: m.page.message,
        retry_after_secs: m.page.retry_after_secs,
        since: crate::panel::page::when(m.since),
        actor: m.actor,
    });
    let (is_git, default_ref) = match &view.app.spec.source {
        capstan_core::Source::Git { reference, .. } => (true, reference.clone()),
        _ => (false, String::new()),
    };
    Ok(render(&AppPage {
        nav: Nav::new(&session, "apps"),
        name: name.to_string(),
        url: app_url(&view.app.spec),
        source: source_text(&view.app.spec),
        default_ref,
        is_git,
        live: view.live.as_ref().map(|d| DeploymentRow::new(d, now)),
        deployments: records.iter().map(|d| DeploymentRow::new(d, now)).collect(),
        rollback_ids,
        events,
        maintenance,
    }))
}

fn to_deployment(id: i64) -> Response {
    Redirect::to(&format!("/deployments/{id}")).into_response()
}

pub async fn deploy(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    let (name, caller) = posted.for_app(Scope::Deploy, &app)?;
    let git_ref = Some(posted.fields.get("ref").trim()).filter(|r| !r.is_empty());
    let no_cache = posted.fields.checked("no_cache");
    let d = state
        .deployer
        .deploy(&name, git_ref, no_cache, &caller)
        .await?;
    Ok(to_deployment(d.id))
}

pub async fn rollback(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    let (name, caller) = posted.for_app(Scope::Deploy, &app)?;
    let target = match posted.fields.get("deployment") {
        "" => RollbackTarget::Previous,
        id => RollbackTarget::Deployment(
            id.parse()
                .map_err(|_| PanelError::bad_request(format!("{id:?} is not a deployment id")))?,
        ),
    };
    let d = state.deployer.rollback(&name, target, &caller).await?;
    Ok(to_deployment(d.id))
}

pub async fn restart(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    let (name, caller) = posted.for_app(Scope::Deploy, &app)?;
    let d = state.deployer.restart(&name, &caller).await?;
    Ok(to_deployment(d.id))
}

/// Deletes the app when the typed confirmation is its name.
pub async fn delete(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    let (name, caller) = posted.for_app(Scope::Write, &app)?;
    if posted.fields.get("confirm").trim() != name.as_str() {
        return Err(PanelError::bad_request(format!(
            "nothing was deleted: type the app's name, {name}, to confirm"
        )));
    }
    state.deployer.delete_app(&name, &caller).await?;
    Ok(Redirect::to("/").into_response())
}

/// Turns maintenance mode on (with the form's message and Retry-After) or off.
pub async fn maintenance(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    let (name, caller) = posted.for_app(Scope::Deploy, &app)?;
    let page = match posted.fields.get("switch") {
        "on" => {
            let mut page = MaintenancePage::default();
            let message = posted.fields.get("message").trim();
            if !message.is_empty() {
                page.message = message.to_string();
            }
            let retry = posted.fields.get("retry_after").trim();
            if !retry.is_empty() {
                page.retry_after_secs = retry.parse().map_err(|_| {
                    PanelError::bad_request(format!(
                        "nothing changed: Retry-After {retry:?} is not a number of seconds"
                    ))
                })?;
            }
            Some(page)
        }
        "off" => None,
        other => {
            return Err(PanelError::bad_request(format!(
                "nothing changed: {other:?} is neither on nor off"
            )))
        }
    };
    state.deployer.set_maintenance(&name, page, &caller).await?;
    Ok(Redirect::to(&format!("/apps/{name}")).into_response())
}

#[derive(Template)]
#[template(path = "plan.html")]
struct PlanPage {
    nav: Nav,
    name: String,
    git_ref: String,
    report: PlanReport,
    settings: String,
}

#[derive(serde::Deserialize)]
pub struct PlanQuery {
    #[serde(default, rename = "ref")]
    git_ref: String,
}

/// The dry run: fetch, detect, render; nothing is built, started or stored.
pub async fn plan(
    State(state): State<AppState>,
    session: SignedIn,
    Path(app): Path<String>,
    query: Result<axum::extract::Query<PlanQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PanelError> {
    let axum::extract::Query(query) = query?;
    session.require(Scope::Deploy)?;
    let name = app_name(&app)?;
    let git_ref = query.git_ref.trim().to_string();
    let report = state
        .deployer
        .plan_app(&name, Some(git_ref.as_str()).filter(|r| !r.is_empty()))
        .await?;
    let mut settings = serde_json::to_value(&report.settings).unwrap_or_default();
    if let Some(url) = settings.pointer_mut("/source/git/url") {
        if let Some(text) = url.as_str() {
            *url = serde_json::json!(capstan_core::redact::redact_url(text));
        }
    }
    let settings = serde_json::to_string_pretty(&settings).unwrap_or_default();
    Ok(render(&PlanPage {
        nav: Nav::new(&session, "apps"),
        name: name.to_string(),
        git_ref,
        report,
        settings,
    }))
}
