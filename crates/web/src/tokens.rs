//! `/api/v1/tokens` (admin): create a token with scopes (its secret shown once), list them
//! (name, scopes, created, last used), revoke one. The last admin token cannot be revoked,
//! so the API never locks its operator out.

use crate::error::ApiError;
use crate::{views, AppState};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use capstan_core::{Scope, Scopes};
use capstan_store::TokenRecord;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    scopes: Vec<String>,
}

fn view(token: &TokenRecord) -> Value {
    let scopes = Scopes::parse_list(&token.scopes).unwrap_or_default();
    json!({
        "id": token.id,
        "name": token.name,
        "scopes": scopes.iter().map(Scope::as_str).collect::<Vec<_>>(),
        "created_at": views::time(token.created_at),
        "last_used_at": token.last_used_at.map(views::time),
    })
}

pub async fn create(
    State(state): State<AppState>,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    let mut answer = view(&record);
    answer["token"] = json!(secret);
    answer["note"] = json!("the token is shown only now; Capstan keeps only its hash");
    Ok((StatusCode::CREATED, Json(answer)))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let tokens = state.deployer.store().tokens().await?;
    Ok(Json(Value::Array(tokens.iter().map(view).collect())))
}

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
