//! Bearer-token authentication and scopes. Tokens are looked up by their SHA-256 hash, so
//! the comparison never touches the secret itself; each route needs one scope
//! ([`needed_scope`]), and a token without it gets 403 naming the scope.

use crate::{ApiError, AppState};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use capstan_core::{Scope, Scopes};
use capstan_deploy::Caller;

/// The scope a route needs: token, user, server and registry management and cleanup are
/// `admin`; reading is `read`; deploying,
/// rolling back, restarting, planning, running a one-off command, switching
/// maintenance mode and seeing or rotating the webhook secret are `deploy`; every other
/// change is `write`.
pub fn needed_scope(method: &Method, route: &str) -> Scope {
    let route = route.strip_prefix("/api/v1").unwrap_or(route);
    if route.starts_with("/tokens")
        || route.starts_with("/users")
        || route == "/server/cleanup"
        || route == "/server/backups"
        || route == "/servers"
        || route.starts_with("/servers/")
        || route == "/registry"
    {
        return Scope::Admin;
    }
    // Global notification channels are the admin's.
    if route == "/notifications" {
        return Scope::Admin;
    }
    // Whoever sees the webhook secret can start deployments with it. A channel's own
    // routes need the admin scope too when it is global (checked by the handler).
    if route == "/apps/{app}/webhooks"
        || route == "/apps/{app}/notifications"
        || route.starts_with("/notifications/")
    {
        return Scope::Deploy;
    }
    if method == Method::GET || method == Method::HEAD {
        return Scope::Read;
    }
    let deploys = [
        "/apps/{app}/deployments",
        "/apps/{app}/rollback",
        "/apps/{app}/restart",
        "/apps/{app}/plan",
        "/apps/{app}/maintenance",
        "/apps/{app}/runs",
        "/deployments/{id}/retry",
        "/deployments/{id}/cancel",
    ];
    let changes = [Method::POST, Method::PUT, Method::DELETE];
    if changes.contains(method) && deploys.contains(&route) {
        Scope::Deploy
    } else {
        Scope::Write
    }
}

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
    let Some(record) = state.deployer.store().token_by_secret(token).await? else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid token"));
    };
    // A stored value that no longer parses grants nothing.
    let scopes = Scopes::parse_list(&record.scopes).unwrap_or_default();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| request.uri().path().to_string());
    let needed = needed_scope(request.method(), &route);
    if !scopes.allows(needed) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the token {:?} has the scopes [{scopes}]; this request needs the {} scope",
                record.name,
                needed.as_str()
            ),
        ));
    }
    request
        .extensions_mut()
        .insert(Caller::token(record.name, scopes));
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_needs_its_scope() {
        for (method, route, scope) in [
            (Method::GET, "/api/v1/apps", Scope::Read),
            (Method::GET, "/api/v1/deployments/{id}/logs", Scope::Read),
            (
                Method::POST,
                "/api/v1/apps/{app}/deployments",
                Scope::Deploy,
            ),
            (Method::POST, "/api/v1/apps/{app}/rollback", Scope::Deploy),
            (Method::POST, "/api/v1/apps/{app}/restart", Scope::Deploy),
            (
                Method::POST,
                "/api/v1/deployments/{id}/retry",
                Scope::Deploy,
            ),
            (
                Method::POST,
                "/api/v1/deployments/{id}/cancel",
                Scope::Deploy,
            ),
            (Method::POST, "/api/v1/apps/{app}/plan", Scope::Deploy),
            (Method::PUT, "/api/v1/apps/{app}/maintenance", Scope::Deploy),
            (
                Method::DELETE,
                "/api/v1/apps/{app}/maintenance",
                Scope::Deploy,
            ),
            (Method::GET, "/api/v1/apps/{app}/maintenance", Scope::Read),
            (Method::POST, "/api/v1/apps/{app}/runs", Scope::Deploy),
            (Method::GET, "/api/v1/apps/{app}/runs", Scope::Read),
            (Method::GET, "/api/v1/apps/{app}/runs/{id}", Scope::Read),
            (
                Method::GET,
                "/api/v1/apps/{app}/runs/{id}/output",
                Scope::Read,
            ),
            (Method::POST, "/api/v1/apps", Scope::Write),
            (Method::PATCH, "/api/v1/apps/{app}", Scope::Write),
            (Method::DELETE, "/api/v1/apps/{app}", Scope::Write),
            (
                Method::PUT,
                "/api/v1/apps/{app}/secrets/{name}",
                Scope::Write,
            ),
            (Method::GET, "/api/v1/tokens", Scope::Admin),
            (Method::POST, "/api/v1/tokens", Scope::Admin),
            (Method::GET, "/api/v1/users", Scope::Admin),
            (Method::POST, "/api/v1/server/cleanup", Scope::Admin),
            (Method::GET, "/metrics", Scope::Read),
            (Method::DELETE, "/api/v1/users/{name}", Scope::Admin),
            (Method::GET, "/api/v1/servers", Scope::Admin),
            (Method::POST, "/api/v1/servers", Scope::Admin),
            (Method::GET, "/api/v1/servers/{name}", Scope::Admin),
            (Method::DELETE, "/api/v1/servers/{name}", Scope::Admin),
            (Method::POST, "/api/v1/servers/{name}/check", Scope::Admin),
            (Method::GET, "/api/v1/registry", Scope::Admin),
            (Method::PUT, "/api/v1/registry", Scope::Admin),
            (Method::DELETE, "/api/v1/registry", Scope::Admin),
            (Method::GET, "/api/v1/apps/{app}/webhooks", Scope::Deploy),
            (Method::POST, "/api/v1/apps/{app}/webhooks", Scope::Deploy),
        ] {
            assert_eq!(needed_scope(&method, route), scope, "{method} {route}");
        }
    }
}
