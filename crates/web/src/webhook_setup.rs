//! `/api/v1/apps/{app}/webhooks` (deploy scope): the app's webhook secret (created on the
//! first look) and, for each forge, the URL to paste there, the header its signature
//! comes in and the events to send; `POST` rotates the secret. The URLs are built from
//! the address the request came to (its `Host` header, `https` when a proxy in front says
//! so with `X-Forwarded-Proto`): the daemon has no configured public address.

use crate::apps::app_name;
use crate::error::ApiError;
use crate::views::ErrorBody;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::{Extension, Json};
use capstan_core::AppName;
use capstan_deploy::Caller;
use capstan_forge::Provider;
use serde::Serialize;

/// An app's webhook settings.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Webhooks {
    /// The secret each forge signs its deliveries with (GitLab sends it as a token).
    pub secret: String,
    pub providers: Vec<WebhookProvider>,
}

/// How one forge is set up to call Capstan.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookProvider {
    /// `github`, `gitlab`, `gitea` (also Forgejo) or `bitbucket`.
    pub provider: String,
    /// The payload URL to give the forge (no secret in it).
    pub url: String,
    /// The header the forge signs (or, for GitLab, sends the secret) in.
    pub signature_header: String,
    /// The events to subscribe the hook to.
    pub events: Vec<String>,
}

/// What each forge's hook needs: the signature header and the events to tick.
pub fn provider_setup(provider: Provider) -> (&'static str, &'static [&'static str]) {
    match provider {
        Provider::Github => ("X-Hub-Signature-256", &["push", "pull_request"]),
        Provider::Gitlab => ("X-Gitlab-Token", &["Push events", "Merge request events"]),
        Provider::Gitea => ("X-Gitea-Signature", &["push", "pull_request"]),
        Provider::Bitbucket => (
            "X-Hub-Signature",
            &[
                "repo:push",
                "pullrequest:created",
                "pullrequest:updated",
                "pullrequest:fulfilled",
                "pullrequest:rejected",
            ],
        ),
    }
}

/// The address the request came to, as `scheme://host`: `https` when a proxy in front
/// says so (`X-Forwarded-Proto`), the `Host` header (`localhost` without one).
pub fn request_base(headers: &HeaderMap) -> String {
    let scheme = if crate::panel::over_https(headers) {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// The webhook URL of `app` for `provider` under `base`.
pub fn webhook_url(base: &str, provider: Provider, app: &AppName) -> String {
    format!("{base}/api/v1/webhooks/{provider}/{app}")
}

/// The settings shown for `secret`.
pub fn webhooks_view(base: &str, app: &AppName, secret: String) -> Webhooks {
    let providers = Provider::ALL
        .into_iter()
        .map(|provider| {
            let (signature_header, events) = provider_setup(provider);
            WebhookProvider {
                provider: provider.as_str().into(),
                url: webhook_url(base, provider, app),
                signature_header: signature_header.into(),
                events: events.iter().map(|e| (*e).to_string()).collect(),
            }
        })
        .collect();
    Webhooks { secret, providers }
}

#[utoipa::path(get, path = "/apps/{app}/webhooks", tag = "webhooks",
    params(("app" = String, Path, description = "the app's name")),
    responses((status = 200, description = "the secret (created on the first look) and each forge's URL", body = Webhooks),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// The app's webhook secret and, per forge, the URL, signature header and events.
/// Needs the deploy scope: whoever holds the secret can start deployments.
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Webhooks>, ApiError> {
    let app = app_name(&app)?;
    let secret = state
        .deployer
        .webhook_secret_or_create(&app, &caller)
        .await?;
    Ok(Json(webhooks_view(&request_base(&headers), &app, secret)))
}

#[utoipa::path(post, path = "/apps/{app}/webhooks", tag = "webhooks",
    params(("app" = String, Path, description = "the app's name")),
    responses((status = 201, description = "a new secret: deliveries signed with the old one are refused from now on", body = Webhooks),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// Rotates the app's webhook secret: give the new one to each forge.
pub async fn rotate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Webhooks>), ApiError> {
    let app = app_name(&app)?;
    let secret = state.deployer.rotate_webhook_secret(&app, &caller).await?;
    Ok((
        StatusCode::CREATED,
        Json(webhooks_view(&request_base(&headers), &app, secret)),
    ))
}
