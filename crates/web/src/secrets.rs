//! `/api/v1/apps/{app}/secrets`: set, list and delete an app's secrets. Values go in and
//! never come out: listings show names, whether the build sees them, and when they changed.

use crate::apps::app_name;
use crate::error::ApiError;
use crate::views::ErrorBody;
use crate::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use capstan_deploy::Caller;
use capstan_store::SecretInfo;
use serde::{Deserialize, Serialize};

/// The body of `PUT /apps/{app}/secrets/{name}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretBody {
    value: String,
    /// Also give the secret to builds (a BuildKit secret mount; a build argument on the
    /// classic builder).
    #[serde(default)]
    build: bool,
}

/// Said wherever a secret is marked `build`: how builds get it, and where it would show.
pub const BUILD_SECRET_WARNING: &str = "a build secret is given to builds as a BuildKit secret mount (RUN --mount=type=secret,id=NAME, or read into ARG NAME), which the image does not keep; on an engine without BuildKit it is a build argument, which anyone who can read the image (docker history) can read; use a runtime secret unless the build itself needs it";

/// A secret without its value.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Secret {
    pub name: String,
    /// Also given to builds (a BuildKit secret mount; a build argument on the classic
    /// builder).
    pub build: bool,
    /// Unix milliseconds.
    pub updated_at: i64,
    /// Always `****`.
    pub value: String,
    /// Said when `build` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

fn view(info: &SecretInfo) -> Secret {
    Secret {
        name: info.name.clone(),
        build: info.build,
        updated_at: info.updated_at,
        value: "****".into(),
        warning: None,
    }
}

#[utoipa::path(get, path = "/apps/{app}/secrets", tag = "secrets", params(("app" = String, Path, description = "the app's name")),
    responses((status = 200, description = "names only; values never leave the server", body = Vec<Secret>), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Vec<Secret>>, ApiError> {
    let infos = state.deployer.secrets(&app_name(&app)?).await?;
    Ok(Json(infos.iter().map(view).collect()))
}

#[utoipa::path(put, path = "/apps/{app}/secrets/{name}", tag = "secrets",
    params(("app" = String, Path, description = "the app's name"), ("name" = String, Path, description = "the variable name")),
    request_body = SecretBody,
    responses((status = 200, description = "stored, encrypted", body = Secret), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((app, name)): Path<(String, String)>,
    body: Result<Json<SecretBody>, JsonRejection>,
) -> Result<Json<Secret>, ApiError> {
    let app = app_name(&app)?;
    let Json(body) = body?;
    let info = state
        .deployer
        .set_secret(&app, &name, &body.value, body.build, &caller)
        .await?;
    let mut answer = view(&info);
    if info.build {
        answer.warning = Some(BUILD_SECRET_WARNING.into());
    }
    Ok(Json(answer))
}

#[utoipa::path(delete, path = "/apps/{app}/secrets/{name}", tag = "secrets",
    params(("app" = String, Path, description = "the app's name"), ("name" = String, Path, description = "the variable name")),
    responses((status = 204, description = "removed"), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
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
