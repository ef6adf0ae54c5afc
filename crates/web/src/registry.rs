//! `/api/v1/registry`: the instance's image registry (admin). While one is set, an image
//! moves to a server that lacks it through the registry instead of as a layer archive.
//! The password goes in and never comes out: answers say only whether one is set, and no
//! error message repeats any value of the request.

use crate::error::ApiError;
use crate::views::{time, ErrorBody};
use crate::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use capstan_deploy::Caller;
use capstan_store::RegistryRecord;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The body of `PUT /registry`.
#[derive(ToSchema)]
#[allow(dead_code)] // read field by field from the JSON (see `field`), documented here
pub struct RegistryBody {
    /// `host[:port]` with an optional path prefix, optionally after `https://`
    /// (`registry.example.com:5000/capstan`).
    url: String,
    username: String,
    /// Stored encrypted; never returned.
    password: String,
}

/// The registry as the API shows it: never the password.
#[derive(Serialize, ToSchema)]
pub struct Registry {
    pub url: String,
    pub username: String,
    /// Whether a password is stored (it always is once set; it is never shown).
    pub password_set: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

fn view(record: RegistryRecord) -> Registry {
    Registry {
        url: record.url,
        username: record.username,
        password_set: record.password_set,
        created_at: time(record.created_at),
        updated_at: time(record.updated_at),
    }
}

fn unprocessable(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// A string field of the body; the error names the field, never its value.
fn field<'a>(body: &'a serde_json::Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    match body.get(name) {
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(unprocessable(format!("{name}: must be a string"))),
        None => Err(unprocessable(format!("{name}: missing"))),
    }
}

#[utoipa::path(get, path = "/registry", tag = "registry",
    responses((status = 200, description = "the registry images move through (never its password)", body = Registry), (status = 404, description = "no registry is set: images move as layer archives", body = ErrorBody), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the database is unavailable", body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Registry>, ApiError> {
    match state.deployer.registry(&caller).await? {
        Some(record) => Ok(Json(view(record))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no image registry is set: images move to other servers as layer archives (set one with PUT /api/v1/registry)",
        )),
    }
}

#[utoipa::path(put, path = "/registry", tag = "registry", request_body = RegistryBody,
    responses((status = 200, description = "set (replacing the one there); the password is stored encrypted", body = Registry), (status = "4XX", description = "what was wrong (422 names the field, never its value)", body = ErrorBody), (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// Sets the registry images move through to servers that lack them. Every server's engine
/// must reach it and trust its certificate.
pub async fn put(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Registry>, ApiError> {
    let Json(body) = body?;
    let Some(body) = body.as_object() else {
        return Err(unprocessable(
            "the body must be an object with url, username and password".into(),
        ));
    };
    if let Some(unknown) = body
        .keys()
        .find(|k| !["url", "username", "password"].contains(&k.as_str()))
    {
        return Err(unprocessable(format!(
            "unknown field {unknown:?}: expected url, username and password"
        )));
    }
    let (url, username, password) = (
        field(body, "url")?,
        field(body, "username")?,
        field(body, "password")?,
    );
    let record = state
        .deployer
        .set_registry(url, username, password, &caller)
        .await?;
    Ok(Json(view(record)))
}

#[utoipa::path(delete, path = "/registry", tag = "registry",
    responses((status = 204, description = "removed with its password: images move as layer archives again"), (status = "4XX", description = "what was wrong (404: none is set)", body = ErrorBody), (status = 503, description = "the database is unavailable", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<StatusCode, ApiError> {
    state.deployer.remove_registry(&caller).await?;
    Ok(StatusCode::NO_CONTENT)
}
