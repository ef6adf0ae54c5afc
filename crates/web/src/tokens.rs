//! `/api/v1/tokens` (admin): create a token with scopes (its secret shown once), list them
//! (name, scopes, created, last used), revoke one. The last admin token cannot be revoked,
//! so the API never locks its operator out.

use crate::error::ApiError;
use crate::views::ErrorBody;
use crate::{views, AppState};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use capstan_core::{Scope, Scopes};
use capstan_store::TokenRecord;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    scopes: Vec<String>,
}

/// A token without its secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Token {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<Scope>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
}

/// A new token with its secret, shown only in this answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenCreated {
    #[serde(flatten)]
    pub info: Token,
    /// The secret: send it as `Authorization: Bearer <token>`.
    pub token: String,
    pub note: String,
}

fn view(token: &TokenRecord) -> Token {
    let scopes = Scopes::parse_list(&token.scopes).unwrap_or_default();
    Token {
        id: token.id,
        name: token.name.clone(),
        scopes: scopes.iter().collect(),
        created_at: views::time(token.created_at),
        last_used_at: token.last_used_at.map(views::time),
    }
}

#[utoipa::path(post, path = "/tokens", tag = "access", request_body = NewToken,
    responses((status = 201, description = "created; the secret is in `token`, shown only now", body = TokenCreated), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let Json(body) = body?;
    let name = body.name.trim();
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if !name_ok {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name: 1 to 64 printable characters",
        ));
    }
    if body.scopes.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "scopes: give at least one of read, deploy, write, admin",
        ));
    }
    let scopes = Scopes::parse_list(&body.scopes.join(","))
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("scopes: {e}")))?;
    let secret = capstan_store::new_token();
    let store = state.deployer.store();
    let id = store.add_token(name, &secret, &scopes.to_string()).await?;
    let record = store
        .tokens()
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "token vanished"))?;
    let answer = TokenCreated {
        info: view(&record),
        token: secret,
        note: "the token is shown only now; Capstan keeps only its hash".into(),
    };
    Ok((StatusCode::CREATED, Json(answer)))
}

#[utoipa::path(get, path = "/tokens", tag = "access",
    responses((status = 200, description = "every token, without secrets", body = Vec<Token>), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Token>>, ApiError> {
    let tokens = state.deployer.store().tokens().await?;
    Ok(Json(tokens.iter().map(view).collect()))
}

#[utoipa::path(delete, path = "/tokens/{id}", tag = "access",
    params(("id" = i64, Path, description = "the token's id")),
    responses((status = 204, description = "revoked"), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    revoke_by_id(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes a token unless it is the last admin token (shared with the panel).
pub async fn revoke_by_id(state: &AppState, id: &str) -> Result<(), ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("token id {id:?} is not a number")))?;
    let store = state.deployer.store();
    let tokens = store.tokens().await?;
    let target = tokens
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("there is no token {id}")))?;
    let is_admin = |t: &TokenRecord| {
        Scopes::parse_list(&t.scopes)
            .unwrap_or_default()
            .allows(Scope::Admin)
    };
    if is_admin(target) && tokens.iter().filter(|t| is_admin(t)).count() == 1 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "this is the last admin token; create another admin token before revoking it",
        ));
    }
    store.delete_token(id).await?;
    Ok(())
}
