//! The HTTP surface: the REST API v1 (JSON in and out, bearer-token auth, errors as
//! `{"error": "..."}`), server-sent log streams, and the server-rendered panel with its
//! accounts. Only this crate knows HTTP.

pub mod accounts;
mod app_output;
mod apps;
mod auth;
mod deployments;
mod error;
mod panel;
mod plan;
mod secrets;
mod server;
mod tokens;
mod users;
mod views;

use axum::routing::{get, post, put};
use axum::Router;
use capstan_deploy::Deployer;

pub use error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub deployer: Deployer,
    pub accounts: accounts::Accounts,
}

/// The full router: the panel at `/`, the API at `/api/v1` (`/api/v1/health` is open,
/// everything else needs a bearer token).
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/apps", get(apps::list).post(apps::create))
        .route(
            "/apps/{app}",
            get(apps::show).patch(apps::patch).delete(apps::delete),
        )
        .route(
            "/apps/{app}/deployments",
            get(deployments::list_for_app).post(deployments::create),
        )
        .route("/apps/{app}/rollback", post(deployments::rollback))
        .route("/apps/{app}/restart", post(deployments::restart))
        .route("/apps/{app}/plan", post(plan::plan))
        .route("/apps/{app}/logs", get(app_output::output))
        .route("/apps/{app}/events", get(apps::events))
        .route("/apps/{app}/secrets", get(secrets::list))
        .route(
            "/apps/{app}/secrets/{name}",
            put(secrets::put).delete(secrets::delete),
        )
        .route("/server", get(server::status))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/users", get(users::list).post(users::create))
        .route("/users/{name}", axum::routing::delete(users::delete))
        .route("/deployments/{id}", get(deployments::show))
        .route("/deployments/{id}/logs", get(deployments::logs))
        .route("/deployments/{id}/spec", get(deployments::spec))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let api = Router::new()
        .route("/health", get(health))
        .merge(protected)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed);
    Router::new()
        .nest("/api/v1", api)
        .merge(panel::router())
        .fallback(error::not_found)
        .with_state(state)
}

/// Liveness with the proxy's state: `ok` when the proxy serves, `degraded` while it is
/// being brought back (the daemon does that by itself).
async fn health(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::Json<serde_json::Value> {
    let proxy = state.deployer.proxy_state();
    axum::Json(serde_json::json!({
        "status": if proxy == capstan_deploy::ProxyState::Running { "ok" } else { "degraded" },
        "proxy": proxy.as_str(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// Serves the API on `listener` until `shutdown` resolves, letting in-flight requests end.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // With the peer's address, which the panel's sign-in limit counts failures by.
    let service = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}
