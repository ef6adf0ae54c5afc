//! Bearer-token authentication. Tokens are looked up by their SHA-256 hash, so the
//! comparison never touches the secret itself.

use crate::{ApiError, AppState};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use capstan_deploy::Caller;

pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing token: send the header 'Authorization: Bearer <token>'",
            )
        })?;
    let token = header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "malformed Authorization header: expected 'Bearer <token>'",
            )
        })?;
    match state.deployer.store().token_scopes(token).await? {
        Some(scopes) => {
            let caller = Caller {
                name: "token".into(),
                admin: scopes.split([',', ' ']).any(|s| s == "admin"),
            };
            request.extensions_mut().insert(caller);
            Ok(next.run(request).await)
        }
        None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid token")),
    }
}
