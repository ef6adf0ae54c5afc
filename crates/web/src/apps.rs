//! `/api/v1/apps`: create, list, show, change and delete apps.

use crate::error::ApiError;
use crate::openapi::{App, NewApp};
use crate::views::{AppEvent, ErrorBody};
use crate::{views, AppState};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use capstan_core::AppSpecPatch;
use capstan_core::{AppName, AppSpec};
use capstan_deploy::Caller;
use serde_json::Value;

/// Parses an app name from the path, with the same rules as creation.
pub fn app_name(raw: &str) -> Result<AppName, ApiError> {
    AppName::parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

#[utoipa::path(post, path = "/apps", tag = "apps", request_body = NewApp,
    responses((status = 201, description = "created", body = App), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
/// Creates an app once its source answers: a git URL and ref (asked with `git ls-remote`,
/// at most 15 s), a local directory inside the operator's `source_dirs`, an image
/// reference the engine can read. A source that does not is a 422 naming `source.*`, and
/// nothing is created.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(mut body) = body?;
    let object = body
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let name = match object.remove("name") {
        Some(Value::String(name)) => name,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "name: must be a string",
            ))
        }
        None => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "name: missing",
            ))
        }
    };
    let name = AppName::parse(&name)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let spec: AppSpec = serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid app settings: {e}"),
        )
    })?;
    let view = state.deployer.create_app(&name, spec, &caller).await?;
    Ok((StatusCode::CREATED, Json(views::app(&view))))
}

#[utoipa::path(get, path = "/apps", tag = "apps",
    responses((status = 200, description = "every app", body = Vec<App>), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let apps = state.deployer.app_views().await?;
    Ok(Json(Value::Array(apps.iter().map(views::app).collect())))
}

#[utoipa::path(get, path = "/apps/{app}", tag = "apps", params(("app" = String, Path, description = "the app's name")),
    responses((status = 200, description = "the app", body = App), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = state.deployer.app_view(&app_name(&app)?).await?;
    Ok(Json(views::app(&view)))
}

#[utoipa::path(patch, path = "/apps/{app}", tag = "apps", params(("app" = String, Path, description = "the app's name")),
    request_body(content = AppSpecPatch, description = "a JSON merge patch of the settings: absent fields stay, null resets a field to its default"),
    responses((status = 200, description = "the changed app", body = App), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
/// Changes an app's settings; a changed source is asked first, as on creation.
pub async fn patch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(app): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let name = app_name(&app)?;
    let Json(patch) = body?;
    let view = state.deployer.patch_app(&name, &patch, &caller).await?;
    Ok(Json(views::app(&view)))
}

#[utoipa::path(delete, path = "/apps/{app}", tag = "apps", params(("app" = String, Path, description = "the app's name")),
    responses((status = 204, description = "deleted with its containers, route and images"), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(app): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.deployer.delete_app(&app_name(&app)?, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/apps/{app}/events", tag = "apps", params(("app" = String, Path, description = "the app's name")),
    responses((status = 200, description = "who changed the app and what, newest first", body = Vec<AppEvent>), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
/// `GET /apps/{app}/events`: who changed the app and what, newest first.
pub async fn events(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let events = state.deployer.app_events(&app_name(&app)?, 200).await?;
    Ok(Json(Value::Array(
        events
            .iter()
            .map(|e| {
                serde_json::to_value(views::AppEvent {
                    at: views::time(e.at),
                    actor: e.actor.clone(),
                    action: e.action.clone(),
                    detail: e.detail.clone(),
                })
                .expect("an event always serializes")
            })
            .collect(),
    )))
}
