//! The server-rendered web panel on the API's listener: compile-time-checked templates
//! (askama) bound to typed view models, hand-written CSS and a little JS, every action a
//! plain form post. Signed-in users act with their role's scopes; every post carries the
//! session's anti-forgery token. A post that succeeds redirects (post/redirect/get) and the
//! page it leads to confirms it once (`flash`); one whose form has problems shows the form
//! again (422) with every problem beside its field (`problems`).

mod access_pages;
mod app_actions;
mod app_domains;
mod app_live;
mod app_notifications;
mod app_page;
mod app_status;
mod app_webhooks;
mod assets;
mod dashboard;
mod deployment_page;
mod deployment_view;
mod flash;
mod new_app;
mod page;
mod problems;
mod rows;
mod run_pages;
mod server_actions;
mod server_form;
mod server_page;
mod servers_page;
mod session;
mod settings_form;
mod settings_page;
mod sign_in;

pub use flash::{Flash, FlashCheck, Flashes};
pub(crate) use session::over_https;

use crate::AppState;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

/// What every HTML page carries: it may not be framed by another site (clickjacking), is
/// never stored by the browser or a proxy (Back after sign-out shows nothing private), and
/// sends no address of the panel to the sites it links to.
const PAGE_HEADERS: [(header::HeaderName, &str); 5] = [
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        header::CONTENT_SECURITY_POLICY,
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
    ),
    (header::CACHE_CONTROL, "no-store"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
];

/// Adds [`PAGE_HEADERS`] to every HTML response, whichever handler made it.
pub async fn page_headers(mut response: Response) -> Response {
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        let headers = response.headers_mut();
        for (name, value) in PAGE_HEADERS {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// Every panel route (merged beside `/api/v1`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/setup", get(sign_in::setup_form).post(sign_in::setup))
        .route("/login", get(sign_in::login_form).post(sign_in::login))
        .route("/logout", post(sign_in::logout))
        .route("/new", get(new_app::show).post(new_app::create))
        .route("/apps/{app}", get(app_page::show))
        .route("/apps/{app}/deploy", post(app_actions::deploy))
        .route("/apps/{app}/rollback", post(app_actions::rollback))
        .route("/apps/{app}/restart", post(app_actions::restart))
        .route("/deployments/{id}/retry", post(app_actions::retry))
        .route("/deployments/{id}/cancel", post(app_actions::cancel))
        .route("/apps/{app}/delete", post(app_actions::delete))
        .route("/apps/{app}/maintenance", post(app_actions::maintenance))
        .route("/apps/{app}/webhooks", post(app_webhooks::rotate))
        .route(
            "/apps/{app}/notifications/{id}/test",
            post(app_notifications::test),
        )
        .route("/apps/{app}/plan", get(app_page::plan))
        .route("/apps/{app}/logs/stream", get(app_live::output))
        .route("/apps/{app}/usage", get(app_live::usage))
        .route("/apps/{app}/certificates", get(app_domains::certificates))
        .route("/apps/{app}/containers", get(app_live::containers))
        .route(
            "/apps/{app}/runs",
            get(run_pages::list).post(run_pages::start),
        )
        .route("/apps/{app}/runs/{id}", get(run_pages::show))
        .route("/apps/{app}/runs/{id}/stream", get(run_pages::stream))
        .route(
            "/apps/{app}/settings",
            get(settings_page::show).post(settings_page::save),
        )
        .route(
            "/apps/{app}/settings/deploy",
            post(settings_page::save_and_deploy),
        )
        .route("/apps/{app}/secrets", post(settings_page::set_secret))
        .route(
            "/apps/{app}/secrets/{name}/delete",
            post(settings_page::delete_secret),
        )
        .route("/deployments/{id}", get(deployment_page::show))
        .route("/deployments/{id}/stream", get(deployment_page::stream))
        .route("/deployments/{id}/spec", get(deployment_page::spec))
        .route("/server", get(server_page::server))
        .route("/server/cleanup", post(server_actions::cleanup))
        .route("/server/backups", post(server_actions::backup))
        .route(
            "/servers",
            get(servers_page::servers).post(server_form::add),
        )
        .route("/servers/{name}/check", post(server_form::check))
        .route("/servers/{name}/host-key", post(server_form::pin_host_key))
        .route("/servers/{name}/delete", post(server_form::remove))
        .route("/access", get(access_pages::access))
        .route("/access/users", post(access_pages::add_user))
        .route(
            "/access/users/{name}/delete",
            post(access_pages::delete_user),
        )
        .route("/access/tokens", post(access_pages::add_token))
        .route(
            "/access/tokens/{id}/delete",
            post(access_pages::revoke_token),
        )
        .route("/static/panel.css", get(assets::css))
        .route("/static/panel.js", get(assets::js))
        .route("/static/deployment.js", get(assets::deployment_js))
        .route("/static/app_live.js", get(assets::app_live_js))
        .route("/static/app_domains.js", get(assets::app_domains_js))
        .route("/static/run.js", get(assets::run_js))
        .route("/favicon.svg", get(assets::favicon))
        .route("/favicon.ico", get(assets::favicon))
}
