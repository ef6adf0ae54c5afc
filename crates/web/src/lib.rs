//! The HTTP surface: the REST API v1 (JSON in and out, bearer-token auth, errors as
//! `{"error": "..."}`), server-sent log streams, and the server-rendered panel with its
//! accounts. Only this crate knows HTTP.

pub mod accounts;
mod app_output;
mod apps;
mod auth;
pub mod backups;
mod certificates;
mod deployments;
mod error;
mod listener;
mod maintenance;
mod metrics;
mod notifications;
mod openapi;
mod panel;
pub use listener::ConnectionLimits;
mod plan;
mod registry;
mod runs;
mod secrets;
mod server;
mod servers;
mod tokens;
mod usage;
mod users;
mod views;
mod webhook_setup;
mod webhooks;

use axum::routing::get;
use axum::Router;
use capstan_deploy::Deployer;

pub use error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub deployer: Deployer,
    pub accounts: accounts::Accounts,
    /// Writes and lists backup archives (the binary's writer); `None`: no backups here.
    pub backups: Option<std::sync::Arc<dyn backups::Backups>>,
}

/// The API's routes, each from a handler that carries its OpenAPI description, and the
/// document they make (paths relative to `/api/v1`): the routes that need a token, and
/// the open ones. Authentication is added by [`router`].
pub fn api_router_and_doc() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    let (open, open_doc) = OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(webhooks::receive))
        .split_for_parts();
    let (protected, mut doc) =
        OpenApiRouter::with_openapi(<openapi::ApiDoc as utoipa::OpenApi>::openapi())
            .routes(routes!(apps::list, apps::create))
            .routes(routes!(apps::show, apps::patch, apps::delete))
            .routes(routes!(deployments::list_for_app, deployments::create))
            .routes(routes!(deployments::rollback))
            .routes(routes!(deployments::restart))
            .routes(routes!(runs::list, runs::create))
            .routes(routes!(runs::show))
            .routes(routes!(runs::output))
            .routes(routes!(plan::plan))
            .routes(routes!(app_output::output))
            .routes(routes!(apps::events))
            .routes(routes!(usage::usage))
            .routes(routes!(certificates::certificates))
            .routes(routes!(
                maintenance::show,
                maintenance::enable,
                maintenance::disable
            ))
            .routes(routes!(secrets::list))
            .routes(routes!(secrets::put, secrets::delete))
            .routes(routes!(webhook_setup::show, webhook_setup::rotate))
            .routes(routes!(notifications::list_app, notifications::create_app))
            .routes(routes!(
                notifications::list_global,
                notifications::create_global
            ))
            .routes(routes!(notifications::delete))
            .routes(routes!(notifications::test))
            .routes(routes!(notifications::deliveries))
            .routes(routes!(server::status))
            .routes(routes!(server::cleanup))
            .routes(routes!(servers::list, servers::create))
            .routes(routes!(servers::show, servers::delete))
            .routes(routes!(servers::check))
            .routes(routes!(servers::pin_host_key))
            .routes(routes!(registry::show, registry::put, registry::delete))
            .routes(routes!(backups::list, backups::create))
            .routes(routes!(tokens::list, tokens::create))
            .routes(routes!(tokens::revoke))
            .routes(routes!(users::list, users::create))
            .routes(routes!(users::delete))
            .routes(routes!(deployments::show))
            .routes(routes!(deployments::retry))
            .routes(routes!(deployments::cancel))
            .routes(routes!(deployments::logs))
            .routes(routes!(deployments::spec))
            .split_for_parts();
    doc.merge(open_doc);
    (protected, open, doc)
}

/// The full router: the panel at `/`, the API at `/api/v1` (`/api/v1/health` and
/// `/api/v1/openapi.json` are open, everything else needs a bearer token).
pub fn router(state: AppState) -> Router {
    let (protected, open, doc) = api_router_and_doc();
    let protected = protected.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require_token,
    ));
    let doc = std::sync::Arc::new(doc);
    let api = Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc) }
            }),
        )
        .merge(protected)
        .merge(open)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed);
    let scraped = Router::new()
        .route("/metrics", get(metrics::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .nest("/api/v1", api)
        .merge(scraped)
        .merge(panel::router())
        .fallback(error::not_found)
        .layer(axum::middleware::map_response(panel::page_headers))
        .with_state(state)
}

/// Whether the daemon and its proxy serve.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` while the proxy is being brought back.
    pub status: String,
    /// The proxy's state: `running`, `starting`, ...
    pub proxy: String,
    pub version: String,
}

/// Liveness with the proxy's state: `ok` when the proxy serves, `degraded` while it is
/// being brought back (the daemon does that by itself). Needs no token.
#[utoipa::path(get, path = "/health", tag = "server", security(()),
    responses((status = 200, description = "the daemon answers", body = Health)))]
async fn health(axum::extract::State(state): axum::extract::State<AppState>) -> axum::Json<Health> {
    let proxy = state.deployer.proxy_state();
    axum::Json(Health {
        status: if proxy == capstan_deploy::ProxyState::Running {
            "ok"
        } else {
            "degraded"
        }
        .into(),
        proxy: proxy.as_str().into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Serves the API on `listener` until `shutdown` resolves, letting in-flight requests end;
/// connections are limited as [`ConnectionLimits::default`] says.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener::serve_router(
        listener,
        router(state),
        ConnectionLimits::default(),
        shutdown,
    )
    .await
}
