//! `/api/v1/apps/{app}/maintenance`: read, switch on (with a message and `Retry-After`)
//! and switch off an app's maintenance mode at the proxy.

use crate::apps::app_name;
use crate::deployments::optional_body;
use crate::error::ApiError;
use crate::views::{time, ErrorBody};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use capstan_core::MaintenancePage;
use capstan_deploy::{Caller, MaintenanceState};
use serde::Serialize;

/// An app's maintenance mode.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Maintenance {
    pub enabled: bool,
    /// The page's text, while enabled.
    pub message: Option<String>,
    /// The `Retry-After` seconds, while enabled.
    pub retry_after_secs: Option<u32>,
    /// When it was switched on.
    pub since: Option<String>,
    /// Who switched it on.
    pub actor: Option<String>,
    /// Whether the app has a route the state is applied to; `false` while nothing is
    /// live (maintenance can be turned on only once something is).
    pub applied: bool,
}

impl From<MaintenanceState> for Maintenance {
    fn from(state: MaintenanceState) -> Self {
        let record = state.record;
        Self {
            enabled: record.is_some(),
            message: record.as_ref().map(|r| r.page.message.clone()),
            retry_after_secs: record.as_ref().map(|r| r.page.retry_after_secs),
            since: record.as_ref().map(|r| time(r.since)),
            actor: record.map(|r| r.actor),
            applied: state.applied,
        }
    }
}

#[utoipa::path(get, path = "/apps/{app}/maintenance", tag = "apps",
    params(("app" = String, Path, description = "the app's name")),
    responses((status = 200, description = "the app's maintenance mode", body = Maintenance),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Maintenance>, ApiError> {
    Ok(Json(
        state.deployer.maintenance(&app_name(&app)?).await?.into(),
    ))
}

#[utoipa::path(put, path = "/apps/{app}/maintenance", tag = "apps",
    params(("app" = String, Path, description = "the app's name")),
    request_body(content = Option<MaintenancePage>, description = "optional: the page's message and Retry-After (defaults: a generic message, 300 s)"),
    responses((status = 200, description = "maintenance is on: every request but the app's health path gets a 503 page (the proxy has applied it when `applied`)", body = Maintenance),
        (status = "4XX", description = "what was wrong (409: nothing is deployed yet, so there is no site to put the page in front of)", body = ErrorBody),
        (status = 503, description = "the proxy or the database is unavailable", body = ErrorBody)))]
pub async fn enable(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(app): Path<String>,
    body: Bytes,
) -> Result<Json<Maintenance>, ApiError> {
    let name = app_name(&app)?;
    let page: MaintenancePage = optional_body(&body)?.unwrap_or_default();
    let switched = state
        .deployer
        .set_maintenance(&name, Some(page), &caller)
        .await?;
    Ok(Json(switched.into()))
}

#[utoipa::path(delete, path = "/apps/{app}/maintenance", tag = "apps",
    params(("app" = String, Path, description = "the app's name")),
    responses((status = 200, description = "maintenance is off: traffic goes to the app again", body = Maintenance),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 503, description = "the proxy or the database is unavailable", body = ErrorBody)))]
pub async fn disable(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(app): Path<String>,
) -> Result<Json<Maintenance>, ApiError> {
    let switched = state
        .deployer
        .set_maintenance(&app_name(&app)?, None, &caller)
        .await?;
    Ok(Json(switched.into()))
}
