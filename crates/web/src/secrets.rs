//! `/api/v1/apps/{app}/secrets`: set, list and delete an app's secrets. Values go in and
//! never come out: listings show names, whether the build sees them, and when they changed.

use crate::apps::app_name;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use capstan_deploy::Caller;
use capstan_store::SecretInfo;
use serde::Deserialize;
use serde_json::{json, Value};

/// The body of `PUT /apps/{app}/secrets/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretBody {
    value: String,
    /// Also pass the secret to the build as a build argument.
    #[serde(default)]
    build: bool,
}

/// Said wherever a secret is marked `build`: the engine's classic builder only takes build
/// arguments, which the image keeps in its history.
pub const BUILD_SECRET_WARNING: &str = "a build secret is passed to the build as a build argument: anyone who can read the image (docker history, a registry it is pushed to) can read the value; use a runtime secret unless the build itself needs it";

fn view(info: &SecretInfo) -> Value {
    json!({
        "name": info.name,
        "build": info.build,
        "updated_at": info.updated_at,
        "value": "****",
    })
}

pub async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let infos = state.deployer.secrets(&app_name(&app)?).await?;
    Ok(Json(Value::Array(infos.iter().map(view).collect())))
}

pub async fn put(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((app, name)): Path<(String, String)>,
    body: Result<Json<SecretBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let app = app_name(&app)?;
    let Json(body) = body?;
    let info = state
        .deployer
        .set_secret(&app, &name, &body.value, body.build, &caller)
        .await?;
    let mut answer = view(&info);
    if info.build {
        answer["warning"] = json!(BUILD_SECRET_WARNING);
    }
    Ok(Json(answer))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((app, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .deployer
        .delete_secret(&app_name(&app)?, &name, &caller)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
