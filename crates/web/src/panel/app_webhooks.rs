//! The app page's "Git webhooks" card (deploy scope only, git apps only): each forge's
//! URL, header and events, the secret behind a reveal, and the post that creates or
//! rotates the secret (`/apps/{app}/webhooks`). The URLs are built from the address the
//! page was asked at, as the API's `GET /apps/{app}/webhooks` builds them.

use crate::panel::page::PanelError;
use crate::panel::session::{Posted, SignedIn};
use crate::panel::Flash;
use crate::webhook_setup::{provider_setup, request_base, webhook_url};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use capstan_core::{AppName, Scope};
use capstan_forge::Provider;

/// One forge's line of the card.
pub struct WebhookRow {
    pub provider: &'static str,
    pub url: String,
    pub header: &'static str,
    pub events: String,
}

/// The card: the secret, if one was created, and a row per forge.
pub struct WebhookCard {
    pub secret: Option<String>,
    pub rows: Vec<WebhookRow>,
}

impl WebhookCard {
    /// Each URL under `base` (`scheme://host`), instead of a path alone.
    pub fn under(&mut self, base: &str) {
        for row in &mut self.rows {
            row.url = format!("{base}{}", row.url);
        }
    }
}

/// The card for `name`, or `None` when the user may not deploy or the app is not
/// deployed from git. The secret is only read here, never created by a page view.
pub async fn webhook_card(
    state: &AppState,
    session: &SignedIn,
    name: &AppName,
    is_git: bool,
) -> Result<Option<WebhookCard>, PanelError> {
    if !is_git || !session.can(Scope::Deploy) {
        return Ok(None);
    }
    let secret = state.deployer.webhook_secret(name).await?;
    let rows = Provider::ALL
        .into_iter()
        .map(|provider| {
            let (header, events) = provider_setup(provider);
            WebhookRow {
                provider: provider.as_str(),
                url: webhook_url("", provider, name),
                header,
                events: events.join(", "),
            }
        })
        .collect();
    Ok(Some(WebhookCard { secret, rows }))
}

/// The base the page's URLs are shown under.
pub fn page_base(headers: &HeaderMap) -> String {
    request_base(headers)
}

/// Creates the secret, or replaces it with a new one.
pub async fn rotate(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    let (name, caller) = posted.for_app(Scope::Deploy, &app)?;
    let had = state.deployer.webhook_secret(&name).await?.is_some();
    state.deployer.rotate_webhook_secret(&name, &caller).await?;
    let flash = Flash::notice(if had {
        format!("A new webhook secret for {name}: give it to each forge; the old one no longer verifies.")
    } else {
        format!("A webhook secret for {name} was created: add it to the forge's webhook.")
    });
    Ok(posted
        .session
        .redirect_with(&format!("/apps/{name}#webhooks"), flash))
}
