//! `/api/v1/apps`: create, list, show, change and delete apps.

use crate::error::ApiError;
use crate::{views, AppState};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use capstan_core::{AppName, AppSpec};
use capstan_deploy::Caller;
use serde_json::Value;

/// Parses an app name from the path, with the same rules as creation.
pub fn app_name(raw: &str) -> Result<AppName, ApiError> {
    AppName::parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

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

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let apps = state.deployer.app_views().await?;
    Ok(Json(Value::Array(apps.iter().map(views::app).collect())))
}

pub async fn show(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = state.deployer.app_view(&app_name(&app)?).await?;
    Ok(Json(views::app(&view)))
}

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

pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(app): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.deployer.delete_app(&app_name(&app)?, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

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
                serde_json::json!({
                    "at": views::time(e.at),
                    "actor": e.actor,
                    "action": e.action,
                    "detail": e.detail,
                })
            })
            .collect(),
    )))
}
