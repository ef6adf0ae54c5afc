//! The app page's "Notifications" card (deploy scope only): the app's channels with their
//! events and last delivery (state and error), and a Test button per channel that posts
//! to `/apps/{app}/notifications/{id}/test` and tells the result once. Channels are added
//! and removed through the API and `capstan notify`.

use crate::notifications::{notifier, notify_error};
use crate::panel::page::{record_id, PanelError};
use crate::panel::session::{Posted, SignedIn};
use crate::panel::Flash;
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use capstan_core::{AppName, Scope};
use capstan_notify::NotifyError;

/// One channel's line of the card.
pub struct ChannelRow {
    pub id: i64,
    pub kind: String,
    /// The masked URL, or the SMTP host and recipients.
    pub target: String,
    pub events: String,
    /// `delivered`, `pending`, `failed`, or `none` before the first message.
    pub last_state: String,
    pub last_error: String,
}

fn target(config: &serde_json::Value) -> String {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    match config.get("url") {
        Some(url) => text(url),
        None => {
            let to: Vec<String> = config["to"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            format!("{} → {}", text(&config["smtp_host"]), to.join(", "))
        }
    }
}

/// The card's rows for `name`, or `None` when the user may not deploy.
pub async fn notification_card(
    state: &AppState,
    session: &SignedIn,
    name: &AppName,
) -> Result<Option<Vec<ChannelRow>>, PanelError> {
    if !session.can(Scope::Deploy) {
        return Ok(None);
    }
    let store = state.deployer.store();
    let mut rows = Vec::new();
    for channel in store.channels(Some(name)).await? {
        let last = store
            .channel_deliveries(channel.id, 1)
            .await?
            .into_iter()
            .next();
        rows.push(ChannelRow {
            id: channel.id,
            kind: channel.kind,
            target: target(&channel.config),
            events: channel.events.join(", "),
            last_state: last.as_ref().map_or("none".into(), |l| l.state.clone()),
            last_error: last.and_then(|l| l.last_error).unwrap_or_default(),
        });
    }
    Ok(Some(rows))
}

/// Sends a test message to one of the app's channels now.
pub async fn test(
    State(state): State<AppState>,
    Path((app, id)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response, PanelError> {
    let (name, _caller) = posted.for_app(Scope::Deploy, &app)?;
    let id = record_id(&id, "notification channel")?;
    let channel = state.deployer.store().channel(id).await?;
    if channel.app.as_ref() != Some(&name) {
        return Err(PanelError::not_found(format!(
            "{name} has no notification channel {id}"
        )));
    }
    let flash = match notifier(&state)?.send_test(id).await {
        Ok(()) => Flash::notice(format!(
            "A test message was delivered to {} channel {id}.",
            channel.kind
        )),
        Err(NotifyError::Send(error)) => Flash::failure(format!(
            "The test message to {} channel {id} was not delivered: {error}",
            channel.kind
        )),
        Err(err) => return Err(notify_error(err).into()),
    };
    Ok(posted
        .session
        .redirect_with(&format!("/apps/{name}#notifications"), flash))
}
