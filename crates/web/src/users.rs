//! `/api/v1/users` (admin): panel accounts — create with a role, list, delete. The last
//! admin account cannot be deleted.

use crate::accounts::{check_password, check_user_name};
use crate::error::ApiError;
use crate::views::ErrorBody;
use crate::{views, AppState};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use capstan_core::Role;
use capstan_deploy::Caller;
use capstan_store::UserRecord;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub password: String,
    pub role: String,
}

/// A panel account (never its password hash).
#[derive(Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub name: String,
    /// `admin`, `deployer` or `viewer`.
    pub role: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_login_at: Option<String>,
}

pub fn view(user: &UserRecord) -> User {
    User {
        id: user.id,
        name: user.name.clone(),
        role: user.role.clone(),
        created_at: views::time(user.created_at),
        last_login_at: user.last_login_at.map(views::time),
    }
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("{field}: {reason}"),
    )
}

/// Validates and stores a new user (shared with the panel's form).
pub async fn add_user(
    state: &AppState,
    caller: &Caller,
    new: &NewUser,
) -> Result<UserRecord, ApiError> {
    let name = new.name.trim();
    check_user_name(name).map_err(|e| invalid("name", e))?;
    check_password(&new.password).map_err(|e| invalid("password", e))?;
    let role =
        Role::parse(&new.role).ok_or_else(|| invalid("role", "one of admin, deployer, viewer"))?;
    let hash = state.accounts.passwords.hash(&new.password).await?;
    let user = state
        .deployer
        .store()
        .add_user(name, &hash, role.as_str())
        .await?;
    tracing::info!(user = %user.name, role = %user.role, by = %caller.actor(), "user added");
    Ok(user)
}

/// Deletes a user unless it is the last admin (shared with the panel's form).
pub async fn remove_user(state: &AppState, caller: &Caller, name: &str) -> Result<(), ApiError> {
    let store = state.deployer.store();
    let users = store.users().await?;
    let target = users.iter().find(|u| u.name == name).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("there is no user {name:?}"))
    })?;
    if target.role == "admin" && store.admin_user_count().await? <= 1 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "this is the last admin account; make another admin before deleting it",
        ));
    }
    store.delete_user(name).await?;
    tracing::info!(user = %name, by = %caller.actor(), "user deleted");
    Ok(())
}

#[utoipa::path(post, path = "/users", tag = "access", request_body = NewUser,
    responses((status = 201, description = "created", body = User), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let Json(body) = body?;
    let user = add_user(&state, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(view(&user))))
}

#[utoipa::path(get, path = "/users", tag = "access",
    responses((status = 200, description = "every panel account", body = Vec<User>), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<User>>, ApiError> {
    let users = state.deployer.store().users().await?;
    Ok(Json(users.iter().map(view).collect()))
}

#[utoipa::path(delete, path = "/users/{name}", tag = "access",
    params(("name" = String, Path, description = "the user's name")),
    responses((status = 204, description = "deleted with their sessions"), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove_user(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
